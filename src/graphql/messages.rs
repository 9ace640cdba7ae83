//! History, sending, and the live subscriptions.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, Subscription};
use futures_util::{Stream, StreamExt, stream::BoxStream};

use super::{
    ContextExt, cost,
    types::{LobbyMessage, Message, MessageConnection},
    writer,
};
use crate::{
    broker::MessageEvent,
    chat::{
        delivery,
        messages::{self, PageRequest},
    },
    error,
    metrics::{Feed, LiveSubscription},
    rate_limit::Action,
};

#[derive(Default)]
pub struct MessageQuery;

#[Object]
impl MessageQuery {
    /// Chat history of a room the viewer belongs to. `last`/`before` page
    /// backwards from the newest; `first`/`after` forwards. Default: last 50.
    #[graphql(complexity = "cost::page(first, last, messages::DEFAULT_PAGE, child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        let request = PageRequest {
            first,
            after,
            last,
            before,
        };
        let page = messages::history(ctx.app(), ctx.viewer()?, &room_identity, request).await?;
        Ok(MessageConnection::history(page))
    }
}

#[derive(Default)]
pub struct MessageMutation;

#[Object]
impl MessageMutation {
    /// Persist a message, then deliver it to the room's subscribers. With a
    /// clientId, a retry of the same (sender, room, clientId) returns the first
    /// message instead of storing a duplicate.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        content: String,
        client_id: Option<String>,
        reply_to: Option<ID>,
    ) -> Result<Message> {
        let event = messages::send(
            ctx.app(),
            writer(ctx, Action::SendMessage).await?,
            &room_identity,
            &content,
            client_id.as_deref(),
            reply_to.as_ref().map(|id| id.as_str()),
        )
        .await?;
        Ok(Message::from(event))
    }

    /// Broadcast to every lobby subscriber.
    async fn send_lobby_message(&self, ctx: &Context<'_>, content: String) -> Result<LobbyMessage> {
        let event =
            messages::send_to_lobby(ctx.app(), writer(ctx, Action::SendMessage).await?, &content)
                .await?;
        Ok(LobbyMessage(event))
    }
}

#[derive(Default)]
pub struct MessageSubscription;

#[Subscription]
impl MessageSubscription {
    /// Messages of one room the viewer belongs to. With `after` (a cursor), it
    /// first replays every stored message newer than the cursor, oldest first,
    /// then continues live: no gap and no duplicate.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        room_identity: ID,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<Message>>> {
        let stream = delivery::room_messages(
            ctx.app().clone(),
            ctx.viewer()?,
            &room_identity,
            after.as_deref(),
        )
        .await?;
        let live = ctx.app().metrics.subscription_started(Feed::Messages);
        Ok(counted(live, stream).boxed())
    }

    /// Every new message in any room the viewer belongs to.
    async fn inbox(&self, ctx: &Context<'_>) -> Result<BoxStream<'static, Result<Message>>> {
        let stream = delivery::inbox(ctx.app().clone(), ctx.viewer()?).await?;
        let live = ctx.app().metrics.subscription_started(Feed::Inbox);
        Ok(counted(live, stream).boxed())
    }

    /// The server-wide lobby channel.
    async fn lobby(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = LobbyMessage> + use<>> {
        ctx.viewer()?;
        let stream = delivery::lobby(ctx.app()).await?;
        let live = ctx.app().metrics.subscription_started(Feed::Lobby);
        Ok(stream.map(move |event| {
            live.delivered();
            LobbyMessage(event)
        }))
    }
}

/// The messages of a room feed as the schema sends them. `live` moves into
/// the stream, so the subscription counts as running exactly as long as
/// async-graphql keeps the stream.
fn counted(
    live: LiveSubscription,
    stream: impl Stream<Item = error::Result<Arc<MessageEvent>>>,
) -> impl Stream<Item = Result<Message>> {
    stream.map(move |item| {
        if item.is_ok() {
            live.delivered();
        }
        item.map(Message::from).map_err(Into::into)
    })
}
