//! argon2id password hashes.
//!
//! Hashing costs tens of milliseconds of CPU on purpose, so it runs on the
//! blocking pool, never on the async workers that deliver messages.

use std::sync::LazyLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::error::{Error, Result};

/// A hash of nothing anyone knows, verified against when a login names an
/// unknown user, so that answer takes as long as a wrong password.
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_now("decoy password").ok());

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

/// The argon2id PHC string of `password`, with a fresh random salt.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(Error::internal)?
}

/// Whether `password` matches `hash`; with no hash (unknown user), checks
/// against a decoy and answers false, in about the same time.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            if let Some(decoy) = DECOY_HASH.as_deref() {
                verify_now(&password, decoy)?;
            }
            Ok(false)
        }
    })
    .await
    .map_err(Error::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify("decoy password".into(), None).await.unwrap());
    }
}
