//! Automatic persisted queries: a document sent once with its SHA-256 runs
//! by its hash from then on, over HTTP (POST and GET) and on a socket, and
//! across instances through Redis.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, TestApp, error_code},
};

const ME: &str = "query Me { me { username } }";

fn sha256(document: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, document.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn extensions(document: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(document) } })
}

/// POSTs `document`'s hash, and the document itself when `whole`.
async fn post(app: &TestApp, account: &Account, document: &str, whole: bool) -> Value {
    let mut body = json!({ "extensions": extensions(document) });
    if whole {
        body["query"] = json!(document);
    }
    post_body(app, account, &body).await
}

/// POSTs `body` as `account`; the JSON answer.
async fn post_body(app: &TestApp, account: &Account, body: &Value) -> Value {
    app.http
        .post(app.url("/graphql"))
        .bearer_auth(&account.token)
        .json(body)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON")
}

async fn get(app: &TestApp, account: &Account, document: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(app.url("/graphql"))
        .bearer_auth(&account.token)
        .header(header::ACCEPT, "application/graphql-response+json")
        .query(&[("extensions", extensions(document).to_string())])
        .send()
        .await
        .expect("answers");
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn a_document_sent_once_runs_by_its_hash_over_post_and_get(backends: Backends) {
    let app = TestApp::spawn(backends, "persisted_http").await;
    let ann = app.register("ann").await;

    let unknown = post(&app, &ann, ME, false).await;
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    let (status, unknown) = get(&app, &ann, ME).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "never executed: {unknown}");
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");

    let whole = post(&app, &ann, ME, true).await;
    assert_eq!(whole["data"]["me"]["username"], "ann");
    let by_hash = post(&app, &ann, ME, false).await;
    assert_eq!(by_hash["data"]["me"]["username"], "ann", "{by_hash}");
    let (status, by_get) = get(&app, &ann, ME).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_get["data"]["me"]["username"], "ann");

    // A mutation by its hash still needs a POST.
    let mutation = r#"mutation { updateProfile(input: { nickname: "A" }) { nickname } }"#;
    assert_eq!(
        post(&app, &ann, mutation, true).await["data"]["updateProfile"]["nickname"],
        "A"
    );
    let (status, _) = get(&app, &ann, mutation).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn a_document_with_another_hash_is_refused_and_not_kept(backends: Backends) {
    let app = TestApp::spawn(backends, "persisted_mismatch").await;
    let ann = app.register("ann").await;
    let body = json!({ "query": ME, "extensions": extensions("{ __typename }") });
    let answer = post_body(&app, &ann, &body).await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "extensions");
    let typename = post(&app, &ann, "{ __typename }", false).await;
    assert_eq!(error_code(&typename), "PERSISTED_QUERY_NOT_FOUND");
    for version in [json!(2), json!("1"), Value::Null] {
        let body = json!({
            "extensions": { "persistedQuery": { "version": version, "sha256Hash": sha256(ME) } }
        });
        let answer = post_body(&app, &ann, &body).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], "extensions",
            "{version}"
        );
    }
}

async fn a_socket_runs_a_persisted_subscription_by_its_hash(backends: Backends) {
    let app = TestApp::spawn(backends, "persisted_socket").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let document = "subscription Room($room: ID!, $after: String) { messages(roomIdentity: $room, after: $after) { content } }";
    // Sent after `before`: what the subscription replays, however late it starts.
    let before = app.send(&ann, &room, "before").await;
    let after = &before["data"]["sendMessage"]["cursor"];
    app.send(&ann, &room, "hello").await;
    let mut socket = app.connect(&bob).await;
    let by_hash = |id: &str| {
        json!({
            "id": id, "type": "subscribe",
            "payload": {
                "variables": { "room": room, "after": after },
                "extensions": extensions(document)
            }
        })
    };
    // As any operation that cannot start: one payload with the error, then
    // the end.
    socket.send(by_hash("unknown")).await;
    let refused = socket.next_of("unknown").await.expect("a payload");
    assert_eq!(
        error_code(&refused),
        "PERSISTED_QUERY_NOT_FOUND",
        "{refused}"
    );
    assert_eq!(socket.next_of("unknown").await, None);

    // Sent whole over HTTP once: known to the socket by its hash.
    assert!(post(&app, &bob, document, true).await["errors"].is_array());
    socket.send(by_hash("room")).await;
    assert_eq!(
        socket.next_message("room", "messages").await["content"],
        "hello"
    );
}

api_suite!(
    a_document_sent_once_runs_by_its_hash_over_post_and_get,
    a_document_with_another_hash_is_refused_and_not_kept,
    a_socket_runs_a_persisted_subscription_by_its_hash,
);

/// With Redis, a document sent whole to one instance runs by its hash on
/// another, which never saw it.
async fn a_document_sent_to_one_instance_runs_by_its_hash_on_another(backends: Backends) {
    let first = TestApp::spawn(backends, "persisted_shared").await;
    let second = first.sibling().await;
    let ann = first.register("ann").await;
    let document = "query Shared { me { username nickname } }";
    assert_eq!(
        post(&first, &ann, document, true).await["data"]["me"]["username"],
        "ann"
    );
    let by_hash = post(&second, &ann, document, false).await;
    assert_eq!(by_hash["data"]["me"]["username"], "ann", "{by_hash}");
}

/// What needs a second instance: over one Redis and over a cluster.
mod across {
    use super::*;

    crate::accounts::shared_suite!(a_document_sent_to_one_instance_runs_by_its_hash_on_another);
}
