//! Relay's global object identification: the `Node` interface, and `node`
//! and `nodes`, which refetch a user, a room or a message by its `id`
//! (`chat::nodes` says what an id is and who sees what by it).

use async_graphql::{Context, ID, Object, Result};
use futures_util::future::try_join_all;

use super::{
    ContextExt, cost,
    loaders::{UserKey, VisibleMessage, VisibleRoom},
    types::{Message, Node, Room, User, loader},
};
use crate::chat::nodes::{self, NodeId};

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this id when the viewer may see it, by the rules of
    /// `userProfile`, `room` and `message`; null otherwise. An id this server
    /// did not give out (malformed, of an unknown type) is null too, not
    /// BAD_USER_INPUT: as `room` and `message` answer an identity that
    /// cannot exist, and so that a client's stale or foreign id reads as
    /// "gone", as Relay expects.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        ctx.viewer()?;
        visible(ctx, &id).await
    }

    /// The objects with these ids, in their order, each as `node` gives it.
    /// At most as many ids as a page of history holds (100): more is
    /// BAD_USER_INPUT, field `ids`.
    #[graphql(complexity = "cost::each(ids.len(), child_complexity)")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        ctx.viewer()?;
        nodes::check_count(ctx.app(), ids.len())?;
        try_join_all(ids.iter().map(|id| visible(ctx, id))).await
    }
}

/// What `id` names, as the viewer may see it, through the request's loader:
/// the ids of one request are read together, a batch per kind of object.
async fn visible(ctx: &Context<'_>, id: &str) -> Result<Option<Node>> {
    let loader = loader(ctx);
    Ok(match NodeId::parse(id) {
        None => None,
        Some(NodeId::User(user)) => loader
            .load_one(UserKey(user))
            .await?
            .map(|user| Node::User(User::new(user))),
        Some(NodeId::Room(room)) => loader
            .load_one(VisibleRoom(room))
            .await?
            .map(|room| Node::Room(Room(room))),
        Some(NodeId::Message(message)) => loader
            .load_one(VisibleMessage(message))
            .await?
            .map(|message| Node::Message(Message::stored(message))),
    })
}
