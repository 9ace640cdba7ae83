//! Live delivery: the subscriptions `messages`, `inbox` and `lobby`.
//!
//! A room subscription owes its client every message after some seq,
//! exactly once, in seq order (docs/architecture.md). It subscribes to the room's topic
//! first, then reads what it owes from the store, then follows the topic:
//! the event with the next seq goes out; a lower one was already sent; a
//! higher one, or a lagging channel, means messages went by unseen, and they
//! are read from the store. Messages are stored before they are published,
//! so the store always has what an event announces. The broker may lose
//! events; the store does not: nothing is lost, nothing is sent twice.
//!
//! Concurrent senders publish in whatever order their requests finish, so
//! seq 7 often arrives just before seq 6. A follower holds such early
//! events for a moment (`REORDER_WAIT`) for the missing one to arrive,
//! rather than have every subscriber of the room read the store at once;
//! only a gap that is still open after that is read from the store.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use async_stream::stream;
use futures_util::{StreamExt, stream::BoxStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::StreamMap;
use uuid::Uuid;

use super::{
    messages::{self, Position},
    rooms::{member_room, parse_identity},
};
use crate::{
    app::App,
    auth::Viewer,
    broker::{ChangeEvent, Event, LobbyEvent, MessageEvent, Subscription, Topic, TypingEvent},
    error::{Error, Problem, Result},
    store::{HistoryRange, MessageRecord, Stored},
};

/// How many messages or changes one store read fetches while catching up.
const CATCH_UP_PAGE: usize = 100;

/// How long a follower waits for a missing seq to arrive live before
/// reading it from the store. Publishing cannot be cancelled half-way
/// (`messages::send`), so a seq goes missing for good only when the broker
/// loses it; a busy server may take this long to publish it.
const REORDER_WAIT: Duration = Duration::from_millis(500);

/// How many early events a follower holds while waiting; more means it is
/// really behind, and reads the store at once.
const REORDER_HOLD: usize = 512;

type Messages = BoxStream<'static, Result<Arc<MessageEvent>>>;

/// One event of `roomEvents`.
#[derive(Clone)]
pub enum RoomEvent {
    /// A message posted (live, or in a replay one posted after the cursor).
    Posted(Arc<MessageEvent>),
    /// Any other stored change, with the state right after it.
    Changed(Arc<ChangeEvent>),
    /// Live only.
    Typing(Arc<TypingEvent>),
}

/// What a follower of one room delivers, in the order of a position each
/// item has (`messages`: seqs; `roomEvents`: revisions), with the rules of
/// the module doc.
trait Feed: Send + Sync + 'static {
    type Item: Send + 'static;

    /// What a live event is to this feed; it takes the event, so an item
    /// is the event's own and costs no copy.
    fn take(&self, event: Event) -> Taken<Self::Item>;

    /// Whether the follower ends after delivering `item`: the viewer's own
    /// departure, which `messages` does not deliver and `roomEvents` does.
    fn ends_after(&self, item: &Self::Item) -> bool;

    /// Whether a viewer found gone still gets what the store holds up to
    /// their departure (`roomEvents`: the event that says so) rather than
    /// nothing more (`messages`).
    const TELLS_DEPARTURE: bool;

    /// The room's stored items after position `sent`, a page of them.
    fn stored(
        &self,
        app: &App,
        room: Uuid,
        sent: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Self::Item)>>> + Send;
}

/// What a live event is to a feed.
enum Taken<Item> {
    /// An item at its position, delivered in order.
    Ordered(i64, Item),
    /// An item delivered as it comes (typing).
    Unordered(Item),
    /// The viewer's departure, which ends the feed unsaid.
    End,
    /// Nothing for this feed.
    Nothing,
}

/// `messages`: new messages by seq; the viewer's departure ends it unsaid.
struct MessageFeed {
    viewer: Uuid,
}

/// Whether `change` says `viewer` left or was removed.
fn departs(change: &Stored, viewer: Uuid) -> bool {
    matches!(change, Stored::Departure(departure) if departure.user_identity == viewer)
}

impl Feed for MessageFeed {
    type Item = Arc<MessageEvent>;
    const TELLS_DEPARTURE: bool = false;

