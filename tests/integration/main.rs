//! Behaviour through the real stores, kv and endpoints. One binary, so the
//! stack is linked once; `helpers` starts the app, the rest read as behaviour.

mod helpers;

mod accounts;
mod kv;
mod schema;
mod store;
mod transport;
