//! Short-lived values with a time to live: email codes and their tries, the
//! rate limiter's counters, who is typing, and who is online.
//!
//! `memory` is the zero-setup default for one instance; `redis` shares the
//! values between instances, so a code mailed by one verifies on another
//! and a limit holds across all of them.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

pub use self::{memory::MemoryKv, redis::RedisKv};

/// A key-value map whose entries vanish after their time to live.
///
/// Every operation is atomic on its own. An expired entry is never returned.
#[async_trait]
pub trait Kv: Send + Sync {
    /// Succeeds when the backend answers; `/readyz` asks this.
    async fn ping(&self) -> Result<()>;

    async fn get(&self, key: &str) -> Result<Option<String>>;

    /// Sets `key`, replacing any value and its time to live.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// Adds one to the counter at `key` and returns the new count. A counter
    /// that did not exist starts at zero and lives for `ttl`; counting again
    /// does not extend it (a fixed window).
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64>;

    /// Takes one back from the counter at `key`, when it exists and is above
    /// zero; its time to live stays. What a reservation made with
    /// [`Kv::increment`] gives back when it turned out not to count.
    async fn decrement(&self, key: &str) -> Result<()>;

    /// Removes `key`; true when it existed, so of two concurrent removers
    /// exactly one learns it took the value.
    async fn remove(&self, key: &str) -> Result<bool>;

    /// How long `key` has left; `None` when it does not exist.
    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>>;

    /// Puts `member` in the set at `key` for `ttl` (again: from now), each
    /// member with its own time to live: who is typing in a room.
    async fn mark(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;

    /// Takes `member` out of the set at `key`; true when it was there (and
    /// had not expired).
    async fn unmark(&self, key: &str, member: &str) -> Result<bool>;

    /// The members of the set at `key` whose time has not run out.
    async fn marked(&self, key: &str) -> Result<Vec<String>>;

    /// [`Kv::marked`] of each of `keys`, in their order: who types in each
    /// of a page of rooms, in one round trip where the backend has one.
    async fn marked_many(&self, keys: &[String]) -> Result<Vec<Vec<String>>> {
        let mut all = Vec::with_capacity(keys.len());
        for key in keys {
            all.push(self.marked(key).await?);
        }
        Ok(all)
    }

    // --- rosters: entries held by holders, each hold with its own end ---
    //
    // Who is online: a user (entry) is held by every instance (holder) with
    // a socket of theirs, each hold renewed while the instance lives. An
    // entry whose last hold ran out stays in its roster until one caller
    // takes its lapse, so a coming and a going are each seen exactly once
    // across instances.

    /// Holds `entry` of `roster` for `holder` until `ttl` from now (again:
    /// from now). True when the entry was not in the roster, so of
    /// concurrent holders exactly one learns it came to be held.
    async fn hold(&self, roster: &str, entry: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let new = self
            .hold_many(roster, &[entry.to_owned()], holder, ttl)
            .await?;
        Ok(!new.is_empty())
    }

    /// [`Kv::hold`] of each of `entries`, in one round trip: the ones that
    /// were not in the roster.
    async fn hold_many(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<String>>;

    /// Lets `holder`'s hold of each of `entries` end `after` from now,
    /// however long it had left; nothing for an entry no longer in the
    /// roster. One round trip.
    async fn release(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        after: Duration,
    ) -> Result<()>;

    /// Takes out of `roster` up to `limit` entries whose every hold has
    /// ended, with when the last one ended (Unix milliseconds): each goes
    /// to exactly one caller.
    async fn take_lapsed(&self, roster: &str, limit: usize) -> Result<Vec<(String, i64)>>;

    /// Whether each of `entries` is held now, in their order.
    async fn held(&self, roster: &str, entries: &[String]) -> Result<Vec<bool>>;
}
