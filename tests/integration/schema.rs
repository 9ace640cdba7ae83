//! The committed schema.graphql is what the code serves, and it keeps the
//! API contract whole: all of version 1, and of version 2 what has been
//! built so far (`../shared/tools/contract-check` lists the rest).

use std::collections::BTreeSet;

use async_graphql::parser::{
    parse_schema,
    types::{InputValueDefinition, TypeKind, TypeSystemDefinition},
};

fn committed_schema() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the top of the repository")
}

#[test]
fn schema_graphql_matches_the_code() {
    assert!(
        committed_schema() == chatroom::graphql::sdl(),
        "schema.graphql differs from the code: run `cargo run -- print-schema > schema.graphql`"
    );
}

fn input_fact(owner: &str, input: &InputValueDefinition) -> String {
    let default = input
        .default_value
        .as_ref()
        .map(|value| format!(" = {}", value.node))
        .unwrap_or_default();
    format!("{owner}({}): {}{default}", input.name.node, input.ty.node)
}

/// Every name, kind, type, argument, default and enum value an SDL declares,
/// one line each: what a client can rely on.
fn facts(sdl: &str) -> BTreeSet<String> {
    let document = parse_schema(sdl).expect("a valid SDL");
    let mut facts = BTreeSet::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else {
            continue;
        };
        let name = definition.node.name.node.to_string();
        match &definition.node.kind {
            TypeKind::Scalar => {
                facts.insert(format!("scalar {name}"));
            }
            TypeKind::Object(object) => {
                facts.insert(format!("type {name}"));
                for field in &object.fields {
                    let field_name = format!("{name}.{}", field.node.name.node);
                    facts.insert(format!("{field_name}: {}", field.node.ty.node));
                    for argument in &field.node.arguments {
                        facts.insert(input_fact(&field_name, &argument.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                facts.insert(format!("input {name}"));
                for field in &input.fields {
                    facts.insert(input_fact(&name, &field.node));
                }
            }
            TypeKind::Enum(values) => {
                facts.insert(format!("enum {name}"));
                for value in &values.values {
                    facts.insert(format!("{name}::{}", value.node.value.node));
                }
            }
            TypeKind::Interface(_) | TypeKind::Union(_) => {
                facts.insert(format!("abstract {name}"));
            }
        }
    }
    facts
}

/// Arguments and input fields a client may leave out: those the contract
/// marks nullable. Ours may add optional ones to the contract's fields and
/// input types, never required ones; a field or input type of our own
/// requires what it needs, since no client of the contract calls it.
fn required_inputs(facts: &BTreeSet<String>) -> BTreeSet<&String> {
    facts
        .iter()
        .filter(|fact| fact.contains("): ") && fact.ends_with('!'))
        .collect()
}

/// Whether the field or input type an argument or input field belongs to
/// (`Query.node` of `Query.node(id): ID!`) is one `facts` declare.
fn owner_declared(facts: &BTreeSet<String>, input: &str) -> bool {
    let owner = input.split_once('(').map_or(input, |(owner, _)| owner);
    facts.contains(&format!("input {owner}"))
        || facts.iter().any(|fact| {
            fact.strip_prefix(owner)
                .is_some_and(|rest| rest.starts_with(": "))
        })
}

/// Where the contract's second part begins: the target of the room-events
/// and people issues (16 and 17), not yet served.
const VERSION_2: &str = "# Version 2:";

/// What version 2 adds to version 1's own types: two optional arguments.
const VERSION_2_ARGUMENTS: [&str; 2] = [
    "Mutation.sendMessage(replyTo): ID",
    "Mutation.markRoomRead(upTo): String",
];

#[test]
fn schema_graphql_keeps_every_name_type_and_argument_of_the_contract() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/contract/schema.graphql"
    );
    let contract = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("the API contract at {path}: {error}"));
    let ours = facts(&committed_schema());
    // What version 2 declares beyond version 1 (its `extend type Message`
    // also declares `type Message`, which version 1 requires already).
    let version_2: BTreeSet<String> = match contract.find(VERSION_2) {
        Some(start) => {
            let version_1 = facts(&contract[..start]);
            facts(&contract[start..])
                .into_iter()
                .filter(|fact| !version_1.contains(fact))
                .chain(VERSION_2_ARGUMENTS.map(String::from))
                .collect()
        }
        None => BTreeSet::new(),
    };
    let contract = facts(&contract);
    // A part of version 2 not built yet may be missing; one built must be
    // built as the contract says.
    let declared = |fact: &str| {
        let name = fact.split_once(": ").map_or(fact, |(name, _)| name);
        ours.iter()
            .any(|our| our.split_once(": ").is_some_and(|(n, _)| n == name))
    };
    let missing: Vec<&String> = contract
        .difference(&ours)
        .filter(|fact| !version_2.contains(*fact) || declared(fact))
        .collect();
    assert!(
        missing.is_empty(),
        "schema.graphql lacks or changed: {missing:#?}"
    );
    let (required_by_contract, required_by_us) =
        (required_inputs(&contract), required_inputs(&ours));
    let added_required: Vec<&&String> = required_by_us
        .difference(&required_by_contract)
        .filter(|input| owner_declared(&contract, input))
        .collect();
    assert!(
        added_required.is_empty(),
        "schema.graphql requires inputs the contract does not: {added_required:#?}"
    );
}
