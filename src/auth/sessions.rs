//! Which valid tokens still count. A token is tied to the password its user
//! had when it was issued (`Grant::password`); after a password change only
//! the session that made the change (kept in the kv for a token's lifetime)
//! goes on with the old one, on every instance, at once.
//!
//! Every request and socket asks. What a user's tokens must carry is kept
//! in this process (an LRU of users) and dropped when any instance says the
//! user changed their password (`Topic::Sessions`), or all of it when the
//! broker may have lost such a word (`Resync`). Live sockets register a
//! signal of their own per user ([`Sessions::watch`]): a change wakes only
//! the sockets of its user, which ask again. (A channel every socket polled
//! cost each socket a lock of one shared mutex per frame it wrote.)

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use lru::LruCache;
use tokio::sync::{Notify, broadcast::error::RecvError};
use uuid::Uuid;

use super::{Credentials, Grant, Viewer};
use crate::{
    app::App,
    broker::{Event, Subscription},
    error::Result,
};

/// Users whose current password is kept in one process.
const KNOWN_USERS: NonZeroUsize = NonZeroUsize::new(100_000).unwrap();

/// What a user's tokens must carry to count.
struct Current {
    /// The fingerprint of the user's password hash; `None`: no such user.
    password: Option<String>,
    /// The session that changed the password last, which goes on.
    kept: Option<Uuid>,
}

/// Whose tokens may have stopped counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    User(Uuid),
    /// Changes may have gone unheard: everyone asks again.
    Everyone,
}

pub struct Sessions {
    known: Mutex<LruCache<Uuid, Arc<Current>>>,
    /// Counts changes heard, so that an answer read from the store while a
    /// change went by is not kept.
    heard: AtomicU64,
    /// The signals of the live sockets, by user; a socket's goes when it ends.
    watchers: Mutex<HashMap<Uuid, Vec<Weak<Notify>>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            known: Mutex::new(LruCache::new(KNOWN_USERS)),
            heard: AtomicU64::new(0),
            watchers: Mutex::default(),
        }
    }
}

/// The kv key of the session that changed `user`'s password last.
fn kept_key(user: Uuid) -> String {
    format!("session:kept:{user}")
}

impl Sessions {
    fn known(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, Arc<Current>>> {
        crate::lock(&self.known)
    }

    fn watchers(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Weak<Notify>>>> {
        crate::lock(&self.watchers)
    }

    /// Has `signal` woken whenever a token of `user` may have stopped
    /// counting, for as long as the signal lives.
    pub fn watch(&self, user: Uuid, signal: &Arc<Notify>) {
        let mut watchers = self.watchers();
        let signals = watchers.entry(user).or_default();
        signals.retain(|signal| signal.strong_count() > 0);
        signals.push(Arc::downgrade(signal));
    }

    /// Forgets what was known of whom `change` names, and wakes their sockets.
    pub fn heard(&self, change: Change) {
        self.heard.fetch_add(1, Ordering::SeqCst);
        let mut watchers = self.watchers();
        let wake = |signals: &mut Vec<Weak<Notify>>| {
            signals.retain(|signal| match signal.upgrade() {
                Some(signal) => {
                    signal.notify_one();
                    true
                }
                None => false,
            });
        };
        match change {
            Change::User(user) => {
                self.known().pop(&user);
                if let Some(signals) = watchers.get_mut(&user) {
                    wake(signals);
                }
            }
            Change::Everyone => {
                self.known().clear();
                watchers.values_mut().for_each(wake);
            }
        }
        watchers.retain(|_, signals| !signals.is_empty());
    }

    /// Follows `Topic::Sessions` for as long as the broker runs.
    pub async fn follow(self: Arc<Self>, mut subscription: Subscription) {
        loop {
            match subscription.recv().await {
                Ok(Event::PasswordChanged { user }) => self.heard(Change::User(user)),
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => self.heard(Change::Everyone),
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// Whether the token of `viewer` that grants `grant` still counts: issued
/// under the user's current password, or by the session that changed it.
pub async fn admits(app: &App, viewer: &Viewer, grant: &Grant) -> Result<bool> {
    let sessions = &app.sessions;
    let found = sessions.known().get(&viewer.identity).cloned();
    let current = match found {
        Some(current) => current,
        None => {
            let heard = sessions.heard.load(Ordering::SeqCst);
            let record = app.store.login_record(&viewer.username).await?;
            let password = record
                .filter(|record| record.profile.identity == viewer.identity)
                .map(|record| app.tokens.fingerprint(&record.password_hash));
            // Without the kv the kept session is refused too: it logs in
            // again, and no token counts that should not.
            let kept = app
                .kv
                .get(&kept_key(viewer.identity))
                .await
                .ok()
                .flatten()
                .and_then(|session| Uuid::parse_str(&session).ok());
            let current = Arc::new(Current { password, kept });
            if sessions.heard.load(Ordering::SeqCst) == heard {
                sessions.known().put(viewer.identity, current.clone());
            }
            current
        }
    };
    Ok(current.password.as_deref() == Some(grant.password.as_str())
        || current.kept == Some(grant.session))
}

/// `credentials` as they stand now: a valid token that no longer counts
/// ([`admits`]) is `Invalid`, and so is one the store cannot vouch for at
/// the moment (logged).
pub async fn checked(app: &App, credentials: Credentials) -> Credentials {
    let Credentials::Valid(viewer, grant) = &credentials else {
        return credentials;
    };
    match admits(app, viewer, grant).await {
        Ok(true) => credentials,
        Ok(false) => Credentials::Invalid,
        Err(error) => {
            tracing::warn!(%error, "a token could not be checked against its password");
            Credentials::Invalid
        }
    }
}

/// Records that `session` changed `user`'s password: it goes on for as
/// long as a token lives, the others stop.
pub async fn keep(app: &App, user: Uuid, session: Uuid, lifetime: Duration) -> Result<()> {
    app.kv
        .set(&kept_key(user), &session.to_string(), lifetime)
        .await
}
