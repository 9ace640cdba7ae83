//! The one thread that stores every message, in group commits.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error::{Entity, Error, Result},
    store::{MessageRecord, NewMessage, Profile, WriteOutcome, check_reply},
};

use super::{
    rows::{
        MESSAGE_COLUMNS, insert_stored_message, message_from_row, one_where, profile_where,
        room_where, to_millis,
    },
    schema::db_error,
    search,
};

/// At most this many message inserts share one transaction: a burst of
/// senders costs one commit instead of one each, and the first of a batch
/// never waits for more than this many others.
const MAX_BATCH: usize = 256;

/// How many inserts may wait for the writer; beyond that, senders wait for
/// a place in the queue instead of memory growing.
const WRITE_QUEUE: usize = 1024;

/// The writer indexes the messages it stored for search
/// ([`search::index_queue`]) once this many wait, so that the cost of a
/// transaction writing the index is shared by hundreds of them, and a
/// search reads at most about this many from the queue.
const INDEX_AT: usize = 256;

/// Or, when no message is waiting to be stored, once the last indexing is
/// this old: a quiet server indexes each message soon after storing it.
const INDEX_EVERY: Duration = Duration::from_millis(100);

/// One message for the writer, and where its outcome goes.
struct WriteRequest {
    message: NewMessage,
    /// Make the checks of [`Store::send_message`](crate::store::Store::send_message) first, in the same
    /// transaction, and read the sender.
    send: bool,
    reply: oneshot::Sender<WriteOutcome>,
}

/// Starts the thread that stores every message, on its own connection.
///
/// Each insert needs SQLite's one write lock, so inserts on pooled
/// connections would only queue for that lock, each paying for its own
/// transaction and commit (and a blocking-pool hand-off). The writer takes
/// whatever messages are waiting, stores them in one transaction, each
/// inside a savepoint so that one failing leaves the others alone, and
/// commits once: group commit. A caller is answered only after the commit
/// holding its message. When the queue is empty a lone message is committed
/// at once, so a quiet server adds no delay. The thread ends when the store
/// is dropped (the queue's sender with it).
///
/// A send's checks are made here too, on pages the writer has just written
/// and keeps cached: on a pooled connection they would cost another
/// hand-off, and re-reading every page the last commit changed.
///
/// After answering a batch, the writer also indexes what it stored for
/// search, hundreds of messages a transaction ([`INDEX_AT`], `search.rs`
/// says why not in the batch's own).
pub fn start(conn: Connection) -> std::io::Result<Writer> {
    let (sender, receiver) = mpsc::channel(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || write_messages(conn, receiver))?;
    Ok(Writer(sender))
}

/// The queue of the thread that stores every message.
pub struct Writer(mpsc::Sender<WriteRequest>);

impl Writer {
    /// Has the writer store `message`, and with `send` make the checks of
    /// [`Store::send_message`](crate::store::Store::send_message) first; answered once its batch is committed.
    pub async fn write(&self, message: &NewMessage, send: bool) -> WriteOutcome {
        let stopped = || Error::internal(anyhow::anyhow!("the SQLite writer has stopped"));
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            message: message.clone(),
            send,
            reply,
        };
        self.0.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn write_messages(mut conn: Connection, mut requests: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut unindexed = 0;
    let mut indexed_at = Instant::now();
    while requests.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let_stragglers_in(&mut requests, &mut batch);
        let outcomes = write_batch(&mut conn, &batch);
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            if matches!(outcome, Ok((_, true, _))) {
                unindexed += 1;
            }
            // Ignored when the caller is gone: its message is stored all the same.
            request.reply.send(outcome).ok();
        }
        // After the answers: nobody waits for the index.
        let due = unindexed >= INDEX_AT
            || (unindexed > 0 && requests.is_empty() && indexed_at.elapsed() >= INDEX_EVERY);
        if due {
            // Searches read what stays queued, so a failure here costs
            // them time, not results; the next round tries again.
            if let Err(error) = search::index_queue(&mut conn) {
                tracing::warn!(error = %error, "indexing messages for search failed");
            }
            unindexed = 0;
            indexed_at = Instant::now();
        }
    }
}

/// Lets messages already on their way join `batch` before it is committed.
///
/// When the writer shares a core with the threads serving requests (a
/// small machine, or a pinned server), the first message of a burst wakes
/// it at once, before the requests behind that one are read: it would
/// commit them one at a time, a commit each (1.2 messages a commit in the
/// bench, docs/perf.md). Giving the core up once lets those threads go on
/// until they wait, their messages queued, and the batch takes them all
/// (15 a commit, and twice the messages a second). With a core to spare
/// the yield returns at once.
fn let_stragglers_in(requests: &mut mpsc::Receiver<WriteRequest>, batch: &mut Vec<WriteRequest>) {
    if batch.len() >= MAX_BATCH {
        return;
    }
    std::thread::yield_now();
    while batch.len() < MAX_BATCH
        && let Ok(request) = requests.try_recv()
    {
        batch.push(request);
    }
}

