//! The embedded default store: one SQLite file in the data dir, in WAL mode so
//! readers never wait for the writer.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool with a
//! connection from an r2d2 pool; the async runtime never waits on disk.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    path::Path,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
    types::{Type, Value},
};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    Counts, Departure, HistoryRange, Loaded, MemberRecord, MessageRecord, NewMessage, Profile,
    ProfileUpdate, Record, RecordStream, RoomRecord, RoomType, Sent, Sex, Store, UserRecord,
    nickname_key, username_key,
};
use crate::error::{Entity, Error, Result, Unique};

/// Schema versions, applied in order and recorded in `PRAGMA user_version`.
/// Append new steps; never edit a released one.
const MIGRATIONS: &[M<'static>] = &[M::up(
    "CREATE TABLE users (
        identity      TEXT PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        nickname      TEXT NOT NULL,
        nickname_key  TEXT NOT NULL,
        sex           TEXT NOT NULL,
        email         TEXT NOT NULL UNIQUE,
        avatar        TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX users_nickname_key ON users (nickname_key);

    CREATE TABLE rooms (
        identity         TEXT PRIMARY KEY,
        number           TEXT NOT NULL UNIQUE,
        name             TEXT NOT NULL,
        info             TEXT NOT NULL,
        creator_identity TEXT NOT NULL,
        room_type        TEXT NOT NULL CHECK (room_type IN ('PRIVATE', 'GROUP')),
        pair_key         TEXT UNIQUE,
        seq              INTEGER NOT NULL DEFAULT 0,
        last_message_at  INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );

    CREATE TABLE room_members (
        user_identity TEXT NOT NULL,
        room_identity TEXT NOT NULL REFERENCES rooms (identity) ON DELETE CASCADE,
        last_read_seq INTEGER NOT NULL DEFAULT 0,
        joined_at     INTEGER NOT NULL,
        PRIMARY KEY (user_identity, room_identity)
    );
    CREATE INDEX room_members_room ON room_members (room_identity);

    CREATE TABLE messages (
        identity        TEXT NOT NULL UNIQUE,
        room_identity   TEXT NOT NULL REFERENCES rooms (identity) ON DELETE CASCADE,
        seq             INTEGER NOT NULL,
        sender_identity TEXT NOT NULL,
        content         TEXT NOT NULL,
        client_id       TEXT,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (room_identity, seq)
    );
    CREATE UNIQUE INDEX messages_client_id
        ON messages (room_identity, sender_identity, client_id)
        WHERE client_id IS NOT NULL;",
)];

/// The unique value a violated constraint stands for. SQLite names the
/// constraint by its table's columns (`UNIQUE constraint failed: t.a, t.b`),
/// one list per unique index or key of [`MIGRATIONS`].
fn unique_of(message: &str) -> Option<Unique> {
    let columns = message.strip_prefix("UNIQUE constraint failed: ")?;
    Some(match columns {
        "users.username_key" => Unique::Username,
        "users.email" => Unique::Email,
        "rooms.pair_key" => Unique::PrivatePair,
        "rooms.number" => Unique::RoomNumber,
        "users.identity" | "rooms.identity" | "messages.identity" => Unique::Identity,
        "room_members.user_identity, room_members.room_identity" => Unique::Membership,
        "messages.room_identity, messages.sender_identity, messages.client_id" => Unique::ClientId,
        "messages.room_identity, messages.seq" => Unique::Seq,
        _ => return None,
    })
}

