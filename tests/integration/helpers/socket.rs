//! A client WebSocket speaking either GraphQL subprotocol, and
//! subscriptions made live before a test relies on them.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue, protocol::CloseFrame},
};

use super::{Account, SEND, TestApp, room_subscription};

/// A client WebSocket speaking either GraphQL subprotocol.
pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    /// How long [`Socket::next`] waits for a frame before the test fails.
    patience: Duration,
}

/// What the server sent next: a JSON frame, or the close.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<u16>),
}

/// What shows a subscription is live: graphql-transport-ws does not
/// acknowledge a subscribe, so `sender` runs `mutation` (which takes
/// `$content`, besides `variables`) with probe contents until one arrives.
pub struct Probe<'a> {
    pub sender: &'a Account,
    pub mutation: &'a str,
    pub variables: Value,
}

impl<'a> Probe<'a> {
    /// `sender` sending messages to `room`.
    pub fn message(sender: &'a Account, room: &str) -> Self {
        Self {
            sender,
            mutation: SEND,
            variables: json!({ "room": room }),
        }
    }

    /// `sender` writing to the lobby.
    pub fn lobby(sender: &'a Account) -> Self {
        Self {
            sender,
            mutation: "mutation($content: String!) { sendLobbyMessage(content: $content) { content } }",
            variables: json!({}),
        }
    }
}

impl TestApp {
    /// A signed-in graphql-transport-ws socket.
    pub async fn connect(&self, account: &Account) -> Socket {
        let mut socket = self.socket("graphql-transport-ws").await;
        socket.init_ok(json!({ "token": account.token })).await;
        socket
    }

    /// Waits until subscription `id` on `socket` is live: this app runs
    /// `probe` until one arrives under `field`. Earlier probes that arrive
    /// late are read too, so nothing of the probing is left for the test
    /// to see.
    pub async fn until_live(&self, socket: &mut Socket, id: &str, field: &str, probe: &Probe<'_>) {
        for attempt in 0..50 {
            let content = format!("probe:{attempt}");
            let mut variables = probe.variables.clone();
            variables["content"] = json!(content);
            let sent = self.as_user(probe.sender, probe.mutation, variables).await;
            assert!(sent["errors"].is_null(), "probe failed: {sent}");
            while let Some(payload) = socket.next_of_within(id, Duration::from_millis(300)).await {
                if payload["data"][field]["content"] == json!(content) {
                    return;
                }
            }
        }
        panic!("subscription {id} never became live");
    }

    /// Starts subscription `query` (on the root field `field`) as operation
    /// `id` on `socket`, and returns once it is live (see [`Self::until_live`]).
    pub async fn subscribe_ok(
        &self,
        socket: &mut Socket,
        (id, field): (&str, &str),
        query: &str,
        variables: Value,
        probe: &Probe<'_>,
    ) {
        socket.subscribe(id, query, variables).await;
        self.until_live(socket, id, field, probe).await;
    }

    /// A socket of `listener` subscribed (as operation "room") to the
    /// messages of `room`, and live: `prober` (this instance or another)
    /// sends probes as `sender` until one arrives.
    pub async fn watch_room(
        &self,
        listener: &Account,
        room: &str,
        prober: &TestApp,
        sender: &Account,
    ) -> Socket {
        self.watch_room_with(listener, room, &room_subscription(false), prober, sender)
            .await
    }

    /// [`Self::watch_room`] with a `messages(roomIdentity: $r)` document of
    /// the caller's.
    pub async fn watch_room_with(
        &self,
        listener: &Account,
        room: &str,
        query: &str,
        prober: &TestApp,
        sender: &Account,
    ) -> Socket {
        let mut socket = self.connect(listener).await;
        prober
            .subscribe_ok(
                &mut socket,
                ("room", "messages"),
                query,
                json!({ "r": room }),
                &Probe::message(sender, room),
            )
            .await;
        socket
    }

