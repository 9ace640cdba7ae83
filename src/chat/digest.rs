//! Digest mail (API.md, "Digest mail"): a user away for
//! `CHATROOM_DIGEST_AFTER` seconds with unread messages from others gets
//! one mail of them, then none until they have been online again.
//!
//! Every instance looks for users due one now and then; the store's claim
//! of an absence's digest (`Store::claim_digest`) lets exactly one instance
//! mail it. The store knows who is away because presence records each
//! coming and going (`chat::presence`), and an absence starts at
//! registration for a user never seen.

use std::{collections::HashMap, sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    app::App,
    error::Result,
    mail::{Digest, DigestRoom},
    store::{DigestDue, HistoryRange, MessageRecord, RoomType, now},
};

/// Users looked at per round; more wait for the next.
const USERS_PER_ROUND: usize = 100;

/// Messages read back from a room's newest for the newest one from others.
const NEWEST_READ: usize = 20;

/// How much of a message the mail quotes, in characters.
const OPENING_CHARS: usize = 80;

/// Rooms a digest lists, the most recently active first: a user in a
/// thousand rooms gets a readable mail, and the server reads the newest
/// messages of this many rooms, not of all.
const ROOMS_LISTED: usize = 20;

/// Looks for digests due, mails them, and does it again, until the server
/// shuts down; nothing when digests are off (`CHATROOM_DIGEST_AFTER=0`).
pub async fn keep(app: Arc<App>) {
    let after = app.config.digest_after_secs;
    if after == 0 {
        return;
    }
    // Often enough that a digest comes soon after its time, and never more
    // than once a second or less than once a minute.
    let every =
        Duration::from_secs(after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut rounds = tokio::time::interval(every);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rounds.tick() => {}
            () = app.shutdown.cancelled() => return,
        }
        if let Err(error) = round(&app).await {
            tracing::warn!(%error, "digest: a round failed; the next one tries again");
        }
    }
}

/// One look at the users due a digest: how many mails went out.
pub async fn round(app: &App) -> Result<usize> {
    let away =
        chrono::Duration::seconds(i64::try_from(app.config.digest_after_secs).unwrap_or(i64::MAX));
    let at = now();
    // A user with nothing unread is looked at again after as long as an
    // absence takes: what came meanwhile may make a digest.
    let due = app
        .store
        .digests_due(at - away, at - away, USERS_PER_ROUND)
        .await?;
    let mut sent = 0;
    for user in due {
        let rooms = unread_rooms(app, user.profile.identity).await?;
        if rooms.is_empty() {
            app.store.digest_checked(user.profile.identity, at).await?;
            continue;
        }
        if !app
            .store
            .claim_digest(user.profile.identity, user.away_since)
            .await?
        {
            continue;
        }
        if mail(app, &user, rooms).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Mails the digest this instance claimed, within the user's daily limit.
async fn mail(app: &App, user: &DigestDue, rooms: Vec<DigestRoom>) -> Result<bool> {
    let identity = user.profile.identity;
    if let Err(error) = app
        .limiter
        .claim_digest_mail(identity, app.config.digests_per_day)
        .await
    {
        tracing::info!(%error, user = %identity, "digest: over the user's daily mails, not sent");
        return Ok(false);
    }
    let digest = Digest {
        to: user.profile.email.clone(),
        name: user.profile.nickname.clone(),
        lang: user.lang,
        link: app.config.public_url(),
        rooms,
    };
    // The claim stays: a mail server that refused it is not asked again
    // for this absence, rather than every round.
    match app.mailer.send_digest(&digest).await {
        Ok(()) => Ok(true),
        Err(error) => {
            tracing::warn!(%error, user = %identity, "digest: the mail was not sent");
            Ok(false)
        }
    }
}

/// The user's rooms with unread messages from others: how many, and the
/// newest one's sender and opening words.
async fn unread_rooms(app: &App, user: Uuid) -> Result<Vec<DigestRoom>> {
    let rooms = app.store.rooms_of_user(user).await?;
    let ids: Vec<Uuid> = rooms.iter().map(|room| room.identity).collect();
    let memberships = app.store.memberships(user, &ids).await?;
    let counts = app.store.unread_counts(user, &memberships).await?;
    let mut unread = Vec::new();
    let with_unread = rooms
        .into_iter()
        .filter_map(|room| {
            let count = counts
                .get(&room.identity)
                .copied()
                .filter(|count| *count > 0)?;
            Some((room, count))
        })
        .take(ROOMS_LISTED);
    for (room, count) in with_unread {
        let read = memberships
            .iter()
            .find(|member| member.room_identity == room.identity)
            .map_or(0, |member| member.last_read_seq);
        let newest = app
            .store
            .history(
                room.identity,
                HistoryRange {
                    after: Some(read),
                    before: None,
                    limit: NEWEST_READ,
                    newest: true,
                },
            )
            .await?
            .into_iter()
            .rev()
            .find(|message| message.sender_identity != user && message.deleted_at.is_none());
        unread.push((room, count, newest));
    }
    let senders: Vec<Uuid> = unread
        .iter()
        .filter_map(|(_, _, newest)| newest.as_ref().map(|m| m.sender_identity))
        .collect();
    let senders: HashMap<Uuid, String> = app
        .store
        .users_by_identities(&senders)
        .await?
        .into_iter()
        .map(|sender| (sender.identity, sender.nickname))
        .collect();
    let others = private_partners(app, user, &unread).await?;
    Ok(unread
        .into_iter()
        .map(|(room, count, newest)| {
            let name = match room.room_type {
                RoomType::Group => room.name.clone(),
                RoomType::Private => others.get(&room.identity).cloned().unwrap_or_default(),
            };
            let (sender, opening) = match &newest {
                Some(message) => (
                    senders.get(&message.sender_identity).cloned(),
                    Some(opening(message)),
                ),
                None => (None, None),
            };
            DigestRoom {
                room: room.identity,
                name,
                unread: count,
                sender,
                opening,
            }
        })
        .collect())
}

/// The other member's nickname of each PRIVATE room: a PRIVATE room has no
/// name of its own.
async fn private_partners(
    app: &App,
    user: Uuid,
    unread: &[(crate::store::RoomRecord, u64, Option<MessageRecord>)],
) -> Result<HashMap<Uuid, String>> {
    let pairs: Vec<(Uuid, Uuid)> = unread
        .iter()
        .filter_map(|(room, _, _)| Some((room.identity, room.other_member(user)?)))
        .collect();
    let others: Vec<Uuid> = pairs.iter().map(|(_, other)| *other).collect();
    let names: HashMap<Uuid, String> = app
        .store
        .users_by_identities(&others)
        .await?
        .into_iter()
        .map(|other| (other.identity, other.nickname))
        .collect();
    Ok(pairs
        .into_iter()
        .filter_map(|(room, other)| Some((room, names.get(&other)?.clone())))
        .collect())
}

/// The first words of a message, cut at a character.
fn opening(message: &MessageRecord) -> String {
    let mut chars = message.content.chars();
    let opening: String = chars.by_ref().take(OPENING_CHARS).collect();
    match chars.next() {
        Some(_) => format!("{opening}…"),
        None => opening,
    }
}
