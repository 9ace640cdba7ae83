//! Finding messages by their words.

use async_graphql::{Context, ID, Object, Result};

use super::{ContextExt, cost, types::MessageConnection};
use crate::{chat::search, rate_limit::Action};

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Messages containing every word of `query`, in the rooms the viewer
    /// belongs to (or only `roomIdentity`), newest first. Case-insensitive; text
    /// without spaces between words (Chinese, Japanese) matches by characters.
    #[graphql(complexity = "cost::page(first, None, 20, child_complexity)")]
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        room_identity: Option<ID>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<MessageConnection> {
        let viewer = ctx.viewer()?;
        // Counted before any work, like the mutations' rates: each search
        // walks an index over every room the viewer is in.
        ctx.app()
            .limiter
            .check(Action::Search(viewer.identity))
            .await?;
        let page = search::search_messages(
            ctx.app(),
            viewer,
            &query,
            room_identity.as_ref().map(|room| room.as_str()),
            first,
            after.as_deref(),
        )
        .await?;
        Ok(MessageConnection::search(page))
    }
}