    /// Tries a WebSocket upgrade with extra headers; the HTTP status of a refusal.
    pub async fn try_socket(
        &self,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, u16> {
        Socket::try_open(self.address, protocol, headers).await
    }

    /// Opens a GraphQL WebSocket offering `protocol`.
    pub async fn socket(&self, protocol: &str) -> Socket {
        self.try_socket(protocol, &[])
            .await
            .unwrap_or_else(|status| panic!("the upgrade was refused with {status}"))
    }
}

impl Socket {
    /// A socket of `account` to a server at `address` (one the test runs
    /// as a process of its own), initialized.
    pub async fn connect_to(address: std::net::SocketAddr, account: &Account) -> Socket {
        let mut socket = Self::try_open(address, "graphql-transport-ws", &[])
            .await
            .unwrap_or_else(|status| panic!("the upgrade was refused with {status}"));
        socket.init_ok(json!({ "token": account.token })).await;
        socket
    }

    /// Tries a WebSocket upgrade at `address`; the HTTP status of a refusal.
    async fn try_open(
        address: std::net::SocketAddr,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, u16> {
        let mut request = format!("ws://{address}/graphql")
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).expect("a header value"),
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, response)) => {
                let chosen = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok());
                assert_eq!(
                    chosen,
                    Some(protocol),
                    "the server speaks the protocol offered"
                );
                Ok(Socket {
                    stream,
                    patience: Duration::from_secs(10),
                })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("the upgrade failed: {other}"),
        }
    }

    /// Sends a text frame as it is, well-formed or not.
    pub async fn send_raw(&mut self, text: &str) -> bool {
        self.stream
            .send(Message::Text(text.to_owned().into()))
            .await
            .is_ok()
    }

    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("the frame is sent");
    }

    /// Waits up to `patience` for each frame from now on, instead of 10 s:
    /// for a test whose server recovers from a fault on the way.
    pub fn set_patience(&mut self, patience: Duration) {
        self.patience = patience;
    }

    /// The next frame, skipping pings and keep-alives; fails after the
    /// socket's patience (10 s unless set). The skipped frames do not
    /// extend it: the server pings more often than a test waits.
    pub async fn next(&mut self) -> Frame {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {:?}", self.patience));
            match message {
                None => return Frame::Closed(None),
                Some(Err(_)) => return Frame::Closed(None),
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("a JSON frame");
                    if matches!(value["type"].as_str(), Some("ka" | "ping" | "pong")) {
                        continue;
                    }
                    return Frame::Json(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Frame::Closed(frame.map(|f: CloseFrame| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next JSON frame; panics on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(value) => value,
            Frame::Closed(code) => panic!("the socket closed ({code:?}) instead of answering"),
        }
    }

    /// Starts operation `id` (graphql-transport-ws).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables }
        }))
        .await;
    }

    /// The next `next` payload of operation `id`, or `None` when it completes;
    /// frames of other operations are skipped.
    pub async fn next_of(&mut self, id: &str) -> Option<Value> {
        loop {
            let frame = self.next_json().await;
            if frame["id"] != id {
                continue;
            }
            match frame["type"].as_str() {
                Some("next") => return Some(frame["payload"].clone()),
                Some("complete") => return None,
                _ => panic!("unexpected frame for {id}: {frame}"),
            }
        }
    }

    /// Like [`Socket::next_of`], but `None` also when nothing comes within `wait`.
    pub async fn next_of_within(&mut self, id: &str, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.next_of(id))
            .await
            .ok()
            .flatten()
    }

    /// The next message data of subscription `id` under `field`; panics on an error or the end.
    pub async fn next_message(&mut self, id: &str, field: &str) -> Value {
        let payload = self
            .next_of(id)
            .await
            .unwrap_or_else(|| panic!("{id} completed while a message was expected"));
        assert!(payload["errors"].is_null(), "{id}: {payload}");
        payload["data"][field].clone()
    }

    /// Sends a graphql-transport-ws `ping` and returns the frame that answers it.
    pub async fn ping(&mut self) -> Value {
        self.send(json!({ "type": "ping" })).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
            .await
            .expect("a frame within 10 s");
        match answer {
            Some(Ok(Message::Text(text))) => serde_json::from_str(&text).expect("a JSON frame"),
            other => panic!("no answer to a ping: {other:?}"),
        }
    }

    /// Sends `connection_init` with `payload` and returns the server's answer.
    pub async fn init(&mut self, payload: Value) -> Frame {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        self.next().await
    }

    /// Sends `connection_init` with `payload`; fails unless it is acknowledged.
    pub async fn init_ok(&mut self, payload: Value) {
        match self.init(payload).await {
            Frame::Json(ack) if ack["type"] == "connection_ack" => {}
            other => panic!("no connection_ack: {other:?}"),
        }
    }
}
