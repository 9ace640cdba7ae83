//! `chatroom export` and `chatroom import`: a whole store as one stream of
//! JSON lines, to back it up, seed a deployment or move between stores.
//!
//! The format is in [`format`](mod@format) and, for people, in docs/export.md. Both
//! operations work through the [`Store`] trait only, so any store exports to
//! any other: the file is the same whichever wrote it.

pub mod format;
mod import;

use std::{io::IsTerminal, path::Path, time::Duration};

use anyhow::Context;
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use crate::store::{Store, now};
use format::{End, FORMAT, Header, Line, VERSION};

pub use import::{ImportError, ImportOptions, Imported, import};

/// Progress of a long export or import on stderr, when stderr is a terminal
/// (a person watching); nothing at all otherwise (a script or a log).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Drawn on stderr when it is a terminal, else hidden.
    pub fn on_terminal() -> Self {
        if std::io::stderr().is_terminal() {
            Self {
                bar: ProgressBar::new_spinner(),
            }
        } else {
            Self::hidden()
        }
    }

    /// Never drawn: for tests and callers with their own reporting.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// Starts a phase (`exporting`, `checking`, `loading`) of `total`
    /// records, when known.
    fn start(&self, phase: &'static str, total: Option<u64>) {
        // `per_sec:0`: the rate with no decimals.
        let template = match total {
            Some(_) => "{msg} {wide_bar} {human_pos}/{human_len} records ({per_sec:0}, {eta} left)",
            None => "{spinner} {msg} {human_pos} records ({per_sec:0})",
        };
        self.bar.reset();
        self.bar.set_style(
            // Fixed templates, used by every export and import the tests run.
            ProgressStyle::with_template(template).expect("the templates above are valid"),
        );
        self.bar.set_length(total.unwrap_or(0));
        self.bar.set_message(phase);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn advance(&self, records: u64) {
        self.bar.inc(records);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Writes every record of `store` to `out` as JSON lines: a header, the
/// records as [`Store::export`] reads them (in bounded memory, consistent
/// while the store is in use), and an end line counting them. Returns how
/// many records were written.
pub async fn export<W>(store: &dyn Store, out: W, progress: &Progress) -> anyhow::Result<u64>
where
    W: AsyncWrite + Unpin,
{
    let total = store.counts().await.context("counting the records")?;
    progress.start("exporting", Some(total.total()));
    let mut out = BufWriter::new(out);
    let mut line = Vec::new();
    write_line(
        &mut out,
        &mut line,
        &Line::Header(Header {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: now(),
        }),
    )
    .await?;
    let mut records = store.export();
    let mut written = 0;
    while let Some(record) = records.try_next().await.context("reading the store")? {
        write_line(&mut out, &mut line, &Line::from(record)).await?;
        written += 1;
        progress.advance(1);
    }
    write_line(&mut out, &mut line, &Line::End(End { records: written })).await?;
    out.flush().await.context("writing the export")?;
    progress.finish();
    Ok(written)
}

/// Serializes `line` into `buffer` (reused, so a line costs no allocation)
/// and writes it with its newline.
async fn write_line<W>(out: &mut W, buffer: &mut Vec<u8>, line: &Line) -> anyhow::Result<()>
where
    W: AsyncWrite + Unpin,
{
    buffer.clear();
    serde_json::to_writer(&mut *buffer, line).context("serializing a record")?;
    buffer.push(b'\n');
    out.write_all(buffer).await.context("writing the export")
}

/// The file to import, opened for the two passes an import makes: `-` is
/// standard input, copied to an unnamed temporary file first because it
/// cannot be read twice.
pub async fn open_input(path: &Path) -> anyhow::Result<tokio::fs::File> {
    if path.as_os_str() != "-" {
        return tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()));
    }
    let spool = tempfile::tempfile().context("creating a temporary file for standard input")?;
    let mut spool = tokio::fs::File::from_std(spool);
    tokio::io::copy(&mut tokio::io::stdin(), &mut spool)
        .await
        .context("reading standard input")?;
    spool.flush().await.context("spooling standard input")?;
    Ok(spool)
}
