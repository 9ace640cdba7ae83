//! Which operations a socket serves with shared renders: a subscription to
//! one `messages`, `inbox` or `roomEvents` field, and nothing else.

use async_graphql::{
    Request, Variables,
    parser::types::{OperationType, Selection},
};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::{error::Error, graphql, metrics::Feed};

/// A subscription served by [`super::render`]. Every subscriber holds one for
/// as long as it is subscribed, so it keeps only what delivery needs; the
/// request itself is read back from the key for the rare render.
pub struct Plan {
    pub feed: Feed,
    /// `messages`'s and `roomEvents`'s arguments, variables resolved.
    pub room: Option<String>,
    pub after: Option<String>,
    /// What a render of this request depends on, besides the event: the
    /// [`Operation`], serialized.
    pub key: std::sync::Arc<str>,
    /// The key's hash, computed once: renders are looked up by it.
    pub hash: u64,
    /// Whether the document may select what no perspective tells: a user's
    /// `presence`, which depends on who shares a room with whom and who
    /// blocked whom. Such a plan is rendered for each subscriber alone. Read
    /// off the text, so a document that only mentions the word is too: that
    /// costs renders, never a wrong payload.
    pub personal: bool,
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

impl Plan {
    /// The plan for a `subscribe` payload, or `None` for anything else
    /// (queries, the lobby, several root fields, fragments at the root,
    /// directives, documents of several operations, documents that do not
    /// parse): the serving schema runs those.
    pub fn of(payload: &serde_json::Value) -> Option<Self> {
        let operation = Operation::deserialize(payload).ok()?;
        let document = graphql::document(&operation.query)?;
        // A render validates the whole document against the rendering
        // schema, which knows no other operation's types.
        if document.operations.iter().count() > 1 {
            return None;
        }
        let definition = graphql::operation_of(&document, operation.operation_name.as_deref())?;
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
        // A variable the client left out takes its default, as the schema
        // would give it.
        let variable = |name: &async_graphql::Name| {
            variables.get(name).cloned().or_else(|| {
                definition
                    .variable_definitions
                    .iter()
                    .find(|declared| declared.node.name.node == *name)
                    .and_then(|declared| declared.node.default_value())
                    .cloned()
            })
        };
        let argument = |name: &str| -> Option<Option<String>> {
            match field.get_argument(name) {
                None => Some(None),
                Some(value) => {
                    let value = value
                        .node
                        .clone()
                        .into_const_with(|name| Ok::<_, ()>(variable(&name).unwrap_or_default()))
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
            "roomEvents" => (
                Feed::RoomEvents,
                argument("roomIdentity")?,
                argument("after")?,
            ),
            _ => return None,
        };
        let key: std::sync::Arc<str> = serde_json::to_string(&operation).ok()?.into();
        let hash = {
            let mut hasher = std::hash::DefaultHasher::new();
            key.hash(&mut hasher);
            hasher.finish()
        };
        let personal = operation.query.contains("presence");
        Some(Self {
            feed,
            room,
            after,
            key,
            hash,
            personal,
        })
    }

    /// The request this plan was made from.
    pub fn request(&self) -> Result<Request, Error> {
        let operation: Operation = serde_json::from_str(&self.key).map_err(Error::internal)?;
        let request = Request::new(operation.query).variables(operation.variables);
        Ok(match operation.operation_name {
            Some(name) => request.operation_name(name),
            None => request,
        })
    }
}
