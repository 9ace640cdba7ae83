//! GraphQL output types and scalars shared by the schema's parts.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputValueError, InputValueResult, Interface, Object, Result,
    Scalar, ScalarType, SimpleObject, Value, dataloader::DataLoader,
};
use chrono::{SecondsFormat, Utc};

use super::{
    ContextExt,
    loaders::{
        MembersKey, MessageByIdentity, MessageKey, PresenceKey, StoreLoader, TypingKey, UnreadKey,
        UserKey,
    },
};
use crate::{
    broker::{LobbyEvent, MessageEvent},
    chat::{accounts, messages, nodes::NodeId, presence, search, social},
    error::Error,
    store::{self, MemberRecord, MessageRecord, Profile, RoomRecord},
};

/// RFC 3339 timestamp in UTC, e.g. "2026-11-26T19:41:14.123Z".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// RFC 3339 timestamp in UTC, e.g. "2026-11-26T19:41:14.123Z".
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| DateTime(time.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 timestamp")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

// The store's `Sex`, as the schema names it (a `///` would describe it in the SDL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "store::Sex")]
pub enum Sex {
    Unknown,
    Male,
    Female,
}

// The store's `RoomType`, as the schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "store::RoomType")]
pub enum RoomType {
    /// Two members; created by addFriend. Exactly one per pair of users.
    Private,
    /// Any number of members; created by createGroup.
    Group,
}

// The store's `Role`, as the schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "store::Role", name = "MemberRole")]
pub enum MemberRole {
    /// Created the group or was handed it; a GROUP room has exactly one.
    Owner,
    /// May rename the group, remove members and delete others' messages.
    Admin,
    Member,
}

/// An object a client may refetch by its global id with `node(id:)`.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Opaque and stable: the same object always has the same id."
))]
pub enum Node {
    User(User),
    Room(Room),
    Message(Message),
}

/// A user as some viewer sees them.
pub struct User {
    record: Profile,
    /// Known to be shown to the user themself, whatever the request's token
    /// says: `register` and `login` answer before the client holds a token.
    to_self: bool,
}

impl User {
    pub fn new(record: Profile) -> Self {
        Self {
            record,
            to_self: false,
        }
    }

    pub fn to_self(record: Profile) -> Self {
        Self {
            record,
            to_self: true,
        }
    }
}

#[async_graphql::Object]
impl User {
    /// The global id (Relay's `Node`): opaque; `node(id:)` refetches this user by it.
    async fn id(&self) -> ID {
        ID(NodeId::User(self.record.identity).encode())
    }

    async fn identity(&self) -> ID {
        ID(self.record.identity.to_string())
    }

    async fn username(&self) -> &str {
        &self.record.username
    }

    async fn nickname(&self) -> &str {
        &self.record.nickname
    }

    async fn sex(&self) -> Sex {
        self.record.sex.into()
    }

    /// Only visible to the user themself; null for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let is_self = self.to_self
            || ctx
                .viewer()
                .is_ok_and(|viewer| viewer.identity == self.record.identity);
        is_self.then_some(self.record.email.as_str())
    }

    async fn avatar(&self) -> Option<&str> {
        self.record.avatar.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.record.created_at)
    }

    async fn updated_at(&self) -> DateTime {
        DateTime(self.record.updated_at)
    }

    /// Null unless the viewer is this user, a friend of theirs, or shares a
    /// room with them, and neither has blocked the other.
    async fn presence(&self, ctx: &Context<'_>) -> Result<Option<Presence>> {
        Ok(loader(ctx)
            .load_one(PresenceKey(self.record.identity))
            .await?
            .map(Presence))
    }

    /// Whether this user gets digest mails of what they missed; null for
    /// everyone but the user themself.
    async fn email_digest(&self, ctx: &Context<'_>) -> Result<Option<bool>> {
        let is_self = self.to_self
            || ctx
                .viewer()
                .is_ok_and(|viewer| viewer.identity == self.record.identity);
        if !is_self {
            return Ok(None);
        }
        Ok(ctx.app().store.email_digest(self.record.identity).await?)
    }
}

