//! The GraphQL schema: assembly, limits, and the bridge from domain errors to
//! API.md's codes. It knows nothing of HTTP; `http` only serves it.

mod accounts;
mod errors;
mod types;

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::{
    app::App,
    auth::{Credentials, Viewer},
    config::Config,
    error::Result,
};

pub use errors::{Localized, finish};

#[derive(MergedObject, Default)]
pub struct Query(accounts::AccountQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(accounts::AccountMutation);

pub type ChatSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
}

/// The schema serving requests, with the app's services and limits.
pub fn schema(app: Arc<App>, config: &Config) -> ChatSchema {
    builder()
        .data(app)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .finish()
}

/// The SDL of the schema: what `print-schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// What every resolver reads from its context.
trait ContextExt {
    fn app(&self) -> &App;
    fn credentials(&self) -> &Credentials;

    /// The signed-in viewer, or `UNAUTHENTICATED`.
    fn viewer(&self) -> Result<&Viewer> {
        self.credentials().viewer()
    }
}

impl ContextExt for Context<'_> {
    fn app(&self) -> &App {
        self.data_unchecked::<Arc<App>>()
    }

    fn credentials(&self) -> &Credentials {
        static ANONYMOUS: Credentials = Credentials::Anonymous;
        self.data_opt::<Credentials>().unwrap_or(&ANONYMOUS)
    }
}
