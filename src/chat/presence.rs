//! Who is online (API.md, "Presence"): a user is, while one of their
//! authenticated WebSockets is open on any instance.
//!
//! Each instance counts its own sockets per user ([`Presence`]) and holds
//! those users in the kv's presence roster ([`crate::kv::Kv::hold`]), one
//! hold per user and instance, renewed three times per
//! `CHATROOM_PRESENCE_TIMEOUT` while the instance lives. A user's last
//! socket there lets its hold end after [`GRACE`]; a dead instance's holds
//! end with the timeout. Whoever takes an entry's lapse from the roster (one
//! instance, whichever) announces the user gone. So:
//!
//! - sockets opening and closing cost nothing beyond this instance's counts
//!   until a tick ([`TICK`]) carries the changed users to the kv, in one
//!   round trip for all who came and one for all who went;
//! - a reconnect within the grace is not a going at all: no event, no
//!   write;
//! - the store is written once per coming or going of a user (not of a
//!   socket), for all the changes of a tick together: when they were last
//!   seen, and whether a digest is due (`chat::digest`).
//!
//! Each change is published once, on the presence topic, with its audience
//! (whoever shares a room with the user, blocks left out): every instance
//! hands it to its local `presence` subscribers who are in it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_stream::stream;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::blocking;
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, PresenceEvent, Topic},
    error::Result,
    store::{Seen, now},
};

/// The kv roster of who is online. Braced: a hash tag, so that on a Redis
/// Cluster the holds of its entries live in its slot (`kv::RedisKv`).
pub const ROSTER: &str = "{presence}";

/// How often an instance carries its sockets' comings and goings to the kv
/// and takes lapses: the delay of a presence change, at most.
const TICK: Duration = Duration::from_millis(250);

/// How long a user whose last socket closed stays online: a page reload or
/// a network switch is not a going.
pub const GRACE: Duration = Duration::from_secs(2);

/// Lapses taken per tick; more wait for the next.
const LAPSES_PER_TICK: usize = 1000;

/// Changes of a tick announced at once.
const ANNOUNCING: usize = 32;

/// What one user looks like to someone allowed to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// This instance's side of presence: its sockets per user, and the
/// changes waiting for the next tick.
pub struct Presence {
    /// Names this instance's holds in the roster.
    instance: String,
    state: Mutex<Local>,
}

#[derive(Default)]
struct Local {
    /// Authenticated sockets open here, per user.
    sockets: HashMap<Uuid, usize>,
    /// Users whose count went from zero since the last tick: each is held,
    /// even if their socket closed again before it.
    arrived: HashSet<Uuid>,
    /// Users whose count went to zero since the last tick.
    left: HashSet<Uuid>,
    /// Changes taken from the kv that a failed tick did not record, the
    /// latest per user: the kv gives each only once.
    unrecorded: HashMap<Uuid, Seen>,
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            instance: Uuid::new_v4().to_string(),
            state: Mutex::default(),
        }
    }
}

/// An authenticated socket of a user, counted while it lives.
pub struct Present {
    app: Arc<App>,
    user: Uuid,
}

impl Drop for Present {
    fn drop(&mut self) {
        let mut state = crate::lock(&self.app.presence.state);
        if let Some(count) = state.sockets.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                state.sockets.remove(&self.user);
                state.left.insert(self.user);
            }
        }
    }
}

/// Counts a socket of `user` as open until the returned guard is dropped.
pub fn arrive(app: &Arc<App>, user: Uuid) -> Present {
    let mut state = crate::lock(&app.presence.state);
    let count = state.sockets.entry(user).or_default();
    *count += 1;
    if *count == 1 {
        state.arrived.insert(user);
    }
    Present {
        app: app.clone(),
        user,
    }
}

