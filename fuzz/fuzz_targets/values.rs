//! Every validated input value of `chat::values`, and `Accept-Language`.
//!
//! Not only "no panic": each `parse` must accept exactly what its rule
//! (values.rs, API.md) allows, keep what it promises to keep, and name the
//! schema's field when it refuses.

#![no_main]

use chatroom::{
    chat::values::{
        Avatar, ClientId, Content, Email, EmailCode, GroupInfo, GroupName, Nickname, PageSize,
        Password, SearchPrefix, Username,
    },
    error::{Error, Lang},
};
use libfuzzer_sys::fuzz_target;

fn chars(value: &str) -> usize {
    value.chars().count()
}

fn blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// `parse` accepted `value` exactly when `allowed`, and a refusal is
/// `BAD_USER_INPUT` on `field`.
fn check<T>(field: &str, value: &str, parsed: &Result<T, Error>, allowed: bool) {
    match parsed {
        Ok(_) => assert!(allowed, "{field}: accepted {value:?} against its rule"),
        Err(error) => {
            assert!(!allowed, "{field}: refused {value:?} ({error})");
            assert_eq!(error.code(), "BAD_USER_INPUT", "{field}: {value:?}");
            assert_eq!(error.field(), Some(field), "{field}: {value:?}");
        }
    }
}

fn check_strings(value: &str) {
    let username = Username::parse(value);
    let allowed = (3..=20).contains(&chars(value))
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    check("username", value, &username, allowed);
    if let Ok(username) = username {
        assert_eq!(username.as_str(), value);
    }

    let password = Password::parse(value);
    check(
        "password",
        value,
        &password,
        (8..=128).contains(&chars(value)),
    );
    if let Ok(password) = password {
        assert_eq!(password.into_inner(), value);
    }

    // Email's rule is the email_address crate's; what we promise on top: the
    // kept form is trimmed, lower-case, at most 254 bytes, has a dotted
    // domain, and parses to itself (it is what lookups are made with).
    match Email::parse(value) {
        Ok(email) => {
            let kept = email.as_str();
            assert!(kept.len() <= 254, "email: {kept:?} is over 254 bytes");
            assert_eq!(kept, kept.trim(), "email: {kept:?} is not trimmed");
            assert_eq!(
                kept,
                kept.to_lowercase(),
                "email: {kept:?} is not lower-case"
            );
            let domain = kept.rsplit_once('@').map(|(_, domain)| domain);
            assert!(
                domain.is_some_and(|domain| domain.contains('.')),
                "email: {kept:?} has no dotted domain"
            );
            let again = Email::parse(kept).map(|email| email.as_str().to_owned());
            assert_eq!(
                again.ok().as_deref(),
                Some(kept),
                "email: {kept:?} does not parse to itself"
            );
        }
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT");
            assert_eq!(error.field(), Some("email"));
        }
    }

    let nickname = Nickname::parse(value);
    check(
        "nickname",
        value,
        &nickname,
        (1..=32).contains(&chars(value)) && !blank(value),
    );
    if let Ok(nickname) = nickname {
        assert_eq!(nickname.into_inner(), value);
    }

    // An avatar is shown as given, so what is kept must itself read as an
    // http(s) URL, not something a lenient parser could make one of.
    match Avatar::parse(value) {
        Ok(avatar) => {
            let kept = avatar.into_inner();
            assert!((1..=512).contains(&chars(&kept)), "avatar: {kept:?}");
            let scheme = kept
                .split_once(':')
                .map(|(scheme, _)| scheme.to_ascii_lowercase());
            assert!(
                matches!(scheme.as_deref(), Some("http" | "https")),
                "avatar: {kept:?} does not start with http: or https:"
            );
            assert!(
                kept.trim() == kept && !kept.chars().any(char::is_control),
                "avatar: {kept:?} holds white space or controls the URL parser skipped"
            );
        }
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT");
            assert_eq!(error.field(), Some("avatar"));
        }
    }

    let code = EmailCode::parse(value);
    let trimmed = value.trim();
    check(
        "code",
        value,
        &code,
        trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit()),
    );
    if let Ok(code) = code {
        assert_eq!(code.as_str(), trimmed);
    }

    let content = Content::parse(value, 4000);
    check(
        "content",
        value,
        &content,
        (1..=4000).contains(&chars(value)) && !blank(value),
    );
    if let Ok(content) = content {
        assert_eq!(content.into_inner(), value);
    }

    let client_id = ClientId::parse(value);
    check(
        "clientId",
        value,
        &client_id,
        (1..=64).contains(&chars(value)),
    );
    if let Ok(client_id) = client_id {
        assert_eq!(client_id.into_inner(), value);
    }

    let name = GroupName::parse(value);
    check(
        "name",
        value,
        &name,
        (1..=64).contains(&chars(value)) && !blank(value),
    );
    if let Ok(name) = name {
        assert_eq!(name.into_inner(), value);
    }

    let info = GroupInfo::parse(value);
    check("info", value, &info, chars(value) <= 512);
    if let Ok(info) = info {
        assert_eq!(info.into_inner(), value);
    }

    let prefix = SearchPrefix::parse(value);
    check("query", value, &prefix, chars(trimmed) <= 64);
    if let Ok(prefix) = prefix {
        assert_eq!(prefix.as_str(), trimmed.to_lowercase());
    }

    // Chinese only when the header's most preferred tag is; never a panic.
    if Lang::from_accept_language(value) == Lang::Zh {
        assert!(
            value.to_ascii_lowercase().contains("zh"),
            "Accept-Language {value:?} chose Chinese"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<4>() {
        let value = i32::from_le_bytes(*bytes);
        let size = PageSize::parse("first", value, 100);
        check(
            "first",
            &value.to_string(),
            &size,
            (1..=100).contains(&value),
        );
        if let Ok(size) = size {
            assert_eq!(Ok(size.get()), usize::try_from(value));
        }
    }
    if let Ok(value) = std::str::from_utf8(data) {
        check_strings(value);
    }
});
