//! `chatroom demo`: a few users, friendships, a group and some history in an
//! empty store, so a newcomer logs in to a chat that already lives.
//!
//! Everything goes through [`crate::chat`], as a client's requests would:
//! passwords are hashed, seqs taken and values checked the usual way. A
//! store that holds any user is left alone, whoever put it there.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use uuid::Uuid;

use crate::{
    app::App,
    auth::Viewer,
    chat::{
        accounts::{self, NewAccount},
        messages, rooms, social,
    },
    error::{Error, Result},
    store::Sex,
};

/// Every demo user's password: printed for anyone to read, so only ever
/// given to users created in an empty store.
pub const PASSWORD: &str = "chatroom-demo";

/// The demo users: username, nickname, sex.
pub const USERS: &[(&str, &str, Sex)] = &[
    ("alice", "Alice", Sex::Female),
    ("bob", "Bob", Sex::Male),
    ("carol", "Carol", Sex::Female),
    ("dave", "大卫", Sex::Male),
];

/// The user to suggest logging in as: the one with the most to read.
pub const FIRST_LOGIN: &str = "alice";

/// Pairs of friends; each pair gets its PRIVATE room.
pub const FRIENDS: &[(&str, &str)] = &[("alice", "bob"), ("alice", "carol"), ("bob", "dave")];

/// The one GROUP room: its creator, name and info; every demo user is in it.
pub const GROUP: (&str, &str, &str) = (
    "alice",
    "Weekend hike",
    "Saturday on the ridge trail: who brings what, and when we meet.",
);

/// Where a line of conversation is said.
#[derive(Debug, Clone, Copy)]
enum Place {
    Group,
    /// The PRIVATE room of two of [`FRIENDS`].
    Between(&'static str, &'static str),
}

/// A room's conversation: `read` is history every member has seen; `unread`
/// comes after, so its lines count as unread for everyone but their sender.
struct Conversation {
    place: Place,
    read: &'static [(&'static str, &'static str)],
    unread: &'static [(&'static str, &'static str)],
}

/// In the order they happen: the last room spoken in comes first in `rooms`.
const CONVERSATIONS: &[Conversation] = &[
    Conversation {
        place: Place::Between("bob", "dave"),
        read: &[
            ("dave", "Did you fix the bike?"),
            ("bob", "New chain, new brakes. It's faster than me now."),
            ("dave", "哈哈, then it can ride itself on Saturday."),
            ("bob", "I'll take the car anyway, the trailhead is far."),
        ],
        unread: &[],
    },
    Conversation {
        place: Place::Between("alice", "carol"),
        read: &[
            ("carol", "Are you coming on Saturday?"),
            ("alice", "Wouldn't miss it. Do we still start at eight?"),
            ("carol", "Eight at the station, yes."),
            ("alice", "I'll bring the thermos."),
        ],
        unread: &[
            ("carol", "Can you lend me your rain jacket? Mine tore."),
            ("carol", "The blue one, if it's free."),
        ],
    },
    Conversation {
        place: Place::Between("alice", "bob"),
        read: &[
            ("alice", "Hi Bob! Did you see the forecast?"),
            ("bob", "Sunny until three, then clouds."),
            ("alice", "Then we should be back down by three."),
            ("bob", "Agreed. I'll print the map."),
            ("alice", "Thanks, my phone never has signal up there."),
        ],
        unread: &[("bob", "Map printed. Two copies, in case.")],
    },
    Conversation {
        place: Place::Group,
        read: &[
            ("alice", "Welcome to the hike group, everyone!"),
            ("bob", "Thanks for setting it up."),
            ("carol", "Hello hello 👋"),
            ("dave", "大家好! Glad to be here."),
            ("alice", "Plan: meet at the station at 8, train at 8:15."),
            ("bob", "I'll drive dave and the gear to the trailhead."),
            ("carol", "Who brings lunch?"),
            ("dave", "I can make dumplings, 饺子 for everyone."),
            ("alice", "Yes please!"),
            ("carol", "I'll bring fruit and water then."),
            ("bob", "Don't forget sun cream, the ridge has no shade."),
        ],
        unread: &[
            ("dave", "Dumplings are done: forty of them."),
            ("carol", "Forty! We'll need a second lunch break."),
            ("bob", "See you all at eight. Don't be late, alice 😉"),
        ],
    },
];

/// What seeding found, for the caller to tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeding {
    /// The store was empty and now holds the demo.
    Seeded,
    /// The store already held users: nothing was written.
    AlreadyHeldUsers,
}

