//! The production store: MongoDB through the official driver.
//!
//! Every call is bounded by the configured store timeout: a MongoDB that is
//! down costs a client a few seconds and an `INTERNAL` error, never a hung
//! request. `documents` maps records to documents and back, `schema` makes
//! the indexes and reads the driver's failures, `transaction` runs a
//! transaction until it stops conflicting, `search` finds messages by
//! their words, `transfer` moves a whole store; this file holds the store
//! and its queries.

mod documents;
mod people;
mod schema;
mod search;
mod sends;
mod transaction;
mod transfer;

use std::{cmp::Reverse, collections::HashMap, future::IntoFuture, sync::Arc, time::Duration};

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
    error::{Entity, Error, Result},
    store::{
        Counts, DepartureRecord, HistoryRange, Loaded, MemberChange, MemberRecord, MessageRecord,
        MessageRule, MessageScene, MessageSearch, NewMessage, Profile, ProfileUpdate, Record,
        RecordStream, Role, RoomChanges, RoomEdit, RoomRecord, RoomRule, RoomScene, RoomType, Sent,
        Store, Stored, UserRecord, first_role, nickname_key, username_key,
    },
};

use self::{
    documents::{
        BlockDoc, Counted, DepartureDoc, MemberDoc, MessageDoc, RoomDoc, UserDoc, identity_strings,
        parse_identity, profile_fields, reaction_docs, search_terms, to_bson_time,
    },
    schema::db_error,
};

/// Cheap to clone (the driver's handles are shared): a room's message
/// writer (`sends`) is a task of its own with its own copy.
#[derive(Clone)]
pub struct MongoStore {
    /// Sessions, and so transactions, start from the client.
    client: Client,
    db: Database,
    users: Collection<UserDoc>,
    rooms: Collection<RoomDoc>,
    members: Collection<MemberDoc>,
    messages: Collection<MessageDoc>,
    departures: Collection<DepartureDoc>,
    blocks: Collection<BlockDoc>,
    timeout: Duration,
    /// The messages waiting to be stored, by room (`sends`).
    queues: Arc<sends::Queues>,
}

