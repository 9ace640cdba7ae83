//! Null propagation, as the GraphQL spec's "Handling Execution Errors"
//! asks: a field that raised an error is `null`, and a `null` in a non-null
//! position makes its parent `null` in turn, up to the nearest nullable
//! position or, past the root, `data` itself.
//!
//! async-graphql leaves a failed field out of its object instead, so
//! `{ me { username } userProfile(username: "nobody") { isFriend } }` would
//! answer `data: { me: … }`, which Apollo Client reads as a cache miss and
//! a typed client as a broken promise of the schema. [`propagate`] mends a
//! response after execution, from the document and the schema's types. It
//! is run only on a response with an error at a path: nothing is paid on
//! the others.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use async_graphql::{
    Name, PathSegment, Response, Value,
    parser::{
        parse_schema,
        types::{
            BaseType, ExecutableDocument, OperationDefinition, OperationType, Selection,
            SelectionSet, Type, TypeKind, TypeSystemDefinition,
        },
    },
};

/// The type of every field of the schema's objects and interfaces, by the
/// name of its parent type and its own.
struct FieldTypes(HashMap<String, HashMap<String, Type>>);

static FIELD_TYPES: LazyLock<FieldTypes> = LazyLock::new(|| FieldTypes::of(&super::sdl()));

impl FieldTypes {
    fn of(sdl: &str) -> Self {
        let mut types = HashMap::new();
        let Ok(document) = parse_schema(sdl) else {
            return Self(types);
        };
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let fields = match definition.node.kind {
                TypeKind::Object(object) => object.fields,
                TypeKind::Interface(interface) => interface.fields,
                _ => continue,
            };
            let fields = fields
                .into_iter()
                .map(|field| (field.node.name.node.to_string(), field.node.ty.node))
                .collect();
            types.insert(definition.node.name.node.to_string(), fields);
        }
        Self(types)
    }

    fn of_field(&self, parent: &str, field: &str) -> Option<&Type> {
        self.0.get(parent)?.get(field)
    }
}

/// What a request executed: its document's text and the operation's name,
/// kept to mend the response ([`Executed::mend`]).
#[derive(Clone, Debug, Default)]
pub struct Executed {
    query: Arc<str>,
    operation_name: Option<Arc<str>>,
}

impl Executed {
    pub fn of(request: &async_graphql::Request) -> Self {
        Self {
            query: request.query.as_str().into(),
            operation_name: request.operation_name.as_deref().map(Into::into),
        }
    }

    /// `response` with nulls propagated (see the module's doc).
    pub fn mend(&self, response: Response) -> Response {
        mend_with(response, || Some(self.clone()))
    }

    fn propagate(&self, response: Response) -> Response {
        match super::document(&self.query) {
            Some(document) => propagate(
                response,
                &document,
                self.operation_name.as_deref(),
                &FIELD_TYPES,
            ),
            None => response,
        }
    }
}

/// `response` with nulls propagated, by what `executed` tells, which is
/// asked only when an error is at a path: a render that keeps no copy of
/// its request pays nothing for the others.
pub fn mend_with(response: Response, executed: impl FnOnce() -> Option<Executed>) -> Response {
    if response.errors.iter().all(|error| error.path.is_empty()) {
        return response;
    }
    match executed() {
        Some(executed) => executed.propagate(response),
        None => response,
    }
}

fn root_type(operation: &OperationDefinition) -> &'static str {
    match operation.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    }
}

fn named(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(item) => named(item),
    }
}

/// The fields of `set` (fragments spread) answering to `key`, each with the
/// type it is selected on.
fn fields_of<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    on: &'d str,
    key: &str,
    found: &mut Vec<(&'d str, &'d async_graphql::parser::types::Field)>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) if field.node.response_key().node == key => {
                found.push((on, &field.node));
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(fragment) => {
                let on = fragment
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(on, |condition| condition.node.on.node.as_str());
                fields_of(document, &fragment.node.selection_set.node, on, key, found);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    fields_of(document, &fragment.node.selection_set.node, on, key, found);
                }
            }
        }
    }
}

