//! Request ids on every response, and what the logs say and never say.

use std::{cell::RefCell, collections::HashSet, sync::Once, time::Duration};

use serde_json::json;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use tracing::subscriber::Interest;
use tracing_subscriber::{Layer, filter::DynFilterFn, layer::SubscriberExt};

use crate::helpers::{Backends, LOGIN, MESSAGE_FIELDS, Probe, TestApp};

#[tokio::test]
async fn every_response_carries_a_request_id_of_its_own() {
    let app = TestApp::spawn(Backends::Embedded, "request_ids").await;
    let huge = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(70 * 1024)) });
    let requests = [
        app.http.get(app.url("/healthz")),
        app.http.get(app.url("/readyz")),
        app.http.get(app.url("/metrics")),
        app.http.get(app.url("/nowhere")),
        app.http
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ __typename }" })),
        app.http.post(app.url("/graphql")).json(&huge),
    ];
    let mut ids = HashSet::new();
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.send().await.unwrap();
        let id = response
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id on {}", response.url()));
        ids.insert(uuid::Uuid::parse_str(id.to_str().unwrap()).expect("a UUID"));
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 404, 200, 413]);
    assert_eq!(ids.len(), 6, "every request gets its own id");

    let mut upgrade = format!("ws://{}/graphql", app.address)
        .into_client_request()
        .unwrap();
    upgrade.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (_socket, switched) = tokio_tungstenite::connect_async(upgrade).await.unwrap();
    assert!(switched.headers().contains_key("x-request-id"));

    let proxied = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "from-the-proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        proxied.headers()["x-request-id"],
        "from-the-proxy",
        "an id given by a proxy in front is kept, so its logs and ours join up"
    );
}

thread_local! {
    /// What our code and tower-http logged on this thread, while capturing.
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Writes a log line into this thread's capture, if it has one.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with_borrow_mut(|captured| {
            if let Some(captured) = captured {
                captured.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures, at the most verbose level, what our code and tower-http log on
/// this thread until dropped; the app under test runs on it too (a
/// `#[tokio::test]` runtime has one thread).
///
/// The subscriber is the process's global one, installed once, and filters
/// by thread per event. A thread-local subscriber (`set_default`) is not
/// enough while other tests run: a log site first reached on another thread
/// is then cached as disabled for every thread.
struct LogCapture;

impl LogCapture {
    fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let ours = |metadata: &tracing::Metadata<'_>| {
                let target = metadata.target();
                target.starts_with("chatroom") || target.starts_with("tower_http")
            };
            // Decided per event, never cached per log site: only this
            // thread's capture tells.
            let capturing = DynFilterFn::new(move |metadata, _| {
                ours(metadata) && CAPTURED.with_borrow(Option::is_some)
            })
            .with_callsite_filter(move |metadata| match ours(metadata) {
                true => Interest::sometimes(),
                false => Interest::never(),
            });
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(|| ThreadCapture)
                .with_ansi(false)
                .with_filter(capturing);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other test installs a global subscriber");
        });
        CAPTURED.set(Some(Vec::new()));
        Self
    }

    fn text(&self) -> String {
        CAPTURED.with_borrow(|captured| {
            String::from_utf8_lossy(captured.as_deref().unwrap_or_default()).into_owned()
        })
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURED.set(None);
    }
}

#[tokio::test]
async fn every_log_line_names_its_request_or_connection_and_none_holds_a_secret() {
    let logs = LogCapture::start();
    let app = TestApp::spawn(Backends::Embedded, "logs").await;

    let (gus, hal) = (app.register("gus").await, app.register("hal").await);
    let codes = [app.read_code(&gus.email), app.read_code(&hal.email)];
    let login = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({
            "query": LOGIN,
            "variables": { "username": "gus", "password": gus.password },
        }))
        .send()
        .await
        .unwrap();
    let login_id = login.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer: serde_json::Value = login.json().await.unwrap();
    assert!(answer["errors"].is_null(), "{answer}");
    let token = answer["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let room = app.befriend(&gus, &hal).await;
    let mut socket = app.connect(&gus).await;
    let subscription =
        format!("subscription($r: ID!) {{ messages(roomIdentity: $r) {{ {MESSAGE_FIELDS} }} }}");
    app.subscribe_ok(
        &mut socket,
        ("1", "messages"),
        &subscription,
        json!({ "r": room }),
        &Probe::message(&hal, &room),
    )
    .await;
    drop(socket);
    let mut closed = false;
    for _ in 0..100 {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
        if metrics
            .text()
            .await
            .unwrap()
            .contains("\nchatroom_websocket_connections 0\n")
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the socket never counted as closed");

    let text = logs.text();
    let secrets = [
        gus.password.as_str(),
        hal.password.as_str(),
        gus.token.as_str(),
        hal.token.as_str(),
        token.as_str(),
        codes[0].as_str(),
        codes[1].as_str(),
    ];
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} is in the logs:\n{text}");
    }
    assert!(
        text.lines()
            .any(|line| line.contains(&format!("id={login_id}"))),
        "no line names the login's request id {login_id}:\n{text}"
    );
    let connection_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("connection opened") || line.contains("connection closed"))
        .collect();
    assert_eq!(connection_lines.len(), 2, "{text}");
    for line in connection_lines {
        assert!(line.contains("websocket{connection="), "{line}");
    }
    for line in text.lines() {
        assert!(
            line.contains("request{id="),
            "a line without its request: {line}"
        );
    }
}
