//! Sending and reading messages, and the lobby.

use std::{collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    rooms::{member_room, parse_identity},
    values::{ClientId, Content, PageSize},
};
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, LobbyEvent, MessageEvent, Topic},
    error::{Error, Problem, Result},
    store::{HistoryRange, MessageRecord, NewMessage, Profile, now},
};

/// History's page size when the client gives none: the newest 50.
pub const DEFAULT_PAGE: usize = 50;

/// Cursors are opaque to clients; inside, a message's seq in its room.
const CURSOR_PREFIX: &str = "m";

pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{seq}"))
}

/// The seq inside a cursor; `BAD_USER_INPUT` on `field` for anything we did not give out.
pub fn decode_cursor(field: &'static str, cursor: &str) -> Result<i64> {
    let bad = || Error::bad_input(field, Problem::Cursor);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let seq = text
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|digits| digits.parse::<i64>().ok())
        .ok_or_else(bad)?;
    if seq < 0 || encode_cursor(seq) != cursor {
        return Err(bad());
    }
    Ok(seq)
}

/// Stores a message in a room the viewer is in, then publishes it. With a
/// `client_id` used before by the viewer in this room, returns the message
/// stored the first time and publishes nothing again.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %room))]
pub async fn send(
    app: &Arc<App>,
    viewer: &Viewer,
    room: &str,
    content: &str,
    client_id: Option<&str>,
) -> Result<Arc<MessageEvent>> {
    let content = Content::parse(content, app.config.limits.max_message_chars)?;
    let client_id = client_id.map(ClientId::parse).transpose()?;
    let new = NewMessage {
        // Time-ordered: the store's unique index on identities takes each
        // new one at its end, where a random one would dirty a page of its
        // own in every commit (docs/perf.md).
        identity: Uuid::now_v7(),
        room_identity: parse_identity(room)?,
        sender_identity: viewer.identity,
        content: content.into_inner(),
        client_id: client_id.map(ClientId::into_inner),
        created_at: now(),
    };
    // A task of its own, so that a client going away mid-request cannot
    // stop it between storing and publishing: subscribers would wait for a
    // seq that is stored but never announced (`delivery`).
    let app = app.clone();
    let (answer, answered) = oneshot::channel();
    tokio::spawn(async move {
        // The store makes the checks (room, membership, sender) with the
        // insert: this runs for every message.
        let sent = match app.store.send_message(&new).await {
            Ok(sent) => sent,
            Err(error) => {
                answer.send(Err(error)).ok();
                return;
            }
        };
        let event = Arc::new(MessageEvent::new(sent.message, sent.sender));
        // The answer first: publishing wakes every subscriber of the room,
        // and the sender would otherwise wait behind all of them.
        answer.send(Ok(event.clone())).ok();
        if sent.created {
            app.metrics.message_stored();
            app.broker
                .publish(Topic::Room(new.room_identity), Event::Message(event))
                .await;
        }
    });
    answered
        .await
        .map_err(|_| Error::internal(anyhow::anyhow!("storing a message failed")))?
}

async fn sender_of(app: &App, viewer: &Viewer) -> Result<Profile> {
    app.store
        .user_by_identity(viewer.identity)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Sends a live-only message to everyone in the lobby.
pub async fn send_to_lobby(app: &App, viewer: &Viewer, content: &str) -> Result<Arc<LobbyEvent>> {
    let content = Content::parse(content, app.config.limits.max_message_chars)?;
    let event = Arc::new(LobbyEvent {
        sender: sender_of(app, viewer).await?,
        content: content.into_inner(),
        created_at: now(),
    });
    app.broker
        .publish(Topic::Lobby, Event::Lobby(event.clone()))
        .await;
    Ok(event)
}

/// A page of history as a Relay connection needs it.
pub struct Page {
    pub messages: Vec<MessageRecord>,
    pub has_previous: bool,
    pub has_next: bool,
}

/// The arguments of a `messages` query, as the client gave them.
#[derive(Debug, Default, Clone)]
pub struct PageRequest {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// A page of a room's history: `first`/`after` forwards from the oldest,
/// `last`/`before` backwards from the newest (the default: the last 50).
/// Edges are oldest first either way.
pub async fn history(app: &App, viewer: &Viewer, room: &str, request: PageRequest) -> Result<Page> {
    let first = request
        .first
        .map(|n| PageSize::parse("first", n, app.config.limits.max_page_size))
        .transpose()?;
    let last = request
        .last
        .map(|n| PageSize::parse("last", n, app.config.limits.max_page_size))
        .transpose()?;
    if first.is_some() && last.is_some() {
        return Err(Error::bad_input("last", Problem::FirstAndLast));
    }
    let after = request
        .after
        .as_deref()
        .map(|c| decode_cursor("after", c))
        .transpose()?;
    let before = request
        .before
        .as_deref()
        .map(|c| decode_cursor("before", c))
        .transpose()?;
    let (room, _) = member_room(app, viewer, room).await?;

    let (limit, newest) = match (first, last) {
        (Some(first), _) => (first.get(), false),
        (None, Some(last)) => (last.get(), true),
        (None, None) => (DEFAULT_PAGE, true),
    };
    let range = HistoryRange {
        after,
        before,
        limit: limit + 1,
        newest,
    };
    let mut messages = app.store.history(room.identity, range).await?;
    let more = messages.len() > limit;
    // Seqs run 1..=room.seq without holes, so what lies beyond a bound is known
    // without reading it.
    let (has_previous, has_next) = if newest {
        if more {
            messages.remove(0);
        }
        (more, before.is_some_and(|b| b <= room.seq))
    } else {
        messages.truncate(limit);
        (after.is_some_and(|a| a >= 1), more)
    };
    Ok(Page {
        messages,
        has_previous,
        has_next,
    })
}

/// The senders of `messages`, in one store call.
pub async fn senders(app: &App, messages: &[MessageRecord]) -> Result<HashMap<Uuid, Profile>> {
    let mut identities: Vec<Uuid> = messages.iter().map(|m| m.sender_identity).collect();
    identities.sort_unstable();
    identities.dedup();
    Ok(app
        .store
        .users_by_identities(&identities)
        .await?
        .into_iter()
        .map(|user| (user.identity, user))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(decode_cursor("after", &encode_cursor(seq)).unwrap(), seq);
        }
    }

    #[test]
    fn foreign_cursors_are_bad_input() {
        let foreign = [
            "",
            "!!!",
            "bS0x",
            "eDE",
            "bTAx",
            &URL_SAFE_NO_PAD.encode("m99999999999999999999"),
        ];
        for cursor in foreign {
            let error = decode_cursor("before", cursor).unwrap_err();
            assert_eq!(error.field(), Some("before"), "{cursor:?}");
        }
    }
}
