//! Registration by email code, login, and one's own profile.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;

use super::values::{Avatar, Email, EmailCode, Nickname, Password, Username};
use crate::{
    app::App,
    auth::{
        Grant, Viewer,
        sessions::{self, Change},
    },
    broker::{Event, Topic},
    error::{Error, Lang, Result, Unique},
    rate_limit::Action,
    store::{Profile, ProfileUpdate, Sex, UserRecord, now},
};

/// What `sendEmailCode` tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSent {
    pub expires_in: u64,
    pub resend_after: u64,
}

/// A signed-in session: what `register` and `login` return.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: Profile,
}

/// An account's fields, unparsed.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub email: String,
    pub nickname: Option<String>,
    pub sex: Sex,
    pub avatar: Option<String>,
}

/// `register`'s input, unparsed: an account and the code that proves its email.
#[derive(Debug, Clone)]
pub struct Registration {
    pub account: NewAccount,
    pub code: String,
}

/// `updateProfile`'s input, unparsed; `avatar: Some(None)` removes the avatar.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub nickname: Option<String>,
    pub sex: Option<Sex>,
    pub avatar: Option<Option<String>>,
    pub email_digest: Option<bool>,
}

/// The code mailed to `email`. It and its tries are tagged alike (`{…}`),
/// so that on a Redis Cluster they live on one node and fail over together.
fn code_key(email: &Email) -> String {
    format!("code:{{{}}}", email.as_str())
}

fn tries_key(email: &Email) -> String {
    format!("code:tries:{{{}}}", email.as_str())
}

/// Mails a fresh 6-digit code to an address not yet registered, at most once
/// per resend interval per address, and a bounded number per client.
#[tracing::instrument(skip_all)]
pub async fn send_email_code(app: &App, email: &str, client: IpAddr) -> Result<CodeSent> {
    let email = Email::parse(email)?;
    app.limiter.check(Action::SendCode(client)).await?;
    if app.store.user_by_email(email.as_str()).await?.is_some() {
        return Err(Error::Conflict(Unique::Email));
    }
    app.limiter.claim_code_resend(email.as_str()).await?;
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    app.kv.set(&code_key(&email), &code, app.code_ttl()).await?;
    app.kv.remove(&tries_key(&email)).await?;
    if let Err(error) = app
        .mailer
        .send_code(email.as_str(), &code, app.code_ttl())
        .await
    {
        // Nobody got the code: let the client ask again at once.
        app.kv.remove(&code_key(&email)).await?;
        app.limiter.release_code_resend(email.as_str()).await?;
        return Err(error);
    }
    Ok(CodeSent {
        expires_in: app.config.code_ttl_secs,
        resend_after: app.config.code_resend_secs,
    })
}

/// `INVALID_CODE` unless `code` is the one mailed to `email`. Each try is
/// counted before the comparison, in one atomic increment, so concurrent
/// guesses cannot outrun the count; the try that reaches the limit voids
/// the code. The code stays until [`spend_code`].
async fn check_code(app: &App, email: &Email, code: &EmailCode) -> Result<()> {
    let key = code_key(email);
    let tries = app.kv.increment(&tries_key(email), app.code_ttl()).await?;
    let max = u64::from(app.config.code_max_tries);
    if tries > max {
        app.kv.remove(&key).await?;
        return Err(Error::InvalidCode);
    }
    match app.kv.get(&key).await? {
        Some(expected) if expected == code.as_str() => Ok(()),
        _ => {
            if tries == max {
                app.kv.remove(&key).await?;
            }
            Err(Error::InvalidCode)
        }
    }
}

/// Uses up the code of `email`: of two requests racing with the right code,
/// one wins and the other gets `INVALID_CODE`.
async fn spend_code(app: &App, email: &Email) -> Result<()> {
    if !app.kv.remove(&code_key(email)).await? {
        return Err(Error::InvalidCode);
    }
    app.kv.remove(&tries_key(email)).await?;
    Ok(())
}

