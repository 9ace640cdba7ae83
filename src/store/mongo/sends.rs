//! Messages stored in group commits, one room at a time.
//!
//! Every message takes its room's next seq and revision, so every message
//! writes its room's document. With a transaction per message, concurrent
//! senders into one room conflict on that document: the server lets one
//! commit and aborts the others with a write conflict, and they run again
//! after a pause, only to meet again. With 32 senders the server spent most
//! of its work on transactions it then threw away (docs/perf.md, issue 19).
//!
//! So each room has at most one batch in flight per instance. A message
//! joins its room's queue; the room's one writer task takes whatever waits
//! (up to [`MAX_BATCH`]) and stores it in one transaction: one `$inc` of the
//! room's `seq` and `rev` by the batch's size, one `insert_many`, one
//! commit. The transaction keeps every guarantee of one per message:
//!
//! - **No holes.** The counters and the messages commit together or not at
//!   all. An instance that dies with a batch open leaves nothing (the
//!   server aborts the transaction); its senders were not answered and
//!   their retries, by client id, find nothing stored and store it.
//! - **Visible in seq order.** Two batches of one room both write the
//!   room's document, so they commit one after the other: a reader never
//!   sees seq n+1 before n, which `chat::delivery` relies on when it reads a
//!   gap from the store and goes on from the last seq it read.
//!
//! Instances still conflict with each other on a busy room (and with
//! changes that take a revision, such as `mark_read`), and run again as
//! before; but one batch per instance contends, not one message per sender.
//!
//! The checks of a send (room, membership, sender, block, reply) are read
//! for the whole batch at once, before its transaction, as they were read
//! for each message before: a transaction keeps the room's document busy
//! for as long as it is open. Client ids already used are not looked up
//! first: the unique index on (room, sender, client id) is the judge, and
//! a retry is rare. A batch that meets one stored nothing; it reads which
//! of its client ids are taken, answers those with their first messages
//! and commits the rest. (The look-up before every message cost a read
//! each, and on SecantusDB, which does not serve that partial index, a
//! scan of the whole collection: docs/perf.md, issue 19.)

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Mutex, PoisonError},
};

use mongodb::{
    bson::{Bson, Document, doc},
    options::ReturnDocument,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    error::{Entity, Error, Result, Unique},
    store::{
        MessageRecord, NewMessage, People, Profile, RoomType, Store, WriteOutcome, check_reply,
    },
};

use super::{
    MongoStore,
    documents::{MessageDoc, identity_strings, to_bson_time},
};

/// At most this many messages share one transaction (the SQLite writer's
/// bound too): a burst of senders costs one commit instead of one each,
/// and the first of a batch never waits for more than this many others.
/// The driver splits an `insert_many` larger than a server message itself.
const MAX_BATCH: usize = 256;

/// One message waiting for its room's writer, and where its outcome goes.
struct Pending {
    message: NewMessage,
    /// Make the checks of [`Store::send_message`] first, and read the sender.
    send: bool,
    reply: oneshot::Sender<WriteOutcome>,
}

/// The messages waiting, by room. A room is here exactly while its writer
/// task runs: the first message of a quiet room starts one, and the task
/// takes the room out when it finds nothing more to store. The queue is
/// bounded by the requests in flight, which the connection caps and rate
/// limits bound. A std mutex: it is held for a push or a `drain`, never
/// across an await.
#[derive(Default)]
pub(super) struct Queues(Mutex<HashMap<Uuid, Vec<Pending>>>);

impl Queues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Pending>>> {
        // Nothing panics while it is held: the map is whole even if a
        // holder died.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes a room out of the queues when its writer task ends by a panic, so
/// that the room's next message starts a new one instead of waiting behind
/// a writer that is gone (the messages queued are dropped: their callers
/// get an error rather than wait for ever).
struct Writing<'q> {
    queues: &'q Queues,
    room: Uuid,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.queues.lock().remove(&self.room);
        }
    }
}

/// What becomes of one message of a batch once its checks are made.
enum Plan {
    /// Answered without storing: a check of its send failed.
    Done(WriteOutcome),
    /// Stored as the batch's `n`th new message.
    New(usize, Option<Profile>),
    /// A retry of the batch's `n`th new message (the same sender and client
    /// id): answered with it, as not stored by this call.
    Retry(usize, Option<Profile>),
}

