//! Durable state behind one trait, one module per backend.
//!
//! [`Store`] is what the domain needs from a database; `sqlite` (the embedded
//! default) and `mongo` implement it, and nothing outside this folder knows
//! which one is in use. Both create the same collections / tables and unique
//! indexes at start (docs/architecture.md's data table): users, rooms, room_members and
//! messages. Uniqueness is the database's job, not a read-then-write in the
//! domain, so it holds under concurrent requests and across instances; a
//! violated unique index comes back as [`Error::Conflict`] naming which
//! [`Unique`](crate::error::Unique) value was taken.
//!
//! Timestamps are kept with millisecond precision (what MongoDB stores), so a
//! record reads back exactly as it was written.

mod mongo;
mod people;
pub mod search;
mod sqlite;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::stream::BoxStream;
use uuid::Uuid;

use crate::{
    config::Config,
    error::{Entity, Error, Problem, Result},
};

pub use mongo::MongoStore;
pub use people::{BlockRecord, DigestDue, People, Seen, SettingsRecord};
pub use sqlite::SqliteStore;

/// The current time, at the precision the stores keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A user as everything but the login check sees them: without the password
/// hash, so it can go anywhere: to clients, into loaders, in events through
/// Redis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub identity: Uuid,
    /// As registered; unique ignoring case ([`username_key`]).
    pub username: String,
    pub nickname: String,
    pub sex: Sex,
    /// Lower-case; unique.
    pub email: String,
    pub avatar: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user as stored: their profile and the hash a login is checked against.
/// Only the store, `login` and a whole store's transfer handle one; it is
/// not serializable, so it cannot ride in an event by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub profile: Profile,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// The form a username is unique in and looked up by: ASCII case ignored
/// (usernames are ASCII).
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// The form nicknames are searched in, and search prefixes with them: lower-case.
pub fn nickname_key(nickname: &str) -> String {
    nickname.to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoomType {
    /// Two members; created by addFriend. Exactly one per pair of users.
    Private,
    /// Any number of members; created by createGroup.
    Group,
}

impl RoomType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::Private => "PRIVATE",
            RoomType::Group => "GROUP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomRecord {
    pub identity: Uuid,
    /// Short, human-shareable, unique.
    pub number: String,
    /// Empty for PRIVATE rooms.
    pub name: String,
    /// Empty for PRIVATE rooms.
    pub info: String,
    pub creator_identity: Uuid,
    pub room_type: RoomType,
    /// PRIVATE only: [`pair_key`] of the two members, unique, so one pair
    /// never gets two rooms however many `addFriend` calls race.
    pub pair_key: Option<String>,
    /// The seq of the room's newest message; 0 before the first.
    pub seq: i64,
    /// The revision of the room's newest change (a message posted, edited,
    /// deleted or reacted to; a member joining, leaving, changing role or
    /// reading; the room renamed): 1, 2, 3, … without holes, one order for
    /// all of them. A room of version 1 starts at its `seq`.
    pub rev: i64,
    /// The revision of the last change of `name` or `info`; 0 if none.
    pub updated_rev: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RoomRecord {
    /// The member of a PRIVATE room other than `user`, read off its pair
    /// key; `None` for a group.
    pub fn other_member(&self, user: Uuid) -> Option<Uuid> {
        let (a, b) = self.pair_key.as_deref()?.split_once(':')?;
        let other = if a == user.to_string() { b } else { a };
        Uuid::parse_str(other).ok()
    }

    /// What `rooms` orders by, newest first.
    pub fn last_activity(&self) -> DateTime<Utc> {
        self.last_message_at.unwrap_or(self.created_at)
    }
}

/// The role of a room's first members: a group's first one (its creator)
/// owns it; everyone else, and both members of a PRIVATE room, are members.
pub fn first_role(room_type: RoomType, place: usize) -> Role {
    match (room_type, place) {
        (RoomType::Group, 0) => Role::Owner,
        _ => Role::Member,
    }
}

/// The unique key of two users' PRIVATE room: both identities, sorted.
pub fn pair_key(a: Uuid, b: Uuid) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

/// What a member may do in a GROUP room (API.md, "Who may do what").
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// A GROUP room has exactly one.
    Owner,
    Admin,
    #[default]
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Member => "MEMBER",
        }
    }

    /// Reads a stored value; anything unrecognised is `Member`, the role
    /// that may do least.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "OWNER" => Role::Owner,
            "ADMIN" => Role::Admin,
            _ => Role::Member,
        }
    }
}

