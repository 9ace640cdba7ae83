//! The schema a shared subscription's payload is rendered with.
//!
//! async-graphql executes a subscription's selection for every subscriber
//! and every message. A transport that shares payloads (`live`) instead has
//! each message executed once per document and variables, by this schema:
//! its subscription root has the serving schema's `messages`, `inbox` and
//! `roomEvents` fields, with the same arguments and types (a test holds them
//! equal), but each yields the one event it is given, or nothing, and never
//! subscribes; what an event does not carry (the user a membership or a
//! typing event names, the message a reply answers) is read through the
//! request's loader, once per render. Every type below the root is the
//! serving schema's own, so a payload rendered here is the one the serving
//! schema would have sent.

use std::sync::Arc;

use async_graphql::{Context, EmptyMutation, ID, Schema, Subscription};
use futures_util::{Stream, stream};

use super::{Query, timeline::RoomEvent, types::Message};
use crate::{broker::MessageEvent, chat::delivery};

/// The event a render executes on, in the request's data. Without one, a
/// request only runs the schema's checks: it has no response unless they fail.
pub enum Rendered {
    /// For `messages` and `inbox`.
    Message(Arc<MessageEvent>),
    /// For `roomEvents`.
    Room(delivery::RoomEvent),
}

/// The subscription root of [`RenderingSchema`].
pub struct RenderingSubscription;

#[Subscription(name = "Subscription")]
impl RenderingSubscription {
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "roomIdentity")] _room_identity: ID,
        #[graphql(name = "after")] _after: Option<String>,
    ) -> impl Stream<Item = Message> + use<> {
        rendered(ctx)
    }

    async fn inbox(&self, ctx: &Context<'_>) -> impl Stream<Item = Message> + use<> {
        rendered(ctx)
    }

    async fn room_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "roomIdentity")] _room_identity: ID,
        #[graphql(name = "after")] _after: Option<String>,
    ) -> impl Stream<Item = RoomEvent> + use<> {
        let event = match ctx.data_opt::<Rendered>() {
            Some(Rendered::Room(event)) => Some(RoomEvent::from(event.clone())),
            _ => None,
        };
        stream::iter(event)
    }
}

/// The request's message as the one message of its stream; none without one.
fn rendered(ctx: &Context<'_>) -> impl Stream<Item = Message> + use<> {
    let event = match ctx.data_opt::<Rendered>() {
        Some(Rendered::Message(event)) => Some(Message::from(event.clone())),
        _ => None,
    };
    stream::iter(event)
}

pub type RenderingSchema = Schema<Query, EmptyMutation, RenderingSubscription>;

#[cfg(test)]
mod tests {
    use async_graphql::parser::{
        parse_schema,
        types::{FieldDefinition, TypeKind, TypeSystemDefinition},
    };

    use super::*;

    /// The fields of the `Subscription` type of `sdl`, each as its name,
    /// its arguments with their types, and its type.
    fn subscription_fields(sdl: &str) -> Vec<String> {
        let document = parse_schema(sdl).expect("a valid SDL");
        let signature = |field: &FieldDefinition| {
            let arguments: Vec<String> = (field.arguments.iter())
                .map(|argument| format!("{}: {}", argument.node.name.node, argument.node.ty.node))
                .collect();
            format!(
                "{}({}): {}",
                field.name.node,
                arguments.join(", "),
                field.ty.node
            )
        };
        document
            .definitions
            .iter()
            .find_map(|definition| match definition {
                TypeSystemDefinition::Type(ty) if ty.node.name.node == "Subscription" => {
                    match &ty.node.kind {
                        TypeKind::Object(object) => Some(
                            object
                                .fields
                                .iter()
                                .map(|field| signature(&field.node))
                                .collect(),
                        ),
                        _ => None,
                    }
                }
                _ => None,
            })
            .expect("a Subscription type")
    }

    #[test]
    fn every_rendered_field_has_the_serving_fields_arguments_and_type() {
        let serving = subscription_fields(&super::super::sdl());
        let rendering = subscription_fields(
            &RenderingSchema::build(Query::default(), EmptyMutation, RenderingSubscription)
                .finish()
                .sdl(),
        );
        assert_eq!(rendering.len(), 3, "{rendering:?}");
        for field in &rendering {
            assert!(
                serving.contains(field),
                "{field} is not served as {serving:?}"
            );
        }
    }
}
