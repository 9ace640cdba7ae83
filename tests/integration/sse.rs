//! GraphQL over Server-Sent Events (graphql-sse, distinct connections) on
//! `/graphql`: every operation, with the token, limits and delivery a
//! socket has. The graphql-sse client library runs against it in
//! `playground/e2e/clients.spec.ts`.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, TestApp, error_code},
};

/// One response's events, read as they come.
struct Events {
    response: reqwest::Response,
    buffered: String,
}

/// An event of the stream: `next` with its result, or `complete`.
#[derive(Debug, PartialEq)]
enum Event {
    Next(Value),
    Complete,
}

impl Events {
    /// The next event within 10 s; `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = Some(name.trim().to_owned());
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim());
                    }
                }
                match event.as_deref() {
                    Some("next") => {
                        return Some(Event::Next(serde_json::from_str(&data).expect("JSON data")));
                    }
                    Some("complete") => return Some(Event::Complete),
                    // A comment: the stream is alive.
                    _ => continue,
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s");
            match chunk {
                Ok(Some(chunk)) => self.buffered.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The result of the next event, which must be `next`.
    async fn result(&mut self) -> Value {
        match self.next().await {
            Some(Event::Next(result)) => result,
            other => panic!("a result was expected, not {other:?}"),
        }
    }
}

/// Opens the event stream of `query` as `account` (none: anonymous).
async fn stream(
    app: &TestApp,
    account: Option<&Account>,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> Events {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .header(header::ACCEPT, "text/event-stream")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(account) = account {
        request = request.bearer_auth(&account.token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream; charset=utf-8"
    );
    Events {
        response,
        buffered: String::new(),
    }
}

const MESSAGES: &str = "subscription ($room: ID!, $after: String) {
    messages(roomIdentity: $room, after: $after) { content sender { username } }
}";

async fn queries_and_mutations_stream_one_result_then_complete(backends: Backends) {
    let app = TestApp::spawn(backends, "sse_operations").await;
    let ann = app.register("ann").await;
    let mut me = stream(&app, Some(&ann), &[], "{ me { username } }", json!({})).await;
    assert_eq!(
        me.result().await,
        json!({ "data": { "me": { "username": "ann" } } })
    );
    assert_eq!(me.next().await, Some(Event::Complete));
    assert_eq!(me.next().await, None);

    let mutation = r#"mutation { updateProfile(input: { nickname: "Ann" }) { nickname } }"#;
    let mut update = stream(&app, Some(&ann), &[], mutation, json!({})).await;
    assert_eq!(
        update.result().await["data"]["updateProfile"]["nickname"],
        "Ann"
    );
    assert_eq!(update.next().await, Some(Event::Complete));
}

async fn a_subscription_replays_from_after_and_follows_what_comes(backends: Backends) {
    let app = TestApp::spawn(backends, "sse_subscription").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let first = app.send(&ann, &room, "first").await;
    let after = first["data"]["sendMessage"]["cursor"].clone();
    app.send(&ann, &room, "missed").await;

    let mut messages = stream(
        &app,
        Some(&bob),
        &[],
        MESSAGES,
        json!({ "room": room, "after": after }),
    )
    .await;
    let missed = messages.result().await;
    assert_eq!(missed["data"]["messages"]["content"], "missed", "{missed}");
    app.send(&ann, &room, "live").await;
    assert_eq!(
        messages.result().await["data"]["messages"]["content"],
        "live"
    );
}

async fn errors_keep_their_codes_and_language_on_a_stream(backends: Backends) {
    let app = TestApp::spawn(backends, "sse_errors").await;
    let ann = app.register("ann").await;
    let zh = [("Accept-Language", "zh-CN")];

    let mut anonymous = stream(&app, None, &zh, MESSAGES, json!({ "room": "r" })).await;
    let refused = anonymous.result().await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");
    assert_eq!(
        refused["errors"][0]["message"],
        "需要登录：令牌缺失、无效或已过期"
    );
    assert_eq!(anonymous.next().await, Some(Event::Complete));

    let mut invalid = stream(&app, Some(&ann), &[], "{ noSuchField }", json!({})).await;
    assert_eq!(error_code(&invalid.result().await), "BAD_USER_INPUT");
    assert_eq!(invalid.next().await, Some(Event::Complete));

    let stranger_room = "00000000-0000-7000-8000-000000000000";
    let mut forbidden = stream(
        &app,
        Some(&ann),
        &[],
        MESSAGES,
        json!({ "room": stranger_room }),
    )
    .await;
    let code = error_code(&forbidden.result().await).to_owned();
    assert!(matches!(code.as_str(), "FORBIDDEN" | "NOT_FOUND"), "{code}");
}

async fn a_stream_ends_when_its_token_stops_counting(backends: Backends) {
    let app = TestApp::spawn(backends, "sse_password_change").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let mut messages = stream(&app, Some(&bob), &[], MESSAGES, json!({ "room": room })).await;
    let change = "mutation($old: String!, $new: String!) { changePassword(oldPassword: $old, newPassword: $new) }";
    let login = app.login(&bob.username, &bob.password).await;
    let other = login["data"]["login"]["token"].as_str().expect("a token");
    let changed = app
        .request(
            Some(other),
            &[],
            change,
            json!({ "old": bob.password, "new": "a-new-password" }),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    assert_eq!(error_code(&messages.result().await), "UNAUTHENTICATED");
    assert_eq!(messages.next().await, Some(Event::Complete));
}

api_suite!(
    queries_and_mutations_stream_one_result_then_complete,
    a_subscription_replays_from_after_and_follows_what_comes,
    errors_keep_their_codes_and_language_on_a_stream,
    a_stream_ends_when_its_token_stops_counting,
);

/// A stream holds a seat of its address, as a socket does: past the
/// address's share, 429 until one ends.
#[tokio::test]
async fn streams_and_sockets_share_their_addresss_seats() {
    let app = TestApp::spawn_with(Backends::Embedded, "sse_seats", |c| {
        c.limits.max_sockets_per_address = 2;
    })
    .await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let _socket = app.connect(&bob).await;
    let first = stream(&app, Some(&bob), &[], MESSAGES, json!({ "room": room })).await;
    let refused = app
        .http
        .post(app.url("/graphql"))
        .header(header::ACCEPT, "text/event-stream")
        .bearer_auth(&bob.token)
        .json(&json!({ "query": MESSAGES, "variables": { "room": room } }))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(first);
    // The seat is given back once the server sees the stream gone.
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = app
            .http
            .post(app.url("/graphql"))
            .header(header::ACCEPT, "text/event-stream")
            .bearer_auth(&bob.token)
            .json(&json!({ "query": "{ me { username } }" }))
            .send()
            .await
            .expect("answers");
        if response.status() == StatusCode::OK {
            again = Some(response);
            break;
        }
    }
    assert!(again.is_some(), "the seat came back");
}
