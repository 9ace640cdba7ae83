//! The shared kv: Redis, through one self-healing connection.
//!
//! Every key gets the configured prefix, so several deployments (or tests)
//! can share one Redis without seeing each other's values.
//!
//! On a Redis Cluster, each command and each script names keys of one slot
//! only: the keys one operation must find together carry the same hash tag
//! (`{…}` in the name the caller gives), and commands on keys of many slots
//! go each to its own node ([`RedisLink::query_each`]).

use std::time::Duration;

use async_trait::async_trait;

use super::Kv;
use crate::{error::Result, redis_link::RedisLink};

pub struct RedisKv {
    link: RedisLink,
    prefix: String,
}

/// Milliseconds for Redis, at least one (zero would mean "no expiry" to some commands).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisKv {
    /// Connects to `urls` (one server, or seed nodes of a cluster), bounding
    /// each connection attempt and each command by `timeout`.
    pub async fn connect(urls: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let link = RedisLink::connect(urls, None, timeout).await?;
        Ok(Self {
            link,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Kv for RedisKv {
    async fn ping(&self) -> Result<()> {
        self.link.query(&redis::cmd("PING")).await
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.link.query(redis::cmd("GET").arg(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let command = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .clone();
        self.link.query(&command).await
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64> {
        let key = self.key(key);
        // Create the counter with its expiry only if absent, then count, in one
        // transaction: the window is fixed at the first increment.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .cmd("INCR")
            .arg(&key);
        let (count,): (u64,) = self.link.query_pipeline(&pipe).await?;
        Ok(count)
    }

    async fn decrement(&self, key: &str) -> Result<()> {
        // DECR alone would create a counter without expiry where none is.
        const SCRIPT: &str = "local n = tonumber(redis.call('GET', KEYS[1])) \
            if n and n > 0 then redis.call('DECR', KEYS[1]) end return 0";
        let command = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .clone();
        let _: i64 = self.link.query(&command).await?;
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<bool> {
        let removed: u64 = self
            .link
            .query(redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(removed > 0)
    }

    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        let millis: i64 = self
            .link
            .query(redis::cmd("PTTL").arg(self.key(key)))
            .await?;
        // -2: no such key; -1: no expiry (never set by us, but not absent either).
        Ok(match millis {
            -2 => None,
            -1 => Some(Duration::MAX),
            ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    async fn mark(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        // Scores are expiry times in Unix milliseconds: every instance reads
        // the same set, and their clocks agree to well within a lapse. The
        // set lives as long as its newest mark (every mark of one set has
        // the same time to live).
        let key = self.key(key);
        let until = epoch_millis().saturating_add(millis(ttl));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg(until)
            .arg(member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(epoch_millis())
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .ignore();
        let () = self.link.query_pipeline(&pipe).await?;
        Ok(())
    }

    async fn unmark(&self, key: &str, member: &str) -> Result<bool> {
        const SCRIPT: &str = "local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) \
            redis.call('ZREM', KEYS[1], ARGV[1]) \
            if expiry and expiry > tonumber(ARGV[2]) then return 1 end return 0";
        let command = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .arg(member)
            .arg(epoch_millis())
            .clone();
        let removed: i64 = self.link.query(&command).await?;
        Ok(removed == 1)
    }

    async fn marked(&self, key: &str) -> Result<Vec<String>> {
        let mut all = self.marked_many(&[key.to_owned()]).await?;
        Ok(all.pop().unwrap_or_default())
    }

    async fn marked_many(&self, keys: &[String]) -> Result<Vec<Vec<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = format!("({}", epoch_millis());
        let commands: Vec<_> = keys
            .iter()
            .map(|key| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key(key))
                    .arg(&now)
                    .arg("+inf")
                    .clone()
            })
            .collect();
        self.link.query_each(&commands).await
    }

    async fn hold_many(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<String>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let until = epoch_millis().saturating_add(millis(ttl));
        let command = redis::cmd("EVAL")
            .arg(HOLD)
            .arg(1)
            .arg(self.key(roster))
            .arg(holder)
            .arg(until)
            .arg(epoch_millis())
            .arg(entries)
            .clone();
        self.link.query(&command).await
    }

    async fn release(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        after: Duration,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let command = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.key(roster))
            .arg(holder)
            .arg(epoch_millis().saturating_add(millis(after)))
            .arg(epoch_millis())
            .arg(entries)
            .clone();
        let _: i64 = self.link.query(&command).await?;
        Ok(())
    }

    async fn take_lapsed(&self, roster: &str, limit: usize) -> Result<Vec<(String, i64)>> {
        let command = redis::cmd("EVAL")
            .arg(TAKE_LAPSED)
            .arg(1)
            .arg(self.key(roster))
            .arg(epoch_millis())
            .arg(limit.max(1))
            .clone();
        let flat: Vec<(String, f64)> = self.link.query(&command).await?;
        Ok(flat
            .into_iter()
            .map(|(entry, ended)| (entry, ended as i64))
            .collect())
    }

    async fn held(&self, roster: &str, entries: &[String]) -> Result<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let command = redis::cmd("ZMSCORE")
            .arg(self.key(roster))
            .arg(entries)
            .clone();
        let scores: Vec<Option<f64>> = self.link.query(&command).await?;
        let now = epoch_millis() as f64;
        Ok(scores
            .into_iter()
            .map(|score| score.is_some_and(|until| until > now))
            .collect())
    }
}

// A roster is a sorted set of entries, each scored with the end of its
// latest hold; each entry's holds are a sorted set of holders, scored with
// the end of each hold, at `<roster>:<entry>`, expiring with its last hold.
// Every script keeps the roster's score equal to the latest end among the
// entry's holds, so a lapse is read off the roster alone.
// The scripts name the holds' keys themselves: on a cluster, the roster's
// name must carry a hash tag, so that its holds fall in its slot.

/// ARGV: holder, until, now, entries…; returns the entries that were new.
const HOLD: &str = "local new = {} \
    for i = 4, #ARGV do \
        local holds = KEYS[1] .. ':' .. ARGV[i] \
        redis.call('ZADD', holds, ARGV[2], ARGV[1]) \
        redis.call('ZREMRANGEBYSCORE', holds, '-inf', ARGV[3]) \
        local last = redis.call('ZRANGE', holds, -1, -1, 'WITHSCORES') \
        redis.call('PEXPIREAT', holds, last[2]) \
        if redis.call('ZADD', KEYS[1], last[2], ARGV[i]) == 1 then new[#new + 1] = ARGV[i] end \
    end \
    return new";

/// ARGV: holder, until, now, entries….
const RELEASE: &str = "for i = 4, #ARGV do \
        if redis.call('ZSCORE', KEYS[1], ARGV[i]) then \
            local holds = KEYS[1] .. ':' .. ARGV[i] \
            redis.call('ZADD', holds, ARGV[2], ARGV[1]) \
            redis.call('ZREMRANGEBYSCORE', holds, '-inf', ARGV[3]) \
            local last = redis.call('ZRANGE', holds, -1, -1, 'WITHSCORES') \
            redis.call('PEXPIREAT', holds, last[2]) \
            redis.call('ZADD', KEYS[1], last[2], ARGV[i]) \
        end \
    end \
    return 0";

/// ARGV: now, limit; returns entry, end, entry, end, …
const TAKE_LAPSED: &str = "local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], \
        'WITHSCORES', 'LIMIT', 0, ARGV[2]) \
    for i = 1, #lapsed, 2 do \
        redis.call('ZREM', KEYS[1], lapsed[i]) \
        redis.call('DEL', KEYS[1] .. ':' .. lapsed[i]) \
    end \
    return lapsed";

/// Now, in Unix milliseconds.
fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
