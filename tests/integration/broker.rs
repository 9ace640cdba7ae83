//! The broker's delivery contract (`chatroom::broker`), over every broker.

use std::{sync::Arc, time::Duration};

use chatroom::broker::{Broker, Event, LocalBroker, RedisBroker, Topic};
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
        broker
            .publish(
                room,
                Event::Joined {
                    room: *user,
                    seq: 1,
                },
            )
            .await;
    }
    for subscription in [&mut first, &mut second] {
        for user in &users {
            assert_eq!(
                recv(subscription).await.unwrap(),
                Event::Joined {
                    room: *user,
                    seq: 1
                }
            );
        }
    }
}

async fn topics_are_kept_apart(broker: Arc<dyn Broker>) {
    let (a, b) = (Topic::Room(Uuid::new_v4()), Topic::Room(Uuid::new_v4()));
    let mut on_a = broker.subscribe(a).await.unwrap();
    broker.publish(b, Event::RoomDeleted).await;
    broker
        .publish(
            a,
            Event::Joined {
                room: Uuid::nil(),
                seq: 1,
            },
        )
        .await;
    assert_eq!(
        recv(&mut on_a).await.unwrap(),
        Event::Joined {
            room: Uuid::nil(),
            seq: 1
        }
    );
}

/// A Redis broker on `redis` (`REDIS` or `REDIS_CLUSTER`) with `prefix`.
async fn redis_broker(redis: &str, prefix: &str) -> RedisBroker {
    let url = crate::helpers::service(redis);
    RedisBroker::connect(&url, prefix, Duration::from_secs(5), 64)
        .await
        .expect("Redis connects")
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
        mod redis {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    let prefix = format!("{}:", crate::helpers::unique_name(stringify!($behaviour)));
                    let broker = super::redis_broker(crate::helpers::REDIS, &prefix).await;
                    super::$behaviour(std::sync::Arc::new(broker)).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    let prefix = format!("{}:", crate::helpers::unique_name(stringify!($behaviour)));
                    let broker = super::redis_broker(crate::helpers::REDIS_CLUSTER, &prefix).await;
                    super::$behaviour(std::sync::Arc::new(broker)).await;
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

async fn a_redis_event_reaches_the_subscribers_of_every_instance_once(redis: &str) {
    let prefix = format!("{}:", crate::helpers::unique_name("cross_instance"));
    let (a, b) = (
        redis_broker(redis, &prefix).await,
        redis_broker(redis, &prefix).await,
    );
    let topic = Topic::Room(Uuid::new_v4());
    let mut on_a = a.subscribe(topic).await.unwrap();
    let mut on_b = b.subscribe(topic).await.unwrap();
    for user in [Uuid::from_u128(1), Uuid::from_u128(2)] {
        a.publish(topic, Event::Joined { room: user, seq: 1 }).await;
    }
    for subscription in [&mut on_a, &mut on_b] {
        assert_eq!(
            recv(subscription).await.unwrap(),
            Event::Joined {
                room: Uuid::from_u128(1),
                seq: 1
            }
        );
        assert_eq!(
            recv(subscription).await.unwrap(),
            Event::Joined {
                room: Uuid::from_u128(2),
                seq: 1
            }
        );
    }
    let nothing_more = tokio::time::timeout(Duration::from_millis(300), on_a.recv()).await;
    assert!(
        nothing_more.is_err(),
        "the publisher's own event is not delivered twice"
    );
}

/// How many Redis connections listen on `channel`, as the nodes of `redis`
/// count them (sharded subscriptions on a cluster).
async fn redis_listeners(redis: &str, channel: &str) -> i64 {
    let urls = crate::helpers::service(redis);
    let seeds: Vec<&str> = urls.split(',').collect();
    let numsub = if seeds.len() > 1 {
        "SHARDNUMSUB"
    } else {
        "NUMSUB"
    };
    let mut count = 0;
    for seed in seeds {
        let mut connection = ::redis::Client::open(seed)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let (_, on_node): (String, i64) = ::redis::cmd("PUBSUB")
            .arg(numsub)
            .arg(channel)
            .query_async(&mut connection)
            .await
            .unwrap();
        count += on_node;
    }
    count
}

async fn a_redis_channel_is_unsubscribed_when_the_last_local_listener_leaves(redis: &str) {
    let prefix = format!("{}:", crate::helpers::unique_name("unsubscribe"));
    let broker = redis_broker(redis, &prefix).await;
    let room = Uuid::new_v4();
    let channel = format!("{prefix}room:{room}");
    let first = broker.subscribe(Topic::Room(room)).await.unwrap();
    let second = broker.subscribe(Topic::Room(room)).await.unwrap();
    assert_eq!(
        redis_listeners(redis, &channel).await,
        1,
        "one Redis subscription per instance"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis_listeners(redis, &channel).await, 1);
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while redis_listeners(redis, &channel).await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "still subscribed after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs each behaviour on one Redis server and on a Redis Cluster.
macro_rules! redis_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::REDIS).await;
                }
            )*
        }
        mod on_redis_cluster {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::REDIS_CLUSTER).await;
                }
            )*
        }
    };
}

redis_suite!(
    a_redis_event_reaches_the_subscribers_of_every_instance_once,
    a_redis_channel_is_unsubscribed_when_the_last_local_listener_leaves,
);
