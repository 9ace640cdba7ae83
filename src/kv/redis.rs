//! The shared kv: Redis, through one auto-reconnecting connection.
//!
//! Every key gets the configured prefix, so several deployments (or tests)
//! can share one Redis without seeing each other's values.

use std::time::Duration;

use async_trait::async_trait;
use redis::{
    AsyncCommands, Client, ExistenceCheck, RedisError, SetExpiry, SetOptions,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::Kv;
use crate::error::{Error, Result};

pub struct RedisKv {
    connection: ConnectionManager,
    prefix: String,
}

fn redis_error(error: RedisError) -> Error {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        Error::unavailable("redis", error)
    } else {
        Error::internal(error)
    }
}

/// Milliseconds for Redis, at least one (zero would mean "no expiry" to some commands).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisKv {
    /// Connects, bounding each connection attempt and each command by `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A handle for one command; clones share the one underlying connection.
    fn conn(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

#[async_trait]
impl Kv for RedisKv {
    async fn ping(&self) -> Result<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_error)
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.conn().get(self.key(key)).await.map_err(redis_error)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        self.conn()
            .pset_ex(self.key(key), value, millis(ttl))
            .await
            .map_err(redis_error)
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let options = SetOptions::default()
            .conditional_set(ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(millis(ttl)));
        let reply: Option<String> = self
            .conn()
            .set_options(self.key(key), value, options)
            .await
            .map_err(redis_error)?;
        Ok(reply.is_some())
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64> {
        let key = self.key(key);
        // Create the counter with its expiry only if absent, then count, in one
        // transaction: the window is fixed at the first increment.
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .incr(&key, 1)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(count)
    }

    async fn remove(&self, key: &str) -> Result<bool> {
        let removed: u64 = self.conn().del(self.key(key)).await.map_err(redis_error)?;
        Ok(removed > 0)
    }

    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        let millis: i64 = self.conn().pttl(self.key(key)).await.map_err(redis_error)?;
        // -2: no such key; -1: no expiry (never set by us, but not absent either).
        Ok(match millis {
            -2 => None,
            -1 => Some(Duration::MAX),
            ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }
}
