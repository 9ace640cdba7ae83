//! The one error type of the API, and its mapping to API.md's error codes.
//!
//! Domain functions, stores and the kv all return [`Error`]. It reaches the
//! client exactly once, through [`Error::code`] and [`Error::message`], when a
//! GraphQL response is finished (`graphql::errors`). Internal causes are logged
//! where they are wrapped and never shown to the client.

use std::{fmt, time::Duration};

/// The language of the messages a client reads, from `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// Chinese when the most preferred language of the header is Chinese; English otherwise.
    ///
    /// Read here (RFC 9110 §12.5.4), not by a crate, because the header is
    /// client input: fuzzing found the crate we used panicking on `q=nan` and
    /// reading `z h` as `zh`. An entry that is not a language range with a
    /// quality in 0..=1 is skipped; `q=0` means "not acceptable"; on a tie the
    /// first entry wins.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(&str, f32)> = None;
        for entry in header.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let range = parts.next().unwrap_or_default();
            let is_range = range == "*"
                || (!range.is_empty()
                    && range
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !is_range {
                continue;
            }
            let quality = match parts.next() {
                None => Some(1.0),
                Some(weight) => weight
                    .strip_prefix("q=")
                    .or_else(|| weight.strip_prefix("Q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .filter(|q| (0.0..=1.0).contains(q)),
            };
            if let Some(quality) = quality
                && quality > 0.0
                && best.is_none_or(|(_, top)| quality > top)
            {
                best = Some((range, quality));
            }
        }
        match best {
            Some((range, _)) if range.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }
}

/// What is wrong with one input value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Too short or too long, counted in characters.
    Length { min: usize, max: usize },
    /// A username holds something else than letters, digits, `_` and `-`.
    UsernameCharacters,
    /// Not an email address.
    Email,
    /// Not an http(s) URL.
    Url,
    /// Nothing but white space.
    Blank,
    /// Not a 6-digit code.
    CodeFormat,
    /// A number outside its range, such as a page size.
    Range { min: i64, max: i64 },
    /// Not a cursor this server gave out.
    Cursor,
    /// Naming oneself where another user is meant.
    Yourself,
    /// `first` and `last` in one request.
    FirstAndLast,
    /// A list naming more users than one request may.
    TooMany { max: usize },
    /// A list of more ids than one request may look up.
    TooManyIds { max: usize },
    /// It would put a user in more rooms than one may belong to.
    RoomsPerUser { max: usize },
    /// It would make a group larger than a group may be.
    GroupMembers { max: usize },
    /// Names a message or cursor of another room.
    NotInRoom,
    /// Names a user who is not a member of the room.
    NotAMember,
    /// Not one fully-qualified emoji.
    Emoji,
    /// One more distinct emoji than a message may carry.
    Reactions { max: usize },
    /// One more user than one may block.
    Blocks { max: usize },
    /// A search with no letter or digit in it.
    NoWords,
    /// A search for more words than one may look for at once.
    Words { max: usize },
}

