//! The lines of an export file, version [`VERSION`]; docs/export.md is their
//! description for people.
//!
//! These are the file's own types rather than the store's records with serde
//! attributes, so the file stays as documented whatever the stores' records
//! become; a change here is a new version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Lang;
use crate::store::{
    BlockRecord, DepartureRecord, MemberChange, MemberRecord, MessageChange, MessageRecord,
    Profile, ReactionRecord, Record, Role, RoomRecord, RoomType, SettingsRecord, Sex, UserRecord,
};

/// What the header's `format` says, so a file of something else is refused at line 1.
pub const FORMAT: &str = "chatroom-export";

/// The version this chatroom writes; it reads this one and every one before.
/// Version 2 added room events: revisions, roles, read times, edits,
/// deletions, replies, reactions and departures. A version-1 line lacks
/// them and reads as version 1 stored it (see each field's default).
/// Version 3 added blocks and users' settings, after the users.
pub const VERSION: u32 = 3;

/// One line of the file, tagged with its `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Room(RoomLine),
    Member(MemberLine),
    Message(MessageLine),
    Departure(DepartureLine),
    User(UserLine),
    Block(BlockLine),
    Settings(SettingsLine),
    End(End),
}

/// The kinds a line may have, for telling an unknown kind from a bad line.
pub const KINDS: &[&str] = &[
    "header",
    "room",
    "member",
    "message",
    "departure",
    "user",
    "block",
    "settings",
    "end",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    #[serde(with = "ext_date")]
    pub exported_at: DateTime<Utc>,
}

/// The last line: how many records came before it, so a file cut short
/// anywhere, even at the end of a line, is told from a whole one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLine {
    pub identity: Uuid,
    pub username: String,
    pub password_hash: String,
    pub nickname: String,
    pub sex: Sex,
    pub email: String,
    pub avatar: Option<String>,
    #[serde(with = "ext_date")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ext_date")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomLine {
    pub identity: Uuid,
    pub number: String,
    pub name: String,
    pub info: String,
    pub creator_identity: Uuid,
    pub room_type: RoomType,
    pub pair_key: Option<String>,
    pub seq: i64,
    #[serde(with = "ext_date::option")]
    pub last_message_at: Option<DateTime<Utc>>,
    #[serde(with = "ext_date")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ext_date")]
    pub updated_at: DateTime<Utc>,
    /// Version 1: none, the room goes on from its seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i64>,
    #[serde(default)]
    pub updated_rev: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberLine {
    pub user_identity: Uuid,
    pub room_identity: Uuid,
    pub last_read_seq: i64,
    #[serde(with = "ext_date")]
    pub joined_at: DateTime<Utc>,
    /// Version 1: none; the import makes a group's creator (or, gone, its
    /// first member) its owner and everyone else a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(
        default,
        with = "ext_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_read_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub joined_rev: i64,
    #[serde(default)]
    pub rev: i64,
    #[serde(default)]
    pub change: MemberChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartureLine {
    pub room_identity: Uuid,
    pub user_identity: Uuid,
    pub removed_by: Option<Uuid>,
    #[serde(with = "ext_date")]
    pub left_at: DateTime<Utc>,
    pub rev: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageLine {
    pub identity: Uuid,
    pub room_identity: Uuid,
    pub seq: i64,
    pub sender_identity: Uuid,
    pub content: String,
    pub client_id: Option<String>,
    #[serde(with = "ext_date")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    #[serde(
        default,
        with = "ext_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "ext_date::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionLine>,
    /// Version 1: none, both are the seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_rev: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i64>,
    #[serde(default)]
    pub change: MessageChange,
}

/// `blocker` blocked `blocked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockLine {
    pub blocker: Uuid,
    pub blocked: Uuid,
    #[serde(with = "ext_date")]
    pub created_at: DateTime<Utc>,
}

/// A user's settings, written only when one differs from its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLine {
    pub user: Uuid,
    pub email_digest: bool,
    /// `en` or `zh`: the language of their mail.
    pub language: Language,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Zh,
}

/// One emoji on a message and who reacted with it, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionLine {
    pub emoji: String,
    pub users: Vec<Uuid>,
}

impl From<Record> for Line {
    fn from(record: Record) -> Self {
        match record {
            Record::User(UserRecord {
                profile,
                password_hash,
            }) => Line::User(UserLine {
                identity: profile.identity,
                username: profile.username,
                password_hash,
                nickname: profile.nickname,
                sex: profile.sex,
                email: profile.email,
                avatar: profile.avatar,
                created_at: profile.created_at,
                updated_at: profile.updated_at,
            }),
            Record::Room(room) => Line::Room(RoomLine {
                identity: room.identity,
                number: room.number,
                name: room.name,
                info: room.info,
                creator_identity: room.creator_identity,
                room_type: room.room_type,
                pair_key: room.pair_key,
                seq: room.seq,
                last_message_at: room.last_message_at,
                created_at: room.created_at,
                updated_at: room.updated_at,
                rev: Some(room.rev),
                updated_rev: room.updated_rev,
            }),
            Record::Member(member) => Line::Member(MemberLine {
                user_identity: member.user_identity,
                room_identity: member.room_identity,
                last_read_seq: member.last_read_seq,
                joined_at: member.joined_at,
                role: Some(member.role),
                last_read_at: member.last_read_at,
                joined_rev: member.joined_rev,
                rev: member.rev,
                change: member.change,
            }),
            Record::Message(message) => Line::Message(MessageLine {
                identity: message.identity,
                room_identity: message.room_identity,
                seq: message.seq,
                sender_identity: message.sender_identity,
                content: message.content,
                client_id: message.client_id,
                created_at: message.created_at,
                reply_to: message.reply_to,
                edited_at: message.edited_at,
                deleted_at: message.deleted_at,
                reactions: message
                    .reactions
                    .into_iter()
                    .map(|reaction| ReactionLine {
                        emoji: reaction.emoji,
                        users: reaction.users,
                    })
                    .collect(),
                posted_rev: Some(message.posted_rev),
                rev: Some(message.rev),
                change: message.change,
            }),
            Record::Departure(departure) => Line::Departure(DepartureLine {
                room_identity: departure.room_identity,
                user_identity: departure.user_identity,
                removed_by: departure.removed_by,
                left_at: departure.left_at,
                rev: departure.rev,
            }),
            Record::Block(block) => Line::Block(BlockLine {
                blocker: block.blocker,
                blocked: block.blocked,
                created_at: block.created_at,
            }),
            Record::Settings(settings) => Line::Settings(SettingsLine {
                user: settings.user,
                email_digest: settings.email_digest,
                language: match settings.lang {
                    Lang::En => Language::En,
                    Lang::Zh => Language::Zh,
                },
            }),
        }
    }
}