impl MongoStore {
    /// Stores `message` with its room's next seq, in its room's next batch
    /// (see the module doc), after the checks of a send when `send`;
    /// answered once the batch is committed.
    pub(super) async fn write(&self, message: &NewMessage, send: bool) -> WriteOutcome {
        let room = message.room_identity;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            message: message.clone(),
            send,
            reply,
        };
        let start_writer = match self.queues.lock().entry(room) {
            Entry::Occupied(mut waiting) => {
                waiting.get_mut().push(pending);
                false
            }
            Entry::Vacant(quiet) => {
                quiet.insert(vec![pending]);
                true
            }
        };
        if start_writer {
            // A task of its own: a caller that goes away must not take the
            // writer of everyone queued behind it along.
            let store = self.clone();
            tokio::spawn(async move { store.write_room(room).await });
        }
        answer.await.map_err(|_| {
            Error::internal(anyhow::anyhow!("a room's message writer ended unanswered"))
        })?
    }

    /// The writer of `room`: stores what waits, a batch at a time, until
    /// nothing does.
    async fn write_room(&self, room: Uuid) {
        let _writing = Writing {
            queues: &self.queues,
            room,
        };
        loop {
            let batch: Vec<Pending> = {
                let mut queues = self.queues.lock();
                let Some(waiting) = queues.get_mut(&room) else {
                    return;
                };
                if waiting.is_empty() {
                    queues.remove(&room);
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            let outcomes = self.write_batch(room, &batch).await;
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                // Ignored when the caller is gone: its message is stored all the same.
                pending.reply.send(outcome).ok();
            }
        }
    }

    /// Stores one batch of `room`; one outcome per message, in order.
    async fn write_batch(&self, room: Uuid, batch: &[Pending]) -> Vec<WriteOutcome> {
        let plans = match self.plan(room, batch).await {
            Ok(plans) => plans,
            Err(failure) => return copies(&failure, batch.len()),
        };
        let news: Vec<&NewMessage> = batch
            .iter()
            .zip(&plans)
            .filter(|(_, plan)| matches!(plan, Plan::New(..)))
            .map(|(pending, _)| &pending.message)
            .collect();
        let stored = self.store_new(room, &news).await;
        plans
            .into_iter()
            .map(|plan| match plan {
                Plan::Done(outcome) => outcome,
                Plan::New(n, sender) => match &stored[n] {
                    Ok((message, created)) => Ok((message.clone(), *created, sender)),
                    Err(failure) => Err(failure.copy_for_another()),
                },
                Plan::Retry(n, sender) => match &stored[n] {
                    Ok((message, _)) => Ok((message.clone(), false, sender)),
                    Err(failure) => Err(failure.copy_for_another()),
                },
            })
            .collect()
    }

    /// Reads what the batch's messages are checked against, all at once,
    /// and decides each one's [`Plan`].
    async fn plan(&self, room: Uuid, batch: &[Pending]) -> Result<Vec<Plan>> {
        let sends: Vec<&NewMessage> = batch
            .iter()
            .filter(|pending| pending.send)
            .map(|pending| &pending.message)
            .collect();
        let mut senders: Vec<Uuid> = sends.iter().map(|m| m.sender_identity).collect();
        senders.sort_unstable();
        senders.dedup();
        let replied: Vec<Uuid> = sends.iter().filter_map(|m| m.reply_to).collect();
        let checks = async {
            if sends.is_empty() {
                return Ok(None);
            }
            let room_key = room.to_string();
            let (found, members, users, replied) = futures_util::try_join!(
                self.room(room),
                self.timed(self.members.distinct(
                    "user_identity",
                    doc! {
                        "room_identity": &room_key,
                        "user_identity": { "$in": identity_strings(&senders) },
                    },
                )),
                self.users_by_identities(&senders),
                self.replied_in(&room_key, &replied),
            )?;
            Ok::<_, Error>(Some((found, members, users, replied)))
        };
        let checks = checks.await?;
        let checked = match checks {
            None => batch.iter().map(|_| Ok(None)).collect(),
            Some((found, members, users, replied)) => {
                let blocked = match &found {
                    Some(found) if found.room_type == RoomType::Private => {
                        self.blocked_senders(found, &senders).await?
                    }
                    _ => Vec::new(),
                };
                let members: Vec<String> = members
                    .into_iter()
                    .filter_map(|member| match member {
                        Bson::String(member) => Some(member),
                        _ => None,
                    })
                    .collect();
                let users: HashMap<Uuid, Profile> = users
                    .into_iter()
                    .map(|user| (user.identity, user))
                    .collect();
                let replied: HashMap<Uuid, MessageRecord> = replied
                    .into_iter()
                    .map(|message| (message.identity, message))
                    .collect();
                let check = |message: &NewMessage| -> Result<Profile> {
                    let found = found.as_ref().ok_or(Error::NotFound(Entity::Room))?;
                    let sender = message.sender_identity;
                    if !members.contains(&sender.to_string()) {
                        return Err(Error::Forbidden);
                    }
                    let profile = users.get(&sender).ok_or(Error::Unauthenticated)?;
                    if blocked.contains(&sender) {
                        return Err(Error::Forbidden);
                    }
                    if let Some(reply_to) = message.reply_to {
                        check_reply(found, replied.get(&reply_to))?;
                    }
                    Ok(profile.clone())
                };
                batch
                    .iter()
                    .map(|pending| match pending.send {
                        true => check(&pending.message).map(Some),
                        false => Ok(None),
                    })
                    .collect::<Vec<_>>()
            }
        };
        let mut new_ids: HashMap<(Uuid, &str), usize> = HashMap::new();
        let mut news = 0;
        let mut plans = Vec::with_capacity(batch.len());
        for (pending, checked) in batch.iter().zip(checked) {
            let sender = match checked {
                Ok(sender) => sender,
                Err(refused) => {
                    plans.push(Plan::Done(Err(refused)));
                    continue;
                }
            };
            let message = &pending.message;
            if let Some(client_id) = message.client_id.as_deref() {
                match new_ids.entry((message.sender_identity, client_id)) {
                    Entry::Occupied(first) => {
                        plans.push(Plan::Retry(*first.get(), sender));
                        continue;
                    }
                    Entry::Vacant(first) => {
                        first.insert(news);
                    }
                }
            }
            plans.push(Plan::New(news, sender));
            news += 1;
        }
        Ok(plans)
    }

    /// The messages among `identities` that are in `room`: the messages
    /// replied to, which must be (a reply to another room's is refused as
    /// one to no message is). Asked with the room, so that on a sharded
    /// cluster it goes to the room's shard only (docs/deploy.md).
    async fn replied_in(&self, room: &str, identities: &[Uuid]) -> Result<Vec<MessageRecord>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        self.all(self.messages.find(doc! {
            "room_identity": room,
            "identity": { "$in": identity_strings(identities) },
        }))
        .await?
        .into_iter()
        .map(MessageDoc::into_record)
        .collect()
    }

    /// The senders among `senders` whom the other member of the PRIVATE
    /// room `room` blocked.
    async fn blocked_senders(
        &self,
        room: &crate::store::RoomRecord,
        senders: &[Uuid],
    ) -> Result<Vec<Uuid>> {
        let mut blocked = Vec::new();
        // A PRIVATE room has two members: at most two reads.
        for &sender in senders {
            if let Some(other) = room.other_member(sender)
                && self.has_blocked(other, sender).await?
            {
                blocked.push(sender);
            }
        }
        Ok(blocked)
    }

    /// The messages of `room` already stored under the client ids of
    /// `news`, by sender and client id.
    async fn firsts(
        &self,
        room: Uuid,
        news: &[&NewMessage],
    ) -> Result<HashMap<(Uuid, String), MessageRecord>> {
        let used: Vec<Document> = news
            .iter()
            .filter_map(|message| {
                let client_id = message.client_id.as_ref()?;
                Some(doc! {
                    "sender_identity": message.sender_identity.to_string(),
                    "client_id": client_id,
                })
            })
            .collect();
        if used.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self
            .all(
                self.messages
                    .find(doc! { "room_identity": room.to_string(), "$or": used }),
            )
            .await?;
        let mut firsts = HashMap::with_capacity(found.len());
        for first in found {
            let first = first.into_record()?;
            if let Some(client_id) = first.client_id.clone() {
                firsts.insert((first.sender_identity, client_id), first);
            }
        }
        Ok(firsts)
    }

    /// Stores `news` with the room's next seqs, in one transaction; one
    /// outcome each. A client id found taken (a retry of a message stored
    /// before) makes the transaction store nothing: the ones taken are read
    /// once and answered with their first messages, and the rest committed
    /// again. A client id or identity still taken after that (a retry
    /// racing this batch, perhaps through another instance) sends each
    /// message through a transaction of its own, where that race has its
    /// answer.
    async fn store_new(
        &self,
        room: Uuid,
        news: &[&NewMessage],
    ) -> Vec<Result<(MessageRecord, bool)>> {
        let mut outcomes: Vec<Option<Result<(MessageRecord, bool)>>> = Vec::new();
        outcomes.resize_with(news.len(), || None);
        let mut looked_up = false;
        loop {
            let open: Vec<usize> = (0..news.len()).filter(|&n| outcomes[n].is_none()).collect();
            let batch: Vec<&NewMessage> = open.iter().map(|&n| news[n]).collect();
            if batch.is_empty() {
                break;
            }
            let committed = self.commit_new(room, &batch).await;
            let failure = match committed {
                Ok(Some(stored)) => {
                    for (n, message) in open.into_iter().zip(stored) {
                        outcomes[n] = Some(Ok((message, true)));
                    }
                    break;
                }
                Ok(None) => Error::NotFound(Entity::Room),
                Err(Error::Conflict(Unique::ClientId)) if !looked_up => {
                    looked_up = true;
                    match self.firsts(room, &batch).await {
                        Ok(firsts) => {
                            for n in open {
                                let message = news[n];
                                let Some(client_id) = message.client_id.clone() else {
                                    continue;
                                };
                                if let Some(first) =
                                    firsts.get(&(message.sender_identity, client_id))
                                {
                                    outcomes[n] = Some(Ok((first.clone(), false)));
                                }
                            }
                            continue;
                        }
                        Err(failure) => failure,
                    }
                }
                Err(Error::Conflict(Unique::ClientId | Unique::Identity)) => {
                    for n in open {
                        outcomes[n] = Some(self.insert_alone(news[n]).await);
                    }
                    break;
                }
                Err(failure) => failure,
            };
            for n in open {
                outcomes[n] = Some(Err(failure.copy_for_another()));
            }
            break;
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(Error::internal(anyhow::anyhow!(
                        "a message of a batch left unanswered"
                    )))
                })
            })
            .collect()
    }

    /// Stores one message in a transaction of its own: the way through the
    /// races of retries with one client id.
    async fn insert_alone(&self, message: &NewMessage) -> Result<(MessageRecord, bool)> {
        let first_with_client_id = message.client_id.as_ref().map(|client_id| {
            doc! {
                "room_identity": message.room_identity.to_string(),
                "sender_identity": message.sender_identity.to_string(),
                "client_id": client_id,
            }
        });
        let stored = self.commit_new(message.room_identity, &[message]).await;
        match (stored, first_with_client_id) {
            (Ok(Some(mut stored)), _) => match stored.pop() {
                Some(stored) => Ok((stored, true)),
                None => Err(Error::internal(anyhow::anyhow!(
                    "a message committed unseen"
                ))),
            },
            (Ok(None), _) => Err(Error::NotFound(Entity::Room)),
            // A retry of the same message committed since the batch read
            // the client ids: the insert failed on the unique index and the
            // transaction was aborted, its seq with it. (Or this call's own
            // first attempt, when the transaction ran again after it
            // committed.)
            (Err(Error::Conflict(Unique::ClientId)), Some(filter)) => {
                match self.timed(self.messages.find_one(filter)).await? {
                    Some(first) => {
                        let first = first.into_record()?;
                        let mine = first.identity == message.identity;
                        Ok((first, mine))
                    }
                    None => Err(Error::internal(anyhow::anyhow!(
                        "client_id {:?} taken by no stored message",
                        message.client_id
                    ))),
                }
            }
            // A transaction run again after a commit whose outcome was
            // unknown, when the first commit had gone through: the message
            // is stored, by this call, under the identity made for it.
            (Err(Error::Conflict(Unique::Identity)), _) => {
                let mine = doc! { "identity": message.identity.to_string() };
                match self.timed(self.messages.find_one(mine)).await? {
                    Some(stored) => Ok((stored.into_record()?, true)),
                    None => Err(Error::Conflict(Unique::Identity)),
                }
            }
            (Err(error), _) => Err(error),
        }
    }

    /// Takes `news.len()` seqs and revisions of `room` and inserts `news`
    /// with them, in one transaction; `None` when the room does not exist.
    /// Its failures as they are.
    async fn commit_new(
        &self,
        room: Uuid,
        news: &[&NewMessage],
    ) -> Result<Option<Vec<MessageRecord>>> {
        let Some(last) = news.last() else {
            return Ok(Some(Vec::new()));
        };
        let context = (room.to_string(), news, last.created_at);
        self.transaction(&context, |store, session, (room, news, at)| {
            Box::pin(async move {
                let count = i64::try_from(news.len()).unwrap_or(i64::MAX);
                let Some(found) = store
                    .rooms
                    .find_one_and_update(
                        doc! { "identity": &*room },
                        doc! {
                            "$inc": { "seq": count, "rev": count },
                            "$set": { "last_message_at": to_bson_time(*at) },
                        },
                    )
                    .return_document(ReturnDocument::After)
                    .session(&mut *session)
                    .await?
                else {
                    return Ok(None);
                };
                let (seq, rev) = (found.seq - count, found.rev.unwrap_or(found.seq) - count);
                let stored: Vec<MessageRecord> = news
                    .iter()
                    .zip(1..)
                    .map(|(message, place)| message.at(seq + place, rev + place))
                    .collect();
                store
                    .messages
                    .insert_many(stored.iter().map(MessageDoc::from_record))
                    .session(&mut *session)
                    .await?;
                Ok(Some(stored))
            })
        })
        .await
    }
}

/// `failure` for each of `count` callers.
fn copies<T>(failure: &Error, count: usize) -> Vec<Result<T>> {
    (0..count)
        .map(|_| Err(failure.copy_for_another()))
        .collect()
}