/// A new token of `session` for `user`, whose password hash is `password_hash`.
fn session(app: &App, user: Profile, session: Uuid, password_hash: &str) -> Result<Session> {
    let fingerprint = app.tokens.fingerprint(password_hash);
    let (token, expires_at) = app.tokens.issue(&user, session, &fingerprint)?;
    Ok(Session {
        token,
        expires_at,
        user,
    })
}

/// A [`NewAccount`] whose every field holds: what `register` and
/// `create_account` both store.
struct Applicant {
    username: Username,
    password: Password,
    email: Email,
    nickname: Nickname,
    sex: Sex,
    avatar: Option<Avatar>,
}

impl Applicant {
    fn parse(account: &NewAccount) -> Result<Self> {
        let username = Username::parse(&account.username)?;
        let password = Password::parse(&account.password)?;
        let email = Email::parse(&account.email)?;
        let nickname = match &account.nickname {
            Some(nickname) => Nickname::parse(nickname)?,
            None => Nickname::from_username(&username),
        };
        let avatar = account.avatar.as_deref().map(Avatar::parse).transpose()?;
        Ok(Self {
            username,
            password,
            email,
            nickname,
            sex: account.sex,
            avatar,
        })
    }

    /// `CONFLICT` when the username or email is taken. `register` asks
    /// before spending the code; the store's unique indexes still decide a race.
    async fn check_free(&self, app: &App) -> Result<()> {
        if app
            .store
            .user_by_username(self.username.as_str())
            .await?
            .is_some()
        {
            return Err(Error::Conflict(Unique::Username));
        }
        if app
            .store
            .user_by_email(self.email.as_str())
            .await?
            .is_some()
        {
            return Err(Error::Conflict(Unique::Email));
        }
        Ok(())
    }

    async fn create(self, app: &App) -> Result<UserRecord> {
        let created_at = now();
        let user = UserRecord {
            profile: Profile {
                identity: Uuid::new_v4(),
                username: self.username.as_str().to_owned(),
                nickname: self.nickname.into_inner(),
                sex: self.sex,
                email: self.email.as_str().to_owned(),
                avatar: self.avatar.map(Avatar::into_inner),
                created_at,
                updated_at: created_at,
            },
            password_hash: app.hasher.hash(self.password.into_inner()).await?,
        };
        app.store.create_user(&user).await?;
        Ok(user)
    }
}

/// Creates an account from a mailed code. Every field is checked before the
/// code is spent, and a taken username or email does not spend it either;
/// but whether they are taken is told only to a client that has the code.
#[tracing::instrument(skip_all)]
pub async fn register(app: &App, input: Registration) -> Result<Session> {
    let applicant = Applicant::parse(&input.account)?;
    let code = EmailCode::parse(&input.code)?;
    check_code(app, &applicant.email, &code).await?;
    applicant.check_free(app).await?;
    spend_code(app, &applicant.email).await?;
    let user = applicant.create(app).await?;
    tracing::info!(identity = %user.profile.identity, "registered");
    session(app, user.profile, Uuid::new_v4(), &user.password_hash)
}

/// Creates an account without the email code, for trusted callers only
/// (seeding a demo store), never for a client: the code is what proves a
/// client owns the address. The rules, the hashing and the uniqueness are
/// `register`'s, so such an account logs in like any other.
#[tracing::instrument(skip_all, fields(username = %account.username))]
pub async fn create_account(app: &App, account: NewAccount) -> Result<Profile> {
    let applicant = Applicant::parse(&account)?;
    applicant.check_free(app).await?;
    let user = applicant.create(app).await?.profile;
    // Told apart from `registered` in the log: no code vouched for this address.
    tracing::info!(identity = %user.identity, "created without an email code");
    Ok(user)
}

