//! Running one socket's operations: room, inbox and room-event
//! subscriptions rendered once per event instead of once per subscriber,
//! and everything else run through the serving schema.
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
//! A render depends on the event, the request and the subscriber's
//! [`Perspective`] on the event (only a user sees their own `email`, and
//! `Reaction.byViewer` is the viewer's), and on nothing else: that is the
//! key. Most subscribers of a room share one perspective, and one render.
//! Validation and errors are the serving
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
    broker::{Memo, MessageEvent},
    chat::delivery::{self, RoomEvent},
    error::{Error, Lang},
    graphql::{self, ClientAddress, Executed, Rendered, RenderingSchema, Schemas},
    metrics::Feed,
    store::{MessageRecord, Stored},
};

/// The payloads rendered of one event, one per kind of subscription (named
/// by a [`RenderKey`]), each made by the first subscriber that needs it.
/// Found by the key's hash, computed once per subscription (and not hashed
/// again: the map's hasher is Fx, one multiply); a document's text is
/// compared only with one of the same hash.
#[derive(Default)]
struct Renders(std::sync::Mutex<FxHashMap<(u64, Perspective), SameHash>>);

/// What of an event a subscriber sees differently from others: only the
/// user themself sees their email, and `Reaction.byViewer` is theirs.
/// Subscribers with the same perspective share a render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Perspective {
    /// One bit for each user the event shows whom the subscriber is (the
    /// sender, the member, the remover), and one for each reaction of the
    /// message the subscriber is among.
    bits: u64,
    /// The subscriber, when what they see cannot be told by bits: a reply
    /// shows the replied message (its sender and reactions), a renamed
    /// room shows the room as the viewer sees it (unread count, role).
    alone: Option<Uuid>,
}

impl Perspective {
    /// `viewer`'s own, shared with nobody.
    fn alone(viewer: Option<Uuid>) -> Self {
        Self {
            alone: viewer,
            ..Self::default()
        }
    }

    /// Bits of whether `viewer` is each of `users`, from bit `from` on.
    fn is(mut self, viewer: Option<Uuid>, users: &[Option<Uuid>], from: u32) -> Self {
        for (bit, user) in (from..).zip(users) {
            if viewer.is_some() && viewer == *user {
                self.bits |= 1 << bit;
            }
        }
        self
    }

    /// `message` as `viewer` sees it: its sender, its reactions, a reply.
    fn of_message(message: &MessageRecord, viewer: Option<Uuid>) -> Self {
        let mut perspective = Self::default().is(viewer, &[Some(message.sender_identity)], 0);
        for (bit, reaction) in (1..63).zip(&message.reactions) {
            if viewer.is_some_and(|viewer| reaction.users.contains(&viewer)) {
                perspective.bits |= 1 << bit;
            }
        }
        perspective.alone = message.reply_to.and(viewer);
        perspective
    }
}

/// An event a subscription renders.
trait Shared: Send + 'static {
    /// Where its renders are kept, shared by the subscribers on this instance.
    fn memo(&self) -> &Memo;

    fn perspective(&self, viewer: Option<Uuid>) -> Perspective;

    /// It, as the rendering schema takes it.
    fn rendered(self) -> Rendered;
}

impl Shared for Arc<MessageEvent> {
    fn memo(&self) -> &Memo {
        &self.memo
    }

    fn perspective(&self, viewer: Option<Uuid>) -> Perspective {
        Perspective::of_message(&self.message, viewer)
    }

    fn rendered(self) -> Rendered {
        Rendered::Message(self)
    }
}

impl Shared for RoomEvent {
    fn memo(&self) -> &Memo {
        match self {
            RoomEvent::Posted(event) => &event.memo,
            RoomEvent::Changed(event) => &event.memo,
            RoomEvent::Typing(event) => &event.memo,
        }
    }

    fn perspective(&self, viewer: Option<Uuid>) -> Perspective {
        let nobody = Perspective::default();
        match self {
            RoomEvent::Posted(event) => Perspective::of_message(&event.message, viewer),
            RoomEvent::Typing(event) => nobody.is(viewer, &[Some(event.user)], 0),
            RoomEvent::Changed(event) => match &event.change {
                Stored::Message(message) => Perspective::of_message(message, viewer),
                Stored::Member(member) => nobody.is(viewer, &[Some(member.user_identity)], 0),
                Stored::Departure(departure) => nobody.is(
                    viewer,
                    &[Some(departure.user_identity), departure.removed_by],
                    0,
                ),
                Stored::Room(_) => Perspective::alone(viewer),
            },
        }
    }