/// The last change of a membership, which a replay names it by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberChange {
    #[default]
    Joined,
    Role,
    Read,
}

impl MemberChange {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberChange::Joined => "JOINED",
            MemberChange::Role => "ROLE",
            MemberChange::Read => "READ",
        }
    }

    pub fn from_stored(value: &str) -> Self {
        match value {
            "ROLE" => MemberChange::Role,
            "READ" => MemberChange::Read,
            _ => MemberChange::Joined,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberRecord {
    pub user_identity: Uuid,
    pub room_identity: Uuid,
    pub role: Role,
    /// The seq of the newest message this member has read (0: none).
    pub last_read_seq: i64,
    /// When `last_read_seq` last moved; `None` while it never did.
    pub last_read_at: Option<DateTime<Utc>>,
    pub joined_at: DateTime<Utc>,
    /// The room revision at which this member joined (0: with the room).
    pub joined_rev: i64,
    /// The room revision of this membership's last change.
    pub rev: i64,
    pub change: MemberChange,
}

impl MemberRecord {
    /// A member joining `room` at `joined_at`, at revision `rev`, with
    /// nothing unread: they have read up to `seq`.
    pub fn joining(
        room: Uuid,
        user: Uuid,
        role: Role,
        seq: i64,
        rev: i64,
        joined_at: DateTime<Utc>,
    ) -> Self {
        Self {
            user_identity: user,
            room_identity: room,
            role,
            last_read_seq: seq,
            last_read_at: None,
            joined_at,
            joined_rev: rev,
            rev,
            change: MemberChange::Joined,
        }
    }
}

/// A member who left or was removed: kept so that a replay can say so.
/// One per room and user, the latest departure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepartureRecord {
    pub room_identity: Uuid,
    pub user_identity: Uuid,
    /// Who removed them; `None` when they left.
    pub removed_by: Option<Uuid>,
    pub left_at: DateTime<Utc>,
    pub rev: i64,
}

/// The last change of a message, which a replay names it by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageChange {
    #[default]
    Posted,
    Edited,
    Deleted,
    Reactions,
}

impl MessageChange {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageChange::Posted => "POSTED",
            MessageChange::Edited => "EDITED",
            MessageChange::Deleted => "DELETED",
            MessageChange::Reactions => "REACTIONS",
        }
    }

    pub fn from_stored(value: &str) -> Self {
        match value {
            "EDITED" => MessageChange::Edited,
            "DELETED" => MessageChange::Deleted,
            "REACTIONS" => MessageChange::Reactions,
            _ => MessageChange::Posted,
        }
    }
}

/// One emoji on a message and who reacted with it, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReactionRecord {
    pub emoji: String,
    pub users: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageRecord {
    pub identity: Uuid,
    pub room_identity: Uuid,
    /// 1, 2, 3, … within the room, without holes: the order of delivery.
    pub seq: i64,
    pub sender_identity: Uuid,
    /// Empty once deleted.
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The message of the same room this one answers.
    #[serde(default)]
    pub reply_to: Option<Uuid>,
    #[serde(default)]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// In the order their emoji was first added (among those present).
    #[serde(default)]
    pub reactions: Vec<ReactionRecord>,
    /// The room revision at which it was posted.
    #[serde(default)]
    pub posted_rev: i64,
    /// The room revision of its last change.
    #[serde(default)]
    pub rev: i64,
    #[serde(default)]
    pub change: MessageChange,
}

/// A message to store; the store gives it its seq and revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub identity: Uuid,
    pub room_identity: Uuid,
    pub sender_identity: Uuid,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A message of the same room (checked by the store).
    pub reply_to: Option<Uuid>,
}

impl NewMessage {
    /// The message as stored at `seq`, posted at revision `rev`.
    pub fn at(&self, seq: i64, rev: i64) -> MessageRecord {
        MessageRecord {
            identity: self.identity,
            room_identity: self.room_identity,
            seq,
            sender_identity: self.sender_identity,
            content: self.content.clone(),
            client_id: self.client_id.clone(),
            created_at: self.created_at,
            reply_to: self.reply_to,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
            posted_rev: rev,
            rev,
            change: MessageChange::Posted,
        }
    }
}

