//! A running app on chosen backends, and what its users do through the API.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chatroom::{Config, Server, store::Store};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{LOGIN, REDIS, REDIS_CLUSTER, REGISTER, SEND, ServerProcess, service, unique_name};

/// The JWT secret of every test app, so tests can mint tokens of their own.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

/// Which backends an app under test uses.
#[derive(Debug, Clone, Copy)]
pub enum Backends {
    /// The zero-setup default: SQLite and in-process kv.
    Embedded,
    /// The production pair: MongoDB (SecantusDB in tests) and Redis.
    MongoRedis,
    /// MongoDB and a Redis Cluster (three masters, three replicas).
    MongoRedisCluster,
}

impl Backends {
    /// A config for `test` on these backends.
    pub fn config(self, test: &str, dir: &TempDir) -> Config {
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
                writes_per_second: 100_000,
                write_burst: 100_000,
                searches_per_second: 100_000,
                search_burst: 100_000,
                address_writes_per_second: 100_000,
                address_write_burst: 100_000,
                registrations_per_address: 100_000,
                login_failures_per_address: 100_000,
                ..chatroom::config::RateLimits::default()
            },
            limits: chatroom::config::Limits {
                max_sockets_per_address: 100_000,
                ..chatroom::config::Limits::default()
            },
            ..Config::default()
        };
        let redis = match self {
            Backends::Embedded => return config,
            Backends::MongoRedis => REDIS,
            Backends::MongoRedisCluster => REDIS_CLUSTER,
        };
        config.mongodb_uri = Some(service("CHATROOM_TEST_MONGODB_URI"));
        config.mongodb_database = unique_name(test);
        config.redis_url = Some(service(redis));
        config.redis_prefix = format!("{}:", unique_name(test));
        config
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
    /// Starts the app on `backends`, changing the config with `adjust` first.
    pub async fn spawn_with(
        backends: Backends,
        test: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_on(backends, test, adjust, None).await
    }

    /// Starts the app on a store given by the test (one that counts its calls).
    pub async fn spawn_on(
        backends: Backends,
        test: &str,
        adjust: impl FnOnce(&mut Config),
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let mut config = backends.config(test, &dir);
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
        Self {
            address,
            config: started_with,
            outbox,
            http: reqwest::Client::new(),
            app,
            _dir: dir,
            server: handle,
            stop: Some(stop),
        }
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
    }

    /// Starts the app on `backends` with `redis`, a server of the test's
    /// own, for its Redis, and each store and Redis call bounded by
    /// `timeout_secs`.
    pub async fn spawn_on_redis(
        backends: Backends,
        test: &str,
        redis: &ServerProcess,
        timeout_secs: u64,
    ) -> Self {
        let url = format!("redis://127.0.0.1:{}/", redis.port());
        Self::spawn_with(backends, test, |c| {
            c.redis_url = Some(url);
            c.store_timeout_secs = timeout_secs;
        })
        .await
    }

    pub async fn spawn(backends: Backends, test: &str) -> Self {
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

    /// Logs in as `username` with `password`; the answer.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let credentials = json!({ "username": username, "password": password });
        self.anonymous(LOGIN, credentials).await
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
}
