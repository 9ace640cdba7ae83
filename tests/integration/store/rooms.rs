//! Rooms and their members: created once, found, joined, left and deleted.

use std::sync::Arc;

use chatroom::{
    error::{Entity, Error, Unique},
    store::{MemberRecord, NewMessage, Role, RoomRecord, RoomType, Store, now, pair_key},
};
use chrono::Duration;
use futures_util::future::join_all;
use uuid::Uuid;

use super::{
    Departure, create, everything, leave, member_pairs, message, record, room, send, unread, user,
};

async fn a_group_room_reads_back_with_its_members_in_joining_order(store: Arc<dyn Store>) {
    let mut members = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    // Against identity order, so that joining order is what is checked.
    members.sort_by(|a, b| b.cmp(a));
    let tea = room(RoomType::Group, &members);
    store.create_room(&tea, &members).await.unwrap();
    let stranger = Uuid::new_v4();
    let chess = create(&*store, RoomType::Group, &[members[2], stranger]).await;

    assert_eq!(store.room(tea.identity).await.unwrap(), Some(tea.clone()));
    assert_eq!(store.room(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store.member(tea.identity, members[1]).await.unwrap(),
        Some(MemberRecord::joining(
            tea.identity,
            members[1],
            Role::Member,
            0,
            0,
            tea.created_at
        ))
    );
    assert_eq!(store.member(tea.identity, stranger).await.unwrap(), None);

    let mut rooms: Vec<Uuid> = store
        .memberships(members[2], &[tea.identity, chess.identity, Uuid::new_v4()])
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.room_identity)
        .collect();
    rooms.sort();
    let mut expected = vec![tea.identity, chess.identity];
    expected.sort();
    assert_eq!(rooms, expected);

    let pairs = member_pairs(&*store, &[tea.identity, chess.identity]).await;
    let members_of = |room: Uuid| -> Vec<Uuid> {
        pairs
            .iter()
            .filter(|(r, _)| *r == room)
            .map(|(_, user)| *user)
            .collect()
    };
    assert_eq!(pairs.len(), 5);
    assert_eq!(members_of(tea.identity), members);
    assert_eq!(members_of(chess.identity), [members[2], stranger]);
}

async fn a_pair_has_one_private_room_and_a_second_is_a_conflict_on_pair_key(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let first = create(&*store, RoomType::Private, &[alice, bob]).await;

    assert_eq!(
        store.private_room(&pair_key(bob, alice)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .private_room(&pair_key(alice, Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );

    let second = room(RoomType::Private, &[bob, alice]);
    let clash = store.create_room(&second, &[bob, alice]).await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::PrivatePair))),
        "{clash:?}"
    );
    assert_eq!(store.room(second.identity).await.unwrap(), None);
    assert_eq!(member_pairs(&*store, &[second.identity]).await, []);

    // GROUP rooms have no pair_key: the same two people may share many.
    create(&*store, RoomType::Group, &[alice, bob]).await;
    create(&*store, RoomType::Group, &[alice, bob]).await;
    assert_eq!(store.rooms_of_user(bob).await.unwrap().len(), 3);
}

async fn ten_concurrent_private_rooms_for_one_pair_leave_one(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let attempts: Vec<RoomRecord> = (0..10)
        .map(|i| match i % 2 {
            0 => room(RoomType::Private, &[alice, bob]),
            _ => room(RoomType::Private, &[bob, alice]),
        })
        .collect();

    let results = join_all(attempts.iter().cloned().map(|attempt| {
        let store = store.clone();
        tokio::spawn(async move {
            let identity = attempt.identity;
            store
                .create_room(&attempt, &[alice, bob])
                .await
                .map(|()| identity)
        })
    }))
    .await;

    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|joined| joined.unwrap())
        .partition(Result::is_ok);
    assert_eq!((won.len(), lost.len()), (1, 9));
    for result in lost {
        assert!(
            matches!(result, Err(Error::Conflict(Unique::PrivatePair))),
            "{result:?}"
        );
    }
    let winner = won[0].as_ref().copied().unwrap();
    let found = store.private_room(&pair_key(alice, bob)).await.unwrap();
    assert_eq!(found.map(|r| r.identity), Some(winner));
    let identities: Vec<Uuid> = attempts.iter().map(|r| r.identity).collect();
    let members = member_pairs(&*store, &identities).await;
    assert_eq!(members, [(winner, alice), (winner, bob)]);
}