    fn take(&self, event: Event) -> Taken<Self::Item> {
        match event {
            Event::Message(event) => Taken::Ordered(event.message.seq, event),
            Event::Change(change) if departs(&change.change, self.viewer) => Taken::End,
            _ => Taken::Nothing,
        }
    }

    fn ends_after(&self, _: &Self::Item) -> bool {
        false
    }

    async fn stored(&self, app: &App, room: Uuid, sent: i64) -> Result<Vec<(i64, Self::Item)>> {
        let range = HistoryRange {
            after: Some(sent),
            before: None,
            limit: CATCH_UP_PAGE,
            newest: false,
        };
        let missed = app.store.history(room, range).await?;
        app.metrics.gap_filled(missed.len());
        with_senders(app, missed)
            .await
            .map(|events| events.into_iter().map(|e| (e.message.seq, e)).collect())
    }
}

/// `roomEvents`: every change by revision, typing besides; it ends after
/// the viewer's departure.
struct EventFeed {
    viewer: Uuid,
}

impl Feed for EventFeed {
    type Item = RoomEvent;
    const TELLS_DEPARTURE: bool = true;

    fn take(&self, event: Event) -> Taken<Self::Item> {
        match event {
            Event::Message(event) => Taken::Ordered(event.message.rev, RoomEvent::Posted(event)),
            Event::Change(change) => {
                Taken::Ordered(change.change.rev(), RoomEvent::Changed(change))
            }
            Event::Typing(typing) => Taken::Unordered(RoomEvent::Typing(typing)),
            _ => Taken::Nothing,
        }
    }

    fn ends_after(&self, item: &Self::Item) -> bool {
        matches!(item, RoomEvent::Changed(change) if departs(&change.change, self.viewer))
    }

    async fn stored(&self, app: &App, room: Uuid, sent: i64) -> Result<Vec<(i64, Self::Item)>> {
        let changes = app.store.changes(room, sent, CATCH_UP_PAGE).await?;
        app.metrics.gap_filled(changes.len());
        let posted: Vec<MessageRecord> = changes
            .iter()
            .filter_map(|change| match change {
                Stored::Message(message) if message.posted_rev > sent => Some(message.clone()),
                _ => None,
            })
            .collect();
        let mut posted = with_senders(app, posted).await?.into_iter();
        Ok(changes
            .into_iter()
            .filter_map(|change| {
                let rev = change.rev();
                let event = match change {
                    Stored::Message(message) if message.posted_rev > sent => {
                        RoomEvent::Posted(posted.next()?)
                    }
                    Stored::Member(member) => {
                        let fresh = member.joined_rev > sent;
                        RoomEvent::Changed(Arc::new(ChangeEvent::new(
                            Stored::Member(member),
                            fresh,
                        )))
                    }
                    other => RoomEvent::Changed(Arc::new(ChangeEvent::new(other, false))),
                };
                Some((rev, event))
            })
            .collect())
    }
}

/// The messages of one room the viewer is in: with `after` (a cursor), every
/// stored message newer than it first; then each new one as it is sent. Ends
/// when the viewer leaves the room or it is deleted.
pub async fn room_messages(
    app: Arc<App>,
    viewer: &Viewer,
    room: &str,
    after: Option<&str>,
) -> Result<Messages> {
    let identity = parse_identity(room)?;
    let after = after
        .map(|cursor| messages::decode_cursor("after", cursor, identity))
        .transpose()?;
    let (room, _) = member_room(&app, viewer, room).await?;
    start(app, viewer.identity, room.identity, after).await
}

/// Every change of one room the viewer is in, in revision order: with
/// `after` (the cursor of an event or of a message) the stored ones newer
/// than it first, folded; then each as it is made, typing besides. Ends
/// after the event of the viewer's departure, or when the room is deleted.
pub async fn room_events(
    app: Arc<App>,
    viewer: &Viewer,
    room: &str,
    after: Option<&str>,
) -> Result<BoxStream<'static, Result<RoomEvent>>> {
    let identity = parse_identity(room)?;
    let after = after
        .map(|cursor| messages::decode_position("after", cursor, identity))
        .transpose()?;
    let (room, _) = member_room(&app, viewer, room).await?;
    let subscription = app.broker.subscribe(Topic::Room(room.identity)).await?;
    let Some(_) = app.store.member(room.identity, viewer.identity).await? else {
        return Err(Error::Forbidden);
    };
    let sent = match after {
        Some(Position::Event(rev)) => rev,
        Some(Position::Message(0)) => 0,
        Some(Position::Message(seq)) => {
            let at = app.store.messages_at(&[(room.identity, seq)]).await?;
            match at.first() {
                Some(message) => message.posted_rev,
                None => return Err(Error::bad_input("after", Problem::NotInRoom)),
            }
        }
        None => app
            .store
            .room(room.identity)
            .await?
            .map_or(0, |room| room.rev),
    };
    let feed = EventFeed {
        viewer: viewer.identity,
    };
    Ok(follow(
        app,
        feed,
        viewer.identity,
        room.identity,
        sent,
        subscription,
    ))
}

