//! Starting the real app and talking to it as clients do.
//!
//! Every test gets its own data dir, MongoDB database name and Redis key
//! prefix, so tests run in parallel without cleaning up after each other.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chatroom::{Config, Server, kv::Kv, store::Store};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue, protocol::CloseFrame},
};
use uuid::Uuid;

/// The JWT secret of every test app, so tests can mint tokens of their own.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

/// A service a test needs, from the variable `scripts/test` exports.
pub fn service(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => missing(
            &format!("{variable} is not set (scripts/test sets it)"),
            test,
        ),
    }
}

/// A test cannot run here: under CI that is a failure; on a developer's
/// machine the test says SKIPPED, loudly, and returns early.
fn missing<T>(what: &str, test: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test}: {what}, and CI=true: run the tests with scripts/test");
    }
    eprintln!("SKIPPED {test}: {what}");
    None
}

/// The web client's build, which the server serves from `playground/dist`
/// in debug builds; `None` when it is not built (outside CI).
pub fn built_web_client(test: &str) -> Option<std::path::PathBuf> {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playground/dist");
    if dist.join("index.html").is_file() {
        Some(dist)
    } else {
        missing("the web client is not built (scripts/test builds it)", test)
    }
}

/// A name no other test uses: database names and key prefixes.
pub fn unique_name(test: &str) -> String {
    let short = &Uuid::new_v4().simple().to_string()[..12];
    let test: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    format!("t_{test}_{short}")
}

/// Which backends an app under test uses.
#[derive(Debug, Clone, Copy)]
pub enum Backends {
    /// The zero-setup default: SQLite and in-process kv.
    Embedded,
    /// The production pair: MongoDB (SecantusDB in tests) and Redis.
    MongoRedis,
}

impl Backends {
    /// A config for `test` on these backends, or `None` when a service is missing.
    pub fn config(self, test: &str, dir: &TempDir) -> Option<Config> {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("a loopback address"),
            data_dir: dir.path().to_owned(),
            jwt_secret: Some(TEST_JWT_SECRET.into()),
            // Tests send as fast as they can from one address; the tests of
            // the limits themselves set them low again.
            rates: chatroom::config::RateLimits {
                messages_per_second: 100_000,
                message_burst: 100_000,
                connections_per_second: 100_000,
                connection_burst: 100_000,
                codes_per_address: 100_000,
                login_failures_per_address: 100_000,
                ..chatroom::config::RateLimits::default()
            },
            ..Config::default()
        };
        if let Backends::MongoRedis = self {
            config.mongodb_uri = Some(service("CHATROOM_TEST_MONGODB_URI", test)?);
            config.mongodb_database = unique_name(test);
            config.redis_url = Some(service("CHATROOM_TEST_REDIS_URL", test)?);
            config.redis_prefix = format!("{}:", unique_name(test));
        }
        Some(config)
    }
}

/// A running app and an HTTP client for it.
pub struct TestApp {
    pub address: std::net::SocketAddr,
    /// What the app was started with, for starting a second instance like it.
    pub config: Config,
    /// The app's services, for looking behind the API (what the store holds).
    pub app: Arc<chatroom::app::App>,
    pub outbox: PathBuf,
    pub http: reqwest::Client,
    _dir: TempDir,
    server: tokio::task::JoinHandle<()>,
    /// Sends the shutdown signal (SIGTERM, in the real binary).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A registered user: what `register` returned.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub identity: String,
}

impl TestApp {
    /// Starts the app on `backends`, changing the config with `adjust` first;
    /// `None` when a needed service is missing (outside CI).
    pub async fn spawn_with(
        backends: Backends,
        test: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        Self::spawn_on(backends, test, adjust, None).await
    }

