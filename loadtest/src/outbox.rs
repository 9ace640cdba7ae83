//! Registration codes from a dev outbox, for deployments without SMTP: the
//! server writes each mail there as one `.eml` file (chatroom's `mail` module).

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, bail};
use tokio::time::Instant;

/// The code mailed to `email` at or after `since`, waiting for the file to
/// appear until `deadline`.
pub async fn code_for(
    outbox: &Path,
    email: &str,
    since: SystemTime,
    deadline: Instant,
) -> anyhow::Result<String> {
    loop {
        if let Some(code) = find(outbox, email, since).await? {
            return Ok(code);
        }
        if Instant::now() >= deadline {
            bail!("no mail to {email} in {}", outbox.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn find(outbox: &Path, email: &str, since: SystemTime) -> anyhow::Result<Option<String>> {
    let mut entries = tokio::fs::read_dir(outbox)
        .await
        .with_context(|| format!("reading the outbox {}", outbox.display()))?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        // A long-lived outbox holds many old mails: only new ones are read.
        let fresh = entry
            .metadata()
            .await
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= since);
        if !fresh {
            continue;
        }
        let Ok(raw) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if let Some(code) = code_in_mail(&raw, email) {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// The six-digit code in a mail to `email`. The body is quoted-printable,
/// whose soft line breaks could split the sentence; ASCII digits and the
/// English sentence are otherwise left as they are.
fn code_in_mail(raw: &str, email: &str) -> Option<String> {
    let (headers, body) = raw.split_once("\r\n\r\n").or(raw.split_once("\n\n"))?;
    let email = email.to_ascii_lowercase();
    let to_them = unfold(headers).lines().any(|line| {
        line.get(..3).is_some_and(|n| n.eq_ignore_ascii_case("to:"))
            && line.to_ascii_lowercase().contains(&email)
    });
    if !to_them {
        return None;
    }
    let body = body.replace("=\r\n", "").replace("=\n", "");
    let after = &body[body.find("code is: ")? + "code is: ".len()..];
    let code: String = after.chars().take_while(char::is_ascii_digit).collect();
    (code.len() == 6).then_some(code)
}

/// Joins header lines continued on the next line (RFC 5322 folding).
fn unfold(headers: &str) -> String {
    headers
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "From: chatroom <noreply@localhost>\r\n\
        To: Ann@Example.com\r\n\
        Subject: =?utf-8?b?Y2hhdHJvb20=?=\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        =E4=BD=A0 123456\r\n\
        Your chatroom registration code is: 12=\r\n\
        3456\r\n";

    #[test]
    fn the_code_is_read_across_a_soft_line_break() {
        assert_eq!(
            code_in_mail(MAIL, "ann@example.com").as_deref(),
            Some("123456")
        );
    }

    #[test]
    fn a_mail_to_someone_else_has_no_code_for_us() {
        assert_eq!(code_in_mail(MAIL, "bob@example.com"), None);
    }
}
