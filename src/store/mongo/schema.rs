//! The collections' indexes, created at start (creating an existing index
//! is a no-op, so a fresh database and an upgraded one end up the same),
//! and what the driver's failures mean: a duplicate key in a unique index
//! is a conflict on the value that index keeps unique.

use futures_util::TryStreamExt;
use mongodb::{
    IndexModel,
    bson::{Document, doc},
    error::{ErrorKind, InsertManyError, WriteFailure},
    options::IndexOptions,
};

use crate::{
    error::{Error, Unique},
    store::{Role, RoomType},
};

use super::{MongoStore, documents::search_terms};

/// MongoDB's code for a duplicate key in a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// MongoDB's codes for an index that cannot be made as asked: one a
/// sharded collection cannot have (`CannotCreateIndex`), or one of that
/// name or keys that exists with other options (`IndexOptionsConflict`,
/// `IndexKeySpecsConflict`).
const CANNOT_BE_UNIQUE: [i32; 3] = [67, 85, 86];

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
        "users_identity" | "rooms_identity" | "messages_identity" | "room_departures_room_user" => {
            Unique::Identity
        }
        "room_members_room_user" => Unique::Membership,
        "messages_room_seq" => Unique::Seq,
        "blocks_blocker_blocked" => Unique::Block,
        _ => return None,
    })
}

/// An index named `name` on `keys`, with the options `set` gives it.
fn index(keys: Document, name: &str, set: impl FnOnce(&mut IndexOptions)) -> IndexModel {
    let mut options = IndexOptions::default();
    options.name = Some(name.to_owned());
    set(&mut options);
    IndexModel::builder().keys(keys).options(options).build()
}

fn plain(keys: Document, name: &str) -> IndexModel {
    index(keys, name, |_| {})
}

fn unique(keys: Document, name: &str) -> IndexModel {
    index(keys, name, |options| options.unique = Some(true))
}

/// A unique index that only covers documents where `field` is a string, so
/// documents without it never collide (PRIVATE-only `pair_key`, optional `client_id`).
fn unique_where_string(keys: Document, name: &str, field: &str) -> IndexModel {
    index(keys, name, |options| {
        options.unique = Some(true);
        options.partial_filter_expression = Some(doc! { field: { "$type": "string" } });
    })
}

