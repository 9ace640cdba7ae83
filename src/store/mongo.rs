//! The production store: MongoDB through the official driver.
//!
//! Indexes are created at start (creating an existing index is a no-op), so a
//! fresh database and an upgraded one end up the same. Every call is bounded
//! by the configured store timeout: a MongoDB that is down costs a client a
//! few seconds and an `INTERNAL` error, never a hung request.

use std::{future::IntoFuture, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Client, Collection, Database, IndexModel,
    bson::{self, Document, doc},
    error::{ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions, ReturnDocument},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProfileUpdate, Sex, Store, UserRecord, conflict};
use crate::error::{Error, Result};

/// MongoDB's code for a duplicate key in a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// Which input field a unique index stands for, to name it in `CONFLICT`.
const UNIQUE_INDEXES: &[(&str, &str)] =
    &[("users_username_key", "username"), ("users_email", "email")];

pub struct MongoStore {
    db: Database,
    users: Collection<UserDoc>,
    timeout: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserDoc {
    identity: String,
    username: String,
    username_key: String,
    password_hash: String,
    nickname: String,
    nickname_key: String,
    sex: Sex,
    email: String,
    avatar: Option<String>,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
}

impl UserDoc {
    fn from_record(user: &UserRecord) -> Self {
        Self {
            identity: user.identity.to_string(),
            username: user.username.clone(),
            username_key: UserRecord::username_key(&user.username),
            password_hash: user.password_hash.clone(),
            nickname: user.nickname.clone(),
            nickname_key: user.nickname.to_lowercase(),
            sex: user.sex,
            email: user.email.clone(),
            avatar: user.avatar.clone(),
            created_at: to_bson_time(user.created_at),
            updated_at: to_bson_time(user.updated_at),
        }
    }

    fn into_record(self) -> Result<UserRecord> {
        Ok(UserRecord {
            identity: Uuid::parse_str(&self.identity).map_err(Error::internal)?,
            username: self.username,
            password_hash: self.password_hash,
            nickname: self.nickname,
            sex: self.sex,
            email: self.email,
            avatar: self.avatar,
            created_at: from_bson_time(self.created_at)?,
            updated_at: from_bson_time(self.updated_at)?,
        })
    }
}

fn to_bson_time(time: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(time.timestamp_millis())
}

fn from_bson_time(time: bson::DateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored time out of range: {time}")))
}

fn unique(keys: Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .build(),
        )
        .build()
}

fn plain(keys: Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).build())
        .build()
}

/// A unique index that only covers documents where `field` is a string, so
/// documents without it never collide (PRIVATE-only `pair_key`, optional `client_id`).
fn unique_where_string(keys: Document, name: &str, field: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .partial_filter_expression(doc! { field: { "$type": "string" } })
                .build(),
        )
        .build()
}

/// Maps a driver failure: a duplicate key becomes `Conflict` on its field, a
/// server that cannot be reached `Unavailable`, the rest `Internal`.
fn db_error(error: mongodb::error::Error) -> Error {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) if write.code == DUPLICATE_KEY => {
            match UNIQUE_INDEXES
                .iter()
                .find(|(index, _)| write.message.contains(index))
            {
                Some((_, field)) => conflict(field),
                None => Error::internal(error),
            }
        }
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => Error::unavailable("mongodb", error),
        _ => Error::internal(error),
    }
}

impl MongoStore {
    /// Connects and creates the indexes of DESIGN.md's data table.
    pub async fn connect(uri: &str, database: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut options = ClientOptions::parse(uri).await?;
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.app_name.get_or_insert_with(|| "chatroom".into());
        let db = Client::with_options(options)?.database(database);
        let store = Self {
            users: db.collection("users"),
            db,
            timeout,
        };
        store.create_indexes().await?;
        Ok(store)
    }

    async fn create_indexes(&self) -> anyhow::Result<()> {
        let indexes: [(&str, Vec<IndexModel>); 4] = [
            (
                "users",
                vec![
                    unique(doc! { "identity": 1 }, "users_identity"),
                    unique(doc! { "username_key": 1 }, "users_username_key"),
                    unique(doc! { "email": 1 }, "users_email"),
                    plain(doc! { "nickname_key": 1 }, "users_nickname_key"),
                ],
            ),
            (
                "rooms",
                vec![
                    unique(doc! { "identity": 1 }, "rooms_identity"),
                    unique(doc! { "number": 1 }, "rooms_number"),
                    unique_where_string(doc! { "pair_key": 1 }, "rooms_pair_key", "pair_key"),
                ],
            ),
            (
                "room_members",
                vec![
                    unique(
                        doc! { "user_identity": 1, "room_identity": 1 },
                        "room_members_user_room",
                    ),
                    plain(doc! { "room_identity": 1 }, "room_members_room"),
                ],
            ),
            (
                "messages",
                vec![
                    unique(doc! { "identity": 1 }, "messages_identity"),
                    unique(doc! { "room_identity": 1, "seq": 1 }, "messages_room_seq"),
                    unique_where_string(
                        doc! { "room_identity": 1, "sender_identity": 1, "client_id": 1 },
                        "messages_client_id",
                        "client_id",
                    ),
                ],
            ),
        ];
        for (collection, models) in indexes {
            self.db
                .collection::<Document>(collection)
                .create_indexes(models)
                .await?;
        }
        Ok(())
    }

    /// Bounds one database call by the store timeout.
    async fn timed<T>(
        &self,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call.into_future()).await {
            Ok(result) => result.map_err(db_error),
            Err(elapsed) => Err(Error::unavailable("mongodb", elapsed)),
        }
    }

    async fn user_where(&self, filter: Document) -> Result<Option<UserRecord>> {
        self.timed(self.users.find_one(filter))
            .await?
            .map(UserDoc::into_record)
            .transpose()
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.timed(self.db.run_command(doc! { "ping": 1 }))
            .await
            .map(drop)
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        self.timed(self.users.insert_one(UserDoc::from_record(user)))
            .await
            .map(drop)
    }

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<UserRecord>> {
        self.user_where(doc! { "identity": identity.to_string() })
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        self.user_where(doc! { "username_key": UserRecord::username_key(username) })
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.user_where(doc! { "email": email }).await
    }

    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<UserRecord>> {
        let mut set = doc! { "updated_at": to_bson_time(update.updated_at) };
        let mut unset = Document::new();
        if let Some(nickname) = &update.nickname {
            set.insert("nickname", nickname);
            set.insert("nickname_key", nickname.to_lowercase());
        }
        if let Some(sex) = update.sex {
            set.insert("sex", sex.as_str());
        }
        match &update.avatar {
            Some(Some(avatar)) => {
                set.insert("avatar", avatar);
            }
            Some(None) => {
                unset.insert("avatar", "");
            }
            None => {}
        }
        let mut change = doc! { "$set": set };
        if !unset.is_empty() {
            change.insert("$unset", unset);
        }
        self.timed(
            self.users
                .find_one_and_update(doc! { "identity": identity.to_string() }, change)
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(UserDoc::into_record)
        .transpose()
    }
}
