//! The typed operations: one module per operation, generated at compile
//! time by `graphql_client` from the operation's file in `src/graphql/` and
//! the repository's `schema.graphql`. Each module holds `Variables` (what
//! the operation takes), `ResponseData` (what it answers) and a type per
//! fragment it spreads (`MessageFields`, `RoomFields`, `Session`).
//!
//! The client holds types only for what its operations select: fields the
//! server adds change nothing here, and a field the schema drops fails the
//! build. Inputs go field by field as variables rather than as input
//! objects, whose every field (however new) a generated struct would name.
//!
//! One file per operation, each with the fragments it spreads: the
//! generated code sends its whole file as the document, so a file of every
//! operation would send them all with each request. (The server's shared
//! renders of `messages` also refuse such a document, since they know only
//! the types a subscription reaches: `Unknown type "AuthPayload"`.)
//!
//! Adding an operation is a file in `src/graphql/` and one derive here;
//! [`crate::Client::execute`] or [`crate::Client::subscribe`] runs it.

use graphql_client::GraphQLQuery;

/// Builds this crate again when the schema changes: the derive reads the
/// schema without telling the compiler so, as it does for the operations.
const _SCHEMA: &str = include_str!("../../../schema.graphql");

/// The schema's `DateTime`: RFC 3339 in UTC with milliseconds
/// (`2026-11-26T19:41:14.123Z`), kept as the text the server sends, so the
/// client needs no date library; parse it with the one your app uses.
pub type DateTime = String;

/// Mails a 6-digit registration code to an address.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/send_email_code.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct SendEmailCode;

/// Creates an account with the code mailed by [`SendEmailCode`].
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/register.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct Register;

/// Signs in with a username (any case) and password.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/login.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct Login;

/// Creates a GROUP room owned by the viewer, with members by username.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/create_group.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct CreateGroup;

/// Befriends a user: the answer is the pair's PRIVATE room.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/add_friend.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct AddFriend;

/// Stores a message in a room, then delivers it to the room's subscribers.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/send_message.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct SendMessage;

/// The messages of one room, live; with `after`, first those after it.
#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "src/graphql/room_messages.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone"
)]
pub struct RoomMessages;
