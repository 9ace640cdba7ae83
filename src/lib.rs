//! chatroom: a GraphQL chat server.
//!
//! # Layout
//!
//! - [`config`]: every setting, as flags and `CHATROOM_*` variables.
//! - [`app`]: the services a request uses (store, kv, mailer, tokens), built from a [`Config`].
//! - [`chat`]: the rules, as plain functions over [`app::App`].
//! - [`store`]: durable state behind the [`store::Store`] trait; SQLite (default) or MongoDB.
//! - [`broker`]: live fan-out of events per topic (rooms, users, lobby); in-process.
//! - [`kv`]: short-lived values with a TTL (email codes, counters); in-process or Redis.
//! - [`mail`]: SMTP or the dev outbox.
//! - [`auth`]: argon2id passwords, JWTs, the viewer.
//! - [`error`]: the one error enum and API.md's codes.
//! - [`graphql`]: the schema; resolvers are thin and call [`chat`].
//! - [`http`]: axum routes serving the schema over HTTP and WebSocket, and the probes.
//! - [`telemetry`]: request and connection ids in the logs, latencies, `/metrics`.
//! - [`metrics`]: the counters `/metrics` reports, one registry per [`app::App`].
//!
//! [`Server::build`] is the whole app: `main` and the tests start the same thing.

pub mod app;
pub mod auth;
pub mod broker;
pub mod chat;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod kv;
pub mod mail;
pub mod metrics;
pub mod store;
pub mod telemetry;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;

use app::App;

/// The app, bound to its address and ready to serve.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Opens every backend and binds the listen address (port 0: any free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listen = config.listen;
        Self::bind(listen, App::open(config).await?).await
    }

    /// Like [`Server::build`], on a store given by the caller.
    pub async fn build_with_store(
        config: Config,
        store: Arc<dyn store::Store>,
    ) -> anyhow::Result<Self> {
        let listen = config.listen;
        Self::bind(listen, App::open_with_store(config, store).await?).await
    }

    async fn bind(listen: SocketAddr, app: App) -> anyhow::Result<Self> {
        let app = Arc::new(app);
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(Self { listener, app })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = http::router(self.app);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving")
    }
}
