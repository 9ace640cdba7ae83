//! One GraphQL WebSocket, in either subprotocol: `graphql-transport-ws` or
//! the legacy `graphql-ws`.
//!
//! The protocol loop is our own rather than async-graphql's: a socket is one
//! task that reads a frame, acts on it, and writes what its operations
//! yield, with no channels or shared flags between parts of it. Idle
//! subscribers are most of what a chat server holds, and this keeps each
//! one small (docs/perf.md). Every concern is one branch of the loop:
//! authentication at `connection_init` (close code 4403 when it fails),
//! bounds on frames and operations, room and inbox subscriptions rendered
//! once for all their subscribers (`graphql::live`), clients too slow to
//! keep up, and a clean end at shutdown.

use std::{borrow::Cow, net::IpAddr, num::NonZeroU32, str::FromStr, sync::Arc, time::Duration};

use async_graphql::{Request, http::WebSocketProtocols};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket},
    http::{HeaderMap, header},
};
use futures_util::{
    FutureExt, SinkExt, StreamExt, future,
    stream::{self, BoxStream},
};
use governor::{DefaultDirectRateLimiter, Quota};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::StreamMap;

use crate::{
    app::App,
    auth::{Credentials, Tokens},
    error::{Error, Lang},
    graphql::{
        Schemas,
        live::{FrameId, Payloads, Plan, Subscriber},
    },
};

/// graphql-transport-ws close codes (its PROTOCOL.md).
const CLOSE_BAD_FRAME: u16 = 4400;
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_DUPLICATE_ID: u16 = 4409;
const CLOSE_TOO_MANY_INITS: u16 = 4429;
/// A socket that breaks its bounds (RFC 6455 policy violation).
const CLOSE_POLICY: u16 = 1008;
/// The server is going away (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;
/// The client reads too slowly to keep up (RFC 6455 "try again later"):
/// clients reconnect and resume, as after any other drop.
const CLOSE_TOO_SLOW: u16 = 1013;
/// How long a closing socket waits for the client's close frame.
const CLOSING_WAIT: Duration = Duration::from_secs(1);
/// Frames written to the socket before one flush, when that many are ready.
const FLUSH_EVERY: usize = 64;

/// The first subprotocol offered that we speak: `graphql-transport-ws` or the
/// legacy `graphql-ws`.
pub fn protocol_of(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|offered| WebSocketProtocols::from_str(offered.trim()).ok())
}

/// Everything a socket needs, taken from its upgrade request.
pub struct Connection {
    pub app: Arc<App>,
    pub schemas: Schemas,
    pub lang: Lang,
    pub protocol: WebSocketProtocols,
    pub client: IpAddr,
}

/// Credentials from a `connection_init` payload: `{"token": T}` or
/// `{"Authorization": "Bearer T"}`; neither is an anonymous connection.
fn credentials_of_payload(tokens: &Tokens, payload: &serde_json::Value) -> Credentials {
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

/// A frame from the client, in either protocol (`start` and `stop` are the
/// legacy names).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
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

/// What the socket answers a client frame with.
enum Reply {
    Nothing,
    Frame(Message),
    /// Close the socket with this code and reason.
    Refuse(u16, Cow<'static, str>),
    /// The client is done: end without a word.
    End,
}

/// One frame of an operation, and whether it is the operation's last.
type Outgoing = (Message, bool);

/// A socket between frames.
struct Session {
    connection: Connection,
    /// Who the client is, once its `connection_init` was accepted.
    credentials: Option<Credentials>,
    /// The operations running, by id; each stream ends with its `complete`.
    operations: StreamMap<String, BoxStream<'static, Outgoing>>,
    frames: DefaultDirectRateLimiter,
}

fn text(frame: String) -> Message {
    Message::Text(frame.into())
}

/// Sends a close frame, then reads until the client closes too, for at most
/// a second. Hanging up at once would leave the frames the client had
/// already sent unread, and the kernel would answer them with a reset that
/// can overtake the close frame.
async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSING_WAIT, async {
        if socket.send(close).await.is_ok() {
            while let Some(Ok(_)) = socket.recv().await {}
        }
    })
    .await;
}

impl Connection {
    pub async fn serve(self, mut socket: WebSocket) {
        let app = self.app.clone();
        let slow_after = Duration::from_secs(app.config.limits.slow_client_secs.max(1));
        let mut session = Session::new(self);
        // One wait for the whole socket, not one registered per frame.
        let shutdown = app.shutdown.cancelled();
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                biased;
                () = &mut shutdown => {
                    session.shut_down(&mut socket).await;
                    return;
                }
                incoming = socket.recv() => match incoming.map(|read| read.map(|m| session.read(m))) {
                    Some(Ok(Reply::Frame(frame))) => frame,
                    Some(Ok(Reply::Refuse(code, reason))) => {
                        session.refuse(&mut socket, code, &reason).await;
                        return;
                    }
                    Some(Ok(Reply::Nothing)) => continue,
                    Some(Ok(Reply::End) | Err(_)) | None => return,
                },
                Some(frame) = session.next_frame(), if !session.operations.is_empty() => frame,
            };
            // Write what is ready now, then flush once: one system call for
            // a burst of frames rather than one each.
            let mut batch = vec![first];
            while batch.len() < FLUSH_EVERY {
                match session.next_frame().now_or_never().flatten() {
                    Some(frame) => batch.push(frame),
                    None => break,
                }
            }
            let written = tokio::time::timeout(slow_after, async {
                for frame in batch {
                    socket.feed(frame).await?;
                }
                socket.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    // Nothing more can be written in time: say why if the
                    // socket still takes it, then let go of the client.
                    close_with(&mut socket, CLOSE_TOO_SLOW, "client too slow").await;
                    return;
                }
            }
        }
    }
}

