//! Running one socket's operations: room and inbox subscriptions rendered
//! once per message instead of once per subscriber, and everything else run
//! through the serving schema.
//!
//! async-graphql runs a subscription's selection for every subscriber and
//! every message, and serializes each result on its own: with a thousand
//! subscribers in a room, a thousand identical executions per message. Here
//! each subscriber still gets its own delivery stream (`chat::delivery`:
//! membership, catch-up, gap filling, its own end), but what a message
//! looks like under a given document and variables is executed once, by
//! the rendering schema (`graphql::RenderingSchema`), serialized once, kept
//! in the event's memo ([`crate::broker::Memo`]) and shared by every
//! subscriber on this instance, which only wraps it in its own frame.
//!
//! A render depends on the event, the request and whether the subscriber
//! sent the message (only the sender sees the sender's `email`), and on
//! nothing else: that is the key. Validation and errors are the serving
//! schema's own rules, so a client cannot tell a shared subscription from
//! one the schema runs for it alone.

use std::{net::IpAddr, sync::Arc};

use async_graphql::{Request, Response, ServerError};
use futures_util::{
    StreamExt,
    future::{self, Either},
    stream::{self, BoxStream},
};

use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::plan::Plan;
use crate::{
    app::App,
    auth::Credentials,
    broker::MessageEvent,
    chat::delivery,
    error::{Error, Lang},
    graphql::{self, ClientAddress, Rendered, RenderingSchema, Schemas},
    metrics::Feed,
};

/// The payloads rendered of one event, one per kind of subscription (named
/// by a [`RenderKey`]), each made by the first subscriber that needs it.
/// Found by the key's hash, computed once per subscription (and not hashed
/// again: the map's hasher is Fx, one multiply); a document's text is
/// compared only with one of the same hash.
#[derive(Default)]
struct Renders(std::sync::Mutex<FxHashMap<Slot, SameHash>>);

/// A render's place: its key's hash, whether by the sender, and the one
/// subscriber it is for when not shared (see [`RenderKey::alone`]).
type Slot = (u64, bool, Option<Uuid>);

/// The renders whose keys share a hash, by their request.
type SameHash = Vec<(Arc<str>, Arc<RenderSlot>)>;

/// One render: empty until the first subscriber that needs it fills it.
type RenderSlot = tokio::sync::OnceCell<Arc<str>>;

/// What a render depends on besides the event.
struct RenderKey {
    /// The subscription's document, variables and operation name.
    request: Arc<str>,
    /// `request`'s hash.
    hash: u64,
    /// Whether the subscriber sent the message: it alone sees the sender's email.
    by_sender: bool,
    /// The subscriber, when the render is theirs alone: a reply shows the
    /// replied message's sender (whose email only they see) and reactions
    /// (`byViewer`), which this key does not tell apart otherwise.
    alone: Option<Uuid>,
}

impl Renders {
    /// The cell holding the render for `key`; callers fill it with
    /// `get_or_init`, so concurrent subscribers wait for one render.
    fn slot(&self, key: &RenderKey) -> Arc<RenderSlot> {
        let mut slots = crate::lock(&self.0);
        let same_hash = slots
            .entry((key.hash, key.by_sender, key.alone))
            .or_default();
        let found = same_hash
            .iter()
            .find(|(request, _)| Arc::ptr_eq(request, &key.request) || **request == *key.request);
        match found {
            Some((_, slot)) => slot.clone(),
            None => {
                let slot = Arc::new(RenderSlot::new());
                same_hash.push((key.request.clone(), slot.clone()));
                slot
            }
        }
    }
}

/// Runs one socket's operations: who is asking, from where, and in which
/// language.
#[derive(Clone)]
pub struct Executor {
    pub app: Arc<App>,
    pub schemas: Schemas,
    pub credentials: Credentials,
    pub client: IpAddr,
    pub lang: Lang,
}

/// The payloads of one operation's `next` frames (serialized GraphQL
/// responses), in order, ending when the operation does; those of a shared
/// subscription are shared with other subscribers.
pub type Payloads = BoxStream<'static, Arc<str>>;

impl Executor {
    /// Runs any operation through the schema, one execution per
    /// subscriber: what `Plan::of` leaves to the schema.
    pub fn execute(&self, request: Request) -> Payloads {
        let request = match self.with_data(request) {
            Ok(request) => request,
            Err(error) => return self.single(graphql::error_response(error)),
        };
        let this = self.clone();
        self.schemas
            .serving
            .execute_stream(request)
            .map(move |response| this.payload(response))
            .boxed()
    }

    /// Starts `plan`. A request the schema refuses, or a subscription that
    /// cannot start (not a member, not signed in), is one payload with the
    /// errors, as [`Executor::execute`] would send it.
    pub fn start(self, plan: Plan) -> Payloads {
        // Boxed: starting takes a large future, which would otherwise keep
        // its room in the stream for as long as the subscription lives.
        stream::once(Box::pin(self.started(plan))).flatten().boxed()
    }

