//! One behavioural suite over every Kv backend.

use std::{sync::Arc, time::Duration};

use chatroom::kv::{Kv, MemoryKv};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

async fn a_value_reads_back_until_removed(kv: Arc<dyn Kv>) {
    assert_eq!(kv.get("k").await.unwrap(), None);
    kv.set("k", "v1", LONG).await.unwrap();
    kv.set("k", "v2", LONG).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some("v2"));
    assert!(kv.remove("k").await.unwrap(), "the first remove takes it");
    assert!(!kv.remove("k").await.unwrap(), "the second finds nothing");
    assert_eq!(kv.get("k").await.unwrap(), None);
}

async fn counters_count_within_a_fixed_window(kv: Arc<dyn Kv>) {
    assert_eq!(kv.increment("n", SHORT).await.unwrap(), 1);
    assert_eq!(kv.increment("n", SHORT).await.unwrap(), 2);
    assert_eq!(
        kv.increment("n", LONG).await.unwrap(),
        3,
        "a later ttl does not extend"
    );
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(kv.increment("n", SHORT).await.unwrap(), 1, "a new window");
}

async fn a_counter_gives_back_a_reservation_but_never_goes_below_zero(kv: Arc<dyn Kv>) {
    kv.decrement("none").await.unwrap();
    assert_eq!(kv.get("none").await.unwrap(), None, "nothing is created");
    kv.increment("n", LONG).await.unwrap();
    kv.increment("n", LONG).await.unwrap();
    kv.decrement("n").await.unwrap();
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some("1"));
    kv.decrement("n").await.unwrap();
    kv.decrement("n").await.unwrap();
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some("0"));
    let left = kv.time_to_live("n").await.unwrap().unwrap();
    assert!(left <= LONG && left > SHORT, "the window stays: {left:?}");
}

async fn values_expire_after_their_time_to_live(kv: Arc<dyn Kv>) {
    kv.set("short", "v", SHORT).await.unwrap();
    let left = kv.time_to_live("short").await.unwrap().unwrap();
    assert!(left <= SHORT && left > Duration::ZERO, "{left:?}");

    tokio::time::sleep(SHORT * 2).await;

    assert_eq!(kv.get("short").await.unwrap(), None);
    assert_eq!(kv.time_to_live("short").await.unwrap(), None);
    assert!(!kv.remove("short").await.unwrap());
}

async fn concurrent_removers_take_a_value_once(kv: Arc<dyn Kv>) {
    kv.set("prize", "1", LONG).await.unwrap();
    let removers = (0..10).map(|_| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.remove("prize").await.unwrap() })
    });
    let winners = futures_util::future::join_all(removers)
        .await
        .into_iter()
        .filter(|won| *won.as_ref().unwrap())
        .count();
    assert_eq!(winners, 1);
}

async fn members_of_a_set_lapse_each_on_its_own(kv: Arc<dyn Kv>) {
    kv.mark("room:a", "ann", SHORT).await.unwrap();
    kv.mark("room:a", "bob", LONG).await.unwrap();
    kv.mark("room:b", "cat", LONG).await.unwrap();
    let sorted = |mut members: Vec<String>| {
        members.sort();
        members
    };
    assert_eq!(sorted(kv.marked("room:a").await.unwrap()), ["ann", "bob"]);

    tokio::time::sleep(SHORT * 2).await;

    let keys = ["room:a", "room:b", "room:c"].map(str::to_owned);
    assert_eq!(
        kv.marked_many(&keys).await.unwrap(),
        [vec!["bob".to_owned()], vec!["cat".to_owned()], Vec::new()],
        "ann lapsed; the others stay, each set in the order asked"
    );
    assert!(
        !kv.unmark("room:a", "ann").await.unwrap(),
        "a lapsed member is not taken"
    );
    assert!(kv.unmark("room:a", "bob").await.unwrap());
    assert_eq!(kv.marked("room:a").await.unwrap(), Vec::<String>::new());
}

/// A roster's name with a hash tag, as the kv asks of rosters for a cluster.
const ROSTER: &str = "{online}";

async fn a_roster_entry_stays_while_any_holder_holds_it_and_lapses_once(kv: Arc<dyn Kv>) {
    let users = ["ann", "bob"].map(str::to_owned);
    assert!(kv.hold(ROSTER, "ann", "one", LONG).await.unwrap(), "new");
    assert!(
        !kv.hold(ROSTER, "ann", "two", LONG).await.unwrap(),
        "held already"
    );
    assert_eq!(
        kv.hold_many(ROSTER, &users, "one", LONG).await.unwrap(),
        ["bob"],
        "only bob was new"
    );
    assert_eq!(kv.held(ROSTER, &users).await.unwrap(), [true, true]);

    // One holder lets go: the other still holds ann.
    kv.release(ROSTER, &users, "one", SHORT).await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(kv.held(ROSTER, &users).await.unwrap(), [true, false]);
    let lapsed = kv.take_lapsed(ROSTER, 10).await.unwrap();
    assert_eq!(
        lapsed
            .iter()
            .map(|(user, _)| user.as_str())
            .collect::<Vec<_>>(),
        ["bob"]
    );
    assert!(
        kv.take_lapsed(ROSTER, 10).await.unwrap().is_empty(),
        "a lapse is taken once"
    );
    assert!(
        kv.hold(ROSTER, "bob", "one", LONG).await.unwrap(),
        "after its lapse was taken, bob is new again"
    );

    // Holds that are not renewed end by themselves: a holder that died.
    kv.hold(ROSTER, "cat", "gone", SHORT).await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    let takers = futures_util::future::join_all(
        (0..4).map(|_| async { kv.take_lapsed(ROSTER, 10).await.unwrap() }),
    )
    .await;
    let taken: Vec<&str> = takers
        .iter()
        .flatten()
        .map(|(user, _)| user.as_str())
        .collect();
    assert_eq!(taken, ["cat"], "one of four concurrent takers gets it");
}

macro_rules! kv_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                // The in-process kv keeps tokio's time, so its waits take none.
                #[tokio::test(start_paused = true)]
                async fn $behaviour() {
                    super::$behaviour(std::sync::Arc::new(super::MemoryKv::default())).await;
                }
            )*
        }
        mod redis {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    let kv = crate::helpers::redis_kv(crate::helpers::REDIS, stringify!($behaviour)).await;
                    super::$behaviour(kv).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    let kv = crate::helpers::redis_kv(crate::helpers::REDIS_CLUSTER, stringify!($behaviour)).await;
                    super::$behaviour(kv).await;
                }
            )*
        }
    };
}

kv_suite!(
    a_value_reads_back_until_removed,
    counters_count_within_a_fixed_window,
    a_counter_gives_back_a_reservation_but_never_goes_below_zero,
    values_expire_after_their_time_to_live,
    concurrent_removers_take_a_value_once,
    members_of_a_set_lapse_each_on_its_own,
    a_roster_entry_stays_while_any_holder_holds_it_and_lapses_once,
);
