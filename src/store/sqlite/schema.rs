//! The database file's schema and what its failures mean: the migrations
//! that make it, how each connection is set up, and the mapping of a
//! violated constraint or a busy database to the domain's errors.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use rusqlite_migration::M;

use crate::error::{Error, Unique};

/// Schema versions, applied in order and recorded in `PRAGMA user_version`.
/// Append new steps; never edit a released one.
pub const MIGRATIONS: &[M<'static>] = &[M::up(
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

/// What every connection is set to. WAL lets readers go on while one
/// writer writes. In WAL mode `synchronous = NORMAL` syncs the log to disk at
/// checkpoints rather than at every commit: a committed write survives the
/// process crashing or being killed, and the file is never corrupted, but the
/// last commits before a power loss or an OS crash may be rolled back. That
/// is the trade taken for chat messages; `FULL` would cost an fsync per commit.
pub fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
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
pub fn db_error(error: rusqlite::Error) -> Error {
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
