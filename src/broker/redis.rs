//! The shared broker: Redis pub/sub, so an event published on any instance
//! reaches the subscribers of every instance.
//!
//! On a Redis Cluster the pub/sub is sharded (`SPUBLISH`/`SSUBSCRIBE`): each
//! channel lives on the shard of its slot, so rooms spread over the shards,
//! where plain pub/sub would carry every event to every node. The cluster
//! connection follows failovers and moves its subscriptions with them; what
//! was published meanwhile is caught up from the store, as after any outage.
//!
//! Each instance keeps one Redis connection (RESP3, so subscriptions and
//! commands share it) and fans events out locally through a [`LocalBroker`]:
//! Redis carries an event once per instance, not once per subscriber. A
//! channel is subscribed in Redis only while some local subscriber listens.
//!
//! Local subscribers get events published here at once, without the round
//! trip, and events of this instance coming back from Redis are dropped (each
//! event names its origin). Publishing never waits for Redis: events queue for
//! a publisher task and are dropped when the queue is full or Redis does not
//! take them. A topic that lost an event is sent [`Event::Resync`] as soon as
//! Redis takes it, so the other instances read the store at once, not at the
//! topic's next event (which a quiet room may never have). After this
//! instance's own connection came back, its subscribers get a `Resync` too.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use redis::{Cmd, PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify, mpsc};
use uuid::Uuid;

use super::{Broker, Event, LocalBroker, Subscription, Topic};
use crate::{
    error::Result,
    redis_link::{OnPush, RedisLink},
};

/// Events waiting for the publisher task; beyond this they are dropped.
const PUBLISH_QUEUE: usize = 8192;
/// Events sent to Redis in one pipeline at most.
const PUBLISH_BATCH: usize = 256;
/// How often a healthy connection is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// How often `Resync`s that Redis did not take are tried again.
const RESYNC_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct RedisBroker {
    relay: Arc<Relay>,
}

/// What the broker's handle shares with its tasks: it relays events from
/// Redis to this instance's subscribers (`receive`) and from here to Redis
/// (`publish`), and keeps the Redis subscriptions in step (`watch`).
struct Relay {
    local: LocalBroker,
    link: RedisLink,
    prefix: String,
    /// Tells this instance's events apart from others' when they come back.
    origin: Uuid,
    /// Topics that should be subscribed in Redis (some local listener wants
    /// them). The async mutex keeps SUBSCRIBE and UNSUBSCRIBE of one topic in
    /// the order their decisions were taken.
    subscribed: Mutex<BTreeSet<Topic>>,
    queue: mpsc::Sender<(Topic, Vec<u8>)>,
    /// Topics whose events were dropped on the way to Redis, owed a `Resync`.
    dropped: std::sync::Mutex<BTreeSet<Topic>>,
    /// Wakes the publisher for them.
    wake_publisher: Arc<Notify>,
    /// Set when the connection dropped: events may have been missed.
    lost: AtomicBool,
    wake_health: Arc<Notify>,
    pubsub: PubSub,
}

/// The commands of one kind of pub/sub.
struct PubSub {
    publish: &'static str,
    subscribe: &'static str,
    unsubscribe: &'static str,
}

/// Plain pub/sub, on one server.
const PLAIN: PubSub = PubSub {
    publish: "PUBLISH",
    subscribe: "SUBSCRIBE",
    unsubscribe: "UNSUBSCRIBE",
};

/// Sharded pub/sub, on a cluster (Redis 7).
const SHARDED: PubSub = PubSub {
    publish: "SPUBLISH",
    subscribe: "SSUBSCRIBE",
    unsubscribe: "SUNSUBSCRIBE",
};

/// What travels through Redis.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    event: Event,
}

fn channel(prefix: &str, topic: Topic) -> String {
    match topic {
        Topic::Room(room) => format!("{prefix}room:{room}"),
        Topic::User(user) => format!("{prefix}user:{user}"),
        Topic::Lobby => format!("{prefix}lobby"),
        Topic::Sessions => format!("{prefix}sessions"),
        Topic::Presence => format!("{prefix}presence"),
    }
}

