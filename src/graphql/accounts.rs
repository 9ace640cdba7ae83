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
        Ok(
            accounts::login(ctx.app(), &username, &password, ctx.client_address())
                .await?
                .into(),
        )
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
        };
        let viewer = writer(ctx, Action::Write).await?;
        Ok(User::to_self(
            accounts::update_profile(ctx.app(), viewer, change).await?,
        ))
    }
}
