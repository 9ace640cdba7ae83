//! Tokens on both transports, both WebSocket subprotocols, and the probes.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::{
    accounts::api_suite,
    helpers::{Backends, Frame, TEST_JWT_SECRET, TestApp, error_code},
};

const ME: &str = "{ me { username } }";

fn token_signed_with(secret: &str, identity: &str, expires_in_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": identity, "username": "someone", "iat": now, "nbf": now, "exp": now + expires_in_secs
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn missing_forged_expired_and_malformed_tokens_are_unauthenticated(backends: Backends) {
    let app = TestApp::spawn(backends, "bad_tokens").await;
    let nia = app.register("nia").await;

    let with_token = app.request(Some(&nia.token), &[], ME, json!({})).await;
    assert_eq!(with_token["data"]["me"]["username"], "nia");

    let missing = app.anonymous(ME, json!({})).await;
    assert_eq!(error_code(&missing), "UNAUTHENTICATED");

    let forged = token_signed_with("another-secret-another-secret-12345", &nia.identity, 3600);
    let expired = token_signed_with(TEST_JWT_SECRET, &nia.identity, -3600);
    for token in [forged.as_str(), expired.as_str(), "not.a.jwt", ""] {
        let answer = app.request(Some(token), &[], ME, json!({})).await;
        assert_eq!(error_code(&answer), "UNAUTHENTICATED", "token {token:?}");
    }
    let wrong_scheme = app
        .request(
            None,
            &[("Authorization", &format!("Basic {}", nia.token))],
            ME,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&wrong_scheme), "UNAUTHENTICATED");
}

async fn graphql_transport_ws_authenticates_at_connection_init(backends: Backends) {
    let app = TestApp::spawn(backends, "transport_ws").await;
    let ola = app.register("ola").await;

    for payload in [
        json!({ "token": ola.token }),
        json!({ "Authorization": format!("Bearer {}", ola.token) }),
    ] {
        let mut socket = app.socket("graphql-transport-ws").await;
        socket.init_ok(payload).await;
        socket.subscribe("1", ME, json!({})).await;
        let next = socket.next_json().await;
        assert_eq!(next["type"], "next");
        assert_eq!(next["payload"]["data"]["me"]["username"], "ola");
        assert_eq!(socket.next_json().await["type"], "complete");
    }
}

async fn a_bad_token_at_connection_init_closes_with_4403(backends: Backends) {
    let app = TestApp::spawn(backends, "ws_4403").await;
    let expired = token_signed_with(TEST_JWT_SECRET, &uuid::Uuid::new_v4().to_string(), -3600);
    for payload in [json!({ "token": "forged" }), json!({ "token": expired })] {
        let mut socket = app.socket("graphql-transport-ws").await;
        let answer = socket.init(payload).await;
        assert!(matches!(answer, Frame::Closed(Some(4403))), "{answer:?}");
    }
}

async fn a_socket_without_a_token_is_anonymous(backends: Backends) {
    let app = TestApp::spawn(backends, "ws_anonymous").await;
    let mut socket = app.socket("graphql-transport-ws").await;
    socket.init_ok(json!({})).await;
    socket.subscribe("1", ME, json!({})).await;
    let next = socket.next_json().await;
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{next}"
    );
}

