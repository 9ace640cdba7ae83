//! The `chatroom` command: load the configuration, set up logs, run.

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
    /// Print the GraphQL schema (SDL), as kept in schema.graphql.
    PrintSchema,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintSchema) => {
            print!("{}", chatroom::graphql::sdl());
            Ok(())
        }
        Some(Command::Serve(config)) => serve(*config).await,
        None => serve(cli.config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("chatroom=info")),
        )
        .init();
    let server = Server::build(config).await?;
    let address = server.local_addr()?;
    tracing::info!(%address, "serving GraphQL on http://{address}/graphql");
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
