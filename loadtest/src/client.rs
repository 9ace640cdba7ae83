//! GraphQL over HTTP as the load test needs it: one call, its answer or a
//! failure with a code the report can count.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

pub const SEND_MESSAGE: &str = "mutation($room: ID!, $content: String!) { \
    sendMessage(roomIdentity: $room, content: $content) { identity } }";

pub const EDIT_MESSAGE: &str = "mutation($m: ID!, $content: String!) { \
    editMessage(messageIdentity: $m, content: $content) { identity } }";

pub const ADD_REACTION: &str =
    "mutation($m: ID!) { addReaction(messageIdentity: $m, emoji: \"👍\") { identity } }";

pub const REMOVE_REACTION: &str =
    "mutation($m: ID!) { removeReaction(messageIdentity: $m, emoji: \"👍\") { identity } }";

/// One keep-alive HTTP connection's worth of client: each sender has its
/// own, so senders do not queue behind each other's requests.
#[derive(Clone)]
pub struct GraphQl {
    http: reqwest::Client,
    url: Url,
}

/// Why a call did not return data.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The API answered with an error and its `extensions.code`.
    Api {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// An answer that is not a GraphQL response (a proxy's error page).
    Http {
        status: u16,
        body: String,
    },
    Timeout,
    /// No answer at all: refused, reset, TLS.
    Transport(String),
}

impl Failure {
    /// The name the report counts this failure under.
    pub fn code(&self) -> String {
        match self {
            Failure::Api { code, .. } => code.clone(),
            Failure::Http { status, .. } => format!("HTTP_{status}"),
            Failure::Timeout => "TIMEOUT".into(),
            Failure::Transport(_) => "TRANSPORT".into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api { code, message, .. } => write!(f, "{code}: {message}"),
            Failure::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            Failure::Timeout => write!(f, "no answer within the request timeout"),
            Failure::Transport(error) => write!(f, "transport: {error}"),
        }
    }
}

impl GraphQl {
    pub fn new(url: Url, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, url })
    }

    /// Runs one operation; the `data` of a successful answer.
    pub async fn call(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<Value, Failure> {
        let mut request = self
            .http
            .post(self.url.clone())
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
            return Err(Failure::Http {
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        };
        if let Some(error) = answer["errors"].as_array().and_then(|e| e.first()) {
            return Err(Failure::Api {
                code: error["extensions"]["code"]
                    .as_str()
                    .unwrap_or("NO_CODE")
                    .to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
                retry_after: error["extensions"]["retryAfter"]
                    .as_f64()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            });
        }
        match answer.get("data") {
            Some(data) if !data.is_null() => Ok(data.clone()),
            _ => Err(Failure::Http {
                status,
                body: answer.to_string(),
            }),
        }
    }

    /// Like [`GraphQl::call`], waiting out `RATE_LIMITED` answers as they
    /// ask until `deadline`: setup registers users and creates rooms from one
    /// address, which a deployment's default limits slow down.
    pub async fn call_patiently(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        deadline: Instant,
    ) -> Result<Value, Failure> {
        loop {
            match self.call(token, query, variables.clone()).await {
                Err(Failure::Api {
                    code, retry_after, ..
                }) if code == "RATE_LIMITED"
                    && Instant::now() + retry_after.unwrap_or(Duration::from_secs(1))
                        < deadline =>
                {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
                }
                answer => return answer,
            }
        }
    }
}

fn transport(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Transport(error.to_string())
    }
}
