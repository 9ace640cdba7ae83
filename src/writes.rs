//! A thread of its own for the changes that announce themselves: a
//! message stored and then published, a room changed and its events.
//!
//! Why not the main runtime: one message wakes every subscriber of its
//! room, thousands of socket tasks queued at once. A task woken from
//! another thread (the store answers from the SQLite writer, a blocking
//! thread or a driver's task) joins the back of that queue, so the next
//! message was published only after the whole fan-out of the one before:
//! at 15,000 subscribers on one core its end-to-end p99 was 1.3 to 1.9x
//! the raw-WebSocket floor's, and 0.7 to 1.1x from here (docs/perf.md).
//! Here the store's answer wakes a thread that has nothing else queued,
//! and the fan-out it starts is the only work that waits.
//!
//! It is also where a change outlives its request: a client that goes away
//! mid-request drops only its wait, never the work half-way.
//!
//! One thread serves every change of the instance, so what a change does
//! here (the store call's own part, the publish) bounds how many an
//! instance makes: at 7,050 sends a second on SQLite (32 senders, closed
//! loop) this thread used 5 % of a core, the SQLite writer 28 % and the
//! main runtime 65 %.

use std::{future::Future, thread};

use anyhow::Context;
use tokio::{runtime, sync::oneshot, task::JoinHandle};

use crate::error::{Error, Result};

/// The writes thread's runtime; the thread ends when this is dropped, and
/// the writes still running with it.
pub struct Writes {
    handle: runtime::Handle,
    /// Dropped with `Writes`: the thread's runtime stops waiting on it.
    _stop: oneshot::Sender<()>,
}

impl Writes {
    /// Starts the thread, with a single-threaded runtime of its own.
    pub fn start() -> anyhow::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = std::sync::mpsc::sync_channel(1);
        thread::Builder::new()
            .name("writes".into())
            .spawn(move || {
                // Built and dropped on this thread: a runtime may not be
                // dropped inside another's async context.
                let runtime = runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("writes")
                    .build();
                match runtime {
                    Ok(runtime) => {
                        started.send(Ok(runtime.handle().clone())).ok();
                        // Until `stop` is dropped with `Writes`.
                        let _ = runtime.block_on(stopped);
                    }
                    Err(error) => {
                        started.send(Err(error)).ok();
                    }
                }
            })
            .context("starting the writes thread")?;
        let handle = handle
            .recv()
            .context("the writes thread ended at its start")?
            .context("building the writes runtime")?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the writes thread, to its end whether or not anyone
    /// awaits the handle.
    pub fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        self.handle.spawn(work)
    }

    /// Runs `work`, a write and the events that announce it, on the writes
    /// thread, and answers what it answers. A caller that goes away drops
    /// only the wait: a change is never stored without its event (a lost
    /// `Left` or `RoomDeleted` would leave a departed member's other
    /// subscriptions receiving the room).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.spawn(work).await.map_err(Error::internal)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_runs_to_its_end_when_its_caller_goes_away() {
        let writes = Writes::start().expect("the writes thread starts");
        let (done, finished) = oneshot::channel();
        let waited = writes.run(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.send(()).ok();
            Ok(())
        });
        // The caller gives up at once.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), waited)
                .await
                .is_err()
        );
        tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("the work ended")
            .expect("the work said so");
    }

    #[tokio::test]
    async fn work_runs_on_the_writes_thread() {
        let writes = Writes::start().expect("the writes thread starts");
        let name = writes
            .run(async { Ok(thread::current().name().map(str::to_owned)) })
            .await
            .expect("the work answers");
        assert_eq!(name.as_deref(), Some("writes"));
    }
}
