//! The in-process broker: one bounded tokio broadcast channel per topic,
//! created on first subscribe and dropped with its last subscriber.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Broker, Event, Release, Subscription, Topic};
use crate::error::Result;

/// A std mutex: held only for a map lookup, never across an `.await`.
type Channels = Arc<Mutex<HashMap<Topic, broadcast::Sender<Event>>>>;

pub struct LocalBroker {
    channels: Channels,
    /// Events buffered per topic for the slowest subscriber.
    capacity: usize,
}

fn lock(channels: &Channels) -> MutexGuard<'_, HashMap<Topic, broadcast::Sender<Event>>> {
    crate::lock(channels)
}

impl LocalBroker {
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Channels::default(),
            capacity: capacity.max(1),
        }
    }

    /// How many topics have listeners; for tests of unsubscription.
    pub fn topic_count(&self) -> usize {
        lock(&self.channels).len()
    }

    /// Whether `topic` has a local listener.
    pub fn has_listeners(&self, topic: Topic) -> bool {
        lock(&self.channels).contains_key(&topic)
    }

    /// Every topic with a local listener.
    pub fn topics(&self) -> Vec<Topic> {
        lock(&self.channels).keys().copied().collect()
    }

    /// Hands `event` to this process's subscribers of `topic`, at once.
    pub fn send(&self, topic: Topic, event: Event) {
        if let Some(sender) = lock(&self.channels).get(&topic) {
            // An error only means nobody listens at this instant.
            let _ = sender.send(event);
        }
    }
}

#[async_trait]
impl Broker for LocalBroker {
    async fn publish(&self, topic: Topic, event: Event) {
        self.send(topic, event);
    }

    async fn subscribe(&self, topic: Topic) -> Result<Subscription> {
        let receiver = lock(&self.channels)
            .entry(topic)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        let channels = self.channels.clone();
        let release = Release::new(move || {
            let mut map = lock(&channels);
            if map.get(&topic).is_some_and(|s| s.receiver_count() == 0) {
                map.remove(&topic);
            }
        });
        Ok(Subscription::new(receiver, release))
    }
}