/// Whether a user has a live connection, as the people allowed to see it see it.
pub struct Presence(pub presence::Status);

#[Object]
impl Presence {
    async fn online(&self) -> bool {
        self.0.online
    }

    /// When their last connection closed; null while online or if never seen.
    async fn last_seen_at(&self) -> Option<DateTime> {
        self.0.last_seen_at.map(DateTime)
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuthPayload {
    /// JWT; send as `Authorization: Bearer <token>` over HTTP and as
    /// `{"token": "<token>"}` in the graphql-ws connection_init payload.
    pub token: String,
    pub expires_at: DateTime,
    #[graphql(skip)]
    pub user: Profile,
}

#[ComplexObject]
impl AuthPayload {
    async fn user(&self) -> User {
        User::to_self(self.user.clone())
    }
}

impl From<accounts::Session> for AuthPayload {
    fn from(session: accounts::Session) -> Self {
        Self {
            token: session.token,
            expires_at: DateTime(session.expires_at),
            user: session.user,
        }
    }
}

#[derive(SimpleObject)]
pub struct SendCodePayload {
    /// Seconds until the code expires.
    pub expires_in: i32,
    /// Seconds before another code may be requested for this address.
    pub resend_after: i32,
}

impl From<accounts::CodeSent> for SendCodePayload {
    fn from(sent: accounts::CodeSent) -> Self {
        Self {
            expires_in: i32::try_from(sent.expires_in).unwrap_or(i32::MAX),
            resend_after: i32::try_from(sent.resend_after).unwrap_or(i32::MAX),
        }
    }
}

pub(super) fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<StoreLoader> {
    ctx.data_unchecked::<DataLoader<StoreLoader>>()
}

/// A user the store must have (a room's creator, a member, a sender).
pub async fn load_user(ctx: &Context<'_>, identity: uuid::Uuid) -> Result<User> {
    loader(ctx)
        .load_one(UserKey(identity))
        .await?
        .map(User::new)
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!("user {identity} is referenced but missing")).into()
        })
}

/// A room's members, in joining order, through the request's loader.
async fn members_of(ctx: &Context<'_>, room: uuid::Uuid) -> Result<Vec<MemberRecord>> {
    Ok(loader(ctx)
        .load_one(MembersKey(room))
        .await?
        .unwrap_or_default())
}

/// A member of a room: role and read position.
pub struct Membership(pub MemberRecord);

#[Object]
impl Membership {
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.user_identity).await
    }

    /// Always MEMBER in a PRIVATE room.
    async fn role(&self) -> MemberRole {
        self.0.role.into()
    }

    async fn joined_at(&self) -> DateTime {
        DateTime(self.0.joined_at)
    }

    /// The cursor of the newest message this member has read (their read
    /// receipt); null while they have read nothing.
    async fn last_read_cursor(&self) -> Option<String> {
        (self.0.last_read_seq > 0)
            .then(|| messages::encode_cursor(self.0.room_identity, self.0.last_read_seq))
    }

    async fn last_read_at(&self) -> Option<DateTime> {
        self.0.last_read_at.map(DateTime)
    }
}

/// One emoji on a message and how many members reacted with it.
pub struct Reaction {
    emoji: String,
    count: usize,
    by_viewer: bool,
}

#[Object]
impl Reaction {
    /// A single emoji: one extended grapheme cluster of Unicode emoji.
    async fn emoji(&self) -> &str {
        &self.emoji
    }

    async fn count(&self) -> i32 {
        i32::try_from(self.count).unwrap_or(i32::MAX)
    }

    /// Whether the viewer is one of them.
    async fn by_viewer(&self) -> bool {
        self.by_viewer
    }
}

pub struct Room(pub RoomRecord);

#[Object]
impl Room {
    /// The global id (Relay's `Node`): opaque; `node(id:)` refetches this room by it.
    async fn id(&self) -> ID {
        ID(NodeId::Room(self.0.identity).encode())
    }

