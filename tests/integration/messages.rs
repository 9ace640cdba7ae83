//! Sending, history and live delivery through the real endpoint.

use std::{collections::HashSet, time::Duration};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{
        Account, Backends, MESSAGE_FIELDS, Probe, SEND, TestApp, error_code, error_field,
        room_subscription,
    },
};

const HISTORY: &str = "query($r: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    messages(roomIdentity: $r, first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { content cursor } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

fn contents(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["content"].as_str().unwrap().to_owned())
        .collect()
}

/// A room of two members with `count` messages "m0", "m1", … from the first.
async fn room_with_history(app: &TestApp, count: usize) -> (Account, Account, String) {
    let (a, b) = (app.register("pager").await, app.register("reader").await);
    let room = app.befriend(&a, &b).await;
    for i in 0..count {
        let sent = app.send(&a, &room, &format!("m{i}")).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    (a, b, room)
}

async fn history_pages_backwards_and_forwards_without_gaps_or_overlap(backends: Backends) {
    let app = TestApp::spawn(backends, "paging").await;
    let (_, reader, room) = room_with_history(&app, 120).await;
    let expected: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();

    let default = app.as_user(&reader, HISTORY, json!({ "r": room })).await;
    let page = &default["data"]["messages"];
    assert_eq!(
        contents(page),
        expected[70..],
        "the default is the last 50, oldest first"
    );
    assert_eq!(page["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    let mut backwards: Vec<String> = Vec::new();
    let mut before = Value::Null;
    loop {
        let answer = app
            .as_user(
                &reader,
                HISTORY,
                json!({ "r": room, "last": 35, "before": before }),
            )
            .await;
        let page = &answer["data"]["messages"];
        let mut chunk = contents(page);
        chunk.extend(backwards);
        backwards = chunk;
        if page["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(backwards, expected);

    let mut forwards: Vec<String> = Vec::new();
    let mut after = Value::Null;
    loop {
        let answer = app
            .as_user(
                &reader,
                HISTORY,
                json!({ "r": room, "first": 40, "after": after }),
            )
            .await;
        let page = &answer["data"]["messages"];
        for edge in page["edges"].as_array().unwrap() {
            assert_eq!(edge["cursor"], edge["node"]["cursor"]);
        }
        forwards.extend(contents(page));
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !after.is_null());
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(forwards, expected);

    let first = app
        .as_user(&reader, HISTORY, json!({ "r": room, "first": 1 }))
        .await;
    let second = app
        .as_user(&reader, HISTORY, json!({ "r": room, "first": 1 }))
        .await;
    let cursor = first["data"]["messages"]["pageInfo"]["endCursor"].clone();
    assert_eq!(cursor, second["data"]["messages"]["pageInfo"]["endCursor"]);
    let between = app
        .as_user(&reader, HISTORY, json!({ "r": room, "last": 100, "after": cursor, "before": default["data"]["messages"]["pageInfo"]["startCursor"] }))
        .await;
    assert_eq!(contents(&between["data"]["messages"]), expected[1..70]);
    assert_eq!(between["data"]["messages"]["pageInfo"]["hasNextPage"], true);
}

async fn bad_messages_and_page_arguments_are_named(backends: Backends) {
    let app = TestApp::spawn(backends, "message_input").await;
    let (a, _, room) = room_with_history(&app, 1).await;
    let long = "x".repeat(4001);
    let long_id = "c".repeat(65);
    let sends = [
        (json!({ "room": room, "content": "" }), "content"),
        (json!({ "room": room, "content": " \n\t " }), "content"),
        (json!({ "room": room, "content": long }), "content"),
        (
            json!({ "room": room, "content": "ok", "clientId": long_id }),
            "clientId",
        ),
    ];
    for (variables, field) in sends {
        let answer = app.as_user(&a, SEND, variables).await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer}");
        assert_eq!(error_field(&answer), field);
    }
    let pages = [
        (json!({ "r": room, "first": 0 }), "first"),
        (json!({ "r": room, "last": 101 }), "last"),
        (json!({ "r": room, "first": 5, "last": 5 }), "last"),
        (json!({ "r": room, "after": "not-a-cursor" }), "after"),
        (json!({ "r": room, "before": "bTE=" }), "before"),
    ];
    for (variables, field) in pages {
        let answer = app.as_user(&a, HISTORY, variables.clone()).await;
        assert_eq!(
            error_code(&answer),
            "BAD_USER_INPUT",
            "{variables}: {answer}"
        );
        assert_eq!(error_field(&answer), field);
    }
    let history = app.as_user(&a, HISTORY, json!({ "r": room })).await;
    assert_eq!(
        contents(&history["data"]["messages"]),
        ["m0"],
        "nothing bad was stored"
    );
}

async fn a_retried_client_id_returns_the_first_message(backends: Backends) {
    let app = TestApp::spawn(backends, "client_id").await;
    let (a, _, room) = room_with_history(&app, 0).await;
    let retry = json!({ "room": room, "content": "once", "clientId": "c-1" });

    let retries = (0..6).map(|_| app.as_user(&a, SEND, retry.clone()));
    let answers = futures_util::future::join_all(retries).await;
    let identities: HashSet<&str> = answers
        .iter()
        .map(|a| {
            a["data"]["sendMessage"]["identity"]
                .as_str()
                .expect("a message")
        })
        .collect();
    assert_eq!(identities.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["data"]["sendMessage"]["clientId"], "c-1");

    let other = app
        .as_user(
            &a,
            SEND,
            json!({ "room": room, "content": "twice", "clientId": "c-2" }),
        )
        .await;
    assert_ne!(
        other["data"]["sendMessage"]["identity"].as_str(),
        identities.iter().next().copied()
    );
    let history = app.as_user(&a, HISTORY, json!({ "r": room })).await;
    assert_eq!(contents(&history["data"]["messages"]), ["once", "twice"]);
}

/// Reads `count` messages of subscription `id`, leaving out probes (of
/// other subscribers going live), and returns their contents in order.
async fn receive(
    socket: &mut crate::helpers::Socket,
    id: &str,
    field: &str,
    count: usize,
) -> Vec<String> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let message = socket.next_message(id, field).await;
        let content = message["content"].as_str().unwrap();
        if !content.starts_with("probe:") {
            received.push(content.to_owned());
        }
    }
    received
}

/// Checks that each sender's messages arrived in its own order, and every one once.
fn assert_complete_and_ordered(received: &[String], senders: usize, per_sender: usize) {
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(
        unique.len(),
        senders * per_sender,
        "no duplicates, none missing"
    );
    for sender in 0..senders {
        let own: Vec<usize> = received
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("s{sender}:")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(own, (0..per_sender).collect::<Vec<_>>(), "sender {sender}");
    }
}

/// Reads the cursors of subscription items and checks they are strictly increasing.
fn seqs_of(history: &Value) -> Vec<String> {
    history["data"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn three_subscribers_each_get_every_message_once_in_order_while_four_senders_race(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "fan_out").await;
    let mut members = Vec::new();
    for i in 0..7 {
        members.push(app.register(&format!("fan{i}")).await);
    }
    let refs: Vec<&Account> = members[1..].iter().collect();
    let room = app.group(&members[0], "fans", &refs).await;
    let mut sockets = Vec::new();
    for listener in &members[4..7] {
        let mut socket = app.connect(listener).await;
        let probe = Probe::message(&members[0], &room);
        let subscription = room_subscription(false);
        app.subscribe_ok(
            &mut socket,
            ("room", "messages"),
            &subscription,
            json!({ "r": room }),
            &probe,
        )
        .await;
        sockets.push(socket);
    }

    let senders = (0..4).map(|s| {
        let (app, sender, room) = (&app, &members[s], &room);
        async move {
            for n in 0..50 {
                let sent = app.send(sender, room, &format!("s{s}:{n}")).await;
                assert!(sent["errors"].is_null(), "{sent}");
            }
        }
    });
    futures_util::future::join_all(senders).await;

    let history = app
        .as_user(&members[0], HISTORY, json!({ "r": room, "last": 100 }))
        .await;
    let mut stored = seqs_of(&history);
    let older = app
        .as_user(&members[0], HISTORY, json!({ "r": room, "last": 100, "before": history["data"]["messages"]["pageInfo"]["startCursor"] }))
        .await;
    let mut all = seqs_of(&older);
    all.append(&mut stored);
    all.retain(|c| !c.starts_with("probe:"));
    for socket in &mut sockets {
        let received = receive(socket, "room", "messages", 200).await;
        assert_eq!(received, all, "the subscriber's order is the seq order");
        assert_complete_and_ordered(&received, 4, 50);
    }
}

async fn a_subscription_after_a_cursor_replays_then_continues_without_gap_or_duplicate(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "replay").await;
    let (a, b, room) = room_with_history(&app, 30).await;
    let page = app
        .as_user(&b, HISTORY, json!({ "r": room, "first": 10 }))
        .await;
    let cursor = page["data"]["messages"]["pageInfo"]["endCursor"].clone();

    let sending = async {
        for i in 30..80 {
            app.send(&a, &room, &format!("m{i}")).await;
        }
    };
    let receiving = async {
        let mut socket = app.connect(&b).await;
        socket
            .subscribe(
                "replay",
                &room_subscription(true),
                json!({ "r": room, "after": cursor }),
            )
            .await;
        receive(&mut socket, "replay", "messages", 70).await
    };
    let ((), received) = futures_util::join!(sending, receiving);
    let expected: Vec<String> = (10..80).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected);
}

async fn a_subscriber_that_reads_nothing_for_a_while_still_gets_everything_in_order(
    backends: Backends,
) {
    // A topic buffer of 4 makes the pause overflow it, so the catch-up path runs.
    let app = TestApp::spawn_with(backends, "slow", |c| c.topic_buffer = 4).await;
    let (a, b, room) = room_with_history(&app, 0).await;
    let viewer = chatroom::auth::Viewer {
        identity: uuid::Uuid::parse_str(&b.identity).unwrap(),
        username: b.username.clone(),
    };
    let mut live = chatroom::chat::delivery::room_messages(app.app.clone(), &viewer, &room, None)
        .await
        .unwrap();
    for i in 0..60 {
        app.send(&a, &room, &format!("m{i}")).await;
    }
    let mut received = Vec::new();
    while received.len() < 60 {
        let event = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream goes on")
            .expect("no error");
        received.push(event.message.content.clone());
    }
    assert_eq!(
        received,
        (0..60).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

async fn the_inbox_follows_every_room_including_ones_joined_later_and_none_left(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "inbox").await;
    let (zoe, abe, bea) = (
        app.register("zoe").await,
        app.register("abe").await,
        app.register("bea").await,
    );
    let private = app.befriend(&zoe, &abe).await;
    let group = app.group(&abe, "trio", &[&zoe]).await;
    let later = app.group(&bea, "later", &[]).await;

    let mut socket = app.connect(&zoe).await;
    let inbox = format!("subscription {{ inbox {{ {MESSAGE_FIELDS} }} }}");
    app.subscribe_ok(
        &mut socket,
        ("inbox", "inbox"),
        &inbox,
        json!({}),
        &Probe::message(&abe, &private),
    )
    .await;

    app.send(&abe, &group, "in the group").await;
    app.send(&zoe, &private, "my own").await;
    assert_eq!(
        receive(&mut socket, "inbox", "inbox", 2).await,
        ["in the group", "my own"]
    );

    app.as_user(
        &bea,
        "mutation($r: ID!) { addMembers(roomIdentity: $r, usernames: [\"zoe\"]) { identity } }",
        json!({ "r": later }),
    )
    .await;
    app.send(&bea, &later, "welcome").await;
    assert_eq!(receive(&mut socket, "inbox", "inbox", 1).await, ["welcome"]);

    app.as_user(
        &zoe,
        "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }",
        json!({ "r": group }),
    )
    .await;
    app.send(&abe, &group, "after she left").await;
    app.send(&abe, &private, "last").await;
    assert_eq!(receive(&mut socket, "inbox", "inbox", 1).await, ["last"]);
}

async fn the_lobby_reaches_every_subscriber_live(backends: Backends) {
    let app = TestApp::spawn(backends, "lobby").await;
    let (cy, di) = (app.register("cyd").await, app.register("dia").await);
    let lobby = "subscription { lobby { content sender { username } createdAt } }";
    let mut sockets = Vec::new();
    let probe = Probe::lobby(&cy);
    for account in [&cy, &di] {
        let mut socket = app.connect(account).await;
        app.subscribe_ok(&mut socket, ("lobby", "lobby"), lobby, json!({}), &probe)
            .await;
        sockets.push(socket);
    }
    let sent = app
        .as_user(&cy, probe.mutation, json!({ "content": "hello all" }))
        .await;
    assert_eq!(sent["data"]["sendLobbyMessage"]["content"], "hello all");
    for socket in &mut sockets {
        assert_eq!(receive(socket, "lobby", "lobby", 1).await, ["hello all"]);
    }
}

api_suite!(
    history_pages_backwards_and_forwards_without_gaps_or_overlap,
    bad_messages_and_page_arguments_are_named,
    a_retried_client_id_returns_the_first_message,
    three_subscribers_each_get_every_message_once_in_order_while_four_senders_race,
    a_subscription_after_a_cursor_replays_then_continues_without_gap_or_duplicate,
    a_subscriber_that_reads_nothing_for_a_while_still_gets_everything_in_order,
    the_inbox_follows_every_room_including_ones_joined_later_and_none_left,
    the_lobby_reaches_every_subscriber_live,
);
