//! The services every request uses, built once from the configuration.

use std::{sync::Arc, time::Duration};

use anyhow::Context;

use crate::{
    auth::{Tokens, password::Hasher, sessions::Sessions, token::dev_secret},
    broker::{Broker, LocalBroker, RedisBroker, Topic},
    config::Config,
    connections::Connections,
    kv::{Kv, MemoryKv, RedisKv},
    mail::Mailer,
    metrics::Metrics,
    rate_limit::RateLimiter,
    store::{self, Store},
    writes::Writes,
};

/// The ports (store, broker, kv, mailer), the limiter and the settings the
/// rules need.
/// Shared by every request and socket behind one `Arc`.
pub struct App {
    pub store: Arc<dyn Store>,
    pub broker: Arc<dyn Broker>,
    pub kv: Arc<dyn Kv>,
    /// The kv when it is Redis, shared with the other instances; `None`
    /// when this instance is alone. `/readyz` asks it.
    pub shared_kv: Option<Arc<dyn Kv>>,
    pub mailer: Mailer,
    pub tokens: Tokens,
    pub hasher: Hasher,
    pub limiter: RateLimiter,
    /// Open connections, and sockets per client address (`connections`).
    pub connections: Arc<Connections>,
    /// Which valid tokens still count (`auth::sessions`).
    pub sessions: Arc<Sessions>,
    /// Cancelled when the server begins to shut down: live sockets complete
    /// their subscriptions and close.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The live sockets' tasks, so shutdown can wait for their goodbyes.
    pub sockets: tokio_util::task::TaskTracker,
    pub config: Config,
    /// This app's own registry: apps sharing a process (tests) keep separate counts.
    pub metrics: Arc<Metrics>,
    /// Recent typing events of this instance (`chat::typing`).
    pub typing: crate::chat::typing::Typing,
    /// This instance's sockets per user (`chat::presence`).
    pub presence: crate::chat::presence::Presence,
    /// The documents of persisted queries this instance knows.
    pub persisted: crate::graphql::persisted::PersistedQueries,
    /// Where changes are stored and announced (`writes`).
    pub writes: Writes,
}

impl App {
    /// Opens every backend the configuration names; a bad setting or an
    /// unreachable backend fails here, at start, with what went wrong.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let store = store::open(&config).await.context("opening the store")?;
        Self::open_with_store(config, store).await
    }

    /// Like [`App::open`], with a store given by the caller (tests count its calls).
    pub async fn open_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        config.validate()?;
        // The one place that decides whether instances share Redis.
        let (broker, kv, shared_kv): (Arc<dyn Broker>, Arc<dyn Kv>, _) = match &config.redis_url {
            Some(url) => {
                let (prefix, timeout) = (&config.redis_prefix, config.store_timeout());
                let broker = RedisBroker::connect(url, prefix, timeout, config.topic_buffer)
                    .await
                    .context("connecting the broker to Redis")?;
                let kv: Arc<dyn Kv> = Arc::new(
                    RedisKv::connect(url, prefix, timeout)
                        .await
                        .context("connecting to Redis")?,
                );
                (Arc::new(broker), kv.clone(), Some(kv))
            }
            None => (
                Arc::new(LocalBroker::new(config.topic_buffer)),
                Arc::new(MemoryKv::default()),
                None,
            ),
        };
        let mailer = Mailer::from_config(&config).context("setting up mail")?;
        let secret = match &config.jwt_secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => dev_secret(&config.data_dir).context("loading the dev JWT secret")?,
        };
        let tokens = Tokens::new(&secret, Duration::from_secs(config.jwt_ttl_secs));
        let limiter = RateLimiter::new(&config, shared_kv.clone());
        let sessions = Arc::new(Sessions::default());
        let changes = broker
            .subscribe(Topic::Sessions)
            .await
            .context("following password changes")?;
        tokio::spawn(sessions.clone().follow(changes));
        Ok(Self {
            store,
            broker,
            kv,
            shared_kv,
            mailer,
            tokens,
            hasher: Hasher::default(),
            limiter,
            connections: Arc::new(Connections::new(&config.limits)),
            sessions,
            shutdown: tokio_util::sync::CancellationToken::new(),
            sockets: tokio_util::task::TaskTracker::new(),
            config,
            metrics: Arc::default(),
            typing: Default::default(),
            presence: Default::default(),
            persisted: Default::default(),
            writes: Writes::start()?,
        })
    }

    pub fn code_ttl(&self) -> Duration {
        Duration::from_secs(self.config.code_ttl_secs)
    }
}
