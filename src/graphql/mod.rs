//! The GraphQL schema: assembly, limits, and the bridge from domain errors to
//! API.md's codes. It knows nothing of HTTP; `http` only serves it.

mod accounts;
mod documents;
mod errors;
pub mod live;
mod loaders;
mod messages;
mod rooms;
mod social;
mod types;

use std::sync::Arc;

use async_graphql::{
    Context, MergedObject, MergedSubscription, Schema, SchemaBuilder, ValidationMode,
};

use crate::{
    app::App,
    auth::{Credentials, Viewer},
    config::Config,
    error::Result,
};

pub use documents::parsed;
pub use errors::finish;
pub use loaders::loader;

#[derive(MergedObject, Default)]
pub struct Query(
    accounts::AccountQuery,
    social::SocialQuery,
    rooms::RoomQuery,
    messages::MessageQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    social::SocialMutation,
    rooms::RoomMutation,
    messages::MessageMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(messages::MessageSubscription);

pub type ChatSchema = Schema<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

/// The schema, set up twice with the app's services and limits.
#[derive(Clone)]
pub struct Schemas {
    /// Runs every request.
    pub serving: ChatSchema,
    /// Renders messages for shared subscriptions (`live`), whose document
    /// and variables `serving` validated when the subscription started: it
    /// checks only the depth and complexity limits again, and not the rules
    /// a document that passed once cannot break. Validation was the larger
    /// part of a render (docs/perf.md).
    pub rendering: ChatSchema,
}

pub fn schemas(app: Arc<App>, config: &Config) -> Schemas {
    let schema = |mode| {
        let builder = builder()
            .data(app.clone())
            .validation_mode(mode)
            .limit_depth(config.limits.max_depth)
            .limit_complexity(config.limits.max_complexity);
        match config.introspection {
            true => builder.finish(),
            false => builder.disable_introspection().finish(),
        }
    };
    Schemas {
        serving: schema(ValidationMode::Strict),
        rendering: schema(ValidationMode::Fast),
    }
}

/// The SDL of the schema: what `print-schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The address a request or socket comes from, for per-address limits.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

/// What every resolver reads from its context.
trait ContextExt {
    fn app(&self) -> &Arc<App>;
    fn credentials(&self) -> &Credentials;

    /// The signed-in viewer, or `UNAUTHENTICATED`.
    fn viewer(&self) -> Result<&Viewer> {
        self.credentials().viewer()
    }

    fn client_address(&self) -> std::net::IpAddr;
}

impl ContextExt for Context<'_> {
    fn app(&self) -> &Arc<App> {
        self.data_unchecked::<Arc<App>>()
    }

    fn client_address(&self) -> std::net::IpAddr {
        self.data_opt::<ClientAddress>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |client| client.0)
    }

    fn credentials(&self) -> &Credentials {
        static ANONYMOUS: Credentials = Credentials::Anonymous;
        self.data_opt::<Credentials>().unwrap_or(&ANONYMOUS)
    }
}