async fn a_taken_room_number_is_a_conflict_on_number(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let first = create(&*store, RoomType::Group, &[alice]).await;

    let copy = RoomRecord {
        number: first.number.clone(),
        ..room(RoomType::Group, &[bob])
    };
    let clash = store.create_room(&copy, &[bob]).await;

    assert!(
        matches!(clash, Err(Error::Conflict(Unique::RoomNumber))),
        "{clash:?}"
    );
    assert_eq!(store.room(copy.identity).await.unwrap(), None);
    assert_eq!(store.rooms_of_user(bob).await.unwrap(), []);
}

async fn a_room_is_found_by_its_number(store: Arc<dyn Store>) {
    let tea = create(&*store, RoomType::Group, &[Uuid::new_v4()]).await;

    assert_eq!(
        store.room_by_number(&tea.number).await.unwrap(),
        Some(tea.clone())
    );
    assert_eq!(store.room_by_number("no-such-room").await.unwrap(), None);
}

async fn added_members_start_at_the_current_seq_and_existing_ones_are_ignored(
    store: Arc<dyn Store>,
) {
    let [alice, bob, carol, dave] = [(); 4].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob]).await;
    for content in ["one", "two", "three"] {
        send(&*store, tea.identity, alice, content).await;
    }
    let joined_at = now() + Duration::seconds(1);

    let added: Vec<Uuid> = store
        .add_members(tea.identity, &[bob, carol, dave], joined_at)
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.user_identity)
        .collect();

    assert_eq!(added, [carol, dave], "in the order given");
    assert_eq!(
        store.member(tea.identity, carol).await.unwrap(),
        Some(MemberRecord::joining(
            tea.identity,
            carol,
            Role::Member,
            3,
            4,
            joined_at
        ))
    );
    let bob_member = store.member(tea.identity, bob).await.unwrap().unwrap();
    assert_eq!(
        (bob_member.last_read_seq, bob_member.joined_at),
        (0, tea.created_at),
        "an existing member is left as it was"
    );
    assert_eq!(unread(&*store, carol, &[tea.identity]).await, [0]);
    let members: Vec<Uuid> = member_pairs(&*store, &[tea.identity])
        .await
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    assert_eq!(members, [alice, bob, carol, dave]);

    let again = store
        .add_members(tea.identity, &[carol], now())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let missing = store.add_members(Uuid::new_v4(), &[alice], now()).await;
    assert!(
        matches!(missing, Err(Error::NotFound(Entity::Room))),
        "{missing:?}"
    );
}

async fn a_users_rooms_come_most_recently_active_first(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let start = now();
    let at = |seconds: i64| start + Duration::seconds(seconds);
    let mut created = Vec::new();
    for seconds in 0..3 {
        let record = RoomRecord {
            created_at: at(seconds),
            updated_at: at(seconds),
            ..room(RoomType::Group, &[alice])
        };
        store.create_room(&record, &[alice]).await.unwrap();
        created.push(record.identity);
    }
    let [oldest, middle, newest] = [created[0], created[1], created[2]];
    create(&*store, RoomType::Group, &[Uuid::new_v4()]).await;
    let order = async || -> Vec<Uuid> {
        store
            .rooms_of_user(alice)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.identity)
            .collect()
    };

    assert_eq!(order().await, [newest, middle, oldest]);

    let woken = NewMessage {
        created_at: at(3),
        ..message(oldest, alice, "still here")
    };
    store.insert_message(&woken).await.unwrap();
    assert_eq!(order().await, [oldest, newest, middle]);
}

async fn a_member_who_leaves_with_others_still_there_just_leaves(store: Arc<dyn Store>) {
    let [alice, bob, carol] = [(); 3].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob]).await;
    send(&*store, tea.identity, alice, "hi").await;

    assert_eq!(leave(&*store, tea.identity, bob).await, Departure::Left);

    assert_eq!(store.member(tea.identity, bob).await.unwrap(), None);
    assert!(store.member(tea.identity, alice).await.unwrap().is_some());
    assert_eq!(store.room(tea.identity).await.unwrap().unwrap().seq, 1);
    assert_eq!(
        store
            .history(tea.identity, everything())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        leave(&*store, tea.identity, bob).await,
        Departure::NotAMember
    );
    assert_eq!(
        leave(&*store, tea.identity, carol).await,
        Departure::NotAMember
    );
    assert_eq!(
        leave(&*store, Uuid::new_v4(), alice).await,
        Departure::NotAMember
    );
}

