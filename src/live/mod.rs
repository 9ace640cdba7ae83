//! Everything that streams: GraphQL over a WebSocket (either subprotocol)
//! and over Server-Sent Events, with room and inbox subscriptions rendered
//! once per message for all their subscribers.
//!
//! - [`protocol`]: the subprotocols as frames, ids and close codes.
//! - `socket`: one socket's loop, from the upgrade `http` hands over to
//!   the close.
//! - [`sse`]: one operation's event stream, for a request that accepts
//!   `text/event-stream`.
//! - `plan`: which subscriptions are served from shared renders.
//! - `render`: running a socket's operations, shared renders and all.
//!
//! Calls go one way: `http` → `live` → `graphql` and `chat`. Nothing below
//! (`chat`, `broker`, `store`) knows of sockets; what `live` keeps with an
//! event it keeps in the event's neutral [`crate::broker::Memo`].

mod plan;
pub mod protocol;
mod render;
mod socket;
pub mod sse;

pub use socket::{Handshake, accept};