async fn legacy_graphql_ws_is_spoken_too(backends: Backends) {
    let app = TestApp::spawn(backends, "legacy_ws").await;
    let pia = app.register("pia").await;

    let mut socket = app.socket("graphql-ws").await;
    socket.init_ok(json!({ "token": pia.token })).await;
    socket
        .send(json!({ "id": "1", "type": "start", "payload": { "query": ME } }))
        .await;
    let data = socket.next_json().await;
    assert_eq!(data["type"], "data");
    assert_eq!(data["payload"]["data"]["me"]["username"], "pia");
    assert_eq!(socket.next_json().await["type"], "complete");

    // A room's messages, live, as `data` frames.
    let quinn = app.register("quinn").await;
    let room = app.befriend(&pia, &quinn).await;
    socket
        .send(json!({ "id": "room", "type": "start", "payload": {
            "query": "subscription($r: ID!) { messages(roomIdentity: $r) { content } }",
            "variables": { "r": room },
        } }))
        .await;
    // The legacy protocol does not say when a subscription is live: send
    // until one message comes through.
    let mut attempt = 0;
    let frame = loop {
        attempt += 1;
        app.send(&quinn, &room, &format!("hello {attempt}")).await;
        let wait = std::time::Duration::from_millis(300);
        if let Ok(frame) = tokio::time::timeout(wait, socket.next_json()).await {
            break frame;
        }
        assert!(attempt < 30, "no message reached the legacy socket");
    };
    assert_eq!(frame["type"], "data", "{frame}");
    assert_eq!(frame["id"], "room");
    assert_eq!(
        frame["payload"]["data"]["messages"]["content"],
        format!("hello {attempt}")
    );

    let mut refused = app.socket("graphql-ws").await;
    let answer = refused.init(json!({ "token": "forged" })).await;
    assert!(
        matches!(&answer, Frame::Json(v) if v["type"] == "connection_error"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn graphql_transport_ws_closes_with_its_own_codes_when_its_rules_are_broken() {
    let app = TestApp::spawn(Backends::Embedded, "ws_rules").await;
    let ivy = app.register("ivy").await;
    let lobby = "subscription { lobby { content } }";

    let mut early = app.socket("graphql-transport-ws").await;
    early
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": ME } }))
        .await;
    assert!(
        matches!(early.next().await, Frame::Closed(Some(4401))),
        "subscribe before connection_init"
    );

    let mut twice = app.connect(&ivy).await;
    let again = twice.init(json!({ "token": ivy.token })).await;
    assert!(
        matches!(again, Frame::Closed(Some(4429))),
        "a second connection_init: {again:?}"
    );

    let mut duplicate = app.connect(&ivy).await;
    duplicate.subscribe("same", lobby, json!({})).await;
    duplicate.subscribe("same", lobby, json!({})).await;
    assert!(
        matches!(duplicate.next().await, Frame::Closed(Some(4409))),
        "an id already running"
    );

    let mut garbled = app.connect(&ivy).await;
    garbled.send_raw("{ not a frame").await;
    assert!(
        matches!(garbled.next().await, Frame::Closed(Some(4400))),
        "a frame that is not JSON"
    );

    let mut pinger = app.connect(&ivy).await;
    assert_eq!(pinger.ping().await, json!({ "type": "pong" }));
    pinger.subscribe("again", ME, json!({})).await;
    assert_eq!(pinger.next_message("again", "me").await["username"], "ivy");
    assert_eq!(pinger.next_json().await["type"], "complete");
    pinger.subscribe("again", ME, json!({})).await;
    assert_eq!(
        pinger.next_message("again", "me").await["username"],
        "ivy",
        "an id is free again once its operation completed"
    );
}

async fn probes_report_health_and_readiness(backends: Backends) {
    let app = TestApp::spawn(backends, "probes").await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["store"], "ok");
    if let Backends::MongoRedis = backends {
        assert_eq!(body["redis"], "ok");
    }
}

async fn queries_work_over_get_and_oversized_bodies_are_refused(backends: Backends) {
    let app = TestApp::spawn(backends, "http_limits").await;
    let get = app
        .http
        .get(app.url("/graphql?query=%7B__typename%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let body: serde_json::Value = get.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query");

    let huge = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(70 * 1024)) });
    let refused = app
        .http
        .post(app.url("/graphql"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
}

api_suite!(
    missing_forged_expired_and_malformed_tokens_are_unauthenticated,
    graphql_transport_ws_authenticates_at_connection_init,
    a_bad_token_at_connection_init_closes_with_4403,
    a_socket_without_a_token_is_anonymous,
    legacy_graphql_ws_is_spoken_too,
    probes_report_health_and_readiness,
    queries_work_over_get_and_oversized_bodies_are_refused,
);

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn readyz_names_redis_when_it_stops_answering() {
    let mut redis = crate::helpers::ServerProcess::redis();
    let app = TestApp::spawn_on_redis(Backends::Embedded, "readyz_redis_down", &redis, 1).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    redis.stop();

    let down = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body, json!({ "store": "ok", "redis": "down" }));
}