    fn rendered(self) -> Rendered {
        Rendered::Room(self)
    }
}

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
    /// What of the event this subscriber sees differently.
    perspective: Perspective,
}

impl Renders {
    /// The cell holding the render for `key`; callers fill it with
    /// `get_or_init`, so concurrent subscribers wait for one render.
    fn slot(&self, key: &RenderKey) -> Arc<RenderSlot> {
        let mut slots = crate::lock(&self.0);
        let same_hash = slots.entry((key.hash, key.perspective)).or_default();
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
        let executed = Executed::of(&request);
        let request = match self.with_data(request) {
            Ok(request) => request,
            Err(error) => return self.single(graphql::error_response(error)),
        };
        let this = self.clone();
        self.schemas
            .serving
            .execute_stream(request)
            .map(move |response| this.payload(executed.mend(response)))
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
        let viewer = match self.credentials.viewer() {
            Ok(viewer) => viewer,
            Err(error) => return self.single(graphql::error_response(error)),
        };
        let (app, room, after) = (
            self.app.clone(),
            plan.room.as_deref().unwrap_or_default(),
            plan.after.as_deref(),
        );
        match plan.feed {
            Feed::RoomEvents => match delivery::room_events(app, viewer, room, after).await {
                Ok(events) => self.deliver(plan, events),
                Err(error) => self.single(graphql::error_response(error)),
            },
            Feed::Inbox => match delivery::inbox(app, viewer).await {
                Ok(events) => self.deliver(plan, events),
                Err(error) => self.single(graphql::error_response(error)),
            },
            _ => match delivery::room_messages(app, viewer, room, after).await {
                Ok(events) => self.deliver(plan, events),
                Err(error) => self.single(graphql::error_response(error)),
            },
        }
    }

    /// The payloads of `events` under `plan`, each rendered once for every
    /// subscriber on this instance that sees it alike.
    fn deliver<T: Shared>(
        self,
        plan: Arc<Plan>,
        events: BoxStream<'static, crate::error::Result<T>>,
    ) -> Payloads {
        let live = self.app.metrics.subscription_started(plan.feed);
        let viewer = self.credentials.viewer().ok().map(|viewer| viewer.identity);
        events
            .then(move |item| match item {
                Ok(event) => {
                    let key = RenderKey {
                        request: plan.key.clone(),
                        hash: plan.hash,
                        perspective: match plan.personal {
                            true => Perspective::alone(viewer),
                            false => event.perspective(viewer),
                        },
                    };
                    // An event whose memo holds something else is rendered
                    // for this subscriber alone.
                    let slot = match event.memo().get_or_init(Renders::default) {
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
                                Ok(this.render(&plan, &slot, event.rendered()).await)
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
    async fn render(&self, plan: &Plan, slot: &RenderSlot, event: Rendered) -> Arc<str> {
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
        event: Option<Rendered>,
    ) -> Option<Response> {
        let request = match plan.request() {
            Ok(request) => request,
            Err(error) => return Some(graphql::error_response(error)),
        };
        let request = match self.with_data(request) {
            Ok(request) => request,
            Err(error) => return Some(graphql::error_response(error)),
        };
        let request = match event {
            Some(event) => request.data(event),
            None => request,
        };
        let response = schema.execute_stream(request).next().await?;
        Some(graphql::mend_with(response, || {
            plan.request().ok().map(|request| Executed::of(&request))
        }))
    }

    /// `request` with its parsed document, once its cost is within bounds
    /// (`graphql::parsed`), and what resolvers read from their context.
    fn with_data(&self, request: Request) -> Result<Request, Error> {
        let request = graphql::parsed(request, self.app.config.limits.max_complexity)?;
        Ok(request
            .data(self.credentials.clone())
            .data(graphql::loader(self.app.clone(), &self.credentials))
            .data(ClientAddress(self.client))
            .data(self.lang))
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

    /// The one payload of an operation that could not start.
    pub fn failed(&self, error: Error) -> Payloads {
        self.single(graphql::error_response(error))
    }

    /// The one payload of an operation answered before it could run.
    pub fn answered(&self, response: Response) -> Payloads {
        self.single(response)
    }

    fn single(&self, response: Response) -> Payloads {
        stream::once(future::ready(self.payload(response))).boxed()
    }
}
