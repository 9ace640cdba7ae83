//! Validated input values: each `parse` checks one rule of schema.graphql's
//! descriptions and API.md, so a value of these types is the proof it holds.
//!
//! Errors name the field as the schema spells it (`extensions.field`).

use std::str::FromStr;

use crate::{
    error::{Error, Problem, Result},
    store::search::{self, Term},
};

/// Checks a length in characters (not bytes: "李雷" is two).
fn check_length(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let length = value.chars().count();
    if (min..=max).contains(&length) {
        Ok(())
    } else {
        Err(Error::bad_input(field, Problem::Length { min, max }))
    }
}

/// 3 to 20 of letters, digits, `_` and `-`; unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("username", value, 3, 20)?;
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::bad_input("username", Problem::UsernameCharacters));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8 to 128 characters, any of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_as("password", value)
    }

    /// Like [`Password::parse`], for the input field `field`.
    pub fn parse_as(field: &'static str, value: &str) -> Result<Self> {
        check_length(field, value, 8, 128)?;
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Never printed: a password must not reach a log line by accident.
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// An email address, trimmed and lower-cased (the form it is stored and unique in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The longest address SMTP carries (RFC 5321's path limit less the brackets).
    const MAX_LENGTH: usize = 254;

    pub fn parse(value: &str) -> Result<Self> {
        let value = value.trim().to_lowercase();
        let valid = value.len() <= Self::MAX_LENGTH
            && email_address::EmailAddress::from_str(&value)
                .is_ok_and(|address| address.domain().contains('.'));
        if valid {
            Ok(Self(value))
        } else {
            Err(Error::bad_input("email", Problem::Email))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 32 characters, not only white space; kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

impl Nickname {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("nickname", value, 1, 32)?;
        if value.trim().is_empty() {
            return Err(Error::bad_input("nickname", Problem::Blank));
        }
        Ok(Self(value.to_owned()))
    }

    /// A new user's nickname when they give none.
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().to_owned())
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An http(s) URL of at most 512 characters, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar(String);

impl Avatar {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("avatar", value, 1, 512)?;
        // The URL parser skips surrounding white space and controls and drops
        // tabs and newlines; kept as given, such a value would not be the URL
        // that was checked (found by fuzzing).
        if value.trim() != value || value.chars().any(char::is_control) {
            return Err(Error::bad_input("avatar", Problem::Url));
        }
        match url::Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                Ok(Self(value.to_owned()))
            }
            _ => Err(Error::bad_input("avatar", Problem::Url)),
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The 6 digits of an email code.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode(String);

impl EmailCode {
    pub fn parse(value: &str) -> Result<Self> {
        let value = value.trim();
        if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::bad_input("code", Problem::CodeFormat))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never printed: a code must not reach a log line by accident.
impl std::fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailCode(..)")
    }
}

/// A message: 1 to `max` characters (4000 by default), not only white
/// space; kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content(String);

impl Content {
    pub fn parse(value: &str, max: usize) -> Result<Self> {
        check_length("content", value, 1, max)?;
        if value.trim().is_empty() {
            return Err(Error::bad_input("content", Problem::Blank));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A client's idempotency key for `sendMessage`: 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("clientId", value, 1, 64)?;
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A group's name: 1 to 64 characters, not only white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("name", value, 1, 64)?;
        if value.trim().is_empty() {
            return Err(Error::bad_input("name", Problem::Blank));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A group's description: up to 512 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo(String);

impl GroupInfo {
    pub fn parse(value: &str) -> Result<Self> {
        check_length("info", value, 0, 512)?;
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A page size (`first`, `last`): 1 to `max` (100 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(usize);

impl PageSize {
    pub fn parse(field: &'static str, value: i32, max: i32) -> Result<Self> {
        match usize::try_from(value) {
            Ok(size) if (1..=max).contains(&value) => Ok(Self(size)),
            _ => Err(Error::bad_input(
                field,
                Problem::Range {
                    min: 1,
                    max: i64::from(max),
                },
            )),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// What `searchUsers` looks for: up to 64 characters, compared lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPrefix(String);

impl SearchPrefix {
    pub fn parse(value: &str) -> Result<Self> {
        let value = value.trim();
        check_length("query", value, 0, 64)?;
        Ok(Self(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `searchMessages` looks for: at most [`SearchQuery::MAX_CHARS`]
/// characters holding between one and [`SearchQuery::MAX_WORDS`] words (a
/// run of Chinese or Japanese counting as one), read as
/// [`store::search`](crate::store::search) reads messages. Both bounds
/// keep what one search makes the store do small: each word is one more
/// list of the index to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery(Vec<Term>);

impl SearchQuery {
    pub const MAX_CHARS: usize = 200;
    pub const MAX_WORDS: usize = 10;

    pub fn parse(value: &str) -> Result<Self> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_input(
                "query",
                Problem::Length {
                    min: 1,
                    max: Self::MAX_CHARS,
                },
            ));
        }
        let terms = search::terms(value);
        if terms.is_empty() {
            return Err(Error::bad_input("query", Problem::NoWords));
        }
        if terms.len() > Self::MAX_WORDS {
            return Err(Error::bad_input(
                "query",
                Problem::Words {
                    max: Self::MAX_WORDS,
                },
            ));
        }
        Ok(Self(terms))
    }

    pub fn into_terms(self) -> Vec<Term> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: Error) -> &'static str {
        error.field().expect("a field error")
    }

    #[test]
    fn usernames_are_3_to_20_of_letters_digits_underscore_and_dash() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse("A_b-9").is_ok());
        assert!(Username::parse(&"x".repeat(20)).is_ok());
        for bad in [
            "ab",
            "",
            &"x".repeat(21),
            "has space",
            "点点点",
            "a.b",
            "a@b",
        ] {
            assert_eq!(
                field_of(Username::parse(bad).unwrap_err()),
                "username",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"密".repeat(128)).is_ok());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret123").unwrap()),
            "Password(..)"
        );
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@localhost",
        ] {
            assert_eq!(field_of(Email::parse(bad).unwrap_err()), "email", "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn nicknames_are_1_to_32_characters_not_only_blank() {
        assert!(Nickname::parse("李雷").is_ok());
        assert!(Nickname::parse(&"字".repeat(32)).is_ok());
        assert!(Nickname::parse("").is_err());
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"字".repeat(33)).is_err());
    }

    #[test]
    fn avatars_are_http_urls_up_to_512_characters() {
        assert!(Avatar::parse("https://example.com/a.png").is_ok());
        assert!(Avatar::parse("http://example.com/a.png").is_ok());
        for bad in [
            "",
            "ftp://example.com/a",
            "javascript:alert(1)",
            "not a url",
            "data:image/png;base64,AAA",
        ] {
            assert_eq!(
                field_of(Avatar::parse(bad).unwrap_err()),
                "avatar",
                "{bad:?}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(500));
        assert!(Avatar::parse(&long).is_err());
    }

    #[test]
    fn avatars_with_surrounding_space_or_control_characters_are_refused() {
        // Found by fuzzing: the URL parser skips surrounding white space and
        // controls and drops tabs and newlines, so the value kept as given
        // was not the URL that had been checked. Any control is refused.
        for bad in [
            "\u{1}https://ex",
            " https://example.com/a.png",
            "https://example.com/a.png\n",
            "https://exa\tmple.com/a.png",
            "https://example.com/a\u{7f}.png",
        ] {
            assert_eq!(
                field_of(Avatar::parse(bad).unwrap_err()),
                "avatar",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn contents_are_1_to_4000_characters_not_only_blank() {
        assert!(Content::parse("hi", 4000).is_ok());
        assert!(Content::parse(&"字".repeat(4000), 4000).is_ok());
        for bad in ["", " \n\t ", &"x".repeat(4001)] {
            assert_eq!(field_of(Content::parse(bad, 4000).unwrap_err()), "content");
        }
    }

    #[test]
    fn page_sizes_are_1_to_100() {
        assert_eq!(PageSize::parse("first", 1, 100).unwrap().get(), 1);
        assert_eq!(PageSize::parse("last", 100, 100).unwrap().get(), 100);
        for bad in [0, -1, 101, i32::MIN, i32::MAX] {
            assert_eq!(
                field_of(PageSize::parse("first", bad, 100).unwrap_err()),
                "first"
            );
        }
    }

    #[test]
    fn client_ids_are_1_to_64_characters() {
        assert!(ClientId::parse("a").is_ok());
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse("").is_err());
        assert_eq!(
            field_of(ClientId::parse(&"x".repeat(65)).unwrap_err()),
            "clientId"
        );
    }

    #[test]
    fn codes_are_six_digits() {
        assert!(EmailCode::parse("012345").is_ok());
        for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
            assert_eq!(
                field_of(EmailCode::parse(bad).unwrap_err()),
                "code",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_search_holds_one_to_ten_words_in_at_most_200_characters() {
        assert_eq!(
            SearchQuery::parse("Hello 中文").unwrap().into_terms(),
            [Term::Prefix("hello".into()), Term::Chars("中文".into())]
        );
        assert!(SearchQuery::parse(&"字".repeat(200)).is_ok());
        assert!(SearchQuery::parse("a b c d e f g h i j").is_ok());
        for bad in [
            "",
            "   ",
            "?!…。",
            &"字".repeat(201),
            "a b c d e f g h i j k",
        ] {
            assert_eq!(
                field_of(SearchQuery::parse(bad).unwrap_err()),
                "query",
                "{bad:?}"
            );
        }
        assert_eq!(
            SearchQuery::parse("--").unwrap_err().to_string(),
            "invalid query: NoWords"
        );
    }
}