    async fn identity(&self) -> ID {
        ID(self.0.identity.to_string())
    }

    /// Short human-shareable room number, unique.
    async fn number(&self) -> &str {
        &self.0.number
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn info(&self) -> &str {
        &self.0.info
    }

    async fn room_type(&self) -> RoomType {
        self.0.room_type.into()
    }

    async fn creator(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.creator_identity).await
    }

    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let members = members_of(ctx, self.0.identity).await?;
        let users = loader(ctx)
            .load_many(members.iter().map(|member| UserKey(member.user_identity)))
            .await?;
        Ok(members
            .iter()
            .filter_map(|member| users.get(&UserKey(member.user_identity)).cloned())
            .map(User::new)
            .collect())
    }

    /// Every member with role and read position, in the order they joined.
    async fn memberships(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        Ok(members_of(ctx, self.0.identity)
            .await?
            .into_iter()
            .map(Membership)
            .collect())
    }

    async fn viewer_role(&self, ctx: &Context<'_>) -> Result<MemberRole> {
        let viewer = ctx.viewer()?.identity;
        let members = members_of(ctx, self.0.identity).await?;
        Ok(members
            .iter()
            .find(|member| member.user_identity == viewer)
            .map_or(MemberRole::Member, |member| member.role.into()))
    }

    /// The cursor of the room's newest change as this room was read: with it
    /// as `roomEvents(after:)`, a client that read the room (its members,
    /// its history) follows every change since, with no gap.
    async fn event_cursor(&self) -> String {
        messages::encode_event_cursor(self.0.identity, self.0.rev)
    }

    /// Members other than the viewer who are typing now.
    async fn typing(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let viewer = ctx.viewer()?.identity;
        let typers: Vec<uuid::Uuid> = loader(ctx)
            .load_one(TypingKey(self.0.identity))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|typer| *typer != viewer)
            .collect();
        let users = loader(ctx)
            .load_many(typers.iter().copied().map(UserKey))
            .await?;
        Ok(typers
            .iter()
            .filter_map(|identity| users.get(&UserKey(*identity)).cloned())
            .map(User::new)
            .collect())
    }

    async fn member_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let members = members_of(ctx, self.0.identity).await?;
        Ok(i32::try_from(members.len()).unwrap_or(i32::MAX))
    }

    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        if self.0.seq == 0 {
            return Ok(None);
        }
        let message = loader(ctx)
            .load_one(MessageKey(self.0.identity, self.0.seq))
            .await?;
        Ok(message.map(Message::stored))
    }

    /// Messages from others newer than the viewer's last markRoomRead.
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let unread = loader(ctx).load_one(UnreadKey(self.0.identity)).await?;
        Ok(unread.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)))
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
}

/// A message, with its sender when it came with one (live events do).
pub struct Message {
    record: MessageRecord,
    sender: Option<Profile>,
}

impl Message {
    pub fn stored(record: MessageRecord) -> Self {
        Self {
            record,
            sender: None,
        }
    }
}

impl From<Arc<MessageEvent>> for Message {
    fn from(event: Arc<MessageEvent>) -> Self {
        let event = Arc::unwrap_or_clone(event);
        Self {
            record: event.message,
            sender: Some(event.sender),
        }
    }
}

#[Object]
impl Message {
    /// The global id (Relay's `Node`): opaque; `node(id:)` refetches this message by it.
    async fn id(&self) -> ID {
        ID(NodeId::Message(self.record.identity).encode())
    }

    async fn identity(&self) -> ID {
        ID(self.record.identity.to_string())
    }

    async fn room_identity(&self) -> ID {
        ID(self.record.room_identity.to_string())
    }

    async fn sender(&self, ctx: &Context<'_>) -> Result<User> {
        match &self.sender {
            Some(sender) => Ok(User::new(sender.clone())),
            None => load_user(ctx, self.record.sender_identity).await,
        }
    }