fn topic_of(prefix: &str, channel: &str) -> Option<Topic> {
    let name = channel.strip_prefix(prefix)?;
    match name {
        "lobby" => return Some(Topic::Lobby),
        "sessions" => return Some(Topic::Sessions),
        "presence" => return Some(Topic::Presence),
        _ => {}
    }
    let (kind, identity) = name.split_once(':')?;
    let identity = Uuid::parse_str(identity).ok()?;
    match kind {
        "room" => Some(Topic::Room(identity)),
        "user" => Some(Topic::User(identity)),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

impl RedisBroker {
    /// Connects to `urls` (one server, or seed nodes of a cluster), and
    /// starts the tasks that publish and watch the connection.
    pub async fn connect(
        urls: &str,
        prefix: &str,
        timeout: Duration,
        buffer: usize,
    ) -> anyhow::Result<Self> {
        let origin = Uuid::new_v4();
        let (queue, outgoing) = mpsc::channel(PUBLISH_QUEUE);

        // The push handler runs on the connection's reader: it only decodes
        // and hands over, never waits.
        let relay_slot: Arc<std::sync::OnceLock<std::sync::Weak<Relay>>> = Arc::default();
        let on_push: OnPush = {
            let slot = relay_slot.clone();
            Box::new(move |push: PushInfo| {
                if let Some(relay) = slot.get().and_then(std::sync::Weak::upgrade) {
                    relay.receive(push);
                }
            })
        };
        let link = RedisLink::connect(urls, Some(on_push), timeout).await?;
        let pubsub = if link.is_cluster() { SHARDED } else { PLAIN };
        let relay = Arc::new(Relay {
            local: LocalBroker::new(buffer),
            link,
            prefix: prefix.to_owned(),
            origin,
            subscribed: Mutex::default(),
            queue,
            dropped: std::sync::Mutex::default(),
            wake_publisher: Arc::new(Notify::new()),
            lost: AtomicBool::new(false),
            wake_health: Arc::new(Notify::new()),
            pubsub,
        });
        let _ = relay_slot.set(Arc::downgrade(&relay));
        tokio::spawn(publish(Arc::downgrade(&relay), outgoing));
        tokio::spawn(watch(Arc::downgrade(&relay), relay.wake_health.clone()));
        Ok(Self { relay })
    }
}

impl Relay {
    fn dropped(&self) -> std::sync::MutexGuard<'_, BTreeSet<Topic>> {
        crate::lock(&self.dropped)
    }

    /// Notes that an event of `topics` never reached Redis.
    fn lost_events_of(&self, topics: impl IntoIterator<Item = Topic>) {
        self.dropped().extend(topics);
        self.wake_publisher.notify_one();
    }

    /// Tells the other instances' subscribers of every topic that lost an
    /// event to read the store; what Redis does not take stays owed.
    async fn announce_dropped(&self) {
        let owed = std::mem::take(&mut *self.dropped());
        if owed.is_empty() {
            return;
        }
        let envelope = Envelope {
            origin: self.origin,
            event: Event::Resync,
        };
        let Ok(payload) = serde_json::to_vec(&envelope) else {
            return;
        };
        let commands: Vec<Cmd> = owed
            .iter()
            .map(|topic| self.publication(*topic, &payload))
            .collect();
        if self.link.query_each::<()>(&commands).await.is_err() {
            self.dropped().extend(owed);
        }
    }

    fn publication(&self, topic: Topic, payload: &[u8]) -> Cmd {
        redis::cmd(self.pubsub.publish)
            .arg(channel(&self.prefix, topic))
            .arg(payload)
            .clone()
    }

    /// Subscribes `channels` in Redis: in one command on one server, one
    /// each on a cluster, where each goes to the node of its slot.
    async fn subscribe_in_redis(&self, channels: Vec<String>) -> Result<()> {
        if channels.is_empty() {
            return Ok(());
        }
        if !self.link.is_cluster() {
            return self
                .link
                .query(redis::cmd(self.pubsub.subscribe).arg(channels))
                .await;
        }
        let commands: Vec<Cmd> = channels
            .iter()
            .map(|channel| redis::cmd(self.pubsub.subscribe).arg(channel).clone())
            .collect();
        self.link.query_each::<()>(&commands).await.map(drop)
    }

    /// A push from Redis: an event of another instance, or the news that the
    /// connection dropped.
    fn receive(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let [channel, payload] = push.data.as_slice() else {
                    return;
                };
                let topic = bytes(channel)
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| topic_of(&self.prefix, c));
                let envelope =
                    bytes(payload).and_then(|p| serde_json::from_slice::<Envelope>(p).ok());
                match (topic, envelope) {
                    (Some(topic), Some(envelope)) if envelope.origin != self.origin => {
                        self.local.send(topic, envelope.event);
                    }
                    (Some(_), Some(_)) => {}
                    _ => tracing::warn!("undecodable event from Redis: dropped"),
                }
            }
            PushKind::Disconnection => {
                tracing::warn!("Redis connection lost; reconnecting");
                self.lost.store(true, Ordering::SeqCst);
                self.wake_health.notify_one();
            }
            // A shard unsubscribes us when the slot of a channel moves;
            // while someone here listens, it is subscribed again.
            PushKind::SUnsubscribe => {
                let topic = push
                    .data
                    .first()
                    .and_then(bytes)
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| topic_of(&self.prefix, c));
                if topic.is_some_and(|topic| self.local.has_listeners(topic)) {
                    tracing::info!("a Redis shard dropped a subscription; subscribing again");
                    self.lost.store(true, Ordering::SeqCst);
                    self.wake_health.notify_one();
                }
            }
            _ => {}
        }
    }

    /// Drops the Redis subscription of `topic` if no local listener is left.
    async fn release(&self, topic: Topic) {
        let mut subscribed = self.subscribed.lock().await;
        if self.local.has_listeners(topic) || !subscribed.remove(&topic) {
            return;
        }
        let command = redis::cmd(self.pubsub.unsubscribe)
            .arg(channel(&self.prefix, topic))
            .clone();
        if self.link.query::<()>(&command).await.is_err() {
            // Gone with the connection anyway: a new one subscribes only
            // what `subscribed` holds.
            self.lost.store(true, Ordering::SeqCst);
        }
    }

    /// After the connection came back: subscribe everything wanted again and
    /// tell every local subscriber that events may have been missed.
    async fn recover(&self) -> Result<()> {
        let subscribed = self.subscribed.lock().await;
        let channels: Vec<String> = subscribed
            .iter()
            .map(|topic| channel(&self.prefix, *topic))
            .collect();
        self.subscribe_in_redis(channels).await?;
        drop(subscribed);
        for topic in self.local.topics() {
            self.local.send(topic, Event::Resync);
        }
        tracing::info!("Redis connection back; subscribers resynchronised");
        Ok(())
    }
}

