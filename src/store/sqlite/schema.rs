//! The database file's schema and what its failures mean: the migrations
//! that make it, how each connection is set up, and the mapping of a
//! violated constraint or a busy database to the domain's errors.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use rusqlite_migration::M;

use crate::error::{Error, Unique};

/// Schema versions, applied in order and recorded in `PRAGMA user_version`.
/// Append new steps; never edit a released one.
pub const MIGRATIONS: &[M<'static>] = &[
    M::up(
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
    ),
    // Version 2: room events. Every change of a room takes its next `rev`;
    // messages and members keep the revision of their last change (and the
    // change), departures are kept, and a room's changes after a revision
    // are read by the `*_rev` indexes. A room of version 1 goes on from its
    // seq: its messages' revisions are their seqs.
    M::up(
        "ALTER TABLE rooms ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN updated_rev INTEGER NOT NULL DEFAULT 0;
    UPDATE rooms SET rev = seq;

    ALTER TABLE room_members ADD COLUMN role TEXT NOT NULL DEFAULT 'MEMBER';
    ALTER TABLE room_members ADD COLUMN last_read_at INTEGER;
    ALTER TABLE room_members ADD COLUMN joined_rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE room_members ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE room_members ADD COLUMN last_change TEXT NOT NULL DEFAULT 'JOINED';
    UPDATE room_members SET role = 'OWNER' WHERE rowid IN (
        SELECT member FROM (
            SELECT member.rowid AS member,
                   ROW_NUMBER() OVER (
                       PARTITION BY member.room_identity
                       ORDER BY member.user_identity = room.creator_identity DESC,
                                member.joined_at, member.rowid
                   ) AS place
            FROM room_members AS member
            JOIN rooms AS room ON room.identity = member.room_identity
            WHERE room.room_type = 'GROUP'
        ) WHERE place = 1
    );
    CREATE INDEX room_members_rev ON room_members (room_identity, rev);

    ALTER TABLE messages ADD COLUMN reply_to TEXT;
    ALTER TABLE messages ADD COLUMN edited_at INTEGER;
    ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
    ALTER TABLE messages ADD COLUMN reactions TEXT;
    ALTER TABLE messages ADD COLUMN posted_rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN last_change TEXT NOT NULL DEFAULT 'POSTED';
    UPDATE messages SET posted_rev = seq, rev = seq;
    CREATE INDEX messages_rev ON messages (room_identity, rev);

    CREATE TABLE room_departures (
        room_identity TEXT NOT NULL REFERENCES rooms (identity) ON DELETE CASCADE,
        user_identity TEXT NOT NULL,
        removed_by    TEXT,
        left_at       INTEGER NOT NULL,
        rev           INTEGER NOT NULL,
        PRIMARY KEY (room_identity, user_identity)
    );
    CREATE INDEX room_departures_rev ON room_departures (room_identity, rev);",
    ),
    // Version 3: people. Blocks; and per user the digest setting, the
    // language of the last login, and presence as the store keeps it (one
    // write per coming or going, not per connection): `online`, `seen_at`
    // (the last connection's close), `away_since` (that, or registration
    // while null) and whether this absence's digest is done or was looked
    // at.
    M::up(
        "CREATE TABLE blocks (
        blocker_identity TEXT NOT NULL,
        blocked_identity TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        PRIMARY KEY (blocker_identity, blocked_identity)
    );
    CREATE INDEX blocks_blocked ON blocks (blocked_identity);

    ALTER TABLE users ADD COLUMN email_digest INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
    ALTER TABLE users ADD COLUMN online INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN seen_at INTEGER;
    ALTER TABLE users ADD COLUMN away_since INTEGER;
    ALTER TABLE users ADD COLUMN digest_done INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN digest_checked_at INTEGER;
    CREATE INDEX users_digests ON users (coalesce(away_since, created_at))
        WHERE online = 0 AND digest_done = 0 AND email_digest = 1;",
    ),
    // Version 4: search (`search.rs`). Every message gets its search key
    // (its millisecond times 2^21, `KEYS_PER_MILLISECOND`, plus its place
    // among that millisecond's messages in the order they were stored);
    // every message not deleted is queued for the FTS5 index, which the
    // store fills when it opens. From then on the triggers queue each new
    // message, and take one edited or deleted out of the index (or the
    // queue) and queue it again while it is not deleted. The prefix
    // indexes (1 to 3 characters) make a query of short word beginnings
    // one read of the index instead of a merge of every word they begin
    // (docs/perf.md).
    M::up(
        "ALTER TABLE messages ADD COLUMN search_key INTEGER;
    UPDATE messages SET search_key = keyed.search_key
    FROM (
        SELECT rowid AS row,
               created_at * 2097152
                   + ROW_NUMBER() OVER (PARTITION BY created_at ORDER BY rowid) - 1 AS search_key
        FROM messages
    ) AS keyed
    WHERE messages.rowid = keyed.row;
    CREATE UNIQUE INDEX messages_search_key ON messages (search_key);

    CREATE VIRTUAL TABLE message_search USING fts5(
        room, words,
        content = '', contentless_delete = 1, tokenize = 'ascii', prefix = '1 2 3'
    );
    CREATE TABLE message_search_pending (search_key INTEGER PRIMARY KEY);
    INSERT INTO message_search_pending (search_key)
    SELECT search_key FROM messages WHERE deleted_at IS NULL;

    CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
    WHEN new.deleted_at IS NULL BEGIN
        INSERT INTO message_search_pending (search_key) VALUES (new.search_key);
    END;
    CREATE TRIGGER messages_search_change AFTER UPDATE OF content, deleted_at ON messages
    WHEN old.content IS NOT new.content OR old.deleted_at IS NOT new.deleted_at BEGIN
        DELETE FROM message_search
        WHERE rowid = old.search_key AND old.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM message_search_pending
                          WHERE search_key = old.search_key);
        DELETE FROM message_search_pending WHERE search_key = old.search_key;
        INSERT INTO message_search_pending (search_key)
        SELECT new.search_key WHERE new.deleted_at IS NULL;
    END;
    CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
    WHEN old.deleted_at IS NULL BEGIN
        DELETE FROM message_search
        WHERE rowid = old.search_key
          AND NOT EXISTS (SELECT 1 FROM message_search_pending
                          WHERE search_key = old.search_key);
        DELETE FROM message_search_pending WHERE search_key = old.search_key;
    END;",
    ),
];

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
        "room_departures.room_identity, room_departures.user_identity" => Unique::Identity,
        "room_members.user_identity, room_members.room_identity" => Unique::Membership,
        "messages.room_identity, messages.sender_identity, messages.client_id" => Unique::ClientId,
        "messages.room_identity, messages.seq" => Unique::Seq,
        "blocks.blocker_identity, blocks.blocked_identity" => Unique::Block,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use rusqlite_migration::Migrations;

    use super::{super::search, MIGRATIONS};

    /// A database of version 1 with a group whose creator left, a group
    /// whose creator stayed, and a PRIVATE room, each with messages.
    fn version_1() -> Connection {
        let mut conn = Connection::open_in_memory().expect("a database");
        Migrations::from_slice(MIGRATIONS)
            .to_version(&mut conn, 1)
            .expect("version 1");
        conn.execute_batch(
            "INSERT INTO rooms VALUES
                 ('left', '1', 'a', '', 'ann', 'GROUP', NULL, 2, NULL, 0, 0),
                 ('kept', '2', 'b', '', 'ann', 'GROUP', NULL, 1, NULL, 0, 0),
                 ('pair', '3', '', '', 'ann', 'PRIVATE', 'ann:bob', 1, NULL, 0, 0);
             INSERT INTO room_members VALUES
                 ('bob', 'left', 0, 1), ('cat', 'left', 0, 2),
                 ('cat', 'kept', 0, 1), ('ann', 'kept', 0, 1),
                 ('ann', 'pair', 0, 0), ('bob', 'pair', 0, 0);
             INSERT INTO messages VALUES
                 ('m1', 'left', 1, 'bob', 'one', NULL, 0),
                 ('m2', 'left', 2, 'cat', 'two', NULL, 0),
                 ('m3', 'kept', 1, 'ann', 'three', NULL, 0),
                 ('m4', 'pair', 1, 'ann', 'four', NULL, 0);",
        )
        .expect("version-1 rows");
        conn
    }

    #[test]
    fn version_2_gives_each_group_an_owner_and_goes_on_from_each_rooms_seq() {
        let mut conn = version_1();
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .expect("version 2");

        let owners: Vec<(String, String)> = conn
            .prepare(
                "SELECT room_identity, user_identity FROM room_members
                 WHERE role = 'OWNER' ORDER BY room_identity",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .expect("owners");
        assert_eq!(
            owners,
            [
                ("kept".to_owned(), "ann".to_owned()),
                ("left".to_owned(), "bob".to_owned())
            ],
            "the creator, else the first to join; none in a PRIVATE room"
        );
        let revs: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT seq, posted_rev, rev FROM messages ORDER BY identity")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect()
            })
            .expect("revisions");
        assert_eq!(revs, [(1, 1, 1), (2, 2, 2), (1, 1, 1), (1, 1, 1)]);
        let rooms: Vec<(i64, i64)> = conn
            .prepare("SELECT seq, rev FROM rooms ORDER BY identity")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .expect("rooms");
        assert_eq!(rooms, [(1, 1), (2, 2), (1, 1)]);
    }

    /// The keys of the messages found in the index by `query`.
    fn indexed(conn: &Connection, query: &str) -> Vec<i64> {
        conn.prepare("SELECT rowid FROM message_search WHERE message_search MATCH ?1")
            .and_then(|mut statement| statement.query_map([query], |row| row.get(0))?.collect())
            .expect("a search")
    }

    /// The keys of the messages queued for the index.
    fn queued(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT search_key FROM message_search_pending ORDER BY search_key")
            .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
            .expect("the queue")
    }

    #[test]
    fn version_3_keys_and_queues_every_message_not_deleted() {
        let mut conn = version_1();
        Migrations::from_slice(MIGRATIONS)
            .to_version(&mut conn, 2)
            .expect("version 2");
        conn.execute(
            "UPDATE messages SET content = '', deleted_at = 5 WHERE identity = 'm2'",
            [],
        )
        .expect("a deleted message");
        conn.execute(
            "UPDATE messages SET content = '说中文吧 Hello', created_at = 7 WHERE identity = 'm4'",
            [],
        )
        .expect("a message of its own millisecond");
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .expect("the latest version");

        let keys: Vec<(String, i64)> = conn
            .prepare("SELECT identity, search_key FROM messages ORDER BY identity")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .expect("keys");
        let at_7 = 7 * search::KEYS_PER_MILLISECOND;
        assert_eq!(
            keys,
            [
                ("m1".to_owned(), 0),
                ("m2".to_owned(), 1),
                ("m3".to_owned(), 2),
                ("m4".to_owned(), at_7)
            ],
            "a millisecond's messages in the order they were stored"
        );
        assert_eq!(queued(&conn), [0, 2, at_7], "all but the deleted one");

        assert_eq!(search::index_pending(&conn, 100).expect("indexed"), 3);

        assert!(queued(&conn).is_empty());
        assert_eq!(
            indexed(&conn, "words : \"hel\"* AND words : \"中 文\""),
            [at_7]
        );
        assert_eq!(indexed(&conn, "words : \"three\""), [2]);
        assert!(indexed(&conn, "words : \"two\"").is_empty(), "deleted");
    }

    #[test]
    fn the_triggers_keep_the_index_and_its_queue_in_step_with_every_write() {
        let mut conn = version_1();
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .expect("the latest version");
        search::index_pending(&conn, 100).expect("indexed");

        conn.execute_batch(
            "UPDATE messages SET reactions = '[]' WHERE identity = 'm1';
             INSERT INTO messages (identity, room_identity, seq, sender_identity, content,
                                   created_at, search_key)
             VALUES ('m5', 'kept', 2, 'ann', 'new', 9, 99);",
        )
        .expect("a reaction and a new message");
        assert_eq!(queued(&conn), [99], "the new message, not the reaction");
        assert_eq!(indexed(&conn, "one"), [0]);

        conn.execute_batch(
            "UPDATE messages SET content = 'edited' WHERE identity = 'm1';
             UPDATE messages SET content = '', deleted_at = 1 WHERE identity = 'm5';",
        )
        .expect("an edit and a deletion");
        assert!(indexed(&conn, "one").is_empty(), "the old words at once");
        assert_eq!(queued(&conn), [0], "the edited one, not the deleted one");

        search::index_pending(&conn, 100).expect("indexed");
        assert_eq!(indexed(&conn, "edited"), [0]);

        conn.execute_batch(
            "INSERT INTO messages (identity, room_identity, seq, sender_identity, content,
                                   created_at, search_key)
             VALUES ('m6', 'kept', 3, 'ann', 'queued', 9, 100);
             PRAGMA foreign_keys = ON;
             DELETE FROM rooms;",
        )
        .expect("every room deleted");
        assert!(
            indexed(&conn, "room : (left OR kept OR pair)").is_empty(),
            "a room's messages leave the index with it"
        );
        assert!(queued(&conn).is_empty(), "and the queue");
    }
}
