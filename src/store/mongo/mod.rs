//! The production store: MongoDB through the official driver.
//!
//! Every call is bounded by the configured store timeout: a MongoDB that is
//! down costs a client a few seconds and an `INTERNAL` error, never a hung
//! request. `documents` maps records to documents and back, `schema` makes
//! the indexes and reads the driver's failures, `transaction` runs a
//! transaction until it stops conflicting, `transfer` moves a whole store;
//! this file holds the store and its queries.

mod documents;
mod schema;
mod transaction;
mod transfer;

use std::{cmp::Reverse, collections::HashMap, future::IntoFuture, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::{
    Client, ClientSession, Collection, Cursor, Database,
    bson::{Bson, Document, doc},
    options::{ClientOptions, ReturnDocument},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    error::{Entity, Error, Result, Unique},
    store::{
        Counts, Departure, HistoryRange, Loaded, MemberRecord, MessageRecord, NewMessage, Profile,
        ProfileUpdate, Record, RecordStream, RoomRecord, RoomType, Store, UserRecord, nickname_key,
        username_key,
    },
};

use self::{
    documents::{
        Counted, MemberDoc, MessageDoc, RoomDoc, UserDoc, identity_strings, parse_identity,
        profile_fields, to_bson_time,
    },
    schema::db_error,
};

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

/// Bounds a database call by `timeout`; the call's own outcome inside.
pub async fn within<T>(
    timeout: Duration,
    call: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<mongodb::error::Result<T>> {
    tokio::time::timeout(timeout, call.into_future())
        .await
        .map_err(|elapsed| Error::unavailable("mongodb", elapsed))
}

impl MongoStore {
    /// Connects and creates the indexes of docs/architecture.md's data table.
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

    /// Bounds one database call by the store timeout.
    pub(super) async fn timed<T>(
        &self,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        within(self.timeout, call).await?.map_err(db_error)
    }

    /// Every document a query finds, bounded by the store timeout.
    pub(super) async fn all<T>(
        &self,
        query: impl IntoFuture<Output = mongodb::error::Result<Cursor<T>>>,
    ) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync + Unpin,
    {
        self.timed(async { query.await?.try_collect().await }).await
    }

    pub(super) async fn room_where(&self, filter: Document) -> Result<Option<RoomRecord>> {
        self.timed(self.rooms.find_one(filter))
            .await?
            .map(RoomDoc::into_record)
            .transpose()
    }

    /// Deletes a room's members and history, in the caller's transaction.
    pub(super) async fn delete_contents(
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

    pub(super) async fn profile_where(&self, filter: Document) -> Result<Option<Profile>> {
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

    async fn set_password_hash(&self, identity: Uuid, password_hash: &str) -> Result<bool> {
        let change = doc! { "$set": { "password_hash": password_hash } };
        let updated = self
            .timed(
                self.users
                    .update_one(doc! { "identity": identity.to_string() }, change),
            )
            .await?;
        Ok(updated.matched_count > 0)
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

    async fn room_counts(&self, users: &[Uuid]) -> Result<HashMap<Uuid, u64>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let pipeline = [
            doc! { "$match": { "user_identity": { "$in": identity_strings(users) } } },
            doc! { "$group": { "_id": "$user_identity", "count": { "$sum": 1 } } },
        ];
        self.all(self.members.aggregate(pipeline).with_type::<Counted>())
            .await?
            .into_iter()
            .map(Counted::parsed)
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
                    let stored = message.at(room.seq);
                    store
                        .messages
                        .insert_one(MessageDoc::from_record(&stored))
                        .session(&mut *session)
                        .await?;
                    Ok(Some(stored))
                })
            })
            .await;
        match (stored, first_with_client_id) {
            (Ok(Some(stored)), _) => Ok((stored, true)),
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
        self.all(self.messages.aggregate(pipeline).with_type::<Counted>())
            .await?
            .into_iter()
            .map(Counted::parsed)
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

    fn export(&self) -> RecordStream {
        self.export_records()
    }

    async fn import(&self, records: &[Record], skip_existing: bool) -> Result<Loaded> {
        self.import_records(records, skip_existing).await
    }
}