/// Sends queued events to Redis, many per round trip when they pile up,
/// and the `Resync`s owed for events that were dropped. It holds the broker
/// weakly, and ends with it (when the queue's sender goes).
async fn publish(relay: std::sync::Weak<Relay>, mut outgoing: mpsc::Receiver<(Topic, Vec<u8>)>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        let Some(wake) = relay.upgrade().map(|relay| relay.wake_publisher.clone()) else {
            return;
        };
        let received = tokio::select! {
            received = outgoing.recv_many(&mut batch, PUBLISH_BATCH) => Some(received),
            () = wake.notified() => None,
            // Owed `Resync`s that Redis did not take are tried again.
            () = tokio::time::sleep(RESYNC_RETRY) => None,
        };
        // None received: the queue's sender is gone with the broker.
        if received == Some(0) {
            return;
        }
        let Some(relay) = relay.upgrade() else {
            return;
        };
        if !batch.is_empty() {
            let mut topics = BTreeSet::new();
            let commands: Vec<Cmd> = batch
                .drain(..)
                .map(|(topic, payload)| {
                    topics.insert(topic);
                    relay.publication(topic, &payload)
                })
                .collect();
            if relay.link.query_each::<()>(&commands).await.is_err() {
                tracing::debug!("PUBLISH failed; the topics are told to read the store");
                relay.lost_events_of(topics);
            }
        }
        relay.announce_dropped().await;
    }
}

/// Checks the connection; after it was lost (or replaced: the new one has
/// no subscriptions), retries with a growing pause until Redis answers, then
/// recovers the subscriptions. A loss reported while recovering is recovered
/// again.
///
/// It holds the broker weakly, so it ends when the broker is dropped.
async fn watch(relay: std::sync::Weak<Relay>, wake: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    let mut renewals = 0;
    loop {
        let Some(lost) = relay.upgrade().map(|s| s.lost.load(Ordering::SeqCst)) else {
            return;
        };
        let wait = if lost { backoff } else { HEALTH_INTERVAL };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let Some(current) = relay.upgrade() else {
            return;
        };
        let alive = current.link.query::<()>(&redis::cmd("PING")).await.is_ok();
        if current.link.renewals() != renewals {
            renewals = current.link.renewals();
            current.lost.store(true, Ordering::SeqCst);
        }
        if !alive {
            current.lost.store(true, Ordering::SeqCst);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else if current.lost.swap(false, Ordering::SeqCst) {
            if let Err(error) = current.recover().await {
                tracing::warn!(%error, "Redis subscriptions not recovered yet");
                current.lost.store(true, Ordering::SeqCst);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                backoff = Duration::from_millis(100);
            }
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, topic: Topic, event: Event) {
        let envelope = Envelope {
            origin: self.relay.origin,
            event,
        };
        match serde_json::to_vec(&envelope) {
            Ok(payload) => {
                if self.relay.queue.try_send((topic, payload)).is_err() {
                    tracing::debug!("publish queue full; the topic is told to read the store");
                    self.relay.lost_events_of([topic]);
                }
            }
            Err(error) => tracing::error!(%error, "an event did not serialise"),
        }
        self.relay.local.send(topic, envelope.event);
    }

    /// Subscribes locally at once, and in Redis when this is the topic's first
    /// local listener. With Redis away, local events still arrive, and the
    /// Redis subscription is made when it returns.
    async fn subscribe(&self, topic: Topic) -> Result<Subscription> {
        let mut subscribed = self.relay.subscribed.lock().await;
        let subscription = self.relay.local.subscribe(topic).await?;
        if subscribed.insert(topic) {
            let channels = vec![channel(&self.relay.prefix, topic)];
            if self.relay.subscribe_in_redis(channels).await.is_err() {
                tracing::warn!("SUBSCRIBE failed; retried when Redis answers");
                self.relay.lost.store(true, Ordering::SeqCst);
                self.relay.wake_health.notify_one();
            }
        }
        drop(subscribed);
        let relay = Arc::downgrade(&self.relay);
        Ok(subscription.also_on_release(move || {
            // Outside a runtime (the process is ending) there is nothing to release.
            if let (Some(relay), Ok(runtime)) =
                (relay.upgrade(), tokio::runtime::Handle::try_current())
            {
                runtime.spawn(async move { relay.release(topic).await });
            }
        }))
    }
}