pub struct SqliteStore {
    /// Every read, and the writes other than message inserts.
    pool: Pool<SqliteConnectionManager>,
    /// The queue of the thread that inserts messages: see [`start_writer`].
    writer: mpsc::Sender<WriteRequest>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(move |c| configure(c, timeout));
        let pool = Pool::builder()
            .max_size(8)
            .connection_timeout(timeout)
            .build(manager)?;
        let migrate = pool.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = migrate.get()?;
            Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
            Ok(())
        })
        .await??;
        let writer = Connection::open(path)?;
        configure(&writer, timeout)?;
        let writer = start_writer(writer)?;
        Ok(Self { pool, writer })
    }

    /// Has the writer store `message` ([`start_writer`]).
    async fn write(&self, message: &NewMessage, send: bool) -> WriteOutcome {
        let stopped = || Error::internal(anyhow::anyhow!("the SQLite writer has stopped"));
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            message: message.clone(),
            send,
            reply,
        };
        self.writer.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work` with a pooled connection on the blocking pool.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| Error::unavailable("sqlite", e))?;
            work(&mut conn)
        })
        .await
        .map_err(Error::internal)?
    }
}

/// What every connection is set to. WAL lets readers go on while one
/// writer writes. In WAL mode `synchronous = NORMAL` syncs the log to disk at
/// checkpoints rather than at every commit: a committed write survives the
/// process crashing or being killed, and the file is never corrupted, but the
/// last commits before a power loss or an OS crash may be rolled back. That
/// is the trade taken for chat messages; `FULL` would cost an fsync per commit.
fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = {};",
        busy_timeout.as_millis()
    ))
}

/// Maps a SQLite failure: a unique violation becomes `Conflict` on its field,
/// a busy database `Unavailable`, the rest `Internal`.
fn db_error(error: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, Some(message)) = &error {
        match failure.code {
            ErrorCode::ConstraintViolation => {
                if let Some(unique) = unique_of(message) {
                    return Error::Conflict(unique);
                }
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::unavailable("sqlite", message);
            }
            _ => {}
        }
    }
    Error::internal(error)
}

fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn from_millis(millis: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(0, millis))
}

fn parse_uuid(text: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

const PROFILE_COLUMNS: &str =
    "identity, username, nickname, sex, email, avatar, created_at, updated_at";

fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        identity: parse_uuid(&row.get::<_, String>(0)?)?,
        username: row.get(1)?,
        nickname: row.get(2)?,
        sex: Sex::from_stored(&row.get::<_, String>(3)?),
        email: row.get(4)?,
        avatar: row.get(5)?,
        created_at: from_millis(row.get(6)?)?,
        updated_at: from_millis(row.get(7)?)?,
    })
}

/// The profile's columns, then the password hash.
const USER_COLUMNS: &str =
    "identity, username, nickname, sex, email, avatar, created_at, updated_at, password_hash";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        profile: profile_from_row(row)?,
        password_hash: row.get(8)?,
    })
}

/// The one row of `table` whose `column` equals `value`, if any.
fn one_where<T>(
    conn: &Connection,
    columns: &str,
    table: &str,
    column: &str,
    value: String,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    conn.prepare_cached(&format!(
        "SELECT {columns} FROM {table} WHERE {column} = ?1"
    ))
    .and_then(|mut statement| statement.query_row([value], from_row))
    .optional()
    .map_err(db_error)
}

fn profile_where(conn: &Connection, column: &str, value: String) -> Result<Option<Profile>> {
    one_where(
        conn,
        PROFILE_COLUMNS,
        "users",
        column,
        value,
        profile_from_row,
    )
}

/// Reads a stored room type. The table's CHECK admits only these two, so
/// anything else is a damaged row: reported, not guessed.
fn room_type_from_stored(value: &str) -> rusqlite::Result<RoomType> {
    match value {
        "PRIVATE" => Ok(RoomType::Private),
        "GROUP" => Ok(RoomType::Group),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            5,
            Type::Text,
            format!("unknown room type {other:?}").into(),
        )),
    }
}

const ROOM_COLUMNS: &str = "identity, number, name, info, creator_identity, room_type, pair_key, \
                            seq, last_message_at, created_at, updated_at";

fn room_from_row(row: &Row<'_>) -> rusqlite::Result<RoomRecord> {
    Ok(RoomRecord {
        identity: parse_uuid(&row.get::<_, String>(0)?)?,
        number: row.get(1)?,
        name: row.get(2)?,
        info: row.get(3)?,
        creator_identity: parse_uuid(&row.get::<_, String>(4)?)?,
        room_type: room_type_from_stored(&row.get::<_, String>(5)?)?,
        pair_key: row.get(6)?,
        seq: row.get(7)?,
        last_message_at: row.get::<_, Option<i64>>(8)?.map(from_millis).transpose()?,
        created_at: from_millis(row.get(9)?)?,
        updated_at: from_millis(row.get(10)?)?,
    })
}

fn room_where(conn: &Connection, column: &str, value: String) -> Result<Option<RoomRecord>> {
    one_where(conn, ROOM_COLUMNS, "rooms", column, value, room_from_row)
}

const MEMBER_COLUMNS: &str = "user_identity, room_identity, last_read_seq, joined_at";

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        user_identity: parse_uuid(&row.get::<_, String>(0)?)?,
        room_identity: parse_uuid(&row.get::<_, String>(1)?)?,
        last_read_seq: row.get(2)?,
        joined_at: from_millis(row.get(3)?)?,
    })
}

const MESSAGE_COLUMNS: &str =
    "identity, room_identity, seq, sender_identity, content, client_id, created_at";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        identity: parse_uuid(&row.get::<_, String>(0)?)?,
        room_identity: parse_uuid(&row.get::<_, String>(1)?)?,
        seq: row.get(2)?,
        sender_identity: parse_uuid(&row.get::<_, String>(3)?)?,
        content: row.get(4)?,
        client_id: row.get(5)?,
        created_at: from_millis(row.get(6)?)?,
    })
}

/// The least string greater than every string starting with `prefix`, so a
/// prefix search is an index range (`>= prefix AND < end`) in which `_` and
/// `%` are plain characters. `None` when no string is greater: then
/// `>= prefix` alone is exact.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// At most this many items go into one statement's `IN` or `VALUES` list:
/// reads over many rooms take a bounded number of statements, each far below
/// SQLite's limit on bound values.
const CHUNK: usize = 500;

/// `items` without repeats, first occurrence kept: a repeat would come back
/// twice from a `VALUES` join.
fn distinct<T: Copy + Eq + Hash>(items: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .iter()
        .copied()
        .filter(|item| seen.insert(*item))
        .collect()
}

/// `count` placeholders for an `IN` list.
fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// `count` two-value rows for a `VALUES` list, read as `column1`, `column2`.
fn pairs(count: usize) -> String {
    vec!["(?, ?)"; count].join(", ")
}

fn text(identity: Uuid) -> Value {
    Value::Text(identity.to_string())
}

/// Runs one statement per [`CHUNK`] of `items` and gathers the rows: `sql`
/// is given the chunk's length, `bind` the chunk, returning its values in
/// placeholder order.
fn chunked<I, T>(
    conn: &Connection,
    items: &[I],
    sql: impl Fn(usize) -> String,
    bind: impl Fn(&[I]) -> Vec<Value>,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for chunk in items.chunks(CHUNK) {
        let mut statement = conn.prepare(&sql(chunk.len())).map_err(db_error)?;
        let rows = statement
            .query_map(params_from_iter(bind(chunk)), &read)
            .map_err(db_error)?;
        for row in rows {
            found.push(row.map_err(db_error)?);
        }
    }
    Ok(found)
}

/// The clause that makes an insert skip a row whose `key` (its identity) is
/// already stored, when `skip_existing`; only that: any other unique value
/// taken is still an error.
fn on_conflict(key: &str, skip_existing: bool) -> String {
    match skip_existing {
        true => format!("ON CONFLICT ({key}) DO NOTHING"),
        false => String::new(),
    }
}

/// Inserts a user; the number of rows written (0: skipped, see [`on_conflict`]).
fn insert_user(conn: &Connection, user: &UserRecord, skip_existing: bool) -> Result<usize> {
    let on_conflict = on_conflict("identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO users (identity, username, username_key, password_hash, nickname,
                            nickname_key, sex, email, avatar, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) {on_conflict}"
    ))
    .and_then(|mut insert| {
        let profile = &user.profile;
        insert.execute(params![
            profile.identity.to_string(),
            profile.username,
            username_key(&profile.username),
            user.password_hash,
            profile.nickname,
            nickname_key(&profile.nickname),
            profile.sex.as_str(),
            profile.email,
            profile.avatar,
            to_millis(profile.created_at),
            to_millis(profile.updated_at),
        ])
    })
    .map_err(db_error)
}

/// Inserts a room as it is (its seq too), like [`insert_user`].
fn insert_room(conn: &Connection, room: &RoomRecord, skip_existing: bool) -> Result<usize> {
    let on_conflict = on_conflict("identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO rooms ({ROOM_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) {on_conflict}"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            room.identity.to_string(),
            room.number,
            room.name,
            room.info,
            room.creator_identity.to_string(),
            room.room_type.as_str(),
            room.pair_key,
            room.seq,
            room.last_message_at.map(to_millis),
            to_millis(room.created_at),
            to_millis(room.updated_at),
        ])
    })
    .map_err(db_error)
}

fn insert_member(conn: &Connection, member: &MemberRecord, skip_existing: bool) -> Result<usize> {
    let on_conflict = on_conflict("user_identity, room_identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO room_members ({MEMBER_COLUMNS}) VALUES (?1, ?2, ?3, ?4) {on_conflict}"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            member.user_identity.to_string(),
            member.room_identity.to_string(),
            member.last_read_seq,
            to_millis(member.joined_at),
        ])
    })
    .map_err(db_error)
}

fn insert_stored_message(
    conn: &Connection,
    message: &MessageRecord,
    skip_existing: bool,
) -> Result<usize> {
    let on_conflict = on_conflict("identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) {on_conflict}"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            message.identity.to_string(),
            message.room_identity.to_string(),
            message.seq,
            message.sender_identity.to_string(),
            message.content,
            message.client_id,
            to_millis(message.created_at),
        ])
    })
    .map_err(db_error)
}

/// At most this many message inserts share one transaction: a burst of
/// senders costs one commit instead of one each, and the first of a batch
/// never waits for more than this many others.
const MAX_BATCH: usize = 256;

/// How many inserts may wait for the writer; beyond that, senders wait for
/// a place in the queue instead of memory growing.
const WRITE_QUEUE: usize = 1024;

/// What the writer makes of one message: the message as stored, whether
/// this request stored it, and for a send its sender.
type WriteOutcome = Result<(MessageRecord, bool, Option<Profile>)>;

/// One message for the writer, and where its outcome goes.
struct WriteRequest {
    message: NewMessage,
    /// Make the checks of [`Store::send_message`] first, in the same
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
fn start_writer(conn: Connection) -> std::io::Result<mpsc::Sender<WriteRequest>> {
    let (sender, receiver) = mpsc::channel(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || write_messages(conn, receiver))?;
    Ok(sender)
}

fn write_messages(mut conn: Connection, mut requests: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let_stragglers_in(&mut requests, &mut batch);
        let outcomes = write_batch(&mut conn, &batch);
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            // Ignored when the caller is gone: its message is stored all the same.
            request.reply.send(outcome).ok();
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
            Err(same_failure(&failure))
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

/// Another caller's copy of a batch's failure, which was logged once when made.
fn same_failure(failure: &Error) -> Error {
    match failure {
        Error::Unavailable(backend) => Error::Unavailable(backend),
        Error::Conflict(unique) => Error::Conflict(*unique),
        _ => Error::Internal(anyhow::anyhow!("a batch of message inserts failed")),
    }
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
/// [`Store::send_message`], in its order.
fn check_send(conn: &Connection, message: &NewMessage) -> Result<Profile> {
    let (room, member) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE identity = ?1),
                    EXISTS (SELECT 1 FROM room_members
                            WHERE room_identity = ?1 AND user_identity = ?2)",
        )
        .and_then(|mut statement| {
            statement.query_row(
                [
                    message.room_identity.to_string(),
                    message.sender_identity.to_string(),
                ],
                |row| Ok((row.get::<_, bool>(0)?, row.get::<_, bool>(1)?)),
            )
        })
        .map_err(db_error)?;
    if !room {
        return Err(Error::NotFound(Entity::Room));
    }
    if !member {
        return Err(Error::Forbidden);
    }
    profile_where(conn, "identity", message.sender_identity.to_string())?
        .ok_or(Error::Unauthenticated)
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
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE rooms SET seq = seq + 1, last_message_at = ?2
             WHERE identity = ?1
             RETURNING seq",
        )
        .and_then(|mut statement| {
            statement.query_row(
                params![
                    message.room_identity.to_string(),
                    to_millis(message.created_at)
                ],
                |row| row.get(0),
            )
        })
        .optional()
        .map_err(db_error)?
        .ok_or(Error::NotFound(Entity::Room))?;
    conn.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .and_then(|mut statement| {
        statement.execute(params![
            message.identity.to_string(),
            message.room_identity.to_string(),
            seq,
            message.sender_identity.to_string(),
            message.content,
            message.client_id,
            to_millis(message.created_at),
        ])
    })
    .map_err(db_error)?;
    let stored = MessageRecord {
        identity: message.identity,
        room_identity: message.room_identity,
        seq,
        sender_identity: message.sender_identity,
        content: message.content.clone(),
        client_id: message.client_id.clone(),
        created_at: message.created_at,
    };
    Ok((stored, true))
}

/// How many records an export reads ahead of the writer: enough to keep
/// both busy, few enough that memory does not grow with the store.
const EXPORT_BUFFER: usize = 256;

/// Sends every record to `sender`, all read inside one read transaction:
/// in WAL mode that is one snapshot of the whole database, so nothing
/// written meanwhile shows, and writers are not held up. Stops quietly
/// when the reader has gone.
fn export_all(
    pool: &Pool<SqliteConnectionManager>,
    sender: &tokio::sync::mpsc::Sender<Result<Record>>,
) -> Result<()> {
    let emit = |record| sender.blocking_send(Ok(record)).is_ok();
    let mut conn = pool.get().map_err(|e| Error::unavailable("sqlite", e))?;
    let tx = conn.transaction().map_err(db_error)?;
    let mut rooms = tx
        .prepare(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms ORDER BY identity"
        ))
        .map_err(db_error)?;
    let mut members = tx
        .prepare(&format!(
            "SELECT {MEMBER_COLUMNS} FROM room_members WHERE room_identity = ?1
             ORDER BY joined_at, rowid"
        ))
        .map_err(db_error)?;
    let mut messages = tx
        .prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_identity = ?1 ORDER BY seq"
        ))
        .map_err(db_error)?;
    let mut users = tx
        .prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY identity"
        ))
        .map_err(db_error)?;
    let mut room_rows = rooms.query([]).map_err(db_error)?;
    while let Some(row) = room_rows.next().map_err(db_error)? {
        let room = room_from_row(row).map_err(db_error)?;
        let identity = room.identity.to_string();
        if !emit(Record::Room(room)) {
            return Ok(());
        }
        for member in members
            .query_map([&identity], member_from_row)
            .map_err(db_error)?
        {
            if !emit(Record::Member(member.map_err(db_error)?)) {
                return Ok(());
            }
        }
        for message in messages
            .query_map([&identity], message_from_row)
            .map_err(db_error)?
        {
            if !emit(Record::Message(message.map_err(db_error)?)) {
                return Ok(());
            }
        }
    }
    for user in users.query_map([], user_from_row).map_err(db_error)? {
        if !emit(Record::User(user.map_err(db_error)?)) {
            return Ok(());
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error))
            .await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let user = user.clone();
        self.run(move |conn| insert_user(conn, &user, false).map(drop))
            .await
    }

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<Profile>> {
        self.run(move |conn| profile_where(conn, "identity", identity.to_string()))
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<Profile>> {
        let key = username_key(username);
        self.run(move |conn| profile_where(conn, "username_key", key))
            .await
    }

    async fn login_record(&self, username: &str) -> Result<Option<UserRecord>> {
        let key = username_key(username);
        self.run(move |conn| {
            one_where(
                conn,
                USER_COLUMNS,
                "users",
                "username_key",
                key,
                user_from_row,
            )
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<Profile>> {
        let email = email.to_owned();
        self.run(move |conn| profile_where(conn, "email", email))
            .await
    }

    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<Profile>> {
        let update = update.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let Some(mut user) = profile_where(&tx, "identity", identity.to_string())? else {
                return Ok(None);
            };
            if let Some(nickname) = update.nickname {
                user.nickname = nickname;
            }
            if let Some(sex) = update.sex {
                user.sex = sex;
            }
            if let Some(avatar) = update.avatar {
                user.avatar = avatar;
            }
            user.updated_at = update.updated_at;
            tx.execute(
                "UPDATE users SET nickname = ?2, nickname_key = ?3, sex = ?4, avatar = ?5,
                                  updated_at = ?6
                 WHERE identity = ?1",
                params![
                    identity.to_string(),
                    user.nickname,
                    nickname_key(&user.nickname),
                    user.sex.as_str(),
                    user.avatar,
                    to_millis(user.updated_at),
                ],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(Some(user))
        })
        .await
    }

    async fn users_by_identities(&self, identities: &[Uuid]) -> Result<Vec<Profile>> {
        let identities = distinct(identities);
        self.run(move |conn| {
            chunked(
                conn,
                &identities,
                |count| {
                    format!(
                        "SELECT {PROFILE_COLUMNS} FROM users WHERE identity IN ({})",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                profile_from_row,
            )
        })
        .await
    }

    async fn search_users(
        &self,
        prefix: &str,
        exclude: Uuid,
        limit: usize,
    ) -> Result<Vec<Profile>> {
        let prefix = nickname_key(prefix);
        let end = prefix_end(&prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let starts_with = |column: &str| match end {
                Some(_) => format!("({column} >= ?1 AND {column} < ?4)"),
                None => format!("{column} >= ?1"),
            };
            let sql = format!(
                "SELECT {PROFILE_COLUMNS} FROM users
                 WHERE ({} OR {}) AND identity <> ?2
                 ORDER BY username_key LIMIT ?3",
                starts_with("username_key"),
                starts_with("nickname_key"),
            );
            let mut values = vec![Value::Text(prefix), text(exclude), Value::Integer(limit)];
            values.extend(end.map(Value::Text));
            let mut statement = conn.prepare(&sql).map_err(db_error)?;
            let users = statement
                .query_map(params_from_iter(values), profile_from_row)
                .map_err(db_error)?;
            users.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn friends(&self, user: Uuid) -> Result<Vec<Profile>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {PROFILE_COLUMNS} FROM users WHERE identity IN (
                         SELECT other.user_identity
                         FROM room_members AS mine
                         JOIN rooms ON rooms.identity = mine.room_identity
                                   AND rooms.room_type = 'PRIVATE'
                         JOIN room_members AS other
                           ON other.room_identity = mine.room_identity
                          AND other.user_identity <> mine.user_identity
                         WHERE mine.user_identity = ?1
                     )
                     ORDER BY username_key"
                ))
                .map_err(db_error)?;
            let users = statement
                .query_map([user.to_string()], profile_from_row)
                .map_err(db_error)?;
            users.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn create_room(&self, room: &RoomRecord, members: &[Uuid]) -> Result<()> {
        let room = room.clone();
        let members = members.to_vec();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            insert_room(&tx, &room, false)?;
            {
                let mut insert = tx
                    .prepare(&format!(
                        "INSERT INTO room_members ({MEMBER_COLUMNS}) VALUES (?1, ?2, 0, ?3)"
                    ))
                    .map_err(db_error)?;
                for member in members {
                    insert
                        .execute(params![
                            member.to_string(),
                            room.identity.to_string(),
                            to_millis(room.created_at),
                        ])
                        .map_err(db_error)?;
                }
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn room(&self, identity: Uuid) -> Result<Option<RoomRecord>> {
        self.run(move |conn| room_where(conn, "identity", identity.to_string()))
            .await
    }

    async fn private_room(&self, pair_key: &str) -> Result<Option<RoomRecord>> {
        let pair_key = pair_key.to_owned();
        self.run(move |conn| room_where(conn, "pair_key", pair_key))
            .await
    }

    async fn rooms_of_user(&self, user: Uuid) -> Result<Vec<RoomRecord>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {ROOM_COLUMNS} FROM rooms
                     WHERE identity IN (
                         SELECT room_identity FROM room_members WHERE user_identity = ?1
                     )
                     ORDER BY COALESCE(last_message_at, created_at) DESC"
                ))
                .map_err(db_error)?;
            let rooms = statement
                .query_map([user.to_string()], room_from_row)
                .map_err(db_error)?;
            rooms.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn delete_room(&self, room: Uuid) -> Result<bool> {
        self.run(move |conn| {
            let deleted = conn
                .execute("DELETE FROM rooms WHERE identity = ?1", [room.to_string()])
                .map_err(db_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn member(&self, room: Uuid, user: Uuid) -> Result<Option<MemberRecord>> {
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM room_members
                 WHERE room_identity = ?1 AND user_identity = ?2"
            ))
            .and_then(|mut statement| {
                statement.query_row([room.to_string(), user.to_string()], member_from_row)
            })
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn memberships(&self, user: Uuid, rooms: &[Uuid]) -> Result<Vec<MemberRecord>> {
        let rooms = distinct(rooms);
        self.run(move |conn| {
            chunked(
                conn,
                &rooms,
                |count| {
                    format!(
                        "SELECT {MEMBER_COLUMNS} FROM room_members
                         WHERE user_identity = ? AND room_identity IN ({})",
                        marks(count)
                    )
                },
                |chunk| {
                    std::iter::once(text(user))
                        .chain(chunk.iter().copied().map(text))
                        .collect()
                },
                member_from_row,
            )
        })
        .await
    }

    async fn members_of_rooms(&self, rooms: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>> {
        let rooms = distinct(rooms);
        self.run(move |conn| {
            chunked(
                conn,
                &rooms,
                // Members who joined in the same millisecond (a room's first
                // members all do) keep the order they were inserted in.
                |count| {
                    format!(
                        "SELECT room_identity, user_identity FROM room_members
                         WHERE room_identity IN ({})
                         ORDER BY joined_at, rowid",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                |row| {
                    Ok((
                        parse_uuid(&row.get::<_, String>(0)?)?,
                        parse_uuid(&row.get::<_, String>(1)?)?,
                    ))
                },
            )
        })
        .await
    }

    async fn add_members(
        &self,
        room: Uuid,
        users: &[Uuid],
        joined_at: DateTime<Utc>,
    ) -> Result<Vec<Uuid>> {
        let users = distinct(users);
        self.run(move |conn| {
            // Immediate: no message may take a seq between reading the
            // room's seq and the new members starting from it.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let seq: i64 = tx
                .query_row(
                    "SELECT seq FROM rooms WHERE identity = ?1",
                    [room.to_string()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db_error)?
                .ok_or(Error::NotFound(Entity::Room))?;
            let mut added = Vec::new();
            {
                let mut insert = tx
                    .prepare(&format!(
                        "INSERT OR IGNORE INTO room_members ({MEMBER_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4)"
                    ))
                    .map_err(db_error)?;
                for user in users {
                    let inserted = insert
                        .execute(params![
                            user.to_string(),
                            room.to_string(),
                            seq,
                            to_millis(joined_at),
                        ])
                        .map_err(db_error)?;
                    if inserted == 1 {
                        added.push(user);
                    }
                }
            }
            tx.commit().map_err(db_error)?;
            Ok(added)
        })
        .await
    }

    async fn remove_member(&self, room: Uuid, user: Uuid) -> Result<Departure> {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let removed = tx
                .execute(
                    "DELETE FROM room_members WHERE room_identity = ?1 AND user_identity = ?2",
                    [room.to_string(), user.to_string()],
                )
                .map_err(db_error)?;
            if removed == 0 {
                return Ok(Departure::NotAMember);
            }
            let others_remain: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_identity = ?1)",
                    [room.to_string()],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            let departure = if others_remain {
                Departure::Left
            } else {
                tx.execute("DELETE FROM rooms WHERE identity = ?1", [room.to_string()])
                    .map_err(db_error)?;
                Departure::LeftAndRoomDeleted
            };
            tx.commit().map_err(db_error)?;
            Ok(departure)
        })
        .await
    }

    async fn mark_read(&self, room: Uuid, user: Uuid) -> Result<bool> {
        self.run(move |conn| {
            let marked = conn
                .execute(
                    "UPDATE room_members
                     SET last_read_seq = (SELECT seq FROM rooms WHERE identity = ?1)
                     WHERE room_identity = ?1 AND user_identity = ?2",
                    [room.to_string(), user.to_string()],
                )
                .map_err(db_error)?;
            Ok(marked > 0)
        })
        .await
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<(MessageRecord, bool)> {
        let (stored, created, _) = self.write(message, false).await?;
        Ok((stored, created))
    }

    async fn send_message(&self, message: &NewMessage) -> Result<Sent> {
        let (message, created, sender) = self.write(message, true).await?;
        let sender = sender.ok_or_else(|| {
            Error::internal(anyhow::anyhow!("a send came back without its sender"))
        })?;
        Ok(Sent {
            message,
            created,
            sender,
        })
    }

    async fn history(&self, room: Uuid, range: HistoryRange) -> Result<Vec<MessageRecord>> {
        let after = range.after.unwrap_or(i64::MIN);
        let before = range.before.unwrap_or(i64::MAX);
        let limit = i64::try_from(range.limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let order = if range.newest { "DESC" } else { "ASC" };
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE room_identity = ?1 AND seq > ?2 AND seq < ?3
                     ORDER BY seq {order} LIMIT ?4"
                ))
                .map_err(db_error)?;
            let mut messages = statement
                .query_map(
                    params![room.to_string(), after, before, limit],
                    message_from_row,
                )
                .map_err(db_error)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_error)?;
            if range.newest {
                messages.reverse();
            }
            Ok(messages)
        })
        .await
    }

    async fn messages_at(&self, positions: &[(Uuid, i64)]) -> Result<Vec<MessageRecord>> {
        let positions = distinct(positions);
        self.run(move |conn| {
            chunked(
                conn,
                &positions,
                |count| {
                    format!(
                        "SELECT {MESSAGE_COLUMNS}
                         FROM (VALUES {}) AS position
                         JOIN messages ON room_identity = position.column1
                                      AND seq = position.column2",
                        pairs(count)
                    )
                },
                |chunk| {
                    chunk
                        .iter()
                        .flat_map(|(room, seq)| [text(*room), Value::Integer(*seq)])
                        .collect()
                },
                message_from_row,
            )
        })
        .await
    }

    async fn unread_counts(
        &self,
        user: Uuid,
        memberships: &[MemberRecord],
    ) -> Result<HashMap<Uuid, u64>> {
        let read_up_to: Vec<(Uuid, i64)> = distinct(
            &memberships
                .iter()
                .map(|member| (member.room_identity, member.last_read_seq))
                .collect::<Vec<_>>(),
        );
        self.run(move |conn| {
            let counts = chunked(
                conn,
                &read_up_to,
                |count| {
                    format!(
                        "SELECT membership.column1, COUNT(*)
                         FROM (VALUES {}) AS membership
                         JOIN messages ON room_identity = membership.column1
                                      AND seq > membership.column2
                         WHERE sender_identity <> ?
                         GROUP BY membership.column1",
                        pairs(count)
                    )
                },
                |chunk| {
                    chunk
                        .iter()
                        .flat_map(|(room, seq)| [text(*room), Value::Integer(*seq)])
                        .chain(std::iter::once(text(user)))
                        .collect()
                },
                |row| {
                    Ok((
                        parse_uuid(&row.get::<_, String>(0)?)?,
                        row.get::<_, u64>(1)?,
                    ))
                },
            )?;
            Ok(counts.into_iter().collect())
        })
        .await
    }

    async fn room_by_number(&self, number: &str) -> Result<Option<RoomRecord>> {
        let number = number.to_owned();
        self.run(move |conn| room_where(conn, "number", number))
            .await
    }

    async fn counts(&self) -> Result<Counts> {
        self.run(|conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM rooms),
                        (SELECT COUNT(*) FROM room_members), (SELECT COUNT(*) FROM messages)",
                [],
                |row| {
                    Ok(Counts {
                        users: row.get(0)?,
                        rooms: row.get(1)?,
                        members: row.get(2)?,
                        messages: row.get(3)?,
                    })
                },
            )
            .map_err(db_error)
        })
        .await
    }

    fn export(&self) -> RecordStream {
        let pool = self.pool.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        tokio::task::spawn_blocking(move || {
            if let Err(error) = export_all(&pool, &sender) {
                // Ignored when the reader is gone: then nobody waits for it.
                sender.blocking_send(Err(error)).ok();
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }

    async fn import(&self, records: &[Record], skip_existing: bool) -> Result<Loaded> {
        let records = records.to_vec();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let mut loaded = Loaded::default();
            for record in &records {
                let written = match record {
                    Record::User(user) => insert_user(&tx, user, skip_existing)?,
                    Record::Room(room) => insert_room(&tx, room, skip_existing)?,
                    Record::Member(member) => insert_member(&tx, member, skip_existing)?,
                    Record::Message(message) => insert_stored_message(&tx, message, skip_existing)?,
                };
                if written == 0 {
                    loaded.skipped += 1;
                } else {
                    loaded.inserted += 1;
                }
            }
            tx.commit().map_err(db_error)?;
            Ok(loaded)
        })
        .await
    }
}
