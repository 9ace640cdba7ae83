//! Live fan-out: publish an event on a topic, and every subscriber of that
//! topic receives it.
//!
//! # Delivery contract
//!
//! - Events published on one topic by one publisher arrive in the order they
//!   were published; nothing is promised across topics or publishers.
//! - Delivery is at most once and may lose events: a subscriber that falls
//!   more than the topic buffer (`CHATROOM_TOPIC_BUFFER`) behind sees a `Lagged` gap, and a
//!   broker may drop events while a backend is away. Room subscriptions do
//!   not rely on the broker for completeness: every message carries its
//!   `seq`, and a gap is filled from the store (`chat::delivery`).
//! - [`Broker::subscribe`] returns once the subscription is active: an event
//!   published after it returns reaches the subscriber (unless lost as above).
//! - After a stretch in which events may have been lost (a shared backend that
//!   went away and came back), every local topic gets [`Event::Resync`]:
//!   subscribers catch up from the store without waiting for the next event.
//! - A topic exists only while someone listens: the last [`Subscription`]
//!   dropped releases it.

mod local;
mod redis;

use std::{
    any::Any,
    sync::{Arc, OnceLock},
};

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{
    error::Result,
    store::{MessageRecord, Profile, Stored},
};

pub use self::{local::LocalBroker, redis::RedisBroker};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Messages of one room and changes of its membership.
    Room(Uuid),
    /// What concerns one user across rooms: rooms they joined.
    User(Uuid),
    /// The server-wide lobby.
    Lobby,
    /// Changes to which tokens count: every instance follows it.
    Sessions,
    /// Users coming online and going: every instance with a `presence`
    /// subscriber follows it.
    Presence,
}

/// A stored message with its sender, so a subscriber renders it without
/// reading the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageEvent {
    pub message: MessageRecord,
    pub sender: Profile,
    /// What a layer above makes of this event once for all its subscribers
    /// on this instance (the live path keeps its rendered payloads here):
    /// the local broker hands every subscriber the same event.
    #[serde(skip)]
    pub memo: Memo,
}

impl MessageEvent {
    pub fn new(message: MessageRecord, sender: Profile) -> Self {
        Self {
            message,
            sender,
            memo: Memo::default(),
        }
    }
}

/// A stored change of a room other than a message posted, with the state
/// right after it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChangeEvent {
    pub change: Stored,
    /// Whether the message or membership it names is new since the point a
    /// subscriber follows from (a member who joined; in a replay, a message
    /// posted after the cursor), rather than changed.
    pub fresh: bool,
    #[serde(skip)]
    pub memo: Memo,
}

impl ChangeEvent {
    pub fn new(change: Stored, fresh: bool) -> Self {
        Self {
            change,
            fresh,
            memo: Memo::default(),
        }
    }
}

/// A member started or stopped typing: live only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TypingEvent {
    pub user: Uuid,
    pub typing: bool,
    #[serde(skip)]
    pub memo: Memo,
}

/// A slot for one value, of a type the broker does not know, filled at most
/// once by the layer that uses it and dropped with the event, so it needs no
/// eviction. Empty until then; reading a filled one takes no lock.
#[derive(Default)]
pub struct Memo(OnceLock<Box<dyn Any + Send + Sync>>);

impl Memo {
    /// The value kept here, made by `init` when the slot is empty; `None`
    /// when it holds a value of another type.
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

/// Not data: events are equal whatever was made of them.
impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A copy is a new event as far as the layers above go.
impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Memo")
    }
}

/// A user came online or went: live only (the store keeps when they were
/// last seen, not the change).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PresenceEvent {
    pub user: Uuid,
    pub online: bool,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Who may see it, sorted: whoever shares a room with the user, with no
    /// block between them. Worked out once, by the instance that saw the
    /// change.
    pub audience: Vec<Uuid>,
}

/// A lobby message: live only, never stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LobbyEvent {
    pub sender: Profile,
    pub content: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// On `Room`: a message was stored.
    Message(Arc<MessageEvent>),
    /// On `Room`: another change was stored. A departure ends the departed
    /// member's subscriptions to the room.
    Change(Arc<ChangeEvent>),
    /// On `Room`: a member started or stopped typing.
    Typing(Arc<TypingEvent>),
    /// On `Room`: the room is gone; every subscription to it ends.
    RoomDeleted,
    /// On `User`: the user became a member of `room` when its seq was `seq`;
    /// their inbox follows it from the next message on.
    Joined { room: Uuid, seq: i64 },
    /// On `Lobby`.
    Lobby(Arc<LobbyEvent>),
    /// On `Sessions`: `user` changed their password; the tokens issued
    /// under the old one stop counting, and the sockets they opened close.
    PasswordChanged { user: Uuid },
    /// On `Presence`.
    Presence(Arc<PresenceEvent>),
    /// On any topic, from the broker itself: events may have been lost.
    Resync,
}

/// A live subscription to one topic; dropping it unsubscribes.
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
    /// Runs when the subscription ends, after the receiver is gone, so the
    /// broker can release a topic nobody listens to any more.
    _release: Release,
}

impl Subscription {
    pub fn new(receiver: broadcast::Receiver<Event>, release: Release) -> Self {
        Self {
            receiver,
            _release: release,
        }
    }

    /// The same subscription, running `release` too when it ends (after the
    /// releases it already had).
    pub fn also_on_release(mut self, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        self._release.0.push(Box::new(release));
        self
    }

    /// The next event; `Lagged(n)` when `n` events were missed, `Closed`
    /// when the topic can deliver nothing more.
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

/// Callbacks run once, in order, on drop.
pub struct Release(Vec<Box<dyn FnOnce() + Send + Sync>>);

impl Release {
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(vec![Box::new(release)])
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        for release in self.0.drain(..) {
            release();
        }
    }
}

#[async_trait]
pub trait Broker: Send + Sync {
    /// Sends `event` to the topic's subscribers, here and, with a shared
    /// backend, on every instance. Never waits for delivery.
    async fn publish(&self, topic: Topic, event: Event);

    /// Starts listening on `topic`; active when this returns.
    async fn subscribe(&self, topic: Topic) -> Result<Subscription>;
}