/// `BadInput` on `replyTo` unless `replied` is a message of `room`.
pub fn check_reply(room: &RoomRecord, replied: Option<&MessageRecord>) -> Result<()> {
    match replied {
        Some(replied) if replied.room_identity == room.identity => Ok(()),
        _ => Err(Error::bad_input("replyTo", Problem::NotInRoom)),
    }
}

/// What a rule of [`Store::change_message`] decides on: the message, its
/// room, and the acting user's membership of it (none: not a member).
#[derive(Debug, Clone)]
pub struct MessageScene {
    pub message: MessageRecord,
    pub room: RoomRecord,
    pub actor: Option<MemberRecord>,
}

/// Decides a change to one message: its new state (`content`, `edited_at`,
/// `deleted_at`, `reactions`, `change`), `None` when nothing changes, or
/// why it may not be made. Run inside the store's transaction, perhaps
/// more than once (a transaction that conflicts runs again).
pub type MessageRule = dyn Fn(&MessageScene) -> Result<Option<MessageRecord>> + Send + Sync;

/// What a rule of [`Store::change_room`] decides on: the room and all its
/// members, in joining order.
#[derive(Debug, Clone)]
pub struct RoomScene {
    pub room: RoomRecord,
    pub members: Vec<MemberRecord>,
}

/// One change to a room and its members, as a rule decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEdit {
    Rename {
        name: String,
        info: String,
        at: DateTime<Utc>,
    },
    SetRole {
        user: Uuid,
        role: Role,
    },
    /// `user` leaves (`by: None`) or is removed by `by`.
    Remove {
        user: Uuid,
        by: Option<Uuid>,
        at: DateTime<Utc>,
    },
}

/// Decides the changes to a room, in the order they are made, or why they
/// may not be; like a [`MessageRule`], run inside the transaction.
pub type RoomRule = dyn Fn(&RoomScene) -> Result<Vec<RoomEdit>> + Send + Sync;

/// What [`Store::change_room`] did: the changes with their revisions (a
/// room renamed, a membership's new role, a departure), and whether the
/// room is gone (its last member left).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomChanges {
    pub changes: Vec<Stored>,
    pub deleted: bool,
}

/// One stored change of a room, with the state right after it: what a
/// change makes, and what a replay reads. A replay reads the state now, so
/// several changes of one message or member since its revision come as
/// one, at the last revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stored {
    Message(MessageRecord),
    Member(MemberRecord),
    Departure(DepartureRecord),
    Room(RoomRecord),
}

impl Stored {
    /// The revision of the change.
    pub fn rev(&self) -> i64 {
        match self {
            Stored::Message(message) => message.rev,
            Stored::Member(member) => member.rev,
            Stored::Departure(departure) => departure.rev,
            Stored::Room(room) => room.updated_rev,
        }
    }
}

/// What a store's message writer makes of one message: the message as
/// stored, whether this call stored it, and for a send its sender. Both
/// stores' writers answer in it.
pub(crate) type WriteOutcome = crate::error::Result<(MessageRecord, bool, Option<Profile>)>;

/// What [`Store::send_message`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message as stored: this one, or the first one sent with its
    /// `client_id`.
    pub message: MessageRecord,
    /// Whether this call stored it.
    pub created: bool,
    /// The sender, whom the event announcing the message names.
    pub sender: Profile,
}

impl Sent {
    /// A writer's answer to a send, which always carries the sender.
    pub(crate) fn of(outcome: WriteOutcome) -> crate::error::Result<Self> {
        let (message, created, sender) = outcome?;
        let sender = sender.ok_or_else(|| {
            crate::error::Error::internal(anyhow::anyhow!("a send came back without its sender"))
        })?;
        Ok(Self {
            message,
            created,
            sender,
        })
    }
}

/// A slice of a room's history: seqs strictly between `after` and `before`,
/// at most `limit` of them, the oldest ones (`newest: false`) or the newest
/// ones (`newest: true`); returned oldest first either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub limit: usize,
    pub newest: bool,
}

