//! The broker's delivery contract (`chatroom::broker`), over every broker.

use std::{sync::Arc, time::Duration};

use chatroom::broker::{Broker, Event, LocalBroker, Topic};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

async fn recv(subscription: &mut chatroom::broker::Subscription) -> Result<Event, RecvError> {
    tokio::time::timeout(Duration::from_secs(5), subscription.recv())
        .await
        .expect("an event within 5 s")
}

async fn every_subscriber_gets_events_in_publishing_order(broker: Arc<dyn Broker>) {
    let room = Topic::Room(Uuid::new_v4());
    let mut first = broker.subscribe(room).await.unwrap();
    let mut second = broker.subscribe(room).await.unwrap();
    let users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        broker.publish(room, Event::Left { user: *user }).await;
    }
    for subscription in [&mut first, &mut second] {
        for user in &users {
            assert_eq!(
                recv(subscription).await.unwrap(),
                Event::Left { user: *user }
            );
        }
    }
}

async fn topics_are_kept_apart(broker: Arc<dyn Broker>) {
    let (a, b) = (Topic::Room(Uuid::new_v4()), Topic::Room(Uuid::new_v4()));
    let mut on_a = broker.subscribe(a).await.unwrap();
    broker.publish(b, Event::RoomDeleted).await;
    broker.publish(a, Event::Left { user: Uuid::nil() }).await;
    assert_eq!(
        recv(&mut on_a).await.unwrap(),
        Event::Left { user: Uuid::nil() }
    );
}

macro_rules! broker_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(std::sync::Arc::new(super::LocalBroker::new(64))).await;
                }
            )*
        }
    };
}

broker_suite!(
    every_subscriber_gets_events_in_publishing_order,
    topics_are_kept_apart
);

#[tokio::test]
async fn a_topic_is_released_when_its_last_subscriber_leaves() {
    let broker = LocalBroker::new(64);
    let topic = Topic::User(Uuid::new_v4());
    let first = broker.subscribe(topic).await.unwrap();
    let second = broker.subscribe(topic).await.unwrap();
    assert_eq!(broker.topic_count(), 1);
    drop(first);
    assert_eq!(broker.topic_count(), 1);
    drop(second);
    assert_eq!(broker.topic_count(), 0);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_learns_how_much_it_missed() {
    let broker = LocalBroker::new(4);
    let topic = Topic::Lobby;
    let mut slow = broker.subscribe(topic).await.unwrap();
    for _ in 0..10 {
        broker.publish(topic, Event::RoomDeleted).await;
    }
    assert!(matches!(recv(&mut slow).await, Err(RecvError::Lagged(6))));
}
