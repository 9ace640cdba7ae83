//! Room subscriptions render each message once for all their subscribers
//! (`live`), and still answer each subscriber as its own.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Backends, Socket, TestApp, WatchedStore},
};

const WITH_EMAIL: &str = "subscription($r: ID!) {
    messages(roomIdentity: $r) { content sender { username email } }
}";

async fn renders(app: &TestApp) -> f64 {
    app.metric("chatroom_subscription_renders_total").await
}

/// Reads up to `content` and returns that message's payload.
async fn until(socket: &mut Socket, content: &str) -> Value {
    loop {
        let message = socket.next_message("room", "messages").await;
        if message["content"] == content {
            return message;
        }
    }
}

async fn six_subscribers_of_a_room_share_one_render_per_message(backends: Backends) {
    let app = TestApp::spawn(backends, "shared_renders").await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let room = app.group(&ann, "team", &[&bob, &cat]).await;
    let query =
        "subscription($r: ID!) { messages(roomIdentity: $r) { content sender { username } } }";
    let mut sockets = Vec::new();
    for account in [&bob, &cat, &bob, &cat, &bob, &cat] {
        sockets.push(
            app.watch_room_with(account, &room, query, &app, account)
                .await,
        );
    }
    // Probes of the last subscriber may still be on their way to the others.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = renders(&app).await;
    for n in 0..5 {
        app.send(&ann, &room, &format!("shared {n}")).await;
    }
    for socket in &mut sockets {
        let last = until(socket, "shared 4").await;
        assert_eq!(last["sender"]["username"], "ann");
    }
    assert_eq!(renders(&app).await - before, 5.0);
}

async fn only_the_sender_sees_their_email_when_renders_are_shared(backends: Backends) {
    let app = TestApp::spawn(backends, "shared_email").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let mut anns = app
        .watch_room_with(&ann, &room, WITH_EMAIL, &app, &ann)
        .await;
    let mut bobs = app
        .watch_room_with(&bob, &room, WITH_EMAIL, &app, &bob)
        .await;
    app.send(&ann, &room, "from ann").await;
    assert_eq!(
        until(&mut anns, "from ann").await["sender"]["email"],
        ann.email
    );
    assert_eq!(
        until(&mut bobs, "from ann").await["sender"]["email"],
        Value::Null
    );
    app.send(&bob, &room, "from bob").await;
    assert_eq!(
        until(&mut anns, "from bob").await["sender"]["email"],
        Value::Null
    );
    assert_eq!(
        until(&mut bobs, "from bob").await["sender"]["email"],
        bob.email
    );
}

async fn a_shared_subscription_answers_bad_documents_and_strangers_as_the_schema_does(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "shared_errors").await;
    let (ann, bob, eve) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("eve").await,
    );
    let room = app.befriend(&ann, &bob).await;
    let mut socket = app.connect(&eve).await;
    let cases = [
        (
            "unknown",
            "subscription($r: ID!) { messages(roomIdentity: $r) { nope } }",
            "BAD_USER_INPUT",
        ),
        (
            "stranger",
            "subscription($r: ID!) { messages(roomIdentity: $r) { content } }",
            "FORBIDDEN",
        ),
    ];
    for (id, query, code) in cases {
        socket.subscribe(id, query, json!({ "r": room })).await;
        let payload = socket.next_of(id).await.expect("an answer");
        assert_eq!(
            payload["errors"][0]["extensions"]["code"], code,
            "{id}: {payload}"
        );
        assert!(socket.next_of(id).await.is_none(), "{id} completes");
    }
}

/// A document may hold several operations, `operationName` picking the
/// subscription: it is served (by the serving schema: a render validates
/// the whole document, and the rendering schema knows only the feeds).
async fn a_subscription_picked_from_several_operations_is_served(backends: Backends) {
    let app = TestApp::spawn(backends, "shared_picked").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let first = app.send(&ann, &room, "first").await;
    app.send(&ann, &room, "second").await;
    let document = "mutation Login($u: String!, $p: String!) { login(username: $u, password: $p) { token } }
        subscription Room($r: ID!, $a: String) { messages(roomIdentity: $r, after: $a) { content } }";
    let mut socket = app.connect(&bob).await;
    socket
        .send(json!({
            "id": "room", "type": "subscribe",
            "payload": {
                "query": document, "operationName": "Room",
                "variables": { "r": room, "a": first["data"]["sendMessage"]["cursor"] }
            }
        }))
        .await;
    assert_eq!(
        socket.next_message("room", "messages").await["content"],
        "second"
    );
}

