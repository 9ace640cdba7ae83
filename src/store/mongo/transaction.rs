//! Transactions, run again when they conflict with a concurrent one.

use std::time::Duration;

use futures_util::future::BoxFuture;
use mongodb::{
    ClientSession,
    error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT},
};
use rand::Rng;

use crate::error::Result;

use super::MongoStore;

/// One run of a transaction's work, see [`MongoStore::transaction`].
type Attempt<'s, T> = BoxFuture<'s, mongodb::error::Result<T>>;

/// How many times a transaction is tried when it keeps conflicting with
/// concurrent ones, before the conflict is reported as an error. Conflicts
/// are a lottery among a room's concurrent senders: with 8 of them the
/// unluckiest message was seen to need over 20 attempts and more than a
/// second. With the pauses of [`backoff`], 50 attempts take about as long as
/// the default store timeout, which bounds the whole anyway.
const TRANSACTION_ATTEMPTS: u32 = 50;

/// Commits, again while the server cannot tell whether the commit took
/// (committing twice is safe: the server answers the second from the first).
async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(error)
                if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && attempt < TRANSACTION_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A random pause, longer after each attempt up to 128 ms, so that
/// transactions that conflicted do not meet again at once.
async fn backoff(attempt: u32) {
    let most = 2_u64 << attempt.min(6);
    let pause = rand::thread_rng().gen_range(0..=most);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

impl MongoStore {
    /// Runs `work` in a transaction and commits it, all of it again (after
    /// a pause) when the server reports a transient conflict with a
    /// concurrent transaction; bounded by the store timeout as a whole.
    ///
    /// `work` may run several times: it must only write through the session
    /// and return what it found rather than act on it outside. It gets the
    /// store and `context` as arguments rather than capturing them, because
    /// its future borrows them for as long as it borrows the session, which
    /// a capture cannot promise; the future is boxed because the compiler
    /// cannot prove an unboxed one `Send` for every such borrow.
    pub(super) async fn transaction<C, T>(
        &self,
        context: &C,
        work: impl for<'s> Fn(&'s Self, &'s mut ClientSession, &'s C) -> Attempt<'s, T>,
    ) -> Result<T>
    where
        C: Sync + ?Sized,
    {
        self.timed(async {
            let mut session = self.client.start_session().await?;
            let mut attempt = 1;
            loop {
                session.start_transaction().await?;
                let outcome = match work(self, &mut session, context).await {
                    Ok(value) => commit(&mut session).await.map(|()| value),
                    Err(error) => {
                        session.abort_transaction().await?;
                        Err(error)
                    }
                };
                match outcome {
                    Err(error)
                        if error.contains_label(TRANSIENT_TRANSACTION_ERROR)
                            && attempt < TRANSACTION_ATTEMPTS =>
                    {
                        tracing::debug!(attempt, error = %error, "transaction conflicted: retrying");
                        backoff(attempt).await;
                        attempt += 1;
                    }
                    outcome => return outcome,
                }
            }
        })
        .await
    }
}
