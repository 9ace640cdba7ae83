//! The embedded default store: one SQLite file in the data dir, in WAL mode so
//! readers never wait for the writer.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool with a
//! connection from an r2d2 pool; the async runtime never waits on disk. The
//! one exception is storing messages: `writer` stores all of them on a
//! thread of its own, in group commits. `schema` makes the tables and reads
//! SQLite's failures, `rows` maps rows to records and back, `batches` reads
//! many keys in few statements, `search` keeps and reads the search index,
//! `transfer` moves a whole store; this file holds the store and its queries.

mod batches;
mod people;
mod rows;
mod schema;
mod search;
mod transfer;
mod writer;

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
    types::Value,
};
use rusqlite_migration::Migrations;
use uuid::Uuid;

use crate::{
    error::Problem,
    error::{Entity, Error, Result},
    store::{
        Counts, DepartureRecord, HistoryRange, Loaded, MemberChange, MemberRecord, MessageRecord,
        MessageRule, MessageScene, MessageSearch, NewMessage, Profile, ProfileUpdate, Record,
        RecordStream, Role, RoomChanges, RoomEdit, RoomRecord, RoomRule, RoomScene, Sent, Store,
        Stored, UserRecord, first_role, nickname_key, username_key,
    },
};

use self::{
    batches::{chunked, distinct, marks, pairs, prefix_end, text},
    rows::{
        DEPARTURE_COLUMNS, MEMBER_COLUMNS, MESSAGE_COLUMNS, PROFILE_COLUMNS, ROOM_COLUMNS,
        USER_COLUMNS, departure_from_row, insert_departure, insert_member, insert_room,
        insert_user, member_from_row, message_from_row, next_rev, one_where, parse_uuid,
        profile_from_row, profile_where, reactions_to_stored, room_from_row, room_where, to_millis,
        user_from_row,
    },
    schema::{MIGRATIONS, configure, db_error},
    writer::Writer,
};

pub struct SqliteStore {
    /// Every read, and the writes other than message inserts.
    pool: Pool<SqliteConnectionManager>,
    /// The thread that stores messages ([`writer`]).
    writer: Writer,
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
            // Whatever was queued and not indexed when the last process
            // stopped, or every message stored before search.
            search::index_queue(&mut conn)?;
            Ok(())
        })
        .await??;
        let writer = Connection::open(path)?;
        configure(&writer, timeout)?;
        let writer = writer::start(writer)?;
        Ok(Self { pool, writer })
    }

    /// Runs `work` in an immediate transaction on the blocking pool and
    /// commits it; a failure rolls all of it back. Immediate: it takes the
    /// write lock at once, so what `work` reads stays true until it commits.
    async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let done = work(&tx)?;
            tx.commit().map_err(db_error)?;
            Ok(done)
        })
        .await
    }

    /// The rows of `table` whose identity is among `identities`, in any
    /// order, in as few statements as the bound parameters allow.
    async fn by_identities<T: Send + 'static>(
        &self,
        columns: &'static str,
        table: &'static str,
        identities: &[Uuid],
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let identities = distinct(identities);
        self.run(move |conn| {
            chunked(
                conn,
                &identities,
                |count| {
                    format!(
                        "SELECT {columns} FROM {table} WHERE identity IN ({})",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                from_row,
            )
        })
        .await
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

fn read_member(conn: &Connection, room: Uuid, user: Uuid) -> Result<Option<MemberRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM room_members
         WHERE room_identity = ?1 AND user_identity = ?2"
    ))
    .and_then(|mut statement| {
        statement.query_row([room.to_string(), user.to_string()], member_from_row)
    })
    .optional()
    .map_err(db_error)
}

/// The members of `room`, in joining order.
fn members_in_order(conn: &Connection, room: Uuid) -> Result<Vec<MemberRecord>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM room_members WHERE room_identity = ?1
             ORDER BY joined_at, rowid"
        ))
        .map_err(db_error)?;
    let members = statement
        .query_map([room.to_string()], member_from_row)
        .map_err(db_error)?;
    members.collect::<rusqlite::Result<_>>().map_err(db_error)
}

