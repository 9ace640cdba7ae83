//! What clients see when Redis or MongoDB goes away, and that the service
//! comes back by itself when they return.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    Account, Backends, RedisCluster, SEND, ServerProcess, Socket, TestApp, error_code,
};

async fn send_all(app: &TestApp, sender: &Account, room: &str, range: std::ops::Range<usize>) {
    for n in range {
        let sent = app.send(sender, room, &format!("m{n}")).await;
        assert!(
            sent["errors"].is_null(),
            "sendMessage must store and answer: {sent}"
        );
    }
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn subscribers_on_another_instance_get_every_message_across_a_redis_restart() {
    let test = "redis_restart";
    let mut redis = ServerProcess::redis();
    let a = TestApp::spawn_on_redis(Backends::MongoRedis, test, &redis, 2).await;
    let b = a.sibling().await;
    let (pia, quy) = (a.register("pia").await, a.register("quy").await);
    let room = a.befriend(&pia, &quy).await;
    let mut on_b = b.watch_room(&quy, &room, &a, &pia).await;

    send_all(&a, &pia, &room, 0..20).await;
    redis.stop();
    send_all(&a, &pia, &room, 20..40).await;
    let ready = a.http.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["redis"],
        "down"
    );
    redis.start();
    send_all(&a, &pia, &room, 40..60).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.http.get(a.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(
            Instant::now() < deadline,
            "Redis is back but /readyz still says down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let code = a.send_email_code("back@example.com").await;
    assert!(code["errors"].is_null(), "codes work again: {code}");

    let mut received = Vec::new();
    while received.len() < 60 {
        let message = on_b.next_message("room", "messages").await;
        received.push(message["content"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        received,
        (0..60).map(|n| format!("m{n}")).collect::<Vec<_>>()
    );
    assert_eq!(
        on_b.next_of_within("room", Duration::from_millis(500))
            .await,
        None,
        "nothing twice"
    );
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn with_redis_away_failed_logins_still_lock_a_username_on_each_instance() {
    let mut redis = ServerProcess::redis();
    let app = TestApp::spawn_on_redis(Backends::Embedded, "lockout_redis_down", &redis, 1).await;
    let ida = app.register("ida").await;
    redis.stop();

    for _ in 0..5 {
        let wrong = app.login("ida", "not the password").await;
        assert_eq!(error_code(&wrong), "UNAUTHENTICATED", "{wrong}");
    }
    let locked = app.login("ida", &ida.password).await;
    assert_eq!(
        error_code(&locked),
        "RATE_LIMITED",
        "the limit falls back to this process's counters, closed: {locked}"
    );
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_stopped_mongodb_gives_bounded_errors_publishes_nothing_and_recovers() {
    let test = "mongo_down";
    let mut mongo = ServerProcess::secantus();
    let uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        mongo.port()
    );
    let timeout = Duration::from_secs(2);
    let app = TestApp::spawn_with(Backends::Embedded, test, |c| {
        c.mongodb_uri = Some(uri);
        c.store_timeout_secs = timeout.as_secs();
    })
    .await;
    let (ray, sue) = (app.register("ray").await, app.register("sue").await);
    let room = app.befriend(&ray, &sue).await;
    let mut socket = app.watch_room(&sue, &room, &app, &ray).await;

    mongo.stop();
    let started = Instant::now();
    let failed = app.send(&ray, &room, "lost").await;
    let waited = started.elapsed();
    assert_eq!(error_code(&failed), "INTERNAL", "{failed}");
    assert!(
        !failed.to_string().to_lowercase().contains("mongo"),
        "no driver detail: {failed}"
    );
    // The bound is the store timeout, a few times over at most (the
    // membership check and the insert each wait for it), not a hang.
    assert!(waited < timeout * 5, "failed after {waited:?}");
    assert_eq!(
        socket
            .next_of_within("room", Duration::from_millis(500))
            .await,
        None,
        "nothing is published for a message that was not stored"
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    mongo.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A clientId makes the retries safe: however many reach the store, one message.
        let retry = json!({ "room": room, "content": "back", "clientId": "back-1" });
        let sent = app.as_user(&ray, SEND, retry).await;
        if sent["errors"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery within 60 s: {sent}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let message = socket.next_message("room", "messages").await;
    assert_eq!(message["content"], "back");
    let history = app
        .as_user(
            &sue,
            "query($r: ID!) { messages(roomIdentity: $r) { edges { node { content } } } }",
            json!({ "r": room }),
        )
        .await;
    let contents: Vec<&str> = history["data"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["content"].as_str().unwrap())
        .filter(|c| !c.starts_with("probe:"))
        .collect();
    assert_eq!(contents, ["back"], "the failed message was not stored");
}

/// Runs `command` on the test's own Redis.
async fn redis_command(redis: &ServerProcess, command: &[&str]) {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port())).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd
        .query_async(&mut connection)
        .await
        .expect("the command runs");
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_publish_redis_did_not_take_reaches_the_other_instance_without_a_next_message() {
    let test = "dropped_publish";
    let redis = ServerProcess::redis();
    let a = TestApp::spawn_on_redis(Backends::MongoRedis, test, &redis, 1).await;
    let b = a.sibling().await;
    let (pia, quy) = (a.register("pia").await, a.register("quy").await);
    let room = a.befriend(&pia, &quy).await;
    let mut on_b = b.watch_room(&quy, &room, &a, &pia).await;

    // Writes wait (PUBLISH among them) while reads and PINGs go on: a's
    // publish times out and is dropped, and neither instance's connection
    // looks lost, so nothing else would tell b to read the store.
    redis_command(&redis, &["CLIENT", "PAUSE", "3000", "WRITE"]).await;
    send_all(&a, &pia, &room, 0..1).await;
    let mut last = None;
    for _ in 0..3 {
        // Each wait shorter than the socket helper's own bound.
        last = on_b.next_of_within("room", Duration::from_secs(5)).await;
        if last.is_some() {
            break;
        }
    }
    let last = last.expect("the last message before a quiet spell arrives");
    assert_eq!(last["data"]["messages"]["content"], "m0");
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_room_live_across_instances_loses_nothing_to_redis_pausing_all_clients() {
    let test = "client_pause";
    let redis = ServerProcess::redis();
    let a = TestApp::spawn_on_redis(Backends::MongoRedis, test, &redis, 2).await;
    let b = a.sibling().await;
    let (pia, quy) = (a.register("pia").await, a.register("quy").await);
    let room = a.befriend(&pia, &quy).await;
    let mut on_b = b.watch_room(&quy, &room, &a, &pia).await;
    let mut sent = 0;
    for pause_ms in ["7000", "15000"] {
        redis_command(&redis, &["CLIENT", "PAUSE", pause_ms, "ALL"]).await;
        send_all(&a, &pia, &room, sent..sent + 5).await;
        sent += 5;
        let mut received = Vec::new();
        while received.len() < 5 {
            let deadline = Instant::now() + Duration::from_secs(40);
            let payload = loop {
                // Each wait shorter than the socket helper's own bound.
                if let Some(payload) = on_b.next_of_within("room", Duration::from_secs(5)).await {
                    break payload;
                }
                assert!(
                    Instant::now() < deadline,
                    "no message once Redis answers again"
                );
            };
            let content = &payload["data"]["messages"]["content"];
            received.push(content.as_str().unwrap_or_default().to_owned());
        }
        let expected: Vec<String> = (sent - 5..sent).map(|n| format!("m{n}")).collect();
        assert_eq!(received, expected, "after a {pause_ms} ms pause");
    }
}

const ROOM_EVENTS: &str = "subscription($r: ID!) { roomEvents(roomIdentity: $r) { __typename
    ... on MessagePosted { cursor message { identity content reactions { emoji count } } }
    ... on MessageEdited { cursor message { identity content reactions { emoji count } } }
    ... on ReactionsChanged { cursor message { identity content reactions { emoji count } } } } }";

/// Posts, edits and reactions through `app`, from two people at once: `n`
/// rounds, each a post by `poster` edited by them and reacted to by `reactor`.
async fn mixed_changes(
    app: &TestApp,
    poster: &Account,
    reactor: &Account,
    room: &str,
    rounds: std::ops::Range<usize>,
) {
    let edit = "mutation($m: ID!, $c: String!) { editMessage(messageIdentity: $m, content: $c) { identity } }";
    let react =
        "mutation($m: ID!) { addReaction(messageIdentity: $m, emoji: \"👍\") { identity } }";
    for n in rounds {
        let sent = app.send(poster, room, &format!("m{n}")).await;
        let message = sent["data"]["sendMessage"]["identity"].clone();
        assert!(
            message.is_string(),
            "sendMessage must store and answer: {sent}"
        );
        let (edited, reacted) = tokio::join!(
            app.as_user(
                poster,
                edit,
                json!({ "m": message, "c": format!("m{n} edited") })
            ),
            app.as_user(reactor, react, json!({ "m": message })),
        );
        assert!(edited["errors"].is_null(), "{edited}");
        assert!(reacted["errors"].is_null(), "{reacted}");
    }
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn room_events_on_another_instance_end_in_the_stored_state_across_a_redis_restart() {
    let test = "room_events_redis_restart";
    let mut redis = ServerProcess::redis();
    let a = TestApp::spawn_on_redis(Backends::MongoRedis, test, &redis, 2).await;
    let b = a.sibling().await;
    let (pia, quy, rae) = (
        a.register("pia").await,
        a.register("quy").await,
        a.register("rae").await,
    );
    let room = a.group(&pia, "g", &[&quy, &rae]).await;
    let mut on_b = b.connect(&quy).await;
    on_b.subscribe("events", ROOM_EVENTS, json!({ "r": room }))
        .await;
    let mut live = false;
    for attempt in 0..50 {
        a.send(&pia, &room, &format!("probe {attempt}")).await;
        if on_b
            .next_of_within("events", Duration::from_millis(300))
            .await
            .is_some()
        {
            live = true;
            break;
        }
    }
    assert!(live, "roomEvents never became live across instances");

    mixed_changes(&a, &pia, &rae, &room, 0..8).await;
    redis.stop();
    mixed_changes(&a, &pia, &rae, &room, 8..16).await;
    redis.start();
    mixed_changes(&a, &pia, &rae, &room, 16..24).await;

    // Follow until every message shows its last state, as the store has it.
    let mut shown = std::collections::BTreeMap::new();
    let mut cursors = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..24).any(|n| {
        shown.get(&format!("m{n} edited")) != Some(&json!([{ "emoji": "👍", "count": 1 }]))
    }) {
        assert!(
            Instant::now() < deadline,
            "not all changes arrived: {shown:?}"
        );
        let Some(payload) = on_b.next_of_within("events", Duration::from_secs(10)).await else {
            continue;
        };
        let event = &payload["data"]["roomEvents"];
        let cursor = event["cursor"].as_str().unwrap_or_default().to_owned();
        assert!(cursors.insert(cursor), "an event came twice: {event}");
        let message = &event["message"];
        shown.insert(
            message["content"].as_str().unwrap_or_default().to_owned(),
            message["reactions"].clone(),
        );
    }
    let extra = on_b
        .next_of_within("events", Duration::from_millis(500))
        .await;
    assert_eq!(extra, None, "nothing after the last change");
}

/// A socket that opens while Redis is away is carried to the presence
/// roster by the first tick after Redis is back, not left for the next
/// renewal of the holds (a third of the presence timeout later).
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_user_who_came_while_redis_was_away_is_online_once_it_is_back() {
    let mut redis = ServerProcess::redis();
    let app = TestApp::spawn_on_redis(Backends::Embedded, "presence_redis_down", &redis, 1).await;
    assert_eq!(app.config.presence_timeout_secs, 60, "renewals 20 s apart");
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    app.befriend(&ann, &bob).await;
    let presence =
        "query($u: String!) { userProfile(username: $u) { user { presence { online } } } }";

    redis.stop();
    let _socket = app.connect(&bob).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = app.as_user(&ann, presence, json!({ "u": "bob" })).await;
        if seen["data"]["userProfile"]["user"]["presence"]["online"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob is still offline 10 s after Redis came back: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next `count` messages of `socket`'s room subscription, probes left out.
async fn contents(socket: &mut Socket, count: usize) -> Vec<String> {
    let mut received = Vec::new();
    while received.len() < count {
        let message = socket.next_message("room", "messages").await;
        let content = message["content"].as_str().unwrap().to_owned();
        if !content.starts_with("probe:") {
            received.push(content);
        }
    }
    received
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_mid_traffic_loses_and_duplicates_nothing() {
    let test = "cluster_failover";
    let mut cluster = RedisCluster::start().await;
    let urls = cluster.urls();
    let a = TestApp::spawn_with(Backends::MongoRedisCluster, test, |c| {
        c.redis_url = Some(urls);
        c.store_timeout_secs = 2;
    })
    .await;
    let b = a.sibling().await;
    let (pia, quy) = (a.register("pia").await, a.register("quy").await);
    let room = a.befriend(&pia, &quy).await;
    let mut on_a = a.watch_room(&pia, &room, &b, &quy).await;
    let mut on_b = b.watch_room(&quy, &room, &a, &pia).await;

    // Senders on both instances, one after another so the order is known.
    let sends = async {
        for n in 0..90 {
            let (instance, sender) = if n % 2 == 0 { (&a, &pia) } else { (&b, &quy) };
            let sent = tokio::time::timeout(
                Duration::from_secs(30),
                instance.send(sender, &room, &format!("m{n}")),
            )
            .await
            .unwrap_or_else(|_| panic!("sendMessage m{n} did not answer in 30 s"));
            assert!(
                sent["errors"].is_null(),
                "sendMessage stores and answers: {sent}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let failover = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        cluster
            .kill_master_of(&format!("{}room:{room}", a.config.redis_prefix))
            .await;
        cluster.wait_until_serving().await;
    };
    tokio::join!(sends, failover);

    let sent: Vec<String> = (0..90).map(|n| format!("m{n}")).collect();
    for socket in [&mut on_a, &mut on_b] {
        // What went by during the failover arrives once the instances have
        // found the new master: seconds, more on a loaded machine.
        socket.set_patience(Duration::from_secs(40));
        assert_eq!(contents(socket, 90).await, sent, "every message, in order");
        assert_eq!(
            socket
                .next_of_within("room", Duration::from_millis(500))
                .await,
            None,
            "nothing twice"
        );
    }
}
