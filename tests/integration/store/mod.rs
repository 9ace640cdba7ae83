//! One behavioural suite over every Store backend, so they cannot drift
//! apart: each file is one subject, each behaviour a function that every
//! backend runs (`store_suite!`).

mod messages;
mod rooms;
mod search;
mod transfer;
mod users;

use std::sync::Arc;

use chatroom::{
    error::{Entity, Error},
    store::{
        HistoryRange, MessageRecord, NewMessage, Profile, Record, RoomEdit, RoomRecord, RoomScene,
        RoomType, Sex, Store, UserRecord, now, pair_key,
    },
};
use futures_util::TryStreamExt;
use uuid::Uuid;

fn user(username: &str, email: &str) -> Profile {
    let at = now();
    Profile {
        identity: Uuid::new_v4(),
        username: username.into(),
        nickname: format!("{username} nick"),
        sex: Sex::Female,
        email: email.into(),
        avatar: Some("https://example.com/a.png".into()),
        created_at: at,
        updated_at: at,
    }
}

/// `profile` as stored, with a password hash.
fn record(profile: &Profile) -> UserRecord {
    UserRecord {
        profile: profile.clone(),
        password_hash: "$argon2id$not-a-real-hash".into(),
    }
}

/// A room of `members` created now, the first member its creator; a PRIVATE
/// one is keyed by its first two members.
fn room(room_type: RoomType, members: &[Uuid]) -> RoomRecord {
    let at = now();
    let (name, info, pair) = match room_type {
        RoomType::Group => ("Tea club".into(), "Leaves and kettles".into(), None),
        RoomType::Private => (
            String::new(),
            String::new(),
            Some(pair_key(members[0], members[1])),
        ),
    };
    RoomRecord {
        identity: Uuid::new_v4(),
        number: Uuid::new_v4().simple().to_string()[..10].to_owned(),
        name,
        info,
        creator_identity: members[0],
        room_type,
        pair_key: pair,
        seq: 0,
        rev: 0,
        updated_rev: 0,
        last_message_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// Stores a [`room`] of `members` with them in it.
async fn create(store: &dyn Store, room_type: RoomType, members: &[Uuid]) -> RoomRecord {
    let record = room(room_type, members);
    store.create_room(&record, members).await.unwrap();
    record
}

/// A message sent now, without a client id.
fn message(room: Uuid, sender: Uuid, content: &str) -> NewMessage {
    NewMessage {
        identity: Uuid::new_v4(),
        room_identity: room,
        sender_identity: sender,
        content: content.into(),
        client_id: None,
        created_at: now(),
        reply_to: None,
    }
}

/// The (room, member) pairs of `rooms`, members in joining order.
async fn member_pairs(store: &dyn Store, rooms: &[Uuid]) -> Vec<(Uuid, Uuid)> {
    store
        .members_of_rooms(rooms)
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.room_identity, member.user_identity))
        .collect()
}

/// What came of a member leaving.
#[derive(Debug, PartialEq, Eq)]
enum Departure {
    NotAMember,
    Left,
    LeftAndRoomDeleted,
}

/// `user` leaves `room` through [`Store::change_room`], as `leaveRoom` does.
async fn leave(store: &dyn Store, room: Uuid, user: Uuid) -> Departure {
    let rule = move |scene: &RoomScene| {
        let member = scene.members.iter().any(|m| m.user_identity == user);
        Ok(match member {
            true => vec![RoomEdit::Remove {
                user,
                by: None,
                at: now(),
            }],
            false => Vec::new(),
        })
    };
    match store.change_room(room, Arc::new(rule)).await {
        Err(Error::NotFound(Entity::Room)) => Departure::NotAMember,
        Ok(made) if made.deleted => Departure::LeftAndRoomDeleted,
        Ok(made) if made.changes.is_empty() => Departure::NotAMember,
        Ok(_) => Departure::Left,
        Err(error) => panic!("leaving failed: {error:?}"),
    }
}

/// Stores a [`message`]; the stored record.
async fn send(store: &dyn Store, room: Uuid, sender: Uuid, content: &str) -> MessageRecord {
    let (stored, new) = store
        .insert_message(&message(room, sender, content))
        .await
        .unwrap();
    assert!(new);
    stored
}

/// All of a room's history.
fn everything() -> HistoryRange {
    HistoryRange {
        after: None,
        before: None,
        limit: 10_000,
        newest: false,
    }
}

fn seqs(messages: &[MessageRecord]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

fn contents(messages: &[MessageRecord]) -> Vec<&str> {
    messages.iter().map(|m| m.content.as_str()).collect()
}

/// `user`'s unread count in each of `rooms`, in that order; 0 where the store
/// leaves a room out.
async fn unread(store: &dyn Store, user: Uuid, rooms: &[Uuid]) -> Vec<u64> {
    let memberships = store.memberships(user, rooms).await.unwrap();
    let counts = store.unread_counts(user, &memberships).await.unwrap();
    rooms
        .iter()
        .map(|room| counts.get(room).copied().unwrap_or(0))
        .collect()
}

/// Everything [`Store::export`] gives, in its order.
async fn export_all(store: &dyn Store) -> Vec<Record> {
    store.export().try_collect().await.unwrap()
}

async fn a_reachable_store_answers_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

/// Runs each behaviour above over SQLite and over MongoDB.
macro_rules! store_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let (store, _dir) = crate::helpers::sqlite_store().await;
                    super::$behaviour(store).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    let store = crate::helpers::mongo_store(stringify!($behaviour)).await;
                    super::$behaviour(store).await;
                }
            )*
        }
    };
}

pub(crate) use store_suite;

store_suite!(a_reachable_store_answers_ping);
