//! Behaviour through the real stores, kv and endpoints. One binary, so the
//! stack is linked once; `helpers` starts the app, the rest read as behaviour.

mod helpers;

mod accounts;
mod broker;
mod clients;
mod demo;
mod docs;
mod faults;
mod hardening;
mod instances;
mod kv;
mod layers;
mod loadtest;
mod messages;
mod metrics;
mod over_http;
mod people;
mod persisted;
mod relay;
mod rooms;
mod schema;
mod search;
mod security;
mod sharing;
mod social;
mod sse;
mod store;
mod telemetry;
mod timeline;
mod transfer;
mod transport;
mod web;
