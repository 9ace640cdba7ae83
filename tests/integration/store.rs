//! One behavioural suite over every Store backend, so they cannot drift apart.

use std::sync::Arc;

use chatroom::{
    error::{Entity, Error, Unique},
    store::{
        Counts, Departure, HistoryRange, Loaded, MemberRecord, MessageRecord, NewMessage, Profile,
        ProfileUpdate, Record, RoomRecord, RoomType, Sex, Store, UserRecord, now, pair_key,
    },
};
use chrono::Duration;
use futures_util::{StreamExt, TryStreamExt, future::join_all};
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

async fn a_created_user_reads_back_by_identity_username_and_email(store: Arc<dyn Store>) {
    let alice = user("Alice_1", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();

    assert_eq!(
        store.user_by_identity(alice.identity).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("Alice_1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_email("alice@example.com").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_identity(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.user_by_username("bob").await.unwrap(), None);
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
}

async fn only_a_login_reads_the_password_hash_back(store: Arc<dyn Store>) {
    let alice = record(&user("Alice_1", "alice@example.com"));
    store.create_user(&alice).await.unwrap();

    assert_eq!(
        store.login_record("alice_1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.login_record("bob").await.unwrap(), None);
}

async fn usernames_are_found_and_unique_ignoring_case(store: Arc<dyn Store>) {
    let alice = user("Alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();

    let found = store.user_by_username("aLICE").await.unwrap().unwrap();
    assert_eq!(found.username, "Alice", "kept as registered");

    let clash = store
        .create_user(&record(&user("ALICE", "other@example.com")))
        .await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Username))),
        "{clash:?}"
    );
}

async fn a_taken_email_is_a_conflict_on_email(store: Arc<dyn Store>) {
    store
        .create_user(&record(&user("alice", "same@example.com")))
        .await
        .unwrap();
    let clash = store
        .create_user(&record(&user("bob", "same@example.com")))
        .await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Email))),
        "{clash:?}"
    );
}

async fn twenty_concurrent_registrations_of_one_username_leave_one(store: Arc<dyn Store>) {
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_user(&record(&user("racer", &format!("racer{i}@example.com"))))
                .await
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|joined| joined.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1);
    assert_eq!(lost.len(), 19);
    for result in lost {
        assert!(
            matches!(result, Err(Error::Conflict(Unique::Username))),
            "{result:?}"
        );
    }
    let stored = store.user_by_username("RACER").await.unwrap().unwrap();
    assert_eq!(stored.username, "racer");
}

async fn a_profile_update_changes_only_what_it_names(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();
    let later = now() + chrono::Duration::seconds(1);

    let renamed = store
        .update_profile(
            alice.identity,
            &ProfileUpdate {
                nickname: Some("爱丽丝".into()),
                updated_at: later,
                ..ProfileUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.nickname, "爱丽丝");
    assert_eq!(renamed.sex, Sex::Female);
    assert_eq!(renamed.avatar, alice.avatar);
    assert_eq!(renamed.updated_at, later);
    assert_eq!(renamed.created_at, alice.created_at);

    let cleared = store
        .update_profile(
            alice.identity,
            &ProfileUpdate {
                sex: Some(Sex::Male),
                avatar: Some(None),
                updated_at: later,
                ..ProfileUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cleared.sex, cleared.avatar.clone()), (Sex::Male, None));
    assert_eq!(cleared.nickname, "爱丽丝");
    assert_eq!(
        store.user_by_identity(alice.identity).await.unwrap(),
        Some(cleared)
    );

    let nobody = store
        .update_profile(Uuid::new_v4(), &ProfileUpdate::default())
        .await
        .unwrap();
    assert_eq!(nobody, None);
}

async fn a_reachable_store_answers_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

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
        Some(MemberRecord {
            user_identity: members[1],
            room_identity: tea.identity,
            last_read_seq: 0,
            joined_at: tea.created_at,
        })
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

    let pairs = store
        .members_of_rooms(&[tea.identity, chess.identity])
        .await
        .unwrap();
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
    assert_eq!(
        store.members_of_rooms(&[second.identity]).await.unwrap(),
        []
    );

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
    let members = store.members_of_rooms(&identities).await.unwrap();
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

async fn added_members_start_at_the_current_seq_and_existing_ones_are_ignored(
    store: Arc<dyn Store>,
) {
    let [alice, bob, carol, dave] = [(); 4].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob]).await;
    for content in ["one", "two", "three"] {
        send(&*store, tea.identity, alice, content).await;
    }
    let joined_at = now() + Duration::seconds(1);

    let mut added = store
        .add_members(tea.identity, &[bob, carol, dave], joined_at)
        .await
        .unwrap();

    added.sort();
    let mut expected = vec![carol, dave];
    expected.sort();
    assert_eq!(added, expected);
    assert_eq!(
        store.member(tea.identity, carol).await.unwrap(),
        Some(MemberRecord {
            user_identity: carol,
            room_identity: tea.identity,
            last_read_seq: 3,
            joined_at,
        })
    );
    let bob_member = store.member(tea.identity, bob).await.unwrap().unwrap();
    assert_eq!(
        (bob_member.last_read_seq, bob_member.joined_at),
        (0, tea.created_at),
        "an existing member is left as it was"
    );
    assert_eq!(unread(&*store, carol, &[tea.identity]).await, [0]);
    let members: Vec<Uuid> = store
        .members_of_rooms(&[tea.identity])
        .await
        .unwrap()
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

