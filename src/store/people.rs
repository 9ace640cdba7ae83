//! What the store keeps of people beyond their profile: who blocked whom,
//! when they were last seen, and their digest mail.
//!
//! A trait of its own, which [`Store`](super::Store) includes, so that each
//! backend keeps these queries in a file of their own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Lang, Result};

use super::Profile;

/// `blocker` blocked `blocked` at `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecord {
    pub blocker: Uuid,
    pub blocked: Uuid,
    pub created_at: DateTime<Utc>,
}

/// What a user chose, where it is not the default: whether they get
/// digests, and the language of their mail. An export carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsRecord {
    pub user: Uuid,
    pub email_digest: bool,
    pub lang: Lang,
}

/// A user coming or going, as the presence tracker reports it: once per
/// change of the user's whole presence, never per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Online,
    /// Their last connection closed at this time.
    Offline(DateTime<Utc>),
}

/// A user away long enough for a digest, with what the mail needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestDue {
    pub profile: Profile,
    /// When this absence began: the last connection closed, or registration.
    pub away_since: DateTime<Utc>,
    /// The language of their last login.
    pub lang: Lang,
}

#[async_trait]
pub trait People: Send + Sync {
    /// Records that `blocker` blocked `blocked`; false when they already had.
    async fn block(&self, blocker: Uuid, blocked: Uuid, at: DateTime<Utc>) -> Result<bool>;

    /// False when `blocker` had not blocked `blocked`.
    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool>;

    /// The users `blocker` blocked, ordered by username (ignoring case).
    async fn blocked_by(&self, blocker: Uuid) -> Result<Vec<Profile>>;

    /// Whom `blocker` blocked: a few (`chat::blocking::MAX_BLOCKS` at
    /// most), where who blocked a user may be anyone.
    async fn blocked_identities(&self, blocker: Uuid) -> Result<Vec<Uuid>>;

    /// The users among `others` with a block between them and `user`,
    /// either way.
    async fn blocks_between(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>>;

    /// Whether `blocker` blocked `blocked`: what a PRIVATE room's sends ask.
    async fn has_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool>;

    /// The users among `others` who share a room with `user`.
    async fn sharing_rooms(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>>;

    /// Everyone sharing a room with `user`, `user` left out.
    async fn contacts(&self, user: Uuid) -> Result<Vec<Uuid>>;

    /// Records comings and goings, all in one write.
    async fn record_seen(&self, seen: &[(Uuid, Seen)]) -> Result<()>;

    /// Records everyone the store holds online as gone at `at`: what an
    /// instance that keeps presence to itself does when it starts, since
    /// nobody can be connected to it yet.
    async fn all_gone(&self, at: DateTime<Utc>) -> Result<u64>;

    /// When each of `users` who was ever seen was last seen (their last
    /// connection closed), in any order.
    async fn last_seen(&self, users: &[Uuid]) -> Result<Vec<(Uuid, DateTime<Utc>)>>;

    /// Remembers the language a user logged in with, for their mail.
    async fn set_language(&self, user: Uuid, lang: Lang) -> Result<()>;

    /// Whether `user` gets digest mails; `None` when there is no such user.
    async fn email_digest(&self, user: Uuid) -> Result<Option<bool>>;

    async fn set_email_digest(&self, user: Uuid, on: bool) -> Result<()>;

    /// Users with digests on, away since before `away_before`, without a
    /// digest for this absence and not looked at since `checked_before`; at
    /// most `limit`, longest away first.
    async fn digests_due(
        &self,
        away_before: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DigestDue>>;

    /// Notes that `user`'s digest was looked at `at` and not sent.
    async fn digest_checked(&self, user: Uuid, at: DateTime<Utc>) -> Result<()>;

    /// Takes the digest of the absence that began at `away_since`: true for
    /// exactly one caller, however many instances ask.
    async fn claim_digest(&self, user: Uuid, away_since: DateTime<Utc>) -> Result<bool>;
}
