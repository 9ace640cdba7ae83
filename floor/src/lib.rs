//! `chatroom-floor`: the fan-out floor, what a naive hand-written
//! graphql-transport-ws broadcaster costs on the same machine. No GraphQL
//! parsing, no auth, no storage: operations are recognised by their field
//! names and arguments picked out of the query text, every message is
//! serialized once and handed to a tokio broadcast channel per room, and
//! each socket's task only wraps it in its subscription's `next` frame.
//! Whatever chatroom spends beyond this is the price of being a real server.
//!
//! It answers exactly what `chatroom-loadtest` sends, so the same command
//! measures both (README, "Load testing your deployment").
//!
//! # Layout
//!
//! - `operations`: the HTTP side: `sendMessage`, `editMessage`, reactions,
//!   and the setup's `sendEmailCode`, `register`, `createGroup`.
//! - `socket`: one task per WebSocket: `connection_init`, `subscribe`,
//!   `ping`, `complete`, and the room's messages written out in batches.
//! - [`Floor`]: the rooms' channels, shared by both.

mod operations;
mod socket;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::{State, WebSocketUpgrade},
    response::Response,
    routing::get,
};
use tokio::{net::TcpListener, sync::broadcast};

/// Messages a room's channel holds for its slowest subscriber. Closed-loop
/// senders outrun the fan-out by design (the floor answers `sendMessage`
/// before anyone has read it), and a subscriber further behind than this
/// loses messages, which the load test counts: large enough that a run at
/// C=1000 in closed loop loses none, as the bench kit's floor does.
const ROOM_BACKLOG: usize = 65_536;

/// Each socket's read and write buffers. Tungstenite's defaults are
/// 128 KiB each, and a socket's memory would be mostly those: any server
/// holding thousands of sockets sets them small. Client frames are small;
/// a batch of frames past the write buffer goes out as it fills.
const SOCKET_BUFFER: usize = 4 * 1024;

/// One change of a room, serialized once for every subscriber.
#[derive(Debug)]
struct Event {
    /// The `messages` subscription's payload; `None` for an edit or a
    /// reaction, which that subscription does not carry.
    messages: Option<String>,
    /// The `roomEvents` subscription's payload.
    room_events: String,
}

/// What the HTTP side and the sockets share.
#[derive(Debug)]
pub struct Floor {
    /// A room's channel, made by whichever comes first, its first message
    /// or its first subscriber. Never removed: a floor run holds a handful
    /// of rooms. A std mutex, held only to look a room up, never across an
    /// await.
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
    /// Numbers message identities, room identities and mails: unique in
    /// this process, which is all the load test asks of them.
    next: AtomicU64,
    /// Where `sendEmailCode` writes its mail, as chatroom's dev outbox does,
    /// so that a load test registering users runs unchanged against both.
    outbox: Option<PathBuf>,
}

impl Floor {
    pub fn new(outbox: Option<PathBuf>) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            outbox,
        }
    }

    fn room(&self, room: &str) -> broadcast::Sender<Arc<Event>> {
        // A poisoned map is still a map of channels: nothing half-written.
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = rooms.get(room) {
            return sender.clone();
        }
        let (sender, _) = broadcast::channel(ROOM_BACKLOG);
        rooms.insert(room.to_owned(), sender.clone());
        sender
    }

    fn publish(&self, room: &str, event: Event) {
        // Nobody listening is not an error: the warm-up message is sent
        // before the subscribers connect.
        let _ = self.room(room).send(Arc::new(event));
    }

    fn next_number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The floor's routes: `/graphql` for both transports, as chatroom has them.
pub fn router(floor: Arc<Floor>) -> Router {
    Router::new()
        .route("/graphql", get(upgrade).post(operations::answer))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(floor)
}

/// Serves `listener` until the process ends.
pub async fn serve(listener: TcpListener, floor: Arc<Floor>) -> std::io::Result<()> {
    axum::serve(listener, router(floor)).await
}

async fn upgrade(State(floor): State<Arc<Floor>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["graphql-transport-ws"])
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| socket::converse(socket, floor))
}