/// What [`Store::search_messages`] looks for, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSearch {
    /// Every one must match ([`search::matches`]); at least one.
    pub terms: Vec<search::Term>,
    /// The rooms searched.
    pub rooms: Vec<Uuid>,
    /// The identity of the message the previous page ended with.
    pub after: Option<Uuid>,
    pub limit: usize,
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

/// One stored record, as `chatroom export` reads them and `chatroom import`
/// writes them back: everything a store holds is a sequence of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    User(UserRecord),
    Room(RoomRecord),
    Member(MemberRecord),
    Message(MessageRecord),
    Departure(DepartureRecord),
    Block(BlockRecord),
    Settings(SettingsRecord),
}

/// The newest revision the records of each room carry. A room is exported
/// before its members and messages; one of them changed in between carries a
/// revision above the room's, which an import raises the room's to, so the
/// room's next change is newer than all of them.
pub fn revisions_by_room(records: &[Record]) -> HashMap<Uuid, i64> {
    let mut newest: HashMap<Uuid, i64> = HashMap::new();
    for record in records {
        let (room, rev) = match record {
            Record::Member(member) => (member.room_identity, member.rev),
            Record::Message(message) => (message.room_identity, message.rev),
            Record::Departure(departure) => (departure.room_identity, departure.rev),
            Record::User(_) | Record::Room(_) | Record::Block(_) | Record::Settings(_) => continue,
        };
        let entry = newest.entry(room).or_default();
        *entry = (*entry).max(rev);
    }
    newest
}

/// How many records of each kind a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub rooms: u64,
    pub members: u64,
    pub messages: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.users + self.rooms + self.members + self.messages
    }
}

/// What an [`Store::import`] batch did: records written, and records left
/// out because one with their identity was already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub inserted: u64,
    pub skipped: u64,
}

/// The records of a whole store, read lazily: see [`Store::export`].
pub type RecordStream = BoxStream<'static, Result<Record>>;

/// What the domain needs from a database.
///
/// Every method either does all it says or nothing. Errors: [`Error::Conflict`]
/// for a unique value taken, [`Error::Unavailable`] when the database cannot be
/// reached within the configured timeout, [`Error::Internal`] otherwise.
#[async_trait]
pub trait Store: People + Send + Sync {
    /// Succeeds when the database answers; `/readyz` asks this.
    async fn ping(&self) -> Result<()>;

    /// Inserts a new user. `Conflict` on `username` (ignoring case) or `email`.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;

    async fn user_by_identity(&self, identity: Uuid) -> Result<Option<Profile>>;

    /// Looks a username up ignoring case.
    async fn user_by_username(&self, username: &str) -> Result<Option<Profile>>;

    /// Looks a username up ignoring case, with the password hash: for
    /// checking a login, and nothing else.
    async fn login_record(&self, username: &str) -> Result<Option<UserRecord>>;

    /// Looks an email up; the caller gives it lower-case.
    async fn user_by_email(&self, email: &str) -> Result<Option<Profile>>;

    /// Applies a profile change; `None` when there is no such user.
    async fn update_profile(
        &self,
        identity: Uuid,
        update: &ProfileUpdate,
    ) -> Result<Option<Profile>>;

    /// Replaces a user's password hash; false when there is no such user.
    async fn set_password_hash(&self, identity: Uuid, password_hash: &str) -> Result<bool>;

    /// The users among `identities` that exist, in any order.
    async fn users_by_identities(&self, identities: &[Uuid]) -> Result<Vec<Profile>>;

    /// Users whose username or nickname starts with `prefix` ignoring case,
    /// except those in `exclude`, ordered by username (ignoring case), at
    /// most `limit`.
    async fn search_users(
        &self,
        prefix: &str,
        exclude: &[Uuid],
        limit: usize,
    ) -> Result<Vec<Profile>>;

    /// The users sharing a PRIVATE room with `user`, ordered by username (ignoring case).
    async fn friends(&self, user: Uuid) -> Result<Vec<Profile>>;

    // --- rooms and members ---

    /// Inserts a room and its first members (each with `last_read_seq` 0,
    /// `joined_at` = the room's `created_at`, revision 0; in a GROUP room the
    /// first one is its OWNER), all or nothing. `Conflict` on
    /// `pair_key` when the pair already has its PRIVATE room, on `number` when
    /// the number is taken.
    async fn create_room(&self, room: &RoomRecord, members: &[Uuid]) -> Result<()>;