impl Problem {
    fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (Problem::Length { min, max }, Lang::En) => {
                format!("must be {min} to {max} characters long")
            }
            (Problem::Length { min, max }, Lang::Zh) => format!("长度须为 {min} 到 {max} 个字符"),
            (Problem::UsernameCharacters, Lang::En) => {
                "may only hold letters, digits, '_' and '-'".into()
            }
            (Problem::UsernameCharacters, Lang::Zh) => "只能包含字母、数字、“_”和“-”".into(),
            (Problem::Email, Lang::En) => "is not a valid email address".into(),
            (Problem::Email, Lang::Zh) => "不是有效的邮箱地址".into(),
            (Problem::Url, Lang::En) => "must be an http or https URL".into(),
            (Problem::Url, Lang::Zh) => "必须是 http 或 https 网址".into(),
            (Problem::Blank, Lang::En) => "must not be only white space".into(),
            (Problem::Blank, Lang::Zh) => "不能只包含空白字符".into(),
            (Problem::CodeFormat, Lang::En) => "must be 6 digits".into(),
            (Problem::CodeFormat, Lang::Zh) => "须为 6 位数字".into(),
            (Problem::Range { min, max }, Lang::En) => format!("must be between {min} and {max}"),
            (Problem::Range { min, max }, Lang::Zh) => format!("须在 {min} 到 {max} 之间"),
            (Problem::Cursor, Lang::En) => "is not a valid cursor".into(),
            (Problem::Cursor, Lang::Zh) => "不是有效的游标".into(),
            (Problem::Yourself, Lang::En) => "cannot be yourself".into(),
            (Problem::Yourself, Lang::Zh) => "不能是你自己".into(),
            (Problem::FirstAndLast, Lang::En) => "cannot be combined with first".into(),
            (Problem::FirstAndLast, Lang::Zh) => "不能与 first 同时使用".into(),
            (Problem::TooMany { max }, Lang::En) => format!("may name at most {max} users"),
            (Problem::TooMany { max }, Lang::Zh) => format!("最多只能列出 {max} 个用户"),
            (Problem::TooManyIds { max }, Lang::En) => format!("may name at most {max} ids"),
            (Problem::TooManyIds { max }, Lang::Zh) => format!("最多只能列出 {max} 个 ID"),
            (Problem::RoomsPerUser { max }, Lang::En) => {
                format!("would put a user in more than {max} rooms")
            }
            (Problem::RoomsPerUser { max }, Lang::Zh) => {
                format!("会使某个用户加入的聊天室超过 {max} 个")
            }
            (Problem::GroupMembers { max }, Lang::En) => {
                format!("would make the group larger than {max} members")
            }
            (Problem::GroupMembers { max }, Lang::Zh) => format!("会使群成员超过 {max} 人"),
            (Problem::NotInRoom, Lang::En) => "does not belong to this room".into(),
            (Problem::NotInRoom, Lang::Zh) => "不属于这个聊天室".into(),
            (Problem::NotAMember, Lang::En) => "is not a member of this room".into(),
            (Problem::NotAMember, Lang::Zh) => "不是这个聊天室的成员".into(),
            (Problem::Emoji, Lang::En) => "must be exactly one emoji".into(),
            (Problem::Emoji, Lang::Zh) => "必须是一个表情符号".into(),
            (Problem::Reactions { max }, Lang::En) => {
                format!("a message carries at most {max} different reactions")
            }
            (Problem::Reactions { max }, Lang::Zh) => format!("一条消息最多有 {max} 种表情回应"),
            (Problem::Blocks { max }, Lang::En) => format!("one may block at most {max} users"),
            (Problem::Blocks { max }, Lang::Zh) => format!("最多只能屏蔽 {max} 个用户"),
            (Problem::NoWords, Lang::En) => "must hold a letter or a digit".into(),
            (Problem::NoWords, Lang::Zh) => "须包含字母或数字".into(),
            (Problem::Words { max }, Lang::En) => format!("may hold at most {max} words"),
            (Problem::Words { max }, Lang::Zh) => format!("最多只能包含 {max} 个词"),
        }
    }
}

/// A unique value that was taken: named as a type, so that the code acting
/// on one (drawing another room number, finding the pair's room that a race
/// created) matches a variant, and clients read its [`Unique::field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// A username, ignoring case.
    Username,
    Email,
    /// A pair of users' PRIVATE room.
    PrivatePair,
    RoomNumber,
    /// A sender's `clientId` in one room: the message was sent before.
    ClientId,
    /// A record's identity (an import, a transaction run again).
    Identity,
    /// A user's membership of a room.
    Membership,
    /// A message's place in its room.
    Seq,
    /// One user's block of another.
    Block,
}

impl Unique {
    /// The input field (or, for what no input names, the record's key) as
    /// `extensions.field` gives it.
    pub fn field(self) -> &'static str {
        match self {
            Unique::Username => "username",
            Unique::Email => "email",
            Unique::PrivatePair => "pair_key",
            Unique::RoomNumber => "number",
            Unique::ClientId => "client_id",
            Unique::Identity => "identity",
            Unique::Membership => "member",
            Unique::Seq => "seq",
            Unique::Block => "username",
        }
    }
}