/// Carries comings and goings to the kv, renews this instance's holds,
/// takes lapses and records what changed, until the server has shut down
/// and its last socket closed.
pub async fn keep(app: Arc<App>) {
    let renew_every = app.config.presence_timeout() / 3;
    let mut renewed = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // While the kv or the store fails, ticks wait longer and longer (up to
    // a renewal's interval): an outage is not met with four tries a second
    // from every instance. What a failed tick had to do waits for the next.
    let mut failing = Duration::ZERO;
    loop {
        ticks.tick().await;
        if !failing.is_zero() {
            tokio::time::sleep(failing).await;
        }
        let renew = renewed.elapsed() >= renew_every;
        let last = app.shutdown.is_cancelled() && app.sockets.is_empty();
        match tick(&app, renew).await {
            Ok(()) => {
                failing = Duration::ZERO;
                if renew {
                    renewed = tokio::time::Instant::now();
                }
            }
            Err(error) => {
                failing = (failing * 2).clamp(TICK, renew_every.max(TICK));
                tracing::warn!(%error, "presence: a tick failed; trying again in {failing:?}");
            }
        }
        // The last sockets' goings were carried by this tick: the others
        // see these users go within the grace, not the timeout.
        if last {
            break;
        }
    }
}

/// One tick: the comings and goings since the last one carried to the kv
/// (and, with `renew`, every hold of this instance renewed), the lapses
/// taken, what changed recorded in one store write and announced. A tick
/// that fails leaves what it did not do to the next: the comings and
/// goings it did not carry, the changes it took and did not record.
pub async fn tick(app: &Arc<App>, renew: bool) -> Result<()> {
    let (arrived, left, came, went, mut seen) = {
        let mut state = crate::lock(&app.presence.state);
        let arrived = std::mem::take(&mut state.arrived);
        let left = std::mem::take(&mut state.left);
        let went: Vec<String> = left
            .iter()
            .filter(|user| !state.sockets.contains_key(user))
            .map(Uuid::to_string)
            .collect();
        let came: Vec<String> = match renew {
            true => state
                .sockets
                .keys()
                .chain(arrived.iter().filter(|user| left.contains(user)))
                .map(Uuid::to_string)
                .collect(),
            false => arrived.iter().map(Uuid::to_string).collect(),
        };
        let seen: Vec<(Uuid, Seen)> = state.unrecorded.drain().collect();
        (arrived, left, came, went, seen)
    };
    let carried = carry(app, &came, &went, &mut seen).await;
    let recorded = match &carried {
        Ok(()) if !seen.is_empty() => app.store.record_seen(&seen).await,
        _ => Ok(()),
    };
    if carried.is_err() || recorded.is_err() {
        let mut state = crate::lock(&app.presence.state);
        if carried.is_err() {
            state.arrived.extend(arrived);
            state.left.extend(left);
        }
        state.unrecorded.extend(seen);
        return carried.and(recorded);
    }
    if seen.is_empty() {
        return Ok(());
    }
    app.metrics.presence_recorded();
    // Each change's audience is a few store reads: many at once, so that a
    // tick of many changes costs about the slowest of them, not their sum.
    stream::iter(seen)
        .for_each_concurrent(ANNOUNCING, |(user, change)| announce(app, user, change))
        .await;
    Ok(())
}

/// Carries `came` and `went` to the kv and takes the lapses, adding to
/// `seen` the changes the kv gives: a user's first hold, a roster entry's
/// lapse.
async fn carry(
    app: &App,
    came: &[String],
    went: &[String],
    seen: &mut Vec<(Uuid, Seen)>,
) -> Result<()> {
    let (kv, instance, ttl) = (
        &app.kv,
        &app.presence.instance,
        app.config.presence_timeout(),
    );
    for user in kv.hold_many(ROSTER, came, instance, ttl).await? {
        if let Ok(user) = Uuid::parse_str(&user) {
            seen.push((user, Seen::Online));
        }
    }
    if !went.is_empty() {
        kv.release(ROSTER, went, instance, GRACE).await?;
    }
    for (user, ended) in kv.take_lapsed(ROSTER, LAPSES_PER_TICK).await? {
        let last_seen = DateTime::from_timestamp_millis(ended).map_or_else(now, |ended| {
            let gone = ended - chrono::Duration::from_std(GRACE).unwrap_or_default();
            gone.min(now())
        });
        if let Ok(user) = Uuid::parse_str(&user) {
            seen.push((user, Seen::Offline(last_seen)));
        }
    }
    Ok(())
}

/// Publishes a change to whoever may see it.
async fn announce(app: &App, user: Uuid, change: Seen) {
    let audience = match audience(app, user).await {
        Ok(audience) => audience,
        Err(error) => {
            tracing::warn!(%error, %user, "presence: no audience, change not announced");
            return;
        }
    };
    if audience.is_empty() {
        return;
    }
    let (online, last_seen_at) = match change {
        Seen::Online => (true, None),
        Seen::Offline(at) => (false, Some(at)),
    };
    let event = PresenceEvent {
        user,
        online,
        last_seen_at,
        audience,
    };
    app.broker
        .publish(Topic::Presence, Event::Presence(Arc::new(event)))
        .await;
}

