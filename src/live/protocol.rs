//! The two GraphQL-over-WebSocket subprotocols as frames: what a client may
//! send, what the server answers, the ids that tie an operation's frames
//! together, and the close codes that end a socket.
//!
//! `graphql-transport-ws` is the graphql-ws library's protocol (its
//! PROTOCOL.md); `graphql-ws` is the legacy subscriptions-transport-ws that
//! GraphQL Playground and older Apollo clients speak. They differ in a few
//! names (`start`/`stop` for `subscribe`/`complete`, `data` for `next`, one
//! error or a list) and in how a client is refused: the legacy protocol has
//! no close codes of its own, so it says why in a `connection_error` first.

use std::borrow::Cow;

use async_graphql::ServerError;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Credentials, Tokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    GraphqlTransportWs,
    /// `graphql-ws`, the legacy one.
    GraphqlWs,
}

impl Protocol {
    /// The subprotocols a socket may ask for, by the names clients offer.
    pub const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    fn named(name: &str) -> Option<Self> {
        match name {
            "graphql-transport-ws" => Some(Protocol::GraphqlTransportWs),
            "graphql-ws" => Some(Protocol::GraphqlWs),
            _ => None,
        }
    }

    /// The first subprotocol the client offers that we speak, as the
    /// upgrade chooses it.
    pub fn offered(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)?
            .to_str()
            .ok()?
            .split(',')
            .find_map(|offered| Self::named(offered.trim()))
    }

    /// The frame that accepts a `connection_init`.
    pub fn ack() -> String {
        r#"{"type":"connection_ack"}"#.to_owned()
    }

    /// The frame that answers a `ping`.
    pub fn pong() -> String {
        r#"{"type":"pong"}"#.to_owned()
    }

    /// What goes out before the close frame of a refused client: the
    /// legacy protocol's `connection_error`, since it has no close codes.
    pub fn refusal(self, closing: &Closing) -> Option<String> {
        match self {
            Protocol::GraphqlTransportWs => None,
            Protocol::GraphqlWs => Some(
                json!({ "type": "connection_error", "payload": { "message": closing.reason } })
                    .to_string(),
            ),
        }
    }
}

/// A frame from the client, in either protocol.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    ConnectionInit {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: serde_json::Value,
    },
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    ConnectionTerminate {},
    Ping {},
    Pong {},
}

impl ClientFrame {
    pub fn parse(bytes: &[u8]) -> Result<Self, Closing> {
        serde_json::from_slice(bytes).map_err(|_| Closing::bad_frame("malformed frame"))
    }
}

/// Who a `connection_init` payload says the client is: `{"token": T}` or
/// `{"Authorization": "Bearer T"}` (either key in any case); neither is an
/// anonymous connection, and anything else under those keys is invalid.
pub fn credentials(tokens: &Tokens, payload: &serde_json::Value) -> Credentials {
    let field = |name: &str| {
        payload
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    match (field("token"), field("authorization")) {
        (Some(Some(token)), _) => tokens.credentials(token),
        (None, Some(Some(value))) => tokens.from_authorization(Some(value)),
        (None, None) => Credentials::Anonymous,
        _ => Credentials::Invalid,
    }
}

/// Why the server ends a socket: the close code, and the reason it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub code: u16,
    pub reason: Cow<'static, str>,
}

impl Closing {
    fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// A frame that is not one of the protocol's (4400).
    pub fn bad_frame(what: &'static str) -> Self {
        Self::new(4400, what)
    }

    /// An operation before `connection_init` was accepted (4401).
    pub fn unauthorized() -> Self {
        Self::new(4401, "Unauthorized")
    }

    /// A `connection_init` whose token is not valid (4403).
    pub fn forbidden() -> Self {
        Self::new(4403, "Forbidden: invalid or expired token")
    }

    /// The token the socket was opened with expired, or its user changed
    /// their password since (4403): the client signs in again.
    pub fn token_ended() -> Self {
        Self::new(4403, "Forbidden: the token expired or was revoked")
    }

    /// No `connection_init` in the time allowed (4408, as
    /// graphql-transport-ws says).
    pub fn init_timeout() -> Self {
        Self::new(4408, "Connection initialisation timeout")
    }

    /// Nothing heard from the client, not even a pong, for too long: the
    /// socket is taken to be half-open.
    pub fn idle() -> Self {
        Self::new(1001, "idle: no frame or pong in time")
    }

