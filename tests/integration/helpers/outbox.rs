//! The dev outbox: the mails the app sent, as `.eml` files.

use std::time::SystemTime;

use super::TestApp;

/// A mail as the outbox holds it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl TestApp {
    /// Every mail to `email` in the outbox, with when it was written.
    pub fn mails_to(&self, email: &str) -> Vec<(SystemTime, Mail)> {
        let mut mails = Vec::new();
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
            let written = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("a modification time");
            let body =
                |part: Option<std::borrow::Cow<'_, str>>| part.unwrap_or_default().into_owned();
            mails.push((
                written,
                Mail {
                    subject: message.subject().unwrap_or_default().to_owned(),
                    text: body(message.body_text(0)),
                    html: body(message.body_html(0)),
                },
            ));
        }
        mails
    }

    /// The code in the newest mail to `email` in the outbox.
    pub fn read_code(&self, email: &str) -> String {
        let (_, newest) = self
            .mails_to(email)
            .into_iter()
            .max_by_key(|(written, _)| *written)
            .unwrap_or_else(|| panic!("no mail to {email} in the outbox"));
        extract_code(&newest.text).unwrap_or_else(|| panic!("no 6-digit code in: {}", newest.text))
    }

    /// Every digest mail to `email` in the outbox (mails whose subject is
    /// not a code's).
    pub fn digests_to(&self, email: &str) -> Vec<Mail> {
        self.mails_to(email)
            .into_iter()
            .map(|(_, mail)| mail)
            .filter(|mail| !mail.subject.contains("code"))
            .collect()
    }
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