    async fn started(self, plan: Plan) -> Payloads {
        let plan = Arc::new(plan);
        if let Some(refused) = self.first(&plan, &self.schemas.checking, None).await {
            return self.single(refused);
        }
        let started = match self.credentials.viewer() {
            Err(error) => Err(error),
            Ok(viewer) => match plan.feed {
                Feed::Inbox => delivery::inbox(self.app.clone(), viewer).await,
                _ => {
                    let room = plan.room.as_deref().unwrap_or_default();
                    delivery::room_messages(self.app.clone(), viewer, room, plan.after.as_deref())
                        .await
                }
            },
        };
        let events = match started {
            Ok(events) => events,
            Err(error) => return self.single(graphql::error_response(error)),
        };
        let live = self.app.metrics.subscription_started(plan.feed);
        let viewer = self.credentials.viewer().ok().map(|viewer| viewer.identity);
        events
            .then(move |item| match item {
                Ok(event) => {
                    let key = RenderKey {
                        request: plan.key.clone(),
                        hash: plan.hash,
                        by_sender: viewer == Some(event.sender.identity),
                        alone: event.message.reply_to.and(viewer),
                    };
                    // An event whose memo holds something else is rendered
                    // for this subscriber alone.
                    let slot = match event.memo.get_or_init(Renders::default) {
                        Some(renders) => renders.slot(&key),
                        None => Arc::new(RenderSlot::new()),
                    };
                    match slot.get() {
                        // What almost every delivery finds: no future, no allocation.
                        Some(payload) => Either::Left(future::ready(Ok(payload.clone()))),
                        // Boxed: a render is rare and large, and the stream
                        // would otherwise keep room for one on every subscriber.
                        None => {
                            let (this, plan) = (self.clone(), plan.clone());
                            Either::Right(Box::pin(async move {
                                Ok(this.render(&plan, &slot, event).await)
                            }))
                        }
                    }
                }
                Err(error) => Either::Left(future::ready(Err(
                    self.payload(graphql::error_response(error))
                ))),
            })
            .scan(false, |ended, item| {
                // An error is the last payload: the stream ends after it.
                let next = match (*ended, item) {
                    (true, _) => None,
                    (false, Ok(payload)) => Some(payload),
                    (false, Err(payload)) => {
                        *ended = true;
                        Some(payload)
                    }
                };
                future::ready(next)
            })
            .inspect(move |_| live.delivered())
            .boxed()
    }

    /// Fills `slot` with the payload of `event` under `plan`, unless another
    /// subscriber is at it already: then waits for theirs.
    async fn render(&self, plan: &Plan, slot: &RenderSlot, event: Arc<MessageEvent>) -> Arc<str> {
        slot.get_or_init(|| async {
            self.app.metrics.subscription_rendered();
            let response = self
                .first(plan, &self.schemas.rendering, Some(event))
                .await
                .unwrap_or_else(|| {
                    graphql::error_response(Error::internal(anyhow::anyhow!(
                        "a render without a result"
                    )))
                });
            self.payload(response)
        })
        .await
        .clone()
    }

    /// The first response of `plan` run by `schema`: with `event`, its
    /// render; without, none when the checks pass.
    async fn first(
        &self,
        plan: &Plan,
        schema: &RenderingSchema,
        event: Option<Arc<MessageEvent>>,
    ) -> Option<Response> {
        let request = match plan.request().and_then(|request| self.with_data(request)) {
            Ok(request) => request,
            Err(error) => return Some(graphql::error_response(error)),
        };
        let request = match event {
            Some(event) => request.data(Rendered(event)),
            None => request,
        };
        schema.execute_stream(request).next().await
    }

    /// `request` with its parsed document, once its cost is within bounds
    /// (`graphql::parsed`), and what resolvers read from their context.
    fn with_data(&self, request: Request) -> Result<Request, Error> {
        let request = graphql::parsed(request, self.app.config.limits.max_complexity)?;
        Ok(request
            .data(self.credentials.clone())
            .data(graphql::loader(self.app.clone(), &self.credentials))
            .data(ClientAddress(self.client)))
    }

    /// `error` as the errors of a response, in the socket's language.
    pub fn errors(&self, error: Error) -> Vec<ServerError> {
        graphql::finish(graphql::error_response(error), self.lang, &self.app).errors
    }

    fn payload(&self, response: Response) -> Arc<str> {
        let response = graphql::finish(response, self.lang, &self.app);
        serde_json::to_string(&response)
            .unwrap_or_else(|_| r#"{"data":null}"#.to_owned())
            .into()
    }

    fn single(&self, response: Response) -> Payloads {
        stream::once(future::ready(self.payload(response))).boxed()
    }
}