/// The demo users once created, by username.
struct Cast(HashMap<&'static str, Viewer>);

impl Cast {
    fn get(&self, username: &str) -> Result<&Viewer> {
        self.0
            .get(username)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("{username} is not a demo user")))
    }

    /// Sends each line as its sender, in order.
    async fn say(&self, app: &Arc<App>, room: Uuid, lines: &[(&str, &str)]) -> Result<()> {
        let room = room.to_string();
        for &(sender, content) in lines {
            messages::send(app, self.get(sender)?, &room, content, None, None).await?;
        }
        Ok(())
    }
}

fn usernames() -> Vec<&'static str> {
    USERS.iter().map(|&(username, _, _)| username).collect()
}

/// Fills an empty store with the demo; a store holding any user is left as
/// it is, since it may hold real data.
#[tracing::instrument(skip_all)]
pub async fn seed(app: &Arc<App>) -> Result<Seeding> {
    if holds_users(app).await? {
        return Ok(Seeding::AlreadyHeldUsers);
    }
    let mut cast = Cast(HashMap::new());
    for &(username, nickname, sex) in USERS {
        let user = accounts::create_account(
            app,
            NewAccount {
                username: username.to_owned(),
                password: PASSWORD.to_owned(),
                email: format!("{username}@example.com"),
                nickname: Some(nickname.to_owned()),
                sex,
                avatar: None,
            },
        )
        .await?;
        let viewer = Viewer {
            identity: user.identity,
            username: user.username,
        };
        cast.0.insert(username, viewer);
    }

    let mut private_rooms = HashMap::new();
    for &(a, b) in FRIENDS {
        let room = social::add_friend(app, cast.get(a)?, b).await?;
        private_rooms.insert((a, b), room.identity);
    }
    let (creator, name, info) = GROUP;
    let everyone: Vec<String> = usernames().into_iter().map(str::to_owned).collect();
    let group = rooms::create_group(app, cast.get(creator)?, name, info, &everyone).await?;

    for conversation in CONVERSATIONS {
        let (room, members) = match conversation.place {
            Place::Group => (group.identity, usernames()),
            Place::Between(a, b) => {
                let room = private_rooms.get(&(a, b)).ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("{a} and {b} are not demo friends"))
                })?;
                (*room, vec![a, b])
            }
        };
        cast.say(app, room, conversation.read).await?;
        for member in members {
            rooms::mark_read(app, cast.get(member)?, &room.to_string(), None).await?;
        }
        cast.say(app, room, conversation.unread).await?;
    }
    tracing::info!(users = USERS.len(), "seeded the demo");
    Ok(Seeding::Seeded)
}

/// Whether anyone has an account: an empty search prefix matches every user.
async fn holds_users(app: &App) -> Result<bool> {
    let anyone = app.store.search_users("", &[], 1).await?;
    Ok(!anyone.is_empty())
}

/// What `chatroom demo` prints before it serves: where to go and who to be.
pub fn welcome(address: SocketAddr, seeding: Seeding) -> String {
    let usernames = usernames().join(", ");
    let (headline, who) = match seeding {
        Seeding::Seeded => (
            "the store was empty; it now holds a demo.",
            format!(
                "  users        {usernames}\n  password     {PASSWORD}\n\n\
                 Log in as {FIRST_LOGIN}: unread messages are waiting."
            ),
        ),
        Seeding::AlreadyHeldUsers => (
            "the store already holds users; nothing was added.",
            format!(
                "  demo users   {usernames} (password {PASSWORD}), if an earlier demo created them"
            ),
        ),
    };
    format!(
        "\nchatroom demo: {headline}\n\n  \
         web client   http://{address}/\n  \
         GraphQL      http://{address}/graphql\n\
         {who}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_names_the_client_the_endpoint_every_user_and_the_password() {
        let address: SocketAddr = "127.0.0.1:8080".parse().expect("an address");

        let text = welcome(address, Seeding::Seeded);

        assert!(text.contains("http://127.0.0.1:8080/\n"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080/graphql"), "{text}");
        assert!(text.contains(PASSWORD), "{text}");
        for &(username, _, _) in USERS {
            assert!(text.contains(username), "{text}");
        }
    }

    #[test]
    fn the_welcome_to_a_store_with_users_says_nothing_was_added() {
        let address: SocketAddr = "127.0.0.1:8080".parse().expect("an address");

        let text = welcome(address, Seeding::AlreadyHeldUsers);

        assert!(text.contains("nothing was added"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080/"), "{text}");
    }
}
