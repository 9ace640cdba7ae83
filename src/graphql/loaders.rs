//! Batched store reads for fields of many objects at once.
//!
//! `rooms` may return hundreds of rooms, each asking for its creator,
//! members, last message and unread count. Each field asks the one loader of
//! its request; the loader gathers the keys asked for in the same tick and
//! answers them with one store call per kind, so a page costs a bounded
//! number of store calls however many rooms it holds.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use crate::{
    app::App,
    auth::Credentials,
    chat::{nodes, presence, typing},
    store::{MemberRecord, MessageRecord, Profile, RoomRecord},
};

/// The store behind a request's loader, and who is asking (unread counts
/// are the viewer's own).
pub struct StoreLoader {
    app: Arc<App>,
    viewer: Option<Uuid>,
}

/// The loader of one request or socket.
pub fn loader(app: Arc<App>, credentials: &Credentials) -> DataLoader<StoreLoader> {
    let viewer = credentials.viewer().ok().map(|viewer| viewer.identity);
    DataLoader::new(StoreLoader { app, viewer }, tokio::spawn)
}

/// A user by identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);

/// A room's members, in joining order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersKey(pub Uuid);

/// Who types in a room, the viewer left out by the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypingKey(pub Uuid);

/// A message by identity: the one another replies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageByIdentity(pub Uuid);

/// A room by identity, when the viewer is in it: `node` and `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisibleRoom(pub Uuid);

/// A message by identity, when the viewer is in its room: `node` and `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisibleMessage(pub Uuid);

/// The message at (room, seq): a room's last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey(pub Uuid, pub i64);

/// A user's presence as the viewer sees it (none: not theirs to see).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresenceKey(pub Uuid);

/// The viewer's unread count in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnreadKey(pub Uuid);

type Loaded<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

impl Loader<UserKey> for StoreLoader {
    type Value = Profile;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserKey]) -> Loaded<UserKey, Profile> {
        let identities: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        Ok(self
            .app
            .store
            .users_by_identities(&identities)
            .await?
            .into_iter()
            .map(|user| (UserKey(user.identity), user))
            .collect())
    }
}

impl Loader<MembersKey> for StoreLoader {
    type Value = Vec<MemberRecord>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MembersKey]) -> Loaded<MembersKey, Vec<MemberRecord>> {
        let rooms: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        let mut members: HashMap<MembersKey, Vec<MemberRecord>> = HashMap::new();
        for member in self.app.store.members_of_rooms(&rooms).await? {
            members
                .entry(MembersKey(member.room_identity))
                .or_default()
                .push(member);
        }
        Ok(members)
    }
}

impl Loader<TypingKey> for StoreLoader {
    type Value = Vec<Uuid>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TypingKey]) -> Loaded<TypingKey, Vec<Uuid>> {
        let rooms: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        let typing = typing::typing_in_rooms(&self.app, &rooms).await?;
        Ok(rooms
            .into_iter()
            .zip(typing)
            .map(|(room, typers)| (TypingKey(room), typers))
            .collect())
    }
}

impl Loader<PresenceKey> for StoreLoader {
    type Value = presence::Status;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[PresenceKey]) -> Loaded<PresenceKey, presence::Status> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        let users: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        Ok(presence::status_of(&self.app, viewer, &users)
            .await?
            .into_iter()
            .map(|(user, status)| (PresenceKey(user), status))
            .collect())
    }
}

impl Loader<MessageByIdentity> for StoreLoader {
    type Value = MessageRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MessageByIdentity]) -> Loaded<MessageByIdentity, MessageRecord> {
        let identities: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        Ok(self
            .app
            .store
            .messages_by_identities(&identities)
            .await?
            .into_iter()
            .map(|message| (MessageByIdentity(message.identity), message))
            .collect())
    }
}

impl Loader<VisibleRoom> for StoreLoader {
    type Value = RoomRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[VisibleRoom]) -> Loaded<VisibleRoom, RoomRecord> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        let rooms: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        Ok(nodes::visible_rooms(&self.app, viewer, &rooms)
            .await?
            .into_iter()
            .map(|room| (VisibleRoom(room.identity), room))
            .collect())
    }
}

impl Loader<VisibleMessage> for StoreLoader {
    type Value = MessageRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[VisibleMessage]) -> Loaded<VisibleMessage, MessageRecord> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        let messages: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        Ok(nodes::visible_messages(&self.app, viewer, &messages)
            .await?
            .into_iter()
            .map(|message| (VisibleMessage(message.identity), message))
            .collect())
    }
}

impl Loader<MessageKey> for StoreLoader {
    type Value = MessageRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MessageKey]) -> Loaded<MessageKey, MessageRecord> {
        let positions: Vec<(Uuid, i64)> = keys.iter().map(|key| (key.0, key.1)).collect();
        Ok(self
            .app
            .store
            .messages_at(&positions)
            .await?
            .into_iter()
            .map(|message| (MessageKey(message.room_identity, message.seq), message))
            .collect())
    }
}

impl Loader<UnreadKey> for StoreLoader {
    type Value = u64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UnreadKey]) -> Loaded<UnreadKey, u64> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        let rooms: Vec<Uuid> = keys.iter().map(|key| key.0).collect();
        let memberships = self.app.store.memberships(viewer, &rooms).await?;
        Ok(self
            .app
            .store
            .unread_counts(viewer, &memberships)
            .await?
            .into_iter()
            .map(|(room, count)| (UnreadKey(room), count))
            .collect())
    }
}