    async fn room(&self, identity: Uuid) -> Result<Option<RoomRecord>>;

    /// The rooms among `identities` that exist, in any order.
    async fn rooms_by_identities(&self, identities: &[Uuid]) -> Result<Vec<RoomRecord>>;

    /// The PRIVATE room with this [`pair_key`], if any.
    async fn private_room(&self, pair_key: &str) -> Result<Option<RoomRecord>>;

    /// The rooms `user` is a member of, most recent activity first
    /// ([`RoomRecord::last_activity`]).
    async fn rooms_of_user(&self, user: Uuid) -> Result<Vec<RoomRecord>>;

    /// Deletes a room with its members and history; false when there was none.
    async fn delete_room(&self, room: Uuid) -> Result<bool>;

    async fn member(&self, room: Uuid, user: Uuid) -> Result<Option<MemberRecord>>;

    /// `user`'s memberships among `rooms`, in any order.
    async fn memberships(&self, user: Uuid, rooms: &[Uuid]) -> Result<Vec<MemberRecord>>;

    /// How many rooms each of `users` belongs to; users in none are left out.
    async fn room_counts(&self, users: &[Uuid]) -> Result<HashMap<Uuid, u64>>;

    /// The members of `rooms`, each room's in joining order.
    async fn members_of_rooms(&self, rooms: &[Uuid]) -> Result<Vec<MemberRecord>>;

    /// Adds members to an existing room, in the order given, ignoring those
    /// already in it; each new member is a MEMBER, starts at the room's
    /// current seq (nothing unread) and takes the room's next revision.
    /// Returns the ones added. `NotFound(Room)` when the room does not exist.
    async fn add_members(
        &self,
        room: Uuid,
        users: &[Uuid],
        joined_at: DateTime<Utc>,
    ) -> Result<Vec<MemberRecord>>;

