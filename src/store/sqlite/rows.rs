//! Rows and records: the columns each table is read by, a row made into a
//! record, and a record written as a row, the same for a new record and an
//! imported one.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params, types::Type};
use uuid::Uuid;

use crate::{
    error::Result,
    store::{
        DepartureRecord, MemberChange, MemberRecord, MessageChange, MessageRecord, Profile,
        ReactionRecord, Role, RoomRecord, RoomType, Sex, UserRecord, nickname_key, username_key,
    },
};

use super::{schema::db_error, search::KEYS_PER_MILLISECOND};

pub fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub fn from_millis(millis: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(0, millis))
}

pub fn parse_uuid(text: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub const PROFILE_COLUMNS: &str =
    "identity, username, nickname, sex, email, avatar, created_at, updated_at";

pub fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
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
pub const USER_COLUMNS: &str =
    "identity, username, nickname, sex, email, avatar, created_at, updated_at, password_hash";

pub fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        profile: profile_from_row(row)?,
        password_hash: row.get(8)?,
    })
}

/// The one row of `table` whose `column` equals `value`, if any.
pub fn one_where<T>(
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

pub fn profile_where(conn: &Connection, column: &str, value: String) -> Result<Option<Profile>> {
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

pub const ROOM_COLUMNS: &str = "identity, number, name, info, creator_identity, room_type, pair_key, \
                            seq, last_message_at, created_at, updated_at, rev, updated_rev";

pub fn room_from_row(row: &Row<'_>) -> rusqlite::Result<RoomRecord> {
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
        rev: row.get(11)?,
        updated_rev: row.get(12)?,
    })
}

pub fn room_where(conn: &Connection, column: &str, value: String) -> Result<Option<RoomRecord>> {
    one_where(conn, ROOM_COLUMNS, "rooms", column, value, room_from_row)
}

fn optional_millis(value: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    value.map(from_millis).transpose()
}

fn optional_uuid(value: Option<String>) -> rusqlite::Result<Option<Uuid>> {
    value.as_deref().map(parse_uuid).transpose()
}

pub const MEMBER_COLUMNS: &str = "user_identity, room_identity, last_read_seq, joined_at, role, \
                                  last_read_at, joined_rev, rev, last_change";

pub fn member_from_row(row: &Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        user_identity: parse_uuid(&row.get::<_, String>(0)?)?,
        room_identity: parse_uuid(&row.get::<_, String>(1)?)?,
        last_read_seq: row.get(2)?,
        joined_at: from_millis(row.get(3)?)?,
        role: Role::from_stored(&row.get::<_, String>(4)?),
        last_read_at: optional_millis(row.get(5)?)?,
        joined_rev: row.get(6)?,
        rev: row.get(7)?,
        change: MemberChange::from_stored(&row.get::<_, String>(8)?),
    })
}

pub const MESSAGE_COLUMNS: &str = "identity, room_identity, seq, sender_identity, content, \
                                   client_id, created_at, reply_to, edited_at, deleted_at, \
                                   reactions, posted_rev, rev, last_change";

/// Reactions are kept as JSON, NULL while there are none (most messages).
pub fn reactions_to_stored(reactions: &[ReactionRecord]) -> Option<String> {
    match reactions.is_empty() {
        true => None,
        false => serde_json::to_string(reactions).ok(),
    }
}

fn reactions_from_stored(value: Option<&str>) -> rusqlite::Result<Vec<ReactionRecord>> {
    match value {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(10, Type::Text, Box::new(e))),
    }
}

/// The text at `column`, borrowed from the row: what is only parsed needs
/// no copy (a page of history reads thousands of these).
fn text_at<'row>(row: &'row Row<'_>, column: usize) -> rusqlite::Result<Option<&'row str>> {
    let conversion =
        |error| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(error));
    match row.get_ref(column)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        value => value.as_str().map(Some).map_err(conversion),
    }
}

/// The identity at `column`, parsed from the row's text in place.
fn uuid_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    parse_uuid(text_at(row, column)?.unwrap_or_default())
}

