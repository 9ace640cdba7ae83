//! One Redis connection that heals itself, shared by the kv and the broker.
//!
//! The driver's `ConnectionManager` reconnects after most failures, but after
//! an outage longer than its retries it can keep answering with the cached
//! failure forever (seen with redis 0.32: an instance stayed "down" long after
//! Redis was back). So every command here is bounded by a timeout, and a
//! failure that looks like the connection's replaces the manager with a new
//! one, at most once per [`RENEW_INTERVAL`].

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{
    Client, FromRedisValue, RedisError,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::error::{Error, Result};

/// The shortest time between two replacements of the connection.
const RENEW_INTERVAL: Duration = Duration::from_millis(500);

pub struct RedisLink {
    client: Client,
    config: ConnectionManagerConfig,
    /// The connection now in use; a std mutex, held only to clone or swap it.
    current: Mutex<ConnectionManager>,
    last_renewal: Mutex<Instant>,
    timeout: Duration,
}

/// Whether an error says the connection (not the command) failed.
fn is_connection_failure(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

impl RedisLink {
    /// Connects, with each connection attempt and each command bounded by `timeout`.
    pub async fn connect(
        client: Client,
        config: ConnectionManagerConfig,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let config = config
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        Ok(Self {
            client,
            config,
            current: Mutex::new(connection),
            last_renewal: Mutex::new(Instant::now()),
            timeout,
        })
    }

    /// The connection now in use; clones share it.
    pub fn connection(&self) -> ConnectionManager {
        crate::lock(&self.current).clone()
    }

    /// Runs one command; see [`RedisLink::settle`].
    pub async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        let mut connection = self.connection();
        let outcome =
            tokio::time::timeout(self.timeout, command.query_async(&mut connection)).await;
        self.settle(outcome).await
    }

    /// Runs a pipeline; see [`RedisLink::settle`].
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipeline: &redis::Pipeline) -> Result<T> {
        let mut connection = self.connection();
        let outcome =
            tokio::time::timeout(self.timeout, pipeline.query_async(&mut connection)).await;
        self.settle(outcome).await
    }

    /// A failure of the connection, or no answer in time, is `Unavailable`
    /// and starts a fresh connection for the next call; any other failure is
    /// the command's, `Internal`.
    async fn settle<T>(
        &self,
        outcome: std::result::Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if !is_connection_failure(&error) => Err(Error::internal(error)),
            Ok(Err(error)) => {
                self.renew().await;
                Err(Error::unavailable("redis", error))
            }
            Err(elapsed) => {
                self.renew().await;
                Err(Error::unavailable("redis", elapsed))
            }
        }
    }

    /// Replaces the connection with a new one, unless that was done very
    /// recently; true when a new connection is in place.
    async fn renew(&self) -> bool {
        {
            let mut last = crate::lock(&self.last_renewal);
            if last.elapsed() < RENEW_INTERVAL {
                return false;
            }
            *last = Instant::now();
        }
        let fresh = ConnectionManager::new_with_config(self.client.clone(), self.config.clone());
        match tokio::time::timeout(self.timeout, fresh).await {
            Ok(Ok(connection)) => {
                *crate::lock(&self.current) = connection;
                true
            }
            _ => false,
        }
    }
}