    /// Starts the app on a store given by the test (one that counts its calls).
    pub async fn spawn_on(
        backends: Backends,
        test: &str,
        adjust: impl FnOnce(&mut Config),
        store: Option<Arc<dyn Store>>,
    ) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let mut config = backends.config(test, &dir)?;
        adjust(&mut config);
        let outbox = config.outbox_dir();
        let started_with = config.clone();
        let server = match store {
            Some(store) => Server::build_with_store(config, store).await,
            None => Server::build(config).await,
        }
        .expect("the app starts");
        let address = server.local_addr().expect("a bound address");
        let app = server.app().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let signal = async move {
                // A dropped sender (the test ended) is no signal: keep serving.
                if stopped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            server.run(signal).await.expect("the app serves");
        });
        Some(Self {
            address,
            config: started_with,
            outbox,
            http: reqwest::Client::new(),
            app,
            _dir: dir,
            server: handle,
            stop: Some(stop),
        })
    }

    /// Another instance sharing this one's store, Redis and JWT secret (but
    /// not its process, port or data dir): a second server behind the same
    /// load balancer.
    pub async fn sibling(&self) -> Self {
        let config = self.config.clone();
        Self::spawn_with(Backends::Embedded, "sibling", move |c| {
            *c = Config {
                data_dir: c.data_dir.clone(),
                mail_outbox: Some(config.outbox_dir()),
                ..config
            }
        })
        .await
        .expect("no service is needed beyond the first instance's")
    }

    pub async fn spawn(backends: Backends, test: &str) -> Option<Self> {
        Self::spawn_with(backends, test, |_| {}).await
    }

    /// One series of the app's `/metrics`, by its name and labels as
    /// printed (`chatroom_websocket_connections`).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("the app answers")
            .text()
            .await
            .expect("a text answer");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs a GraphQL request with optional token and extra headers; the JSON answer.
    pub async fn request(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the app answers");
        response.json().await.expect("a JSON answer")
    }

    /// A request without a token.
    pub async fn anonymous(&self, query: &str, variables: Value) -> Value {
        self.request(None, &[], query, variables).await
    }

    /// A request as `account`.
    pub async fn as_user(&self, account: &Account, query: &str, variables: Value) -> Value {
        self.request(Some(&account.token), &[], query, variables)
            .await
    }

    pub async fn send_email_code(&self, email: &str) -> Value {
        self.anonymous(
            "mutation($email: String!) { sendEmailCode(email: $email) { expiresIn resendAfter } }",
            json!({ "email": email }),
        )
        .await
    }

    /// The code in the newest mail to `email` in the outbox.
    pub fn read_code(&self, email: &str) -> String {
        let mut newest: Option<(std::time::SystemTime, String)> = None;
        for entry in std::fs::read_dir(&self.outbox).expect("the outbox exists") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "eml") {
                continue;
            }
            let raw = std::fs::read(&path).expect("a readable mail");
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("a well-formed mail");
            let to_email = message
                .to()
                .and_then(|to| to.first())
                .and_then(|address| address.address())
                .is_some_and(|address| address.eq_ignore_ascii_case(email));
            if !to_email {
                continue;
            }
            let modified = entry_time(&path);
            let body = message.body_text(0).expect("a text body").into_owned();
            if newest.as_ref().is_none_or(|(time, _)| modified >= *time) {
                newest = Some((modified, body));
            }
        }
        let (_, body) = newest.unwrap_or_else(|| panic!("no mail to {email} in the outbox"));
        extract_code(&body).unwrap_or_else(|| panic!("no 6-digit code in: {body}"))
    }

    /// Registers `username` through sendEmailCode, the outbox and register.
    pub async fn register(&self, username: &str) -> Account {
        let email = format!("{}@example.com", username.to_lowercase());
        let password = format!("pw-{username}-secret");
        let sent = self.send_email_code(&email).await;
        assert!(sent["errors"].is_null(), "sendEmailCode failed: {sent}");
        let code = self.read_code(&email);
        let answer = self
            .anonymous(
                REGISTER,
                json!({ "input": {
                    "username": username, "password": password, "email": email, "code": code
                }}),
            )
            .await;
        assert!(answer["errors"].is_null(), "register failed: {answer}");
        Account {
            username: username.into(),
            email,
            password,
            token: answer["data"]["register"]["token"]
                .as_str()
                .expect("a token")
                .into(),
            identity: answer["data"]["register"]["user"]["identity"]
                .as_str()
                .expect("an identity")
                .into(),
        }
    }

    /// Makes `a` and `b` friends; their PRIVATE room's identity.
    pub async fn befriend(&self, a: &Account, b: &Account) -> String {
        let answer = self
            .as_user(
                a,
                "mutation($u: String!) { addFriend(username: $u) { identity } }",
                json!({ "u": b.username }),
            )
            .await;
        answer["data"]["addFriend"]["identity"]
            .as_str()
            .unwrap_or_else(|| panic!("addFriend failed: {answer}"))
            .to_owned()
    }

    /// A GROUP room of `creator` and `members`; its identity.
    pub async fn group(&self, creator: &Account, name: &str, members: &[&Account]) -> String {
        let usernames: Vec<&str> = members.iter().map(|m| m.username.as_str()).collect();
        let answer = self
            .as_user(
                creator,
                "mutation($input: CreateGroupInput!) { createGroup(input: $input) { identity } }",
                json!({ "input": { "name": name, "members": usernames } }),
            )
            .await;
        answer["data"]["createGroup"]["identity"]
            .as_str()
            .unwrap_or_else(|| panic!("createGroup failed: {answer}"))
            .to_owned()
    }

    /// Sends a message as `sender`; the answer.
    pub async fn send(&self, sender: &Account, room: &str, content: &str) -> Value {
        self.as_user(sender, SEND, json!({ "room": room, "content": content }))
            .await
    }

    /// A signed-in graphql-transport-ws socket.
    pub async fn connect(&self, account: &Account) -> Socket {
        let mut socket = self.socket("graphql-transport-ws").await;
        match socket.init(json!({ "token": account.token })).await {
            Frame::Json(ack) if ack["type"] == "connection_ack" => socket,
            other => panic!("no connection_ack: {other:?}"),
        }
    }

    /// Waits until subscription `id` on `socket` is live. graphql-transport-ws
    /// does not acknowledge a subscribe, so `account` runs `mutation` (which
    /// takes `$content`) with probe contents until one comes back under
    /// `field`; earlier probes that arrive late are read too, so nothing of
    /// the probing is left for the test to see.
    pub async fn until_live(
        &self,
        socket: &mut Socket,
        id: &str,
        field: &str,
        account: &Account,
        mutation: &str,
        variables: Value,
    ) {
        for attempt in 0..50 {
            let probe = format!("probe:{attempt}");
            let mut probe_variables = variables.clone();
            probe_variables["content"] = json!(probe);
            let sent = self.as_user(account, mutation, probe_variables).await;
            assert!(sent["errors"].is_null(), "probe failed: {sent}");
            while let Some(payload) = socket.next_of_within(id, Duration::from_millis(300)).await {
                if payload["data"][field]["content"] == json!(probe) {
                    return;
                }
            }
        }
        panic!("subscription {id} never became live");
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
        let query = format!(
            "subscription($r: ID!) {{ messages(roomIdentity: $r) {{ {MESSAGE_FIELDS} }} }}"
        );
        self.watch_room_with(listener, room, &query, prober, sender)
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
        socket.subscribe("room", query, json!({ "r": room })).await;
        prober
            .until_live(
                &mut socket,
                "room",
                "messages",
                sender,
                SEND,
                json!({ "room": room }),
            )
            .await;
        socket
    }

    /// Signals shutdown, as SIGTERM would, and waits for the server to
    /// return; how long that took.
    pub async fn shut_down(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            stop.send(()).expect("the server is running");
        }
        (&mut self.server)
            .await
            .expect("the server task ends cleanly");
        started.elapsed()
    }

    /// Tries a WebSocket upgrade with extra headers; the HTTP status of a refusal.
    pub async fn try_socket(
        &self,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, u16> {
        let mut request = format!("ws://{}/graphql", self.address)
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
                Ok(Socket { stream })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("the upgrade failed: {other}"),
        }
    }

    /// Opens a GraphQL WebSocket offering `protocol`.
    pub async fn socket(&self, protocol: &str) -> Socket {
        self.try_socket(protocol, &[])
            .await
            .unwrap_or_else(|status| panic!("the upgrade was refused with {status}"))
    }
}

