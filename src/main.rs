//! The `chatroom` command: load the configuration, set up logs, run.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chatroom::{
    Config, Server,
    transfer::{self, ImportOptions, Progress},
};

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
    /// Write everything in the configured store as JSON lines (docs/export.md).
    Export(Box<ExportArgs>),
    /// Load a file written by `export` into the configured store.
    Import(Box<ImportArgs>),
}

#[derive(Args)]
struct ExportArgs {
    /// The file to write; `-` is standard output.
    #[arg(long, default_value = "-")]
    out: PathBuf,
    #[command(flatten)]
    config: Config,
}

#[derive(Args)]
struct ImportArgs {
    /// The file to read; `-` is standard input.
    #[arg(long = "in", default_value = "-")]
    input: PathBuf,
    /// Import into a store that holds records already, leaving out those
    /// whose identity it has.
    #[arg(long)]
    merge: bool,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    return_large_blocks();
    let cli = Cli::parse();
    let server = match cli.command {
        Some(Command::PrintSchema) => {
            print!("{}", chatroom::graphql::sdl());
            return Ok(());
        }
        Some(Command::Export(args)) => return export(*args).await,
        Some(Command::Import(args)) => return import(*args).await,
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

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let store = chatroom::store::open(&args.config)
        .await
        .context("opening the store")?;
    let progress = Progress::on_terminal();
    let records = if args.out.as_os_str() == "-" {
        transfer::export(store.as_ref(), tokio::io::stdout(), &progress).await?
    } else {
        let mut file = tokio::fs::File::create(&args.out)
            .await
            .with_context(|| format!("creating {}", args.out.display()))?;
        let records = transfer::export(store.as_ref(), &mut file, &progress).await?;
        file.sync_all()
            .await
            .with_context(|| format!("writing {}", args.out.display()))?;
        records
    };
    eprintln!("exported {records} records");
    Ok(())
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let store = chatroom::store::open(&args.config)
        .await
        .context("opening the store")?;
    let input = transfer::open_input(&args.input).await?;
    let options = ImportOptions {
        merge: args.merge,
        ..ImportOptions::default()
    };
    let imported = transfer::import(store.as_ref(), input, options, &Progress::on_terminal())
        .await
        .with_context(|| format!("importing {}", args.input.display()))?;
    eprintln!(
        "imported {} records; {} left out because the store had them already",
        imported.inserted, imported.skipped
    );
    Ok(())
}

/// Sets up logs and opens the app; a bad setting fails here, before anything is served.
async fn start(config: Config) -> anyhow::Result<Server> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .init();
    Server::build(config).await
}

/// `RUST_LOG`, or chatroom's own lines at info.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("chatroom=info"))
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

/// The system's allocator (glibc's) holds less per connection than
/// mimalloc did here (6.4 to 6.5 KiB per subscribed socket at 15,000 of
/// them, against 7.8 to 10.9: docs/perf.md), as long as it gives large
/// blocks back: by default, once a large block is freed it raises the size
/// it maps on its own to that block's, and keeps every later one of that
/// size in its heaps, so each 19 MiB argon2 hash stays resident after a
/// login. A fixed threshold has every block of 128 KiB or more mapped on its
/// own and returned when freed.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets one of the allocator's parameters, under
    // the allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
