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

/// The window of the slow, costly actions per client address (mailing a
/// code, registering).
const HOUR: Duration = Duration::from_secs(60 * 60);

/// The window of the digest mails one user gets.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The window in which failed logins are counted.
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long the shared counters are skipped after they failed to answer.
const SHARED_RETRY: Duration = Duration::from_secs(5);

/// Something limited by a rate, and who does it.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `sendMessage` and `sendLobbyMessage`, per user.
    SendMessage(Uuid),
    /// Every other mutation that writes or fans out, per user.
    Write(Uuid),
    /// `searchMessages`, per user: the one read that walks an index of
    /// every room the user is in.
    Search(Uuid),
    /// Every mutation, per client address: what one address may make the
    /// server do, however many accounts it uses.
    WriteFrom(IpAddr),
    /// `register`, per client address.
    Register(IpAddr),
    Connect(IpAddr),
    SendCode(IpAddr),
}

/// A limit: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: u32,
    per_second: f64,
}

/// Config validation keeps rates at one or more; a rate that is not still
/// never panics here, it refills once a day.
const SLOWEST_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

impl Rate {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::try_from_secs_f64(1.0 / self.per_second)
            .map_or(SLOWEST_PERIOD, |period| period.min(SLOWEST_PERIOD));
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }

    /// The fixed window that allows `burst` actions at this average rate.
    fn window(self) -> Duration {
        Duration::try_from_secs_f64(f64::from(self.burst) / self.per_second)
            .map_or(SLOWEST_PERIOD, |window| {
                window.clamp(Duration::from_secs(1), SLOWEST_PERIOD)
            })
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
    writes: Bucket<Uuid>,
    searches: Bucket<Uuid>,
    writes_from: Bucket<IpAddr>,
    registrations: Bucket<IpAddr>,
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
        crate::lock(&self.down_until)
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
            messages: Bucket::new(rate_of(&rates, Kind::Messages)),
            writes: Bucket::new(rate_of(&rates, Kind::Writes)),
            searches: Bucket::new(rate_of(&rates, Kind::Searches)),
            writes_from: Bucket::new(rate_of(&rates, Kind::WritesFrom)),
            registrations: Bucket::new(rate_of(&rates, Kind::Registrations)),
            connections: Bucket::new(rate_of(&rates, Kind::Connections)),
            codes: Bucket::new(rate_of(&rates, Kind::Codes)),
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
        let buckets = &self.buckets;
        match action {
            Action::SendMessage(user) => buckets.messages.check(&user),
            Action::Write(user) => buckets.writes.check(&user),
            Action::Search(user) => buckets.searches.check(&user),
            Action::WriteFrom(address) => buckets.writes_from.check(&address),
            Action::Register(address) => buckets.registrations.check(&address),
            Action::Connect(address) => buckets.connections.check(&address),
            Action::SendCode(address) => buckets.codes.check(&address),
        }
    }

    /// The fixed window that stands for `action`'s rate in shared counters.
    fn window_of(&self, action: Action) -> Window {
        let (key, kind) = match action {
            Action::SendMessage(user) => (format!("rate:msg:{user}"), Kind::Messages),
            Action::Write(user) => (format!("rate:write:{user}"), Kind::Writes),
            Action::Search(user) => (format!("rate:search:{user}"), Kind::Searches),
            Action::WriteFrom(address) => (format!("rate:from:{address}"), Kind::WritesFrom),
            Action::Register(address) => (format!("rate:register:{address}"), Kind::Registrations),
            Action::Connect(address) => (format!("rate:ws:{address}"), Kind::Connections),
            Action::SendCode(address) => (format!("rate:code:{address}"), Kind::Codes),
        };
        let rate = rate_of(&self.rates, kind);
        Window {
            key,
            limit: rate.burst,
            length: rate.window(),
        }
    }

    /// Counts a login try of `username` from `client` before it is checked,
    /// or refuses it (`RATE_LIMITED`) when the failures counted for either
    /// fill a window: then even the right password waits until the window
    /// ends, and guessing stops being useful. The count is one atomic
    /// increment, so concurrent tries cannot all pass a check made before
    /// any of them failed. A try that succeeds gives its count back
    /// ([`RateLimiter::login_succeeded`]); one that fails keeps it.
    ///
    /// A name that is not a valid username names no account: it is counted
    /// against the address only, so a client cannot make the server keep a
    /// counter per arbitrary string.
    pub async fn reserve_login(&self, username: Option<&str>, client: IpAddr) -> Result<()> {
        let windows = [
            username.map(|name| self.failures_of(name)),
            Some(self.failures_from(client)),
        ];
        let mut refused = Ok(());
        for window in windows.iter().flatten() {
            // Both are counted even when the first refuses: a try during a
            // lockout still counts against its address.
            if let Err(error) = self.on_windows(Count::Add(window)).await {
                refused = refused.and(Err(error));
            }
        }
        refused
    }

    /// A login that succeeded forgives its username's failures and gives
    /// back the address's count of this try.
    pub async fn login_succeeded(&self, username: &str, client: IpAddr) -> Result<()> {
        self.on_windows(Count::Clear(&self.failures_of(username)))
            .await?;
        self.on_windows(Count::GiveBack(&self.failures_from(client)))
            .await
    }

    /// Claims the one code `email` may be sent per resend interval:
    /// `RATE_LIMITED` while an earlier one is that recent.
    pub async fn claim_code_resend(&self, email: &str) -> Result<()> {
        self.on_windows(Count::Add(&self.resend_window(email)))
            .await
    }

    /// Claims one of the `per_day` digest mails `user` may get in a day:
    /// `RATE_LIMITED` past them. The address of a user is theirs alone, so
    /// this is the address's limit too.
    pub async fn claim_digest_mail(&self, user: Uuid, per_day: u32) -> Result<()> {
        let window = Window {
            key: format!("digest:{user}"),
            limit: per_day,
            length: DAY,
        };
        self.on_windows(Count::Add(&window)).await
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

/// The rates of [`Action`]s, one per bucket.
#[derive(Clone, Copy)]
enum Kind {
    Messages,
    Writes,
    Searches,
    WritesFrom,
    Registrations,
    Connections,
    Codes,
}

fn rate_of(rates: &RateLimits, kind: Kind) -> Rate {
    let steady = |burst: u32, per_second: u32| Rate {
        burst,
        per_second: f64::from(per_second),
    };
    let hourly = |per_hour: u32| Rate {
        burst: per_hour,
        per_second: f64::from(per_hour) / HOUR.as_secs_f64(),
    };
    match kind {
        Kind::Messages => steady(rates.message_burst, rates.messages_per_second),
        Kind::Writes => steady(rates.write_burst, rates.writes_per_second),
        Kind::Searches => steady(rates.search_burst, rates.searches_per_second),
        Kind::WritesFrom => steady(rates.address_write_burst, rates.address_writes_per_second),
        Kind::Registrations => hourly(rates.registrations_per_address),
        Kind::Connections => steady(rates.connection_burst, rates.connections_per_second),
        Kind::Codes => hourly(rates.codes_per_address),
    }
}

/// What is done to a window's counter.
#[derive(Clone, Copy)]
enum Count<'a> {
    /// Count one more; `RATE_LIMITED` beyond its limit.
    Add(&'a Window),
    /// Take back one that turned out not to count.
    GiveBack(&'a Window),
    /// Empty it.
    Clear(&'a Window),
}

impl Count<'_> {
    async fn on(self, kv: &dyn Kv) -> Result<()> {
        let (window, counted) = match self {
            Count::Add(window) => (window, kv.increment(&window.key, window.length).await?),
            Count::GiveBack(window) => {
                kv.decrement(&window.key).await?;
                return Ok(());
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
