//! One GraphQL WebSocket. async-graphql speaks both subprotocols; around it
//! we add authentication at `connection_init` (close code 4403 when it
//! fails), bounds on what one socket may do, and a clean end at shutdown.

use std::{
    borrow::Cow,
    collections::HashSet,
    net::IpAddr,
    num::NonZeroU32,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket},
    http::{HeaderMap, header},
};
use futures_util::{SinkExt, StreamExt, future};
use governor::{DefaultDirectRateLimiter, Quota};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::{
    app::App,
    auth::{Credentials, Tokens},
    error::{Error, Lang},
    graphql::{self, ChatSchema, ClientAddress, Localized},
};

/// graphql-transport-ws close code for a refused `connection_init`.
const CLOSE_FORBIDDEN: u16 = 4403;
/// A socket that breaks its bounds (RFC 6455 policy violation).
const CLOSE_POLICY: u16 = 1008;
/// The server is going away (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;

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
    pub schema: ChatSchema,
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

/// The two fields of a client frame the socket itself looks at.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// The operations running on one socket, to bound them and to complete them
/// at shutdown. A std mutex: held for one set operation, never across `.await`.
#[derive(Default)]
struct Operations(Mutex<HashSet<String>>);

impl Operations {
    fn with<T>(&self, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

impl Connection {
    /// An `error` frame for operation `id`, in this socket's protocol.
    fn error_frame(&self, id: &str, error: &Error) -> Message {
        let error = json!({
            "message": error.message(self.lang),
            "extensions": { "code": error.code(), "retryAfter": 1 },
        });
        let payload = match self.protocol {
            WebSocketProtocols::GraphQLWS => json!([error]),
            WebSocketProtocols::SubscriptionsTransportWS => error,
        };
        Message::Text(
            json!({ "id": id, "type": "error", "payload": payload })
                .to_string()
                .into(),
        )
    }

    pub async fn serve(self, socket: WebSocket) {
        let app = self.app.clone();
        let limits = &app.config.limits;
        let refused = Arc::new(AtomicBool::new(false));
        let operations = Arc::new(Operations::default());
        let (inject, mut injected) = mpsc::channel::<Message>(16);

        let on_init = {
            let (app, refused, client) = (app.clone(), refused.clone(), self.client);
            move |payload: serde_json::Value| async move {
                match credentials_of_payload(&app.tokens, &payload) {
                    Credentials::Invalid => {
                        refused.store(true, Ordering::Relaxed);
                        Err(async_graphql::Error::new(
                            "Forbidden: invalid or expired token",
                        ))
                    }
                    credentials => {
                        let mut data = Data::default();
                        data.insert(graphql::loader(app.clone(), &credentials));
                        data.insert(ClientAddress(client));
                        data.insert(credentials);
                        Ok(data)
                    }
                }
            }
        };

        let burst = NonZeroU32::new(limits.max_frames_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let frames = DefaultDirectRateLimiter::direct(
            Quota::per_second(burst)
                .allow_burst(burst.saturating_mul(NonZeroU32::MIN.saturating_add(1))),
        );
        let max_operations = limits.max_operations_per_socket;
        let (mut sink, stream) = socket.split();
        // Every frame from the client passes here before async-graphql sees it.
        let gate = {
            let (operations, inject) = (operations.clone(), inject.clone());
            let this = &self;
            move |bytes: axum::body::Bytes| -> Option<axum::body::Bytes> {
                if frames.check().is_err() {
                    let _ = inject.try_send(close(CLOSE_POLICY, "too many frames"));
                    return None;
                }
                let Ok(envelope) = serde_json::from_slice::<Envelope>(&bytes) else {
                    // Not ours to judge: async-graphql closes on a malformed frame.
                    return Some(bytes);
                };
                match (envelope.kind.as_deref(), envelope.id) {
                    (Some("subscribe" | "start"), Some(id)) => {
                        let admitted = operations.with(|running| {
                            running.len() < max_operations && running.insert(id.to_string())
                        });
                        if !admitted {
                            let error = Error::RateLimited { retry_after: 1 };
                            let _ = inject.try_send(this.error_frame(&id, &error));
                            return None;
                        }
                    }
                    (Some("complete" | "stop"), Some(id)) => {
                        operations.with(|running| running.remove(id.as_ref()));
                    }
                    _ => {}
                }
                Some(bytes)
            }
        };
        let input = stream
            .take_while(|message| future::ready(message.is_ok()))
            .filter_map(|message| {
                future::ready(match message {
                    Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                        Some(message.into_data())
                    }
                    _ => None,
                })
            })
            .filter_map(move |bytes| future::ready(gate(bytes)));
        let executor = Localized {
            schema: self.schema.clone(),
            lang: self.lang,
            metrics: app.metrics.clone(),
        };
        let mut output = GraphQLWebSocket::new(executor, input, self.protocol)
            .on_connection_init(on_init)
            .map(|message| match message {
                WsMessage::Text(text) => Message::Text(text.into()),
                WsMessage::Close(code, reason) => {
                    let code = if refused.load(Ordering::Relaxed) {
                        CLOSE_FORBIDDEN
                    } else {
                        code
                    };
                    close(code, &reason)
                }
            });

        loop {
            let message = tokio::select! {
                biased;
                () = app.shutdown.cancelled() => {
                    let running: Vec<String> = operations.with(|running| running.drain().collect());
                    for id in running {
                        let complete = json!({ "id": id, "type": "complete" }).to_string();
                        if sink.send(Message::Text(complete.into())).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink.send(close(CLOSE_GOING_AWAY, "server shutting down")).await;
                    return;
                }
                Some(message) = injected.recv() => message,
                next = output.next() => match next {
                    Some(message) => message,
                    None => return,
                },
            };
            if let Message::Text(text) = &message {
                finished_operation(text, &operations);
            }
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                return;
            }
        }
    }
}

/// Forgets an operation the server ended (`complete` or `error`). Only those
/// frames are parsed: the many `next` frames pass untouched.
fn finished_operation(text: &str, operations: &Operations) {
    if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
        return;
    }
    if let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str::<Envelope>(text) {
        operations.with(|running| running.remove(id.as_ref()));
    }
}
