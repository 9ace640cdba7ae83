//! The documents of each collection, and how a record becomes one and back.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::search::terms_of;
use crate::{
    error::{Error, Result},
    store::{
        DepartureRecord, MemberChange, MemberRecord, MessageChange, MessageRecord, Profile,
        ReactionRecord, Role, RoomRecord, RoomType, Sex, UserRecord, nickname_key, username_key,
    },
};

#[derive(Debug, Serialize, Deserialize)]
pub struct UserDoc {
    pub identity: String,
    pub username: String,
    pub username_key: String,
    /// Always stored; absent when read as a profile ([`profile_fields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub nickname: String,
    pub nickname_key: String,
    pub sex: Sex,
    pub email: String,
    pub avatar: Option<String>,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
}

impl UserDoc {
    pub fn from_record(user: &UserRecord) -> Self {
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

    pub fn into_record(mut self) -> Result<UserRecord> {
        let password_hash = self
            .password_hash
            .take()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a user read without their hash")))?;
        Ok(UserRecord {
            profile: self.into_profile()?,
            password_hash,
        })
    }

    pub fn into_profile(self) -> Result<Profile> {
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

/// `blocker` blocked `blocked`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlockDoc {
    pub blocker: String,
    pub blocked: String,
    pub created_at: bson::DateTime,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RoomDoc {
    pub identity: String,
    pub number: String,
    pub name: String,
    pub info: String,
    pub creator_identity: String,
    pub room_type: RoomType,
    /// Absent rather than null for GROUP rooms: the unique index only covers strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_key: Option<String>,
    pub seq: i64,
    pub last_message_at: Option<bson::DateTime>,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
    /// Absent in a room of version 1 until `schema::migrate` sets it.
    #[serde(default)]
    pub rev: Option<i64>,
    #[serde(default)]
    pub updated_rev: i64,
}

impl RoomDoc {
    pub fn from_record(room: &RoomRecord) -> Self {
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
            rev: Some(room.rev),
            updated_rev: room.updated_rev,
        }
    }

    pub fn into_record(self) -> Result<RoomRecord> {
        Ok(RoomRecord {
            identity: parse_identity(&self.identity)?,
            number: self.number,
            name: self.name,
            info: self.info,
            creator_identity: parse_identity(&self.creator_identity)?,
            room_type: self.room_type,
            pair_key: self.pair_key,
            seq: self.seq,
            rev: self.rev.unwrap_or(self.seq),
            updated_rev: self.updated_rev,
            last_message_at: self.last_message_at.map(from_bson_time).transpose()?,
            created_at: from_bson_time(self.created_at)?,
            updated_at: from_bson_time(self.updated_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MemberDoc {
    pub user_identity: String,
    pub room_identity: String,
    pub last_read_seq: i64,
    pub joined_at: bson::DateTime,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub last_read_at: Option<bson::DateTime>,
    #[serde(default)]
    pub joined_rev: i64,
    #[serde(default)]
    pub rev: i64,
    #[serde(default)]
    pub change: MemberChange,
}

impl MemberDoc {
    pub fn from_record(member: &MemberRecord) -> Self {
        Self {
            user_identity: member.user_identity.to_string(),
            room_identity: member.room_identity.to_string(),
            last_read_seq: member.last_read_seq,
            joined_at: to_bson_time(member.joined_at),
            role: member.role,
            last_read_at: member.last_read_at.map(to_bson_time),
            joined_rev: member.joined_rev,
            rev: member.rev,
            change: member.change,
        }
    }

    pub fn into_record(self) -> Result<MemberRecord> {
        Ok(MemberRecord {
            user_identity: parse_identity(&self.user_identity)?,
            room_identity: parse_identity(&self.room_identity)?,
            last_read_seq: self.last_read_seq,
            joined_at: from_bson_time(self.joined_at)?,
            role: self.role,
            last_read_at: self.last_read_at.map(from_bson_time).transpose()?,
            joined_rev: self.joined_rev,
            rev: self.rev,
            change: self.change,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DepartureDoc {
    pub room_identity: String,
    pub user_identity: String,
    pub removed_by: Option<String>,
    pub left_at: bson::DateTime,
    pub rev: i64,
}

impl DepartureDoc {
    pub fn from_record(departure: &DepartureRecord) -> Self {
        Self {
            room_identity: departure.room_identity.to_string(),
            user_identity: departure.user_identity.to_string(),
            removed_by: departure.removed_by.map(|user| user.to_string()),
            left_at: to_bson_time(departure.left_at),
            rev: departure.rev,
        }
    }

    pub fn into_record(self) -> Result<DepartureRecord> {
        Ok(DepartureRecord {
            room_identity: parse_identity(&self.room_identity)?,
            user_identity: parse_identity(&self.user_identity)?,
            removed_by: self.removed_by.as_deref().map(parse_identity).transpose()?,
            left_at: from_bson_time(self.left_at)?,
            rev: self.rev,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MessageDoc {
    pub identity: String,
    pub room_identity: String,
    pub seq: i64,
    pub sender_identity: String,
    pub content: String,
    /// Absent rather than null when not given: the unique index only covers strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub created_at: bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub edited_at: Option<bson::DateTime>,
    #[serde(default)]
    pub deleted_at: Option<bson::DateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionDoc>,
    /// Absent in a message of version 1 until `schema::migrate` sets them.
    #[serde(default)]
    pub posted_rev: Option<i64>,
    #[serde(default)]
    pub rev: Option<i64>,
    #[serde(default)]
    pub change: MessageChange,
    /// What search finds it by (`search.rs`); none once deleted. Written
    /// with every change of the content, never read back: absent in a
    /// message stored before search until `schema::migrate` sets it.
    #[serde(default, skip_deserializing)]
    pub search_terms: Vec<String>,
}

/// The search terms of `message` as it is now: none once deleted.
pub fn search_terms(message: &MessageRecord) -> Vec<String> {
    match message.deleted_at {
        Some(_) => Vec::new(),
        None => terms_of(&message.content),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReactionDoc {
    pub emoji: String,
    pub users: Vec<String>,
}

pub fn reaction_docs(reactions: &[ReactionRecord]) -> Vec<ReactionDoc> {
    reactions
        .iter()
        .map(|reaction| ReactionDoc {
            emoji: reaction.emoji.clone(),
            users: identity_strings(&reaction.users),
        })
        .collect()
}

impl MessageDoc {
    pub fn from_record(message: &MessageRecord) -> Self {
        Self {
            identity: message.identity.to_string(),
            room_identity: message.room_identity.to_string(),
            seq: message.seq,
            sender_identity: message.sender_identity.to_string(),
            content: message.content.clone(),
            client_id: message.client_id.clone(),
            created_at: to_bson_time(message.created_at),
            reply_to: message.reply_to.map(|reply_to| reply_to.to_string()),
            edited_at: message.edited_at.map(to_bson_time),
            deleted_at: message.deleted_at.map(to_bson_time),
            reactions: reaction_docs(&message.reactions),
            posted_rev: Some(message.posted_rev),
            rev: Some(message.rev),
            change: message.change,
            search_terms: search_terms(message),
        }
    }

    pub fn into_record(self) -> Result<MessageRecord> {
        Ok(MessageRecord {
            identity: parse_identity(&self.identity)?,
            room_identity: parse_identity(&self.room_identity)?,
            seq: self.seq,
            sender_identity: parse_identity(&self.sender_identity)?,
            content: self.content,
            client_id: self.client_id,
            created_at: from_bson_time(self.created_at)?,
            reply_to: self.reply_to.as_deref().map(parse_identity).transpose()?,
            edited_at: self.edited_at.map(from_bson_time).transpose()?,
            deleted_at: self.deleted_at.map(from_bson_time).transpose()?,
            reactions: self
                .reactions
                .into_iter()
                .map(|reaction| {
                    Ok(ReactionRecord {
                        emoji: reaction.emoji,
                        users: reaction
                            .users
                            .iter()
                            .map(|user| parse_identity(user))
                            .collect::<Result<_>>()?,
                    })
                })
                .collect::<Result<_>>()?,
            posted_rev: self.posted_rev.unwrap_or(self.seq),
            rev: self.rev.unwrap_or(self.seq),
            change: self.change,
        })
    }
}

/// One line of an aggregation that counts by an identity (`unread_counts`
/// by room, `room_counts` by user).
#[derive(Debug, Deserialize)]
pub struct Counted {
    #[serde(rename = "_id")]
    pub identity: String,
    pub count: i64,
}

impl Counted {
    pub fn parsed(self) -> Result<(Uuid, u64)> {
        let count = u64::try_from(self.count).map_err(Error::internal)?;
        Ok((parse_identity(&self.identity)?, count))
    }
}

pub fn parse_identity(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(Error::internal)
}

pub fn identity_strings(identities: &[Uuid]) -> Vec<String> {
    identities.iter().map(Uuid::to_string).collect()
}

pub fn to_bson_time(time: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(time.timestamp_millis())
}

pub fn from_bson_time(time: bson::DateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored time out of range: {time}")))
}

/// What a read of profiles asks for: all but the password hash, which
/// stays in the database.
pub fn profile_fields() -> Document {
    doc! { "password_hash": 0 }
}
