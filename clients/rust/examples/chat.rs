//! A chat in the terminal, through the typed client: sign up (or in),
//! open a room, print its messages as they arrive and send each line typed.
//!
//! ```sh
//! # a new account: the code is mailed (on a dev server, to data/outbox)
//! cargo run -p chatroom-client --example chat -- \
//!     --username ann --password 'a long password' --email ann@example.com
//! # an existing account, in the PRIVATE room shared with a friend
//! cargo run -p chatroom-client --example chat -- \
//!     --username bob --password 'another password' --friend ann
//! ```

use chatroom_client::{Client, Registration};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
struct Options {
    /// The server's GraphQL endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    url: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    /// Register a new account with this address (a code is mailed to it);
    /// without it, log in.
    #[arg(long)]
    email: Option<String>,
    /// Chat in the PRIVATE room shared with this user (befriending them);
    /// without it, in a new group.
    #[arg(long)]
    friend: Option<String>,
    /// The name of the new group.
    #[arg(long, default_value = "typed client")]
    group: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    let mut client = Client::new(&options.url)?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();

    match &options.email {
        Some(email) => {
            let code = client.send_email_code(email).await?;
            eprint!("the code mailed to {email} (valid {} s): ", code.expires_in);
            let code = lines.next_line().await?.ok_or("no code typed")?;
            client
                .register(Registration {
                    username: options.username.clone(),
                    password: options.password.clone(),
                    email: email.clone(),
                    code: code.trim().to_owned(),
                })
                .await?;
        }
        None => {
            client.login(&options.username, &options.password).await?;
        }
    }

    let room = match &options.friend {
        Some(friend) => client.add_friend(friend).await?.identity,
        None => client.create_group(&options.group, &[]).await?.identity,
    };
    eprintln!("in room {room}; type a line to send it, Ctrl-D to leave");

    let mut messages = client.subscribe_messages(&room, None).await?;
    let printer = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            match message {
                Ok(data) => println!(
                    "{}: {}",
                    data.messages.sender.username, data.messages.content
                ),
                Err(error) => {
                    eprintln!("the subscription ended: {error}");
                    break;
                }
            }
        }
    });

    while let Some(line) = lines.next_line().await? {
        if !line.trim().is_empty() {
            client.send_message(&room, &line, None).await?;
        }
    }
    printer.abort();
    Ok(())
}
