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

/// A database of the release before sharded clusters: membership unique by
/// (user, room), and a `messages_identity` the operator made plain to shard
/// `messages` (docs/deploy.md, "Sharded MongoDB"). The store starts on it,
/// leaves the identity index plain, and keeps memberships unique by the
/// room-first index that replaced the old one.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_store_starts_on_the_indexes_of_a_cluster_being_sharded() {
    use ::mongodb::bson::{Document, doc};
    let uri = crate::helpers::service("CHATROOM_TEST_MONGODB_URI");
    let name = crate::helpers::unique_name("sharded_indexes");
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = client.database(&name);
    let members = db.collection::<Document>("room_members");
    let old = ::mongodb::IndexModel::builder()
        .keys(doc! { "user_identity": 1, "room_identity": 1 })
        .options(
            ::mongodb::options::IndexOptions::builder()
                .name("room_members_user_room".to_owned())
                .unique(true)
                .build(),
        )
        .build();
    members.create_index(old).await.unwrap();
    let plain = ::mongodb::IndexModel::builder()
        .keys(doc! { "identity": 1 })
        .options(
            ::mongodb::options::IndexOptions::builder()
                .name("messages_identity".to_owned())
                .build(),
        )
        .build();
    db.collection::<Document>("messages")
        .create_index(plain)
        .await
        .unwrap();

    let store =
        chatroom::store::MongoStore::connect(&uri, &name, std::time::Duration::from_secs(30))
            .await
            .unwrap();

    let names = members.list_index_names().await.unwrap();
    assert!(
        names.contains(&"room_members_room_user".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"room_members_user_room".to_owned()),
        "{names:?}"
    );
    let identity = db
        .collection::<Document>("messages")
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .find(|index| {
            index.options.as_ref().and_then(|o| o.name.as_deref()) == Some("messages_identity")
        })
        .unwrap();
    assert_ne!(identity.options.and_then(|o| o.unique), Some(true));
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&store, RoomType::Group, &[alice]).await.identity;
    let added = store.add_members(tea, &[bob], now()).await.unwrap();
    assert_eq!(added.len(), 1);
    let duplicate = members
        .insert_one(doc! { "room_identity": tea.to_string(), "user_identity": bob.to_string() })
        .await;
    assert!(duplicate.is_err(), "memberships stay unique");
}
