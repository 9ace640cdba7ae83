//! GraphQL output types and scalars shared by the schema's parts.

use async_graphql::{
    ComplexObject, Context, ID, InputValueError, InputValueResult, Scalar, ScalarType,
    SimpleObject, Value,
};
use chrono::{SecondsFormat, Utc};

use super::ContextExt;
use crate::{
    chat::accounts,
    store::{Sex, UserRecord},
};

/// RFC 3339 timestamp in UTC, e.g. "2026-11-26T19:41:14.123Z".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// RFC 3339 timestamp in UTC, e.g. "2026-11-26T19:41:14.123Z".
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| DateTime(time.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 timestamp")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// A user as some viewer sees them.
pub struct User {
    record: UserRecord,
    /// Known to be shown to the user themself, whatever the request's token
    /// says: `register` and `login` answer before the client holds a token.
    to_self: bool,
}

impl User {
    pub fn to_self(record: UserRecord) -> Self {
        Self {
            record,
            to_self: true,
        }
    }
}

#[async_graphql::Object]
impl User {
    async fn identity(&self) -> ID {
        ID(self.record.identity.to_string())
    }

    async fn username(&self) -> &str {
        &self.record.username
    }

    async fn nickname(&self) -> &str {
        &self.record.nickname
    }

    async fn sex(&self) -> Sex {
        self.record.sex
    }

    /// Only visible to the user themself; null for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let is_self = self.to_self
            || ctx
                .viewer()
                .is_ok_and(|viewer| viewer.identity == self.record.identity);
        is_self.then_some(self.record.email.as_str())
    }

    async fn avatar(&self) -> Option<&str> {
        self.record.avatar.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.record.created_at)
    }

    async fn updated_at(&self) -> DateTime {
        DateTime(self.record.updated_at)
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuthPayload {
    /// JWT; send as `Authorization: Bearer <token>` over HTTP and as
    /// `{"token": "<token>"}` in the graphql-ws connection_init payload.
    pub token: String,
    pub expires_at: DateTime,
    #[graphql(skip)]
    pub user: UserRecord,
}

#[ComplexObject]
impl AuthPayload {
    async fn user(&self) -> User {
        User::to_self(self.user.clone())
    }
}

impl From<accounts::Session> for AuthPayload {
    fn from(session: accounts::Session) -> Self {
        Self {
            token: session.token,
            expires_at: DateTime(session.expires_at),
            user: session.user,
        }
    }
}

#[derive(SimpleObject)]
pub struct SendCodePayload {
    /// Seconds until the code expires.
    pub expires_in: i32,
    /// Seconds before another code may be requested for this address.
    pub resend_after: i32,
}

impl From<accounts::CodeSent> for SendCodePayload {
    fn from(sent: accounts::CodeSent) -> Self {
        Self {
            expires_in: i32::try_from(sent.expires_in).unwrap_or(i32::MAX),
            resend_after: i32::try_from(sent.resend_after).unwrap_or(i32::MAX),
        }
    }
}
