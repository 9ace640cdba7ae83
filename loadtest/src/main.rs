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
    raise_open_files(&options);
    let report = chatroom_loadtest::run(&options).await?;
    print!("{report}");
    println!("{}", report.json_line());
    Ok(())
}

/// Files besides the sockets: the runtime's, stdio, the senders' pool.
const OTHER_FILES: usize = 64;

/// Every subscriber is a socket and every socket a file: 15,000 of them
/// need more than the usual soft limit of 1,024, and the hard limit is as
/// far as a process may raise it alone. Said when that is not enough: the
/// connections past it would each fail with "Too many open files".
fn raise_open_files(options: &Options) {
    let needed = (options.connections + options.senders + OTHER_FILES) as u64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) if files >= needed => {}
        Ok(files) => tracing::warn!(
            "{} connections need about {needed} open files, and this process may open \
             {files} (its hard limit): connections past that will fail; raise the hard \
             limit (`ulimit -Hn`, or LimitNOFILE= for a service)",
            options.connections
        ),
        Err(error) => tracing::warn!(
            %error,
            "the open-file limit could not be raised: connections past it will fail"
        ),
    }
}
