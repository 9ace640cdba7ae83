//! One Redis connection that heals itself, shared by the kv and the broker:
//! to one server, or to a Redis Cluster when given several seed nodes.
//!
//! The driver's `ConnectionManager` reconnects after most failures, but after
//! an outage longer than its retries it can keep answering with the cached
//! failure forever (seen with redis 0.32: an instance stayed "down" long after
//! Redis was back). So every command here is bounded by a timeout, and a
//! failure that looks like the connection's replaces the connection with a
//! new one, at most once per [`RENEW_INTERVAL`]. A cluster connection follows
//! failovers and slot moves by itself, but not always: with a few hundred
//! commands in flight when a master died, every later command timed out for
//! as long as we watched, while a new connection worked at once (seen with
//! redis 0.32 and 1.8). So it is replaced on the same terms.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use redis::{
    Client, Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo,
    RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};

use crate::error::{Error, Result};

/// The shortest time between two replacements of the connection.
const RENEW_INTERVAL: Duration = Duration::from_millis(500);

/// The shortest and longest waits, in milliseconds, before a cluster
/// command is tried again (on another node, or after the slots moved).
const CLUSTER_RETRY_WAIT: (u64, u64) = (20, 1000);

/// Takes what Redis pushes; it runs on a connection's reader, so it must
/// hand over and never wait.
pub type OnPush = Box<dyn Fn(PushInfo) + Send + Sync>;

/// Where commands go: one server, or the nodes of a cluster.
enum Target {
    Server {
        client: Client,
        config: ConnectionManagerConfig,
    },
    Cluster(ClusterClient),
}

/// A connection of either kind; clones share it.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(command),
            Self::Cluster(connection) => connection.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Target {
    async fn connect(&self) -> redis::RedisResult<Connection> {
        match self {
            Self::Server { client, config } => {
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map(Connection::Server)
            }
            Self::Cluster(client) => client.get_async_connection().await.map(Connection::Cluster),
        }
    }
}

pub struct RedisLink {
    target: Target,
    /// The connection now in use; a std mutex, held only to clone or swap it.
    current: Mutex<Connection>,
    last_renewal: Mutex<Instant>,
    /// Counts replacements: whoever subscribed on the old connection must
    /// subscribe again on the new one.
    renewals: AtomicU64,
    timeout: Duration,
}

/// Whether an error says the connection (not the command) failed.
fn is_connection_failure(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || error.is_cluster_error()
}

/// The seed nodes `urls` names: a comma-separated list means a cluster.
pub fn seeds(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

impl RedisLink {
    /// Connects to `urls` (one server, or several seed nodes of a cluster),
    /// with each connection attempt and each command bounded by `timeout`.
    /// `pushes`, when given, receives what Redis pushes (RESP3): messages of
    /// subscribed channels, and the news of a dropped connection.
    pub async fn connect(
        urls: &str,
        pushes: Option<OnPush>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let seeds = seeds(urls);
        let target = match seeds.as_slice() {
            [] => anyhow::bail!("no Redis URL given"),
            [url] => {
                let mut info = url.into_connection_info()?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(2);
                if let Some(pushes) = pushes {
                    info.redis.protocol = ProtocolVersion::RESP3;
                    config = config.set_push_sender(move |push| {
                        pushes(push);
                        Ok::<(), std::convert::Infallible>(())
                    });
                }
                Target::Server {
                    client: Client::open(info)?,
                    config,
                }
            }
            nodes => {
                // The driver's first retry waits 1.28 s or more, and a
                // failover is over in about two: retries from 20 ms up to
                // 1 s find the new master soon after it is there, and
                // `timeout` still bounds the whole command.
                let mut builder = ClusterClientBuilder::new(nodes.to_vec())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .min_retry_wait(CLUSTER_RETRY_WAIT.0)
                    .max_retry_wait(CLUSTER_RETRY_WAIT.1);
                if let Some(pushes) = pushes {
                    builder =
                        builder
                            .use_protocol(ProtocolVersion::RESP3)
                            .push_sender(move |push| {
                                pushes(push);
                                Ok::<(), std::convert::Infallible>(())
                            });
                }
                Target::Cluster(builder.build()?)
            }
        };
        // Bounded too: a cluster's first connection was seen to hang.
        let connection = tokio::time::timeout(timeout, target.connect())
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within {timeout:?}"))??;
        Ok(Self {
            target,
            current: Mutex::new(connection),
            last_renewal: Mutex::new(Instant::now()),
            renewals: AtomicU64::new(0),
            timeout,
        })
    }

    /// Whether this is a cluster: commands of one pipeline must then name
    /// keys of one slot, and pub/sub is sharded.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// How many times the connection was replaced so far.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::SeqCst)
    }

    fn connection(&self) -> Connection {
        crate::lock(&self.current).clone()
    }

    /// Runs one command; see [`RedisLink::settle`].
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T> {
        let mut connection = self.connection();
        let outcome =
            tokio::time::timeout(self.timeout, command.query_async(&mut connection)).await;
        self.settle(outcome).await
    }

    /// Runs a pipeline, whose keys must all be of one slot on a cluster;
    /// see [`RedisLink::settle`].
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T> {
        let mut connection = self.connection();
        let outcome =
            tokio::time::timeout(self.timeout, pipeline.query_async(&mut connection)).await;
        self.settle(outcome).await
    }

    /// Runs independent `commands`, in one round trip to one server, or
    /// each to the node of its key on a cluster, all at once; their
    /// answers in their order.
    pub async fn query_each<T: FromRedisValue>(&self, commands: &[Cmd]) -> Result<Vec<T>> {
        if !self.is_cluster() {
            let mut pipeline = redis::pipe();
            for command in commands {
                pipeline.add_command(command.clone());
            }
            return self.query_pipeline(&pipeline).await;
        }
        join_all(commands.iter().map(|command| self.query(command)))
            .await
            .into_iter()
            .collect()
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
    /// recently.
    async fn renew(&self) {
        {
            let mut last = crate::lock(&self.last_renewal);
            if last.elapsed() < RENEW_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        match tokio::time::timeout(self.timeout, self.target.connect()).await {
            Ok(Ok(connection)) => {
                *crate::lock(&self.current) = connection;
                self.renewals.fetch_add(1, Ordering::SeqCst);
                tracing::info!("Redis connection replaced");
            }
            Ok(Err(error)) => tracing::warn!(%error, "Redis connection not replaced"),
            Err(_) => tracing::warn!("Redis connection not replaced: no answer in time"),
        }
    }
}