async fn the_last_member_to_leave_deletes_the_room_and_its_history(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let pair = create(&*store, RoomType::Private, &[alice, bob]).await;
    send(&*store, pair.identity, alice, "hi").await;
    send(&*store, pair.identity, bob, "bye").await;

    assert_eq!(leave(&*store, pair.identity, alice).await, Departure::Left);
    assert_eq!(
        leave(&*store, pair.identity, bob).await,
        Departure::LeftAndRoomDeleted
    );

    assert_eq!(store.room(pair.identity).await.unwrap(), None);
    assert_eq!(
        store.history(pair.identity, everything()).await.unwrap(),
        []
    );
    assert_eq!(store.messages_at(&[(pair.identity, 2)]).await.unwrap(), []);
    assert_eq!(
        store.private_room(&pair_key(alice, bob)).await.unwrap(),
        None
    );
    // The pair is free for a new PRIVATE room.
    create(&*store, RoomType::Private, &[bob, alice]).await;
}

async fn deleting_a_room_takes_its_members_and_messages(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    let chess = create(&*store, RoomType::Group, &[alice]).await.identity;
    send(&*store, tea, alice, "hi").await;
    send(&*store, chess, alice, "kept").await;

    assert!(store.delete_room(tea).await.unwrap());

    assert_eq!(store.room(tea).await.unwrap(), None);
    assert_eq!(store.member(tea, bob).await.unwrap(), None);
    assert_eq!(member_pairs(&*store, &[tea]).await, []);
    assert_eq!(store.history(tea, everything()).await.unwrap(), []);
    let rooms: Vec<Uuid> = store
        .rooms_of_user(alice)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.identity)
        .collect();
    assert_eq!(rooms, [chess]);
    assert_eq!(store.history(chess, everything()).await.unwrap().len(), 1);
    assert!(!store.delete_room(tea).await.unwrap());
    let late = store.insert_message(&message(tea, alice, "late")).await;
    assert!(
        matches!(late, Err(Error::NotFound(Entity::Room))),
        "{late:?}"
    );
}

async fn reads_over_more_rooms_than_fit_one_query_miss_nothing(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    let bob = user("bob", "bob@example.com");
    store.create_user(&record(&alice)).await.unwrap();
    store.create_user(&record(&bob)).await.unwrap();
    let (a, b) = (alice.identity, bob.identity);
    let first = create(&*store, RoomType::Group, &[a, b]).await.identity;
    let last = create(&*store, RoomType::Group, &[a, b]).await.identity;
    send(&*store, first, b, "one").await;
    send(&*store, last, b, "one").await;
    send(&*store, last, b, "two").await;
    let unknown: Vec<Uuid> = (0..1200).map(|_| Uuid::new_v4()).collect();
    let around = |head: Uuid, tail: Uuid| -> Vec<Uuid> {
        std::iter::once(head)
            .chain(unknown.iter().copied())
            .chain([tail])
            .collect()
    };

    let mut users = store.users_by_identities(&around(a, b)).await.unwrap();
    users.sort_by(|x, y| x.username.cmp(&y.username));
    assert_eq!(users, [alice, bob]);

    let mut rooms = store
        .rooms_by_identities(&around(first, last))
        .await
        .unwrap();
    rooms.sort_by_key(|room| room.identity == last);
    assert_eq!(
        rooms.iter().map(|room| room.identity).collect::<Vec<_>>(),
        [first, last]
    );

    let memberships = store.memberships(a, &around(first, last)).await.unwrap();
    assert_eq!(memberships.len(), 2);
    assert_eq!(member_pairs(&*store, &around(first, last)).await.len(), 4);

    let positions: Vec<(Uuid, i64)> = std::iter::once((first, 1))
        .chain(unknown.iter().map(|&room| (room, 1)))
        .chain([(last, 2)])
        .collect();
    let mut found = store.messages_at(&positions).await.unwrap();
    found.sort_by_key(|m| m.seq);
    assert_eq!(
        found
            .iter()
            .map(|m| (m.room_identity, m.seq))
            .collect::<Vec<_>>(),
        [(first, 1), (last, 2)]
    );

    let many: Vec<MemberRecord> = memberships
        .iter()
        .cloned()
        .chain(
            unknown
                .iter()
                .map(|&room| MemberRecord::joining(room, a, Role::Member, 0, 0, now())),
        )
        .collect();
    let counts = store.unread_counts(a, &many).await.unwrap();
    assert_eq!(counts.get(&first), Some(&1));
    assert_eq!(counts.get(&last), Some(&2));
    assert!(
        counts
            .iter()
            .all(|(room, count)| [first, last].contains(room) || *count == 0)
    );
}

