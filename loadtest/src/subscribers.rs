//! C graphql-transport-ws connections, each subscribed to
//! `messages(roomIdentity:)`, each keeping its own account of what arrived;
//! or, for the silent few, holding its socket unread after its probe, as a
//! client too slow to keep up does.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
    task::JoinHandle,
    time::Instant,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        handshake::client::{Request, Response},
        http::HeaderValue,
    },
};
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use super::stamp::{Run, Seen, SeqSet, Stamp};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const MESSAGES: &str =
    "subscription($room: ID!) { messages(roomIdentity: $room) { identity content } }";

/// Every change of the room: messages and edits carry their stamp in their
/// content; a reaction event carries none, and is counted by its type.
const ROOM_EVENTS: &str = "subscription($room: ID!) { roomEvents(roomIdentity: $room) { \
    __typename \
    ... on MessagePosted { message { identity content } } \
    ... on MessageEdited { message { identity content } } \
    ... on ReactionsChanged { cursor } } }";

/// How a reaction event starts, as the server serializes it.
const REACTION_EVENT: &str = r#"{"__typename":"ReactionsChanged""#;

/// Latency histograms, one per few connections: one each would cost
/// hundreds of megabytes at thousands of connections, one for all would be
/// a lock every connection waits on.
const LATENCY_SHARDS: usize = 16;

/// Subscriber sockets one loopback source address holds before the next
/// one (127.0.0.2, 127.0.0.3, ...) takes over, when the server is on
/// loopback. Every socket needs an ephemeral port of its source address,
/// 28,232 of them on Linux by default, shared with everything else that
/// connects from there; a socket bound to its source before connecting
/// takes its port at bind time, which Linux looks for in half of the range
/// first. 10,000 stays well inside that half, so 15,000 subscribers on one
/// machine take two addresses and runs of up to 10,000 connect as before.
pub const SOCKETS_PER_SOURCE_ADDRESS: usize = 10_000;

/// What the connections tell the run while it goes on.
#[derive(Default)]
pub struct Counters {
    pub subscribed: AtomicUsize,
    /// Of `subscribed`, the silent: they owe no deliveries.
    pub silent: AtomicUsize,
    pub failed: AtomicUsize,
    /// Connections that received a probe: their subscription is live.
    pub ready: AtomicUsize,
    /// Connections the server ended (close, `complete`, `error`) before the run did.
    pub closed: AtomicUsize,
    /// Counted messages and reactions received, duplicates left out: the
    /// drain watches it.
    pub delivered: AtomicU64,
    first_failure: Mutex<Option<String>>,
    first_close: Mutex<Option<String>>,
}

impl Counters {
    pub fn first_failure(&self) -> Option<String> {
        self.first_failure.lock().ok()?.clone()
    }

    pub fn first_close(&self) -> Option<String> {
        self.first_close.lock().ok()?.clone()
    }

    fn failed(&self, why: String) {
        self.failed.fetch_add(1, Relaxed);
        keep_first(&self.first_failure, why);
    }

    fn closed(&self, why: String) {
        self.closed.fetch_add(1, Relaxed);
        keep_first(&self.first_close, why);
    }
}

fn keep_first(slot: &Mutex<Option<String>>, why: String) {
    if let Ok(mut slot) = slot.lock() {
        slot.get_or_insert(why);
    }
}

/// How a silent socket the server ended without a Close frame is counted.
const NO_CLOSE_FRAME: &str = "no close frame";

/// How a Close frame without a code is counted.
const NO_CODE: &str = "no code";

