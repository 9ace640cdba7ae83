//! Who is typing in a room: live only, never stored (API.md, "Details that
//! clients rely on (version 2)").
//!
//! The kv holds who types in each room, each member for [`LAPSE`] after
//! their last `true`, so `Room.typing` reads the same on every instance.
//! Events go out at most once a second per member and room: a change
//! within the second is held, and the last one held goes out at its end.
//! The instance that took a `true` sends the `false` of its lapse, unless
//! a later `true` (on any instance) moved the lapse on.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use uuid::Uuid;

use super::{blocking, rooms::member_room};
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, Memo, Topic, TypingEvent},
    error::Result,
};

/// How long a `true` lasts without another.
pub const LAPSE: Duration = Duration::from_secs(6);

/// At most one event per member and room in this long.
pub const THROTTLE: Duration = Duration::from_secs(1);

/// Past this many entries, those no longer needed are swept out.
const SWEEP_ABOVE: usize = 4096;

/// This instance's recent typing events, per (room, member).
#[derive(Default)]
pub struct Typing(Mutex<HashMap<(Uuid, Uuid), Recent>>);

#[derive(Clone, Copy)]
struct Recent {
    /// When the last event went out.
    sent_at: Instant,
    /// What the last event said.
    sent: bool,
    /// A change held until the second is over.
    held: Option<bool>,
    /// Counts `true`s: a lapse only ends the `true` it was started for.
    trues: u64,
}

fn key(room: Uuid) -> String {
    format!("typing:{room}")
}

/// Who types in each of `rooms` now, in their order: one kv call for all.
pub async fn typing_in_rooms(app: &App, rooms: &[Uuid]) -> Result<Vec<Vec<Uuid>>> {
    let keys: Vec<String> = rooms.iter().copied().map(key).collect();
    let marked = app.kv.marked_many(&keys).await?;
    Ok(marked
        .into_iter()
        .map(|members| {
            members
                .iter()
                .filter_map(|member| Uuid::parse_str(member).ok())
                .collect()
        })
        .collect())
}

/// Whether `user` types in `room` now.
async fn types(app: &App, room: Uuid, user: Uuid) -> bool {
    typing_in_rooms(app, &[room])
        .await
        .is_ok_and(|typing| typing.iter().flatten().any(|typer| *typer == user))
}

/// The viewer starts (`true`) or stops typing in a room they are in.
pub async fn set_typing(app: &Arc<App>, viewer: &Viewer, room: &str, typing: bool) -> Result<bool> {
    let (room, _) = member_room(app, viewer, room).await?;
    blocking::check_speaking(app, &room, viewer.identity).await?;
    let (room, user) = (room.identity, viewer.identity);
    match typing {
        true => app.kv.mark(&key(room), &user.to_string(), LAPSE).await?,
        false => {
            app.kv.unmark(&key(room), &user.to_string()).await?;
        }
    }
    let trues = change(app, room, user, typing);
    if typing {
        let app = app.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LAPSE).await;
            lapse(&app, room, user, trues).await;
        });
    }
    Ok(true)
}

/// Records a change and sends it now, or holds it for the end of the
/// second; the count of `true`s after it.
fn change(app: &Arc<App>, room: Uuid, user: Uuid, typing: bool) -> u64 {
    let now = Instant::now();
    let mut recent = crate::lock(&app.typing.0);
    if recent.len() >= SWEEP_ABOVE {
        // Members who stopped a while ago need no throttle any more.
        recent.retain(|_, entry| {
            entry.sent || entry.held.is_some() || now.duration_since(entry.sent_at) < THROTTLE
        });
    }
    let entry = recent.entry((room, user)).or_insert(Recent {
        sent_at: now - THROTTLE,
        sent: !typing,
        held: None,
        trues: 0,
    });
    entry.trues += u64::from(typing);
    let trues = entry.trues;
    if entry.held.is_some() {
        entry.held = Some(typing);
    } else if now.duration_since(entry.sent_at) >= THROTTLE {
        if entry.sent != typing {
            entry.sent_at = now;
            entry.sent = typing;
            let app = app.clone();
            tokio::spawn(async move { publish(&app, room, user, typing).await });
        }
    } else {
        entry.held = Some(typing);
        let wait = entry.sent_at + THROTTLE;
        let app = app.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(wait).await;
            release(&app, room, user).await;
        });
    }
    trues
}

/// Sends what was held for (room, user), if it differs from what went out.
async fn release(app: &Arc<App>, room: Uuid, user: Uuid) {
    let send = {
        let mut recent = crate::lock(&app.typing.0);
        let Some(entry) = recent.get_mut(&(room, user)) else {
            return;
        };
        match entry.held.take() {
            Some(typing) if typing != entry.sent => {
                entry.sent = typing;
                entry.sent_at = Instant::now();
                Some(typing)
            }
            _ => None,
        }
    };
    if let Some(typing) = send {
        publish(app, room, user, typing).await;
    }
}

/// The end of the `true` counted `trues`: unless another came since, here
/// or on another instance, the member stops typing.
async fn lapse(app: &Arc<App>, room: Uuid, user: Uuid, trues: u64) {
    let latest = crate::lock(&app.typing.0)
        .get(&(room, user))
        .map(|entry| entry.trues);
    if latest != Some(trues) {
        return;
    }
    if types(app, room, user).await {
        return;
    }
    change(app, room, user, false);
    let mut recent = crate::lock(&app.typing.0);
    if recent
        .get(&(room, user))
        .is_some_and(|entry| !entry.sent && entry.held.is_none())
    {
        recent.remove(&(room, user));
    }
}

async fn publish(app: &App, room: Uuid, user: Uuid, typing: bool) {
    let event = Arc::new(TypingEvent {
        user,
        typing,
        memo: Memo::default(),
    });
    app.broker
        .publish(Topic::Room(room), Event::Typing(event))
        .await;
}