super::store_suite!(
    a_group_room_reads_back_with_its_members_in_joining_order,
    a_pair_has_one_private_room_and_a_second_is_a_conflict_on_pair_key,
    ten_concurrent_private_rooms_for_one_pair_leave_one,
    a_taken_room_number_is_a_conflict_on_number,
    a_room_is_found_by_its_number,
    added_members_start_at_the_current_seq_and_existing_ones_are_ignored,
    a_users_rooms_come_most_recently_active_first,
    a_member_who_leaves_with_others_still_there_just_leaves,
    the_last_member_to_leave_deletes_the_room_and_its_history,
    deleting_a_room_takes_its_members_and_messages,
    reads_over_more_rooms_than_fit_one_query_miss_nothing,
);

/// A database written by version 1 (documents without roles or revisions)
/// is brought to version 2 when a store connects to it.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_mongodb_database_of_version_1_gets_owners_and_revisions_on_connect() {
    use ::mongodb::bson::{DateTime, doc};

    let uri = crate::helpers::service("CHATROOM_TEST_MONGODB_URI");
    let name = crate::helpers::unique_name("mongo_version_1");
    let db = ::mongodb::Client::with_uri_str(&uri)
        .await
        .expect("MongoDB connects")
        .database(&name);
    let [room, ann, bob, cat] = [(); 4].map(|()| Uuid::new_v4().to_string());
    let at = DateTime::now();
    db.collection::<::mongodb::bson::Document>("rooms")
        .insert_one(doc! {
            "identity": &room, "number": "12345678", "name": "tea", "info": "",
            "creator_identity": &ann, "room_type": "GROUP", "seq": 2_i64,
            "last_message_at": at, "created_at": at, "updated_at": at, "members_version": 3_i64,
        })
        .await
        .expect("a room of version 1");
    for (user, joined) in [(&bob, 1), (&cat, 2)] {
        db.collection::<::mongodb::bson::Document>("room_members")
            .insert_one(doc! {
                "user_identity": user, "room_identity": &room, "last_read_seq": 0_i64,
                "joined_at": DateTime::from_millis(joined),
            })
            .await
            .expect("a member of version 1");
    }
    for seq in [1_i64, 2] {
        db.collection::<::mongodb::bson::Document>("messages")
            .insert_one(doc! {
                "identity": Uuid::new_v4().to_string(), "room_identity": &room, "seq": seq,
                "sender_identity": &bob, "content": "hi", "created_at": at,
            })
            .await
            .expect("a message of version 1");
    }

    let store =
        chatroom::store::MongoStore::connect(&uri, &name, std::time::Duration::from_secs(5))
            .await
            .expect("the store connects and migrates");

    let room = Uuid::parse_str(&room).expect("a uuid");
    let members = store.members_of_rooms(&[room]).await.expect("members");
    let roles: Vec<Role> = members.iter().map(|member| member.role).collect();
    assert_eq!(
        roles,
        [Role::Owner, Role::Member],
        "the creator left: the first to join owns it"
    );
    assert_eq!(
        store.room(room).await.expect("read").map(|r| r.rev),
        Some(2)
    );
    let changes = store.changes(room, 1, 10).await.expect("changes");
    assert_eq!(
        changes.len(),
        1,
        "the message after revision 1: {changes:?}"
    );
    assert!(members.iter().all(|m| m.user_identity.to_string() != ann));
    assert_eq!(members[1].user_identity.to_string(), cat);
}
