//! The production store: MongoDB through the official driver.
//!
//! Indexes are created at start (creating an existing index is a no-op), so a
//! fresh database and an upgraded one end up the same. Every call is bounded
//! by the configured store timeout: a MongoDB that is down costs a client a
//! few seconds and an `INTERNAL` error, never a hung request.

use std::{
    cmp::Reverse,
    collections::{HashMap, HashSet},
    future::IntoFuture,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{TryStreamExt, future::BoxFuture};
use mongodb::{
    Client, ClientSession, Collection, Cursor, Database, IndexModel,
    bson::{self, Bson, Document, doc},
    error::{
        ErrorKind, InsertManyError, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
        WriteFailure,
    },
    options::{ClientOptions, IndexOptions, ReturnDocument},
};
use rand::Rng;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{
    Counts, Departure, HistoryRange, Loaded, MemberRecord, MessageRecord, NewMessage, Profile,
    ProfileUpdate, Record, RecordStream, RoomRecord, RoomType, Sex, Store, UserRecord,
    nickname_key, username_key,
};
use crate::error::{Entity, Error, Result, Unique};

/// MongoDB's code for a duplicate key in a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// The unique value a duplicate key stands for, from the index the server
/// names (`... index: users_email dup key: ...`): the names given in
/// [`MongoStore::create_indexes`].
fn unique_of(message: &str) -> Option<Unique> {
    let (_, after) = message.split_once(" index: ")?;
    let index = after.split_whitespace().next()?;
    Some(match index {
        "users_username_key" => Unique::Username,
        "users_email" => Unique::Email,
        "rooms_pair_key" => Unique::PrivatePair,
        "rooms_number" => Unique::RoomNumber,
        "messages_client_id" => Unique::ClientId,
        "users_identity" | "rooms_identity" | "messages_identity" => Unique::Identity,
        "room_members_user_room" => Unique::Membership,
        "messages_room_seq" => Unique::Seq,
        _ => return None,
    })
}

/// What a read of profiles asks for: all but the password hash, which
/// stays in the database.
fn profile_fields() -> Document {
    doc! { "password_hash": 0 }
}

/// How many documents an export asks for in one round trip: bounds its
/// memory (the server's default is up to 16 MB a batch).
const EXPORT_BATCH: u32 = 500;

/// One run of a transaction's work, see [`MongoStore::transaction`].
type Attempt<'s, T> = BoxFuture<'s, mongodb::error::Result<T>>;

/// How many times a transaction is tried when it keeps conflicting with
/// concurrent ones, before the conflict is reported as an error. Conflicts
/// are a lottery among a room's concurrent senders: with 8 of them the
/// unluckiest message was seen to need over 20 attempts and more than a
/// second. With the pauses of [`backoff`], 50 attempts take about as long as
/// the default store timeout, which bounds the whole anyway.
const TRANSACTION_ATTEMPTS: u32 = 50;

pub struct MongoStore {
    /// Sessions, and so transactions, start from the client.
    client: Client,
    db: Database,
    users: Collection<UserDoc>,
    rooms: Collection<RoomDoc>,
    members: Collection<MemberDoc>,
    messages: Collection<MessageDoc>,
    timeout: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserDoc {
    identity: String,
    username: String,
    username_key: String,
    /// Always stored; absent when read as a profile ([`profile_fields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
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
        let profile = &user.profile;
        Self {
            identity: profile.identity.to_string(),
            username: profile.username.clone(),
            username_key: username_key(&profile.username),
            password_hash: Some(user.password_hash.clone()),
            nickname: profile.nickname.clone(),
            nickname_key: nickname_key(&profile.nickname),
            sex: profile.sex,
            email: profile.email.clone(),
            avatar: profile.avatar.clone(),
            created_at: to_bson_time(profile.created_at),
            updated_at: to_bson_time(profile.updated_at),
        }
    }

    fn into_record(mut self) -> Result<UserRecord> {
        let password_hash = self
            .password_hash
            .take()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a user read without their hash")))?;
        Ok(UserRecord {
            profile: self.into_profile()?,
            password_hash,
        })
    }

    fn into_profile(self) -> Result<Profile> {
        Ok(Profile {
            identity: parse_identity(&self.identity)?,
            username: self.username,
            nickname: self.nickname,
            sex: self.sex,
            email: self.email,
            avatar: self.avatar,
            created_at: from_bson_time(self.created_at)?,
            updated_at: from_bson_time(self.updated_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RoomDoc {
    identity: String,
    number: String,
    name: String,
    info: String,
    creator_identity: String,
    room_type: RoomType,
    /// Absent rather than null for GROUP rooms: the unique index only covers strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pair_key: Option<String>,
    seq: i64,
    last_message_at: Option<bson::DateTime>,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
    /// Bumped by every change of membership, only so that two of them on one
    /// room write the same document and cannot both commit unaware of the
    /// other (MongoDB transactions only conflict on a common write).
    #[serde(default)]
    members_version: i64,
}

impl RoomDoc {
    fn from_record(room: &RoomRecord) -> Self {
        Self {
            identity: room.identity.to_string(),
            number: room.number.clone(),
            name: room.name.clone(),
            info: room.info.clone(),
            creator_identity: room.creator_identity.to_string(),
            room_type: room.room_type,
            pair_key: room.pair_key.clone(),
            seq: room.seq,
            last_message_at: room.last_message_at.map(to_bson_time),
            created_at: to_bson_time(room.created_at),
            updated_at: to_bson_time(room.updated_at),
            members_version: 0,
        }
    }

    fn into_record(self) -> Result<RoomRecord> {
        Ok(RoomRecord {
            identity: parse_identity(&self.identity)?,
            number: self.number,
            name: self.name,
            info: self.info,
            creator_identity: parse_identity(&self.creator_identity)?,
            room_type: self.room_type,
            pair_key: self.pair_key,
            seq: self.seq,
            last_message_at: self.last_message_at.map(from_bson_time).transpose()?,
            created_at: from_bson_time(self.created_at)?,
            updated_at: from_bson_time(self.updated_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberDoc {
    user_identity: String,
    room_identity: String,
    last_read_seq: i64,
    joined_at: bson::DateTime,
}

impl MemberDoc {
    fn from_record(member: &MemberRecord) -> Self {
        Self::new(
            member.user_identity,
            member.room_identity,
            member.last_read_seq,
            member.joined_at,
        )
    }

    fn new(user: Uuid, room: Uuid, last_read_seq: i64, joined_at: DateTime<Utc>) -> Self {
        Self {
            user_identity: user.to_string(),
            room_identity: room.to_string(),
            last_read_seq,
            joined_at: to_bson_time(joined_at),
        }
    }

    fn into_record(self) -> Result<MemberRecord> {
        Ok(MemberRecord {
            user_identity: parse_identity(&self.user_identity)?,
            room_identity: parse_identity(&self.room_identity)?,
            last_read_seq: self.last_read_seq,
            joined_at: from_bson_time(self.joined_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageDoc {
    identity: String,
    room_identity: String,
    seq: i64,
    sender_identity: String,
    content: String,
    /// Absent rather than null when not given: the unique index only covers strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    created_at: bson::DateTime,
}

impl MessageDoc {
    fn new(message: &NewMessage, seq: i64) -> Self {
        Self {
            identity: message.identity.to_string(),
            room_identity: message.room_identity.to_string(),
            seq,
            sender_identity: message.sender_identity.to_string(),
            content: message.content.clone(),
            client_id: message.client_id.clone(),
            created_at: to_bson_time(message.created_at),
        }
    }

    fn from_record(message: &MessageRecord) -> Self {
        Self {
            identity: message.identity.to_string(),
            room_identity: message.room_identity.to_string(),
            seq: message.seq,
            sender_identity: message.sender_identity.to_string(),
            content: message.content.clone(),
            client_id: message.client_id.clone(),
            created_at: to_bson_time(message.created_at),
        }
    }

    fn into_record(self) -> Result<MessageRecord> {
        Ok(MessageRecord {
            identity: parse_identity(&self.identity)?,
            room_identity: parse_identity(&self.room_identity)?,
            seq: self.seq,
            sender_identity: parse_identity(&self.sender_identity)?,
            content: self.content,
            client_id: self.client_id,
            created_at: from_bson_time(self.created_at)?,
        })
    }
}

/// One room's line of `unread_counts`' aggregation.
#[derive(Debug, Deserialize)]
struct UnreadCount {
    #[serde(rename = "_id")]
    room: String,
    count: i64,
}

fn parse_identity(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(Error::internal)
}

fn identity_strings(identities: &[Uuid]) -> Vec<String> {
    identities.iter().map(Uuid::to_string).collect()
}

/// A find's limit: MongoDB reads 0 as no limit, so callers answer that case themselves.
fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `text` as a regular expression matching exactly it: every ASCII
/// punctuation character escaped, which PCRE reads as that character.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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
    // Inside a transaction the server may report a duplicate key as the
    // failed command rather than as a write error.
    let duplicate = match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) if write.code == DUPLICATE_KEY => {
            Some(&write.message)
        }
        ErrorKind::Command(command) if command.code == DUPLICATE_KEY => Some(&command.message),
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            ..
        }) => errors
            .iter()
            .find(|write| write.code == DUPLICATE_KEY)
            .map(|write| &write.message),
        _ => None,
    };
    if let Some(message) = duplicate {
        return match unique_of(message) {
            Some(unique) => Error::Conflict(unique),
            None => Error::internal(error),
        };
    }
    match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => Error::unavailable("mongodb", error),
        _ => Error::internal(error),
    }
}

/// Bounds a database call by `timeout`; the call's own outcome inside.
async fn within<T>(
    timeout: Duration,
    call: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<mongodb::error::Result<T>> {
    tokio::time::timeout(timeout, call.into_future())
        .await
        .map_err(|elapsed| Error::unavailable("mongodb", elapsed))
}

/// The next document of an export's cursor, bounded by `timeout`.
async fn next_of<T>(timeout: Duration, cursor: &mut Cursor<T>) -> Result<Option<T>>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    within(timeout, cursor.try_next()).await?.map_err(db_error)
}

/// Commits, again while the server cannot tell whether the commit took
/// (committing twice is safe: the server answers the second from the first).
async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(error)
                if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && attempt < TRANSACTION_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A random pause, longer after each attempt up to 128 ms, so that
/// transactions that conflicted do not meet again at once.
async fn backoff(attempt: u32) {
    let most = 2_u64 << attempt.min(6);
    let pause = rand::thread_rng().gen_range(0..=most);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

impl MongoStore {
    /// Connects and creates the indexes of DESIGN.md's data table.
    pub async fn connect(uri: &str, database: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut options = ClientOptions::parse(uri).await?;
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.app_name.get_or_insert_with(|| "chatroom".into());
        let client = Client::with_options(options)?;
        let db = client.database(database);
        let store = Self {
            users: db.collection("users"),
            rooms: db.collection("rooms"),
            members: db.collection("room_members"),
            messages: db.collection("messages"),
            client,
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
        within(self.timeout, call).await?.map_err(db_error)
    }

    /// Which of `identities` `collection` already holds.
    async fn identities_present(
        &self,
        collection: &str,
        identities: Vec<String>,
    ) -> Result<HashSet<String>> {
        if identities.is_empty() {
            return Ok(HashSet::new());
        }
        let found = self
            .timed(
                self.db
                    .collection::<Document>(collection)
                    .distinct("identity", doc! { "identity": { "$in": identities } }),
            )
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|identity| match identity {
                Bson::String(identity) => Some(identity),
                _ => None,
            })
            .collect())
    }

    /// Inserts the documents of one kind of an import batch, in order; how many.
    async fn insert_all<T>(&self, collection: &Collection<T>, docs: Vec<T>) -> Result<u64>
    where
        T: Serialize + Send + Sync,
    {
        if docs.is_empty() {
            return Ok(0);
        }
        let count = docs.len() as u64;
        self.timed(collection.insert_many(docs)).await?;
        Ok(count)
    }

    /// Runs `work` in a transaction and commits it, all of it again (after
    /// a pause) when the server reports a transient conflict with a
    /// concurrent transaction; bounded by the store timeout as a whole.
    ///
    /// `work` may run several times: it must only write through the session
    /// and return what it found rather than act on it outside. It gets the
    /// store and `context` as arguments rather than capturing them, because
    /// its future borrows them for as long as it borrows the session, which
    /// a capture cannot promise; the future is boxed because the compiler
    /// cannot prove an unboxed one `Send` for every such borrow.
    async fn transaction<C, T>(
        &self,
        context: &C,
        work: impl for<'s> Fn(&'s Self, &'s mut ClientSession, &'s C) -> Attempt<'s, T>,
    ) -> Result<T>
    where
        C: Sync + ?Sized,
    {
        self.timed(async {
            let mut session = self.client.start_session().await?;
            let mut attempt = 1;
            loop {
                session.start_transaction().await?;
                let outcome = match work(self, &mut session, context).await {
                    Ok(value) => commit(&mut session).await.map(|()| value),
                    Err(error) => {
                        session.abort_transaction().await?;
                        Err(error)
                    }
                };
                match outcome {
                    Err(error)
                        if error.contains_label(TRANSIENT_TRANSACTION_ERROR)
                            && attempt < TRANSACTION_ATTEMPTS =>
                    {
                        tracing::debug!(attempt, error = %error, "transaction conflicted: retrying");
                        backoff(attempt).await;
                        attempt += 1;
                    }
                    outcome => return outcome,
                }
            }
        })
        .await
    }

    /// Every document a query finds, bounded by the store timeout.
    async fn all<T>(
        &self,
        query: impl IntoFuture<Output = mongodb::error::Result<Cursor<T>>>,
    ) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync + Unpin,
    {
        self.timed(async { query.await?.try_collect().await }).await
    }

    async fn room_where(&self, filter: Document) -> Result<Option<RoomRecord>> {
        self.timed(self.rooms.find_one(filter))
            .await?
            .map(RoomDoc::into_record)
            .transpose()
    }

    /// Deletes a room's members and history, in the caller's transaction.
    async fn delete_contents(
        &self,
        room: &str,
        session: &mut ClientSession,
    ) -> mongodb::error::Result<()> {
        self.members
            .delete_many(doc! { "room_identity": room })
            .session(&mut *session)
            .await?;
        self.messages
            .delete_many(doc! { "room_identity": room })
            .session(&mut *session)
            .await?;
        Ok(())
    }

    async fn profile_where(&self, filter: Document) -> Result<Option<Profile>> {
        self.timed(self.users.find_one(filter).projection(profile_fields()))
            .await?
            .map(UserDoc::into_profile)
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

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<Profile>> {
        self.profile_where(doc! { "identity": identity.to_string() })
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<Profile>> {
        self.profile_where(doc! { "username_key": username_key(username) })
            .await
    }

    async fn login_record(&self, username: &str) -> Result<Option<UserRecord>> {
        self.timed(
            self.users
                .find_one(doc! { "username_key": username_key(username) }),
        )
        .await?
        .map(UserDoc::into_record)
        .transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<Profile>> {
        self.profile_where(doc! { "email": email }).await
    }

    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<Profile>> {
        let mut set = doc! { "updated_at": to_bson_time(update.updated_at) };
        let mut unset = Document::new();
        if let Some(nickname) = &update.nickname {
            set.insert("nickname", nickname);
            set.insert("nickname_key", nickname_key(nickname));
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
                .projection(profile_fields())
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(UserDoc::into_profile)
        .transpose()
    }

    async fn users_by_identities(&self, identities: &[Uuid]) -> Result<Vec<Profile>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        self.all(
            self.users
                .find(doc! { "identity": { "$in": identity_strings(identities) } })
                .projection(profile_fields()),
        )
        .await?
        .into_iter()
        .map(UserDoc::into_profile)
        .collect()
    }

    async fn search_users(
        &self,
        prefix: &str,
        exclude: Uuid,
        limit: usize,
    ) -> Result<Vec<Profile>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Anchored and case-sensitive against the lower-case keys, so the
        // indexes on both keys serve it.
        let pattern = format!("^{}", regex_escape(&nickname_key(prefix)));
        let filter = doc! {
            "$or": [
                { "username_key": { "$regex": &pattern } },
                { "nickname_key": { "$regex": &pattern } },
            ],
            "identity": { "$ne": exclude.to_string() },
        };
        self.all(
            self.users
                .find(filter)
                .projection(profile_fields())
                .sort(doc! { "username_key": 1 })
                .limit(limit_of(limit)),
        )
        .await?
        .into_iter()
        .map(UserDoc::into_profile)
        .collect()
    }

    async fn friends(&self, user: Uuid) -> Result<Vec<Profile>> {
        let user = user.to_string();
        let rooms = self
            .timed(
                self.members
                    .distinct("room_identity", doc! { "user_identity": &user }),
            )
            .await?;
        let private_rooms = self
            .timed(self.rooms.distinct(
                "identity",
                doc! { "identity": { "$in": rooms }, "room_type": RoomType::Private.as_str() },
            ))
            .await?;
        let friends = self
            .timed(self.members.distinct(
                "user_identity",
                doc! { "room_identity": { "$in": private_rooms }, "user_identity": { "$ne": &user } },
            ))
            .await?;
        self.all(
            self.users
                .find(doc! { "identity": { "$in": friends } })
                .projection(profile_fields())
                .sort(doc! { "username_key": 1 }),
        )
        .await?
        .into_iter()
        .map(UserDoc::into_profile)
        .collect()
    }

    async fn create_room(&self, room: &RoomRecord, members: &[Uuid]) -> Result<()> {
        let room_doc = RoomDoc::from_record(room);
        let member_docs: Vec<MemberDoc> = members
            .iter()
            .map(|&user| MemberDoc::new(user, room.identity, 0, room.created_at))
            .collect();
        self.transaction(
            &(room_doc, member_docs),
            |store, session, (room, members)| {
                Box::pin(async move {
                    store.rooms.insert_one(room).session(&mut *session).await?;
                    if !members.is_empty() {
                        store
                            .members
                            .insert_many(members)
                            .session(&mut *session)
                            .await?;
                    }
                    Ok(())
                })
            },
        )
        .await
    }

    async fn room(&self, identity: Uuid) -> Result<Option<RoomRecord>> {
        self.room_where(doc! { "identity": identity.to_string() })
            .await
    }

    async fn private_room(&self, pair_key: &str) -> Result<Option<RoomRecord>> {
        self.room_where(doc! { "pair_key": pair_key }).await
    }

    async fn rooms_of_user(&self, user: Uuid) -> Result<Vec<RoomRecord>> {
        let rooms = self
            .timed(
                self.members
                    .distinct("room_identity", doc! { "user_identity": user.to_string() }),
            )
            .await?;
        let mut rooms = self
            .all(self.rooms.find(doc! { "identity": { "$in": rooms } }))
            .await?
            .into_iter()
            .map(RoomDoc::into_record)
            .collect::<Result<Vec<_>>>()?;
        rooms.sort_by_key(|room| Reverse(room.last_activity()));
        Ok(rooms)
    }

    async fn delete_room(&self, room: Uuid) -> Result<bool> {
        self.transaction(&room.to_string(), |store, session, room| {
            Box::pin(async move {
                let deleted = store
                    .rooms
                    .delete_one(doc! { "identity": room })
                    .session(&mut *session)
                    .await?;
                if deleted.deleted_count == 0 {
                    return Ok(false);
                }
                store.delete_contents(room, session).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn member(&self, room: Uuid, user: Uuid) -> Result<Option<MemberRecord>> {
        self.timed(self.members.find_one(doc! {
            "user_identity": user.to_string(),
            "room_identity": room.to_string(),
        }))
        .await?
        .map(MemberDoc::into_record)
        .transpose()
    }

    async fn memberships(&self, user: Uuid, rooms: &[Uuid]) -> Result<Vec<MemberRecord>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        self.all(self.members.find(doc! {
            "user_identity": user.to_string(),
            "room_identity": { "$in": identity_strings(rooms) },
        }))
        .await?
        .into_iter()
        .map(MemberDoc::into_record)
        .collect()
    }

    async fn members_of_rooms(&self, rooms: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        // Members who joined in the same millisecond (a room's first ones)
        // keep the order they were inserted in: `_id`s grow.
        self.all(
            self.members
                .find(doc! { "room_identity": { "$in": identity_strings(rooms) } })
                .sort(doc! { "joined_at": 1, "_id": 1 }),
        )
        .await?
        .into_iter()
        .map(|member| {
            Ok((
                parse_identity(&member.room_identity)?,
                parse_identity(&member.user_identity)?,
            ))
        })
        .collect()
    }

    async fn add_members(
        &self,
        room: Uuid,
        users: &[Uuid],
        joined_at: DateTime<Utc>,
    ) -> Result<Vec<Uuid>> {
        let mut wanted = Vec::with_capacity(users.len());
        for &user in users {
            if !wanted.contains(&user) {
                wanted.push(user);
            }
        }
        let added = self
            .transaction(
                &(room, wanted, joined_at),
                |store, session, (room, wanted, joined_at)| {
                    Box::pin(async move {
                        let room_identity = room.to_string();
                        // Writing the room makes this conflict with a concurrent
                        // last member leaving, which would otherwise delete the
                        // room under the members added here.
                        let Some(found) = store
                            .rooms
                            .find_one_and_update(
                                doc! { "identity": &room_identity },
                                doc! { "$inc": { "members_version": 1_i64 } },
                            )
                            .session(&mut *session)
                            .await?
                        else {
                            return Ok(None);
                        };
                        let present = store
                            .members
                            .distinct(
                                "user_identity",
                                doc! {
                                    "room_identity": &room_identity,
                                    "user_identity": { "$in": identity_strings(wanted) },
                                },
                            )
                            .session(&mut *session)
                            .await?;
                        let added: Vec<Uuid> = wanted
                            .iter()
                            .copied()
                            .filter(|user| !present.contains(&Bson::String(user.to_string())))
                            .collect();
                        if !added.is_empty() {
                            let docs = added
                                .iter()
                                .map(|&user| MemberDoc::new(user, *room, found.seq, *joined_at));
                            store
                                .members
                                .insert_many(docs)
                                .session(&mut *session)
                                .await?;
                        }
                        Ok(Some(added))
                    })
                },
            )
            .await?;
        added.ok_or(Error::NotFound(Entity::Room))
    }

    async fn remove_member(&self, room: Uuid, user: Uuid) -> Result<Departure> {
        let context = (room.to_string(), user.to_string());
        self.transaction(&context, |store, session, (room, user)| {
            Box::pin(async move {
                let removed = store
                    .members
                    .delete_one(doc! { "user_identity": user, "room_identity": room })
                    .session(&mut *session)
                    .await?;
                if removed.deleted_count == 0 {
                    return Ok(Departure::NotAMember);
                }
                // Writing the room makes the last two members leaving at
                // once conflict, so one of them sees that it is the last;
                // each would otherwise still see the other and leave an
                // empty room behind.
                store
                    .rooms
                    .update_one(
                        doc! { "identity": room },
                        doc! { "$inc": { "members_version": 1_i64 } },
                    )
                    .session(&mut *session)
                    .await?;
                let remaining = store
                    .members
                    .count_documents(doc! { "room_identity": room })
                    .limit(1)
                    .session(&mut *session)
                    .await?;
                if remaining > 0 {
                    return Ok(Departure::Left);
                }
                store
                    .rooms
                    .delete_one(doc! { "identity": room })
                    .session(&mut *session)
                    .await?;
                store.delete_contents(room, session).await?;
                Ok(Departure::LeftAndRoomDeleted)
            })
        })
        .await
    }

    async fn mark_read(&self, room: Uuid, user: Uuid) -> Result<bool> {
        let Some(found) = self.room(room).await? else {
            return Ok(false);
        };
        // `$max`: a slower concurrent call that read an older seq never
        // moves the mark back.
        let marked = self
            .timed(self.members.update_one(
                doc! { "user_identity": user.to_string(), "room_identity": room.to_string() },
                doc! { "$max": { "last_read_seq": found.seq } },
            ))
            .await?;
        Ok(marked.matched_count > 0)
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<(MessageRecord, bool)> {
        let first_with_client_id = message.client_id.as_ref().map(|client_id| {
            doc! {
                "room_identity": message.room_identity.to_string(),
                "sender_identity": message.sender_identity.to_string(),
                "client_id": client_id,
            }
        });
        // Most retries come after the first attempt committed: one read
        // answers them. It stays out of the transaction, which conflicts
        // with every other sender to the room while it runs, to keep that
        // short; the unique index catches the retries that race.
        if let Some(filter) = &first_with_client_id
            && let Some(first) = self.timed(self.messages.find_one(filter.clone())).await?
        {
            return Ok((first.into_record()?, false));
        }
        let stored = self
            .transaction(message, |store, session, message| {
                Box::pin(async move {
                    let Some(room) = store
                        .rooms
                        .find_one_and_update(
                            doc! { "identity": message.room_identity.to_string() },
                            doc! {
                                "$inc": { "seq": 1_i64 },
                                "$set": { "last_message_at": to_bson_time(message.created_at) },
                            },
                        )
                        .return_document(ReturnDocument::After)
                        .session(&mut *session)
                        .await?
                    else {
                        return Ok(None);
                    };
                    let doc = MessageDoc::new(message, room.seq);
                    store
                        .messages
                        .insert_one(&doc)
                        .session(&mut *session)
                        .await?;
                    Ok(Some(doc))
                })
            })
            .await;
        match (stored, first_with_client_id) {
            (Ok(Some(doc)), _) => Ok((doc.into_record()?, true)),
            (Ok(None), _) => Err(Error::NotFound(Entity::Room)),
            // A retry of the same message committed since the read above: the
            // insert failed on the unique index and the transaction was
            // aborted, its seq with it. (Or this call's own first attempt,
            // when the transaction ran again after it committed.)
            (Err(Error::Conflict(Unique::ClientId)), Some(filter)) => {
                match self.timed(self.messages.find_one(filter)).await? {
                    Some(first) => {
                        let first = first.into_record()?;
                        let mine = first.identity == message.identity;
                        Ok((first, mine))
                    }
                    None => Err(Error::internal(anyhow::anyhow!(
                        "client_id {:?} taken by no stored message",
                        message.client_id
                    ))),
                }
            }
            // A transaction run again after a commit whose outcome was
            // unknown, when the first commit had gone through: the message
            // is stored, by this call, under the identity made for it.
            (Err(Error::Conflict(Unique::Identity)), _) => {
                let mine = doc! { "identity": message.identity.to_string() };
                match self.timed(self.messages.find_one(mine)).await? {
                    Some(stored) => Ok((stored.into_record()?, true)),
                    None => Err(Error::Conflict(Unique::Identity)),
                }
            }
            (Err(error), _) => Err(error),
        }
    }

    async fn history(&self, room: Uuid, range: HistoryRange) -> Result<Vec<MessageRecord>> {
        if range.limit == 0 {
            return Ok(Vec::new());
        }
        let mut seq = Document::new();
        if let Some(after) = range.after {
            seq.insert("$gt", after);
        }
        if let Some(before) = range.before {
            seq.insert("$lt", before);
        }
        let mut filter = doc! { "room_identity": room.to_string() };
        if !seq.is_empty() {
            filter.insert("seq", seq);
        }
        let direction = if range.newest { -1 } else { 1 };
        let mut messages = self
            .all(
                self.messages
                    .find(filter)
                    .sort(doc! { "seq": direction })
                    .limit(limit_of(range.limit)),
            )
            .await?
            .into_iter()
            .map(MessageDoc::into_record)
            .collect::<Result<Vec<_>>>()?;
        if range.newest {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn messages_at(&self, positions: &[(Uuid, i64)]) -> Result<Vec<MessageRecord>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let positions: Vec<Document> = positions
            .iter()
            .map(|(room, seq)| doc! { "room_identity": room.to_string(), "seq": seq })
            .collect();
        self.all(self.messages.find(doc! { "$or": positions }))
            .await?
            .into_iter()
            .map(MessageDoc::into_record)
            .collect()
    }

    async fn unread_counts(
        &self,
        user: Uuid,
        memberships: &[MemberRecord],
    ) -> Result<HashMap<Uuid, u64>> {
        if memberships.is_empty() {
            return Ok(HashMap::new());
        }
        let unread: Vec<Document> = memberships
            .iter()
            .map(|member| {
                doc! {
                    "room_identity": member.room_identity.to_string(),
                    "seq": { "$gt": member.last_read_seq },
                }
            })
            .collect();
        let pipeline = [
            doc! { "$match": { "$or": unread, "sender_identity": { "$ne": user.to_string() } } },
            doc! { "$group": { "_id": "$room_identity", "count": { "$sum": 1 } } },
        ];
        self.all(self.messages.aggregate(pipeline).with_type::<UnreadCount>())
            .await?
            .into_iter()
            .map(|unread| {
                let count = u64::try_from(unread.count).map_err(Error::internal)?;
                Ok((parse_identity(&unread.room)?, count))
            })
            .collect()
    }

    async fn room_by_number(&self, number: &str) -> Result<Option<RoomRecord>> {
        self.room_where(doc! { "number": number }).await
    }

    async fn counts(&self) -> Result<Counts> {
        Ok(Counts {
            users: self.timed(self.users.count_documents(doc! {})).await?,
            rooms: self.timed(self.rooms.count_documents(doc! {})).await?,
            members: self.timed(self.members.count_documents(doc! {})).await?,
            messages: self.timed(self.messages.count_documents(doc! {})).await?,
        })
    }

    /// Consistent room by room rather than in one snapshot: each room is read
    /// first, and its seq bounds what follows it (messages up to that seq,
    /// read positions at most that seq). Messages are never changed once
    /// written and a room's seq moves in the same transaction as its new
    /// message is inserted, so every message up to the seq read is there,
    /// and one written later is left out whole. A snapshot read (a session
    /// with snapshot read concern, or a transaction) would give one point in
    /// time for everything, but only for as long as the server keeps history
    /// (five minutes by default, one for a transaction), which a large
    /// export outlasts; rooms are independent of each other, so nothing
    /// needs more than each room's own point in time. A room deleted while
    /// the export runs may come with fewer members and messages than it had.
    fn export(&self) -> RecordStream {
        let timeout = self.timeout;
        let (rooms, members, messages, users) = (
            self.rooms.clone(),
            self.members.clone(),
            self.messages.clone(),
            self.users.clone(),
        );
        Box::pin(async_stream::try_stream! {
            let by_identity = doc! { "identity": 1 };
            let mut room_cursor = within(
                timeout,
                rooms.find(doc! {}).sort(by_identity.clone()).batch_size(EXPORT_BATCH),
            )
            .await?
            .map_err(db_error)?;
            while let Some(room) = next_of(timeout, &mut room_cursor).await? {
                let room = room.into_record()?;
                let (identity, seq) = (room.identity.to_string(), room.seq);
                yield Record::Room(room);
                let mut member_cursor = within(
                    timeout,
                    members
                        .find(doc! { "room_identity": &identity })
                        .sort(doc! { "joined_at": 1, "_id": 1 })
                        .batch_size(EXPORT_BATCH),
                )
                .await?
                .map_err(db_error)?;
                while let Some(member) = next_of(timeout, &mut member_cursor).await? {
                    let mut member = member.into_record()?;
                    member.last_read_seq = member.last_read_seq.min(seq);
                    yield Record::Member(member);
                }
                let mut message_cursor = within(
                    timeout,
                    messages
                        .find(doc! { "room_identity": &identity, "seq": { "$lte": seq } })
                        .sort(doc! { "seq": 1 })
                        .batch_size(EXPORT_BATCH),
                )
                .await?
                .map_err(db_error)?;
                while let Some(message) = next_of(timeout, &mut message_cursor).await? {
                    yield Record::Message(message.into_record()?);
                }
            }
            let mut user_cursor = within(
                timeout,
                users.find(doc! {}).sort(by_identity).batch_size(EXPORT_BATCH),
            )
            .await?
            .map_err(db_error)?;
            while let Some(user) = next_of(timeout, &mut user_cursor).await? {
                yield Record::User(user.into_record()?);
            }
        })
    }

    /// Not in a transaction: a batch of a large import would outgrow one,
    /// and a store being imported into is not yet serving anyone. An import
    /// cut short is finished by running it again with `skip_existing`.
    /// Existing records are looked up before the insert rather than told
    /// apart by the insert's errors, because a repeated message breaks two
    /// unique indexes and the server names only one of them.
    async fn import(&self, records: &[Record], skip_existing: bool) -> Result<Loaded> {
        let (mut rooms, mut members, mut messages, mut users) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for record in records {
            match record {
                Record::Room(room) => rooms.push(RoomDoc::from_record(room)),
                Record::Member(member) => members.push(MemberDoc::from_record(member)),
                Record::Message(message) => messages.push(MessageDoc::from_record(message)),
                Record::User(user) => users.push(UserDoc::from_record(user)),
            }
        }
        let given = records.len() as u64;
        if skip_existing {
            let present = self
                .identities_present("rooms", rooms.iter().map(|r| r.identity.clone()).collect())
                .await?;
            rooms.retain(|room| !present.contains(&room.identity));
            let present = self
                .identities_present(
                    "messages",
                    messages.iter().map(|m| m.identity.clone()).collect(),
                )
                .await?;
            messages.retain(|message| !present.contains(&message.identity));
            let present = self
                .identities_present("users", users.iter().map(|u| u.identity.clone()).collect())
                .await?;
            users.retain(|user| !present.contains(&user.identity));
            if !members.is_empty() {
                let pairs: Vec<Document> = members
                    .iter()
                    .map(|m| doc! { "user_identity": &m.user_identity, "room_identity": &m.room_identity })
                    .collect();
                let present: HashSet<(String, String)> = self
                    .all(self.members.find(doc! { "$or": pairs }))
                    .await?
                    .into_iter()
                    .map(|m| (m.user_identity, m.room_identity))
                    .collect();
                members.retain(|m| {
                    !present.contains(&(m.user_identity.clone(), m.room_identity.clone()))
                });
            }
        }
        let inserted = self.insert_all(&self.rooms, rooms).await?
            + self.insert_all(&self.members, members).await?
            + self.insert_all(&self.messages, messages).await?
            + self.insert_all(&self.users, users).await?;
        Ok(Loaded {
            inserted,
            skipped: given - inserted,
        })
    }
}