/// What one connection received.
#[derive(Debug, Default)]
pub struct Listener {
    pub subscribed: bool,
    /// A silent connection (`--silent`): left out of the delivery figures.
    pub silent: bool,
    /// Of a silent connection, how the server had closed it by the end of
    /// the run: the code of its Close frame, [`NO_CODE`] or
    /// [`NO_CLOSE_FRAME`]; `None` when it was still open.
    pub closed_by_server: Option<String>,
    pub seen: SeqSet,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Reaction events received after the warm-up.
    pub reactions: u64,
    /// Microseconds since the run's epoch; 0 when nothing arrived.
    pub last_delivery_us: u64,
    received: u64,
    ready: bool,
    /// The highest sequence number received from each sender: each sender
    /// waits for one answer before its next message, so the contract's
    /// room order means increasing numbers per sender.
    last_of_sender: HashMap<usize, u64>,
}

impl Listener {
    /// Every counted message received, of successful sends or not.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// Where and how the connections subscribe.
pub struct Plan {
    /// Connection `i` goes to `ws_urls[i % len]`.
    pub ws_urls: Vec<Url>,
    pub tokens: Vec<String>,
    pub room: String,
    pub run: Arc<Run>,
    /// The run's clock: send times in the stamps count from it.
    pub epoch: Instant,
    /// Sequence numbers handed out so far: a stamp beyond it is garbled, not ours.
    pub issued: Arc<AtomicU64>,
    pub connections: usize,
    pub at_once: usize,
    /// By when every connection must be subscribed.
    pub deadline: Instant,
    pub feed: crate::Feed,
    /// Sockets a loopback source address holds ([`SOCKETS_PER_SOURCE_ADDRESS`]).
    pub sockets_per_source: usize,
    /// The indices of the silent connections, in order ([`silent_connections`]).
    pub silent: Vec<usize>,
}

/// Which of `connections` are the `silent` ones, in order: one in each of
/// `silent` equal blocks, so that they spread over the run's connections;
/// in block k the first whose WebSocket URL is the (k mod `urls`)-th, when
/// the block holds one, so that they spread over the instances too (every
/// (C/N)th alone would put them all on one of two instances when C/N is even).
pub fn silent_connections(connections: usize, silent: usize, urls: usize) -> Vec<usize> {
    let silent = silent.min(connections);
    let urls = urls.max(1);
    (0..silent)
        .map(|k| {
            let (start, end) = (k * connections / silent, (k + 1) * connections / silent);
            (start..end).find(|i| i % urls == k % urls).unwrap_or(start)
        })
        .collect()
}

/// The running connections.
pub struct Connections {
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<Listener>>,
    latencies: Arc<Vec<Mutex<Histogram<u64>>>>,
    stop: CancellationToken,
}

/// How long, in all, silent connections read what their sockets hold at
/// the end of a run to find the server's Close frame: on loopback a few
/// megabytes of piled-up frames take milliseconds, so a socket still
/// without one after this is open, not slow to read.
const SILENT_LOOK: Duration = Duration::from_secs(2);

/// A histogram of microseconds up to an hour, at three significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("a latency histogram")
}

