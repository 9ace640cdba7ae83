//! One graphql-transport-ws socket, one task: it answers the client's
//! frames and writes out its room's messages, each already serialized by
//! the sender, wrapped in a `next` frame with the subscription's id.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::{Event, Floor, operations::argument};

/// Frames written before one flush when a backlog has built up: one
/// system call for many messages, as any server that batches would.
const BATCH: usize = 64;

/// The one subscription a socket holds: the load test opens one a socket,
/// and a naive server need not juggle more.
struct Subscription {
    id: String,
    /// `{"id":...,"type":"next","payload":`, each frame's start.
    frame_start: String,
    feed: Feed,
    events: broadcast::Receiver<Arc<Event>>,
}

#[derive(Debug, Clone, Copy)]
enum Feed {
    Messages,
    RoomEvents,
}

/// What a client's frame calls for.
enum Reply {
    Nothing,
    Frame(Value),
    /// Close with a graphql-transport-ws code: the client broke the protocol.
    Close(u16, &'static str),
}

/// Serves one socket until either side ends it.
pub async fn converse(mut socket: WebSocket, floor: Arc<Floor>) {
    let mut initialised = false;
    let mut subscription: Option<Subscription> = None;
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                let sent = match answer(&text, &floor, &mut initialised, &mut subscription) {
                    Reply::Nothing => Ok(()),
                    Reply::Frame(frame) => socket.send(Message::text(frame.to_string())).await,
                    Reply::Close(code, reason) => {
                        let close = CloseFrame { code, reason: reason.into() };
                        // The socket ends whether the client hears this or not.
                        let _ = socket.send(Message::Close(Some(close))).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
            event = next(&mut subscription) => {
                let Some(subscription) = &mut subscription else { continue };
                if write(&mut socket, subscription, event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// What the client's frame calls for, the socket's state moved along.
fn answer(
    text: &str,
    floor: &Floor,
    initialised: &mut bool,
    subscription: &mut Option<Subscription>,
) -> Reply {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Reply::Close(4400, "the frame is not JSON");
    };
    match frame["type"].as_str() {
        Some("connection_init") if *initialised => {
            Reply::Close(4429, "too many initialisation requests")
        }
        Some("connection_init") => {
            // Any payload, any token: the floor has no auth.
            *initialised = true;
            Reply::Frame(json!({ "type": "connection_ack" }))
        }
        Some("ping") => Reply::Frame(json!({ "type": "pong" })),
        Some("subscribe") if !*initialised => Reply::Close(4401, "unauthorized"),
        Some("subscribe") => match subscribe(&frame, floor, subscription) {
            Ok(()) => Reply::Nothing,
            Err(why) => Reply::Frame(json!({
                "id": frame["id"], "type": "error", "payload": [{ "message": why }]
            })),
        },
        Some("complete")
            if subscription
                .as_ref()
                .is_some_and(|s| frame["id"].as_str() == Some(&s.id)) =>
        {
            *subscription = None;
            Reply::Nothing
        }
        // Pongs, and completes of subscriptions already gone.
        _ => Reply::Nothing,
    }
}

/// Starts the frame's subscription: the room's messages or all its events.
fn subscribe(
    frame: &Value,
    floor: &Floor,
    subscription: &mut Option<Subscription>,
) -> Result<(), &'static str> {
    if subscription.is_some() {
        return Err("the floor holds one subscription a socket");
    }
    let id = frame["id"].as_str().ok_or("subscribe needs an id")?;
    let query = frame["payload"]["query"].as_str().unwrap_or_default();
    let variables = &frame["payload"]["variables"];
    let feed = if query.contains("roomEvents") {
        Feed::RoomEvents
    } else if query.contains("messages") {
        Feed::Messages
    } else {
        return Err("the floor serves only messages and roomEvents");
    };
    let Some(Value::String(room)) = argument(query, variables, "roomIdentity") else {
        return Err("the subscription needs roomIdentity");
    };
    *subscription = Some(Subscription {
        frame_start: format!(r#"{{"id":{},"type":"next","payload":"#, Value::from(id)),
        id: id.to_owned(),
        feed,
        events: floor.room(&room).subscribe(),
    });
    Ok(())
}

/// The subscription's next event; never, without one. A room's channel
/// never closes, since the floor keeps every room's sender.
async fn next(subscription: &mut Option<Subscription>) -> Arc<Event> {
    if let Some(subscription) = subscription {
        loop {
            match subscription.events.recv().await {
                Ok(event) => return event,
                // Lost, and the load test counts it: the floor has no
                // store to fill a gap from.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    }
    std::future::pending().await
}

/// Writes `first` and whatever else is waiting, up to a batch, then flushes.
async fn write(
    socket: &mut WebSocket,
    subscription: &mut Subscription,
    first: Arc<Event>,
) -> Result<(), axum::Error> {
    let mut event = Some(first);
    let mut batched = 0;
    while let Some(current) = event.take() {
        let payload = match subscription.feed {
            Feed::Messages => current.messages.as_deref(),
            Feed::RoomEvents => Some(current.room_events.as_str()),
        };
        if let Some(payload) = payload {
            let frame = format!("{}{payload}}}", subscription.frame_start);
            socket.feed(Message::text(frame)).await?;
        }
        batched += 1;
        if batched < BATCH {
            event = waiting(&mut subscription.events);
        }
    }
    socket.flush().await
}

/// An event already in the channel, past any lost ones.
fn waiting(events: &mut broadcast::Receiver<Arc<Event>>) -> Option<Arc<Event>> {
    loop {
        match events.try_recv() {
            Ok(event) => return Some(event),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
        }
    }
}
