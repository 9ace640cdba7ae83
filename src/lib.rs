//! chatroom: a GraphQL chat server.
//!
//! # Layout
//!
//! From the edge inwards; calls go down this list, never up
//! (docs/architecture.md has the whole map).
//!
//! - [`http`]: axum routes: GraphQL over HTTP, the WebSocket upgrade (its
//!   origin and rate checked), the probes and the web client.
//! - [`live`]: everything a WebSocket carries: the subprotocols, the socket
//!   loop, and room and inbox payloads rendered once for all subscribers.
//! - [`graphql`]: the schema, knowing nothing of transports; resolvers are
//!   thin and call [`chat`].
//! - [`chat`]: the rules, as plain functions over [`app::App`], and live
//!   delivery (`chat::delivery`).
//! - [`store`]: durable state behind the [`store::Store`] trait; SQLite
//!   (default) or MongoDB, a folder each.
//! - [`broker`]: live fan-out of events per topic (rooms, users, lobby);
//!   in-process, or across instances through Redis.
//! - [`kv`]: short-lived values with a TTL (email codes, limit counters);
//!   in-process or Redis.
//! - [`rate_limit`]: every limit on how often a user or address may act.
//! - [`mail`]: SMTP or the dev outbox.
//! - [`auth`]: argon2id passwords, JWTs, the viewer.
//! - [`error`]: the one error enum and API.md's codes.
//! - [`app`]: the services above, built once from a [`Config`]; [`config`]:
//!   every setting, as flags and `CHATROOM_*` variables.
//! - [`telemetry`]: request and connection ids in the logs, latencies,
//!   `/metrics`; [`metrics`]: the counters, one registry per [`app::App`].
//! - [`demo`]: `chatroom demo`'s users and history, seeded through [`chat`];
//!   [`transfer`]: `chatroom export` and `import`, a whole store as JSON lines.
//!
//! [`Server::build`] is the whole app: `main` and the tests start the same thing.

pub mod app;
pub mod auth;
pub mod broker;
pub mod chat;
pub mod config;
pub mod connections;
pub mod demo;
pub mod error;
pub mod graphql;
pub mod http;
pub mod kv;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod rate_limit;
mod redis_link;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod writes;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;

use app::App;

/// The data behind `mutex`, even if a thread panicked holding it: every
/// critical section in this crate is one operation on a map, set, cache or
/// queue, so a poisoned one is still whole.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
use connections::{CountingListener, Peer};

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

    /// Serves until `shutdown` completes. Then it stops accepting, lets
    /// requests in flight finish, completes every live subscription and
    /// closes every socket (1001), and returns; after the configured
    /// shutdown timeout it returns regardless. A request cut off then either
    /// stored its message or did not: each store write is atomic.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.app;
        if app.shared_kv.is_none() {
            chat::presence::start_alone(&app)
                .await
                .context("recording everyone offline at start")?;
        }
        let presence = tokio::spawn(chat::presence::keep(app.clone()));
        tokio::spawn(chat::digest::keep(app.clone()));
        let service = http::router(app.clone()).into_make_service_with_connect_info::<Peer>();
        let listener = CountingListener::new(self.listener, app.connections.clone());
        let signal = {
            let app = app.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: draining requests and sockets");
                app.shutdown.cancel();
            }
        };
        let serving = axum::serve(listener, service).with_graceful_shutdown(signal);
        let drained = async {
            serving.await.context("serving")?;
            app.sockets.close();
            app.sockets.wait().await;
            // Its last tick tells the other instances who went with the
            // sockets just closed.
            presence.await.context("presence")?;
            anyhow::Ok(())
        };
        let deadline = async {
            app.shutdown.cancelled().await;
            tokio::time::sleep(app.config.shutdown_timeout()).await;
        };
        tokio::select! {
            result = drained => result,
            () = deadline => {
                tracing::warn!("shutdown timeout: exiting with work in flight");
                Ok(())
            }
        }
    }
}
