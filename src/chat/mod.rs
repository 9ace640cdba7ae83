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
