//! `chatroom-client`: a typed client of a chatroom server, for Rust apps
//! and as an example for authors of clients in any language.
//!
//! # Layout
//!
//! - `src/graphql/`: the operations this client runs, a file each.
//! - [`operations`]: their types, generated at compile time by
//!   `graphql_client` from those files and the repository's
//!   `schema.graphql` (the schema the server exports), so a query the
//!   schema does not allow fails the build, not a user.
//! - [`Client`] (here): GraphQL over HTTP, with the token `register` or
//!   `login` gave, and a method per operation.
//! - [`live`]: subscriptions over a WebSocket speaking
//!   `graphql-transport-ws`, the protocol of the `graphql-ws` library.
//!
//! # Use
//!
//! ```no_run
//! # async fn chat() -> Result<(), chatroom_client::Error> {
//! use chatroom_client::{Client, Registration};
//!
//! let mut client = Client::new("http://127.0.0.1:8080/graphql")?;
//! client.send_email_code("ann@example.com").await?;
//! let code = String::from("123456"); // from the mail
//! client
//!     .register(Registration {
//!         username: "ann".into(),
//!         password: "a long password".into(),
//!         email: "ann@example.com".into(),
//!         code,
//!     })
//!     .await?;
//! let room = client.create_group("book club", &["bob"]).await?.identity;
//! let first = client.send_message(&room, "hello", Some("m1")).await?;
//! // After the newest message the client has: what comes meanwhile is
//! // replayed, so nothing is lost while the subscription starts.
//! let mut messages = client.subscribe_messages(&room, Some(&first.cursor)).await?;
//! client.send_message(&room, "anyone here?", Some("m2")).await?;
//! while let Some(message) = messages.next().await {
//!     let message = message?.messages;
//!     println!("{}: {}", message.sender.username, message.content);
//! }
//! # Ok(())
//! # }
//! ```

pub mod live;
pub mod operations;

use graphql_client::{GraphQLQuery, Response};
use url::Url;

pub use live::Subscription;
use operations::{
    AddFriend, CreateGroup, Login, Register, RoomMessages, SendEmailCode, SendMessage, add_friend,
    create_group, login, register, room_messages, send_email_code, send_message,
};

/// What `register` takes: the username, password, email address and the
/// code mailed to it.
pub type Registration = register::Variables;

/// Why an operation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a GraphQL error: `code` is its
    /// `extensions.code` (`UNAUTHENTICATED`, `BAD_USER_INPUT`,
    /// `RATE_LIMITED`, ...; docs/api.md lists them), `field` the input
    /// it is about, and `retry_after` the seconds to wait before trying
    /// again.
    #[error("{code}: {message}")]
    Api {
        code: String,
        message: String,
        field: Option<String>,
        retry_after: Option<u64>,
    },
    /// An answer that is not a GraphQL response: a body too large (413),
    /// too many connections (429, 503), or a proxy's error page.
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// The server ended the socket: 4403 when the token expired or was
    /// revoked (sign in again), 1001 or 1013 when it went away or found
    /// the client too slow (subscribe again, with `after` the last cursor
    /// seen), 1006 when the connection dropped without a close.
    #[error("socket closed: {code} {reason}")]
    Closed { code: u16, reason: String },
    /// The server said something this client does not understand.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// `Client::new` was given something other than an http(s) URL.
    #[error("not an http or https URL: {0}")]
    Endpoint(String),
    /// No answer at all: the connection was refused or reset, or TLS failed.
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    /// The WebSocket could not be opened, or failed. Boxed: it is most of
    /// the size of every `Result` of this crate otherwise.
    #[error(transparent)]
    Socket(Box<tokio_tungstenite::tungstenite::Error>),
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::Socket(Box::new(error))
    }
}

impl Error {
    /// The API's error code, for an error the server answered with.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The first of a response's errors, as this client reports it.
    fn from_graphql(errors: Vec<graphql_client::Error>) -> Self {
        let Some(first) = errors.into_iter().next() else {
            return Error::Protocol("an error frame without errors".into());
        };
        let extension = |name: &str| {
            first
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get(name))
        };
        Error::Api {
            code: extension("code")
                .and_then(|code| code.as_str())
                .unwrap_or("INTERNAL")
                .to_owned(),
            field: extension("field")
                .and_then(|field| field.as_str())
                .map(str::to_owned),
            retry_after: extension("retryAfter").and_then(|seconds| seconds.as_u64()),
            message: first.message,
        }
    }
}

/// The data of a GraphQL response, or its first error.
fn data_of<Data>(response: Response<Data>) -> Result<Data, Error> {
    match (response.data, response.errors) {
        (_, Some(errors)) if !errors.is_empty() => Err(Error::from_graphql(errors)),
        (Some(data), _) => Ok(data),
        (None, _) => Err(Error::Protocol(
            "a response with neither data nor errors".into(),
        )),
    }
}

