//! The GraphQL documents tests send most, and what they read of errors.

use serde_json::Value;

pub const REGISTER: &str = "mutation($input: RegisterInput!) {
    register(input: $input) { token expiresAt user { identity username nickname email sex avatar } }
}";

pub const SEND: &str = "mutation($room: ID!, $content: String!, $clientId: String) {
    sendMessage(roomIdentity: $room, content: $content, clientId: $clientId) {
        identity roomIdentity content clientId cursor createdAt sender { username }
    }
}";

/// The fields a subscription test reads of each message.
pub const MESSAGE_FIELDS: &str = "identity roomIdentity content cursor sender { username }";

/// `messages(roomIdentity: $r)` with [`MESSAGE_FIELDS`], and with `after: $after`
/// when `with_after`.
pub fn room_subscription(with_after: bool) -> String {
    let (declared, passed) = match with_after {
        true => (", $after: String", ", after: $after"),
        false => ("", ""),
    };
    format!(
        "subscription($r: ID!{declared}) {{ messages(roomIdentity: $r{passed}) {{ {MESSAGE_FIELDS} }} }}"
    )
}

pub const LOGIN: &str = "mutation($username: String!, $password: String!) {
    login(username: $username, password: $password) { token expiresAt user { identity username email } }
}";

/// The `extensions.code` of the first error of an answer.
pub fn error_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {answer}"))
}

/// The `extensions.field` of the first error of an answer.
pub fn error_field(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a field, got {answer}"))
}
