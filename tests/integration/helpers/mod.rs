//! Starting the real app and talking to it as clients do.
//!
//! Every test gets its own data dir, MongoDB database name and Redis key
//! prefix, so tests run in parallel without cleaning up after each other.
//!
//! - `app`: a running app ([`TestApp`]) on chosen [`Backends`], and its
//!   users, rooms and messages made through the API.
//! - `socket`: a client WebSocket ([`Socket`]) and subscriptions made live.
//! - `services`: Redis, MongoDB and the rest that `scripts/test` provides,
//!   stores and kvs on them, and servers of a test's own to stop and start.
//! - `documents`: the GraphQL a test sends, and what it reads of errors.
//! - `outbox`: the codes the dev outbox holds.
//! - `watched_store`: a real store with a hook before each call.

mod app;
mod documents;
mod outbox;
mod services;
mod socket;
mod watched_store;

pub use app::{Account, Backends, TEST_JWT_SECRET, TestApp};
pub use documents::{
    LOGIN, MESSAGE_FIELDS, REGISTER, SEND, error_code, error_field, room_subscription,
};
pub use outbox::{Mail, extract_code};
pub use services::{
    REDIS, REDIS_CLUSTER, RedisCluster, ServerProcess, built_web_client, mongo_store, redis_kv,
    service, sqlite_store, unique_name,
};
pub use socket::{Frame, Probe, Socket};
pub use watched_store::WatchedStore;
