//! A room's timeline in version 2: changes to messages (edits, deletions,
//! reactions), roles and room settings, read positions, typing, and the
//! `roomEvents` subscription that carries all of them.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, Result, Subscription, Union};
use futures_util::{StreamExt, stream::BoxStream};

use super::{
    ContextExt,
    types::{MemberRole, Membership, Message, Room, User, load_user},
    writer,
};
use crate::{
    broker::{MessageEvent, TypingEvent},
    chat::{
        delivery::{self, RoomEvent as Event},
        messages, rooms, timeline, typing,
    },
    metrics::Feed,
    rate_limit::Action,
    store::{
        DepartureRecord, MemberChange, MemberRecord, MessageChange, MessageRecord, RoomRecord,
        Stored,
    },
};

#[derive(InputObject)]
pub struct UpdateRoomInput {
    name: Option<String>,
    info: Option<String>,
}

#[derive(Default)]
pub struct TimelineQuery;

#[Object]
impl TimelineQuery {
    /// A message the viewer may read (null otherwise).
    async fn message(&self, ctx: &Context<'_>, identity: ID) -> Result<Option<Message>> {
        let message = timeline::visible_message(ctx.app(), ctx.viewer()?, &identity).await?;
        Ok(message.map(Message::stored))
    }
}

#[derive(Default)]
pub struct TimelineMutation;

#[Object]
impl TimelineMutation {
    /// Replace the content of one's own message.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        message_identity: ID,
        content: String,
    ) -> Result<Message> {
        let viewer = writer(ctx, Action::SendMessage).await?;
        let message = timeline::edit(ctx.app(), viewer, &message_identity, &content).await?;
        Ok(Message::stored(message))
    }

    /// Delete a message: one's own, or any in a GROUP room where the viewer
    /// is OWNER or ADMIN. Deleting a deleted message returns it unchanged.
    async fn delete_message(&self, ctx: &Context<'_>, message_identity: ID) -> Result<Message> {
        let viewer = writer(ctx, Action::SendMessage).await?;
        let message = timeline::delete(ctx.app(), viewer, &message_identity).await?;
        Ok(Message::stored(message))
    }

    /// React to a message; reacting twice with the same emoji changes nothing.
    async fn add_reaction(
        &self,
        ctx: &Context<'_>,
        message_identity: ID,
        emoji: String,
    ) -> Result<Message> {
        let viewer = writer(ctx, Action::SendMessage).await?;
        let message = timeline::react(ctx.app(), viewer, &message_identity, &emoji, true).await?;
        Ok(Message::stored(message))
    }

    async fn remove_reaction(
        &self,
        ctx: &Context<'_>,
        message_identity: ID,
        emoji: String,
    ) -> Result<Message> {
        let viewer = writer(ctx, Action::SendMessage).await?;
        let message = timeline::react(ctx.app(), viewer, &message_identity, &emoji, false).await?;
        Ok(Message::stored(message))
    }

    /// Tell the room the viewer is typing (true) or stopped (false). It lapses
    /// by itself 6 seconds after the last true.
    async fn set_typing(&self, ctx: &Context<'_>, room_identity: ID, typing: bool) -> Result<bool> {
        let viewer = writer(ctx, Action::Write).await?;
        Ok(typing::set_typing(ctx.app(), viewer, &room_identity, typing).await?)
    }

    /// Rename a GROUP room or change its info: OWNER or ADMIN.
    async fn update_room(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        input: UpdateRoomInput,
    ) -> Result<Room> {
        let viewer = writer(ctx, Action::Write).await?;
        let room = rooms::update_room(
            ctx.app(),
            viewer,
            &room_identity,
            input.name.as_deref(),
            input.info.as_deref(),
        )
        .await?;
        Ok(Room(room))
    }

    /// Remove a member from a GROUP room: the OWNER removes anyone, an ADMIN
    /// only MEMBERs.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        username: String,
    ) -> Result<Room> {
        let viewer = writer(ctx, Action::Write).await?;
        let room = rooms::remove_member(ctx.app(), viewer, &room_identity, &username).await?;
        Ok(Room(room))
    }

    /// Only the OWNER: make a member ADMIN or MEMBER, or hand the room over
    /// with OWNER (the old owner becomes ADMIN).
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        username: String,
        role: MemberRole,
    ) -> Result<Room> {
        let viewer = writer(ctx, Action::Write).await?;
        let room =
            rooms::set_member_role(ctx.app(), viewer, &room_identity, &username, role.into())
                .await?;
        Ok(Room(room))
    }
}

/// A message was sent to the room.
pub struct MessagePosted(Arc<MessageEvent>);

#[Object]
impl MessagePosted {
    async fn cursor(&self) -> String {
        let message = &self.0.message;
        messages::encode_cursor(message.room_identity, message.seq)
    }

    async fn message(&self) -> Message {
        Message::from(self.0.clone())
    }
}