/// Subscribes, then follows `room` after seq `after` (default: its newest
/// message). Membership is checked again once subscribed: a viewer removed
/// in between would otherwise miss the event that ends the subscription.
async fn start(app: Arc<App>, viewer: Uuid, room: Uuid, after: Option<i64>) -> Result<Messages> {
    let subscription = app.broker.subscribe(Topic::Room(room)).await?;
    let Some(member) = app.store.member(room, viewer).await? else {
        return Err(Error::Forbidden);
    };
    let sent = match after {
        Some(after) => after,
        None => app
            .store
            .room(member.room_identity)
            .await?
            .map_or(0, |room| room.seq),
    };
    Ok(follow(
        app,
        MessageFeed { viewer },
        viewer,
        room,
        sent,
        subscription,
    ))
}

/// Delivers the items of `feed` in `room` after position `sent` (see the
/// module doc), until `viewer` loses access.
fn follow<F: Feed>(
    app: Arc<App>,
    feed: F,
    viewer: Uuid,
    room: Uuid,
    mut sent: i64,
    mut subscription: Subscription,
) -> BoxStream<'static, Result<F::Item>> {
    stream! {
        // The store may hold items owed already (a cursor from the past).
        let mut behind = true;
        // Whether the broker may have lost events since membership was last
        // read: a lost departure among them must not leave this follower
        // delivering a room the viewer is no longer in.
        let mut unsure = false;
        // Set when the viewer is found gone: deliver what the store still
        // has (the departure, for `roomEvents`), then end.
        let mut gone = false;
        // Items that came before their turn, by position, and when to stop
        // waiting for the ones before them.
        let mut early: BTreeMap<i64, F::Item> = BTreeMap::new();
        let mut give_up = tokio::time::Instant::now();
        loop {
            if behind {
                early.clear();
                if unsure {
                    unsure = false;
                    match app.store.member(room, viewer).await {
                        Ok(Some(_)) => {}
                        Ok(None) if F::TELLS_DEPARTURE => gone = true,
                        Ok(None) => return,
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    }
                }
                // Boxed, for the same reason: a follower spends most of its
                // life waiting for the broker, not reading the store.
                match Box::pin(feed.stored(&app, room, sent)).await {
                    Ok(missed) => {
                        behind = missed.len() == CATCH_UP_PAGE;
                        for (position, item) in missed {
                            sent = position;
                            let last = feed.ends_after(&item);
                            yield Ok(item);
                            if last {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                }
                if gone && !behind {
                    return;
                }
                continue;
            }
            // Biased: what has arrived goes first; the wait ends only when
            // nothing else is there.
            let received = tokio::select! {
                biased;
                received = subscription.recv() => received,
                () = tokio::time::sleep_until(give_up), if !early.is_empty() => {
                    (behind, unsure) = (true, true);
                    continue;
                }
            };
            let event = match received {
                Ok(Event::Resync) => {
                    (behind, unsure) = (true, true);
                    continue;
                }
                Ok(Event::RoomDeleted) | Err(RecvError::Closed) => return,
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, %room, "subscriber lagged; catching up from the store");
                    (behind, unsure) = (true, true);
                    continue;
                }
            };
            let (position, item) = match feed.take(event) {
                Taken::Ordered(position, item) => (position, item),
                Taken::Unordered(item) => {
                    yield Ok(item);
                    continue;
                }
                Taken::End => return,
                Taken::Nothing => continue,
            };
            // Saturating: a client's cursor may name the last position there can be.
            if position == sent.saturating_add(1) {
                sent = position;
                let last = feed.ends_after(&item);
                yield Ok(item);
                if last {
                    return;
                }
                while let Some(next) = early.remove(&sent.saturating_add(1)) {
                    sent = sent.saturating_add(1);
                    let last = feed.ends_after(&next);
                    yield Ok(next);
                    if last {
                        return;
                    }
                }
            } else if position > sent.saturating_add(1) {
                if early.is_empty() {
                    give_up = tokio::time::Instant::now() + REORDER_WAIT;
                }
                early.insert(position, item);
                if early.len() > REORDER_HOLD {
                    (behind, unsure) = (true, true);
                }
            }
        }
    }
    .boxed()
}

