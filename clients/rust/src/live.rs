//! Subscriptions over `graphql-transport-ws`, the protocol of the
//! `graphql-ws` library, written out: it is five frames, and seeing them
//! is the point of an example.
//!
//! 1. The client opens a WebSocket on the GraphQL endpoint, offering the
//!    subprotocol `graphql-transport-ws`.
//! 2. It sends `connection_init` with `{"token": "..."}` as its payload
//!    (never the token in the URL, where logs keep it); the server answers
//!    `connection_ack`, or closes with 4403 for a token it does not take.
//! 3. It sends `subscribe` with an id of its choosing and the operation.
//! 4. The server sends `next` for each result, and `error` (a refused
//!    operation) or `complete` (the subscription ended: the viewer left the
//!    room, the server shuts down) at the end.
//! 5. Either side may send `ping`, answered with `pong`; this server pings
//!    at the WebSocket level instead, which the WebSocket library answers.
//!
//! Each [`Subscription`] has a socket of its own: simple, and well within
//! the 200 sockets a client address may hold. An app following many rooms
//! subscribes to `inbox` (every room of the viewer) on one socket instead.

use std::marker::PhantomData;

use futures_util::{SinkExt, StreamExt};
use graphql_client::{GraphQLQuery, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderValue, header::SEC_WEBSOCKET_PROTOCOL},
    },
};
use url::Url;

use crate::{Error, data_of};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The subprotocol this client speaks.
const SUBPROTOCOL: &str = "graphql-transport-ws";

/// The id of the one operation a socket carries.
const OPERATION_ID: &str = "1";

/// What the server sends, as graphql-transport-ws names it.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame {
    ConnectionAck {},
    Ping {},
    Pong {},
    /// A result: a GraphQL response, decoded once the operation's type is known.
    Next {
        payload: Value,
    },
    /// The operation was refused before it ran (a bad document, a room
    /// the viewer is not in).
    Error {
        payload: Vec<graphql_client::Error>,
    },
    Complete {},
}

/// A running subscription: its results, one [`Subscription::next`] at a time.
pub struct Subscription<Q: GraphQLQuery> {
    socket: Socket,
    /// Set once the server completed or refused the operation, or the socket
    /// ended: nothing more will come.
    ended: bool,
    operation: PhantomData<Q>,
}

/// Opens a socket on `url`, signs it in with `token` and starts the
/// subscription `Q`.
pub(crate) async fn subscribe<Q: GraphQLQuery>(
    url: &Url,
    token: Option<&str>,
    variables: Q::Variables,
) -> Result<Subscription<Q>, Error> {
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;

    let payload = token.map_or_else(|| json!({}), |token| json!({ "token": token }));
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await?;
    loop {
        match receive(&mut socket).await? {
            ServerFrame::ConnectionAck {} => break,
            ServerFrame::Ping {} => send(&mut socket, json!({ "type": "pong" })).await?,
            ServerFrame::Pong {} => {}
            other => {
                return Err(Error::Protocol(format!("{other:?} before connection_ack")));
            }
        }
    }

    let operation = serde_json::to_value(Q::build_query(variables))
        .map_err(|error| Error::Protocol(format!("the operation does not serialize: {error}")))?;
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": OPERATION_ID, "payload": operation }),
    )
    .await?;
    Ok(Subscription {
        socket,
        ended: false,
        operation: PhantomData,
    })
}

impl<Q: GraphQLQuery> Subscription<Q> {
    /// The next result; `None` once the server completed the subscription.
    /// An `Err` is a result with errors (the operation failed as it ran,
    /// and `complete` follows), an operation refused before it ran, or the
    /// socket closed ([`Error::Closed`] says whether to sign in again or to
    /// resume); after the last two, nothing more comes.
    pub async fn next(&mut self) -> Option<Result<Q::ResponseData, Error>> {
        if self.ended {
            return None;
        }
        loop {
            let frame = match receive(&mut self.socket).await {
                Ok(frame) => frame,
                Err(error) => return self.end(Some(Err(error))),
            };
            match frame {
                ServerFrame::Next { payload } => {
                    let result = serde_json::from_value::<Response<Q::ResponseData>>(payload)
                        .map_err(|error| {
                            Error::Protocol(format!("a result of another shape: {error}"))
                        })
                        .and_then(data_of);
                    return Some(result);
                }
                ServerFrame::Error { payload } => {
                    return self.end(Some(Err(Error::from_graphql(payload))));
                }
                ServerFrame::Complete {} => return self.end(None),
                ServerFrame::Ping {} => {
                    if let Err(error) = send(&mut self.socket, json!({ "type": "pong" })).await {
                        return self.end(Some(Err(error)));
                    }
                }
                ServerFrame::Pong {} | ServerFrame::ConnectionAck {} => {}
            }
        }
    }

    /// Ends the subscription and closes its socket.
    pub async fn stop(mut self) -> Result<(), Error> {
        if !self.ended {
            send(
                &mut self.socket,
                json!({ "type": "complete", "id": OPERATION_ID }),
            )
            .await?;
        }
        self.socket.close(None).await?;
        Ok(())
    }

    fn end<T>(&mut self, last: T) -> T {
        self.ended = true;
        last
    }
}

async fn send(socket: &mut Socket, frame: Value) -> Result<(), Error> {
    socket.send(Message::text(frame.to_string())).await?;
    Ok(())
}

/// The next frame of the protocol, past the WebSocket's own pings; a
/// closed socket is [`Error::Closed`].
async fn receive(socket: &mut Socket) -> Result<ServerFrame, Error> {
    loop {
        let message = match socket.next().await {
            Some(message) => message?,
            None => return Err(dropped()),
        };
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).map_err(|_| {
                    Error::Protocol(format!("not a graphql-transport-ws frame: {text}"))
                });
            }
            Message::Close(Some(frame)) => {
                return Err(Error::Closed {
                    code: frame.code.into(),
                    reason: frame.reason.to_string(),
                });
            }
            Message::Close(None) => {
                return Err(Error::Closed {
                    code: 1005,
                    reason: String::new(),
                });
            }
            Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_) => {}
        }
    }
}

/// A socket that ended without saying why: RFC 6455's 1006.
fn dropped() -> Error {
    Error::Closed {
        code: 1006,
        reason: "the connection ended without a close frame".into(),
    }
}
