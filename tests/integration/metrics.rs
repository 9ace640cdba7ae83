//! `/metrics` read as Prometheus reads it, before and after real traffic.

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::{
    accounts::api_suite,
    helpers::{Backends, SEND, TestApp, error_code, room_subscription},
};

const STORED: &str = "chatroom_messages_stored_total";
const DELIVERED: &str = r#"chatroom_deliveries_total{kind="messages"}"#;
const SUBSCRIBED: &str = r#"chatroom_subscriptions_active{kind="messages"}"#;
const CONNECTIONS: &str = "chatroom_websocket_connections";
const OPENED: &str = "chatroom_websocket_connections_opened_total";
const GAP_FILLS: &str = "chatroom_gap_fills_total";
const GAP_FILL_MESSAGES: &str = "chatroom_gap_fill_messages_total";
const GRAPHQL_OK: &str =
    r#"chatroom_http_request_duration_seconds_count{route="/graphql",status="2xx"}"#;

fn errors(code: &str) -> String {
    format!(r#"chatroom_errors_total{{code="{code}"}}"#)
}

/// One scrape of `/metrics`: each sample by its series (`name{labels}`).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let response = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Self(samples)
    }

    /// The value of `series`; a series not reported yet (a label value never
    /// seen) counts as 0.
    fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The value of a series that must be reported even before any traffic.
    fn reported(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("{series} is not reported: {:?}", self.0.keys()))
    }
}

/// Scrapes until `series` reads `expected`: a closing client is seen by the
/// server a moment later.
async fn eventually(app: &TestApp, series: &str, expected: f64) {
    for _ in 0..100 {
        if Scrape::of(app).await.reported(series) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = Scrape::of(app).await.reported(series);
    panic!("{series} stayed {now}, expected {expected}");
}

async fn metrics_start_at_zero_and_follow_connections_and_subscriptions(backends: Backends) {
    let app = TestApp::spawn(backends, "metrics_live").await;
    let fresh = Scrape::of(&app).await;
    for series in [STORED, DELIVERED, SUBSCRIBED, CONNECTIONS, OPENED] {
        assert_eq!(fresh.reported(series), 0.0, "{series}");
    }
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;

    let mut socket = app.watch_room(&ann, &room, &app, &bob).await;
    let live = Scrape::of(&app).await;
    assert_eq!(live.reported(CONNECTIONS), 1.0);
    assert_eq!(live.reported(OPENED), 1.0);
    assert_eq!(live.reported(SUBSCRIBED), 1.0);

    socket
        .send(json!({ "id": "room", "type": "complete" }))
        .await;
    eventually(&app, SUBSCRIBED, 0.0).await;
    drop(socket);
    eventually(&app, CONNECTIONS, 0.0).await;
    assert_eq!(Scrape::of(&app).await.reported(OPENED), 1.0);
}

async fn sending_and_delivering_move_the_counters_and_retries_store_nothing(backends: Backends) {
    let app = TestApp::spawn(backends, "metrics_traffic").await;
    let (cat, dan) = (app.register("cat").await, app.register("dan").await);
    let room = app.befriend(&cat, &dan).await;
    let mut socket = app.watch_room(&cat, &room, &app, &dan).await;
    let before = Scrape::of(&app).await;

    for i in 0..3 {
        let sent = app.send(&dan, &room, &format!("m{i}")).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    let retried = json!({ "room": room, "content": "once", "clientId": "c-1" });
    for _ in 0..2 {
        let sent = app.as_user(&dan, SEND, retried.clone()).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    for expected in ["m0", "m1", "m2", "once"] {
        assert_eq!(
            socket.next_message("room", "messages").await["content"],
            expected
        );
    }
    let denied = app.anonymous("{ me { username } }", json!({})).await;
    assert_eq!(error_code(&denied), "UNAUTHENTICATED");

    let after = Scrape::of(&app).await;
    assert_eq!(after.reported(STORED) - before.reported(STORED), 4.0);
    assert_eq!(after.reported(DELIVERED) - before.reported(DELIVERED), 4.0);
    let unauthenticated = errors("UNAUTHENTICATED");
    assert_eq!(
        after.value(&unauthenticated) - before.value(&unauthenticated),
        1.0
    );
    assert!(
        after.reported(GRAPHQL_OK) >= before.reported(GRAPHQL_OK) + 6.0,
        "six requests to /graphql answered 200"
    );
}

async fn a_replay_after_a_cursor_counts_as_a_gap_fill_and_socket_errors_count_by_code(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "metrics_replay").await;
    let (eve, fay) = (app.register("eve").await, app.register("fay").await);
    let room = app.befriend(&eve, &fay).await;
    let first = app.send(&fay, &room, "m0").await;
    let cursor = first["data"]["sendMessage"]["cursor"].as_str().unwrap();
    for content in ["m1", "m2"] {
        let sent = app.send(&fay, &room, content).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    let before = Scrape::of(&app).await;

    let mut socket = app.connect(&eve).await;
    socket
        .subscribe(
            "1",
            &room_subscription(true),
            json!({ "r": room, "after": cursor }),
        )
        .await;
    for expected in ["m1", "m2"] {
        assert_eq!(
            socket.next_message("1", "messages").await["content"],
            expected
        );
    }
    socket
        .subscribe(
            "2",
            &room_subscription(false),
            json!({ "r": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    let refused = socket.next_of("2").await.expect("an error payload");
    assert_eq!(refused["errors"][0]["extensions"]["code"], "NOT_FOUND");

    let after = Scrape::of(&app).await;
    assert!(after.reported(GAP_FILLS) > before.reported(GAP_FILLS));
    assert_eq!(
        after.reported(GAP_FILL_MESSAGES) - before.reported(GAP_FILL_MESSAGES),
        2.0
    );
    assert_eq!(after.reported(DELIVERED) - before.reported(DELIVERED), 2.0);
    let not_found = errors("NOT_FOUND");
    assert_eq!(after.value(&not_found) - before.value(&not_found), 1.0);
}

api_suite!(
    metrics_start_at_zero_and_follow_connections_and_subscriptions,
    sending_and_delivering_move_the_counters_and_retries_store_nothing,
    a_replay_after_a_cursor_counts_as_a_gap_fill_and_socket_errors_count_by_code,
);
