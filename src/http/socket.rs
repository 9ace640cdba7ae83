//! One GraphQL WebSocket. async-graphql speaks both subprotocols; around it
//! we add authentication at `connection_init` (close code 4403 when it
//! fails), bounds on what one socket may do, a clean end at shutdown, and
//! the room and inbox subscriptions of graphql-transport-ws rendered once
//! for all their subscribers (`graphql::live`).

use std::{
    borrow::Cow,
    collections::HashSet,
    net::IpAddr,
    num::NonZeroU32,
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
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
use tokio::sync::mpsc;
use tokio_stream::StreamMap;

use crate::{
    app::App,
    auth::{Credentials, Tokens},
    error::{Error, Lang},
    graphql::{
        self, ChatSchema, ClientAddress, Localized,
        live::{self, Plan, Subscriber},
    },
};

/// graphql-transport-ws close code for a refused `connection_init`.
const CLOSE_FORBIDDEN: u16 = 4403;
/// A socket that breaks its bounds (RFC 6455 policy violation).
const CLOSE_POLICY: u16 = 1008;
/// The server is going away (RFC 6455).
const CLOSE_GOING_AWAY: u16 = 1001;
/// The client reads too slowly to keep up (RFC 6455 "try again later"):
/// clients reconnect and resume, as after any other drop.
const CLOSE_TOO_SLOW: u16 = 1013;
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

/// A `subscribe` frame's payload, for `graphql::live` to judge.
#[derive(Deserialize)]
struct Subscribe {
    payload: serde_json::Value,
}

/// What the socket's loop is asked to do by the frames it reads.
enum Command {
    /// A subscription `graphql::live` serves, under this id. Boxed: the
    /// channel sets aside room for a few commands on every socket.
    Start(String, Box<Plan>),
    /// The client completed the operation with this id.
    Stop(String),
}

/// What the socket's loop does next.
enum Step {
    Send(Message),
    Run(Command),
    ShutDown,
    End,
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
        let signed_in = Arc::new(OnceLock::<Credentials>::new());
        let (command, mut commands) = mpsc::unbounded_channel::<Command>();

        let on_init = {
            let (app, refused, client) = (app.clone(), refused.clone(), self.client);
            let signed_in = signed_in.clone();
            move |payload: serde_json::Value| async move {
                match credentials_of_payload(&app.tokens, &payload) {
                    Credentials::Invalid => {
                        refused.store(true, Ordering::Relaxed);
                        Err(async_graphql::Error::new(
                            "Forbidden: invalid or expired token",
                        ))
                    }
                    credentials => {
                        let _ = signed_in.set(credentials.clone());
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
        let shares = self.protocol == WebSocketProtocols::GraphQLWS;
        let gate = {
            let (operations, inject) = (operations.clone(), inject.clone());
            let signed_in = signed_in.clone();
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
                        // Before `connection_init` was accepted, async-graphql
                        // answers as the protocol says.
                        let plan = (shares && signed_in.get().is_some())
                            .then(|| serde_json::from_slice::<Subscribe>(&bytes).ok())
                            .flatten()
                            .and_then(|frame| Plan::of(&frame.payload));
                        if let Some(plan) = plan {
                            let _ = command.send(Command::Start(id.into_owned(), Box::new(plan)));
                            return None;
                        }
                    }
                    (Some("complete" | "stop"), Some(id)) => {
                        operations.with(|running| running.remove(id.as_ref()));
                        let _ = command.send(Command::Stop(id.into_owned()));
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

        // The subscriptions served by `graphql::live`, by id; each ends with
        // its `complete` frame.
        let mut shared: StreamMap<String, BoxStream<'static, Message>> = StreamMap::new();
        let slow_after = Duration::from_secs(app.config.limits.slow_client_secs.max(1));
        // One wait for the whole socket, not one registered per frame.
        let shutdown = app.shutdown.cancelled();
        tokio::pin!(shutdown);
        loop {
            let step = tokio::select! {
                biased;
                () = &mut shutdown => Step::ShutDown,
                Some(message) = injected.recv() => Step::Send(message),
                Some(command) = commands.recv() => Step::Run(command),
                Some((_, message)) = shared.next(), if !shared.is_empty() => Step::Send(message),
                next = output.next() => next.map_or(Step::End, Step::Send),
            };
            let first = match step {
                Step::Send(message) => message,
                Step::Run(Command::Start(id, plan)) => {
                    let subscriber = Subscriber {
                        app: app.clone(),
                        schema: self.schema.clone(),
                        credentials: signed_in.get().cloned().unwrap_or(Credentials::Anonymous),
                        lang: self.lang,
                    };
                    shared.insert(id.clone(), live_frames(id, subscriber.start(*plan)));
                    continue;
                }
                Step::Run(Command::Stop(id)) => {
                    shared.remove(&id);
                    continue;
                }
                Step::End => return,
                Step::ShutDown => {
                    let running: Vec<String> = operations.with(|running| running.drain().collect());
                    for id in running {
                        let complete = json!({ "id": id, "type": "complete" }).to_string();
                        if sink.send(Message::Text(complete.into())).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink
                        .send(close(CLOSE_GOING_AWAY, "server shutting down"))
                        .await;
                    return;
                }
            };
            // Write what is ready now, then flush once: one system call for
            // a burst of frames rather than one each.
            let mut batch = vec![first];
            while batch.len() < FLUSH_EVERY {
                let ready = async {
                    tokio::select! {
                        biased;
                        Some(message) = injected.recv() => Some(message),
                        Some((_, message)) = shared.next(), if !shared.is_empty() => Some(message),
                        Some(message) = output.next() => Some(message),
                        else => None,
                    }
                }
                .now_or_never()
                .flatten();
                match ready {
                    Some(message) => batch.push(message),
                    None => break,
                }
            }
            let mut closing = false;
            let written = tokio::time::timeout(slow_after, async {
                for message in batch {
                    if let Message::Text(text) = &message {
                        finished_operation(text, &operations);
                    }
                    closing = matches!(message, Message::Close(_));
                    sink.feed(message).await?;
                    if closing {
                        break;
                    }
                }
                sink.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) if !closing => {}
                Ok(_) => return,
                Err(_) => {
                    // Nothing more can be written in time: say why if the
                    // socket still takes it, then let go of the client.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        sink.send(close(CLOSE_TOO_SLOW, "client too slow")),
                    )
                    .await;
                    return;
                }
            }
        }
    }
}

/// The frames of a `graphql::live` subscription once it has `started`:
/// `next` for each payload, then `complete`.
fn live_frames(
    id: String,
    started: impl Future<Output = live::Payloads> + Send + 'static,
) -> BoxStream<'static, Message> {
    let id = live::FrameId::new(&id);
    let complete = Message::Text(id.complete().into());
    // Boxed: starting takes a large future, which would otherwise keep its
    // room in the stream for as long as the subscription lives.
    stream::once(Box::pin(started))
        .flatten()
        .map(move |payload| Message::Text(id.next(&payload).into()))
        .chain(stream::once(future::ready(complete)))
        .boxed()
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
