//! Limits, rate limits, origins and shutdown: the server answers abuse with
//! the right code and goes on serving everyone else.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backends, Frame, SEND, TestApp, error_code, error_field};

#[tokio::test]
async fn queries_too_deep_or_too_complex_are_bad_input() {
    let app = TestApp::spawn_with(Backends::Embedded, "depth", |c| {
        c.limits.max_depth = 3;
        c.limits.max_complexity = 12;
    })
    .await;
    let ann = app.register("ann").await;
    let deep = app
        .as_user(
            &ann,
            "{ rooms { lastMessage { sender { username } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&deep), "BAD_USER_INPUT", "{deep}");
    let wide = app
        .as_user(
            &ann,
            "{ a: me { identity username nickname sex } b: me { email avatar createdAt updatedAt } c: me { identity } d: me { username } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&wide), "BAD_USER_INPUT", "{wide}");
    let fine = app.as_user(&ann, "{ me { username } }", json!({})).await;
    assert_eq!(fine["data"]["me"]["username"], "ann");
}

#[tokio::test]
async fn batches_are_answered_up_to_their_bound() {
    let app = TestApp::spawn_with(Backends::Embedded, "batch", |c| c.limits.max_batch = 2).await;
    let post = |body: serde_json::Value| app.http.post(app.url("/graphql")).json(&body).send();
    let two = post(json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .await
        .unwrap();
    let answers: serde_json::Value = two.json().await.unwrap();
    assert_eq!(
        answers,
        json!([{ "data": { "__typename": "Query" } }, { "data": { "__typename": "Query" } }])
    );

    let three = post(json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .await
        .unwrap();
    let refused: serde_json::Value = three.json().await.unwrap();
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
}

#[tokio::test]
async fn a_websocket_message_over_the_frame_limit_closes_that_socket_only() {
    let app = TestApp::spawn_with(Backends::Embedded, "frame", |c| {
        c.limits.max_frame_bytes = 1024;
    })
    .await;
    let bob = app.register("bob").await;
    let mut big = app.connect(&bob).await;
    let padding = "x".repeat(4096);
    big.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": format!("{{ me {{ username }} }} # {padding}") } }))
        .await;
    assert!(matches!(big.next().await, Frame::Closed(_)));

    let mut other = app.connect(&bob).await;
    other.subscribe("1", "{ me { username } }", json!({})).await;
    assert_eq!(other.next_message("1", "me").await["username"], "bob");
}

#[tokio::test]
async fn a_socket_runs_a_bounded_number_of_operations() {
    let app = TestApp::spawn_with(Backends::Embedded, "operations", |c| {
        c.limits.max_operations_per_socket = 2;
    })
    .await;
    let cy = app.register("cyd").await;
    let mut socket = app.connect(&cy).await;
    for id in ["a", "b", "c"] {
        socket
            .subscribe(id, "subscription { lobby { content } }", json!({}))
            .await;
    }
    let refused = socket.next_json().await;
    assert_eq!(refused["id"], "c");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");

    socket.send(json!({ "id": "a", "type": "complete" })).await;
    socket
        .subscribe("d", "{ me { username } }", json!({}))
        .await;
    assert_eq!(
        socket.next_message("d", "me").await["username"],
        "cyd",
        "room again after one completed"
    );
}

#[tokio::test]
async fn a_socket_spamming_malformed_frames_is_closed_while_others_keep_chatting() {
    let app = TestApp::spawn(Backends::Embedded, "spam").await;
    let (dee, eli) = (app.register("dee").await, app.register("eli").await);
    let room = app.befriend(&dee, &eli).await;
    let mut listener = app.watch_room(&eli, &room, &app, &dee).await;

    let mut spammer = app.connect(&dee).await;
    let mut sent = 0;
    for n in 0..1000 {
        if !spammer.send_raw(&format!("{{not json {n}")).await {
            break;
        }
        sent += 1;
    }
    assert!(
        matches!(spammer.next().await, Frame::Closed(_)),
        "closed after {sent} frames"
    );

    for text in ["still", "here"] {
        app.send(&dee, &room, text).await;
        assert_eq!(
            listener.next_message("room", "messages").await["content"],
            text
        );
    }
}

#[tokio::test]
async fn a_socket_sending_too_many_frames_is_closed_with_1008() {
    let app = TestApp::spawn_with(Backends::Embedded, "flood", |c| {
        c.limits.max_frames_per_second = 5;
    })
    .await;
    let fay = app.register("fay").await;
    let mut socket = app.connect(&fay).await;
    for n in 0..50 {
        socket
            .send(json!({ "id": format!("p{n}"), "type": "ping" }))
            .await;
    }
    let closed = loop {
        match socket.next().await {
            Frame::Closed(code) => break code,
            Frame::Json(_) => continue,
        }
    };
    assert_eq!(closed, Some(1008));
}

async fn failed_logins_lock_a_username_even_for_the_right_password(backends: Backends) {
    let app = TestApp::spawn(backends, "lockout").await;
    let gil = app.register("gil").await;
    let other = app.register("hoa").await;
    for _ in 0..5 {
        let wrong = app.login("gil", "not the password").await;
        assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    }
    let locked = app.login("GIL", &gil.password).await;
    assert_eq!(error_code(&locked), "RATE_LIMITED", "{locked}");
    let retry_after = locked["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    let unaffected = app.login(&other.username, &other.password).await;
    assert!(
        unaffected["errors"].is_null(),
        "another user logs in: {unaffected}"
    );
}

async fn failed_logins_from_one_address_are_limited_across_usernames(backends: Backends) {
    let app = TestApp::spawn_with(backends, "address_lockout", |c| {
        c.rates.login_failures_per_address = 3;
    })
    .await;
    for n in 0..3 {
        let wrong = app.login(&format!("guess{n}"), "wrong password").await;
        assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    }
    let limited = app.login("guess9", "wrong password").await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
}

async fn sending_faster_than_the_rate_is_limited_for_that_user_only(backends: Backends) {
    let app = TestApp::spawn_with(backends, "send_rate", |c| {
        c.rates.message_burst = 3;
        c.rates.messages_per_second = 1;
    })
    .await;
    let (ivy, jon) = (app.register("ivy").await, app.register("jon").await);
    let room = app.befriend(&ivy, &jon).await;
    for n in 0..3 {
        let sent = app.send(&ivy, &room, &format!("m{n}")).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    let limited = app.send(&ivy, &room, "one too many").await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let other = app.send(&jon, &room, "my turn").await;
    assert!(other["errors"].is_null(), "jon is not limited: {other}");
}

async fn codes_per_client_address_are_limited(backends: Backends) {
    let app = TestApp::spawn_with(backends, "codes_rate", |c| c.rates.codes_per_address = 2).await;
    for n in 0..2 {
        let sent = app.send_email_code(&format!("k{n}@example.com")).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    let limited = app.send_email_code("k2@example.com").await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
}

async fn new_sockets_per_address_are_limited(backends: Backends) {
    let app = TestApp::spawn_with(backends, "socket_rate", |c| {
        c.rates.connection_burst = 3;
        c.rates.connections_per_second = 1;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            app.try_socket("graphql-transport-ws", &[])
                .await
                .expect("within the burst"),
        );
    }
    let refused = app.try_socket("graphql-transport-ws", &[]).await;
    assert_eq!(refused.err(), Some(429));
    // The sockets already open go on.
    let mut first = open.remove(0);
    first.init_ok(json!({})).await;
}

crate::accounts::api_suite!(
    failed_logins_lock_a_username_even_for_the_right_password,
    failed_logins_from_one_address_are_limited_across_usernames,
    sending_faster_than_the_rate_is_limited_for_that_user_only,
    codes_per_client_address_are_limited,
    new_sockets_per_address_are_limited,
);

#[tokio::test]
async fn a_page_of_a_foreign_origin_cannot_open_a_socket() {
    let app = TestApp::spawn_with(Backends::Embedded, "cswsh", |c| {
        c.allowed_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    let foreign = app
        .try_socket(
            "graphql-transport-ws",
            &[("Origin", "https://evil.example.net")],
        )
        .await;
    assert_eq!(foreign.err(), Some(403));
    for origin in ["https://chat.example.com", "http://localhost:5173"] {
        let allowed = app
            .try_socket("graphql-transport-ws", &[("Origin", origin)])
            .await;
        assert!(allowed.is_ok(), "{origin}");
    }
    let same = format!("http://{}", app.address);
    assert!(
        app.try_socket("graphql-transport-ws", &[("Origin", &same)])
            .await
            .is_ok()
    );

    // The origin a preflight from `origin` is allowed to speak for, if any.
    let allowed_by_preflight = async |origin: &str| {
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        let allowed = preflight.headers().get("access-control-allow-origin");
        allowed.and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    assert_eq!(allowed_by_preflight("https://evil.example.net").await, None);
    assert_eq!(
        allowed_by_preflight("https://chat.example.com")
            .await
            .as_deref(),
        Some("https://chat.example.com")
    );
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let app = TestApp::spawn_with(Backends::Embedded, "introspection", |c| {
        c.introspection = false;
    })
    .await;
    let answer = app
        .anonymous("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        answer["data"].is_null() || answer["data"]["__schema"].is_null(),
        "{answer}"
    );
}

#[tokio::test]
async fn a_short_jwt_secret_is_refused_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    let config = chatroom::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        jwt_secret: Some("too short".into()),
        ..chatroom::Config::default()
    };
    let refused = chatroom::Server::build(config.clone()).await;
    assert!(refused.is_err());
    let developing = chatroom::Server::build(chatroom::Config {
        dev: true,
        ..config
    })
    .await;
    assert!(developing.is_ok());
}

#[tokio::test]
async fn shutdown_completes_subscriptions_and_ends_in_time() {
    let mut app = TestApp::spawn_with(Backends::Embedded, "shutdown", |c| {
        c.shutdown_timeout_secs = 5;
    })
    .await;
    let (kim, lee) = (app.register("kim").await, app.register("lee").await);
    let room = app.befriend(&kim, &lee).await;
    let mut socket = app.watch_room(&lee, &room, &app, &kim).await;

    let in_flight = {
        let (http, url, token) = (app.http.clone(), app.url("/graphql"), kim.token.clone());
        let body = json!({ "query": SEND, "variables": { "room": room, "content": "in flight", "clientId": "f1" } });
        tokio::spawn(async move { http.post(url).bearer_auth(token).json(&body).send().await })
    };
    let took = app.shut_down().await;

    assert!(
        took < Duration::from_secs(5) + Duration::from_secs(2),
        "took {took:?}"
    );
    let mut completed = false;
    loop {
        match socket.next().await {
            Frame::Json(frame) if frame["type"] == "complete" && frame["id"] == "room" => {
                completed = true
            }
            Frame::Json(_) => {}
            Frame::Closed(code) => {
                assert_eq!(code, Some(1001));
                break;
            }
        }
    }
    assert!(completed, "the subscription was completed before the close");

    // The message in flight either was stored and answered, or never stored.
    let answered = matches!(in_flight.await.unwrap(), Ok(response) if response.status() == 200);
    let identity = uuid::Uuid::parse_str(&room).unwrap();
    let range = chatroom::store::HistoryRange {
        after: None,
        before: None,
        limit: 100,
        newest: false,
    };
    let stored = app
        .app
        .store
        .history(identity, range)
        .await
        .unwrap()
        .iter()
        .any(|m| m.content == "in flight");
    assert!(
        answered || !stored,
        "stored without an answer being possible? answered={answered} stored={stored}"
    );
}

#[tokio::test]
async fn page_size_and_message_length_follow_their_settings() {
    let app = TestApp::spawn_with(Backends::Embedded, "page_limits", |c| {
        c.limits.max_page_size = 5;
        c.limits.max_message_chars = 10;
    })
    .await;
    let (mo, ned) = (app.register("moe").await, app.register("ned").await);
    let room = app.befriend(&mo, &ned).await;
    let long = app.send(&mo, &room, "eleven chars").await;
    assert_eq!(error_field(&long), "content");
    let page = app
        .as_user(
            &mo,
            "query($r: ID!) { messages(roomIdentity: $r, last: 6) { edges { cursor } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(error_field(&page), "last");
}

const OPEN_SOCKETS: &str = "chatroom_websocket_connections";

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_let_go_while_others_keep_up() {
    let app = TestApp::spawn_with(Backends::Embedded, "slow_reader", |c| {
        c.limits.slow_client_secs = 1;
    })
    .await;
    let (gus, hal) = (app.register("gus").await, app.register("hal").await);
    let room = app.befriend(&gus, &hal).await;
    let mut reader = app.watch_room(&hal, &room, &app, &gus).await;
    // Subscribed and live, then never read again: its buffers fill up.
    let _stalled = app.watch_room(&hal, &room, &app, &gus).await;
    assert_eq!(app.metric(OPEN_SOCKETS).await, 2.0);
    let read = tokio::spawn(async move {
        loop {
            let message = reader.next_message("room", "messages").await;
            if message["content"] == "after" {
                return;
            }
        }
    });

    let page = "x".repeat(4000);
    let mut sent = 0;
    while app.metric(OPEN_SOCKETS).await == 2.0 {
        assert!(
            sent < 5000,
            "the stalled socket was kept after {sent} messages"
        );
        for _ in 0..100 {
            app.send(&gus, &room, &page).await;
        }
        sent += 100;
    }
    app.send(&gus, &room, "after").await;
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the reader keeps up")
        .expect("the reader read every message");
}
