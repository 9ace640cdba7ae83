//! The rules of the chat, as plain functions over the app's services.
//!
//! Resolvers parse nothing and decide nothing: they call these with the
//! viewer and the raw arguments, and return what comes back.

pub mod accounts;
pub mod delivery;
pub mod messages;
pub mod rooms;
pub mod social;
pub mod values;