impl Connections {
    /// Starts every connection; at most `plan.at_once` handshake at a time.
    pub fn open(plan: Plan) -> anyhow::Result<Self> {
        let latencies = Arc::new(
            (0..LATENCY_SHARDS)
                .map(|_| latency_histogram().map(Mutex::new))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let gate = Arc::new(Semaphore::new(plan.at_once.max(1)));
        let plan = Arc::new(plan);
        let tasks = (0..plan.connections)
            .map(|index| {
                let connection = Connection {
                    index,
                    plan: plan.clone(),
                    counters: counters.clone(),
                    latencies: latencies.clone(),
                    stop: stop.clone(),
                };
                let gate = gate.clone();
                tokio::spawn(async move {
                    let socket = {
                        let Ok(_turn) = gate.acquire().await else {
                            return Listener::default();
                        };
                        connection.subscribe().await
                    };
                    match socket {
                        Ok(socket) => connection.listen(socket).await,
                        Err(error) => {
                            connection.counters.failed(format!("{error:#}"));
                            Listener::default()
                        }
                    }
                })
            })
            .collect();
        Ok(Self {
            counters,
            tasks,
            latencies,
            stop,
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Waits until every connection subscribed or failed, or `deadline`.
    pub async fn settled(&self, deadline: Instant) {
        let all = self.tasks.len();
        while self.counters.subscribed.load(Relaxed) + self.counters.failed.load(Relaxed) < all
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes every connection; what each received, and the end-to-end
    /// latencies of all of them.
    pub async fn close(self) -> anyhow::Result<(Vec<Listener>, Histogram<u64>)> {
        self.stop.cancel();
        let mut listeners = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            listeners.push(task.await.unwrap_or_default());
        }
        let mut all = latency_histogram()?;
        for shard in self.latencies.iter() {
            let shard = shard
                .lock()
                .map_err(|_| anyhow!("a latency shard was poisoned"))?;
            all.add(&*shard).context("merging latencies")?;
        }
        Ok((listeners, all))
    }
}

/// One connection's task.
struct Connection {
    index: usize,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
    latencies: Arc<Vec<Mutex<Histogram<u64>>>>,
    stop: CancellationToken,
}

impl Connection {
    fn silent(&self) -> bool {
        self.plan.silent.binary_search(&self.index).is_ok()
    }

    fn token(&self) -> Option<&str> {
        let tokens = &self.plan.tokens;
        (!tokens.is_empty()).then(|| tokens[self.index % tokens.len()].as_str())
    }

    /// Connects, signs in and subscribes, by the plan's deadline.
    async fn subscribe(&self) -> anyhow::Result<Socket> {
        tokio::time::timeout_at(self.plan.deadline, async {
            let mut socket = self.connect().await?;
            let payload = match self.token() {
                Some(token) => json!({ "token": token }),
                None => json!({}),
            };
            send_json(
                &mut socket,
                json!({"type": "connection_init", "payload": payload}),
            )
            .await?;
            self.acknowledged(&mut socket).await?;
            send_json(
                &mut socket,
                json!({"id": "1", "type": "subscribe", "payload": {
                    "query": match self.plan.feed {
                        crate::Feed::Messages => MESSAGES,
                        crate::Feed::RoomEvents => ROOM_EVENTS,
                    },
                    "variables": {"room": self.plan.room},
                }}),
            )
            .await?;
            Ok(socket)
        })
        .await
        .map_err(|_| anyhow!("not subscribed within the ready timeout"))?
    }

    /// Opens the socket, waiting out HTTP 429 as its `Retry-After` asks: a
    /// deployment limits new sockets per address, and all of ours come from one.
    async fn connect(&self) -> anyhow::Result<Socket> {
        loop {
            let urls = &self.plan.ws_urls;
            let url = urls
                .get(self.index % urls.len().max(1))
                .ok_or_else(|| anyhow!("no WebSocket URL"))?;
            let mut request = url.as_str().into_client_request()?;
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("graphql-transport-ws"),
            );
            let source = self.source_address(url).await;
            let attempt = match source {
                Some((source, server)) => connect_from(source, server, request).await,
                None => tokio_tungstenite::connect_async(request).await,
            };
            match attempt {
                Ok((socket, _)) => return Ok(socket),
                Err(tungstenite::Error::Http(response)) if response.status() == 429 => {
                    let wait = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<f64>().ok())
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
                }
                Err(tungstenite::Error::Http(response)) => {
                    bail!("WebSocket upgrade refused with HTTP {}", response.status())
                }
                Err(error) => {
                    return Err(error).with_context(|| match source {
                        Some((source, _)) => format!("connecting from {source}"),
                        None => "connecting".into(),
                    });
                }
            }
        }
    }

    /// Where this connection binds and what it connects to, when it is past
    /// the first source address's share and the server is on IPv4 loopback;
    /// `None` leaves both to the WebSocket client, as before.
    async fn source_address(&self, url: &Url) -> Option<(IpAddr, SocketAddr)> {
        let share = self.plan.sockets_per_source.max(1);
        if self.index < share {
            return None;
        }
        let port = url.port_or_known_default()?;
        let server = match url.host()? {
            Host::Ipv4(ip) => SocketAddr::new(ip.into(), port),
            Host::Domain(name) => tokio::net::lookup_host((name, port)).await.ok()?.next()?,
            // One loopback address in IPv6: nothing to spread over.
            Host::Ipv6(_) => return None,
        };
        Some((loopback_source(server.ip(), self.index / share)?, server))
    }

    async fn acknowledged(&self, socket: &mut Socket) -> anyhow::Result<()> {
        while let Some(frame) = socket.next().await {
            let Message::Text(text) = frame.context("waiting for connection_ack")? else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            match frame["type"].as_str() {
                Some("connection_ack") => return Ok(()),
                Some("ping") => send_json(socket, json!({"type": "pong"})).await?,
                _ => bail!("expected connection_ack, got {text}"),
            }
        }
        bail!("the server hung up before connection_ack")
    }

    /// Counts what arrives until the run stops it or the server ends the socket.
    async fn listen(&self, mut socket: Socket) -> Listener {
        self.counters.subscribed.fetch_add(1, Relaxed);
        let mut listener = Listener {
            subscribed: true,
            silent: self.silent(),
            ..Listener::default()
        };
        if listener.silent {
            self.counters.silent.fetch_add(1, Relaxed);
        }
        loop {
            let frame = tokio::select! {
                _ = self.stop.cancelled() => {
                    // Politely, but a server that does not answer the close is not waited for.
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                    return listener;
                }
                frame = socket.next() => frame,
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(close))) => {
                    self.counters.closed(match close {
                        Some(close) => format!("closed {}: {}", close.code, close.reason),
                        None => "closed".into(),
                    });
                    return listener;
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    self.counters.closed(format!("reading: {error}"));
                    return listener;
                }
                None => {
                    self.counters.closed("the server hung up".into());
                    return listener;
                }
            };
            match self.plan.run.read(&text) {
                Some(Seen::Measured(stamp)) => self.take(&mut listener, stamp),
                Some(Seen::Probe) if !listener.ready => {
                    listener.ready = true;
                    self.counters.ready.fetch_add(1, Relaxed);
                    if listener.silent {
                        return self.keep_silent(socket, listener).await;
                    }
                }
                Some(Seen::Probe | Seen::Warmup) => {}
                None if text.contains(REACTION_EVENT) => {
                    if self.plan.issued.load(Relaxed) > 0 {
                        listener.reactions += 1;
                        listener.last_delivery_us = micros(self.plan.epoch.elapsed());
                        self.counters.delivered.fetch_add(1, Relaxed);
                    }
                }
                None => {
                    if let Err(ended) = self.control(&mut socket, &text).await {
                        self.counters.closed(ended);
                        return listener;
                    }
                }
            }
        }
    }

