//! The `chatroom-floor` command: serve the floor on one address. It reads
//! chatroom's own variables for the address and the outbox, so that a
//! script measuring chatroom measures the floor by swapping the binary.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;

use chatroom_floor::Floor;

#[derive(Debug, Parser)]
#[command(
    name = "chatroom-floor",
    version,
    about = "The raw-WebSocket floor: just enough graphql-transport-ws for chatroom-loadtest"
)]
struct Options {
    /// Where to listen.
    #[arg(long, env = "CHATROOM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where `sendEmailCode` writes its mails, for a load test that
    /// registers users (`chatroom-loadtest --outbox`).
    #[arg(long, env = "CHATROOM_MAIL_OUTBOX")]
    outbox: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    raise_open_files();
    if let Some(outbox) = &options.outbox {
        std::fs::create_dir_all(outbox)
            .with_context(|| format!("creating the outbox {}", outbox.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    eprintln!("chatroom-floor listening on {}", listener.local_addr()?);
    chatroom_floor::serve(listener, Arc::new(Floor::new(options.outbox))).await?;
    Ok(())
}

/// Every socket is a file: the soft limit goes up to the hard one, as
/// chatroom's does, so that the floor holds as many sockets as chatroom can.
fn raise_open_files() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => eprintln!("chatroom-floor may open {files} files"),
        Err(error) => eprintln!("chatroom-floor: the open-file limit could not be raised: {error}"),
    }
}
