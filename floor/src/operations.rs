//! GraphQL over HTTP the naive way: the operation is the first known field
//! name the query calls, its arguments are picked out of the query text, and
//! the answer is the object the load test reads, whatever the selection set
//! asked for.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{Event, Floor};

/// What the floor answers: what `chatroom-loadtest` sends, and nothing else.
#[derive(Debug, Clone, Copy)]
enum Operation {
    SendMessage,
    EditMessage,
    AddReaction,
    RemoveReaction,
    SendEmailCode,
    Register,
    CreateGroup,
}

/// Each operation's field name, as the query calls it.
const OPERATIONS: [(&str, Operation); 7] = [
    ("sendMessage", Operation::SendMessage),
    ("editMessage", Operation::EditMessage),
    ("addReaction", Operation::AddReaction),
    ("removeReaction", Operation::RemoveReaction),
    ("sendEmailCode", Operation::SendEmailCode),
    ("register", Operation::Register),
    ("createGroup", Operation::CreateGroup),
];

/// Answers one POSTed operation with `data`, or with an error the load
/// test counts by its `extensions.code`.
pub async fn answer(State(floor): State<Arc<Floor>>, Json(request): Json<Value>) -> Response {
    let query = request["query"].as_str().unwrap_or_default();
    let variables = &request["variables"];
    let arg = |name| argument(query, variables, name);
    let Some((field, operation)) = OPERATIONS.into_iter().find(|(f, _)| calls(query, f)) else {
        return error(
            "UNSUPPORTED",
            "the floor answers only what chatroom-loadtest sends",
        );
    };
    let outcome = match operation {
        Operation::SendMessage => send_message(&floor, arg("roomIdentity"), arg("content")),
        Operation::EditMessage => edit_message(&floor, arg("messageIdentity"), arg("content")),
        Operation::AddReaction | Operation::RemoveReaction => {
            react(&floor, field, arg("messageIdentity"))
        }
        Operation::SendEmailCode => send_email_code(&floor, arg("email")).await,
        Operation::Register => register(arg("input")),
        Operation::CreateGroup => create_group(&floor),
    };
    match outcome {
        Ok(data) => ([(header::CONTENT_TYPE, "application/json")], data).into_response(),
        Err(message) => error("BAD_REQUEST", &message),
    }
}

/// Data for the answer, already serialized; or why there is none.
type Outcome = Result<String, String>;