fn entry_time(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("a modification time")
}

/// The first run of exactly six digits in a text.
pub fn extract_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|start| {
        let run = &bytes[start..];
        let is_start = start == 0 || !bytes[start - 1].is_ascii_digit();
        let six = run.len() >= 6 && run[..6].iter().all(u8::is_ascii_digit);
        let ends = run.get(6).is_none_or(|b| !b.is_ascii_digit());
        (is_start && six && ends).then(|| text[start..start + 6].to_owned())
    })
}

pub const REGISTER: &str = "mutation($input: RegisterInput!) {
    register(input: $input) { token expiresAt user { identity username nickname email sex avatar } }
}";

pub const SEND: &str = "mutation($room: ID!, $content: String!, $clientId: String) {
    sendMessage(roomIdentity: $room, content: $content, clientId: $clientId) {
        identity roomIdentity content clientId cursor createdAt sender { username }
    }
}";

/// The fields a subscription test reads of each message.
pub const MESSAGE_FIELDS: &str = "identity roomIdentity content cursor sender { username }";

pub const LOGIN: &str = "mutation($username: String!, $password: String!) {
    login(username: $username, password: $password) { token expiresAt user { identity username email } }
}";

/// The `extensions.code` of the first error of an answer.
pub fn error_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {answer}"))
}

