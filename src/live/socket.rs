//! One GraphQL WebSocket, from its upgrade to its close.
//!
//! The protocol loop is our own rather than async-graphql's: a socket is one
//! task that reads a frame, acts on it, and writes what its operations
//! yield, with no channels or shared flags between parts of it. Idle
//! subscribers are most of what a chat server holds, and this keeps each
//! one small (docs/perf.md). Every concern is one branch of the loop:
//! authentication at `connection_init` (within a time), the token's end
//! (expiry or a password change), bounds on frames and operations, pings
//! and the silence that reaps a half-open socket, clients too slow to keep
//! up, and a clean end at shutdown.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use async_graphql::Request;
use axum::{
    extract::{
        WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures_util::{
    FutureExt, SinkExt, StreamExt, future,
    future::BoxFuture,
    stream::{self, BoxStream},
};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::{sync::Notify, time::Instant};
use tokio_stream::StreamMap;

use super::{
    plan::Plan,
    protocol::{self, ClientFrame, Closing, FrameId, Protocol},
    render::{Executor, Payloads},
};
use crate::{
    app::App,
    auth::{Credentials, sessions},
    chat::presence,
    connections::Seat,
    error::{Error, Lang},
    graphql::{Schemas, persisted::Persisted},
    telemetry::SocketTelemetry,
};

/// Distinct documents one socket's shared subscriptions may use, and the
/// largest such document (with its variables): every distinct one is a
/// render kept with each event, so one socket may not add them without
/// bound. Subscriptions past either run on their own, like any operation.
const SHARED_DOCUMENTS: usize = 8;
pub(super) const SHARED_DOCUMENT_BYTES: usize = 8 * 1024;

/// How long a closing socket waits for the client's close frame.
const CLOSING_WAIT: Duration = Duration::from_secs(1);
/// Frames written to the socket before one flush, when that many are ready.
const FLUSH_EVERY: usize = 64;
/// The socket's buffers. Tungstenite's 128 KiB defaults of each are most of
/// what an idle subscriber would weigh, and a buffer keeps the size it once
/// grew to. Client frames are small; the read buffer grows for a large one.
/// Frames go out in flushed batches; a batch past the write buffer's size
/// is written as it goes, a few system calls more.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 2 * 1024;

/// What `http` learnt of a socket from its upgrade request, and the seat
/// its address holds for as long as the socket lives.
pub struct Handshake {
    pub lang: Lang,
    pub client: IpAddr,
    pub seat: Seat,
}

/// Takes an upgrade that `http` let through (its origin and rate checked):
/// refused without a subprotocol we speak, else served until it closes,
/// tracked so that shutdown waits for its goodbye.
pub fn accept(
    app: Arc<App>,
    schemas: Schemas,
    headers: &HeaderMap,
    handshake: Handshake,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = Protocol::offered(headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    let max = app.config.limits.max_frame_bytes;
    let sockets = app.sockets.clone();
    let telemetry = SocketTelemetry::new(app.metrics.clone());
    // Boxed: the upgrade's task, for the socket's whole life, keeps room for
    // the largest thing it ever holds, and it holds the callback, with what
    // the callback captures, until the socket is up.
    let session = Box::new(Session::new(app, schemas, handshake, protocol));
    upgrade
        .protocols(Protocol::NAMES)
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Boxed: the wrappers around a socket's future each keep room for it
        // (an async fn's argument and what it awaits are stored apart), which
        // tripled the task an idle subscriber weighs (docs/perf.md).
        .on_upgrade(move |socket| {
            sockets.track_future(telemetry.serve(Box::pin(Session::serve(*session, socket))))
        })
}

/// What the socket answers a client frame with.
enum Reply {
    Nothing,
    Frame(Message),
    /// Close the socket, saying why.
    Refuse(Closing),
    /// The client is done: end without a word.
    End,
}

/// One frame of an operation, and whether it is the operation's last.
type Outgoing = (Message, bool);

type Operations = StreamMap<String, BoxStream<'static, Outgoing>>;

/// A socket between frames.
struct Session {
    app: Arc<App>,
    schemas: Schemas,
    handshake: Handshake,
    protocol: Protocol,
    /// Who the client is, once its `connection_init` was accepted.
    credentials: Option<Credentials>,
    /// Counts the socket towards its user's presence while it lives.
    present: Option<presence::Present>,
    /// When its token expires: the socket closes then (4403).
    expires: Option<Instant>,
    /// Woken when the token may have stopped counting.
    signal: Arc<Notify>,
    /// The operations running, by id; each stream ends with its `complete`.
    operations: Operations,
    /// The hashes of the documents its shared subscriptions have used.
    shared: Vec<u64>,
    frames: DefaultDirectRateLimiter,
}

fn text(frame: String) -> Message {
    Message::Text(frame.into())
}

/// Sends a close frame, then reads until the client closes too, for at most
/// a second. Hanging up at once would leave the frames the client had
/// already sent unread, and the kernel would answer them with a reset that
/// can overtake the close frame.
///
/// Boxed, like every rare step of the socket's loop (`Session::converse`).
fn close_with(socket: &mut WebSocket, closing: Closing) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let close = Message::Close(Some(CloseFrame {
            code: closing.code,
            reason: closing.reason.as_ref().into(),
        }));
        let _ = tokio::time::timeout(CLOSING_WAIT, async {
            if socket.send(close).await.is_ok() {
                while let Some(Ok(_)) = socket.recv().await {}
            }
        })
        .await;
    })
}

