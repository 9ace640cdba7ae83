//! The documents of each collection, and how a record becomes one and back.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    store::{
        MemberRecord, MessageRecord, Profile, RoomRecord, RoomType, Sex, UserRecord, nickname_key,
        username_key,
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
    /// Bumped by every change of membership, only so that two of them on one
    /// room write the same document and cannot both commit unaware of the
    /// other (MongoDB transactions only conflict on a common write).
    #[serde(default)]
    pub members_version: i64,
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
            members_version: 0,
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
}

impl MemberDoc {
    pub fn from_record(member: &MemberRecord) -> Self {
        Self::new(
            member.user_identity,
            member.room_identity,
            member.last_read_seq,
            member.joined_at,
        )
    }

    pub fn new(user: Uuid, room: Uuid, last_read_seq: i64, joined_at: DateTime<Utc>) -> Self {
        Self {
            user_identity: user.to_string(),
            room_identity: room.to_string(),
            last_read_seq,
            joined_at: to_bson_time(joined_at),
        }
    }

    pub fn into_record(self) -> Result<MemberRecord> {
        Ok(MemberRecord {
            user_identity: parse_identity(&self.user_identity)?,
            room_identity: parse_identity(&self.room_identity)?,
            last_read_seq: self.last_read_seq,
            joined_at: from_bson_time(self.joined_at)?,
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

fn from_bson_time(time: bson::DateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored time out of range: {time}")))
}

/// What a read of profiles asks for: all but the password hash, which
/// stays in the database.
pub fn profile_fields() -> Document {
    doc! { "password_hash": 0 }
}
