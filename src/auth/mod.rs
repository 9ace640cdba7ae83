//! Who is asking: passwords, tokens, and the viewer of a request or socket.
//!
//! Both transports authenticate once into [`Credentials`]: HTTP from the
//! `Authorization` header of each request, WebSocket from the
//! `connection_init` payload. Resolvers only ever ask for a [`Viewer`].

pub mod password;
pub mod sessions;
pub mod token;

use uuid::Uuid;

use crate::error::{Error, Result};

pub use token::{Grant, Tokens};

/// The signed-in user, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub identity: Uuid,
    pub username: String,
}

/// What a request or socket presented.
///
/// A bad token is kept as `Invalid`, not turned into `Anonymous`: a client
/// that sent a token expects to act as someone, and must learn that it does
/// not (`UNAUTHENTICATED`) rather than silently see what anyone sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Invalid,
    Valid(Viewer, Grant),
}

impl Credentials {
    /// The viewer, or `UNAUTHENTICATED` for a missing or bad token.
    pub fn viewer(&self) -> Result<&Viewer> {
        match self {
            Credentials::Valid(viewer, _) => Ok(viewer),
            Credentials::Anonymous | Credentials::Invalid => Err(Error::Unauthenticated),
        }
    }
}
