//! A real store with a test's hook run before each of its calls: to count
//! the calls, to hold one back (a store slow to answer, on cue), or to fail
//! one (a store that cannot answer it).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chatroom::error::{Error, Result};
use chatroom::store::{
    Counts, HistoryRange, Loaded, MemberRecord, MessageRecord, MessageRule, MessageSearch,
    NewMessage, Profile, ProfileUpdate, Record, RoomChanges, RoomRecord, RoomRule, Sent, Store,
    Stored, UserRecord,
};
use futures_util::future::BoxFuture;
use uuid::Uuid;

/// Run before each call, with the name of the store's method; the call
/// fails with its error.
type Hook = Box<dyn Fn(&'static str) -> BoxFuture<'static, Result<()>> + Send + Sync>;

pub struct WatchedStore {
    inner: Arc<dyn Store>,
    before: Hook,
}

impl WatchedStore {
    pub fn new(
        inner: Arc<dyn Store>,
        before: impl Fn(&'static str) -> BoxFuture<'static, Result<()>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner,
            before: Box::new(before),
        })
    }

    /// `inner`, and the number of calls made to it.
    pub fn counting(inner: Arc<dyn Store>) -> (Arc<Self>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let store = Self::new(inner, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        });
        (store, calls)
    }

    /// `inner`, with every call of `methods` failing as a store that does
    /// not answer.
    pub fn failing(inner: Arc<dyn Store>, methods: &'static [&'static str]) -> Arc<Self> {
        Self::new(inner, move |call| {
            Box::pin(async move {
                match methods.contains(&call) {
                    true => Err(Error::unavailable("store", "failed by the test")),
                    false => Ok(()),
                }
            })
        })
    }
}

macro_rules! watched {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait::async_trait]
        impl Store for WatchedStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> chatroom::error::Result<$out> {
                    (self.before)(stringify!($name)).await?;
                    self.inner.$name($($arg),*).await
                }
            )*

            fn export(&self) -> chatroom::store::RecordStream {
                // Not async: the hook's future is left to run alone.
                drop((self.before)("export"));
                self.inner.export()
            }
        }
    };
}

macro_rules! watched_people {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait::async_trait]
        impl chatroom::store::People for WatchedStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> chatroom::error::Result<$out> {
                    (self.before)(stringify!($name)).await?;
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

type Time = chrono::DateTime<chrono::Utc>;

watched_people! {
    block(blocker: Uuid, blocked: Uuid, at: Time) -> bool;
    unblock(blocker: Uuid, blocked: Uuid) -> bool;
    blocked_by(blocker: Uuid) -> Vec<Profile>;
    blocked_identities(blocker: Uuid) -> Vec<Uuid>;
    blocks_between(user: Uuid, others: &[Uuid]) -> Vec<Uuid>;
    has_blocked(blocker: Uuid, blocked: Uuid) -> bool;
    sharing_rooms(user: Uuid, others: &[Uuid]) -> Vec<Uuid>;
    contacts(user: Uuid) -> Vec<Uuid>;
    record_seen(seen: &[(Uuid, chatroom::store::Seen)]) -> ();
    all_gone(at: Time) -> u64;
    last_seen(users: &[Uuid]) -> Vec<(Uuid, Time)>;
    set_language(user: Uuid, lang: chatroom::error::Lang) -> ();
    email_digest(user: Uuid) -> Option<bool>;
    set_email_digest(user: Uuid, on: bool) -> ();
    digests_due(away_before: Time, checked_before: Time, limit: usize) -> Vec<chatroom::store::DigestDue>;
    digest_checked(user: Uuid, at: Time) -> ();
    claim_digest(user: Uuid, away_since: Time) -> bool;
}

watched! {
    ping() -> ();
    create_user(user: &UserRecord) -> ();
    user_by_identity(identity: Uuid) -> Option<Profile>;
    user_by_username(username: &str) -> Option<Profile>;
    login_record(username: &str) -> Option<UserRecord>;
    user_by_email(email: &str) -> Option<Profile>;
    update_profile(identity: Uuid, update: &ProfileUpdate) -> Option<Profile>;
    set_password_hash(identity: Uuid, password_hash: &str) -> bool;
    users_by_identities(identities: &[Uuid]) -> Vec<Profile>;
    search_users(prefix: &str, exclude: &[Uuid], limit: usize) -> Vec<Profile>;
    friends(user: Uuid) -> Vec<Profile>;
    create_room(room: &RoomRecord, members: &[Uuid]) -> ();
    room(identity: Uuid) -> Option<RoomRecord>;
    rooms_by_identities(identities: &[Uuid]) -> Vec<RoomRecord>;
    private_room(pair_key: &str) -> Option<RoomRecord>;
    rooms_of_user(user: Uuid) -> Vec<RoomRecord>;
    delete_room(room: Uuid) -> bool;
    member(room: Uuid, user: Uuid) -> Option<MemberRecord>;
    memberships(user: Uuid, rooms: &[Uuid]) -> Vec<MemberRecord>;
    room_counts(users: &[Uuid]) -> std::collections::HashMap<Uuid, u64>;
    members_of_rooms(rooms: &[Uuid]) -> Vec<MemberRecord>;
    add_members(room: Uuid, users: &[Uuid], joined_at: chrono::DateTime<chrono::Utc>) -> Vec<MemberRecord>;
    mark_read(room: Uuid, user: Uuid, up_to: Option<i64>, at: chrono::DateTime<chrono::Utc>) -> Option<(MemberRecord, bool)>;
    change_room(room: Uuid, rule: Arc<RoomRule>) -> RoomChanges;
    message(identity: Uuid) -> Option<MessageRecord>;
    messages_by_identities(identities: &[Uuid]) -> Vec<MessageRecord>;
    change_message(identity: Uuid, actor: Uuid, rule: Arc<MessageRule>) -> (MessageRecord, bool);
    changes(room: Uuid, after: i64, limit: usize) -> Vec<Stored>;
    insert_message(message: &NewMessage) -> (MessageRecord, bool);
    send_message(message: &NewMessage) -> Sent;
    history(room: Uuid, range: HistoryRange) -> Vec<MessageRecord>;
    messages_at(positions: &[(Uuid, i64)]) -> Vec<MessageRecord>;
    search_messages(search: &MessageSearch) -> Vec<MessageRecord>;
    unread_counts(user: Uuid, memberships: &[MemberRecord]) -> std::collections::HashMap<Uuid, u64>;
    room_by_number(number: &str) -> Option<RoomRecord>;
    counts() -> Counts;
    import(records: &[Record], skip_existing: bool) -> Loaded;
}
