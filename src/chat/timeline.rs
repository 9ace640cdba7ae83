//! Changes to messages already sent: edits, deletions and reactions (API.md,
//! "Who may do what"), each stored with the room's next revision and then
//! announced to the room as a change.
//!
//! The rules are closures the store runs inside its transaction, on the
//! message, the room and the actor's membership as they are then, so a
//! concurrent change (a role taken away, the message deleted) cannot slip
//! between the check and the write.

use std::sync::Arc;

use uuid::Uuid;

use super::{blocking, values::Content};
use crate::{
    app::App,
    auth::Viewer,
    broker::{ChangeEvent, Event, Topic},
    error::{Entity, Error, Problem, Result},
    store::{
        MessageChange, MessageRecord, MessageRule, MessageScene, ReactionRecord, Role, RoomType,
        Stored, now,
    },
};

/// How many distinct emoji one message carries at most.
pub const MAX_REACTIONS: usize = 20;

/// A message identity from the client; one that cannot exist is not found.
pub fn parse_message(identity: &str) -> Result<Uuid> {
    Uuid::parse_str(identity).map_err(|_| Error::NotFound(Entity::Message))
}

/// One fully-qualified RGI emoji sequence (skin tones and ZWJ sequences
/// included), as Unicode's emoji-test.txt lists them; `BAD_USER_INPUT` on
/// `emoji` for anything else, such as `♥` without its variation selector.
pub fn parse_emoji(emoji: &str) -> Result<String> {
    match emojis::get(emoji) {
        Some(found) if found.as_str() == emoji => Ok(emoji.to_owned()),
        _ => Err(Error::bad_input("emoji", Problem::Emoji)),
    }
}

/// Publishes a stored change on its room's topic.
pub async fn announce(app: &App, room: Uuid, change: Stored, fresh: bool) {
    let event = Arc::new(ChangeEvent::new(change, fresh));
    app.broker
        .publish(Topic::Room(room), Event::Change(event))
        .await;
}

/// The actor's membership, or `FORBIDDEN`: every change needs one.
fn member_of(scene: &MessageScene) -> Result<&crate::store::MemberRecord> {
    scene.actor.as_ref().ok_or(Error::Forbidden)
}

/// `CONFLICT` for a change to a deleted message.
fn not_deleted(message: &MessageRecord) -> Result<()> {
    match message.deleted_at {
        Some(_) => Err(Error::Deleted),
        None => Ok(()),
    }
}

/// Stores what `rule` decides for the message and announces it when it
/// changed; the message as it is now.
async fn change(
    app: &Arc<App>,
    viewer: &Viewer,
    message: &str,
    rule: Arc<MessageRule>,
) -> Result<MessageRecord> {
    let identity = parse_message(message)?;
    let (app, actor, writes) = (app.clone(), viewer.identity, &app.writes);
    writes
        .run(async move {
            let (message, changed) = app.store.change_message(identity, actor, rule).await?;
            if changed {
                let room = message.room_identity;
                announce(&app, room, Stored::Message(message.clone()), false).await;
            }
            Ok(message)
        })
        .await
}

/// Replaces the content of one's own message.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn edit(
    app: &Arc<App>,
    viewer: &Viewer,
    message: &str,
    content: &str,
) -> Result<MessageRecord> {
    let content = Content::parse(content, app.config.limits.max_message_chars)?.into_inner();
    let at = now();
    let rule = move |scene: &MessageScene| {
        let actor = member_of(scene)?;
        if scene.message.sender_identity != actor.user_identity {
            return Err(Error::Forbidden);
        }
        not_deleted(&scene.message)?;
        if scene.message.content == content {
            return Ok(None);
        }
        Ok(Some(MessageRecord {
            content: content.clone(),
            edited_at: Some(at),
            change: MessageChange::Edited,
            ..scene.message.clone()
        }))
    };
    change(app, viewer, message, Arc::new(rule)).await
}