/// `missed` with their senders, as live events carry them.
async fn with_senders(app: &App, missed: Vec<MessageRecord>) -> Result<Vec<Arc<MessageEvent>>> {
    let senders = messages::senders(app, &missed).await?;
    missed
        .into_iter()
        .map(|message| {
            let sender = senders
                .get(&message.sender_identity)
                .cloned()
                .ok_or_else(|| Error::internal(anyhow::anyhow!("a message without its sender")))?;
            Ok(Arc::new(MessageEvent::new(message, sender)))
        })
        .collect()
}

/// Every new message in every room the viewer is in, including rooms joined
/// after it started, and none from rooms left: one room follower per room,
/// added as the viewer joins rooms, ended as they leave.
pub async fn inbox(app: Arc<App>, viewer: &Viewer) -> Result<Messages> {
    let viewer = viewer.identity;
    let mut joins = app.broker.subscribe(Topic::User(viewer)).await?;
    let mut followers = StreamMap::new();
    follow_all(&app, viewer, &mut followers).await?;
    Ok(stream! {
        loop {
            tokio::select! {
                joined = joins.recv() => match joined {
                    Ok(Event::Joined { room, seq }) if !followers.contains_key(&room) => {
                        match start(app.clone(), viewer, room, Some(seq)).await {
                            Ok(messages) => {
                                followers.insert(room, messages);
                            }
                            // Left again before we got here.
                            Err(Error::Forbidden) => {}
                            Err(error) => {
                                yield Err(error);
                                return;
                            }
                        }
                    }
                    Ok(Event::Resync) | Err(RecvError::Lagged(_)) => {
                        // Joins and departures may have gone by unseen: look
                        // the rooms up again.
                        if let Err(error) = follow_all(&app, viewer, &mut followers).await {
                            yield Err(error);
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                },
                Some((_, message)) = followers.next(), if !followers.is_empty() => {
                    // A room that failed would go quiet while the rest went
                    // on: end the inbox instead, so the client resubscribes.
                    let failed = message.is_err();
                    yield message;
                    if failed {
                        return;
                    }
                }
            }
        }
    }
    .boxed())
}

/// Follows each room of the viewer not followed yet, from its newest
/// message, and stops following the rooms the viewer is no longer in.
async fn follow_all(
    app: &Arc<App>,
    viewer: Uuid,
    followers: &mut StreamMap<Uuid, Messages>,
) -> Result<()> {
    let rooms = app.store.rooms_of_user(viewer).await?;
    let left: Vec<Uuid> = followers
        .keys()
        .filter(|followed| rooms.iter().all(|room| room.identity != **followed))
        .copied()
        .collect();
    for room in left {
        followers.remove(&room);
    }
    for room in rooms {
        if !followers.contains_key(&room.identity) {
            match start(app.clone(), viewer, room.identity, None).await {
                Ok(messages) => {
                    followers.insert(room.identity, messages);
                }
                Err(Error::Forbidden) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// The lobby, live: nothing is stored, so a client that falls behind skips
/// what it missed.
pub async fn lobby(app: &App) -> Result<BoxStream<'static, Arc<LobbyEvent>>> {
    let mut subscription = app.broker.subscribe(Topic::Lobby).await?;
    Ok(stream! {
        loop {
            match subscription.recv().await {
                Ok(Event::Lobby(event)) => yield event,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
    .boxed())
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::time::Instant;

    use super::*;
    use crate::{
        chat::rooms,
        config::Config,
        store::{NewMessage, Profile, RoomType, Sex, UserRecord, now},
    };

    /// A follower of a room, live: it has read what the store held and
    /// waits for the broker. With the app, the member it follows for, the
    /// room, and the dir that must outlive the app.
    struct Live {
        app: Arc<App>,
        member: Profile,
        room: Uuid,
        messages: Messages,
        _dir: tempfile::TempDir,
    }

    impl Live {
        async fn follower() -> Self {
            let dir = tempfile::tempdir().expect("a temporary data dir");
            let config = Config {
                data_dir: dir.path().to_owned(),
                jwt_secret: Some("reorder-window-test-secret-32-bytes!".into()),
                ..Config::default()
            };
            let app = Arc::new(App::open(config).await.expect("the app opens"));
            let at = now();
            let member = Profile {
                identity: Uuid::new_v4(),
                username: "ann".into(),
                nickname: "ann".into(),
                sex: Sex::Unknown,
                email: "ann@example.com".into(),
                avatar: None,
                created_at: at,
                updated_at: at,
            };
            let record = UserRecord {
                profile: member.clone(),
                password_hash: String::new(),
            };
            app.store.create_user(&record).await.expect("a user");
            let room = rooms::new_room(
                member.identity,
                RoomType::Group,
                "tea".into(),
                String::new(),
                None,
            );
            let room = rooms::create_room(&app, room, &[member.identity])
                .await
                .expect("a room")
                .identity;
            let viewer = Viewer {
                identity: member.identity,
                username: member.username.clone(),
            };
            let messages = room_messages(app.clone(), &viewer, &room.to_string(), None)
                .await
                .expect("subscribed");
            let mut live = Self {
                app,
                member,
                room,
                messages,
                _dir: dir,
            };
            let first = live.stored("first").await;
            live.publish(first).await;
            assert_eq!(live.next(1).await, ["first"]);
            live
        }

        /// Stores a message without announcing it; its event, to publish or not.
        async fn stored(&self, content: &str) -> Event {
            let new = NewMessage {
                identity: Uuid::now_v7(),
                room_identity: self.room,
                sender_identity: self.member.identity,
                content: content.into(),
                client_id: None,
                created_at: now(),
                reply_to: None,
            };
            let (message, _) = self.app.store.insert_message(&new).await.expect("stored");
            Event::Message(Arc::new(MessageEvent::new(message, self.member.clone())))
        }

        async fn publish(&self, event: Event) {
            self.app.broker.publish(Topic::Room(self.room), event).await;
        }

        /// Publishes `events` in order; the contents of the next `count`
        /// messages delivered, and how long they took to come.
        async fn publish_then_read(
            &mut self,
            events: Vec<Event>,
            count: usize,
        ) -> (Vec<String>, Duration) {
            let started = Instant::now();
            for event in events {
                self.publish(event).await;
            }
            let contents = self.next(count).await;
            (contents, started.elapsed())
        }

        /// The contents of the next `count` messages delivered.
        async fn next(&mut self, count: usize) -> Vec<String> {
            let mut contents = Vec::new();
            for _ in 0..count {
                // Paused time moves on whenever nothing else can happen, so
                // this fails at once if nothing would ever come.
                let next = tokio::time::timeout(Duration::from_secs(60), self.messages.next());
                let message = next
                    .await
                    .expect("a message within a minute")
                    .expect("the stream goes on")
                    .expect("no error");
                contents.push(message.message.content.clone());
            }
            contents
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_seq_that_never_arrives_live_is_read_from_the_store_once_the_wait_is_over() {
        let mut live = Live::follower().await;
        let _lost = live.stored("lost on the way").await;
        let early = live.stored("early").await;

        let (delivered, took) = live.publish_then_read(vec![early], 2).await;

        assert_eq!(delivered, ["lost on the way", "early"]);
        assert!(took >= REORDER_WAIT, "read only after the wait: {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_seq_that_arrives_within_the_wait_goes_out_before_the_early_one_at_once() {
        let mut live = Live::follower().await;
        let late = live.stored("late").await;
        let early = live.stored("early").await;

        let (delivered, took) = live.publish_then_read(vec![early, late], 2).await;

        assert_eq!(delivered, ["late", "early"]);
        assert!(took < REORDER_WAIT, "no wait for what arrived: {took:?}");
    }
}