fn send_message(floor: &Floor, room: Option<Value>, content: Option<Value>) -> Outcome {
    let (Some(Value::String(room)), Some(Value::String(content))) = (room, content) else {
        return Err("sendMessage needs roomIdentity and content".into());
    };
    let identity = format!("{}@{room}", floor.next_number());
    let message = json!({ "identity": identity, "content": content }).to_string();
    floor.publish(
        &room,
        Event {
            messages: Some(format!(r#"{{"data":{{"messages":{message}}}}}"#)),
            room_events: room_event("MessagePosted", &message),
        },
    );
    Ok(format!(r#"{{"data":{{"sendMessage":{message}}}}}"#))
}

fn edit_message(floor: &Floor, identity: Option<Value>, content: Option<Value>) -> Outcome {
    let (Some(Value::String(identity)), Some(Value::String(content))) = (identity, content) else {
        return Err("editMessage needs messageIdentity and content".into());
    };
    let room = room_of(&identity)?;
    let message = json!({ "identity": identity, "content": content }).to_string();
    floor.publish(
        room,
        Event {
            messages: None,
            room_events: room_event("MessageEdited", &message),
        },
    );
    Ok(format!(r#"{{"data":{{"editMessage":{message}}}}}"#))
}

fn react(floor: &Floor, operation: &str, identity: Option<Value>) -> Outcome {
    let Some(Value::String(identity)) = identity else {
        return Err(format!("{operation} needs messageIdentity"));
    };
    let room = room_of(&identity)?;
    let cursor = floor.next_number();
    floor.publish(
        room,
        Event {
            messages: None,
            room_events: format!(
                r#"{{"data":{{"roomEvents":{{"__typename":"ReactionsChanged","cursor":"{cursor}"}}}}}}"#
            ),
        },
    );
    Ok(json!({ "data": { operation: { "identity": identity } } }).to_string())
}

/// Writes the mail chatroom's dev outbox would hold, with a code the floor
/// never checks: registering is part of the load test's setup, not of the
/// fan-out measured.
async fn send_email_code(floor: &Floor, email: Option<Value>) -> Outcome {
    let Some(Value::String(email)) = email else {
        return Err("sendEmailCode needs email".into());
    };
    let Some(outbox) = &floor.outbox else {
        return Err("this floor has no outbox: start it with --outbox, \
                    or give the load test --token and --room"
            .into());
    };
    let mail = format!("To: {email}\r\n\r\nYour chatroom registration code is: 000000\r\n");
    let path = outbox.join(format!("{}.eml", floor.next_number()));
    tokio::fs::write(&path, mail)
        .await
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(r#"{"data":{"sendEmailCode":{"expiresIn":600}}}"#.into())
}

/// Any token: the floor has no auth, and a token only has to be a string
/// the sockets send back.
fn register(input: Option<Value>) -> Outcome {
    let Some(username) = input.as_ref().and_then(|i| i["username"].as_str()) else {
        return Err("register needs input.username".into());
    };
    Ok(json!({ "data": { "register": { "token": format!("floor-{username}") } } }).to_string())
}

/// A fresh room identity; members are not kept, anyone may use any room.
fn create_group(floor: &Floor) -> Outcome {
    let identity = format!("room-{}", floor.next_number());
    Ok(json!({ "data": { "createGroup": { "identity": identity } } }).to_string())
}

fn room_event(typename: &str, message: &str) -> String {
    format!(r#"{{"data":{{"roomEvents":{{"__typename":"{typename}","message":{message}}}}}}}"#)
}

/// The room a message identity names: `sendMessage` makes them `N@room`,
/// so edits and reactions need no table of messages.
fn room_of(identity: &str) -> Result<&str, String> {
    identity
        .split_once('@')
        .filter(|(number, _)| number.parse::<u64>().is_ok())
        .map(|(_, room)| room)
        .ok_or_else(|| format!("{identity} is not a message of this floor"))
}

fn error(code: &str, message: &str) -> Response {
    Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))
        .into_response()
}

/// Whether `query` calls `field`: its name, then an opening parenthesis.
pub fn calls(query: &str, field: &str) -> bool {
    names(query, field).any(|after| after.trim_start().starts_with('('))
}

/// The value of argument `name` in `query`: a `$variable` looked up in
/// `variables`, or a string literal without escapes.
pub fn argument(query: &str, variables: &Value, name: &str) -> Option<Value> {
    let after = names(query, name).find_map(|after| after.trim_start().strip_prefix(':'))?;
    let value = after.trim_start();
    if let Some(variable) = value.strip_prefix('$') {
        let end = variable
            .find(|c: char| !is_name_char(c))
            .unwrap_or(variable.len());
        return variables.get(&variable[..end]).cloned();
    }
    let literal = value.strip_prefix('"')?;
    let end = literal.find(['"', '\\'])?;
    (literal.as_bytes()[end] == b'"').then(|| Value::String(literal[..end].to_owned()))
}

/// The text after each whole-word occurrence of `name` in `query`, a
/// variable of that name (`$content`) left out.
fn names<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = &'q str> {
    query.match_indices(name).filter_map(move |(at, _)| {
        let before = query[..at].chars().next_back();
        let after = &query[at + name.len()..];
        let whole = !before.is_some_and(|c| is_name_char(c) || c == '$')
            && !after.chars().next().is_some_and(is_name_char);
        whole.then_some(after)
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &str = "mutation($room: ID!, $content: String!) { \
        sendMessage(roomIdentity: $room, content: $content) { identity } }";

    #[test]
    fn arguments_are_taken_from_the_variables_they_name() {
        let variables = json!({ "room": "r1", "content": "hi" });
        assert_eq!(
            argument(SEND, &variables, "roomIdentity"),
            Some(json!("r1"))
        );
        assert_eq!(argument(SEND, &variables, "content"), Some(json!("hi")));
    }

    #[test]
    fn a_string_literal_argument_is_its_own_value() {
        let query = r#"subscription { messages(roomIdentity: "r 2") { content } }"#;
        assert_eq!(
            argument(query, &Value::Null, "roomIdentity"),
            Some(json!("r 2"))
        );
    }

    #[test]
    fn a_name_inside_a_longer_name_is_not_the_argument() {
        let query = "mutation($m: ID!) { addReaction(messageIdentity: $m) { identity } }";
        let variables = json!({ "m": "1@r" });
        assert_eq!(argument(query, &variables, "identity"), None);
        assert!(calls(query, "addReaction"));
        assert!(!calls(query, "Reaction"));
    }

    #[test]
    fn a_missing_variable_or_an_escaped_literal_is_no_argument() {
        assert_eq!(argument(SEND, &json!({}), "roomIdentity"), None);
        let escaped = r#"{ sendMessage(roomIdentity: "a\"b") { identity } }"#;
        assert_eq!(argument(escaped, &Value::Null, "roomIdentity"), None);
    }

    #[test]
    fn a_field_selected_but_not_called_is_not_the_operation() {
        assert!(calls(SEND, "sendMessage"));
        assert!(!calls(SEND, "identity"));
        assert!(!calls("{ register { token } }", "register"));
    }

    #[test]
    fn message_identities_name_their_room() {
        assert_eq!(room_of("12@room-3"), Ok("room-3"));
        assert_eq!(room_of("12@a@b"), Ok("a@b"));
        assert!(room_of("x@room-3").is_err());
        assert!(room_of("room-3").is_err());
    }
}