/// Deletes a message: one's own, or any in a GROUP room the viewer owns or
/// administers. It keeps its place, with no content and no reactions.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn delete(app: &Arc<App>, viewer: &Viewer, message: &str) -> Result<MessageRecord> {
    let at = now();
    let rule = move |scene: &MessageScene| {
        let actor = member_of(scene)?;
        let moderates = scene.room.room_type == RoomType::Group && actor.role != Role::Member;
        if scene.message.sender_identity != actor.user_identity && !moderates {
            return Err(Error::Forbidden);
        }
        if scene.message.deleted_at.is_some() {
            return Ok(None);
        }
        Ok(Some(MessageRecord {
            content: String::new(),
            deleted_at: Some(at),
            reactions: Vec::new(),
            change: MessageChange::Deleted,
            ..scene.message.clone()
        }))
    };
    change(app, viewer, message, Arc::new(rule)).await
}

/// Adds the viewer's `emoji` to a message (`add`) or takes it away.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn react(
    app: &Arc<App>,
    viewer: &Viewer,
    message: &str,
    emoji: &str,
    add: bool,
) -> Result<MessageRecord> {
    let emoji = parse_emoji(emoji)?;
    if add {
        let identity = parse_message(message)?;
        if let Some(found) = app.store.message(identity).await?
            && let Some(room) = app.store.room(found.room_identity).await?
        {
            blocking::check_speaking(app, &room, viewer.identity).await?;
        }
    }
    let rule = move |scene: &MessageScene| {
        let actor = member_of(scene)?.user_identity;
        not_deleted(&scene.message)?;
        let mut reactions = scene.message.reactions.clone();
        let found = reactions
            .iter()
            .position(|reaction| reaction.emoji == emoji);
        match (add, found) {
            (true, Some(at)) => {
                if reactions[at].users.contains(&actor) {
                    return Ok(None);
                }
                reactions[at].users.push(actor);
            }
            (true, None) => {
                if reactions.len() >= MAX_REACTIONS {
                    let max = MAX_REACTIONS;
                    return Err(Error::bad_input("emoji", Problem::Reactions { max }));
                }
                reactions.push(ReactionRecord {
                    emoji: emoji.clone(),
                    users: vec![actor],
                });
            }
            (false, Some(at)) => {
                let before = reactions[at].users.len();
                reactions[at].users.retain(|user| *user != actor);
                if reactions[at].users.len() == before {
                    return Ok(None);
                }
                if reactions[at].users.is_empty() {
                    reactions.remove(at);
                }
            }
            (false, None) => return Ok(None),
        }
        Ok(Some(MessageRecord {
            reactions,
            change: MessageChange::Reactions,
            ..scene.message.clone()
        }))
    };
    change(app, viewer, message, Arc::new(rule)).await
}

/// A message the viewer may read: one of a room they are in; `None` for
/// any other and for one that does not exist.
pub async fn visible_message(
    app: &App,
    viewer: &Viewer,
    identity: &str,
) -> Result<Option<MessageRecord>> {
    let Ok(identity) = parse_message(identity) else {
        return Ok(None);
    };
    let Some(message) = app.store.message(identity).await? else {
        return Ok(None);
    };
    let member = app
        .store
        .member(message.room_identity, viewer.identity)
        .await?;
    Ok(member.map(|_| message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emoji_is_one_fully_qualified_sequence() {
        for emoji in ["👍", "👍🏽", "❤️", "♥️", "👩🏽‍💻", "🇨🇳", "1️⃣", "©️"]
        {
            assert_eq!(parse_emoji(emoji).ok().as_deref(), Some(emoji), "{emoji}");
        }
        for not_one in ["", "a", "1", "©", "♥", "❤", "👍👍", "🏽", "👍 "] {
            let error = parse_emoji(not_one).unwrap_err();
            assert_eq!(error.field(), Some("emoji"), "{not_one:?}");
        }
    }
}
