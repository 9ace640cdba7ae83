//! The rules of the chat, as plain functions over the app's services.
//!
//! Resolvers parse nothing and decide nothing: they call these with the
//! viewer and the raw arguments, and return what comes back.

pub mod accounts;
pub mod blocking;
pub mod delivery;
pub mod digest;
pub mod messages;
pub mod nodes;
pub mod presence;
pub mod rooms;
pub mod search;
pub mod social;
pub mod timeline;
pub mod typing;
pub mod values;

use std::future::Future;

use crate::error::{Error, Result};

/// Runs `work`, a write and the events that announce it, in a task of its
/// own, and answers what it answers. A client that goes away mid-request
/// drops only the wait: the work runs to its end, so a change is never
/// stored without its event. A lost `Left` or `RoomDeleted` would leave a
/// departed member's other subscriptions receiving the room.
pub(crate) async fn outliving<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work).await.map_err(Error::internal)?
}