async fn a_stored_message_moves_the_room_seq_and_last_message_at(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    let later = tea.created_at + Duration::seconds(5);
    let sent = NewMessage {
        client_id: Some("c-1".into()),
        created_at: later,
        ..message(tea.identity, alice, "你好")
    };

    let (stored, new) = store.insert_message(&sent).await.unwrap();

    assert!(new);
    assert_eq!(
        stored,
        MessageRecord {
            identity: sent.identity,
            room_identity: tea.identity,
            seq: 1,
            sender_identity: alice,
            content: "你好".into(),
            client_id: Some("c-1".into()),
            created_at: later,
        }
    );
    let moved = store.room(tea.identity).await.unwrap().unwrap();
    assert_eq!((moved.seq, moved.last_message_at), (1, Some(later)));
    assert_eq!(
        store.history(tea.identity, everything()).await.unwrap(),
        [stored]
    );
}

async fn a_message_to_a_missing_room_is_not_found(store: Arc<dyn Store>) {
    let lost = store
        .insert_message(&message(Uuid::new_v4(), Uuid::new_v4(), "anyone?"))
        .await;
    assert!(
        matches!(lost, Err(Error::NotFound(Entity::Room))),
        "{lost:?}"
    );
}

async fn a_members_sent_message_is_stored_and_comes_back_with_its_sender(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();
    let tea = create(&*store, RoomType::Group, &[alice.identity]).await;
    let sent = NewMessage {
        client_id: Some("c-1".into()),
        ..message(tea.identity, alice.identity, "hello")
    };

    let first = store.send_message(&sent).await.unwrap();
    let again = store
        .send_message(&NewMessage {
            identity: Uuid::new_v4(),
            ..sent.clone()
        })
        .await
        .unwrap();

    assert!(first.created);
    assert_eq!(first.sender, alice);
    assert_eq!(
        (first.message.identity, first.message.seq),
        (sent.identity, 1)
    );
    assert!(!again.created, "a retry with the client id stores nothing");
    assert_eq!((&again.message, &again.sender), (&first.message, &alice));
    assert_eq!(
        store.history(tea.identity, everything()).await.unwrap(),
        [first.message]
    );
}

