//! The operations of a WebSocket (`http::socket`): room and inbox
//! subscriptions rendered once per message instead of once per subscriber,
//! and everything else run through the schema.
//!
//! async-graphql runs a subscription's selection for every subscriber and
//! every message, and serializes each result on its own: with a thousand
//! subscribers in a room, a thousand identical executions per message. Here
//! each subscriber still gets its own delivery stream (`chat::delivery`:
//! membership, catch-up, gap filling, its own end), but what a message
//! looks like under a given document and variables is executed by the
//! schema once, serialized once, kept with the message
//! ([`crate::broker::Renders`]) and shared by every subscriber on this
//! instance, which only wraps it in its own result frame.
//!
//! A render depends on the event, the request and whether the subscriber
//! sent the message (only the sender sees the sender's `email`), and on
//! nothing else: that is the key. Validation and errors are the schema's
//! own, so a client cannot tell a shared subscription from one the schema
//! runs for it alone.

use std::{net::IpAddr, sync::Arc};

use async_graphql::{
    Pos, Request, Response, Variables,
    http::WebSocketProtocols,
    parser::types::{DocumentOperations, OperationType, Selection},
};
use futures_util::{
    StreamExt,
    future::{self, Either},
    stream::{self, BoxStream},
};
use serde::{Deserialize, Serialize};

use super::{ClientAddress, Schemas, finish, loader};
use crate::{
    app::App,
    auth::Credentials,
    broker::{MessageEvent, RenderKey, RenderSlot},
    chat::delivery,
    error::{Error, Lang},
    metrics::Feed,
};

/// Tells the `messages` and `inbox` resolvers that the request only checks
/// or renders for a shared subscription: they yield the given event, or
/// nothing, and touch neither the store nor the broker.
#[derive(Clone)]
pub enum Shared {
    Validate,
    Render(Arc<MessageEvent>),
}

/// A subscription this module serves: a single `messages` or `inbox` field.
/// Every subscriber holds one for as long as it is subscribed, so it keeps
/// only what delivery needs; the request itself is read back from the key
/// for the rare render.
pub struct Plan {
    feed: Feed,
    /// `messages`'s arguments, variables resolved.
    room: Option<String>,
    after: Option<String>,
    /// What a render of this request depends on, besides the event: the
    /// [`Operation`], serialized.
    key: Arc<str>,
}

/// A `subscribe` frame's payload.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    query: String,
    #[serde(default)]
    variables: Variables,
    #[serde(default)]
    operation_name: Option<String>,
}

impl Operation {
    fn request(self) -> Request {
        let request = Request::new(self.query).variables(self.variables);
        match self.operation_name {
            Some(name) => request.operation_name(name),
            None => request,
        }
    }
}

impl Plan {
    /// The plan for a `subscribe` payload, or `None` for anything else
    /// (queries, the lobby, several root fields, fragments at the root,
    /// directives, documents that do not parse): [`Subscriber::execute`]
    /// runs those through the schema.
    pub fn of(payload: &serde_json::Value) -> Option<Self> {
        let operation = Operation::deserialize(payload).ok()?;
        let document = super::documents::document(&operation.query)?;
        let definition = match (&document.operations, operation.operation_name.as_deref()) {
            (DocumentOperations::Single(definition), _) => definition,
            (DocumentOperations::Multiple(definitions), Some(name)) => definitions.get(name)?,
            (DocumentOperations::Multiple(_), None) => return None,
        };
        let definition = &definition.node;
        if definition.ty != OperationType::Subscription || !definition.directives.is_empty() {
            return None;
        }
        let [selection] = definition.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() {
            return None;
        }
        let variables = &operation.variables;
        let argument = |name: &str| -> Option<Option<String>> {
            match field.get_argument(name) {
                None => Some(None),
                Some(value) => {
                    let value = value
                        .node
                        .clone()
                        .into_const_with(|variable| {
                            Ok::<_, ()>(variables.get(&variable).cloned().unwrap_or_default())
                        })
                        .ok()?;
                    match value {
                        async_graphql::Value::String(text) => Some(Some(text)),
                        async_graphql::Value::Null => Some(None),
                        _ => None,
                    }
                }
            }
        };
        let (feed, room, after) = match field.name.node.as_str() {
            "messages" => (
                Feed::Messages,
                argument("roomIdentity")?,
                argument("after")?,
            ),
            "inbox" => (Feed::Inbox, None, None),
            _ => return None,
        };
        let key = serde_json::to_string(&operation).ok()?.into();
        Some(Self {
            feed,
            room,
            after,
            key,
        })
    }