impl Session {
    fn new(app: Arc<App>, schemas: Schemas, handshake: Handshake, protocol: Protocol) -> Self {
        let limits = &app.config.limits;
        let burst = NonZeroU32::new(limits.max_frames_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let frames = DefaultDirectRateLimiter::direct(
            Quota::per_second(burst)
                .allow_burst(burst.saturating_mul(NonZeroU32::MIN.saturating_add(1))),
        );
        Self {
            app,
            schemas,
            handshake,
            protocol,
            credentials: None,
            present: None,
            expires: None,
            signal: Arc::default(),
            // Room for the one operation most sockets run, not the four
            // a first insert would make.
            operations: StreamMap::with_capacity(1),
            shared: Vec::new(),
            frames,
        }
    }

    /// Serves the socket until it closes. Not an `async fn`: an async fn's
    /// arguments are kept twice in its future (as they came, and moved into
    /// its body), and the session and socket are most of what an idle
    /// subscriber weighs.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep the session and socket twice"
    )]
    fn serve(mut self, mut socket: WebSocket) -> impl Future<Output = ()> + Send {
        async move { self.converse(&mut socket).await }
    }

    /// The socket's loop. Its future lives as long as the socket, with room
    /// for the largest step it awaits: the rare steps (`init`, `refuse`,
    /// `shut_down`, `close_with`) are boxed futures, so that an idle
    /// subscriber keeps room only for waiting and writing (docs/perf.md).
    async fn converse(&mut self, socket: &mut WebSocket) {
        let app = self.app.clone();
        let limits = &app.config.limits;
        let slow_after = Duration::from_secs(limits.slow_client_secs.max(1));
        let (ping_every, idle_after) = (
            Duration::from_secs(limits.ping_secs.max(1)),
            Duration::from_secs(limits.idle_timeout_secs.max(1)),
        );
        // One wait for the whole socket, not one registered per frame.
        let shutdown = app.shutdown.cancelled();
        tokio::pin!(shutdown);
        // One timer too, set to whichever comes first: the end of the time
        // to `connection_init`, the token's expiry, or the next ping.
        let mut heard = Instant::now();
        let mut ping_at = heard + ping_every;
        let init_by = heard + Duration::from_secs(limits.init_timeout_secs.max(1));
        let timer = tokio::time::sleep_until(init_by.min(ping_at));
        tokio::pin!(timer);
        // Woken when the token may have stopped counting (`init` registers
        // it for the signed-in user); one wait for the whole socket.
        let signal = self.signal.clone();
        let changed = signal.notified();
        tokio::pin!(changed);
        // That check runs beside the operations, not in their way: while a
        // slow store or kv answers it, the socket goes on writing their
        // frames, and their own reads (which are not polled while the loop
        // waits) do not run out of time.
        let mut admitting: Option<BoxFuture<'static, bool>> = None;
        loop {
            let first = tokio::select! {
                biased;
                () = &mut shutdown => {
                    self.shut_down(socket).await;
                    return;
                }
                incoming = socket.recv() => {
                    heard = Instant::now();
                    let reply = match incoming {
                        Some(Ok(message)) => self.read(message).await,
                        Some(Err(_)) | None => return,
                    };
                    match reply {
                        Reply::Frame(frame) => frame,
                        Reply::Refuse(closing) => {
                            self.refuse(socket, closing).await;
                            return;
                        }
                        Reply::Nothing => {
                            timer.as_mut().reset(self.next_deadline(init_by, ping_at));
                            continue;
                        }
                        Reply::End => return,
                    }
                }
                () = &mut changed => {
                    changed.set(signal.notified());
                    admitting = self.admission();
                    continue;
                }
                Some(admitted) = future::OptionFuture::from(admitting.as_mut()), if admitting.is_some() => {
                    admitting = None;
                    if !admitted {
                        self.refuse(socket, Closing::token_ended()).await;
                        return;
                    }
                    continue;
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if self.credentials.is_none() && now >= init_by {
                        self.refuse(socket, Closing::init_timeout()).await;
                        return;
                    }
                    if self.expires.is_some_and(|expires| now >= expires) {
                        self.refuse(socket, Closing::token_ended()).await;
                        return;
                    }
                    if now.duration_since(heard) >= idle_after {
                        close_with(socket, Closing::idle()).await;
                        return;
                    }
                    if now < ping_at {
                        timer.as_mut().reset(self.next_deadline(init_by, ping_at));
                        continue;
                    }
                    ping_at = now + ping_every;
                    timer.as_mut().reset(self.next_deadline(init_by, ping_at));
                    Message::Ping(Default::default())
                }
                Some(frame) = Self::next_frame(&mut self.operations), if !self.operations.is_empty() => frame,
            };
            // Write what is ready now, then flush once: one system call for
            // a burst of frames rather than one each.
            let mut batch = vec![first];
            while batch.len() < FLUSH_EVERY {
                match Self::next_frame(&mut self.operations)
                    .now_or_never()
                    .flatten()
                {
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
                    close_with(socket, Closing::too_slow()).await;
                    return;
                }
            }
        }
    }

    /// When the socket's timer next has something to do.
    fn next_deadline(&self, init_by: Instant, ping_at: Instant) -> Instant {
        let mut deadline = ping_at;
        if self.credentials.is_none() {
            deadline = deadline.min(init_by);
        }
        if let Some(expires) = self.expires {
            deadline = deadline.min(expires);
        }
        deadline
    }

    /// The next frame of any running operation; forgets an operation once
    /// its last frame is out, so its id may be used again.
    async fn next_frame(operations: &mut Operations) -> Option<Message> {
        let (id, (frame, last)) = operations.next().await?;
        if last {
            operations.remove(&id);
        }
        Some(frame)
    }

    /// Finds whether the socket's token still counts, now that it may not;
    /// `None` when it has none to check. A check that fails counts as no.
    fn admission(&self) -> Option<BoxFuture<'static, bool>> {
        let Some(Credentials::Valid(viewer, grant)) = &self.credentials else {
            return None;
        };
        let (app, viewer, grant) = (self.app.clone(), viewer.clone(), grant.clone());
        Some(Box::pin(async move {
            sessions::admits(&app, &viewer, &grant)
                .await
                .unwrap_or(false)
        }))
    }

    async fn read(&mut self, message: Message) -> Reply {
        let bytes = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            // Control frames: tungstenite answers them.
            _ => return Reply::Nothing,
        };
        if self.frames.check().is_err() {
            return Reply::Refuse(Closing::too_many_frames());
        }
        let frame = match ClientFrame::parse(bytes) {
            Ok(frame) => frame,
            Err(closing) => return Reply::Refuse(closing),
        };
        match frame {
            ClientFrame::ConnectionInit { payload } => self.init(payload.unwrap_or_default()).await,
            ClientFrame::Subscribe { id, payload } => self.subscribe(id, payload),
            ClientFrame::Complete { id } => {
                self.operations.remove(&id);
                Reply::Nothing
            }
            ClientFrame::Ping {} => Reply::Frame(text(Protocol::pong())),
            ClientFrame::Pong {} => Reply::Nothing,
            ClientFrame::ConnectionTerminate {} => Reply::End,
        }
    }

    /// Boxed, like every rare step of the loop (`Session::converse`).
    fn init(&mut self, payload: serde_json::Value) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            if self.credentials.is_some() {
                return Reply::Refuse(Closing::too_many_inits());
            }
            let presented = protocol::credentials(&self.app.tokens, &payload);
            // Watching before the check: a password changed right after it
            // still wakes the socket.
            if let Credentials::Valid(viewer, _) = &presented {
                self.app.sessions.watch(viewer.identity, &self.signal);
            }
            match sessions::checked(&self.app, presented).await {
                Credentials::Invalid => Reply::Refuse(Closing::forbidden()),
                credentials => {
                    if let Credentials::Valid(viewer, grant) = &credentials {
                        let left = (grant.expires_at - chrono::Utc::now())
                            .to_std()
                            .unwrap_or_default();
                        self.expires = Some(Instant::now() + left);
                        self.present = Some(presence::arrive(&self.app, viewer.identity));
                    }
                    self.credentials = Some(credentials);
                    Reply::Frame(text(Protocol::ack()))
                }
            }
        })
    }

    fn subscribe(&mut self, id: String, payload: serde_json::Value) -> Reply {
        let Some(credentials) = &self.credentials else {
            return Reply::Refuse(Closing::unauthorized());
        };
        if self.operations.contains_key(&id) {
            return Reply::Refuse(Closing::duplicate_id(&id));
        }
        let executor = Executor {
            app: self.app.clone(),
            schemas: self.schemas.clone(),
            credentials: credentials.clone(),
            client: self.handshake.client,
            lang: self.handshake.lang,
        };
        let frame_id = FrameId::new(&id, self.protocol);
        if self.operations.len() >= self.app.config.limits.max_operations_per_socket {
            let errors = executor.errors(Error::rate_limited(None));
            return Reply::Frame(text(frame_id.error(&errors)));
        }
        let payload = match persisted(&executor, payload) {
            Ok(Resolved::Payload(payload)) => payload,
            Ok(Resolved::Later(payloads)) => {
                self.operations.insert(id, frames(frame_id, payloads));
                return Reply::Nothing;
            }
            Err(Some(error)) => {
                return Reply::Frame(text(frame_id.error(&executor.errors(error))));
            }
            Err(None) => return Reply::Refuse(Closing::bad_frame("malformed subscribe")),
        };
        let shared = Plan::of(&payload).filter(|plan| self.may_share(plan));
        let payloads = match shared {
            Some(plan) => executor.start(plan),
            None => match serde_json::from_value::<Request>(payload) {
                Ok(request) => executor.execute(request),
                Err(_) => return Reply::Refuse(Closing::bad_frame("malformed subscribe")),
            },
        };
        self.operations.insert(id, frames(frame_id, payloads));
        Reply::Nothing
    }

    /// Whether `plan` may be rendered for others too: its document is small,
    /// and one of the few this socket shares (`SHARED_DOCUMENTS`).
    fn may_share(&mut self, plan: &Plan) -> bool {
        if plan.key.len() > SHARED_DOCUMENT_BYTES {
            return false;
        }
        if self.shared.contains(&plan.hash) {
            return true;
        }
        if self.shared.len() >= SHARED_DOCUMENTS {
            return false;
        }
        self.shared.push(plan.hash);
        true
    }

    /// Closes as `closing` says, after the legacy protocol's word of why.
    fn refuse<'a>(&self, socket: &'a mut WebSocket, closing: Closing) -> BoxFuture<'a, ()> {
        let refusal = self.protocol.refusal(&closing);
        Box::pin(async move {
            if let Some(refusal) = refusal {
                let _ = socket.feed(text(refusal)).await;
            }
            close_with(socket, closing).await;
        })
    }

    /// Completes every running operation and says goodbye.
    fn shut_down<'a>(&self, socket: &'a mut WebSocket) -> BoxFuture<'a, ()> {
        let completes: Vec<String> = (self.operations.keys())
            .map(|id| FrameId::new(id, self.protocol).complete())
            .collect();
        Box::pin(async move {
            for complete in completes {
                if socket.feed(text(complete)).await.is_err() {
                    return;
                }
            }
            close_with(socket, Closing::going_away()).await;
        })
    }
}