async fn a_send_is_checked_for_room_then_membership_then_sender_and_refused_ones_store_nothing(
    store: Arc<dyn Store>,
) {
    let (alice, bob) = (
        user("alice", "alice@example.com"),
        user("bob", "bob@example.com"),
    );
    store.create_user(&record(&alice)).await.unwrap();
    store.create_user(&record(&bob)).await.unwrap();
    let gone = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice.identity, gone]).await;

    let nowhere = store
        .send_message(&message(Uuid::new_v4(), gone, "anyone?"))
        .await;
    let outsider = store
        .send_message(&message(tea.identity, bob.identity, "let me in"))
        .await;
    let nobody = store
        .send_message(&message(tea.identity, gone, "who am I?"))
        .await;

    assert!(
        matches!(nowhere, Err(Error::NotFound(Entity::Room))),
        "{nowhere:?}"
    );
    assert!(matches!(outsider, Err(Error::Forbidden)), "{outsider:?}");
    assert!(matches!(nobody, Err(Error::Unauthenticated)), "{nobody:?}");
    assert_eq!(store.room(tea.identity).await.unwrap().unwrap().seq, 0);
    assert!(
        store
            .history(tea.identity, everything())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn eight_concurrent_writers_take_seqs_one_to_two_hundred_without_holes(
    store: Arc<dyn Store>,
) {
    let senders: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let tea = create(&*store, RoomType::Group, &senders).await.identity;

    let writers = senders.iter().map(|&sender| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut taken = Vec::new();
            for i in 0..25 {
                let stored = send(&*store, tea, sender, &format!("{i}")).await;
                taken.push(stored.seq);
            }
            taken
        })
    });
    let per_writer: Vec<Vec<i64>> = join_all(writers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    for taken in &per_writer {
        assert!(
            taken.windows(2).all(|pair| pair[0] < pair[1]),
            "one writer's messages keep its order: {taken:?}"
        );
    }
    let mut all = per_writer.concat();
    all.sort_unstable();
    let expected: Vec<i64> = (1..=200).collect();
    assert_eq!(all, expected);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 200);
    let stored = store.history(tea, everything()).await.unwrap();
    assert_eq!(seqs(&stored), expected);
}

async fn ten_concurrent_retries_with_one_client_id_store_one_message(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    send(&*store, tea, bob, "before").await;

    let retries = (0..10).map(|_| {
        let store = store.clone();
        let retry = NewMessage {
            client_id: Some("c-1".into()),
            ..message(tea, alice, "hello")
        };
        tokio::spawn(async move { store.insert_message(&retry).await.unwrap() })
    });
    let results: Vec<(MessageRecord, bool)> = join_all(retries)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    let stored: Vec<&MessageRecord> = results
        .iter()
        .filter(|(_, new)| *new)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(stored.len(), 1, "exactly one retry stores the message");
    let first = stored[0];
    assert!(results.iter().all(|(m, _)| m == first), "{results:?}");
    assert_eq!(first.seq, 2);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 2);
    let history = store.history(tea, everything()).await.unwrap();
    assert_eq!(contents(&history), ["before", "hello"]);
}

async fn a_client_id_is_scoped_to_its_sender_and_room(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    let chess = create(&*store, RoomType::Group, &[alice]).await.identity;
    let with_id = |room: Uuid, sender: Uuid, content: &str| NewMessage {
        client_id: Some("same".into()),
        ..message(room, sender, content)
    };

    let (first, new) = store
        .insert_message(&with_id(tea, alice, "first"))
        .await
        .unwrap();
    assert!(new);
    let (_, new) = store
        .insert_message(&with_id(tea, bob, "bob's"))
        .await
        .unwrap();
    assert!(new, "another sender's client id is another message");
    let (_, new) = store
        .insert_message(&with_id(chess, alice, "elsewhere"))
        .await
        .unwrap();
    assert!(new, "another room's client id is another message");

    let (retried, new) = store
        .insert_message(&with_id(tea, alice, "edited retry"))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(retried, first);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 2);
}