fn write_member(conn: &Connection, member: &MemberRecord) -> Result<()> {
    conn.prepare_cached(
        "UPDATE room_members SET role = ?3, last_read_seq = ?4, last_read_at = ?5, rev = ?6,
                                 last_change = ?7
         WHERE room_identity = ?1 AND user_identity = ?2",
    )
    .and_then(|mut update| {
        update.execute(params![
            member.room_identity.to_string(),
            member.user_identity.to_string(),
            member.role.as_str(),
            member.last_read_seq,
            member.last_read_at.map(to_millis),
            member.rev,
            member.change.as_str(),
        ])
    })
    .map_err(db_error)
    .map(drop)
}

/// Makes one edit of [`Store::change_room`] at revision `rev`.
fn apply_room_edit(conn: &Connection, room: Uuid, edit: RoomEdit, rev: i64) -> Result<Stored> {
    match edit {
        RoomEdit::Rename { name, info, at } => {
            conn.execute(
                "UPDATE rooms SET name = ?2, info = ?3, updated_at = ?4, updated_rev = ?5
                 WHERE identity = ?1",
                params![room.to_string(), name, info, to_millis(at), rev],
            )
            .map_err(db_error)?;
            let record = room_where(conn, "identity", room.to_string())?
                .ok_or(Error::NotFound(Entity::Room))?;
            Ok(Stored::Room(record))
        }
        RoomEdit::SetRole { user, role } => {
            let mut member = read_member(conn, room, user)?
                .ok_or(Error::bad_input("username", Problem::NotAMember))?;
            member.role = role;
            member.rev = rev;
            member.change = MemberChange::Role;
            write_member(conn, &member)?;
            Ok(Stored::Member(member))
        }
        RoomEdit::Remove { user, by, at } => {
            let removed = conn
                .execute(
                    "DELETE FROM room_members WHERE room_identity = ?1 AND user_identity = ?2",
                    [room.to_string(), user.to_string()],
                )
                .map_err(db_error)?;
            if removed == 0 {
                return Err(Error::bad_input("username", Problem::NotAMember));
            }
            let departure = DepartureRecord {
                room_identity: room,
                user_identity: user,
                removed_by: by,
                left_at: at,
                rev,
            };
            insert_departure(conn, &departure, false)?;
            Ok(Stored::Departure(departure))
        }
    }
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
        self.transaction(move |tx| {
            let Some(mut user) = profile_where(tx, "identity", identity.to_string())? else {
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
            Ok(Some(user))
        })
        .await
    }

    async fn set_password_hash(&self, identity: Uuid, password_hash: &str) -> Result<bool> {
        let password_hash = password_hash.to_owned();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE identity = ?1",
                    params![identity.to_string(), password_hash],
                )
                .map_err(db_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn users_by_identities(&self, identities: &[Uuid]) -> Result<Vec<Profile>> {
        self.by_identities(PROFILE_COLUMNS, "users", identities, profile_from_row)
            .await
    }

    async fn search_users(
        &self,
        prefix: &str,
        exclude: &[Uuid],
        limit: usize,
    ) -> Result<Vec<Profile>> {
        let prefix = nickname_key(prefix);
        let end = prefix_end(&prefix);
        let exclude = distinct(exclude);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let starts_with = |column: &str| match end {
                Some(_) => format!("({column} >= ?1 AND {column} < ?3)"),
                None => format!("{column} >= ?1"),
            };
            // The excluded go in a bound JSON array: one statement however
            // many there are.
            let sql = format!(
                "SELECT {PROFILE_COLUMNS} FROM users
                 WHERE ({} OR {})
                   AND identity NOT IN (SELECT value FROM json_each(?4))
                 ORDER BY username_key LIMIT ?2",
                starts_with("username_key"),
                starts_with("nickname_key"),
            );
            let excluded: Vec<String> = exclude.iter().map(Uuid::to_string).collect();
            let excluded = serde_json::to_string(&excluded).map_err(Error::internal)?;
            let values = vec![
                Value::Text(prefix),
                Value::Integer(limit),
                end.map_or(Value::Null, Value::Text),
                Value::Text(excluded),
            ];
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
        self.transaction(move |tx| {
            insert_room(tx, &room, false)?;
            for (place, user) in members.into_iter().enumerate() {
                let role = first_role(room.room_type, place);
                let member =
                    MemberRecord::joining(room.identity, user, role, 0, 0, room.created_at);
                insert_member(tx, &member, false)?;
            }
            Ok(())
        })
        .await
    }

    async fn room(&self, identity: Uuid) -> Result<Option<RoomRecord>> {
        self.run(move |conn| room_where(conn, "identity", identity.to_string()))
            .await
    }

    async fn rooms_by_identities(&self, identities: &[Uuid]) -> Result<Vec<RoomRecord>> {
        self.by_identities(ROOM_COLUMNS, "rooms", identities, room_from_row)
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
        self.run(move |conn| read_member(conn, room, user)).await
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

    async fn room_counts(&self, users: &[Uuid]) -> Result<HashMap<Uuid, u64>> {
        let users = distinct(users);
        self.run(move |conn| {
            let counts = chunked(
                conn,
                &users,
                |count| {
                    format!(
                        "SELECT user_identity, COUNT(*) FROM room_members
                         WHERE user_identity IN ({}) GROUP BY user_identity",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                |row| {
                    Ok((
                        parse_uuid(&row.get::<_, String>(0)?)?,
                        row.get::<_, i64>(1)?,
                    ))
                },
            )?;
            Ok(counts
                .into_iter()
                .map(|(user, count)| (user, u64::try_from(count).unwrap_or(0)))
                .collect())
        })
        .await
    }

    async fn members_of_rooms(&self, rooms: &[Uuid]) -> Result<Vec<MemberRecord>> {
        let rooms = distinct(rooms);
        self.run(move |conn| {
            chunked(
                conn,
                &rooms,
                // Members who joined in the same millisecond (a room's first
                // members all do) keep the order they were inserted in.
                |count| {
                    format!(
                        "SELECT {MEMBER_COLUMNS} FROM room_members
                         WHERE room_identity IN ({})
                         ORDER BY joined_at, rowid",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                member_from_row,
            )
        })
        .await
    }

    async fn messages_by_identities(&self, identities: &[Uuid]) -> Result<Vec<MessageRecord>> {
        self.by_identities(MESSAGE_COLUMNS, "messages", identities, message_from_row)
            .await
    }

    async fn add_members(
        &self,
        room: Uuid,
        users: &[Uuid],
        joined_at: DateTime<Utc>,
    ) -> Result<Vec<MemberRecord>> {
        let users = users.to_vec();
        self.transaction(move |tx| {
            // The write lock is held from here: no message may take a seq
            // between reading the room's seq and the new members starting
            // from it.
            let seq = room_where(tx, "identity", room.to_string())?
                .ok_or(Error::NotFound(Entity::Room))?
                .seq;
            let mut added = Vec::new();
            for user in users {
                let member = read_member(tx, room, user)?;
                if member.is_some() {
                    continue;
                }
                let rev = next_rev(tx, room)?.ok_or(Error::NotFound(Entity::Room))?;
                let member = MemberRecord::joining(room, user, Role::Member, seq, rev, joined_at);
                insert_member(tx, &member, false)?;
                added.push(member);
            }
            Ok(added)
        })
        .await
    }

    async fn mark_read(
        &self,
        room: Uuid,
        user: Uuid,
        up_to: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Option<(MemberRecord, bool)>> {
        self.transaction(move |tx| {
            let Some(mut member) = read_member(tx, room, user)? else {
                return Ok(None);
            };
            let newest = room_where(tx, "identity", room.to_string())?
                .ok_or(Error::NotFound(Entity::Room))?
                .seq;
            let up_to = up_to.unwrap_or(newest).min(newest);
            if up_to <= member.last_read_seq {
                return Ok(Some((member, false)));
            }
            let rev = next_rev(tx, room)?.ok_or(Error::NotFound(Entity::Room))?;
            member.last_read_seq = up_to;
            member.last_read_at = Some(at);
            member.rev = rev;
            member.change = MemberChange::Read;
            write_member(tx, &member)?;
            Ok(Some((member, true)))
        })
        .await
    }

    async fn change_room(&self, room: Uuid, rule: Arc<RoomRule>) -> Result<RoomChanges> {
        self.transaction(move |tx| {
            let record = room_where(tx, "identity", room.to_string())?
                .ok_or(Error::NotFound(Entity::Room))?;
            let members = members_in_order(tx, room)?;
            let edits = rule(&RoomScene {
                room: record,
                members,
            })?;
            let mut changes = RoomChanges::default();
            for edit in edits {
                let rev = next_rev(tx, room)?.ok_or(Error::NotFound(Entity::Room))?;
                changes.changes.push(apply_room_edit(tx, room, edit, rev)?);
            }
            let remaining: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_identity = ?1)",
                    [room.to_string()],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            if !remaining {
                tx.execute("DELETE FROM rooms WHERE identity = ?1", [room.to_string()])
                    .map_err(db_error)?;
                changes.deleted = true;
            }
            Ok(changes)
        })
        .await
    }

    async fn message(&self, identity: Uuid) -> Result<Option<MessageRecord>> {
        self.run(move |conn| {
            one_where(
                conn,
                MESSAGE_COLUMNS,
                "messages",
                "identity",
                identity.to_string(),
                message_from_row,
            )
        })
        .await
    }

    async fn change_message(
        &self,
        identity: Uuid,
        actor: Uuid,
        rule: Arc<MessageRule>,
    ) -> Result<(MessageRecord, bool)> {
        self.transaction(move |tx| {
            let message = one_where(
                tx,
                MESSAGE_COLUMNS,
                "messages",
                "identity",
                identity.to_string(),
                message_from_row,
            )?
            .ok_or(Error::NotFound(Entity::Message))?;
            let room = message.room_identity;
            let scene = MessageScene {
                room: room_where(tx, "identity", room.to_string())?
                    .ok_or(Error::NotFound(Entity::Room))?,
                actor: read_member(tx, room, actor)?,
                message,
            };
            let Some(mut changed) = rule(&scene)? else {
                return Ok((scene.message, false));
            };
            changed.rev = next_rev(tx, room)?.ok_or(Error::NotFound(Entity::Room))?;
            tx.prepare_cached(
                "UPDATE messages SET content = ?2, edited_at = ?3, deleted_at = ?4,
                                     reactions = ?5, rev = ?6, last_change = ?7
                 WHERE identity = ?1",
            )
            .and_then(|mut update| {
                update.execute(params![
                    identity.to_string(),
                    changed.content,
                    changed.edited_at.map(to_millis),
                    changed.deleted_at.map(to_millis),
                    reactions_to_stored(&changed.reactions),
                    changed.rev,
                    changed.change.as_str(),
                ])
            })
            .map_err(db_error)?;
            Ok((changed, true))
        })
        .await
    }

    async fn changes(&self, room: Uuid, after: i64, limit: usize) -> Result<Vec<Stored>> {
        let limit_value = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let room_text = room.to_string();
            let mut changes: Vec<Stored> = Vec::new();
            let mut read =
                |columns: &str,
                 table: &str,
                 from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<Stored>| {
                    let mut statement = conn
                        .prepare_cached(&format!(
                            "SELECT {columns} FROM {table}
                         WHERE room_identity = ?1 AND rev > ?2 ORDER BY rev LIMIT ?3"
                        ))
                        .map_err(db_error)?;
                    let rows = statement
                        .query_map(params![room_text, after, limit_value], from_row)
                        .map_err(db_error)?;
                    for row in rows {
                        changes.push(row.map_err(db_error)?);
                    }
                    Ok::<_, Error>(())
                };
            read(MESSAGE_COLUMNS, "messages", |row| {
                message_from_row(row).map(Stored::Message)
            })?;
            read(MEMBER_COLUMNS, "room_members", |row| {
                member_from_row(row).map(Stored::Member)
            })?;
            read(DEPARTURE_COLUMNS, "room_departures", |row| {
                departure_from_row(row).map(Stored::Departure)
            })?;
            if let Some(record) = room_where(conn, "identity", room_text.clone())?
                && record.updated_rev > after
            {
                changes.push(Stored::Room(record));
            }
            changes.sort_by_key(Stored::rev);
            changes.truncate(limit);
            Ok(changes)
        })
        .await
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<(MessageRecord, bool)> {
        let (stored, created, _) = self.writer.write(message, false).await?;
        Ok((stored, created))
    }

    async fn send_message(&self, message: &NewMessage) -> Result<Sent> {
        Sent::of(self.writer.write(message, true).await)
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

    async fn search_messages(&self, search: &MessageSearch) -> Result<Vec<MessageRecord>> {
        let request = search.clone();
        self.run(move |conn| search::search(conn, &request)).await
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
        transfer::export(self.pool.clone())
    }

    async fn import(&self, records: &[Record], skip_existing: bool) -> Result<Loaded> {
        let records = records.to_vec();
        self.transaction(move |tx| transfer::import(tx, &records, skip_existing))
            .await
    }
}
