//! Blocking and presence.

use async_graphql::{Context, Object, Result, Subscription};
use futures_util::{Stream, StreamExt};

use super::{
    ContextExt,
    types::{Presence, User, load_user},
    writer,
};
use crate::{
    chat::{blocking, presence},
    rate_limit::Action,
};

#[derive(Default)]
pub struct PeopleQuery;

#[Object]
impl PeopleQuery {
    /// Users the viewer has blocked, by username.
    async fn blocked_users(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let users = blocking::blocked_users(ctx.app(), ctx.viewer()?).await?;
        Ok(users.into_iter().map(User::new).collect())
    }
}

#[derive(Default)]
pub struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Block a user; false if already blocked.
    async fn block_user(&self, ctx: &Context<'_>, username: String) -> Result<bool> {
        let viewer = writer(ctx, Action::Write).await?;
        Ok(blocking::block(ctx.app(), viewer, &username).await?)
    }

    /// False if not blocked.
    async fn unblock_user(&self, ctx: &Context<'_>, username: String) -> Result<bool> {
        let viewer = writer(ctx, Action::Write).await?;
        Ok(blocking::unblock(ctx.app(), viewer, &username).await?)
    }
}

/// A user came online or went.
pub struct PresenceChange(presence::Change);

#[Object]
impl PresenceChange {
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.user).await
    }

    async fn presence(&self) -> Presence {
        Presence(self.0.status)
    }
}

#[derive(Default)]
pub struct PeopleSubscription;

#[Subscription]
impl PeopleSubscription {
    /// Presence changes of the viewer's friends and of the members of the
    /// viewer's rooms.
    async fn presence(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = PresenceChange> + use<>> {
        let changes = presence::changes(ctx.app().clone(), ctx.viewer()?).await?;
        Ok(changes.map(PresenceChange))
    }
}