    /// A silent connection after its probe: the socket stays open but is
    /// not read again, not even for pings, so what the server writes piles
    /// up in the kernel's buffers as it does for a client that cannot keep
    /// up. When the run stops, what it holds is read for at most
    /// [`SILENT_LOOK`] to learn whether the server closed it, and how.
    async fn keep_silent(&self, mut socket: Socket, mut listener: Listener) -> Listener {
        self.stop.cancelled().await;
        match tokio::time::timeout(SILENT_LOOK, server_close(&mut socket)).await {
            Ok(how) => listener.closed_by_server = Some(how),
            Err(_) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
            }
        }
        listener
    }

    fn take(&self, listener: &mut Listener, stamp: Stamp) {
        if stamp.seq >= self.plan.issued.load(Relaxed) {
            return;
        }
        if !listener.seen.insert(stamp.seq) {
            listener.duplicates += 1;
            return;
        }
        let now_us = micros(self.plan.epoch.elapsed());
        listener.received += 1;
        listener.last_delivery_us = listener.last_delivery_us.max(now_us);
        let last = listener.last_of_sender.entry(stamp.sender).or_insert(0);
        if stamp.seq < *last {
            listener.out_of_order += 1;
        } else {
            *last = stamp.seq;
        }
        self.counters.delivered.fetch_add(1, Relaxed);
        let shard = &self.latencies[self.index % self.latencies.len()];
        if let Ok(mut shard) = shard.lock() {
            shard.saturating_record(now_us.saturating_sub(stamp.sent_us).max(1));
        }
    }

    /// Answers a frame that is none of ours; an error when it ends the subscription.
    async fn control(&self, socket: &mut Socket, text: &str) -> Result<(), String> {
        let frame: Value = serde_json::from_str(text).unwrap_or_default();
        match frame["type"].as_str() {
            Some("ping") => send_json(socket, json!({"type": "pong"}))
                .await
                .map_err(|e| format!("answering ping: {e:#}")),
            Some("complete") => Err("the server completed the subscription".into()),
            Some("error") => Err(format!("subscription error: {}", frame["payload"])),
            // Other traffic in the room, pongs: nothing to do.
            _ => Ok(()),
        }
    }
}

