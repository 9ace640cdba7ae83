//! Durable state behind one trait, one module per backend.
//!
//! [`Store`] is what the domain needs from a database; `sqlite` (the embedded
//! default) and `mongo` implement it, and nothing outside this folder knows
//! which one is in use. Both create the same collections / tables and unique
//! indexes at start (DESIGN.md's data table): users, rooms, room_members and
//! messages. Uniqueness is the database's job, not a read-then-write in the
//! domain, so it holds under concurrent requests and across instances; a
//! violated unique index comes back as [`Error::Conflict`] naming the field.
//!
//! Timestamps are kept with millisecond precision (what MongoDB stores), so a
//! record reads back exactly as it was written.

mod mongo;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::{
    config::Config,
    error::{Error, Result},
};

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

/// The current time, at the precision the stores keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sex {
    Unknown,
    Male,
    Female,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Unknown => "UNKNOWN",
            Sex::Male => "MALE",
            Sex::Female => "FEMALE",
        }
    }

    /// Reads a stored value; anything unrecognised is `Unknown` rather than a failed read.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "MALE" => Sex::Male,
            "FEMALE" => Sex::Female,
            _ => Sex::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub identity: Uuid,
    /// As registered; unique ignoring case.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub nickname: String,
    pub sex: Sex,
    /// Lower-case; unique.
    pub email: String,
    pub avatar: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRecord {
    /// The form a username is unique in and looked up by.
    pub fn username_key(username: &str) -> String {
        username.to_ascii_lowercase()
    }
}

/// A change to a profile: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub nickname: Option<String>,
    pub sex: Option<Sex>,
    /// `Some(None)` removes the avatar.
    pub avatar: Option<Option<String>>,
    pub updated_at: DateTime<Utc>,
}

/// What the domain needs from a database.
///
/// Every method either does all it says or nothing. Errors: [`Error::Conflict`]
/// for a unique value taken, [`Error::Unavailable`] when the database cannot be
/// reached within the configured timeout, [`Error::Internal`] otherwise.
#[async_trait]
pub trait Store: Send + Sync {
    /// Succeeds when the database answers; `/readyz` asks this.
    async fn ping(&self) -> Result<()>;

    /// Inserts a new user. `Conflict` on `username` (ignoring case) or `email`.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<UserRecord>>;

    /// Looks a username up ignoring case.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;

    /// Looks an email up; the caller gives it lower-case.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;

    /// Applies a profile change; `None` when there is no such user.
    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<UserRecord>>;
}

/// Opens the store the configuration names: MongoDB when a URI is given, else
/// SQLite in the data dir. Either one creates its schema and indexes first.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.mongodb_uri {
        Some(uri) => Arc::new(
            MongoStore::connect(uri, &config.mongodb_database, config.store_timeout()).await?,
        ),
        None => Arc::new(
            SqliteStore::open(&config.data_dir.join("chatroom.db"), config.store_timeout()).await?,
        ),
    })
}

/// A unique-index violation on `field`, as the domain reports it.
fn conflict(field: &'static str) -> Error {
    Error::Conflict { field }
}