    /// Moves the member's read position forward to `up_to` (default: the
    /// room's newest message), never back, taking the room's next revision
    /// when it moves. The membership, and whether it moved; `None` when
    /// `user` is not a member.
    async fn mark_read(
        &self,
        room: Uuid,
        user: Uuid,
        up_to: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Option<(MemberRecord, bool)>>;

    /// Reads the room and its members, has `rule` decide, and makes its
    /// changes, each with the room's next revision, all or nothing. A member
    /// who leaves or is removed gets a departure; when no member is left the
    /// room, its members and its history are deleted in the same step.
    /// `NotFound(Room)` when the room does not exist.
    async fn change_room(&self, room: Uuid, rule: Arc<RoomRule>) -> Result<RoomChanges>;

    // --- messages ---

    /// Stores a message with the room's next seq and next revision, taken
    /// atomically (no two messages share a seq, no seq is skipped), and moves
    /// the room's `seq`, `rev` and `last_message_at`. With a `client_id` already used by the
    /// same sender in the same room, stores nothing and returns the first
    /// message with `false`, also when the retries race. `NotFound(Room)`
    /// when the room does not exist.
    async fn insert_message(&self, message: &NewMessage) -> Result<(MessageRecord, bool)>;

    /// Stores a message as its sender sends it: [`Store::insert_message`]
    /// after the checks of a send, made in this order: `NotFound(Room)` when
    /// the room does not exist, `Forbidden` when the sender is not a member
    /// of it, `Unauthenticated` when no user has the sender's identity (a
    /// token can outlive its user's record in a store restored from a
    /// backup), `Forbidden` when the other member of a PRIVATE room blocked
    /// the sender (`chat::blocking`), `BadInput` on `replyTo` when `reply_to` is not a message of
    /// the room. Nothing is stored when a check fails.
    ///
    /// By default three reads at once, then the insert. This runs for every
    /// message sent, so a backend that can make the checks inside the
    /// insert's own transaction does: one step instead of two, and a member
    /// who leaves meanwhile cannot get a message in after leaving.
    async fn send_message(&self, message: &NewMessage) -> Result<Sent> {
        let (room, user) = (message.room_identity, message.sender_identity);
        let (room, member, sender) = futures_util::try_join!(
            self.room(room),
            self.member(room, user),
            self.user_by_identity(user)
        )?;
        let room = room.ok_or(Error::NotFound(Entity::Room))?;
        member.ok_or(Error::Forbidden)?;
        let sender = sender.ok_or(Error::Unauthenticated)?;
        if let Some(other) = room.other_member(user)
            && self.has_blocked(other, user).await?
        {
            return Err(Error::Forbidden);
        }
        if let Some(replied) = message.reply_to {
            let replied = self.message(replied).await?;
            check_reply(&room, replied.as_ref())?;
        }
        let (message, created) = self.insert_message(message).await?;
        Ok(Sent {
            message,
            created,
            sender,
        })
    }

    /// The message with this identity, deleted or not.
    async fn message(&self, identity: Uuid) -> Result<Option<MessageRecord>>;

    /// The messages among `identities` that exist, in any order: the
    /// messages a page of history replies to, in one call.
    async fn messages_by_identities(&self, identities: &[Uuid]) -> Result<Vec<MessageRecord>>;

    /// Reads the message, its room and `actor`'s membership, has `rule`
    /// decide, and stores what it decides with the room's next revision, all
    /// or nothing. The message as it is now, and whether it changed.
    /// `NotFound(Message)` when there is no such message.
    async fn change_message(
        &self,
        identity: Uuid,
        actor: Uuid,
        rule: Arc<MessageRule>,
    ) -> Result<(MessageRecord, bool)>;

    /// Up to `limit` changes of `room` with a revision above `after`, in
    /// revision order: messages posted or changed, memberships joined or
    /// changed, departures, the room renamed; each at its latest revision.
    async fn changes(&self, room: Uuid, after: i64, limit: usize) -> Result<Vec<Stored>>;

    /// A slice of one room's history, oldest first.
    async fn history(&self, room: Uuid, range: HistoryRange) -> Result<Vec<MessageRecord>>;

    /// The messages at the given (room, seq) positions that exist, in any
    /// order: the last message of many rooms in one call.
    async fn messages_at(&self, positions: &[(Uuid, i64)]) -> Result<Vec<MessageRecord>>;

    /// Up to `limit` messages of `search.rooms` that are not deleted and
    /// whose content matches every term ([`search::matches`]), newest
    /// first: by `created_at`, ties in an order of the store's own that
    /// never changes. With `after`, only those after that message in this
    /// order (it may have been edited or deleted since; it must still
    /// exist: else `BadInput` on `after`). Served from an index kept in
    /// step with every write (docs/deploy.md, "Search", for what it costs).
    async fn search_messages(&self, search: &MessageSearch) -> Result<Vec<MessageRecord>>;

    /// For each of `memberships` (all of one user), how many messages of
    /// others its room has after its `last_read_seq`. Rooms with none may be
    /// left out.
    async fn unread_counts(
        &self,
        user: Uuid,
        memberships: &[MemberRecord],
    ) -> Result<HashMap<Uuid, u64>>;

    // --- moving a whole store ---

    /// The room with this number, if any.
    async fn room_by_number(&self, number: &str) -> Result<Option<RoomRecord>>;

    /// How many records of each kind the store holds now.
    async fn counts(&self) -> Result<Counts>;

    /// Every record, read a page at a time so memory stays bounded however
    /// large the store: each room followed by its members and then its
    /// messages in seq order, and after all rooms every user.
    ///
    /// Consistent while the store is being written to: a room comes with
    /// exactly the messages up to its `seq` as read (a message being written
    /// is wholly in or wholly out, with the room's seq agreeing), no member's
    /// `last_read_seq` is beyond that seq, and members and messages only
    /// follow their own room. Users come last because they are never
    /// deleted: every user a room, member or message names is still there
    /// when the users are read, also one who registered during the export.
    fn export(&self) -> RecordStream;

    /// Writes records as they are, keeping identities, seqs and read
    /// positions, in one batch per call (all or nothing on SQLite). Rooms
    /// must come before their members and messages. With `skip_existing`, a
    /// record whose identity is already stored (a member: the same user and
    /// room) is left out and counted as skipped; otherwise it is a
    /// `Conflict`, as is any other unique value taken.
    async fn import(&self, records: &[Record], skip_existing: bool) -> Result<Loaded>;
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