/// A client of one chatroom server, signed in once `register` or `login`
/// succeeded. Cheap to clone: clones share one pool of HTTP connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http(s)://host/graphql`, for queries and mutations.
    endpoint: Url,
    /// The same endpoint as `ws(s)://`, for subscriptions.
    socket: Url,
    token: Option<String>,
}

impl Client {
    /// A client of the server whose GraphQL endpoint is `endpoint`
    /// (`http://127.0.0.1:8080/graphql`), not signed in.
    pub fn new(endpoint: &str) -> Result<Self, Error> {
        let not_http = || Error::Endpoint(endpoint.to_owned());
        let endpoint = Url::parse(endpoint).map_err(|_| not_http())?;
        let mut socket = endpoint.clone();
        let scheme = match endpoint.scheme() {
            "http" => "ws",
            "https" => "wss",
            _ => return Err(not_http()),
        };
        socket.set_scheme(scheme).map_err(|()| not_http())?;
        Ok(Self {
            http: reqwest::Client::new(),
            endpoint,
            socket,
            token: None,
        })
    }

    /// This client signed in with a token `register`, `login` or
    /// `refreshToken` gave, of this session or an earlier one.
    pub fn with_token(self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self
        }
    }

    /// The token the client sends, once signed in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Runs any query or mutation of [`operations`] over HTTP, signed in
    /// when the client is.
    pub async fn execute<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
    ) -> Result<Q::ResponseData, Error> {
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .json(&Q::build_query(variables));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await?;
        let status = answer.status().as_u16();
        let body = answer.bytes().await?;
        match serde_json::from_slice::<Response<Q::ResponseData>>(&body) {
            Ok(response) => data_of(response),
            Err(_) => Err(Error::Http {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// Starts any subscription of [`operations`] on a socket of its own,
    /// signed in when the client is.
    pub async fn subscribe<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
    ) -> Result<Subscription<Q>, Error> {
        live::subscribe(&self.socket, self.token.as_deref(), variables).await
    }

    /// Mails a registration code to `email`; the answer says how long it
    /// is valid and when another may be asked for.
    pub async fn send_email_code(
        &self,
        email: &str,
    ) -> Result<send_email_code::SendEmailCodeSendEmailCode, Error> {
        let variables = send_email_code::Variables {
            email: email.to_owned(),
        };
        Ok(self
            .execute::<SendEmailCode>(variables)
            .await?
            .send_email_code)
    }

    /// Creates the account and signs this client in as it.
    pub async fn register(
        &mut self,
        registration: Registration,
    ) -> Result<register::Session, Error> {
        let session = self.execute::<Register>(registration).await?.register;
        self.token = Some(session.token.clone());
        Ok(session)
    }

    /// Signs this client in.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<login::Session, Error> {
        let variables = login::Variables {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let session = self.execute::<Login>(variables).await?.login;
        self.token = Some(session.token.clone());
        Ok(session)
    }

    /// Creates a GROUP room of the viewer and `members` (usernames).
    pub async fn create_group(
        &self,
        name: &str,
        members: &[&str],
    ) -> Result<create_group::RoomFields, Error> {
        let variables = create_group::Variables {
            name: name.to_owned(),
            members: members.iter().map(|&member| member.to_owned()).collect(),
        };
        Ok(self.execute::<CreateGroup>(variables).await?.create_group)
    }

    /// Befriends `username`; the answer is the PRIVATE room the two share
    /// (the one they had, if they were friends already).
    pub async fn add_friend(&self, username: &str) -> Result<add_friend::RoomFields, Error> {
        let variables = add_friend::Variables {
            username: username.to_owned(),
        };
        Ok(self.execute::<AddFriend>(variables).await?.add_friend)
    }

    /// Sends `content` to a room. With a `client_id`, sending again after
    /// a failure (a timeout, a dropped connection) answers the message
    /// stored the first time rather than storing it twice.
    pub async fn send_message(
        &self,
        room: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> Result<send_message::MessageFields, Error> {
        let variables = send_message::Variables {
            room: room.to_owned(),
            content: content.to_owned(),
            client_id: client_id.map(str::to_owned),
        };
        Ok(self.execute::<SendMessage>(variables).await?.send_message)
    }

    /// Follows the messages of a room. With `after` (the cursor of the
    /// last message the caller has), the server first sends every stored
    /// message after it, then goes on live, with no gap and no duplicate:
    /// the way to resume after a dropped socket, and to miss nothing sent
    /// while the subscription was starting.
    pub async fn subscribe_messages(
        &self,
        room: &str,
        after: Option<&str>,
    ) -> Result<Subscription<RoomMessages>, Error> {
        let variables = room_messages::Variables {
            room: room.to_owned(),
            after: after.map(str::to_owned),
        };
        self.subscribe::<RoomMessages>(variables).await
    }
}