async fn history_pages_both_ways_between_exclusive_bounds(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await.identity;
    let quiet = create(&*store, RoomType::Group, &[alice]).await.identity;
    for i in 1..=120 {
        send(&*store, tea, alice, &format!("m{i}")).await;
    }
    let slice =
        |after: Option<i64>, before: Option<i64>, limit: usize, newest: bool| HistoryRange {
            after,
            before,
            limit,
            newest,
        };
    let page = async |range: HistoryRange| seqs(&store.history(tea, range).await.unwrap());
    let span = |from: i64, to: i64| (from..=to).collect::<Vec<i64>>();

    let newest = store
        .history(tea, slice(None, None, 50, true))
        .await
        .unwrap();
    assert_eq!(seqs(&newest), span(71, 120));
    assert_eq!(contents(&newest[..2]), ["m71", "m72"]);
    assert_eq!(page(slice(None, Some(71), 50, true)).await, span(21, 70));
    assert_eq!(page(slice(None, Some(21), 50, true)).await, span(1, 20));
    assert_eq!(
        page(slice(None, Some(1), 50, true)).await,
        Vec::<i64>::new()
    );

    assert_eq!(page(slice(None, None, 50, false)).await, span(1, 50));
    assert_eq!(page(slice(Some(50), None, 50, false)).await, span(51, 100));
    assert_eq!(
        page(slice(Some(100), None, 50, false)).await,
        span(101, 120)
    );
    assert_eq!(
        page(slice(Some(120), None, 50, false)).await,
        Vec::<i64>::new()
    );
    assert_eq!(page(slice(Some(100), None, 50, true)).await, span(101, 120));

    assert_eq!(
        page(slice(Some(10), Some(15), 50, true)).await,
        span(11, 14)
    );
    assert_eq!(page(slice(Some(10), Some(15), 2, true)).await, [13, 14]);
    assert_eq!(page(slice(Some(10), Some(15), 2, false)).await, [11, 12]);
    assert_eq!(
        page(slice(Some(10), Some(11), 50, false)).await,
        Vec::<i64>::new()
    );

    assert_eq!(store.history(quiet, everything()).await.unwrap(), []);
}

async fn messages_at_returns_the_last_message_of_each_room(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let mut rooms = Vec::new();
    for count in 1..=3 {
        let room = create(&*store, RoomType::Group, &[alice]).await.identity;
        for i in 1..=count {
            send(&*store, room, alice, &format!("{count}-{i}")).await;
        }
        rooms.push((room, count));
    }
    let beyond = (rooms[0].0, 2);
    let nowhere = (Uuid::new_v4(), 1);
    let positions: Vec<(Uuid, i64)> = rooms.iter().copied().chain([beyond, nowhere]).collect();

    let mut last = store.messages_at(&positions).await.unwrap();

    last.sort_by_key(|m| m.seq);
    assert_eq!(contents(&last), ["1-1", "2-2", "3-3"]);
    assert_eq!(store.messages_at(&[]).await.unwrap(), []);
}

async fn unread_counts_only_others_messages_after_the_last_read_and_mark_read_clears_them(
    store: Arc<dyn Store>,
) {
    let [alice, bob, carol] = [(); 3].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    let quiet = create(&*store, RoomType::Group, &[alice, carol])
        .await
        .identity;
    for _ in 0..3 {
        send(&*store, tea, bob, "from bob").await;
    }
    for _ in 0..2 {
        send(&*store, tea, alice, "from alice").await;
    }

    assert_eq!(unread(&*store, alice, &[tea, quiet]).await, [3, 0]);
    assert_eq!(unread(&*store, bob, &[tea]).await, [2]);

    assert!(store.mark_read(tea, alice).await.unwrap());
    let alice_member = store.member(tea, alice).await.unwrap().unwrap();
    assert_eq!(alice_member.last_read_seq, 5);
    assert_eq!(unread(&*store, alice, &[tea, quiet]).await, [0, 0]);

    send(&*store, tea, bob, "after").await;
    assert_eq!(unread(&*store, alice, &[tea]).await, [1]);
    assert_eq!(
        unread(&*store, bob, &[tea]).await,
        [2],
        "own messages never count"
    );
}