/// A `subscribe` payload once its persisted query (`graphql::persisted`)
/// is resolved.
enum Resolved {
    /// With its document: this instance knows it, or it came whole (then
    /// kept, and shared in the background).
    Payload(serde_json::Value),
    /// The payloads of the operation, run (unshared) once the kv is asked.
    Later(Payloads),
}

/// `payload` resolved; `Err(None)` for a payload that is not an operation.
fn persisted(
    executor: &Executor,
    mut payload: serde_json::Value,
) -> Result<Resolved, Option<Error>> {
    if payload.pointer("/extensions/persistedQuery").is_none() {
        return Ok(Resolved::Payload(payload));
    }
    let request = serde_json::from_value::<Request>(payload.clone()).map_err(|_| None)?;
    let app = &executor.app;
    match Persisted::of(&request).map_err(Some)? {
        Persisted::No => Ok(Resolved::Payload(payload)),
        Persisted::Keep(hash) => {
            if app.persisted.keep(&hash, &request.query).map_err(Some)? {
                let (app, client) = (app.clone(), executor.client);
                tokio::spawn(async move {
                    app.persisted
                        .share(&app, &hash, &request.query, client)
                        .await;
                });
            }
            Ok(Resolved::Payload(payload))
        }
        Persisted::Lookup(hash) => match app.persisted.known(&hash) {
            Some(document) => {
                payload["query"] = serde_json::Value::from(document.as_ref());
                Ok(Resolved::Payload(payload))
            }
            None => {
                let executor = executor.clone();
                Ok(Resolved::Later(
                    stream::once(async move {
                        let app = &executor.app;
                        match app.persisted.resolve(app, request, executor.client).await {
                            Ok(request) => executor.execute(request),
                            Err(error) => executor.failed(error),
                        }
                    })
                    .flatten()
                    .boxed(),
                ))
            }
        },
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
