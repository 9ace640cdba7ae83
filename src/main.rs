//! The `chatroom` command: load the configuration, set up logs, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chatroom::{Config, Server};

#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(Box<Config>),
    /// Seed an empty store with demo users and history, print how to log in, then serve.
    ///
    /// A store that already holds users is left as it is.
    Demo(Box<Config>),
    /// Print the GraphQL schema (SDL), as kept in schema.graphql.
    PrintSchema,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = match cli.command {
        Some(Command::PrintSchema) => {
            print!("{}", chatroom::graphql::sdl());
            return Ok(());
        }
        Some(Command::Serve(config)) => start(*config).await?,
        Some(Command::Demo(config)) => {
            let server = start(*config).await?;
            let seeding = chatroom::demo::seed(server.app())
                .await
                .context("seeding the demo")?;
            print!("{}", chatroom::demo::welcome(server.local_addr()?, seeding));
            server
        }
        None => start(cli.config).await?,
    };
    serve(server).await
}

/// Sets up logs and opens the app; a bad setting fails here, before anything is served.
async fn start(config: Config) -> anyhow::Result<Server> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("chatroom=info")),
        )
        .init();
    Server::build(config).await
}

async fn serve(server: Server) -> anyhow::Result<()> {
    let address = server.local_addr()?;
    tracing::info!(
        %address,
        "serving the chat client on http://{address}/, GraphiQL on /graphiql, GraphQL on /graphql"
    );
    if let Some(outbox) = server.app().mailer.outbox() {
        tracing::info!(outbox = %outbox.display(), "no SMTP configured: email codes are written to the outbox");
    }
    server.run(shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