/// The scene of a room rule from the documents read.
fn scene_of(room: RoomDoc, members: Vec<MemberDoc>) -> Result<RoomScene> {
    Ok(RoomScene {
        room: room.into_record()?,
        members: members
            .into_iter()
            .map(MemberDoc::into_record)
            .collect::<Result<_>>()?,
    })
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
            departures: db.collection("room_departures"),
            blocks: db.collection("blocks"),
            client,
            db,
            timeout,
            queues: Arc::default(),
        };
        store.create_indexes().await?;
        store.migrate().await?;
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

    /// The documents of `collection` with an identity among `identities`,
    /// in one query (none for none).
    async fn with_identities<T>(
        &self,
        collection: &Collection<T>,
        identities: &[Uuid],
    ) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync + Unpin,
    {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        self.all(collection.find(doc! { "identity": { "$in": identity_strings(identities) } }))
            .await
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
        self.departures
            .delete_many(doc! { "room_identity": room })
            .session(&mut *session)
            .await?;
        Ok(())
    }

    /// Takes the room's next revision, in the caller's transaction. Every
    /// change of a room writes its document here, so two changes of one
    /// room conflict and commit in the order of their revisions.
    pub(super) async fn take_rev(
        &self,
        room: &str,
        session: &mut ClientSession,
    ) -> mongodb::error::Result<i64> {
        let found = self
            .rooms
            .find_one_and_update(doc! { "identity": room }, doc! { "$inc": { "rev": 1_i64 } })
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?;
        Ok(found.and_then(|room| room.rev).unwrap_or(0))
    }

    /// Makes one edit of [`Store::change_room`] at revision `rev`, in the
    /// caller's transaction.
    async fn apply_room_edit(
        &self,
        room: &str,
        edit: RoomEdit,
        rev: i64,
        session: &mut ClientSession,
    ) -> mongodb::error::Result<Result<Stored>> {
        let not_a_member = || {
            Err(Error::bad_input(
                "username",
                crate::error::Problem::NotAMember,
            ))
        };
        match edit {
            RoomEdit::Rename { name, info, at } => {
                let found = self
                    .rooms
                    .find_one_and_update(
                        doc! { "identity": room },
                        doc! { "$set": {
                            "name": name,
                            "info": info,
                            "updated_at": to_bson_time(at),
                            "updated_rev": rev,
                        } },
                    )
                    .return_document(ReturnDocument::After)
                    .session(&mut *session)
                    .await?;
                Ok(match found {
                    Some(found) => found.into_record().map(Stored::Room),
                    None => Err(Error::NotFound(Entity::Room)),
                })
            }
            RoomEdit::SetRole { user, role } => {
                let changed = self
                    .members
                    .find_one_and_update(
                        doc! { "user_identity": user.to_string(), "room_identity": room },
                        doc! { "$set": {
                            "role": role.as_str(),
                            "rev": rev,
                            "change": MemberChange::Role.as_str(),
                        } },
                    )
                    .return_document(ReturnDocument::After)
                    .session(&mut *session)
                    .await?;
                Ok(match changed {
                    Some(member) => member.into_record().map(Stored::Member),
                    None => not_a_member(),
                })
            }
            RoomEdit::Remove { user, by, at } => {
                let removed = self
                    .members
                    .delete_one(doc! { "user_identity": user.to_string(), "room_identity": room })
                    .session(&mut *session)
                    .await?;
                if removed.deleted_count == 0 {
                    return Ok(not_a_member());
                }
                let departure = DepartureRecord {
                    room_identity: match parse_identity(room) {
                        Ok(room) => room,
                        Err(error) => return Ok(Err(error)),
                    },
                    user_identity: user,
                    removed_by: by,
                    left_at: at,
                    rev,
                };
                self.departures
                    .replace_one(
                        doc! { "room_identity": room, "user_identity": user.to_string() },
                        DepartureDoc::from_record(&departure),
                    )
                    .upsert(true)
                    .session(&mut *session)
                    .await?;
                Ok(Ok(Stored::Departure(departure)))
            }
        }
    }

    /// The users with these identities, ordered by username (ignoring case).
    pub(super) async fn profiles_by_username(&self, identities: Vec<Bson>) -> Result<Vec<Profile>> {
        self.all(
            self.users
                .find(doc! { "identity": { "$in": identities } })
                .projection(profile_fields())
                .sort(doc! { "username_key": 1 }),
        )
        .await?
        .into_iter()
        .map(UserDoc::into_profile)
        .collect()
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
        exclude: &[Uuid],
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
            "identity": { "$nin": identity_strings(exclude) },
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
        self.profiles_by_username(friends).await
    }

    async fn create_room(&self, room: &RoomRecord, members: &[Uuid]) -> Result<()> {
        let room_doc = RoomDoc::from_record(room);
        let member_docs: Vec<MemberDoc> = members
            .iter()
            .enumerate()
            .map(|(place, &user)| {
                let role = first_role(room.room_type, place);
                let member =
                    MemberRecord::joining(room.identity, user, role, 0, 0, room.created_at);
                MemberDoc::from_record(&member)
            })
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

    async fn rooms_by_identities(&self, identities: &[Uuid]) -> Result<Vec<RoomRecord>> {
        self.with_identities(&self.rooms, identities)
            .await?
            .into_iter()
            .map(RoomDoc::into_record)
            .collect()
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

    async fn members_of_rooms(&self, rooms: &[Uuid]) -> Result<Vec<MemberRecord>> {
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
        .map(MemberDoc::into_record)
        .collect()
    }

    async fn messages_by_identities(&self, identities: &[Uuid]) -> Result<Vec<MessageRecord>> {
        self.with_identities(&self.messages, identities)
            .await?
            .into_iter()
            .map(MessageDoc::into_record)
            .collect()
    }

    async fn add_members(
        &self,
        room: Uuid,
        users: &[Uuid],
        joined_at: DateTime<Utc>,
    ) -> Result<Vec<MemberRecord>> {
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
                        // Taking the revisions writes the room: this conflicts
                        // with a concurrent last member leaving, which would
                        // otherwise delete the room under the members added.
                        let Some(found) = store
                            .rooms
                            .find_one_and_update(
                                doc! { "identity": &room_identity },
                                doc! { "$inc": { "rev": i64::try_from(added.len()).unwrap_or(0) } },
                            )
                            .session(&mut *session)
                            .await?
                        else {
                            return Ok(None);
                        };
                        let first_rev = found.rev.unwrap_or(found.seq);
                        let members: Vec<MemberRecord> = added
                            .iter()
                            .zip(1..)
                            .map(|(&user, place)| {
                                MemberRecord::joining(
                                    *room,
                                    user,
                                    Role::Member,
                                    found.seq,
                                    first_rev + place,
                                    *joined_at,
                                )
                            })
                            .collect();
                        if !members.is_empty() {
                            store
                                .members
                                .insert_many(members.iter().map(MemberDoc::from_record))
                                .session(&mut *session)
                                .await?;
                        }
                        Ok(Some(members))
                    })
                },
            )
            .await?;
        added.ok_or(Error::NotFound(Entity::Room))
    }

    async fn mark_read(
        &self,
        room: Uuid,
        user: Uuid,
        up_to: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Option<(MemberRecord, bool)>> {
        let context = (room.to_string(), user.to_string(), up_to, at);
        self.transaction(&context, |store, session, (room, user, up_to, at)| {
            Box::pin(async move {
                let key = doc! { "user_identity": &*user, "room_identity": &*room };
                let Some(member) = store
                    .members
                    .find_one(key.clone())
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(None);
                };
                let Some(found) = store
                    .rooms
                    .find_one(doc! { "identity": &*room })
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(None);
                };
                let up_to = up_to.unwrap_or(found.seq).min(found.seq);
                if up_to <= member.last_read_seq {
                    return Ok(Some((member, false)));
                }
                let rev = store.take_rev(room, session).await?;
                let changed = store
                    .members
                    .find_one_and_update(
                        key,
                        doc! { "$set": {
                            "last_read_seq": up_to,
                            "last_read_at": to_bson_time(*at),
                            "rev": rev,
                            "change": MemberChange::Read.as_str(),
                        } },
                    )
                    .return_document(ReturnDocument::After)
                    .session(&mut *session)
                    .await?;
                Ok(changed.map(|changed| (changed, true)))
            })
        })
        .await?
        .map(|(member, moved)| Ok((member.into_record()?, moved)))
        .transpose()
    }

    async fn change_room(&self, room: Uuid, rule: Arc<RoomRule>) -> Result<RoomChanges> {
        let context = (room, rule);
        self.transaction(&context, |store, session, (room, rule)| {
            Box::pin(async move {
                let room_identity = room.to_string();
                let Some(found) = store
                    .rooms
                    .find_one(doc! { "identity": &room_identity })
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(Err(Error::NotFound(Entity::Room)));
                };
                let mut members = Vec::new();
                let mut cursor = store
                    .members
                    .find(doc! { "room_identity": &room_identity })
                    .sort(doc! { "joined_at": 1, "_id": 1 })
                    .session(&mut *session)
                    .await?;
                while let Some(member) = cursor.next(&mut *session).await.transpose()? {
                    members.push(member);
                }
                let scene = match scene_of(found, members) {
                    Ok(scene) => scene,
                    Err(error) => return Ok(Err(error)),
                };
                let edits = match rule(&scene) {
                    Ok(edits) => edits,
                    Err(error) => return Ok(Err(error)),
                };
                let mut changes = RoomChanges::default();
                let mut remaining = scene.members.len();
                for edit in edits {
                    let rev = store.take_rev(&room_identity, session).await?;
                    match store
                        .apply_room_edit(&room_identity, edit, rev, session)
                        .await?
                    {
                        Ok(change) => {
                            if matches!(change, Stored::Departure(_)) {
                                remaining = remaining.saturating_sub(1);
                            }
                            changes.changes.push(change);
                        }
                        Err(error) => return Ok(Err(error)),
                    }
                }
                if remaining == 0 {
                    store
                        .rooms
                        .delete_one(doc! { "identity": &room_identity })
                        .session(&mut *session)
                        .await?;
                    store.delete_contents(&room_identity, session).await?;
                    changes.deleted = true;
                }
                Ok(Ok(changes))
            })
        })
        .await?
    }

    async fn message(&self, identity: Uuid) -> Result<Option<MessageRecord>> {
        self.timed(
            self.messages
                .find_one(doc! { "identity": identity.to_string() }),
        )
        .await?
        .map(MessageDoc::into_record)
        .transpose()
    }

    async fn change_message(
        &self,
        identity: Uuid,
        actor: Uuid,
        rule: Arc<MessageRule>,
    ) -> Result<(MessageRecord, bool)> {
        let context = (identity.to_string(), actor.to_string(), rule);
        self.transaction(&context, |store, session, (identity, actor, rule)| {
            Box::pin(async move {
                let Some(message) = store
                    .messages
                    .find_one(doc! { "identity": &*identity })
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(Err(Error::NotFound(Entity::Message)));
                };
                let room = message.room_identity.clone();
                let Some(found) = store
                    .rooms
                    .find_one(doc! { "identity": &room })
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(Err(Error::NotFound(Entity::Message)));
                };
                let member = store
                    .members
                    .find_one(doc! { "user_identity": &*actor, "room_identity": &room })
                    .session(&mut *session)
                    .await?;
                let scene = (|| {
                    Ok(MessageScene {
                        message: message.into_record()?,
                        room: found.into_record()?,
                        actor: member.map(MemberDoc::into_record).transpose()?,
                    })
                })();
                let scene: MessageScene = match scene {
                    Ok(scene) => scene,
                    Err(error) => return Ok(Err(error)),
                };
                let mut changed = match rule(&scene) {
                    Ok(Some(changed)) => changed,
                    Ok(None) => return Ok(Ok((scene.message, false))),
                    Err(error) => return Ok(Err(error)),
                };
                changed.rev = store.take_rev(&room, session).await?;
                let mut set = doc! {
                    "content": &changed.content,
                    "edited_at": changed.edited_at.map(to_bson_time),
                    "deleted_at": changed.deleted_at.map(to_bson_time),
                    "rev": changed.rev,
                    "change": changed.change.as_str(),
                };
                set.insert(
                    "reactions",
                    mongodb::bson::to_bson(&reaction_docs(&changed.reactions))?,
                );
                set.insert("search_terms", search_terms(&changed));
                store
                    .messages
                    .update_one(doc! { "identity": &*identity }, doc! { "$set": set })
                    .session(&mut *session)
                    .await?;
                Ok(Ok((changed, true)))
            })
        })
        .await?
    }

    async fn changes(&self, room: Uuid, after: i64, limit: usize) -> Result<Vec<Stored>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let newer = doc! { "room_identity": room.to_string(), "rev": { "$gt": after } };
        let by_rev = doc! { "rev": 1 };
        let (messages, members, departures, found) = futures_util::try_join!(
            self.all(
                self.messages
                    .find(newer.clone())
                    .sort(by_rev.clone())
                    .limit(limit_of(limit))
            ),
            self.all(
                self.members
                    .find(newer.clone())
                    .sort(by_rev.clone())
                    .limit(limit_of(limit))
            ),
            self.all(
                self.departures
                    .find(newer.clone())
                    .sort(by_rev.clone())
                    .limit(limit_of(limit))
            ),
            self.room(room),
        )?;
        let mut changes = Vec::new();
        for message in messages {
            changes.push(Stored::Message(message.into_record()?));
        }
        for member in members {
            changes.push(Stored::Member(member.into_record()?));
        }
        for departure in departures {
            changes.push(Stored::Departure(departure.into_record()?));
        }
        if let Some(found) = found
            && found.updated_rev > after
        {
            changes.push(Stored::Room(found));
        }
        changes.sort_by_key(Stored::rev);
        changes.truncate(limit);
        Ok(changes)
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<(MessageRecord, bool)> {
        let (stored, created, _) = self.write(message, false).await?;
        Ok((stored, created))
    }

    /// In the message's batch (`sends`): the checks are read for the whole
    /// batch at once.
    async fn send_message(&self, message: &NewMessage) -> Result<Sent> {
        Sent::of(self.write(message, true).await)
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

    async fn search_messages(&self, search: &MessageSearch) -> Result<Vec<MessageRecord>> {
        self.search(search).await
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