/// Stores `batch` in one transaction, one savepoint each; one outcome per
/// request, in order. When the transaction cannot start or commit, nothing
/// is stored and every request gets that failure.
fn write_batch(conn: &mut Connection, batch: &[WriteRequest]) -> Vec<WriteOutcome> {
    commit_batch(conn, batch).unwrap_or_else(|failure| {
        let mut failures: Vec<WriteOutcome> = Vec::with_capacity(batch.len());
        failures.resize_with(batch.len().saturating_sub(1), || {
            Err(failure.copy_for_another())
        });
        failures.push(Err(failure));
        failures
    })
}

fn commit_batch(conn: &mut Connection, batch: &[WriteRequest]) -> Result<Vec<WriteOutcome>> {
    // Immediate: the checks, the client_id lookups, the seqs and the inserts
    // happen under the write lock, so racing retries and racing senders are
    // serialised rather than failing on a unique index.
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let savepoint = tx.savepoint().map_err(db_error)?;
        let outcome = write_one(&savepoint, request);
        if outcome.is_ok() {
            savepoint.commit().map_err(db_error)?;
        }
        outcomes.push(outcome);
    }
    tx.commit().map_err(db_error)?;
    Ok(outcomes)
}

fn write_one(conn: &Connection, request: &WriteRequest) -> WriteOutcome {
    let sender = match request.send {
        true => Some(check_send(conn, &request.message)?),
        false => None,
    };
    let (stored, created) = insert_new_message(conn, &request.message)?;
    Ok((stored, created, sender))
}

/// The sender of `message`, or why it may not be sent: the checks of
/// [`Store::send_message`](crate::store::Store::send_message), in its order.
fn check_send(conn: &Connection, message: &NewMessage) -> Result<Profile> {
    // A block counts only in a PRIVATE room, whose pair key names its two
    // members: the other one is the pair's member who is not the sender.
    let (room, member, blocked) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE identity = ?1),
                    EXISTS (SELECT 1 FROM room_members
                            WHERE room_identity = ?1 AND user_identity = ?2),
                    EXISTS (SELECT 1 FROM rooms JOIN blocks
                              ON blocks.blocked_identity = ?2
                             AND instr(rooms.pair_key, blocks.blocker_identity) > 0
                            WHERE rooms.identity = ?1 AND rooms.pair_key IS NOT NULL)",
        )
        .and_then(|mut statement| {
            statement.query_row(
                [
                    message.room_identity.to_string(),
                    message.sender_identity.to_string(),
                ],
                |row| {
                    Ok((
                        row.get::<_, bool>(0)?,
                        row.get::<_, bool>(1)?,
                        row.get::<_, bool>(2)?,
                    ))
                },
            )
        })
        .map_err(db_error)?;
    if !room {
        return Err(Error::NotFound(Entity::Room));
    }
    if !member || blocked {
        return Err(Error::Forbidden);
    }
    let sender = profile_where(conn, "identity", message.sender_identity.to_string())?
        .ok_or(Error::Unauthenticated)?;
    if let Some(replied) = message.reply_to {
        let room = room_where(conn, "identity", message.room_identity.to_string())?
            .ok_or(Error::NotFound(Entity::Room))?;
        let replied = one_where(
            conn,
            MESSAGE_COLUMNS,
            "messages",
            "identity",
            replied.to_string(),
            message_from_row,
        )?;
        check_reply(&room, replied.as_ref())?;
    }
    Ok(sender)
}

/// Stores one message with its room's next seq, or finds the one its
/// `client_id` already stored; inside the writer's transaction.
fn insert_new_message(conn: &Connection, message: &NewMessage) -> Result<(MessageRecord, bool)> {
    if let Some(client_id) = &message.client_id {
        let first = conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_identity = ?1 AND sender_identity = ?2 AND client_id = ?3"
            ))
            .and_then(|mut statement| {
                statement.query_row(
                    params![
                        message.room_identity.to_string(),
                        message.sender_identity.to_string(),
                        client_id,
                    ],
                    message_from_row,
                )
            })
            .optional()
            .map_err(db_error)?;
        if let Some(first) = first {
            return Ok((first, false));
        }
    }
    let (seq, rev): (i64, i64) = conn
        .prepare_cached(
            "UPDATE rooms SET seq = seq + 1, rev = rev + 1, last_message_at = ?2
             WHERE identity = ?1
             RETURNING seq, rev",
        )
        .and_then(|mut statement| {
            statement.query_row(
                params![
                    message.room_identity.to_string(),
                    to_millis(message.created_at)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .optional()
        .map_err(db_error)?
        .ok_or(Error::NotFound(Entity::Room))?;
    let stored = message.at(seq, rev);
    insert_stored_message(conn, &stored, false)?;
    Ok((stored, true))
}
