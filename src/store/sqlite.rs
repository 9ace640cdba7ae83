//! The embedded default store: one SQLite file in the data dir, in WAL mode so
//! readers never wait for the writer.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool with a
//! connection from an r2d2 pool; the async runtime never waits on disk.

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use uuid::Uuid;

use super::{ProfileUpdate, Sex, Store, UserRecord, conflict};
use crate::error::{Error, Result};

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

/// Which input field a unique column stands for, to name it in `CONFLICT`.
const UNIQUE_COLUMNS: &[(&str, &str)] =
    &[("users.username_key", "username"), ("users.email", "email")];

pub struct SqliteStore {
    pool: Pool<SqliteConnectionManager>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let busy_ms = timeout.as_millis();
        let manager = SqliteConnectionManager::file(path).with_init(move |c| {
            c.execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = {busy_ms};"
            ))
        });
        let pool = Pool::builder()
            .max_size(8)
            .connection_timeout(timeout)
            .build(manager)?;
        let store = Self { pool };
        let migrate = store.pool.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = migrate.get()?;
            Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
            Ok(())
        })
        .await??;
        Ok(store)
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

/// Maps a SQLite failure: a unique violation becomes `Conflict` on its field,
/// a busy database `Unavailable`, the rest `Internal`.
fn db_error(error: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, Some(message)) = &error {
        match failure.code {
            ErrorCode::ConstraintViolation => {
                if let Some((_, field)) = UNIQUE_COLUMNS
                    .iter()
                    .find(|(column, _)| message.contains(column))
                {
                    return conflict(field);
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

const USER_COLUMNS: &str =
    "identity, username, password_hash, nickname, sex, email, avatar, created_at, updated_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        identity: parse_uuid(&row.get::<_, String>(0)?)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        nickname: row.get(3)?,
        sex: Sex::from_stored(&row.get::<_, String>(4)?),
        email: row.get(5)?,
        avatar: row.get(6)?,
        created_at: from_millis(row.get(7)?)?,
        updated_at: from_millis(row.get(8)?)?,
    })
}

fn user_where(conn: &Connection, condition: &str, value: String) -> Result<Option<UserRecord>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE {condition} = ?1"),
        [value],
        user_from_row,
    )
    .optional()
    .map_err(db_error)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error))
            .await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let user = user.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO users (identity, username, username_key, password_hash, nickname,
                                    nickname_key, sex, email, avatar, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    user.identity.to_string(),
                    user.username,
                    UserRecord::username_key(&user.username),
                    user.password_hash,
                    user.nickname,
                    user.nickname.to_lowercase(),
                    user.sex.as_str(),
                    user.email,
                    user.avatar,
                    to_millis(user.created_at),
                    to_millis(user.updated_at),
                ],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<UserRecord>> {
        self.run(move |conn| user_where(conn, "identity", identity.to_string()))
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let key = UserRecord::username_key(username);
        self.run(move |conn| user_where(conn, "username_key", key))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let email = email.to_owned();
        self.run(move |conn| user_where(conn, "email", email)).await
    }

    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<UserRecord>> {
        let update = update.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let Some(mut user) = user_where(&tx, "identity", identity.to_string())? else {
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
                    user.nickname.to_lowercase(),
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
}
