//! A whole store moved out and in (`chatroom export` and `import`).

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::{
    error::{Error, Result},
    store::{BlockRecord, Loaded, Record, RecordStream, SettingsRecord, revisions_by_room},
};

use super::{
    people::{lang_of, lang_to_stored},
    rows::{
        DEPARTURE_COLUMNS, MEMBER_COLUMNS, MESSAGE_COLUMNS, ROOM_COLUMNS, USER_COLUMNS,
        departure_from_row, from_millis, insert_departure, insert_member, insert_room,
        insert_stored_message, insert_user, member_from_row, message_from_row, parse_uuid,
        room_from_row, to_millis, user_from_row,
    },
    schema::db_error,
    search,
};

/// How many records an export reads ahead of the writer: enough to keep
/// both busy, few enough that memory does not grow with the store.
const EXPORT_BUFFER: usize = 256;

/// Every record, read on the blocking pool ahead of the reader by at most
/// [`EXPORT_BUFFER`]; see [`export_all`].
pub fn export(pool: Pool<SqliteConnectionManager>) -> RecordStream {
    let (sender, receiver) = mpsc::channel(EXPORT_BUFFER);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = export_all(&pool, &sender) {
            // Ignored when the reader is gone: then nobody waits for it.
            sender.blocking_send(Err(error)).ok();
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

/// Sends every record to `sender`, all read inside one read transaction:
/// in WAL mode that is one snapshot of the whole database, so nothing
/// written meanwhile shows, and writers are not held up. Stops quietly
/// when the reader has gone.
fn export_all(
    pool: &Pool<SqliteConnectionManager>,
    sender: &mpsc::Sender<Result<Record>>,
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
    let mut departures = tx
        .prepare(&format!(
            "SELECT {DEPARTURE_COLUMNS} FROM room_departures WHERE room_identity = ?1 ORDER BY rev"
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
        for departure in departures
            .query_map([&identity], departure_from_row)
            .map_err(db_error)?
        {
            if !emit(Record::Departure(departure.map_err(db_error)?)) {
                return Ok(());
            }
        }
    }
    for user in users.query_map([], user_from_row).map_err(db_error)? {
        if !emit(Record::User(user.map_err(db_error)?)) {
            return Ok(());
        }
    }
    let mut blocks = tx
        .prepare(
            "SELECT blocker_identity, blocked_identity, created_at FROM blocks
             ORDER BY blocker_identity, blocked_identity",
        )
        .map_err(db_error)?;
    let block_rows = blocks
        .query_map([], |row| {
            Ok(BlockRecord {
                blocker: parse_uuid(&row.get::<_, String>(0)?)?,
                blocked: parse_uuid(&row.get::<_, String>(1)?)?,
                created_at: from_millis(row.get(2)?)?,
            })
        })
        .map_err(db_error)?;
    for block in block_rows {
        if !emit(Record::Block(block.map_err(db_error)?)) {
            return Ok(());
        }
    }
    let mut settings = tx
        .prepare(
            "SELECT identity, email_digest, language FROM users
             WHERE email_digest = 0 OR language <> 'en' ORDER BY identity",
        )
        .map_err(db_error)?;
    let setting_rows = settings
        .query_map([], |row| {
            Ok(SettingsRecord {
                user: parse_uuid(&row.get::<_, String>(0)?)?,
                email_digest: row.get(1)?,
                lang: lang_of(&row.get::<_, String>(2)?),
            })
        })
        .map_err(db_error)?;
    for setting in setting_rows {
        if !emit(Record::Settings(setting.map_err(db_error)?)) {
            return Ok(());
        }
    }
    Ok(())
}

fn insert_block(conn: &Connection, block: &BlockRecord, skip_existing: bool) -> Result<usize> {
    let on_conflict = match skip_existing {
        true => "ON CONFLICT DO NOTHING",
        false => "",
    };
    conn.execute(
        &format!(
            "INSERT INTO blocks (blocker_identity, blocked_identity, created_at)
             VALUES (?1, ?2, ?3) {on_conflict}"
        ),
        rusqlite::params![
            block.blocker.to_string(),
            block.blocked.to_string(),
            to_millis(block.created_at)
        ],
    )
    .map_err(db_error)
}

fn apply_settings(conn: &Connection, settings: &SettingsRecord) -> Result<usize> {
    conn.execute(
        "UPDATE users SET email_digest = ?2, language = ?3 WHERE identity = ?1",
        rusqlite::params![
            settings.user.to_string(),
            settings.email_digest,
            lang_to_stored(settings.lang)
        ],
    )
    .map_err(db_error)
}

/// Writes `records` as they are, in the caller's transaction.
pub fn import(conn: &Connection, records: &[Record], skip_existing: bool) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    for record in records {
        let written = match record {
            Record::User(user) => insert_user(conn, user, skip_existing)?,
            Record::Room(room) => insert_room(conn, room, skip_existing)?,
            Record::Member(member) => insert_member(conn, member, skip_existing)?,
            Record::Message(message) => insert_stored_message(conn, message, skip_existing)?,
            Record::Departure(departure) => insert_departure(conn, departure, skip_existing)?,
            Record::Block(block) => insert_block(conn, block, skip_existing)?,
            Record::Settings(settings) => apply_settings(conn, settings)?,
        };
        if written == 0 {
            loaded.skipped += 1;
        } else {
            loaded.inserted += 1;
        }
    }
    for (room, rev) in revisions_by_room(records) {
        conn.execute(
            "UPDATE rooms SET rev = MAX(rev, ?2) WHERE identity = ?1",
            rusqlite::params![room.to_string(), rev],
        )
        .map_err(db_error)?;
    }
    // A batch is hundreds of messages: indexed at once, in its transaction.
    search::index_pending(conn, usize::MAX)?;
    Ok(loaded)
}