    async fn content(&self) -> &str {
        &self.record.content
    }

    /// The clientId given to sendMessage, echoed back (null if none).
    async fn client_id(&self) -> Option<&str> {
        self.record.client_id.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.record.created_at)
    }

    /// Opaque, totally ordered within the room; usable as before/after.
    async fn cursor(&self) -> String {
        messages::encode_cursor(self.record.room_identity, self.record.seq)
    }

    /// When the sender last edited it; null if never.
    async fn edited_at(&self) -> Option<DateTime> {
        self.record.edited_at.map(DateTime)
    }

    /// When it was deleted. A deleted message keeps its place in the history,
    /// with empty content and no reactions.
    async fn deleted_at(&self) -> Option<DateTime> {
        self.record.deleted_at.map(DateTime)
    }

    /// The message of the same room that this one answers; null if none.
    async fn reply_to(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(replied) = self.record.reply_to else {
            return Ok(None);
        };
        let message = loader(ctx).load_one(MessageByIdentity(replied)).await?;
        Ok(message.map(Message::stored))
    }

    /// Reactions, the most used first (ties: the earliest first).
    async fn reactions(&self, ctx: &Context<'_>) -> Vec<Reaction> {
        let viewer = ctx.viewer().ok().map(|viewer| viewer.identity);
        let mut reactions: Vec<Reaction> = self
            .record
            .reactions
            .iter()
            .map(|reaction| Reaction {
                emoji: reaction.emoji.clone(),
                count: reaction.users.len(),
                by_viewer: viewer.is_some_and(|viewer| reaction.users.contains(&viewer)),
            })
            .collect();
        // Stable: among equal counts the order stored, which is first added.
        reactions.sort_by_key(|reaction| std::cmp::Reverse(reaction.count));
        reactions
    }
}

/// A message on the server-wide lobby channel.
pub struct LobbyMessage(pub Arc<LobbyEvent>);

#[Object]
impl LobbyMessage {
    async fn sender(&self) -> User {
        User::new(self.0.sender.clone())
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// Another user's public profile as seen by the viewer.
pub struct UserProfile(pub social::Contact);

#[Object]
impl UserProfile {
    async fn user(&self) -> User {
        User::new(self.0.user.clone())
    }

    /// True when the viewer and this user share a PRIVATE room.
    async fn is_friend(&self) -> bool {
        self.0.private_room.is_some()
    }

    /// The PRIVATE room shared with this user, when friends.
    async fn private_room(&self) -> Option<Room> {
        self.0.private_room.clone().map(Room)
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

pub struct MessageEdge {
    cursor: String,
    message: MessageRecord,
}

#[Object]
impl MessageEdge {
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    async fn node(&self) -> Message {
        Message::stored(self.message.clone())
    }
}

/// Relay-style connection; edges are oldest first, but newest first in
/// `searchMessages`, whose cursors serve only its own `after`.
pub struct MessageConnection {
    page: messages::Page,
    cursor: fn(&MessageRecord) -> String,
}

impl MessageConnection {
    /// A page of a room's history: each edge's cursor is its message's.
    pub fn history(page: messages::Page) -> Self {
        Self {
            page,
            cursor: |message| messages::encode_cursor(message.room_identity, message.seq),
        }
    }

    /// A page of search results, with cursors that name their messages.
    pub fn search(page: messages::Page) -> Self {
        Self {
            page,
            cursor: |message| search::encode_cursor(message.identity),
        }
    }
}

#[Object]
impl MessageConnection {
    async fn edges(&self) -> Vec<MessageEdge> {
        self.page
            .messages
            .iter()
            .map(|message| MessageEdge {
                cursor: (self.cursor)(message),
                message: message.clone(),
            })
            .collect()
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.page.has_next,
            has_previous_page: self.page.has_previous,
            start_cursor: self.page.messages.first().map(self.cursor),
            end_cursor: self.page.messages.last().map(self.cursor),
        }
    }
}
