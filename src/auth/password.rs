//! argon2id password hashes, computed on a bounded pool.
//!
//! Hashing costs tens of milliseconds of CPU on purpose. It runs on the
//! blocking pool, never on the async workers that deliver messages, and at
//! most [`Hasher`]'s permits at a time: a flood of logins queues here
//! instead of taking every core from message delivery.

use std::{
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// A hash of nothing anyone knows, verified against when a login names an
/// unknown user, so that answer takes as long as a wrong password.
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_now("decoy password").ok());

/// How long a hash may wait for a free permit before the client is told to
/// come back later.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

fn hash_now(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(anyhow::anyhow!("argon2: {e}")))
}

fn verify_now(password: &str, hash: &str) -> Result<bool> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| Error::internal(anyhow::anyhow!("stored hash: {e}")))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Runs password hashing with at most a fixed number at once.
pub struct Hasher {
    permits: Semaphore,
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new((cores / 2).max(1))
    }
}

impl Hasher {
    /// `threads` hashes at a time, each on a thread kept for the purpose.
    /// Not tokio's blocking pool: every argon2 hash takes 19 MiB, and the
    /// allocator keeps what each of that pool's many, short-lived threads
    /// used, so a few hundred logins would pin hundreds of megabytes.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = crate::lock(&queue).recv();
                        match job {
                            Ok(job) => {
                                job();
                            }
                            // The hasher is gone.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a hashing thread");
            }
        }
        Self {
            permits: Semaphore::new(threads),
            jobs,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = tokio::time::timeout(QUEUE_WAIT, self.permits.acquire())
            .await
            .map_err(|_| Error::rate_limited(None))?
            .map_err(Error::internal)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .map_err(|_| Error::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        answer.await.map_err(Error::internal)?
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches `hash`; with no hash (unknown user), checks
    /// against a decoy and answers false, in about the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        self.run(move || match hash {
            Some(hash) => verify_now(&password, &hash),
            None => {
                if let Some(decoy) = DECOY_HASH.as_deref() {
                    verify_now(&password, decoy)?;
                }
                Ok(false)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::default();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = Hasher::default();
        assert!(!hasher.verify("decoy password".into(), None).await.unwrap());
    }
}
