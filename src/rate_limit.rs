//! Rate limits: how often one user, client address or email address may do
//! something costly or guessable. Every limit of API.md goes through the
//! one [`RateLimiter`].
//!
//! There are two kinds. A *rate* ([`Action`]) is a steady pace with a burst
//! on top: in one process a token bucket (governor's GCRA); with Redis a
//! fixed-window counter in the shared kv, a window of `burst / rate` seconds
//! allowing `burst` actions, the same average with a coarser edge. A
//! *window* (failed logins, code resends) counts what happened in a fixed
//! stretch of time and can be emptied early: always a fixed-window counter,
//! in the shared kv with Redis and in this process's own otherwise.
//!
//! When the shared kv does not answer, every limit falls back to this
//! process's own counters for a while: a Redis outage must not stop people
//! chatting (docs/deploy.md), nor lift the limits. One policy, one path
//! (`RateLimiter::on_shared`).

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
    config::{Config, RateLimits},
    error::{Error, Result},
    kv::{Kv, MemoryKv},
    store::username_key,
};

/// Sweep the in-process buckets of idle keys every this many checks.
const SWEEP_EVERY: u64 = 4096;

/// The emailing of codes: a slow, costly action per client address.
const CODES_WINDOW: Duration = Duration::from_secs(60 * 60);

/// The window in which failed logins are counted.
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long the shared counters are skipped after they failed to answer.
const SHARED_RETRY: Duration = Duration::from_secs(5);

/// Something limited by a rate, and who does it.
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
            let now = governor::clock::DefaultClock::default().now();
            Error::rate_limited(Some(not_until.wait_time_from(now)))
        })
    }
}

/// A count kept for a fixed stretch of time: its key and what it may hold.
struct Window {
    key: String,
    limit: u32,
    length: Duration,
}

/// The limits of API.md, kept in this process or in the shared kv.
pub struct RateLimiter {
    rates: RateLimits,
    code_resend: Duration,
    /// The rates in this process: all of them without Redis, and while
    /// Redis is away.
    buckets: Box<Buckets>,
    /// The windows in this process, likewise.
    windows: MemoryKv,
    shared: Option<SharedCounters>,
}

struct Buckets {
    messages: Bucket<Uuid>,
    connections: Bucket<IpAddr>,
    codes: Bucket<IpAddr>,
}

/// Counters in the kv every instance shares, skipped for a while after they
/// failed to answer (so a Redis outage costs one timeout, not one per action).
struct SharedCounters {
    kv: Arc<dyn Kv>,
    down_until: std::sync::Mutex<Option<Instant>>,
}

impl SharedCounters {
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
    /// The limits `config` sets, counted in `shared` (the kv every instance
    /// shares) when there is one, else in this process.
    pub fn new(config: &Config, shared: Option<Arc<dyn Kv>>) -> Self {
        let rates = config.rates.clone();
        let buckets = Box::new(Buckets {
            messages: Bucket::new(message_rate(&rates)),
            connections: Bucket::new(connection_rate(&rates)),
            codes: Bucket::new(code_rate(&rates)),
        });
        Self {
            rates,
            code_resend: Duration::from_secs(config.code_resend_secs),
            buckets,
            windows: MemoryKv::default(),
            shared: shared.map(|kv| SharedCounters {
                kv,
                down_until: std::sync::Mutex::new(None),
            }),
        }
    }

    /// `RATE_LIMITED` (with how long to wait) when `action` is over its rate.
    pub async fn check(&self, action: Action) -> Result<()> {
        // Only shared counters need the window: this runs for every message.
        if self.shared.is_some() {
            let window = self.window_of(action);
            if let Some(decided) = self.on_shared(Count::Add(&window)).await {
                return decided;
            }
        }
        match action {
            Action::SendMessage(user) => self.buckets.messages.check(&user),
            Action::Connect(address) => self.buckets.connections.check(&address),
            Action::SendCode(address) => self.buckets.codes.check(&address),
        }
    }

    /// The fixed window that stands for `action`'s rate in shared counters.
    fn window_of(&self, action: Action) -> Window {
        let (key, rate) = match action {
            Action::SendMessage(user) => (format!("rate:msg:{user}"), message_rate(&self.rates)),
            Action::Connect(address) => {
                (format!("rate:ws:{address}"), connection_rate(&self.rates))
            }
            Action::SendCode(address) => (format!("rate:code:{address}"), code_rate(&self.rates)),
        };
        Window {
            key,
            limit: rate.burst,
            length: rate.window(),
        }
    }

