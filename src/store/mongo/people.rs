//! [`People`] on MongoDB: the `blocks` collection, and the presence and
//! digest fields of `users` (absent in a user of an earlier version, and
//! read as their defaults: digests on, English, never seen, away since
//! registration).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    error::{Error, Lang, Result, Unique},
    store::{DigestDue, People, Profile, Seen},
};

use super::{
    MongoStore,
    documents::{
        BlockDoc, UserDoc, from_bson_time, identity_strings, parse_identity, profile_fields,
        to_bson_time,
    },
    limit_of,
};

pub(super) fn lang_of(stored: Option<&str>) -> Lang {
    match stored {
        Some("zh") => Lang::Zh,
        _ => Lang::En,
    }
}

pub(super) fn lang_to_stored(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

/// A user's absence began at `at`: the last connection's close, or for one
/// never seen, registration.
fn away_since_is(at: bson::DateTime) -> Document {
    doc! { "$or": [
        { "away_since": at },
        { "away_since": null, "created_at": at },
    ] }
}

/// The fields going offline at `at` sets: a new absence, with its digest
/// still to come.
fn gone_at(at: DateTime<Utc>) -> Document {
    let at = to_bson_time(at);
    doc! { "$set": {
        "online": false, "seen_at": at, "away_since": at, "digest_done": false,
        "digest_checked_at": null,
    } }
}

impl MongoStore {
    /// The members of `user`'s rooms whose identity passes `which` (a
    /// condition on `user_identity`), each once.
    async fn co_members(&self, user: Uuid, which: Document) -> Result<Vec<Uuid>> {
        let rooms = self
            .timed(
                self.members
                    .distinct("room_identity", doc! { "user_identity": user.to_string() }),
            )
            .await?;
        let members = self
            .timed(self.members.distinct(
                "user_identity",
                doc! { "room_identity": { "$in": rooms }, "user_identity": which },
            ))
            .await?;
        members
            .iter()
            .filter_map(bson::Bson::as_str)
            .map(parse_identity)
            .collect()
    }
}

#[async_trait]
impl People for MongoStore {
    async fn block(&self, blocker: Uuid, blocked: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let block = BlockDoc {
            blocker: blocker.to_string(),
            blocked: blocked.to_string(),
            created_at: to_bson_time(at),
        };
        match self.timed(self.blocks.insert_one(block)).await {
            Ok(_) => Ok(true),
            Err(Error::Conflict(Unique::Block)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool> {
        let deleted = self
            .timed(self.blocks.delete_one(doc! {
                "blocker": blocker.to_string(),
                "blocked": blocked.to_string(),
            }))
            .await?;
        Ok(deleted.deleted_count > 0)
    }

    async fn blocked_by(&self, blocker: Uuid) -> Result<Vec<Profile>> {
        let blocked = self
            .timed(
                self.blocks
                    .distinct("blocked", doc! { "blocker": blocker.to_string() }),
            )
            .await?;
        self.profiles_by_username(blocked).await
    }

    async fn blocked_identities(&self, blocker: Uuid) -> Result<Vec<Uuid>> {
        let blocked = self
            .timed(
                self.blocks
                    .distinct("blocked", doc! { "blocker": blocker.to_string() }),
            )
            .await?;
        blocked
            .iter()
            .map(|identity| parse_identity(identity.as_str().unwrap_or_default()))
            .collect()
    }

    async fn blocks_between(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let (user, others) = (user.to_string(), identity_strings(others));
        let blocks = self
            .all(self.blocks.find(doc! { "$or": [
                { "blocker": &user, "blocked": { "$in": &others } },
                { "blocked": &user, "blocker": { "$in": &others } },
            ] }))
            .await?;
        let mut found = HashSet::new();
        for block in blocks {
            let other = if block.blocker == user {
                block.blocked
            } else {
                block.blocker
            };
            found.insert(parse_identity(&other)?);
        }
        Ok(found.into_iter().collect())
    }

    async fn has_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool> {
        let found = self
            .timed(self.blocks.find_one(doc! {
                "blocker": blocker.to_string(),
                "blocked": blocked.to_string(),
            }))
            .await?;
        Ok(found.is_some())
    }

    async fn sharing_rooms(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        self.co_members(user, doc! { "$in": identity_strings(others) })
            .await
    }

    async fn contacts(&self, user: Uuid) -> Result<Vec<Uuid>> {
        self.co_members(user, doc! { "$ne": user.to_string() })
            .await
    }

    async fn record_seen(&self, seen: &[(Uuid, Seen)]) -> Result<()> {
        // One update per kind of change: everyone who came online, and
        // everyone who went at the same moment (a batch's goings share few).
        let mut online = Vec::new();
        let mut gone: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
        for (user, seen) in seen {
            match seen {
                Seen::Online => online.push(user.to_string()),
                Seen::Offline(at) => gone.entry(*at).or_default().push(user.to_string()),
            }
        }
        if !online.is_empty() {
            self.timed(self.users.update_many(
                doc! { "identity": { "$in": online } },
                doc! { "$set": { "online": true } },
            ))
            .await?;
        }
        for (at, users) in gone {
            self.timed(
                self.users
                    .update_many(doc! { "identity": { "$in": users } }, gone_at(at)),
            )
            .await?;
        }
        Ok(())
    }

    async fn all_gone(&self, at: DateTime<Utc>) -> Result<u64> {
        let changed = self
            .timed(self.users.update_many(doc! { "online": true }, gone_at(at)))
            .await?;
        Ok(changed.modified_count)
    }

    async fn last_seen(&self, users: &[Uuid]) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct SeenAt {
            identity: String,
            seen_at: bson::DateTime,
        }
        let found: Vec<SeenAt> = self
            .all(
                self.db
                    .collection::<SeenAt>("users")
                    .find(doc! {
                        "identity": { "$in": identity_strings(users) },
                        "seen_at": { "$type": "date" },
                    })
                    .projection(doc! { "identity": 1, "seen_at": 1, "_id": 0 }),
            )
            .await?;
        found
            .into_iter()
            .map(|seen| {
                Ok((
                    parse_identity(&seen.identity)?,
                    from_bson_time(seen.seen_at)?,
                ))
            })
            .collect()
    }

    async fn set_language(&self, user: Uuid, lang: Lang) -> Result<()> {
        self.timed(self.users.update_one(
            doc! { "identity": user.to_string() },
            doc! { "$set": { "language": lang_to_stored(lang) } },
        ))
        .await
        .map(drop)
    }

    async fn email_digest(&self, user: Uuid) -> Result<Option<bool>> {
        #[derive(Deserialize)]
        struct Setting {
            email_digest: Option<bool>,
        }
        let found = self
            .timed(
                self.db
                    .collection::<Setting>("users")
                    .find_one(doc! { "identity": user.to_string() })
                    .projection(doc! { "email_digest": 1, "_id": 0 }),
            )
            .await?;
        Ok(found.map(|setting| setting.email_digest.unwrap_or(true)))
    }

    async fn set_email_digest(&self, user: Uuid, on: bool) -> Result<()> {
        self.timed(self.users.update_one(
            doc! { "identity": user.to_string() },
            doc! { "$set": { "email_digest": on } },
        ))
        .await
        .map(drop)
    }

    async fn digests_due(
        &self,
        away_before: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DigestDue>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let away_before = to_bson_time(away_before);
        let filter = doc! { "$and": [
            { "online": { "$ne": true } },
            { "digest_done": { "$ne": true } },
            { "email_digest": { "$ne": false } },
            { "$or": [
                { "away_since": { "$lt": away_before } },
                { "away_since": null, "created_at": { "$lt": away_before } },
            ] },
            { "$or": [
                { "digest_checked_at": null },
                { "digest_checked_at": { "$lt": to_bson_time(checked_before) } },
            ] },
        ] };
        let found: Vec<Document> = self
            .all(
                self.db
                    .collection::<Document>("users")
                    .find(filter)
                    .projection(profile_fields())
                    .sort(doc! { "away_since": 1, "created_at": 1 })
                    .limit(limit_of(limit)),
            )
            .await?;
        found
            .into_iter()
            .map(|fields| {
                let away_since = fields.get_datetime("away_since").ok().copied();
                let lang = lang_of(fields.get_str("language").ok());
                let profile = bson::from_document::<UserDoc>(fields)
                    .map_err(Error::internal)?
                    .into_profile()?;
                let away_since = match away_since {
                    Some(at) => from_bson_time(at)?,
                    None => profile.created_at,
                };
                Ok(DigestDue {
                    profile,
                    away_since,
                    lang,
                })
            })
            .collect()
    }

    async fn digest_checked(&self, user: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.timed(self.users.update_one(
            doc! { "identity": user.to_string() },
            doc! { "$set": { "digest_checked_at": to_bson_time(at) } },
        ))
        .await
        .map(drop)
    }

    async fn claim_digest(&self, user: Uuid, away_since: DateTime<Utc>) -> Result<bool> {
        let filter = doc! { "$and": [
            { "identity": user.to_string() },
            { "online": { "$ne": true } },
            { "digest_done": { "$ne": true } },
            away_since_is(to_bson_time(away_since)),
        ] };
        let claimed = self
            .timed(
                self.users
                    .update_one(filter, doc! { "$set": { "digest_done": true } }),
            )
            .await?;
        Ok(claimed.modified_count > 0)
    }
}