/// Whether each position along `path` may hold `null`: a field's position
/// by its type, a list item's by its list's. A position whose type cannot
/// be told (a field of introspection) counts as nullable.
fn nullable_along(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    path: &[PathSegment],
    types: &FieldTypes,
) -> Vec<bool> {
    let mut sets: Vec<(&SelectionSet, &str)> =
        vec![(&operation.selection_set.node, root_type(operation))];
    let mut current: Option<&Type> = None;
    let mut nullable = Vec::with_capacity(path.len());
    for segment in path {
        current = match segment {
            PathSegment::Index(_) => current.and_then(|ty| match &ty.base {
                BaseType::List(item) => Some(item.as_ref()),
                BaseType::Named(_) => None,
            }),
            PathSegment::Field(key) => {
                let mut found = Vec::new();
                for (set, on) in &sets {
                    fields_of(document, set, on, key, &mut found);
                }
                let ty = found
                    .iter()
                    .find_map(|(on, field)| types.of_field(on, &field.name.node));
                sets = match ty {
                    Some(ty) => found
                        .iter()
                        .map(|(_, field)| (&field.selection_set.node, named(ty).as_str()))
                        .collect(),
                    None => Vec::new(),
                };
                ty
            }
        };
        nullable.push(current.is_none_or(|ty| ty.nullable));
    }
    nullable
}

fn segment_eq(a: &PathSegment, b: &PathSegment) -> bool {
    match (a, b) {
        (PathSegment::Field(a), PathSegment::Field(b)) => a == b,
        (PathSegment::Index(a), PathSegment::Index(b)) => a == b,
        _ => false,
    }
}

fn starts_with(path: &[PathSegment], prefix: &[PathSegment]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| segment_eq(a, b))
}

/// The value at `path` in `data`, made an object where a field must go
/// into one that execution left `null` (every field of it failed).
fn place<'v>(data: &'v mut Value, path: &[PathSegment]) -> Option<&'v mut Value> {
    let mut at = data;
    for segment in path {
        at = match segment {
            PathSegment::Field(key) => {
                if matches!(at, Value::Null) {
                    *at = Value::Object(Default::default());
                }
                let Value::Object(object) = at else {
                    return None;
                };
                object.get_mut(key.as_str())?
            }
            PathSegment::Index(index) => match at {
                Value::List(items) => items.get_mut(*index)?,
                _ => return None,
            },
        };
    }
    Some(at)
}

/// Puts `null` at `path`, the field there left out or not.
fn put_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, parent)) = path.split_last() else {
        *data = Value::Null;
        return;
    };
    let Some(parent) = place(data, parent) else {
        return;
    };
    match (last, parent) {
        (PathSegment::Field(key), parent) => {
            if matches!(parent, Value::Null) {
                *parent = Value::Object(Default::default());
            }
            if let Value::Object(object) = parent {
                object.insert(Name::new(key), Value::Null);
            }
        }
        (PathSegment::Index(index), Value::List(items)) => {
            if let Some(item) = items.get_mut(*index) {
                *item = Value::Null;
            }
        }
        (PathSegment::Index(_), _) => {}
    }
}

fn propagate(
    mut response: Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    types: &FieldTypes,
) -> Response {
    let Some(operation) = super::operation_of(document, operation_name) else {
        return response;
    };
    let mut nulled: Vec<Vec<PathSegment>> = Vec::new();
    for error in &response.errors {
        let path = &error.path;
        if path.is_empty() || nulled.iter().any(|done| starts_with(path, done)) {
            continue;
        }
        let nullable = nullable_along(document, operation, path, types);
        let at = nullable.iter().rposition(|nullable| *nullable);
        let target = at.map_or(&path[..0], |at| &path[..=at]);
        if at.is_none() {
            response.data = Value::Null;
        } else if !nulled.iter().any(|done| starts_with(target, done)) {
            put_null(&mut response.data, target);
        }
        nulled.push(target.to_vec());
    }
    response
}