/// Signs in by username (ignoring case) and password. An unknown user and a
/// wrong password get the same error after the same work. Each try is
/// counted before the password is checked ([`RateLimiter::reserve_login`]):
/// after too many failures for a username or from a client address, every
/// login of it is refused until the window ends, even with the right
/// password, and concurrent tries cannot outrun the count.
///
/// [`RateLimiter::reserve_login`]: crate::rate_limit::RateLimiter::reserve_login
#[tracing::instrument(skip_all, fields(username = %username.chars().take(32).collect::<String>()))]
/// Logs in; the language the client reads is kept for the user's mail.
pub async fn login(
    app: &App,
    username: &str,
    password: &str,
    client: IpAddr,
    lang: Lang,
) -> Result<Session> {
    let username = Username::parse(username).ok();
    let username = username.as_ref().map(Username::as_str);
    app.limiter.reserve_login(username, client).await?;
    let user = match username {
        Some(username) => app.store.login_record(username).await?,
        None => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    match (
        app.hasher.verify(password.to_owned(), hash).await?,
        user,
        username,
    ) {
        (true, Some(user), Some(username)) => {
            app.limiter.login_succeeded(username, client).await?;
            app.store.set_language(user.profile.identity, lang).await?;
            session(app, user.profile, Uuid::new_v4(), &user.password_hash)
        }
        _ => Err(Error::BadCredentials),
    }
}

/// Changes the viewer's password after checking the old one, which counts
/// as a login try (a wrong one is `UNAUTHENTICATED` and a failed login).
/// Every other token of the viewer stops counting at once, on every
/// instance, and the sockets they opened close; the token of `grant`'s
/// session goes on.
#[tracing::instrument(skip_all, fields(identity = %viewer.identity))]
pub async fn change_password(
    app: &App,
    viewer: &Viewer,
    grant: &Grant,
    old: &str,
    new: &str,
    client: IpAddr,
) -> Result<()> {
    let new = Password::parse_as("newPassword", new)?;
    app.limiter
        .reserve_login(Some(&viewer.username), client)
        .await?;
    let user = app
        .store
        .login_record(&viewer.username)
        .await?
        .filter(|user| user.profile.identity == viewer.identity);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !app.hasher.verify(old.to_owned(), hash).await? {
        return Err(Error::BadCredentials);
    }
    app.limiter
        .login_succeeded(&viewer.username, client)
        .await?;
    let hash = app.hasher.hash(new.into_inner()).await?;
    sessions::keep(app, viewer.identity, grant.session, app.tokens.lifetime()).await?;
    let user = viewer.identity;
    let (store, broker, sessions) = (app.store.clone(), app.broker.clone(), app.sessions.clone());
    app.writes
        .run(async move {
            if !store.set_password_hash(user, &hash).await? {
                return Err(Error::Unauthenticated);
            }
            sessions.heard(Change::User(user));
            broker
                .publish(Topic::Sessions, Event::PasswordChanged { user })
                .await;
            Ok(())
        })
        .await?;
    tracing::info!("password changed; other sessions ended");
    Ok(())
}

/// A new token for the viewer's session, of a login's lifetime, under the
/// password the viewer has now.
pub async fn refresh_token(app: &App, viewer: &Viewer, grant: &Grant) -> Result<Session> {
    let user = app
        .store
        .login_record(&viewer.username)
        .await?
        .filter(|user| user.profile.identity == viewer.identity)
        .ok_or(Error::Unauthenticated)?;
    session(app, user.profile, grant.session, &user.password_hash)
}

/// The viewer's own record; a token whose user is gone no longer authenticates.
pub async fn me(app: &App, viewer: &Viewer) -> Result<Profile> {
    app.store
        .user_by_identity(viewer.identity)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Changes the viewer's nickname, sex or avatar; fields not given stay.
#[tracing::instrument(skip_all, fields(identity = %viewer.identity))]
pub async fn update_profile(app: &App, viewer: &Viewer, change: ProfileChange) -> Result<Profile> {
    let update = ProfileUpdate {
        nickname: change
            .nickname
            .as_deref()
            .map(Nickname::parse)
            .transpose()?
            .map(Nickname::into_inner),
        sex: change.sex,
        avatar: match change.avatar {
            Some(Some(avatar)) => Some(Some(Avatar::parse(&avatar)?.into_inner())),
            Some(None) => Some(None),
            None => None,
        },
        updated_at: now(),
    };
    if let Some(on) = change.email_digest {
        app.store.set_email_digest(viewer.identity, on).await?;
    }
    app.store
        .update_profile(viewer.identity, &update)
        .await?
        .ok_or(Error::Unauthenticated)
}