/// Who may see `user`'s presence, sorted: everyone sharing a room with
/// them, without blocks either way.
async fn audience(app: &App, user: Uuid) -> Result<Vec<Uuid>> {
    let contacts = app.store.contacts(user).await?;
    let mut audience = blocking::unblocked(app, user, contacts).await?;
    audience.sort_unstable();
    Ok(audience)
}

/// The presence of each of `users` the viewer may see (themself, and
/// whoever shares a room with them without a block); the others are left
/// out.
pub async fn status_of(app: &App, viewer: Uuid, users: &[Uuid]) -> Result<HashMap<Uuid, Status>> {
    let others: Vec<Uuid> = users
        .iter()
        .copied()
        .filter(|user| *user != viewer)
        .collect();
    let sharing = app.store.sharing_rooms(viewer, &others).await?;
    let mut visible = blocking::unblocked(app, viewer, sharing).await?;
    if users.contains(&viewer) {
        visible.push(viewer);
    }
    status_of_visible(app, visible).await
}

/// The presence of each of `visible`, users the viewer may see.
async fn status_of_visible(app: &App, visible: Vec<Uuid>) -> Result<HashMap<Uuid, Status>> {
    let names: Vec<String> = visible.iter().map(Uuid::to_string).collect();
    let online = app.kv.held(ROSTER, &names).await?;
    let away: Vec<Uuid> = visible
        .iter()
        .zip(&online)
        .filter(|(_, online)| !**online)
        .map(|(user, _)| *user)
        .collect();
    let last_seen: HashMap<Uuid, DateTime<Utc>> =
        app.store.last_seen(&away).await?.into_iter().collect();
    Ok(visible
        .into_iter()
        .zip(online)
        .map(|(user, online)| {
            let last_seen_at = (!online).then(|| last_seen.get(&user).copied()).flatten();
            (
                user,
                Status {
                    online,
                    last_seen_at,
                },
            )
        })
        .collect())
}

/// A change the viewer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub user: Uuid,
    pub status: Status,
}

/// The presence changes of everyone the viewer may see, live, their own
/// left out.
///
/// When changes may have gone by unseen (the subscriber fell behind, or
/// the broker lost events), the status of everyone the viewer may see is
/// read again and given as it is now, rather than leaving a stale one
/// until that user's next change. A subscriber falls behind at most once
/// per broadcast buffer of events, so the reads cost no more than the
/// events they stand for.
pub async fn changes(
    app: Arc<App>,
    viewer: &Viewer,
) -> Result<impl Stream<Item = Change> + Send + use<>> {
    let viewer = viewer.identity;
    let mut subscription = app.broker.subscribe(Topic::Presence).await?;
    Ok(stream! {
        loop {
            match subscription.recv().await {
                Ok(Event::Presence(event)) => {
                    if event.user != viewer && event.audience.binary_search(&viewer).is_ok() {
                        yield Change {
                            user: event.user,
                            status: Status {
                                online: event.online,
                                last_seen_at: event.last_seen_at,
                            },
                        };
                    }
                }
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => match current(&app, viewer).await {
                    Ok(now) => {
                        for change in now {
                            yield change;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "presence: changes missed and not read again");
                    }
                },
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// The status of everyone the viewer may see, as it is now.
async fn current(app: &App, viewer: Uuid) -> Result<Vec<Change>> {
    // Contacts share a room with the viewer already: only blocks are left
    // to take out.
    let contacts = app.store.contacts(viewer).await?;
    let visible = blocking::unblocked(app, viewer, contacts).await?;
    let mut now: Vec<Change> = status_of_visible(app, visible)
        .await?
        .into_iter()
        .map(|(user, status)| Change { user, status })
        .collect();
    now.sort_unstable_by_key(|change| change.user);
    Ok(now)
}

/// Records everyone the store holds online as gone: what an instance that
/// keeps presence to itself (no Redis) does at start, since no socket can
/// be open on it yet and no other instance holds anyone.
pub async fn start_alone(app: &App) -> Result<u64> {
    app.store.all_gone(now()).await
}