async fn mark_read_is_false_for_a_non_member_and_a_missing_room(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await.identity;
    send(&*store, tea, alice, "hi").await;

    assert!(!store.mark_read(tea, Uuid::new_v4()).await.unwrap());
    assert!(!store.mark_read(Uuid::new_v4(), alice).await.unwrap());
    assert_eq!(
        store
            .member(tea, alice)
            .await
            .unwrap()
            .unwrap()
            .last_read_seq,
        0
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

    let memberships = store.memberships(a, &around(first, last)).await.unwrap();
    assert_eq!(memberships.len(), 2);
    assert_eq!(
        store
            .members_of_rooms(&around(first, last))
            .await
            .unwrap()
            .len(),
        4
    );

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
        .chain(unknown.iter().map(|&room| MemberRecord {
            user_identity: a,
            room_identity: room,
            last_read_seq: 0,
            joined_at: now(),
        }))
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

async fn friends_are_the_other_members_of_private_rooms_ordered_by_username(store: Arc<dyn Store>) {
    let [mia, zed, amy, bo, cy] = [
        user("mia", "mia@example.com"),
        user("Zed", "zed@example.com"),
        user("amy", "amy@example.com"),
        user("bo", "bo@example.com"),
        user("cy", "cy@example.com"),
    ];
    for u in [&mia, &zed, &amy, &bo, &cy] {
        store.create_user(&record(u)).await.unwrap();
    }
    create(&*store, RoomType::Private, &[mia.identity, zed.identity]).await;
    create(&*store, RoomType::Private, &[amy.identity, mia.identity]).await;
    create(
        &*store,
        RoomType::Group,
        &[mia.identity, bo.identity, zed.identity],
    )
    .await;

    assert_eq!(
        store.friends(mia.identity).await.unwrap(),
        [amy, zed.clone()],
        "ordered ignoring case; group members are not friends"
    );
    assert_eq!(store.friends(zed.identity).await.unwrap(), [mia]);
    assert_eq!(store.friends(bo.identity).await.unwrap(), []);
    assert_eq!(store.friends(cy.identity).await.unwrap(), []);
}

async fn search_finds_a_prefix_of_username_or_nickname_ignoring_case(store: Arc<dyn Store>) {
    let named = |username: &str, nickname: &str| Profile {
        nickname: nickname.into(),
        ..user(username, &format!("{username}@example.com"))
    };
    let viewer = named("alfred", "Al");
    let everyone = [
        viewer.clone(),
        named("alice", "Wonder"),
        named("Alina", "Lina"),
        named("al_x", "Underscore"),
        named("alxx", "Double"),
        named("bob", "Albert"),
        named("cy", "Émile"),
        named("dee", "100% sure"),
    ];
    for u in &everyone {
        store.create_user(&record(u)).await.unwrap();
    }
    let search = async |prefix: &str, limit: usize| -> Vec<String> {
        store
            .search_users(prefix, viewer.identity, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect()
    };

    assert_eq!(
        search("AL", 10).await,
        ["al_x", "alice", "Alina", "alxx", "bob"],
        "by username or nickname, ordered ignoring case, without the viewer"
    );
    assert_eq!(search("AL", 2).await, ["al_x", "alice"]);
    assert_eq!(search("al_", 10).await, ["al_x"], "`_` is literal");
    assert_eq!(
        search("10%", 10).await,
        Vec::<String>::new(),
        "`%` is literal"
    );
    assert_eq!(search("100%", 10).await, ["dee"]);
    assert_eq!(search("lina", 10).await, ["Alina"]);
    assert_eq!(search("é", 10).await, ["cy"]);
    assert_eq!(
        search("ice", 10).await,
        Vec::<String>::new(),
        "a prefix, not a substring"
    );
    let found = store
        .search_users("wOnDeR", viewer.identity, 10)
        .await
        .unwrap();
    assert_eq!(found, [everyone[1].clone()]);
}

async fn a_member_who_leaves_with_others_still_there_just_leaves(store: Arc<dyn Store>) {
    let [alice, bob, carol] = [(); 3].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob]).await;
    send(&*store, tea.identity, alice, "hi").await;

    assert_eq!(
        store.remove_member(tea.identity, bob).await.unwrap(),
        Departure::Left
    );

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
        store.remove_member(tea.identity, bob).await.unwrap(),
        Departure::NotAMember
    );
    assert_eq!(
        store.remove_member(tea.identity, carol).await.unwrap(),
        Departure::NotAMember
    );
    assert_eq!(
        store.remove_member(Uuid::new_v4(), alice).await.unwrap(),
        Departure::NotAMember
    );
}