pub fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        identity: uuid_at(row, 0)?,
        room_identity: uuid_at(row, 1)?,
        seq: row.get(2)?,
        sender_identity: uuid_at(row, 3)?,
        content: row.get(4)?,
        client_id: row.get(5)?,
        created_at: from_millis(row.get(6)?)?,
        reply_to: text_at(row, 7)?.map(parse_uuid).transpose()?,
        edited_at: optional_millis(row.get(8)?)?,
        deleted_at: optional_millis(row.get(9)?)?,
        reactions: reactions_from_stored(text_at(row, 10)?)?,
        posted_rev: row.get(11)?,
        rev: row.get(12)?,
        change: MessageChange::from_stored(text_at(row, 13)?.unwrap_or_default()),
    })
}

pub const DEPARTURE_COLUMNS: &str = "room_identity, user_identity, removed_by, left_at, rev";

pub fn departure_from_row(row: &Row<'_>) -> rusqlite::Result<DepartureRecord> {
    Ok(DepartureRecord {
        room_identity: parse_uuid(&row.get::<_, String>(0)?)?,
        user_identity: parse_uuid(&row.get::<_, String>(1)?)?,
        removed_by: optional_uuid(row.get(2)?)?,
        left_at: from_millis(row.get(3)?)?,
        rev: row.get(4)?,
    })
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
pub fn insert_user(conn: &Connection, user: &UserRecord, skip_existing: bool) -> Result<usize> {
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
pub fn insert_room(conn: &Connection, room: &RoomRecord, skip_existing: bool) -> Result<usize> {
    let on_conflict = on_conflict("identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO rooms ({ROOM_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) {on_conflict}"
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
            room.rev,
            room.updated_rev,
        ])
    })
    .map_err(db_error)
}

pub fn insert_member(
    conn: &Connection,
    member: &MemberRecord,
    skip_existing: bool,
) -> Result<usize> {
    let on_conflict = on_conflict("user_identity, room_identity", skip_existing);
    conn.prepare_cached(&format!(
        "INSERT INTO room_members ({MEMBER_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {on_conflict}"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            member.user_identity.to_string(),
            member.room_identity.to_string(),
            member.last_read_seq,
            to_millis(member.joined_at),
            member.role.as_str(),
            member.last_read_at.map(to_millis),
            member.joined_rev,
            member.rev,
            member.change.as_str(),
        ])
    })
    .map_err(db_error)
}

/// Inserts a message, with its search key: the first free one of its
/// millisecond (`search.rs`), found in the unique index of the keys. Every
/// insert runs under the write lock, so two cannot take the same one.
pub fn insert_stored_message(
    conn: &Connection,
    message: &MessageRecord,
    skip_existing: bool,
) -> Result<usize> {
    let on_conflict = on_conflict("identity", skip_existing);
    let first_key = to_millis(message.created_at).saturating_mul(KEYS_PER_MILLISECOND);
    conn.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}, search_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 (SELECT COALESCE(MAX(search_key) + 1, ?15) FROM messages
                  WHERE search_key >= ?15 AND search_key < ?15 + {KEYS_PER_MILLISECOND}))
         {on_conflict}"
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
            message.reply_to.map(|reply_to| reply_to.to_string()),
            message.edited_at.map(to_millis),
            message.deleted_at.map(to_millis),
            reactions_to_stored(&message.reactions),
            message.posted_rev,
            message.rev,
            message.change.as_str(),
            first_key,
        ])
    })
    .map_err(db_error)
}

/// Inserts a departure, replacing the room's earlier one of the same user.
pub fn insert_departure(
    conn: &Connection,
    departure: &DepartureRecord,
    skip_existing: bool,
) -> Result<usize> {
    let verb = match skip_existing {
        true => "INSERT OR IGNORE",
        false => "INSERT OR REPLACE",
    };
    conn.prepare_cached(&format!(
        "{verb} INTO room_departures ({DEPARTURE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            departure.room_identity.to_string(),
            departure.user_identity.to_string(),
            departure.removed_by.map(|user| user.to_string()),
            to_millis(departure.left_at),
            departure.rev,
        ])
    })
    .map_err(db_error)
}

/// Takes the room's next revision; `None` when there is no such room.
pub fn next_rev(conn: &Connection, room: Uuid) -> Result<Option<i64>> {
    conn.prepare_cached("UPDATE rooms SET rev = rev + 1 WHERE identity = ?1 RETURNING rev")
        .and_then(|mut statement| statement.query_row([room.to_string()], |row| row.get(0)))
        .optional()
        .map_err(db_error)
}