/// What a request would cost beyond its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Its document expands to more fields than the complexity limit.
    Fields { max: u64 },
    /// Its response would serialize to more bytes.
    ResponseBytes { max: usize },
}

/// What is wrong with an HTTP request that never reached the schema (the
/// GraphQL-over-HTTP spec's rules); the transport answers each with its
/// own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The body is not JSON, or not an object or a list of objects.
    Body,
    /// A parameter (`query`, `operationName`, `variables`, `extensions`)
    /// of the wrong type.
    Parameter(&'static str),
    /// Neither a query nor a persisted query's hash.
    NoQuery,
    /// A POST whose body is not `application/json`.
    ContentType,
    /// An `Accept` header naming no media type this server answers in.
    Accept,
    /// A mutation in a GET, which caches and prefetchers may send unasked.
    MutationOverGet,
    /// A query sent with a persisted query's hash it does not have.
    PersistedQueryHash,
}

impl Malformed {
    fn field(self) -> Option<&'static str> {
        match self {
            Malformed::Parameter(name) => Some(name),
            Malformed::NoQuery => Some("query"),
            Malformed::PersistedQueryHash => Some("extensions"),
            _ => None,
        }
    }

    fn describe(self, lang: Lang) -> String {
        match (self, lang) {
            (Malformed::Body, Lang::En) => {
                "the body must be a JSON object, or a list of them for a batch".into()
            }
            (Malformed::Body, Lang::Zh) => "请求体须为 JSON 对象（批量请求为对象列表）".into(),
            (Malformed::Parameter(name), Lang::En) => format!("the parameter {name} has the wrong type"),
            (Malformed::Parameter(name), Lang::Zh) => format!("参数 {name} 的类型错误"),
            (Malformed::NoQuery, Lang::En) => "the request has no query".into(),
            (Malformed::NoQuery, Lang::Zh) => "请求中没有查询".into(),
            (Malformed::ContentType, Lang::En) => {
                "send the request body as application/json".into()
            }
            (Malformed::ContentType, Lang::Zh) => "请求体须为 application/json".into(),
            (Malformed::Accept, Lang::En) => {
                "this server answers in application/graphql-response+json, application/json or text/event-stream".into()
            }
            (Malformed::Accept, Lang::Zh) => {
                "本服务器只以 application/graphql-response+json、application/json 或 text/event-stream 应答".into()
            }
            (Malformed::MutationOverGet, Lang::En) => "a mutation must be sent with POST".into(),
            (Malformed::MutationOverGet, Lang::Zh) => "变更操作必须使用 POST 发送".into(),
            (Malformed::PersistedQueryHash, Lang::En) => {
                "the query does not have the persisted query's sha256Hash".into()
            }
            (Malformed::PersistedQueryHash, Lang::Zh) => "查询与持久化查询的 sha256Hash 不符".into(),
        }
    }
}

