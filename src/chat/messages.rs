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

/// Cursors are opaque to clients. Inside: `m` and a message's seq, or `e`
/// and a room event's revision, then `.` and a tag of the room (the last 8
/// hex digits of its identity, the random ones), so that a cursor of one
/// room is told from one of another. A cursor of version 1 (`m` and a seq,
/// no tag) is still read.
const MESSAGE_PREFIX: char = 'm';
const EVENT_PREFIX: char = 'e';

fn room_tag(room: Uuid) -> String {
    let simple = room.simple().to_string();
    simple[simple.len().saturating_sub(8)..].to_owned()
}

/// The cursor of the message at `seq` in `room`.
pub fn encode_cursor(room: Uuid, seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{MESSAGE_PREFIX}{seq}.{}", room_tag(room)))
}

/// The cursor of the room event at revision `rev` of `room`.
pub fn encode_event_cursor(room: Uuid, rev: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{EVENT_PREFIX}{rev}.{}", room_tag(room)))
}

/// A position in a room, as a cursor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A message's seq.
    Message(i64),
    /// A room event's revision.
    Event(i64),
}

/// The position inside a cursor of `room`; `BAD_USER_INPUT` on `field` for
/// anything we did not give out, or gave out for another room.
pub fn decode_position(field: &'static str, cursor: &str, room: Uuid) -> Result<Position> {
    let bad = || Error::bad_input(field, Problem::Cursor);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let mut chars = text.chars();
    let kind = chars.next().ok_or_else(bad)?;
    let rest = chars.as_str();
    let (number, tag) = match rest.split_once('.') {
        Some((number, tag)) => (number, Some(tag)),
        None => (rest, None),
    };
    let number = number.parse::<i64>().map_err(|_| bad())?;
    let position = match (kind, tag) {
        (MESSAGE_PREFIX, _) => Position::Message(number),
        (EVENT_PREFIX, Some(_)) => Position::Event(number),
        _ => return Err(bad()),
    };
    let canonical = match (position, tag) {
        (_, Some(tag)) if tag != room_tag(room) => {
            return Err(Error::bad_input(field, Problem::NotInRoom));
        }
        (Position::Message(seq), Some(_)) => encode_cursor(room, seq),
        (Position::Event(rev), _) => encode_event_cursor(room, rev),
        (Position::Message(seq), None) => URL_SAFE_NO_PAD.encode(format!("{MESSAGE_PREFIX}{seq}")),
    };
    if number < 0 || canonical != cursor {
        return Err(bad());
    }
    Ok(position)
}

/// The seq inside a message cursor of `room`.
pub fn decode_cursor(field: &'static str, cursor: &str, room: Uuid) -> Result<i64> {
    match decode_position(field, cursor, room)? {
        Position::Message(seq) => Ok(seq),
        Position::Event(_) => Err(Error::bad_input(field, Problem::Cursor)),
    }
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
    reply_to: Option<&str>,
) -> Result<Arc<MessageEvent>> {
    let content = Content::parse(content, app.config.limits.max_message_chars)?;
    let client_id = client_id.map(ClientId::parse).transpose()?;
    let reply_to = reply_to
        .map(|identity| {
            Uuid::parse_str(identity).map_err(|_| Error::bad_input("replyTo", Problem::NotInRoom))
        })
        .transpose()?;
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
        reply_to,
    };
    // A task of its own on the writes thread (`writes`): a client going
    // away mid-request cannot stop it between storing and publishing
    // (subscribers would wait for a seq that is stored but never announced,
    // `delivery`), and the fan-out of the messages before does not hold up
    // this one's publishing.
    let (app, writes) = (app.clone(), &app.writes);
    let (answer, answered) = oneshot::channel();
    writes.spawn(async move {
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

/// A page of history or of search results as a Relay connection needs it.
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
    let identity = parse_identity(room)?;
    let after = request
        .after
        .as_deref()
        .map(|c| decode_cursor("after", c, identity))
        .transpose()?;
    let before = request
        .before
        .as_deref()
        .map(|c| decode_cursor("before", c, identity))
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
        let room = Uuid::new_v4();
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(
                decode_cursor("after", &encode_cursor(room, seq), room).unwrap(),
                seq
            );
            assert_eq!(
                decode_position("after", &encode_event_cursor(room, seq), room).unwrap(),
                Position::Event(seq)
            );
        }
        let version_1 = URL_SAFE_NO_PAD.encode("m7");
        assert_eq!(decode_cursor("after", &version_1, room).unwrap(), 7);
    }

    #[test]
    fn a_cursor_of_another_room_is_told_apart() {
        let (room, other) = (Uuid::new_v4(), Uuid::new_v4());
        let error = decode_cursor("upTo", &encode_cursor(other, 1), room).unwrap_err();
        assert_eq!(error.field(), Some("upTo"));
        assert_eq!(
            decode_cursor("after", &encode_event_cursor(room, 1), room)
                .unwrap_err()
                .field(),
            Some("after")
        );
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
            let error = decode_cursor("before", cursor, Uuid::new_v4()).unwrap_err();
            assert_eq!(error.field(), Some("before"), "{cursor:?}");
        }
    }
}