/// The `extensions.field` of the first error of an answer.
pub fn error_field(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a field, got {answer}"))
}

/// A client WebSocket speaking either GraphQL subprotocol.
pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What the server sent next: a JSON frame, or the close.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<u16>),
}

impl Socket {
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

    /// The next frame, skipping pings and keep-alives; fails after 10 s.
    pub async fn next(&mut self) -> Frame {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a frame within 10 s");
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
}

/// A SQLite store in a fresh temporary dir, and the dir that must outlive it.
pub async fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store =
        chatroom::store::SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(5))
            .await
            .expect("SQLite opens");
    (Arc::new(store), dir)
}

/// A MongoDB store on a database of its own; `None` when there is no MongoDB (outside CI).
pub async fn mongo_store(test: &str) -> Option<Arc<dyn Store>> {
    let uri = service("CHATROOM_TEST_MONGODB_URI", test)?;
    let store =
        chatroom::store::MongoStore::connect(&uri, &unique_name(test), Duration::from_secs(5))
            .await
            .expect("MongoDB connects");
    Some(Arc::new(store))
}

/// A Redis kv with a key prefix of its own; `None` when there is no Redis (outside CI).
pub async fn redis_kv(test: &str) -> Option<Arc<dyn Kv>> {
    let url = service("CHATROOM_TEST_REDIS_URL", test)?;
    let kv = chatroom::kv::RedisKv::connect(
        &url,
        &format!("{}:", unique_name(test)),
        Duration::from_secs(5),
    )
    .await
    .expect("Redis connects");
    Some(Arc::new(kv))
}

/// A server process of the test's own (redis-server, or SecantusDB standing
/// in for MongoDB), to stop and start again on the same port on purpose.
pub struct ServerProcess {
    command: std::process::Command,
    port: u16,
    child: Option<std::process::Child>,
    _dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl ServerProcess {
    /// redis-server on a free port; `None` when it is not installed (outside CI).
    pub fn redis(test: &str) -> Option<Self> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !installed {
            return missing(
                "redis-server is not installed (scripts/test installs it)",
                test,
            );
        }
        let (port, dir) = (free_port(), tempfile::tempdir().expect("a temporary dir"));
        let mut command = std::process::Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        Some(Self::started(command, port, dir))
    }

    /// SecantusDB on a free port, keeping its data on disk so a restart finds
    /// it again; `None` without `CHATROOM_TEST_SECANTUSD` (outside CI).
    pub fn secantus(test: &str) -> Option<Self> {
        let program = service("CHATROOM_TEST_SECANTUSD", test)?;
        let (port, dir) = (free_port(), tempfile::tempdir().expect("a temporary dir"));
        let config = dir.path().join("secantusd.toml");
        std::fs::write(&config, "").expect("an empty config");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("a temporary dir for SecantusDB");
        let mut command = std::process::Command::new(program);
        command
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.path().join("data"))
            .arg("--sync-on-commit")
            .env("TMPDIR", tmp);
        Some(Self::started(command, port, dir))
    }

    fn started(mut command: std::process::Command, port: u16, dir: TempDir) -> Self {
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut process = Self {
            command,
            port,
            child: None,
            _dir: dir,
        };
        process.start();
        process
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = self.command.spawn().expect("the server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as an operator would (SIGTERM), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .status()
                .is_ok_and(|status| status.success());
            if !terminated {
                child.kill().ok();
            }
            child.wait().ok();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
