//! The `chatroom-loadtest` command: measure, print the report, then the
//! report again as one JSON line.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use chatroom_loadtest::Options;

/// Progress goes to stderr, so stdout holds only the report.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("chatroom_loadtest=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let report = chatroom_loadtest::run(&options).await?;
    print!("{report}");
    println!("{}", report.json_line());
    Ok(())
}
