//! Who connects and sends, and to which room: given by the operator, or
//! registered here through the dev outbox with one new GROUP room.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, anyhow, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Options, client::GraphQl, stamp::Run};

/// The tokens connections and senders take turns with, and their room.
#[derive(Debug, Clone)]
pub struct Audience {
    pub tokens: Vec<String>,
    pub room: String,
    /// Users registered by this run (0 when the operator gave tokens).
    pub registered: usize,
}

/// Registrations at once: each is a password hash on the server, and more
/// only queue behind each other there.
const REGISTERING_AT_ONCE: usize = 2;

/// The audience the options describe, registering users when no tokens are given.
pub async fn prepare(api: &GraphQl, options: &Options, run: &Run) -> anyhow::Result<Audience> {
    if let Some(room) = &options.room {
        return Ok(Audience {
            tokens: options.token.clone(),
            room: room.clone(),
            registered: 0,
        });
    }
    let Some(outbox) = &options.outbox else {
        bail!(
            "give --token and --room for a deployment that mails real codes, \
             or --outbox DIR (the server's dev outbox) to register users"
        );
    };
    let deadline = Instant::now() + options.setup_timeout;
    let usernames: Vec<String> = (0..options.users.max(1))
        .map(|i| format!("lt{}_{i}", run.id()))
        .collect();
    let tokens: Vec<String> = stream::iter(&usernames)
        .map(|username| register(api, outbox, username, deadline))
        .buffered(REGISTERING_AT_ONCE)
        .try_collect()
        .await?;
    let room = create_group(api, &tokens[0], &usernames[1..], run, deadline).await?;
    Ok(Audience {
        registered: tokens.len(),
        tokens,
        room,
    })
}

/// Registers `username` with the code the server mailed; its token.
async fn register(
    api: &GraphQl,
    outbox: &Path,
    username: &str,
    deadline: Instant,
) -> anyhow::Result<String> {
    let email = format!("{username}@example.com");
    // File times are coarse on some file systems: a little slack.
    let since = SystemTime::now() - Duration::from_secs(2);
    api.call_patiently(
        None,
        "mutation($email: String!) { sendEmailCode(email: $email) { expiresIn } }",
        json!({ "email": email }),
        deadline,
    )
    .await
    .map_err(|e| anyhow!("sendEmailCode for {email}: {e}"))?;
    let code = super::outbox::code_for(outbox, &email, since, deadline).await?;
    let data = api
        .call_patiently(
            None,
            "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            json!({ "input": {
                "username": username,
                "password": format!("{username}-load-test"),
                "email": email,
                "code": code,
            }}),
            deadline,
        )
        .await
        .map_err(|e| anyhow!("register {username}: {e}"))?;
    text(&data, "/register/token").with_context(|| format!("register {username}"))
}

async fn create_group(
    api: &GraphQl,
    creator: &str,
    members: &[String],
    run: &Run,
    deadline: Instant,
) -> anyhow::Result<String> {
    let data = api
        .call_patiently(
            Some(creator),
            "mutation($input: CreateGroupInput!) { createGroup(input: $input) { identity } }",
            json!({ "input": {
                "name": format!("load test {}", run.id()),
                "info": "created by chatroom-loadtest",
                "members": members,
            }}),
            deadline,
        )
        .await
        .map_err(|e| anyhow!("createGroup: {e}"))?;
    text(&data, "/createGroup/identity").context("createGroup")
}

fn text(data: &Value, pointer: &str) -> anyhow::Result<String> {
    data.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {pointer} in {data}"))
}
