//! Other users and friendship.

use async_graphql::{Context, Object, Result};

use super::{
    ContextExt,
    types::{Room, User, UserProfile},
    writer,
};
use crate::{chat::social, rate_limit::Action};

#[derive(Default)]
pub struct SocialQuery;

#[Object]
impl SocialQuery {
    /// Another user's profile and whether they are the viewer's friend.
    async fn user_profile(&self, ctx: &Context<'_>, username: String) -> Result<UserProfile> {
        Ok(UserProfile(
            social::user_profile(ctx.app(), ctx.viewer()?, &username).await?,
        ))
    }

    /// Users whose username or nickname starts with `query` (case-insensitive).
    #[graphql(complexity = "super::cost::page(first, None, 20, child_complexity)")]
    async fn search_users(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> Result<Vec<User>> {
        let users = social::search_users(ctx.app(), ctx.viewer()?, &query, first).await?;
        Ok(users.into_iter().map(User::new).collect())
    }

    /// The viewer's friends, by username.
    async fn friends(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let users = social::friends(ctx.app(), ctx.viewer()?).await?;
        Ok(users.into_iter().map(User::new).collect())
    }
}

#[derive(Default)]
pub struct SocialMutation;

#[Object]
impl SocialMutation {
    /// Become friends: returns the PRIVATE room of the pair (the existing one
    /// if any). Adding oneself is an error.
    async fn add_friend(&self, ctx: &Context<'_>, username: String) -> Result<Room> {
        Ok(Room(
            social::add_friend(ctx.app(), writer(ctx, Action::Write).await?, &username).await?,
        ))
    }

    /// Stop being friends: the PRIVATE room and its history are deleted.
    /// False if they were not friends.
    async fn remove_friend(&self, ctx: &Context<'_>, username: String) -> Result<bool> {
        Ok(social::remove_friend(ctx.app(), writer(ctx, Action::Write).await?, &username).await?)
    }
}
