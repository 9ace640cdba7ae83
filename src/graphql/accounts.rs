//! Registration, login and one's own profile.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result};

use super::{
    ContextExt, limited,
    types::{AuthPayload, SendCodePayload, Sex, User},
    writer,
};
use crate::{
    chat::accounts::{self, NewAccount, ProfileChange, Registration},
    rate_limit::Action,
};

#[derive(InputObject)]
pub struct RegisterInput {
    /// 3 to 20 characters: letters, digits, '_' and '-'.
    username: String,
    /// 8 to 128 characters.
    password: String,
    email: String,
    /// The code that sendEmailCode mailed to `email`.
    code: String,
    nickname: Option<String>,
    #[graphql(default_with = "Some(Sex::Unknown)")]
    sex: Option<Sex>,
    avatar: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    nickname: Option<String>,
    sex: Option<Sex>,
    /// An http(s) URL; null removes the avatar.
    avatar: MaybeUndefined<String>,
    /// Whether to get digest mails of what one missed while away.
    email_digest: Option<bool>,
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::to_self(accounts::me(ctx.app(), ctx.viewer()?).await?))
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Mail a 6-digit registration code; it expires after a configured TTL.
    async fn send_email_code(&self, ctx: &Context<'_>, email: String) -> Result<SendCodePayload> {
        Ok(
            accounts::send_email_code(ctx.app(), &email, ctx.client_address())
                .await?
                .into(),
        )
    }

    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let registration = Registration {
            account: NewAccount {
                username: input.username,
                password: input.password,
                email: input.email,
                nickname: input.nickname,
                sex: input.sex.unwrap_or(Sex::Unknown).into(),
                avatar: input.avatar,
            },
            code: input.code,
        };
        limited(ctx, Action::Register(ctx.client_address())).await?;
        Ok(accounts::register(ctx.app(), registration).await?.into())
    }

    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
    ) -> Result<AuthPayload> {
        Ok(accounts::login(
            ctx.app(),
            &username,
            &password,
            ctx.client_address(),
            ctx.lang(),
        )
        .await?
        .into())
    }

    /// Change one's password (8 to 128 characters, like register's); every
    /// other token of the user stops working at once, on every instance, and
    /// its open sockets are closed. Returns true; a wrong old password is
    /// UNAUTHENTICATED and counts as a failed login.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        old_password: String,
        new_password: String,
    ) -> Result<bool> {
        let viewer = writer(ctx, Action::Write).await?;
        let grant = ctx.grant()?;
        accounts::change_password(
            ctx.app(),
            viewer,
            grant,
            &old_password,
            &new_password,
            ctx.client_address(),
        )
        .await?;
        Ok(true)
    }

    /// A new token for the viewer's valid one (same lifetime as login's).
    async fn refresh_token(&self, ctx: &Context<'_>) -> Result<AuthPayload> {
        let viewer = writer(ctx, Action::Write).await?;
        Ok(accounts::refresh_token(ctx.app(), viewer, ctx.grant()?)
            .await?
            .into())
    }

    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let change = ProfileChange {
            nickname: input.nickname,
            sex: input.sex.map(Into::into),
            avatar: match input.avatar {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(avatar) => Some(Some(avatar)),
            },
            email_digest: input.email_digest,
        };
        let viewer = writer(ctx, Action::Write).await?;
        Ok(User::to_self(
            accounts::update_profile(ctx.app(), viewer, change).await?,
        ))
    }
}
