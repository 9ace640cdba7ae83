//! Relay's global object identification: the one id by which a client
//! refetches a user, a room or a message (`node`, `nodes`), and who may see
//! what through it.
//!
//! An id is base64url (no padding) of `User:`, `Room:` or `Message:` and the
//! object's identity. The identity, not a username or a room number: those
//! can change, and a client's store keeps an object under its id for good.
//! The type goes into the id because the three kinds of identity are all
//! UUIDs and the id alone must say where to look.
//!
//! What `node` shows is what the single-object queries show: any user, as
//! `userProfile` does (the user's fields hide what is not the viewer's to
//! see); a room the viewer is in, as `room(identity:)`; a message of a room
//! the viewer is in now, as `message(identity:)`. Anything else is `None`,
//! whether it exists or not.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::{
    app::App,
    error::{Error, Problem, Result},
    store::{MessageRecord, RoomRecord},
};

/// What a global id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeId {
    User(Uuid),
    Room(Uuid),
    Message(Uuid),
}

impl NodeId {
    /// The object `id` names; `None` for anything this server does not give
    /// out, an id in another spelling of the same identity included, so that
    /// one object has one id in a client's store.
    pub fn parse(id: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(id).ok()?;
        let (kind, identity) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        let identity = Uuid::parse_str(identity).ok()?;
        let node = match kind {
            "User" => Self::User(identity),
            "Room" => Self::Room(identity),
            "Message" => Self::Message(identity),
            _ => return None,
        };
        (node.encode() == id).then_some(node)
    }

    pub fn encode(self) -> String {
        let (kind, identity) = match self {
            Self::User(identity) => ("User", identity),
            Self::Room(identity) => ("Room", identity),
            Self::Message(identity) => ("Message", identity),
        };
        URL_SAFE_NO_PAD.encode(format!("{kind}:{identity}"))
    }
}

/// `BAD_USER_INPUT` (field `ids`) when `nodes` is asked for more objects
/// than a page of history may hold: one request, one bounded batch.
pub fn check_count(app: &App, count: usize) -> Result<()> {
    let max = usize::try_from(app.config.limits.max_page_size).unwrap_or(0);
    match count <= max {
        true => Ok(()),
        false => Err(Error::bad_input("ids", Problem::TooManyIds { max })),
    }
}

/// The rooms among `rooms` that `viewer` is a member of, in two store reads
/// however many there are.
pub async fn visible_rooms(app: &App, viewer: Uuid, rooms: &[Uuid]) -> Result<Vec<RoomRecord>> {
    let joined = joined(app, viewer, rooms).await?;
    app.store.rooms_by_identities(&joined).await
}

/// The rooms among `rooms` that `viewer` is a member of, in one store read.
async fn joined(app: &App, viewer: Uuid, rooms: &[Uuid]) -> Result<Vec<Uuid>> {
    Ok(app
        .store
        .memberships(viewer, rooms)
        .await?
        .into_iter()
        .map(|member| member.room_identity)
        .collect())
}

/// The messages among `messages` of rooms `viewer` is a member of now, in
/// two store reads however many there are. A deleted one is its tombstone.
pub async fn visible_messages(
    app: &App,
    viewer: Uuid,
    messages: &[Uuid],
) -> Result<Vec<MessageRecord>> {
    let found = app.store.messages_by_identities(messages).await?;
    let mut rooms: Vec<Uuid> = found.iter().map(|message| message.room_identity).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let joined = joined(app, viewer, &rooms).await?;
    Ok(found
        .into_iter()
        .filter(|message| joined.contains(&message.room_identity))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_object_and_reads_back_as_it() {
        let identity = Uuid::new_v4();
        for node in [
            NodeId::User(identity),
            NodeId::Room(identity),
            NodeId::Message(identity),
        ] {
            assert_eq!(NodeId::parse(&node.encode()), Some(node));
        }
        assert_eq!(
            URL_SAFE_NO_PAD.decode(NodeId::Room(identity).encode()).ok(),
            Some(format!("Room:{identity}").into_bytes())
        );
    }

    #[test]
    fn ids_this_server_does_not_give_out_name_nothing() {
        let identity = Uuid::new_v4();
        let encode = |text: String| URL_SAFE_NO_PAD.encode(text);
        let upper = identity.to_string().to_uppercase();
        for id in [
            String::new(),
            "not base64!".into(),
            identity.to_string(),
            encode(format!("Lobby:{identity}")),
            encode(format!("user:{identity}")),
            encode("Room:".into()),
            encode("Room:42".into()),
            encode(format!("Room:{upper}")),
            encode(format!("Room:{}", identity.simple())),
            format!("{}=", NodeId::Room(identity).encode()),
        ] {
            assert_eq!(NodeId::parse(&id), None, "{id:?}");
        }
    }
}