/// Maps a driver failure: a duplicate key becomes `Conflict` on its field, a
/// server that cannot be reached `Unavailable`, the rest `Internal`.
pub fn db_error(error: mongodb::error::Error) -> Error {
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

impl MongoStore {
    pub(super) async fn create_indexes(&self) -> anyhow::Result<()> {
        let indexes: [(&str, Vec<IndexModel>); 6] = [
            (
                "users",
                vec![
                    unique(doc! { "identity": 1 }, "users_identity"),
                    unique(doc! { "username_key": 1 }, "users_username_key"),
                    unique(doc! { "email": 1 }, "users_email"),
                    plain(doc! { "nickname_key": 1 }, "users_nickname_key"),
                    plain(
                        doc! { "digest_done": 1, "away_since": 1, "created_at": 1 },
                        "users_digests",
                    ),
                ],
            ),
            (
                "blocks",
                vec![
                    unique(
                        doc! { "blocker": 1, "blocked": 1 },
                        "blocks_blocker_blocked",
                    ),
                    plain(doc! { "blocked": 1 }, "blocks_blocked"),
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
                    // The room first: what a collection sharded by room
                    // can keep unique (docs/deploy.md, "Sharded MongoDB").
                    unique(
                        doc! { "room_identity": 1, "user_identity": 1 },
                        "room_members_room_user",
                    ),
                    plain(doc! { "user_identity": 1 }, "room_members_user"),
                    plain(doc! { "room_identity": 1, "rev": 1 }, "room_members_rev"),
                ],
            ),
            (
                "room_departures",
                vec![
                    unique(
                        doc! { "room_identity": 1, "user_identity": 1 },
                        "room_departures_room_user",
                    ),
                    plain(doc! { "room_identity": 1, "rev": 1 }, "room_departures_rev"),
                ],
            ),
            (
                "messages",
                vec![
                    unique(doc! { "room_identity": 1, "seq": 1 }, "messages_room_seq"),
                    plain(doc! { "room_identity": 1, "rev": 1 }, "messages_rev"),
                    // Search (`search.rs`): by the terms within the rooms
                    // searched, or newest first through the rooms and each
                    // message checked; the server's planner picks whichever
                    // answers a query sooner.
                    plain(
                        doc! { "room_identity": 1, "search_terms": 1 },
                        "messages_search_terms",
                    ),
                    plain(
                        doc! { "room_identity": 1, "created_at": -1, "identity": -1 },
                        "messages_room_time",
                    ),
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
        self.create_message_identity_index().await?;
        self.drop_replaced_indexes().await
    }

    /// Messages' identities, unique where the collection can keep that. A
    /// `messages` sharded by room cannot (a unique index there must start
    /// with the shard key, docs/deploy.md, "Sharded MongoDB"), and the
    /// operator makes it a plain index of the same name: left as it is,
    /// with a warning. Identities are UUIDs made once per message, so the
    /// unique index only guards against a store's own mistake.
    async fn create_message_identity_index(&self) -> anyhow::Result<()> {
        let model = unique(doc! { "identity": 1 }, "messages_identity");
        match self.messages.create_index(model).await {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.kind.as_ref(),
                    ErrorKind::Command(command) if CANNOT_BE_UNIQUE.contains(&command.code)
                ) =>
            {
                tracing::warn!(
                    error = %error,
                    "messages_identity is not unique here (a sharded cluster?): left as it is"
                );
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Drops, once, the membership indexes that `room_members_room_user`
    /// (created above) replaced: the unique one that began with the user
    /// (the same pairs, so nothing is lost) and the one on the room alone
    /// (its prefix).
    async fn drop_replaced_indexes(&self) -> anyhow::Result<()> {
        const REPLACED: [&str; 2] = ["room_members_user_room", "room_members_room"];
        let names = self.members.list_index_names().await?;
        for replaced in REPLACED {
            if names.iter().any(|name| name == replaced) {
                self.members.drop_index(replaced).await?;
            }
        }
        Ok(())
    }

    /// Brings documents of version 1 to version 2 (room events), once: a
    /// room goes on from its seq, its messages' revisions are their seqs,
    /// and a group's creator (or, gone, its first member) owns it. Only
    /// documents without a `rev` are read, so a started store costs one
    /// empty query per collection.
    pub(super) async fn migrate(&self) -> anyhow::Result<()> {
        let old = doc! { "rev": { "$exists": false } };
        let mut rooms = self.rooms.find(old.clone()).await?;
        while let Some(room) = rooms.try_next().await? {
            if room.room_type == RoomType::Group {
                let owner = self
                    .members
                    .find_one(doc! {
                        "room_identity": &room.identity,
                        "user_identity": &room.creator_identity,
                    })
                    .await?;
                let owner = match owner {
                    Some(owner) => Some(owner),
                    None => {
                        self.members
                            .find_one(doc! { "room_identity": &room.identity })
                            .sort(doc! { "joined_at": 1, "_id": 1 })
                            .await?
                    }
                };
                if let Some(owner) = owner {
                    self.members
                        .update_one(
                            doc! {
                                "room_identity": &room.identity,
                                "user_identity": &owner.user_identity,
                            },
                            doc! { "$set": { "role": Role::Owner.as_str() } },
                        )
                        .await?;
                }
            }
            self.rooms
                .update_one(
                    doc! { "identity": &room.identity },
                    doc! { "$set": { "rev": room.seq } },
                )
                .await?;
        }
        let mut messages = self.messages.find(old).await?;
        while let Some(message) = messages.try_next().await? {
            self.messages
                .update_one(
                    doc! { "identity": &message.identity },
                    doc! { "$set": { "rev": message.seq, "posted_rev": message.seq } },
                )
                .await?;
        }
        self.migrate_search().await
    }

    /// Gives every message stored before search its search terms, once:
    /// afterwards each write keeps them. A started store costs one query
    /// that finds nothing (a scan of the collection: no index can tell an
    /// absent field, as with `rev` above).
    async fn migrate_search(&self) -> anyhow::Result<()> {
        let mut messages = self
            .messages
            .find(doc! { "search_terms": { "$exists": false } })
            .await?;
        while let Some(message) = messages.try_next().await? {
            let identity = message.identity.clone();
            let terms = search_terms(&message.into_record()?);
            self.messages
                .update_one(
                    doc! { "identity": identity },
                    doc! { "$set": { "search_terms": terms } },
                )
                .await?;
        }
        Ok(())
    }
}