    /// `RATE_LIMITED` while `username`, or the address `client`, has failed
    /// to log in as often as a window allows: then even the right password
    /// is refused until the window ends, and guessing stops being useful.
    pub async fn check_login(&self, username: &str, client: IpAddr) -> Result<()> {
        for window in [self.failures_of(username), self.failures_from(client)] {
            self.on_windows(Count::RefuseIfFull(&window)).await?;
        }
        Ok(())
    }

    /// Counts a failed login against `username` and against `client`.
    pub async fn login_failed(&self, username: &str, client: IpAddr) -> Result<()> {
        for window in [self.failures_of(username), self.failures_from(client)] {
            // This try has failed already: that it fills the window matters
            // to the next one.
            match self.on_windows(Count::Add(&window)).await {
                Ok(()) | Err(Error::RateLimited { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// A login that succeeded forgives its username's failures.
    pub async fn login_succeeded(&self, username: &str) -> Result<()> {
        self.on_windows(Count::Clear(&self.failures_of(username)))
            .await
    }

    /// Claims the one code `email` may be sent per resend interval:
    /// `RATE_LIMITED` while an earlier one is that recent.
    pub async fn claim_code_resend(&self, email: &str) -> Result<()> {
        self.on_windows(Count::Add(&self.resend_window(email)))
            .await
    }

    /// Gives back a claim whose code nobody got, so the client may ask again at once.
    pub async fn release_code_resend(&self, email: &str) -> Result<()> {
        self.on_windows(Count::Clear(&self.resend_window(email)))
            .await
    }

    fn failures_of(&self, username: &str) -> Window {
        Window {
            key: format!("login:fail:user:{}", username_key(username)),
            limit: self.rates.login_failures_per_username,
            length: LOGIN_FAILURE_WINDOW,
        }
    }

    fn failures_from(&self, client: IpAddr) -> Window {
        Window {
            key: format!("login:fail:addr:{client}"),
            limit: self.rates.login_failures_per_address,
            length: LOGIN_FAILURE_WINDOW,
        }
    }

    fn resend_window(&self, email: &str) -> Window {
        Window {
            key: format!("code:resend:{email}"),
            limit: 1,
            length: self.code_resend,
        }
    }

    /// What `count` makes of the shared counters; `None` when there are
    /// none, or they do not answer (then they are skipped for a while, and
    /// the caller counts in this process instead).
    async fn on_shared(&self, count: Count<'_>) -> Option<Result<()>> {
        let shared = self.shared.as_ref().filter(|shared| !shared.is_down())?;
        match count.on(shared.kv.as_ref()).await {
            Err(Error::Unavailable(_)) => {
                shared.mark_down();
                None
            }
            decided => Some(decided),
        }
    }

    /// `count` on the windows in use: shared, or else this process's.
    async fn on_windows(&self, count: Count<'_>) -> Result<()> {
        match self.on_shared(count).await {
            Some(decided) => decided,
            None => count.on(&self.windows).await,
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

/// What is done to a window's counter.
#[derive(Clone, Copy)]
enum Count<'a> {
    /// Count one more; `RATE_LIMITED` beyond its limit.
    Add(&'a Window),
    /// `RATE_LIMITED` while it holds its limit, counting nothing.
    RefuseIfFull(&'a Window),
    /// Empty it.
    Clear(&'a Window),
}

impl Count<'_> {
    async fn on(self, kv: &dyn Kv) -> Result<()> {
        let (window, counted) = match self {
            Count::Add(window) => (window, kv.increment(&window.key, window.length).await?),
            Count::RefuseIfFull(window) => {
                let counted = kv.get(&window.key).await?;
                let counted = counted.and_then(|count| count.parse::<u64>().ok());
                // Full when it holds the limit: the next one would be over.
                (window, counted.unwrap_or(0) + 1)
            }
            Count::Clear(window) => {
                kv.remove(&window.key).await?;
                return Ok(());
            }
        };
        if counted <= u64::from(window.limit) {
            return Ok(());
        }
        Err(Error::rate_limited(kv.time_to_live(&window.key).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_passes_and_the_next_action_waits() {
        let config = Config {
            rates: RateLimits {
                message_burst: 3,
                messages_per_second: 1,
                ..RateLimits::default()
            },
            ..Config::default()
        };
        let limiter = RateLimiter::new(&config, None);
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
