//! The dev outbox: the codes the app mailed, as `.eml` files.

use std::path::Path;

use super::TestApp;

impl TestApp {
    /// The code in the newest mail to `email` in the outbox.
    pub fn read_code(&self, email: &str) -> String {
        let mut newest: Option<(std::time::SystemTime, String)> = None;
        for entry in std::fs::read_dir(&self.outbox).expect("the outbox exists") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "eml") {
                continue;
            }
            let raw = std::fs::read(&path).expect("a readable mail");
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("a well-formed mail");
            let to_email = message
                .to()
                .and_then(|to| to.first())
                .and_then(|address| address.address())
                .is_some_and(|address| address.eq_ignore_ascii_case(email));
            if !to_email {
                continue;
            }
            let modified = entry_time(&path);
            let body = message.body_text(0).expect("a text body").into_owned();
            if newest.as_ref().is_none_or(|(time, _)| modified >= *time) {
                newest = Some((modified, body));
            }
        }
        let (_, body) = newest.unwrap_or_else(|| panic!("no mail to {email} in the outbox"));
        extract_code(&body).unwrap_or_else(|| panic!("no 6-digit code in: {body}"))
    }
}

/// A digest mail as the outbox holds it.
#[derive(Debug, Clone)]
pub struct DigestMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl TestApp {
    /// Every digest mail to `email` in the outbox (mails whose subject is
    /// not a code's).
    pub fn digests_to(&self, email: &str) -> Vec<DigestMail> {
        let mut digests = Vec::new();
        for entry in std::fs::read_dir(&self.outbox).expect("the outbox exists") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "eml") {
                continue;
            }
            let raw = std::fs::read(&path).expect("a readable mail");
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("a well-formed mail");
            let to_email = message
                .to()
                .and_then(|to| to.first())
                .and_then(|address| address.address())
                .is_some_and(|address| address.eq_ignore_ascii_case(email));
            let subject = message.subject().unwrap_or_default().to_owned();
            if !to_email || subject.contains("code") {
                continue;
            }
            digests.push(DigestMail {
                subject,
                text: message
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                html: message
                    .body_html(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
            });
        }
        digests
    }
}

fn entry_time(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("a modification time")
}

/// The first run of exactly six digits in a text.
pub fn extract_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|start| {
        let run = &bytes[start..];
        let is_start = start == 0 || !bytes[start - 1].is_ascii_digit();
        let six = run.len() >= 6 && run[..6].iter().all(u8::is_ascii_digit);
        let ends = run.get(6).is_none_or(|b| !b.is_ascii_digit());
        (is_start && six && ends).then(|| text[start..start + 6].to_owned())
    })
}
