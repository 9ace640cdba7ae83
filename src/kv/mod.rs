//! Short-lived shared values with a time to live: email codes and their
//! counters now, rate-limit counters later.
//!
//! `memory` is the zero-setup default for one instance; `redis` shares the
//! values between instances, so a code mailed by one verifies on another.

mod memory;
mod redis;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{config::Config, error::Result};

pub use self::{memory::MemoryKv, redis::RedisKv};

/// A key-value map whose entries vanish after their time to live.
///
/// Every operation is atomic on its own. An expired entry is never returned.
#[async_trait]
pub trait Kv: Send + Sync {
    /// Succeeds when the backend answers; `/readyz` asks this.
    async fn ping(&self) -> Result<()>;

    async fn get(&self, key: &str) -> Result<Option<String>>;

    /// Sets `key`, replacing any value and its time to live.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// Sets `key` only when it is absent; true when it was set.
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;

    /// Adds one to the counter at `key` and returns the new count. A counter
    /// that did not exist starts at zero and lives for `ttl`; counting again
    /// does not extend it (a fixed window).
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64>;

    /// Removes `key`; true when it existed, so of two concurrent removers
    /// exactly one learns it took the value.
    async fn remove(&self, key: &str) -> Result<bool>;

    /// How long `key` has left; `None` when it does not exist.
    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>>;
}

/// Opens the kv the configuration names: Redis when a URL is given, else in-process.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Kv>> {
    Ok(match &config.redis_url {
        Some(url) => {
            Arc::new(RedisKv::connect(url, &config.redis_prefix, config.store_timeout()).await?)
        }
        None => Arc::new(MemoryKv::default()),
    })
}
