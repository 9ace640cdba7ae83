//! Rooms: listing, groups, reading positions.

use async_graphql::{Context, ID, InputObject, Object, Result};

use super::{ContextExt, types::Room, writer};
use crate::{chat::rooms, rate_limit::Action};

#[derive(InputObject)]
pub struct CreateGroupInput {
    name: String,
    #[graphql(default_with = "Some(String::new())")]
    info: Option<String>,
    /// Usernames to add besides the creator.
    #[graphql(default_with = "Some(Vec::new())")]
    members: Option<Vec<String>>,
}

#[derive(Default)]
pub struct RoomQuery;

#[Object]
impl RoomQuery {
    /// The viewer's rooms, most recent activity first.
    async fn rooms(&self, ctx: &Context<'_>) -> Result<Vec<Room>> {
        let rooms = rooms::rooms(ctx.app(), ctx.viewer()?).await?;
        Ok(rooms.into_iter().map(Room).collect())
    }

    /// A room the viewer belongs to; null if none such.
    async fn room(&self, ctx: &Context<'_>, identity: ID) -> Result<Option<Room>> {
        let room = rooms::visible_room(ctx.app(), ctx.viewer()?, &identity).await?;
        Ok(room.map(Room))
    }
}

#[derive(Default)]
pub struct RoomMutation;

#[Object]
impl RoomMutation {
    async fn create_group(&self, ctx: &Context<'_>, input: CreateGroupInput) -> Result<Room> {
        let room = rooms::create_group(
            ctx.app(),
            writer(ctx, Action::Write).await?,
            &input.name,
            input.info.as_deref().unwrap_or_default(),
            &input.members.unwrap_or_default(),
        )
        .await?;
        Ok(Room(room))
    }

    /// Add users to a GROUP room; any member may add.
    async fn add_members(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        usernames: Vec<String>,
    ) -> Result<Room> {
        let room = rooms::add_members(
            ctx.app(),
            writer(ctx, Action::Write).await?,
            &room_identity,
            &usernames,
        )
        .await?;
        Ok(Room(room))
    }

    /// Leave a GROUP room.
    async fn leave_room(&self, ctx: &Context<'_>, room_identity: ID) -> Result<bool> {
        Ok(rooms::leave_room(ctx.app(), writer(ctx, Action::Write).await?, &room_identity).await?)
    }

    /// Mark the room read for the viewer: up to the message `upTo` names,
    /// else everything. A read position never moves back.
    async fn mark_room_read(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        up_to: Option<String>,
    ) -> Result<Room> {
        let viewer = writer(ctx, Action::Write).await?;
        let room = rooms::mark_read(ctx.app(), viewer, &room_identity, up_to.as_deref()).await?;
        Ok(Room(room))
    }
}