    /// The request this plan was made from.
    fn request(&self) -> Result<Request, Error> {
        let operation: Operation = serde_json::from_str(&self.key).map_err(Error::internal)?;
        Ok(operation.request())
    }
}

/// What one socket's operations share: who is asking, from where, and in
/// which language.
#[derive(Clone)]
pub struct Subscriber {
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

impl Subscriber {
    /// Runs any operation through the schema, one execution per
    /// subscriber: what `Plan::of` leaves to the schema.
    pub fn execute(&self, request: Request) -> Payloads {
        let this = self.clone();
        self.schemas
            .serving
            .execute_stream(self.with_data(request))
            .map(move |response| this.payload(response))
            .boxed()
    }

    /// Starts `plan`. A request the schema refuses, or a subscription that
    /// cannot start (not a member, not signed in), is one payload with the
    /// errors, as [`Subscriber::execute`] would send it.
    pub fn start(self, plan: Plan) -> Payloads {
        // Boxed: starting takes a large future, which would otherwise keep
        // its room in the stream for as long as the subscription lives.
        stream::once(Box::pin(self.started(plan))).flatten().boxed()
    }

    async fn started(self, plan: Plan) -> Payloads {
        let plan = Arc::new(plan);
        if let Some(refused) = self.first(&plan, Shared::Validate).await {
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
            Err(error) => return self.single(self.error_response(error)),
        };
        let live = self.app.metrics.subscription_started(plan.feed);
        let viewer = self.credentials.viewer().ok().map(|viewer| viewer.identity);
        events
            .then(move |item| match item {
                Ok(event) => {
                    let slot = event.renders.slot(&RenderKey {
                        request: plan.key.clone(),
                        by_sender: viewer == Some(event.sender.identity),
                    });
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
                Err(error) => {
                    Either::Left(future::ready(Err(self.payload(self.error_response(error)))))
                }
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
                .first(plan, Shared::Render(event))
                .await
                .unwrap_or_else(|| {
                    self.error_response(Error::internal(anyhow::anyhow!(
                        "a render without a result"
                    )))
                });
            self.payload(response)
        })
        .await
        .clone()
    }

    /// The first response of `plan` run as `shared` says: none from a
    /// validation that passed, the payload from a render (by the schema
    /// for renders, since the plan was validated when it started).
    async fn first(&self, plan: &Plan, shared: Shared) -> Option<Response> {
        let schema = match shared {
            Shared::Validate => &self.schemas.serving,
            Shared::Render(_) => &self.schemas.rendering,
        };
        match plan.request() {
            Ok(request) => {
                schema
                    .execute_stream(self.with_data(request.data(shared)))
                    .next()
                    .await
            }
            Err(error) => Some(self.error_response(error)),
        }
    }

    /// `request` with what resolvers read from their context.
    fn with_data(&self, request: Request) -> Request {
        super::parsed(request)
            .data(self.credentials.clone())
            .data(loader(self.app.clone(), &self.credentials))
            .data(ClientAddress(self.client))
    }

    fn error_response(&self, error: Error) -> Response {
        Response::from_errors(vec![
            async_graphql::Error::from(error).into_server_error(Pos::default()),
        ])
    }

    fn payload(&self, response: Response) -> Arc<str> {
        let response = finish(response, self.lang, &self.app.metrics);
        serde_json::to_string(&response)
            .unwrap_or_else(|_| r#"{"data":null}"#.to_owned())
            .into()
    }

    fn single(&self, response: Response) -> Payloads {
        stream::once(future::ready(self.payload(response))).boxed()
    }
}

/// An operation id as it appears in the frames of its operation, JSON-quoted
/// once for all of them, with the name its protocol gives a result frame.
pub struct FrameId {
    id: String,
    next: &'static str,
}

impl FrameId {
    pub fn new(id: &str, protocol: WebSocketProtocols) -> Self {
        Self {
            id: serde_json::to_string(id).unwrap_or_else(|_| "\"\"".to_owned()),
            next: match protocol {
                WebSocketProtocols::GraphQLWS => "next",
                WebSocketProtocols::SubscriptionsTransportWS => "data",
            },
        }
    }

    /// The frame carrying `payload`: all a subscriber adds to a shared render.
    pub fn next(&self, payload: &str) -> String {
        format!(
            r#"{{"type":"{}","id":{},"payload":{payload}}}"#,
            self.next, self.id
        )
    }

    pub fn complete(&self) -> String {
        format!(r#"{{"type":"complete","id":{}}}"#, self.id)
    }
}