/// A field that fails in a shared render is `null` beside the others, as
/// in any response: the render mends its nulls too.
async fn a_field_that_fails_in_a_shared_render_is_null_beside_the_rest(backends: Backends) {
    let test = "shared_null";
    let inner = match backends {
        Backends::Embedded => crate::helpers::sqlite_store().await.0,
        Backends::MongoRedis | Backends::MongoRedisCluster => {
            crate::helpers::mongo_store(test).await
        }
    };
    let failing = Arc::new(AtomicBool::new(false));
    let fails = failing.clone();
    let store = WatchedStore::new(inner, move |call| {
        let fail = call == "messages_by_identities" && fails.load(Ordering::SeqCst);
        Box::pin(async move {
            match fail {
                true => Err(chatroom::error::Error::unavailable(
                    "store",
                    "failed by the test",
                )),
                false => Ok(()),
            }
        })
    });
    let app = TestApp::spawn_on(backends, test, |_| {}, Some(store)).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let first = app.send(&ann, &room, "first").await;
    let first = &first["data"]["sendMessage"];
    let reply = app
        .as_user(
            &ann,
            "mutation($r: ID!, $to: ID!) { sendMessage(roomIdentity: $r, content: \"reply\", replyTo: $to) { content } }",
            json!({ "r": room, "to": first["identity"] }),
        )
        .await;
    assert_eq!(reply["data"]["sendMessage"]["content"], "reply", "{reply}");
    failing.store(true, Ordering::SeqCst);

    let mut socket = app.connect(&bob).await;
    let query = "subscription($r: ID!, $a: String) {
        messages(roomIdentity: $r, after: $a) { content replyTo { content } } }";
    socket
        .subscribe("room", query, json!({ "r": room, "a": first["cursor"] }))
        .await;
    let payload = socket.next_of("room").await.expect("the reply");
    assert_eq!(
        payload["data"],
        json!({ "messages": { "content": "reply", "replyTo": null } }),
        "{payload}"
    );
    assert_eq!(payload["errors"][0]["path"], json!(["messages", "replyTo"]));
}

const REACTIONS: &str = "subscription($r: ID!) { roomEvents(roomIdentity: $r) { __typename
    ... on MessagePosted { message { content } }
    ... on ReactionsChanged { message { content reactions { emoji count byViewer } } } } }";

/// Reads `id`'s room events up to the next `ReactionsChanged`; its reactions.
async fn next_reactions(socket: &mut Socket) -> Value {
    loop {
        let payload = socket
            .next_of_within("events", Duration::from_secs(8))
            .await
            .expect("an event in time");
        let event = &payload["data"]["roomEvents"];
        if event["__typename"] == "ReactionsChanged" {
            return event["message"]["reactions"].clone();
        }
    }
}

async fn room_events_are_rendered_once_per_perspective_and_reactors_see_their_own(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "shared_room_events").await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let room = app.group(&ann, "team", &[&bob, &cat]).await;
    let mut sockets = Vec::new();
    for account in [&bob, &cat, &bob, &cat] {
        let mut socket = app.connect(account).await;
        socket
            .subscribe("events", REACTIONS, json!({ "r": room }))
            .await;
        sockets.push(socket);
    }
    // Live once a message sent now reaches every socket.
    'probing: for attempt in 0..50 {
        let content = format!("probe {attempt}");
        app.send(&ann, &room, &content).await;
        for socket in &mut sockets {
            let reached = socket
                .next_of_within("events", Duration::from_millis(300))
                .await;
            if reached.is_none() {
                continue 'probing;
            }
        }
        break;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for socket in &mut sockets {
        while socket
            .next_of_within("events", Duration::from_millis(100))
            .await
            .is_some()
        {}
    }
    let answer = app.send(&ann, &room, "react here").await;
    let message = answer["data"]["sendMessage"]["identity"].clone();
    let react = "mutation($m: ID!, $e: String!) { addReaction(messageIdentity: $m, emoji: $e) { identity } }";
    for socket in &mut sockets {
        socket
            .next_of_within("events", Duration::from_secs(8))
            .await;
    }
    let before = renders(&app).await;
    app.as_user(&bob, react, json!({ "m": message, "e": "👍" }))
        .await;

    for (place, socket) in sockets.iter_mut().enumerate() {
        let by_bob = place % 2 == 0;
        assert_eq!(
            next_reactions(socket).await,
            json!([{ "emoji": "👍", "count": 1, "byViewer": by_bob }]),
            "socket {place}"
        );
    }
    // The reaction as bob sees it, and as everyone else does.
    assert_eq!(renders(&app).await - before, 2.0);
}

api_suite!(
    a_field_that_fails_in_a_shared_render_is_null_beside_the_rest,
    a_subscription_picked_from_several_operations_is_served,
    room_events_are_rendered_once_per_perspective_and_reactors_see_their_own,
    six_subscribers_of_a_room_share_one_render_per_message,
    only_the_sender_sees_their_email_when_renders_are_shared,
    a_shared_subscription_answers_bad_documents_and_strangers_as_the_schema_does,
);