/// A change of a message: what it carries is the same for each kind.
macro_rules! message_change {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name {
            cursor: String,
            message: MessageRecord,
        }

        #[Object]
        impl $name {
            async fn cursor(&self) -> &str {
                &self.cursor
            }

            async fn message(&self) -> Message {
                Message::stored(self.message.clone())
            }
        }
    };
}

message_change!(MessageEdited, "A message's content was edited.");
message_change!(MessageDeleted, "A message was deleted.");
message_change!(ReactionsChanged, "A message's reactions changed.");

/// A change of a membership: what it carries is the same for each kind.
macro_rules! member_change {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name {
            cursor: String,
            member: MemberRecord,
        }

        #[Object]
        impl $name {
            async fn cursor(&self) -> &str {
                &self.cursor
            }

            async fn membership(&self) -> Membership {
                Membership(self.member.clone())
            }
        }
    };
}

member_change!(MemberJoined, "Someone joined (was added to) the room.");
member_change!(
    MemberRoleChanged,
    "A member's role changed (ownership handed over included)."
);
member_change!(ReadReceipt, "A member's read position moved forward.");

/// Someone left or was removed from the room.
pub struct MemberLeft {
    cursor: String,
    departure: DepartureRecord,
}

#[Object]
impl MemberLeft {
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.departure.user_identity).await
    }

    /// Who removed them; null if they left.
    async fn removed_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.departure.removed_by {
            Some(by) => load_user(ctx, by).await.map(Some),
            None => Ok(None),
        }
    }
}

/// The room's name or info changed.
pub struct RoomUpdated {
    cursor: String,
    room: RoomRecord,
}

#[Object]
impl RoomUpdated {
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    async fn room(&self) -> Room {
        Room(self.room.clone())
    }
}

/// A member started or stopped typing. Live only: never stored or replayed.
pub struct Typing(Arc<TypingEvent>);

#[Object]
impl Typing {
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.user).await
    }

    async fn typing(&self) -> bool {
        self.0.typing
    }
}

#[derive(Union)]
pub enum RoomEvent {
    MessagePosted(MessagePosted),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    ReactionsChanged(ReactionsChanged),
    MemberJoined(MemberJoined),
    MemberLeft(MemberLeft),
    MemberRoleChanged(MemberRoleChanged),
    RoomUpdated(RoomUpdated),
    ReadReceipt(ReadReceipt),
    Typing(Typing),
}

impl From<Event> for RoomEvent {
    fn from(event: Event) -> Self {
        let change = match event {
            Event::Posted(posted) => return RoomEvent::MessagePosted(MessagePosted(posted)),
            Event::Typing(typing) => return RoomEvent::Typing(Typing(typing)),
            Event::Changed(change) => Arc::unwrap_or_clone(change),
        };
        let rev = change.change.rev();
        let cursor = |room| messages::encode_event_cursor(room, rev);
        match change.change {
            Stored::Message(message) => {
                let cursor = cursor(message.room_identity);
                match message.change {
                    MessageChange::Deleted => {
                        RoomEvent::MessageDeleted(MessageDeleted { cursor, message })
                    }
                    MessageChange::Reactions => {
                        RoomEvent::ReactionsChanged(ReactionsChanged { cursor, message })
                    }
                    MessageChange::Edited | MessageChange::Posted => {
                        RoomEvent::MessageEdited(MessageEdited { cursor, message })
                    }
                }
            }
            Stored::Member(member) => {
                let cursor = cursor(member.room_identity);
                match (change.fresh, member.change) {
                    (true, _) | (false, MemberChange::Joined) => {
                        RoomEvent::MemberJoined(MemberJoined { cursor, member })
                    }
                    (false, MemberChange::Role) => {
                        RoomEvent::MemberRoleChanged(MemberRoleChanged { cursor, member })
                    }
                    (false, MemberChange::Read) => {
                        RoomEvent::ReadReceipt(ReadReceipt { cursor, member })
                    }
                }
            }
            Stored::Departure(departure) => RoomEvent::MemberLeft(MemberLeft {
                cursor: cursor(departure.room_identity),
                departure,
            }),
            Stored::Room(room) => RoomEvent::RoomUpdated(RoomUpdated {
                cursor: cursor(room.identity),
                room,
            }),
        }
    }
}

#[derive(Default)]
pub struct TimelineSubscription;

#[Subscription]
impl TimelineSubscription {
    /// Every change in one room the viewer belongs to, in the order the server
    /// made them. With `after` (the cursor of an event, or of a message) it
    /// first replays the stored changes newer than it, then goes on live: each
    /// exactly once, in cursor order. A replay may fold several changes of one
    /// message into one event that carries its current state. Typing is live
    /// only.
    async fn room_events(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<RoomEvent>>> {
        let stream = delivery::room_events(
            ctx.app().clone(),
            ctx.viewer()?,
            &room_identity,
            after.as_deref(),
        )
        .await?;
        let live = ctx.app().metrics.subscription_started(Feed::RoomEvents);
        Ok(stream
            .map(move |item| {
                if item.is_ok() {
                    live.delivered();
                }
                item.map(RoomEvent::from).map_err(Into::into)
            })
            .boxed())
    }
}