impl Session {
    fn new(connection: Connection) -> Self {
        let limits = &connection.app.config.limits;
        let burst = NonZeroU32::new(limits.max_frames_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let frames = DefaultDirectRateLimiter::direct(
            Quota::per_second(burst)
                .allow_burst(burst.saturating_mul(NonZeroU32::MIN.saturating_add(1))),
        );
        Self {
            connection,
            credentials: None,
            operations: StreamMap::new(),
            frames,
        }
    }

    /// The next frame of any running operation; forgets an operation once
    /// its last frame is out, so its id may be used again.
    async fn next_frame(&mut self) -> Option<Message> {
        let (id, (frame, last)) = self.operations.next().await?;
        if last {
            self.operations.remove(&id);
        }
        Some(frame)
    }

    fn read(&mut self, message: Message) -> Reply {
        let bytes = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            // Control frames: tungstenite answers them.
            _ => return Reply::Nothing,
        };
        if self.frames.check().is_err() {
            return Reply::Refuse(CLOSE_POLICY, "too many frames".into());
        }
        let Ok(frame) = serde_json::from_slice::<ClientFrame>(bytes) else {
            return Reply::Refuse(CLOSE_BAD_FRAME, "malformed frame".into());
        };
        match frame {
            ClientFrame::ConnectionInit { payload } => self.init(&payload.unwrap_or_default()),
            ClientFrame::Subscribe { id, payload } => self.subscribe(id, payload),
            ClientFrame::Complete { id } => {
                self.operations.remove(&id);
                Reply::Nothing
            }
            ClientFrame::Ping {} => Reply::Frame(text(r#"{"type":"pong"}"#.to_owned())),
            ClientFrame::Pong {} => Reply::Nothing,
            ClientFrame::ConnectionTerminate {} => Reply::End,
        }
    }

    fn init(&mut self, payload: &serde_json::Value) -> Reply {
        if self.credentials.is_some() {
            return Reply::Refuse(
                CLOSE_TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        match credentials_of_payload(&self.connection.app.tokens, payload) {
            Credentials::Invalid => Reply::Refuse(
                CLOSE_FORBIDDEN,
                "Forbidden: invalid or expired token".into(),
            ),
            credentials => {
                self.credentials = Some(credentials);
                Reply::Frame(text(r#"{"type":"connection_ack"}"#.to_owned()))
            }
        }
    }

    fn subscribe(&mut self, id: String, payload: serde_json::Value) -> Reply {
        let Some(credentials) = &self.credentials else {
            return Reply::Refuse(CLOSE_UNAUTHORIZED, "Unauthorized".into());
        };
        if self.operations.contains_key(&id) {
            return Reply::Refuse(
                CLOSE_DUPLICATE_ID,
                format!("Subscriber for {id} already exists").into(),
            );
        }
        if self.operations.len() >= self.connection.app.config.limits.max_operations_per_socket {
            let error = Error::RateLimited { retry_after: 1 };
            return Reply::Frame(self.error_frame(&id, &error));
        }
        let connection = &self.connection;
        let subscriber = Subscriber {
            app: connection.app.clone(),
            schemas: connection.schemas.clone(),
            credentials: credentials.clone(),
            client: connection.client,
            lang: connection.lang,
        };
        let payloads = match Plan::of(&payload) {
            Some(plan) => subscriber.start(plan),
            None => match serde_json::from_value::<Request>(payload) {
                Ok(request) => subscriber.execute(request),
                Err(_) => return Reply::Refuse(CLOSE_BAD_FRAME, "malformed subscribe".into()),
            },
        };
        let frames = frames(FrameId::new(&id, connection.protocol), payloads);
        self.operations.insert(id, frames);
        Reply::Nothing
    }

    /// An `error` frame for operation `id`, in this socket's protocol.
    fn error_frame(&self, id: &str, error: &Error) -> Message {
        let error = json!({
            "message": error.message(self.connection.lang),
            "extensions": { "code": error.code(), "retryAfter": 1 },
        });
        let payload = match self.connection.protocol {
            WebSocketProtocols::GraphQLWS => json!([error]),
            WebSocketProtocols::SubscriptionsTransportWS => error,
        };
        text(json!({ "id": id, "type": "error", "payload": payload }).to_string())
    }

    /// Closes with `code`. The legacy protocol has no codes of its own for
    /// a client: it says why in a `connection_error` first.
    async fn refuse(&mut self, socket: &mut WebSocket, code: u16, reason: &str) {
        if self.connection.protocol == WebSocketProtocols::SubscriptionsTransportWS {
            let error = json!({ "type": "connection_error", "payload": { "message": reason } });
            let _ = socket.feed(text(error.to_string())).await;
        }
        close_with(socket, code, reason).await;
    }

    /// Completes every running operation and says goodbye.
    async fn shut_down(&mut self, socket: &mut WebSocket) {
        let completes: Vec<String> = (self.operations.keys())
            .map(|id| FrameId::new(id, self.connection.protocol).complete())
            .collect();
        for complete in completes {
            if socket.feed(text(complete)).await.is_err() {
                return;
            }
        }
        close_with(socket, CLOSE_GOING_AWAY, "server shutting down").await;
    }
}

/// The frames of one operation: one for each payload, then `complete`.
fn frames(id: FrameId, payloads: Payloads) -> BoxStream<'static, Outgoing> {
    let complete = text(id.complete());
    payloads
        .map(move |payload| (text(id.next(&payload)), false))
        .chain(stream::once(future::ready((complete, true))))
        .boxed()
}
