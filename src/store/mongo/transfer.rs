//! A whole store moved out and in (`chatroom export` and `import`).

use std::{collections::HashSet, time::Duration};

use futures_util::TryStreamExt;
use mongodb::{
    Collection, Cursor,
    bson::{Bson, Document, doc},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::Result,
    store::{BlockRecord, Loaded, Record, RecordStream, SettingsRecord, revisions_by_room},
};

use super::{
    MongoStore,
    documents::{
        BlockDoc, DepartureDoc, MemberDoc, MessageDoc, RoomDoc, UserDoc, from_bson_time,
        parse_identity, to_bson_time,
    },
    people::{lang_of, lang_to_stored},
    schema::db_error,
    within,
};

/// How many documents an export asks for in one round trip: bounds its
/// memory (the server's default is up to 16 MB a batch).
const EXPORT_BATCH: u32 = 500;

/// The next document of an export's cursor, bounded by `timeout`.
async fn next_of<T>(timeout: Duration, cursor: &mut Cursor<T>) -> Result<Option<T>>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    within(timeout, cursor.try_next()).await?.map_err(db_error)
}

impl MongoStore {
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
    pub(super) fn export_records(&self) -> RecordStream {
        let timeout = self.timeout;
        let (rooms, members, messages, departures, users, blocks) = (
            self.rooms.clone(),
            self.members.clone(),
            self.messages.clone(),
            self.departures.clone(),
            self.users.clone(),
            self.blocks.clone(),
        );
        let settings = self.db.collection::<Document>("users");
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
                let mut departure_cursor = within(
                    timeout,
                    departures
                        .find(doc! { "room_identity": &identity })
                        .sort(doc! { "rev": 1 })
                        .batch_size(EXPORT_BATCH),
                )
                .await?
                .map_err(db_error)?;
                while let Some(departure) = next_of(timeout, &mut departure_cursor).await? {
                    yield Record::Departure(departure.into_record()?);
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
            let mut block_cursor = within(
                timeout,
                blocks
                    .find(doc! {})
                    .sort(doc! { "blocker": 1, "blocked": 1 })
                    .batch_size(EXPORT_BATCH),
            )
            .await?
            .map_err(db_error)?;
            while let Some(block) = next_of(timeout, &mut block_cursor).await? {
                yield Record::Block(BlockRecord {
                    blocker: parse_identity(&block.blocker)?,
                    blocked: parse_identity(&block.blocked)?,
                    created_at: from_bson_time(block.created_at)?,
                });
            }
            let chosen = doc! { "$or": [
                { "email_digest": false },
                { "language": { "$exists": true, "$ne": "en" } },
            ] };
            let mut settings_cursor = within(
                timeout,
                settings
                    .find(chosen)
                    .projection(doc! { "identity": 1, "email_digest": 1, "language": 1 })
                    .sort(doc! { "identity": 1 })
                    .batch_size(EXPORT_BATCH),
            )
            .await?
            .map_err(db_error)?;
            while let Some(user) = next_of(timeout, &mut settings_cursor).await? {
                yield Record::Settings(SettingsRecord {
                    user: parse_identity(user.get_str("identity").unwrap_or_default())?,
                    email_digest: user.get_bool("email_digest").unwrap_or(true),
                    lang: lang_of(user.get_str("language").ok()),
                });
            }
        })
    }

    /// Not in a transaction: a batch of a large import would outgrow one,
    /// and a store being imported into is not yet serving anyone. An import
    /// cut short is finished by running it again with `skip_existing`.
    /// Existing records are looked up before the insert rather than told
    /// apart by the insert's errors, because a repeated message breaks two
    /// unique indexes and the server names only one of them.
    pub(super) async fn import_records(
        &self,
        records: &[Record],
        skip_existing: bool,
    ) -> Result<Loaded> {
        let (mut rooms, mut members, mut messages, mut departures, mut users) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut blocks, mut settings) = (Vec::new(), Vec::new());
        for record in records {
            match record {
                Record::Room(room) => rooms.push(RoomDoc::from_record(room)),
                Record::Member(member) => members.push(MemberDoc::from_record(member)),
                Record::Message(message) => messages.push(MessageDoc::from_record(message)),
                Record::Departure(departure) => {
                    departures.push(DepartureDoc::from_record(departure))
                }
                Record::User(user) => users.push(UserDoc::from_record(user)),
                Record::Block(block) => blocks.push(BlockDoc {
                    blocker: block.blocker.to_string(),
                    blocked: block.blocked.to_string(),
                    created_at: to_bson_time(block.created_at),
                }),
                Record::Settings(chosen) => settings.push(*chosen),
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
        if skip_existing && !blocks.is_empty() {
            let pairs: Vec<Document> = blocks
                .iter()
                .map(|b| doc! { "blocker": &b.blocker, "blocked": &b.blocked })
                .collect();
            let present: HashSet<(String, String)> = self
                .all(self.blocks.find(doc! { "$or": pairs }))
                .await?
                .into_iter()
                .map(|b| (b.blocker, b.blocked))
                .collect();
            blocks.retain(|b| !present.contains(&(b.blocker.clone(), b.blocked.clone())));
        }
        if skip_existing && !departures.is_empty() {
            let pairs: Vec<Document> = departures
                .iter()
                .map(|d| doc! { "user_identity": &d.user_identity, "room_identity": &d.room_identity })
                .collect();
            let present: HashSet<(String, String)> = self
                .all(self.departures.find(doc! { "$or": pairs }))
                .await?
                .into_iter()
                .map(|d| (d.user_identity, d.room_identity))
                .collect();
            departures
                .retain(|d| !present.contains(&(d.user_identity.clone(), d.room_identity.clone())));
        }
        let inserted = self.insert_all(&self.rooms, rooms).await?
            + self.insert_all(&self.members, members).await?
            + self.insert_all(&self.messages, messages).await?
            + self.insert_all(&self.departures, departures).await?
            + self.insert_all(&self.users, users).await?
            + self.insert_all(&self.blocks, blocks).await?;
        for chosen in &settings {
            self.timed(self.users.update_one(
                doc! { "identity": chosen.user.to_string() },
                doc! { "$set": {
                    "email_digest": chosen.email_digest,
                    "language": lang_to_stored(chosen.lang),
                } },
            ))
            .await?;
        }
        let inserted = inserted + settings.len() as u64;
        for (room, rev) in revisions_by_room(records) {
            self.timed(self.rooms.update_one(
                doc! { "identity": room.to_string() },
                doc! { "$max": { "rev": rev } },
            ))
            .await?;
        }
        Ok(Loaded {
            inserted,
            skipped: given - inserted,
        })
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
}