/// Things that can be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User,
    Room,
    Message,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, malformed, forged or expired token.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong username or password: one error for both, so logins cannot probe usernames.
    #[error("wrong username or password")]
    BadCredentials,
    #[error("forbidden")]
    Forbidden,
    #[error("{0:?} not found")]
    NotFound(Entity),
    /// `field` is the argument or input field as spelled in the schema.
    #[error("invalid {field}: {problem:?}")]
    BadInput {
        field: &'static str,
        problem: Problem,
    },
    /// A unique value is taken.
    #[error("{} already exists", .0.field())]
    Conflict(Unique),
    /// A change to a message that was deleted.
    #[error("the message was deleted")]
    Deleted,
    #[error("invalid email code")]
    InvalidCode,
    #[error("rate limited for {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// An HTTP batch with more operations than allowed (0: batching is off).
    #[error("batch over {max}")]
    BatchTooLarge { max: usize },
    /// A request that would cost more than a limit allows.
    #[error("too costly: {0:?}")]
    TooCostly(Cost),
    /// An HTTP request the schema never saw.
    #[error("malformed request: {0:?}")]
    Malformed(Malformed),
    /// A persisted query's hash this server does not know (yet): the
    /// client sends it again with its query.
    #[error("PersistedQueryNotFound")]
    PersistedQueryNotFound,
    /// A backend (store, Redis, mail server) did not answer in time.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// Anything else; the cause is for the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad_input(field: &'static str, problem: Problem) -> Self {
        Error::BadInput { field, problem }
    }

    /// Wraps an unexpected failure, logging its whole cause chain once, here.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        tracing::error!(error = format!("{cause:#}"), "internal error");
        Error::Internal(cause)
    }

    /// `RATE_LIMITED`, to be tried again after `wait` in whole seconds,
    /// rounded up and at least one (a client told "retry in 0 s" would
    /// spin); one when the wait is not known.
    pub fn rate_limited(wait: Option<Duration>) -> Self {
        let seconds = wait.map_or(1.0, |wait| wait.as_secs_f64().ceil());
        Error::RateLimited {
            retry_after: (seconds as u64).max(1),
        }
    }

    /// Another caller's copy of a failure that several share (a batch of
    /// message inserts that failed as one): the same error where it can be
    /// copied, else an internal one; the cause was logged once, when made.
    pub fn copy_for_another(&self) -> Self {
        match self {
            Error::Unavailable(backend) => Error::Unavailable(backend),
            Error::Conflict(unique) => Error::Conflict(*unique),
            Error::NotFound(entity) => Error::NotFound(*entity),
            _ => Error::Internal(anyhow::anyhow!("a batch of message inserts failed")),
        }
    }

    /// A backend that is down or too slow; logged, and shown as `INTERNAL`.
    pub fn unavailable(backend: &'static str, cause: impl fmt::Display) -> Self {
        tracing::warn!(backend, error = %cause, "backend unavailable");
        Error::Unavailable(backend)
    }

    /// The code of API.md's list, for `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated | Error::BadCredentials => "UNAUTHENTICATED",
            Error::Forbidden => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::BadInput { .. }
            | Error::BatchTooLarge { .. }
            | Error::TooCostly(_)
            | Error::Malformed(_) => "BAD_USER_INPUT",
            Error::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Error::Conflict(_) | Error::Deleted => "CONFLICT",
            Error::InvalidCode => "INVALID_CODE",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Unavailable(_) | Error::Internal(_) => "INTERNAL",
        }
    }

    /// The input field an error is about: `extensions.field`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::BadInput { field, .. } => Some(field),
            Error::Conflict(unique) => Some(unique.field()),
            Error::Malformed(malformed) => malformed.field(),
            _ => None,
        }
    }

    /// The message a client reads, in its language; never internal detail.
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (Error::Unauthenticated, Lang::En) => {
                "authentication required: the token is missing, invalid or expired".into()
            }
            (Error::Unauthenticated, Lang::Zh) => "需要登录：令牌缺失、无效或已过期".into(),
            (Error::BadCredentials, Lang::En) => "wrong username or password".into(),
            (Error::BadCredentials, Lang::Zh) => "用户名或密码错误".into(),
            (Error::Forbidden, Lang::En) => "you are not allowed to do this".into(),
            (Error::Forbidden, Lang::Zh) => "你无权执行此操作".into(),
            (Error::NotFound(Entity::User), Lang::En) => "no such user".into(),
            (Error::NotFound(Entity::User), Lang::Zh) => "用户不存在".into(),
            (Error::NotFound(Entity::Room), Lang::En) => "no such room".into(),
            (Error::NotFound(Entity::Room), Lang::Zh) => "聊天室不存在".into(),
            (Error::NotFound(Entity::Message), Lang::En) => "no such message".into(),
            (Error::NotFound(Entity::Message), Lang::Zh) => "消息不存在".into(),
            (Error::Deleted, Lang::En) => "the message was deleted".into(),
            (Error::Deleted, Lang::Zh) => "该消息已被删除".into(),
            (Error::BadInput { field, problem }, Lang::En) => {
                format!("invalid {field}: {}", problem.describe(lang))
            }
            (Error::BadInput { field, problem }, Lang::Zh) => {
                format!("{field} 无效：{}", problem.describe(lang))
            }
            (Error::Conflict(unique), Lang::En) => {
                format!("this {} is already taken", unique.field())
            }
            (Error::Conflict(unique), Lang::Zh) => format!("该 {} 已被占用", unique.field()),
            (Error::InvalidCode, Lang::En) => {
                "the email code is wrong, expired, already used or tried too often".into()
            }
            (Error::InvalidCode, Lang::Zh) => "邮箱验证码错误、已过期、已使用或尝试次数过多".into(),
            (Error::RateLimited { retry_after }, Lang::En) => {
                format!("too many requests: retry in {retry_after} s")
            }
            (Error::RateLimited { retry_after }, Lang::Zh) => {
                format!("请求过于频繁，请在 {retry_after} 秒后重试")
            }
            (Error::BatchTooLarge { max: 0 }, Lang::En) => "batched requests are off".into(),
            (Error::BatchTooLarge { max: 0 }, Lang::Zh) => "不支持批量请求".into(),
            (Error::BatchTooLarge { max }, Lang::En) => {
                format!("a batch may hold at most {max} operations")
            }
            (Error::BatchTooLarge { max }, Lang::Zh) => {
                format!("一次批量请求最多包含 {max} 个操作")
            }
            (Error::TooCostly(Cost::Fields { max }), Lang::En) => {
                format!("the query expands to more than {max} fields")
            }
            (Error::TooCostly(Cost::Fields { max }), Lang::Zh) => {
                format!("查询展开后超过 {max} 个字段")
            }
            (Error::TooCostly(Cost::ResponseBytes { max }), Lang::En) => {
                format!("the response would be larger than {max} bytes: ask for less")
            }
            (Error::TooCostly(Cost::ResponseBytes { max }), Lang::Zh) => {
                format!("响应将超过 {max} 字节，请减少查询内容")
            }
            (Error::Malformed(malformed), lang) => malformed.describe(lang),
            // Clients of the automatic persisted queries protocol (Apollo
            // Client, urql) look for these words, in every language.
            (Error::PersistedQueryNotFound, _) => "PersistedQueryNotFound".into(),
            (Error::Unavailable(_), Lang::En) => {
                "the service is temporarily unavailable: retry later".into()
            }
            (Error::Unavailable(_), Lang::Zh) => "服务暂时不可用，请稍后重试".into(),
            (Error::Internal(_), Lang::En) => "internal error".into(),
            (Error::Internal(_), Lang::Zh) => "服务器内部错误".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_chosen_only_when_preferred() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("en;q=0.5, zh-TW"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,zh;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language(";;;garbage"), Lang::En);
    }

    #[test]
    fn a_malformed_accept_language_header_is_english_and_never_panics() {
        // Found by fuzzing: a NaN quality broke the sort of the parser we used.
        assert_eq!(
            Lang::from_accept_language(",0,;,,;=nan,,,,,,,,,,,,,,,,,"),
            Lang::En
        );
        let many = ["zh;q=nan", "en;q=0.5", "fr;q=0.9"].repeat(20).join(",");
        assert_eq!(Lang::from_accept_language(&many), Lang::En);
        // Found by fuzzing: white space inside a tag was dropped, making "z h" Chinese.
        assert_eq!(Lang::from_accept_language(" z  h-Cz+h"), Lang::En);
        assert_eq!(Lang::from_accept_language("z h"), Lang::En);
        // Qualities outside 0..=1, or 0 ("not acceptable"), do not choose.
        assert_eq!(Lang::from_accept_language("en;q=0.5, zh;q=inf"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0.5, zh;q=2"), Lang::En);
        assert_eq!(Lang::from_accept_language("zh;q=0"), Lang::En);
        // White space around the separators is allowed.
        assert_eq!(
            Lang::from_accept_language(" en ; q=0.1 , zh-CN ; Q=0.2 "),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("*, en"), Lang::En);
    }

    #[test]
    fn internal_messages_hide_the_cause() {
        let error = Error::internal(anyhow::anyhow!("SQLITE_CORRUPT: table users"));
        assert_eq!(error.code(), "INTERNAL");
        assert!(!error.message(Lang::En).contains("SQLITE"));
        assert!(!error.to_string().contains("SQLITE"));
    }
}
