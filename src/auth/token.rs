//! JWTs: HS256, `sub` = user identity, plus `username`, `iat`, `nbf`, `exp`,
//! and what ties a token to its session and to its user's password: `sid`,
//! one login's identity (kept by `refreshToken`), and `pwd`, a keyed hash of
//! the password hash it was issued under. A password change makes every
//! `pwd` issued before it stale; `auth::sessions` refuses those tokens.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::Duration,
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Credentials, Viewer};
use crate::{
    error::{Error, Result},
    store::{Profile, now},
};

/// Clock skew tolerated between instances on `nbf` and `exp`.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    username: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    sid: Uuid,
    pwd: String,
}

/// What a valid token grants besides its viewer: how long, to which
/// session, under which password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub session: Uuid,
    /// [`Tokens::fingerprint`] of the password hash it was issued under.
    pub password: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues and checks tokens with one secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    fingerprints: ring::hmac::Key,
    validation: Validation,
    lifetime: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        // Only HS256: a token naming another algorithm (`none`, RS256 with our
        // secret as a "public key") is refused before its signature is read.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            fingerprints: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            validation,
            lifetime,
        }
    }

    /// A token of `session` for `user`, whose password hash is `fingerprint`
    /// ([`Tokens::fingerprint`]), and the moment it expires.
    pub fn issue(
        &self,
        user: &Profile,
        session: Uuid,
        fingerprint: &str,
    ) -> Result<(String, DateTime<Utc>)> {
        let issued = now();
        let lifetime = chrono::Duration::from_std(self.lifetime).map_err(Error::internal)?;
        let expires = issued + lifetime;
        let claims = Claims {
            sub: user.identity.to_string(),
            username: user.username.clone(),
            iat: issued.timestamp(),
            nbf: issued.timestamp(),
            exp: expires.timestamp(),
            sid: session,
            pwd: fingerprint.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(Error::internal)?;
        Ok((token, expires))
    }

    /// How long an issued token lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// What stands for a password hash in the tokens issued under it: keyed
    /// with the secret, so a token shows nothing of the hash, and short.
    pub fn fingerprint(&self, password_hash: &str) -> String {
        let tag = ring::hmac::sign(&self.fingerprints, password_hash.as_bytes());
        tag.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The viewer a token names and what it grants, if it is ours,
    /// well-formed and within its time (`auth::sessions` says whether its
    /// password is still the user's).
    pub fn verify(&self, token: &str) -> Result<(Viewer, Grant)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::Unauthenticated)?;
        let claims = data.claims;
        let identity = Uuid::parse_str(&claims.sub).map_err(|_| Error::Unauthenticated)?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(Error::Unauthenticated)?;
        let viewer = Viewer {
            identity,
            username: claims.username,
        };
        let grant = Grant {
            session: claims.sid,
            password: claims.pwd,
            expires_at,
        };
        Ok((viewer, grant))
    }

    /// Credentials from an `Authorization` value (`Bearer <token>`).
    pub fn from_authorization(&self, value: Option<&str>) -> Credentials {
        match value {
            None => Credentials::Anonymous,
            Some(value) => match value.trim().split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    self.credentials(token.trim())
                }
                _ => Credentials::Invalid,
            },
        }
    }

    /// Credentials from a bare token.
    pub fn credentials(&self, token: &str) -> Credentials {
        match self.verify(token) {
            Ok((viewer, grant)) => Credentials::Valid(viewer, grant),
            Err(_) => Credentials::Invalid,
        }
    }
}

/// The dev secret in `dir/jwt_secret`: read if present, else generated from
/// the OS's CSPRNG and written readable by the owner only.
pub fn dev_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("jwt_secret");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a development JWT secret");
            Ok(secret.into_bytes())
        }
        // Another instance sharing the data dir wrote it first: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let stored = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let stored = stored.trim();
            anyhow::ensure!(!stored.is_empty(), "{} is empty", path.display());
            Ok(stored.as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Profile {
        Profile {
            identity: Uuid::new_v4(),
            username: "alice".into(),
            nickname: "alice".into(),
            sex: crate::store::Sex::Unknown,
            email: "alice@example.com".into(),
            avatar: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn an_issued_token_names_its_user() {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let user = user();
        let session = Uuid::new_v4();
        let (token, expires_at) = tokens.issue(&user, session, "f").unwrap();
        let (viewer, grant) = tokens.verify(&token).unwrap();
        assert_eq!(viewer.identity, user.identity);
        assert_eq!(grant.session, session);
        assert_eq!(grant.password, "f");
        assert_eq!(grant.expires_at.timestamp(), expires_at.timestamp());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let ours = Tokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let theirs = Tokens::new(b"fedcba9876543210fedcba9876543210", Duration::from_secs(60));
        let (token, _) = theirs.issue(&user(), Uuid::new_v4(), "f").unwrap();
        assert!(ours.verify(&token).is_err());
        assert_eq!(ours.credentials(&token), Credentials::Invalid);
    }

    #[test]
    fn tokens_of_other_algorithms_or_out_of_time_are_refused() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let tokens = Tokens::new(secret, Duration::from_secs(60));
        let now = now().timestamp();
        let claims = |nbf: i64, exp: i64| Claims {
            sub: Uuid::new_v4().to_string(),
            username: "mallory".into(),
            iat: now,
            nbf,
            exp,
            sid: Uuid::new_v4(),
            pwd: String::new(),
        };
        let key = EncodingKey::from_secret(secret);
        let other_algorithm =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(now, now + 60), &key)
                .unwrap();
        assert!(tokens.verify(&other_algorithm).is_err());
        let unsigned = {
            let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
            let body = base64_url(&serde_json::to_string(&claims(now, now + 60)).unwrap());
            format!("{header}.{body}.")
        };
        assert!(tokens.verify(&unsigned).is_err());
        let hs256 = Header::new(Algorithm::HS256);
        let expired = jsonwebtoken::encode(&hs256, &claims(now - 600, now - 300), &key).unwrap();
        assert!(tokens.verify(&expired).is_err());
        let not_yet = jsonwebtoken::encode(&hs256, &claims(now + 300, now + 600), &key).unwrap();
        assert!(tokens.verify(&not_yet).is_err());
        let within_leeway =
            jsonwebtoken::encode(&hs256, &claims(now + 10, now + 600), &key).unwrap();
        assert!(
            tokens.verify(&within_leeway).is_ok(),
            "clock skew of a few seconds is tolerated"
        );
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn a_fingerprint_follows_the_hash_and_the_secret() {
        let ours = Tokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let theirs = Tokens::new(b"fedcba9876543210fedcba9876543210", Duration::from_secs(60));
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        assert_eq!(ours.fingerprint(hash), ours.fingerprint(hash));
        assert_ne!(ours.fingerprint(hash), ours.fingerprint("$argon2id$other"));
        assert_ne!(ours.fingerprint(hash), theirs.fingerprint(hash));
        assert!(!ours.fingerprint(hash).contains("aGFzaA"));
    }

    #[test]
    fn a_dev_secret_is_generated_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = dev_secret(dir.path()).unwrap();
        let second = dev_secret(dir.path()).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 32);
        let mode = std::fs::metadata(dir.path().join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
