//! Rate limits: how often one user or client address may do something costly.
//!
//! In one process the limits are token buckets (governor's GCRA): a steady
//! rate with a burst on top. With Redis configured they must hold across
//! instances, so they are fixed-window counters in the shared kv instead: a
//! window of `burst / rate` seconds allowing `burst` actions, the same
//! average with a coarser edge.
//!
//! When the shared kv cannot be reached, each instance falls back to its own
//! buckets: a Redis outage must not stop people chatting (docs/deploy.md),
//! nor lift the limits.

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use uuid::Uuid;

use crate::{
    config::RateLimits,
    error::{Error, Result},
    kv::Kv,
};

/// Sweep the in-process buckets of idle keys every this many checks.
const SWEEP_EVERY: u64 = 4096;

/// The emailing of codes: a slow, costly action per client address.
const CODES_WINDOW: Duration = Duration::from_secs(60 * 60);

/// How long the shared counters are skipped after they failed to answer.
const SHARED_RETRY: Duration = Duration::from_secs(5);

/// Something limited, and who does it.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    SendMessage(Uuid),
    Connect(IpAddr),
    SendCode(IpAddr),
}

/// A limit: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: u32,
    per_second: f64,
}

impl Rate {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / self.per_second.max(f64::MIN_POSITIVE));
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }

    /// The fixed window that allows `burst` actions at this average rate.
    fn window(self) -> Duration {
        Duration::from_secs_f64((f64::from(self.burst) / self.per_second).max(1.0))
    }
}

struct Bucket<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    fn new(rate: Rate) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(rate.quota()),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<()> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Error::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

/// The limits of API.md, kept in this process or in the shared kv.
pub struct RateLimiter {
    rates: RateLimits,
    /// The in-process buckets: the limits without Redis, and while Redis is away.
    buckets: Box<Buckets>,
    shared: Option<Shared>,
}

struct Buckets {
    messages: Bucket<Uuid>,
    connections: Bucket<IpAddr>,
    codes: Bucket<IpAddr>,
}

/// Counters in the kv every instance shares, skipped for a while after it
/// failed to answer (so a Redis outage costs one timeout, not one per action).
struct Shared {
    kv: Arc<dyn Kv>,
    down_until: std::sync::Mutex<Option<Instant>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.down_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_down(&self) -> bool {
        self.lock().is_some_and(|until| Instant::now() < until)
    }

    fn mark_down(&self) {
        *self.lock() = Some(Instant::now() + SHARED_RETRY);
    }
}

impl RateLimiter {
    /// Token buckets in this process.
    pub fn in_process(rates: RateLimits) -> Self {
        let buckets = Box::new(Buckets {
            messages: Bucket::new(message_rate(&rates)),
            connections: Bucket::new(connection_rate(&rates)),
            codes: Bucket::new(code_rate(&rates)),
        });
        Self {
            rates,
            buckets,
            shared: None,
        }
    }

    /// Fixed-window counters in a kv that every instance shares; this
    /// process's buckets while it does not answer.
    pub fn shared(rates: RateLimits, kv: Arc<dyn Kv>) -> Self {
        Self {
            shared: Some(Shared {
                kv,
                down_until: std::sync::Mutex::new(None),
            }),
            ..Self::in_process(rates)
        }
    }

    /// `RATE_LIMITED` (with how long to wait) when `action` is over its limit.
    pub async fn check(&self, action: Action) -> Result<()> {
        if let Some(shared) = self.shared.as_ref().filter(|shared| !shared.is_down()) {
            let (key, rate) = match action {
                Action::SendMessage(user) => {
                    (format!("rate:msg:{user}"), message_rate(&self.rates))
                }
                Action::Connect(address) => {
                    (format!("rate:ws:{address}"), connection_rate(&self.rates))
                }
                Action::SendCode(address) => {
                    (format!("rate:code:{address}"), code_rate(&self.rates))
                }
            };
            match within_window(shared.kv.as_ref(), &key, rate.burst, rate.window()).await {
                Err(Error::Unavailable(_)) => shared.mark_down(),
                decided => return decided,
            }
        }
        match action {
            Action::SendMessage(user) => self.buckets.messages.check(&user),
            Action::Connect(address) => self.buckets.connections.check(&address),
            Action::SendCode(address) => self.buckets.codes.check(&address),
        }
    }
}

fn message_rate(rates: &RateLimits) -> Rate {
    Rate {
        burst: rates.message_burst,
        per_second: f64::from(rates.messages_per_second),
    }
}

fn connection_rate(rates: &RateLimits) -> Rate {
    Rate {
        burst: rates.connection_burst,
        per_second: f64::from(rates.connections_per_second),
    }
}

fn code_rate(rates: &RateLimits) -> Rate {
    Rate {
        burst: rates.codes_per_address,
        per_second: f64::from(rates.codes_per_address) / CODES_WINDOW.as_secs_f64(),
    }
}

/// Counts one more action in `key`'s window; `RATE_LIMITED` beyond `limit`.
async fn within_window(kv: &dyn Kv, key: &str, limit: u32, window: Duration) -> Result<()> {
    let count = kv.increment(key, window).await?;
    if count <= u64::from(limit) {
        return Ok(());
    }
    let left = kv.time_to_live(key).await.ok().flatten();
    Err(Error::RateLimited {
        retry_after: left.map_or(1, |d| d.as_secs_f64().ceil() as u64).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_passes_and_the_next_action_waits() {
        let rates = RateLimits {
            message_burst: 3,
            messages_per_second: 1,
            ..RateLimits::default()
        };
        let limiter = RateLimiter::in_process(rates);
        let user = Uuid::new_v4();
        for _ in 0..3 {
            limiter.check(Action::SendMessage(user)).await.unwrap();
        }
        let refused = limiter.check(Action::SendMessage(user)).await;
        assert!(
            matches!(refused, Err(Error::RateLimited { retry_after: 1 })),
            "{refused:?}"
        );
        limiter
            .check(Action::SendMessage(Uuid::new_v4()))
            .await
            .expect("another user is not limited");
    }
}