async fn the_last_member_to_leave_deletes_the_room_and_its_history(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let pair = create(&*store, RoomType::Private, &[alice, bob]).await;
    send(&*store, pair.identity, alice, "hi").await;
    send(&*store, pair.identity, bob, "bye").await;

    assert_eq!(
        store.remove_member(pair.identity, alice).await.unwrap(),
        Departure::Left
    );
    assert_eq!(
        store.remove_member(pair.identity, bob).await.unwrap(),
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
    assert_eq!(store.members_of_rooms(&[tea]).await.unwrap(), []);
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

/// Everything [`Store::export`] gives, in its order.
async fn export_all(store: &dyn Store) -> Vec<Record> {
    store.export().try_collect().await.unwrap()
}

async fn counts_count_each_kind_of_record(store: Arc<dyn Store>) {
    assert_eq!(store.counts().await.unwrap(), Counts::default());
    let (alice, bob) = (user("alice", "a@example.com"), user("bob", "b@example.com"));
    store.create_user(&record(&alice)).await.unwrap();
    store.create_user(&record(&bob)).await.unwrap();
    let tea = create(&*store, RoomType::Group, &[alice.identity, bob.identity]).await;
    for _ in 0..3 {
        send(&*store, tea.identity, bob.identity, "hello").await;
    }

    let counts = store.counts().await.unwrap();

    assert_eq!(
        counts,
        Counts {
            users: 2,
            rooms: 1,
            members: 2,
            messages: 3
        }
    );
    assert_eq!(counts.total(), 8);
}

async fn a_room_is_found_by_its_number(store: Arc<dyn Store>) {
    let tea = create(&*store, RoomType::Group, &[Uuid::new_v4()]).await;

    assert_eq!(
        store.room_by_number(&tea.number).await.unwrap(),
        Some(tea.clone())
    );
    assert_eq!(store.room_by_number("no-such-room").await.unwrap(), None);
}

async fn an_export_gives_each_room_with_its_members_and_messages_then_every_user(
    store: Arc<dyn Store>,
) {
    let people = [
        user("alice", "a@example.com"),
        user("bob", "b@example.com"),
        user("carol", "c@example.com"),
    ];
    for person in &people {
        store.create_user(&record(person)).await.unwrap();
    }
    let [alice, bob, carol] = [0, 1, 2].map(|i| people[i].identity);
    let pair = create(&*store, RoomType::Private, &[alice, bob]).await;
    let tea = create(&*store, RoomType::Group, &[carol, alice, bob]).await;
    for content in ["hi", "hello"] {
        send(&*store, pair.identity, alice, content).await;
    }
    for content in ["one", "two", "three"] {
        send(&*store, tea.identity, carol, content).await;
    }
    store.mark_read(tea.identity, bob).await.unwrap();

    let records = export_all(&*store).await;

    let mut expected = Vec::new();
    let mut rooms = [pair.identity, tea.identity];
    rooms.sort();
    for room in rooms {
        expected.push(Record::Room(store.room(room).await.unwrap().unwrap()));
        for (_, user) in store.members_of_rooms(&[room]).await.unwrap() {
            let member = store.member(room, user).await.unwrap().unwrap();
            expected.push(Record::Member(member));
        }
        for message in store.history(room, everything()).await.unwrap() {
            expected.push(Record::Message(message));
        }
    }
    let mut users = people.to_vec();
    users.sort_by_key(|user| user.identity);
    expected.extend(users.iter().map(|user| Record::User(record(user))));
    assert_eq!(records, expected);
    assert!(
        records.contains(&Record::Member(MemberRecord {
            user_identity: bob,
            room_identity: tea.identity,
            last_read_seq: 3,
            joined_at: tea.created_at,
        })),
        "read positions travel"
    );
}

async fn an_export_taken_while_messages_arrive_has_each_room_whole_up_to_its_seq(
    store: Arc<dyn Store>,
) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let rooms = [
        create(&*store, RoomType::Group, &[alice, bob])
            .await
            .identity,
        create(&*store, RoomType::Group, &[alice, bob])
            .await
            .identity,
    ];
    for room in rooms {
        for _ in 0..20 {
            send(&*store, room, alice, "before").await;
        }
    }
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) && sent < 2_000 {
                for room in rooms {
                    send(&*store, room, alice, "during").await;
                    store.mark_read(room, bob).await.unwrap();
                }
                sent += 1;
            }
            sent
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let mut records = Vec::new();
    let mut export = store.export();
    while let Some(record) = export.next().await {
        records.push(record.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = writer.await.unwrap();

    assert!(sent > 0, "messages arrived during the export");
    let mut room_seq = None;
    let mut seqs = Vec::new();
    let check_room = |room_seq: Option<i64>, seqs: &mut Vec<i64>| {
        if let Some(seq) = room_seq {
            assert_eq!(
                *seqs,
                (1..=seq).collect::<Vec<_>>(),
                "each message up to the room's seq, once"
            );
        }
        seqs.clear();
    };
    for record in &records {
        match record {
            Record::Room(room) => {
                check_room(room_seq, &mut seqs);
                room_seq = Some(room.seq);
            }
            Record::Member(member) => {
                assert!(member.last_read_seq <= room_seq.unwrap(), "{member:?}");
            }
            Record::Message(message) => seqs.push(message.seq),
            Record::User(_) => {}
        }
    }
    check_room(room_seq, &mut seqs);
}

/// A group of two users with three messages, as records to import: the
/// first with a client id, bob having read up to seq 1.
fn records_to_import() -> Vec<Record> {
    let at = now() - Duration::days(30);
    let (alice, bob) = (
        Profile {
            created_at: at,
            updated_at: at,
            ..user("Alice", "alice@example.com")
        },
        Profile {
            avatar: None,
            created_at: at,
            updated_at: at,
            ..user("bob", "bob@example.com")
        },
    );
    let tea = RoomRecord {
        seq: 3,
        last_message_at: Some(at + Duration::minutes(3)),
        created_at: at,
        updated_at: at,
        ..room(RoomType::Group, &[alice.identity, bob.identity])
    };
    let messages = (1..=3).map(|seq| {
        Record::Message(MessageRecord {
            identity: Uuid::new_v4(),
            room_identity: tea.identity,
            seq,
            sender_identity: alice.identity,
            content: format!("message {seq}"),
            client_id: (seq == 1).then(|| "first-try".to_owned()),
            created_at: at + Duration::minutes(seq),
        })
    });
    let mut records = vec![
        Record::Room(tea.clone()),
        Record::Member(MemberRecord {
            user_identity: alice.identity,
            room_identity: tea.identity,
            last_read_seq: 3,
            joined_at: at,
        }),
        Record::Member(MemberRecord {
            user_identity: bob.identity,
            room_identity: tea.identity,
            last_read_seq: 1,
            joined_at: at,
        }),
    ];
    records.extend(messages);
    let mut users = [alice, bob];
    users.sort_by_key(|user| user.identity);
    records.extend(users.map(|user| Record::User(record(&user))));
    records
}

async fn imported_records_read_back_as_they_were_and_new_messages_continue_their_seq(
    store: Arc<dyn Store>,
) {
    let records = records_to_import();

    let loaded = store.import(&records, false).await.unwrap();

    assert_eq!(
        loaded,
        Loaded {
            inserted: 8,
            skipped: 0
        }
    );
    let [Record::Room(tea), _, _, Record::Message(first), ..] = &records[..] else {
        unreachable!("records_to_import starts with a room, two members and a message")
    };
    let user_named = |name: &str| {
        records.iter().find_map(|record| match record {
            Record::User(user) if user.profile.username == name => Some(&user.profile),
            _ => None,
        })
    };
    let (Some(alice), Some(bob)) = (user_named("Alice"), user_named("bob")) else {
        unreachable!("records_to_import has Alice and bob")
    };
    assert_eq!(store.room(tea.identity).await.unwrap().as_ref(), Some(tea));
    assert_eq!(
        store.room_by_number(&tea.number).await.unwrap().as_ref(),
        Some(tea)
    );
    assert_eq!(
        store.user_by_username("ALICE").await.unwrap().as_ref(),
        Some(alice)
    );
    assert_eq!(
        store
            .user_by_email("bob@example.com")
            .await
            .unwrap()
            .as_ref(),
        Some(bob)
    );
    assert_eq!(export_all(&*store).await, records, "what went in comes out");
    assert_eq!(unread(&*store, bob.identity, &[tea.identity]).await, [2]);

    let (next, new) = store
        .insert_message(&message(tea.identity, bob.identity, "after the move"))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(next.seq, 4);
    let retry = NewMessage {
        client_id: Some("first-try".into()),
        ..message(tea.identity, alice.identity, "message 1")
    };
    assert_eq!(
        store.insert_message(&retry).await.unwrap(),
        (first.clone(), false),
        "client ids still deduplicate"
    );
}

async fn importing_what_is_stored_is_a_conflict_unless_existing_records_are_skipped(
    store: Arc<dyn Store>,
) {
    let records = records_to_import();
    store.import(&records, false).await.unwrap();
    let stored = store.counts().await.unwrap();

    let again = store.import(&records, false).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    assert_eq!(store.counts().await.unwrap(), stored);

    let newcomer = user("carol", "carol@example.com");
    let mut with_newcomer = records.clone();
    with_newcomer.push(Record::User(record(&newcomer)));
    let merged = store.import(&with_newcomer, true).await.unwrap();

    assert_eq!(
        merged,
        Loaded {
            inserted: 1,
            skipped: 8
        }
    );
    assert_eq!(
        store.user_by_identity(newcomer.identity).await.unwrap(),
        Some(newcomer)
    );
    let taken = Profile {
        identity: Uuid::new_v4(),
        ..user("alice", "other@example.com")
    };
    let clash = store.import(&[Record::User(record(&taken))], true).await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Username))),
        "only a taken identity is skipped: {clash:?}"
    );
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