impl Line {
    /// The store record a data line stands for; `None` for the header and
    /// the end. `owner`: whether a member line of version 1 (without a
    /// role) is its group's owner.
    pub fn into_record(self, owner: bool) -> Option<Record> {
        Some(match self {
            Line::Header(_) | Line::End(_) => return None,
            Line::User(user) => Record::User(UserRecord {
                profile: Profile {
                    identity: user.identity,
                    username: user.username,
                    nickname: user.nickname,
                    sex: user.sex,
                    email: user.email,
                    avatar: user.avatar,
                    created_at: user.created_at,
                    updated_at: user.updated_at,
                },
                password_hash: user.password_hash,
            }),
            Line::Room(room) => Record::Room(RoomRecord {
                identity: room.identity,
                number: room.number,
                name: room.name,
                info: room.info,
                creator_identity: room.creator_identity,
                room_type: room.room_type,
                pair_key: room.pair_key,
                seq: room.seq,
                last_message_at: room.last_message_at,
                created_at: room.created_at,
                updated_at: room.updated_at,
                rev: room.rev.unwrap_or(room.seq),
                updated_rev: room.updated_rev,
            }),
            Line::Member(member) => Record::Member(MemberRecord {
                user_identity: member.user_identity,
                room_identity: member.room_identity,
                last_read_seq: member.last_read_seq,
                joined_at: member.joined_at,
                role: member.role.unwrap_or(match owner {
                    true => Role::Owner,
                    false => Role::Member,
                }),
                last_read_at: member.last_read_at,
                joined_rev: member.joined_rev,
                rev: member.rev,
                change: member.change,
            }),
            Line::Message(message) => Record::Message(MessageRecord {
                identity: message.identity,
                room_identity: message.room_identity,
                seq: message.seq,
                sender_identity: message.sender_identity,
                content: message.content,
                client_id: message.client_id,
                created_at: message.created_at,
                reply_to: message.reply_to,
                edited_at: message.edited_at,
                deleted_at: message.deleted_at,
                reactions: message
                    .reactions
                    .into_iter()
                    .map(|reaction| ReactionRecord {
                        emoji: reaction.emoji,
                        users: reaction.users,
                    })
                    .collect(),
                posted_rev: message.posted_rev.unwrap_or(message.seq),
                rev: message.rev.unwrap_or(message.seq),
                change: message.change,
            }),
            Line::Departure(departure) => Record::Departure(DepartureRecord {
                room_identity: departure.room_identity,
                user_identity: departure.user_identity,
                removed_by: departure.removed_by,
                left_at: departure.left_at,
                rev: departure.rev,
            }),
            Line::Block(block) => Record::Block(BlockRecord {
                blocker: block.blocker,
                blocked: block.blocked,
                created_at: block.created_at,
            }),
            Line::Settings(settings) => Record::Settings(SettingsRecord {
                user: settings.user,
                email_digest: settings.email_digest,
                lang: match settings.language {
                    Language::En => Lang::En,
                    Language::Zh => Lang::Zh,
                },
            }),
        })
    }
}

/// Times as MongoDB Extended JSON (relaxed): `{"$date": "2026-11-26T19:41:14.123Z"}`,
/// or `{"$date": {"$numberLong": "…"}}` before 1970 and after 9999, as the
/// spec has it. Written and read by the `bson` crate (the MongoDB driver's),
/// rather than by hand, so both forms of the spec are read.
mod ext_date {
    use bson::Bson;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Bson::DateTime(bson::DateTime::from_millis(time.timestamp_millis()))
            .into_relaxed_extjson()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        from_json(serde_json::Value::deserialize(deserializer)?)
    }

    fn from_json<E: Error>(value: serde_json::Value) -> Result<DateTime<Utc>, E> {
        match Bson::try_from(value) {
            Ok(Bson::DateTime(time)) => DateTime::from_timestamp_millis(time.timestamp_millis())
                .ok_or_else(|| E::custom(format!("date out of range: {time}"))),
            Ok(other) => Err(E::custom(format!(
                "expected a date as {{\"$date\": …}}, found {other}"
            ))),
            Err(error) => Err(E::custom(format!("not a date: {error}"))),
        }
    }

    /// The same for a time that may be missing: `null` then.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            time: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match time {
                Some(time) => super::serialize(time, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match serde_json::Value::deserialize(deserializer)? {
                serde_json::Value::Null => Ok(None),
                value => from_json(value).map(Some),
            }
        }
    }
}