/// Reads past everything a socket holds to the end the server gave it:
/// the code of its Close frame, or [`NO_CLOSE_FRAME`] when it hung up or
/// reset the socket without one.
async fn server_close(socket: &mut Socket) -> String {
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Message::Close(Some(close))) => return u16::from(close.code).to_string(),
            Ok(Message::Close(None)) => return NO_CODE.into(),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    NO_CLOSE_FRAME.into()
}

/// The `step`-th loopback address after 127.0.0.1, when `server` is on
/// IPv4 loopback, where every 127.x.y.z reaches it.
fn loopback_source(server: IpAddr, step: usize) -> Option<IpAddr> {
    let IpAddr::V4(server) = server else {
        return None;
    };
    let address = u32::from(Ipv4Addr::LOCALHOST).checked_add(u32::try_from(step).ok()?)?;
    let address = Ipv4Addr::from(address);
    (server.is_loopback() && address.is_loopback()).then_some(IpAddr::V4(address))
}

/// A WebSocket from `source` to `server`: the socket bound first, then the
/// same handshake (and TLS, for wss://) that `connect_async` would do.
async fn connect_from(
    source: IpAddr,
    server: SocketAddr,
    request: Request,
) -> Result<(Socket, Response), tungstenite::Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    tokio_tungstenite::client_async_tls_with_config(request, stream, None, None).await
}

async fn send_json(socket: &mut Socket, frame: Value) -> anyhow::Result<()> {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .context("sending a frame")
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_past_the_first_share_take_the_next_loopback_addresses() {
        let server = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            loopback_source(server, 1),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            loopback_source(server, 256),
            Some("127.0.1.1".parse().unwrap())
        );
    }

    #[test]
    fn silent_connections_spread_over_the_connections_and_the_urls() {
        assert_eq!(silent_connections(20, 2, 1), [0, 10]);
        assert_eq!(silent_connections(20, 2, 2), [0, 11]);
        assert_eq!(silent_connections(30, 3, 3), [0, 10, 20]);
        assert_eq!(silent_connections(21, 4, 2), [0, 5, 10, 15]);
    }

    #[test]
    fn silent_connections_are_as_many_as_asked_and_no_more_than_there_are() {
        assert!(silent_connections(20, 0, 2).is_empty());
        assert_eq!(silent_connections(3, 3, 2), [0, 1, 2]);
        assert_eq!(silent_connections(3, 5, 2), [0, 1, 2]);
    }

    #[test]
    fn a_server_off_loopback_or_past_its_addresses_gets_no_source_address() {
        let elsewhere: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(loopback_source(elsewhere, 1), None);
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(loopback_source(local, 1 << 24), None);
        assert_eq!(loopback_source("::1".parse().unwrap(), 1), None);
    }
}
