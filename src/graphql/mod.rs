//! The GraphQL schema: assembly, limits, and the bridge from domain errors to
//! API.md's codes. It knows nothing of transports: `http` serves it over
//! HTTP, `live` over WebSockets.

mod accounts;
pub mod cost;
mod documents;
mod errors;
mod loaders;
mod messages;
mod node;
mod nulls;
mod people;
pub mod persisted;
mod rendering;
mod rooms;
mod search;
mod social;
mod timeline;
mod types;

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, MergedObject, MergedSubscription, ObjectType, Schema, SchemaBuilder,
    SubscriptionType, ValidationMode,
};

use uuid::Uuid;

use crate::{
    app::App,
    auth::{Credentials, Grant, Viewer},
    error::Result,
    rate_limit::Action,
};

pub use documents::{document, operation_of, operation_type, parsed};
pub use errors::{error_response, finish};
pub use loaders::loader;
pub use nulls::{Executed, mend_with};
pub use rendering::{Rendered, RenderingSchema, RenderingSubscription};

#[derive(MergedObject, Default)]
pub struct Query(
    accounts::AccountQuery,
    social::SocialQuery,
    people::PeopleQuery,
    rooms::RoomQuery,
    messages::MessageQuery,
    timeline::TimelineQuery,
    search::SearchQuery,
    node::NodeQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    social::SocialMutation,
    people::PeopleMutation,
    rooms::RoomMutation,
    messages::MessageMutation,
    timeline::TimelineMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    messages::MessageSubscription,
    timeline::TimelineSubscription,
    people::PeopleSubscription,
);

pub type ChatSchema = Schema<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

/// The schemas the transports run, set up with the app's services and limits.
#[derive(Clone)]
pub struct Schemas {
    /// Runs every request.
    pub serving: ChatSchema,
    /// Checks a shared subscription's document and variables once, when it
    /// starts ([`RenderingSchema`]), by the rules `serving` applies.
    pub checking: RenderingSchema,
    /// Renders each message for a shared subscription that `checking`
    /// passed: it checks only the depth and complexity limits again, and not
    /// the rules a document that passed once cannot break. Validation was
    /// the larger part of a render (docs/perf.md).
    pub rendering: RenderingSchema,
}

pub fn schemas(app: &Arc<App>) -> Schemas {
    let rendering = || Schema::build(Query::default(), EmptyMutation, RenderingSubscription);
    Schemas {
        serving: configured(builder(), app, ValidationMode::Strict),
        checking: configured(rendering(), app, ValidationMode::Strict),
        rendering: configured(rendering(), app, ValidationMode::Fast),
    }
}

/// A schema with the app in its data and the configured limits.
fn configured<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    app: &Arc<App>,
    mode: ValidationMode,
) -> Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let limits = &app.config.limits;
    let builder = builder
        .data(app.clone())
        .validation_mode(mode)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    match app.config.introspection {
        true => builder.finish(),
        false => builder.disable_introspection().finish(),
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

    /// What the viewer's token grants, or `UNAUTHENTICATED`.
    fn grant(&self) -> Result<&Grant> {
        match self.credentials() {
            Credentials::Valid(_, grant) => Ok(grant),
            _ => Err(crate::error::Error::Unauthenticated),
        }
    }

    fn client_address(&self) -> std::net::IpAddr;

    /// The language the client reads, from its `Accept-Language`.
    fn lang(&self) -> crate::error::Lang;
}

impl ContextExt for Context<'_> {
    fn app(&self) -> &Arc<App> {
        self.data_unchecked::<Arc<App>>()
    }

    fn client_address(&self) -> std::net::IpAddr {
        self.data_opt::<ClientAddress>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |client| client.0)
    }

    fn lang(&self) -> crate::error::Lang {
        self.data_opt::<crate::error::Lang>()
            .copied()
            .unwrap_or_default()
    }

    fn credentials(&self) -> &Credentials {
        static ANONYMOUS: Credentials = Credentials::Anonymous;
        self.data_opt::<Credentials>().unwrap_or(&ANONYMOUS)
    }
}

/// `RATE_LIMITED` when `action`, or one more mutation from the client's
/// address, is over its rate: every mutation passes here (or through
/// [`writer`]) once per field, so aliases and batches count one each.
async fn limited(ctx: &Context<'_>, action: Action) -> Result<()> {
    let limiter = &ctx.app().limiter;
    limiter
        .check(Action::WriteFrom(ctx.client_address()))
        .await?;
    limiter.check(action).await
}

/// The signed-in viewer, once `action` (per user) and the client's address
/// are within their rates.
async fn writer<'c>(ctx: &'c Context<'_>, action: fn(Uuid) -> Action) -> Result<&'c Viewer> {
    let viewer = ctx.viewer()?;
    limited(ctx, action(viewer.identity)).await?;
    Ok(viewer)
}