store_suite!(
    a_created_user_reads_back_by_identity_username_and_email,
    only_a_login_reads_the_password_hash_back,
    usernames_are_found_and_unique_ignoring_case,
    a_taken_email_is_a_conflict_on_email,
    twenty_concurrent_registrations_of_one_username_leave_one,
    a_profile_update_changes_only_what_it_names,
    a_reachable_store_answers_ping,
    a_group_room_reads_back_with_its_members_in_joining_order,
    a_pair_has_one_private_room_and_a_second_is_a_conflict_on_pair_key,
    ten_concurrent_private_rooms_for_one_pair_leave_one,
    a_taken_room_number_is_a_conflict_on_number,
    added_members_start_at_the_current_seq_and_existing_ones_are_ignored,
    a_stored_message_moves_the_room_seq_and_last_message_at,
    a_message_to_a_missing_room_is_not_found,
    a_members_sent_message_is_stored_and_comes_back_with_its_sender,
    a_send_is_checked_for_room_then_membership_then_sender_and_refused_ones_store_nothing,
    eight_concurrent_writers_take_seqs_one_to_two_hundred_without_holes,
    ten_concurrent_retries_with_one_client_id_store_one_message,
    a_client_id_is_scoped_to_its_sender_and_room,
    history_pages_both_ways_between_exclusive_bounds,
    messages_at_returns_the_last_message_of_each_room,
    unread_counts_only_others_messages_after_the_last_read_and_mark_read_clears_them,
    mark_read_is_false_for_a_non_member_and_a_missing_room,
    reads_over_more_rooms_than_fit_one_query_miss_nothing,
    a_users_rooms_come_most_recently_active_first,
    friends_are_the_other_members_of_private_rooms_ordered_by_username,
    search_finds_a_prefix_of_username_or_nickname_ignoring_case,
    a_member_who_leaves_with_others_still_there_just_leaves,
    the_last_member_to_leave_deletes_the_room_and_its_history,
    deleting_a_room_takes_its_members_and_messages,
    counts_count_each_kind_of_record,
    a_room_is_found_by_its_number,
    an_export_gives_each_room_with_its_members_and_messages_then_every_user,
    an_export_taken_while_messages_arrive_has_each_room_whole_up_to_its_seq,
    imported_records_read_back_as_they_were_and_new_messages_continue_their_seq,
    importing_what_is_stored_is_a_conflict_unless_existing_records_are_skipped,
);