    /// A `subscribe` with the id of an operation still running (4409).
    pub fn duplicate_id(id: &str) -> Self {
        Self::new(4409, format!("Subscriber for {id} already exists"))
    }

    /// A second `connection_init` (4429).
    pub fn too_many_inits() -> Self {
        Self::new(4429, "Too many initialisation requests")
    }

    /// More frames a second than a socket may send (RFC 6455's policy
    /// violation, 1008).
    pub fn too_many_frames() -> Self {
        Self::new(1008, "too many frames")
    }

    /// The server is going away (1001).
    pub fn going_away() -> Self {
        Self::new(1001, "server shutting down")
    }

    /// The client reads too slowly to keep up (RFC 6455's "try again
    /// later", 1013): it reconnects and resumes, as after any other drop.
    pub fn too_slow() -> Self {
        Self::new(1013, "client too slow")
    }
}

/// An operation's id as its frames carry it, in the socket's protocol.
pub struct FrameId {
    /// The start of the operation's result frames, up to the payload
    /// (`{"type":"next","id":"1","payload":`), made once: each frame is
    /// then this, a shared render and a brace, with no formatting. The
    /// rarer frames read the quoted id back from it.
    next: String,
    protocol: Protocol,
}

/// What stands before the quoted id in a result frame, in either protocol
/// (`next` and `data` are as long).
const BEFORE_ID: usize = r#"{"type":"next","id":"#.len();
const BEFORE_PAYLOAD: &str = r#","payload":"#;

impl FrameId {
    pub fn new(id: &str, protocol: Protocol) -> Self {
        let quoted = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".to_owned());
        let kind = match protocol {
            Protocol::GraphqlTransportWs => "next",
            Protocol::GraphqlWs => "data",
        };
        Self {
            next: format!(r#"{{"type":"{kind}","id":{quoted}{BEFORE_PAYLOAD}"#),
            protocol,
        }
    }

    /// The id, JSON-quoted.
    fn quoted(&self) -> &str {
        &self.next[BEFORE_ID..self.next.len() - BEFORE_PAYLOAD.len()]
    }

    /// The frame carrying a result, `payload` being a serialized GraphQL
    /// response: all a subscriber adds to a shared render.
    pub fn next(&self, payload: &str) -> String {
        let mut frame = String::with_capacity(self.next.len() + payload.len() + 1);
        frame.push_str(&self.next);
        frame.push_str(payload);
        frame.push('}');
        frame
    }

    /// The frame that ends the operation.
    pub fn complete(&self) -> String {
        format!(r#"{{"type":"complete","id":{}}}"#, self.quoted())
    }

    /// The frame of an operation refused before it ran: its errors (the
    /// legacy protocol sends the first alone).
    pub fn error(&self, errors: &[ServerError]) -> String {
        let payload = match self.protocol {
            Protocol::GraphqlTransportWs => json!(errors),
            Protocol::GraphqlWs => json!(errors.first()),
        };
        format!(
            r#"{{"type":"error","id":{},"payload":{payload}}}"#,
            self.quoted()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_subprotocol_offered_that_we_speak_is_chosen() {
        let offering = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                value.parse().expect("a header value"),
            );
            Protocol::offered(&headers)
        };
        assert_eq!(
            offering("graphql-ws, graphql-transport-ws"),
            Some(Protocol::GraphqlWs)
        );
        assert_eq!(
            offering("mqtt,graphql-transport-ws"),
            Some(Protocol::GraphqlTransportWs)
        );
        assert_eq!(offering("mqtt"), None);
        assert_eq!(Protocol::offered(&HeaderMap::new()), None);
    }

    #[test]
    fn an_operations_frames_name_it_in_its_protocols_words() {
        let id = FrameId::new("a\"b", Protocol::GraphqlWs);
        assert_eq!(
            id.next(r#"{"data":{}}"#),
            r#"{"type":"data","id":"a\"b","payload":{"data":{}}}"#
        );
        assert_eq!(id.complete(), r#"{"type":"complete","id":"a\"b"}"#);
        let id = FrameId::new("1", Protocol::GraphqlTransportWs);
        assert_eq!(id.next("{}"), r#"{"type":"next","id":"1","payload":{}}"#);
    }
}
