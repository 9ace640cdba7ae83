//! The in-process kv: a map behind a mutex.
//!
//! A std mutex, not a tokio one: it is never held across an `.await`, and every
//! critical section is a few map operations. Expired entries are dropped when
//! read, and swept out every [`SWEEP_EVERY`] writes so the map cannot grow with
//! keys nobody reads again.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::Kv;
use crate::error::Result;

const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
pub struct MemoryKv {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Sets of members, each member with its own expiry ([`Kv::mark`]).
    sets: HashMap<String, HashMap<String, Instant>>,
    /// Rosters: their entries, each with the end of each holder's hold
    /// ([`Kv::hold`]). An entry stays until its lapse is taken.
    rosters: HashMap<String, HashMap<String, HashMap<String, Instant>>>,
    writes: u64,
}

/// The end of the latest of an entry's holds.
fn last_end(holds: &HashMap<String, Instant>) -> Option<Instant> {
    holds.values().max().copied()
}

/// `at` as Unix milliseconds, read against the wall clock now.
fn wall_millis(at: Instant) -> i64 {
    let now = Instant::now();
    let wall = chrono::Utc::now().timestamp_millis();
    match at.checked_duration_since(now) {
        Some(ahead) => wall.saturating_add(i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX)),
        None => wall.saturating_sub(i64::try_from((now - at).as_millis()).unwrap_or(i64::MAX)),
    }
}

struct Entry {
    value: String,
    expires_at: Instant,
}

impl State {
    /// The live entry at `key`, dropping it if it has expired.
    fn live(&mut self, key: &str) -> Option<&mut Entry> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, value: String, ttl: Duration) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.entries.retain(|_, e| e.expires_at > now);
            self.sweep_sets(now);
        }
        let expires_at = Instant::now() + ttl;
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
    }

    fn sweep_sets(&mut self, now: Instant) {
        for members in self.sets.values_mut() {
            members.retain(|_, expires_at| *expires_at > now);
        }
        self.sets.retain(|_, members| !members.is_empty());
    }
}

impl MemoryKv {
    fn state(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

#[async_trait]
impl Kv for MemoryKv {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self.state().live(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        self.state().insert(key, value.to_owned(), ttl);
        Ok(())
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64> {
        let mut state = self.state();
        if let Some(entry) = state.live(key) {
            let count = entry.value.parse::<u64>().unwrap_or(0) + 1;
            entry.value = count.to_string();
            return Ok(count);
        }
        state.insert(key, "1".to_owned(), ttl);
        Ok(1)
    }

    async fn decrement(&self, key: &str) -> Result<()> {
        if let Some(entry) = self.state().live(key) {
            let count = entry.value.parse::<u64>().unwrap_or(0);
            entry.value = count.saturating_sub(1).to_string();
        }
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<bool> {
        let mut state = self.state();
        let existed = state.live(key).is_some();
        state.entries.remove(key);
        Ok(existed)
    }

    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        let now = Instant::now();
        Ok(self
            .state()
            .live(key)
            .map(|e| e.expires_at.saturating_duration_since(now)))
    }

    async fn mark(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut state = self.state();
        state.writes += 1;
        if state.writes.is_multiple_of(SWEEP_EVERY) {
            state.sweep_sets(Instant::now());
        }
        state
            .sets
            .entry(key.to_owned())
            .or_default()
            .insert(member.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn unmark(&self, key: &str, member: &str) -> Result<bool> {
        let now = Instant::now();
        let mut state = self.state();
        let Some(members) = state.sets.get_mut(key) else {
            return Ok(false);
        };
        let was_live = members.remove(member).is_some_and(|until| until > now);
        if members.is_empty() {
            state.sets.remove(key);
        }
        Ok(was_live)
    }

    async fn hold_many(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<String>> {
        let now = Instant::now();
        let mut state = self.state();
        let roster = state.rosters.entry(roster.to_owned()).or_default();
        let mut new = Vec::new();
        for entry in entries {
            let holds = roster.entry(entry.clone()).or_insert_with(|| {
                new.push(entry.clone());
                HashMap::new()
            });
            holds.retain(|_, end| *end > now);
            holds.insert(holder.to_owned(), now + ttl);
        }
        Ok(new)
    }

    async fn release(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        after: Duration,
    ) -> Result<()> {
        let now = Instant::now();
        let mut state = self.state();
        let Some(roster) = state.rosters.get_mut(roster) else {
            return Ok(());
        };
        for entry in entries {
            if let Some(holds) = roster.get_mut(entry) {
                holds.retain(|_, end| *end > now);
                holds.insert(holder.to_owned(), now + after);
            }
        }
        Ok(())
    }

    async fn take_lapsed(&self, roster: &str, limit: usize) -> Result<Vec<(String, i64)>> {
        let now = Instant::now();
        let mut state = self.state();
        let Some(roster) = state.rosters.get_mut(roster) else {
            return Ok(Vec::new());
        };
        let lapsed: Vec<(String, Instant)> = roster
            .iter()
            .filter_map(|(entry, holds)| {
                let end = last_end(holds).unwrap_or(now);
                (end <= now).then(|| (entry.clone(), end))
            })
            .take(limit)
            .collect();
        for (entry, _) in &lapsed {
            roster.remove(entry);
        }
        Ok(lapsed
            .into_iter()
            .map(|(entry, end)| (entry, wall_millis(end)))
            .collect())
    }

    async fn held(&self, roster: &str, entries: &[String]) -> Result<Vec<bool>> {
        let now = Instant::now();
        let state = self.state();
        let roster = state.rosters.get(roster);
        Ok(entries
            .iter()
            .map(|entry| {
                roster
                    .and_then(|roster| roster.get(entry))
                    .and_then(last_end)
                    .is_some_and(|end| end > now)
            })
            .collect())
    }

    async fn marked(&self, key: &str) -> Result<Vec<String>> {
        let now = Instant::now();
        Ok(self.state().sets.get(key).map_or_else(Vec::new, |members| {
            members
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(member, _)| member.clone())
                .collect()
        }))
    }
}