#[cfg(test)]
mod tests {
    use async_graphql::{ServerError, parser::parse_query, value};

    use super::*;

    const SDL: &str = r#"
        type Query { me: User!, profile(name: String!): Profile!, room: Room, rooms: [Room!]!, maybe: [Room]! }
        type Mutation { add(name: String!): Profile! }
        type User { name: String!, friends: [User!]!, nick: String }
        type Profile { friend: Boolean! }
        type Room { title: String!, owner: User!, topic: String }
    "#;

    fn error_at(path: &[&str]) -> ServerError {
        let mut error = ServerError::new("failed", None);
        error.path = path
            .iter()
            .map(|segment| match segment.parse::<usize>() {
                Ok(index) => PathSegment::Index(index),
                Err(_) => PathSegment::Field((*segment).to_owned()),
            })
            .collect();
        error
    }

    fn mended(query: &str, data: Value, errors: &[&[&str]]) -> Value {
        let mut response = Response::new(data);
        response.errors = errors.iter().map(|path| error_at(path)).collect();
        let document = parse_query(query).expect("parses");
        propagate(response, &document, None, &FieldTypes::of(SDL)).data
    }

    #[test]
    fn a_failed_non_null_root_field_nulls_data() {
        let data = mended(
            "{ me { name } profile(name: \"nobody\") { friend } }",
            value!({ "me": { "name": "ann" } }),
            &[&["profile"]],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn a_failed_nullable_field_is_null_and_stays_in_its_object() {
        let data = mended(
            "{ me { name nick } }",
            value!({ "me": { "name": "ann" } }),
            &[&["me", "nick"]],
        );
        assert_eq!(data, value!({ "me": { "name": "ann", "nick": null } }));
    }

    #[test]
    fn a_non_null_chain_nulls_up_to_the_nearest_nullable_field() {
        let data = mended(
            "{ me { name } r: room { owner { name } title } }",
            value!({ "me": { "name": "ann" }, "r": { "title": "t" } }),
            &[&["r", "owner", "name"]],
        );
        assert_eq!(data, value!({ "me": { "name": "ann" }, "r": null }));
    }

    #[test]
    fn a_list_of_non_null_items_fails_whole() {
        let data = mended(
            "{ rooms { title owner { name } } room { title } }",
            value!({ "room": { "title": "t" } }),
            &[&["rooms", "1", "owner"]],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn a_nullable_item_is_null_and_its_siblings_stay() {
        let data = mended(
            "{ maybe { owner { name } } }",
            value!({ "maybe": [{ "owner": { "name": "a" } }, { "owner": { "name": "b" } }] }),
            &[&["maybe", "1", "owner", "name"]],
        );
        assert_eq!(
            data,
            value!({ "maybe": [{ "owner": { "name": "a" } }, null] })
        );
    }

    #[test]
    fn fragments_and_aliases_are_followed() {
        let data = mended(
            "query { ...Rooms } fragment Rooms on Query { r: room { ... on Room { o: owner { name } } } }",
            value!({ "r": {} }),
            &[&["r", "o"]],
        );
        assert_eq!(data, value!({ "r": null }));
    }

    #[test]
    fn one_failed_aliased_mutation_of_a_non_null_type_nulls_data() {
        let data = mended(
            "mutation { a: add(name: \"bob\") { friend } b: add(name: \"nobody\") { friend } }",
            value!({ "a": { "friend": true } }),
            &[&["b"]],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn an_object_whose_every_field_failed_gets_its_nulls() {
        let data = mended(
            "{ room { topic } }",
            value!({ "room": null }),
            &[&["room", "topic"]],
        );
        assert_eq!(data, value!({ "room": { "topic": null } }));
    }
}
