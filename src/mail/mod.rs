//! Outgoing mail: SMTP in production, a folder of `.eml` files in development.
//!
//! Both are lettre transports, so the message a developer reads in the outbox
//! is byte for byte the one SMTP would have sent.

use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Body, Mailbox, MultiPart, SinglePart,
        header::{ContentTransferEncoding, ContentType},
    },
};

use crate::{
    config::Config,
    error::{Error, Lang, Result},
};

/// What a digest mail says: per room with unread messages, how many, and
/// the newest one's sender and opening words.
#[derive(Debug, Clone)]
pub struct Digest {
    pub to: String,
    /// How the mail greets the user.
    pub name: String,
    pub lang: Lang,
    /// The web client.
    pub link: String,
    pub rooms: Vec<DigestRoom>,
}

#[derive(Debug, Clone)]
pub struct DigestRoom {
    pub room: uuid::Uuid,
    /// A group's name, or the other member's nickname.
    pub name: String,
    pub unread: u64,
    pub sender: Option<String>,
    pub opening: Option<String>,
}

pub enum Mailer {
    /// `CHATROOM_SMTP_URL`: `smtps://` for implicit TLS, `smtp://…?tls=required` for STARTTLS.
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Without SMTP: one `.eml` per mail in the outbox folder.
    Outbox {
        transport: AsyncFileTransport<Tokio1Executor>,
        from: Mailbox,
        dir: PathBuf,
    },
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("CHATROOM_MAIL_FROM {:?}: {e}", config.mail_from))?;
        Ok(match &config.smtp_url {
            Some(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("CHATROOM_SMTP_URL: {e}"))?
                    .timeout(Some(config.store_timeout()))
                    .build(),
                from,
            },
            None => {
                let dir = config.outbox_dir();
                std::fs::create_dir_all(&dir)?;
                Mailer::Outbox {
                    transport: AsyncFileTransport::new(&dir),
                    from,
                    dir,
                }
            }
        })
    }

    /// Where dev mail lands, when there is no SMTP server.
    pub fn outbox(&self) -> Option<&PathBuf> {
        match self {
            Mailer::Smtp { .. } => None,
            Mailer::Outbox { dir, .. } => Some(dir),
        }
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from,
        }
    }

    /// Mails a registration code, saying in Chinese and English what it is for
    /// and how long it stays valid.
    pub async fn send_code(&self, to: &str, code: &str, valid_for: Duration) -> Result<()> {
        let to: Mailbox = to.parse().map_err(Error::internal)?;
        let minutes = valid_for.as_secs().div_ceil(60);
        let message = Message::builder()
            .from(self.from().clone())
            .to(to)
            .subject(format!("chatroom 验证码 / verification code: {code}"))
            .header(ContentType::TEXT_PLAIN)
            .body(
                // Quoted-printable keeps the English half, and the code,
                // readable in the raw .eml of the dev outbox.
                Body::new_with_encoding(
                    code_mail_body(code, minutes),
                    ContentTransferEncoding::QuotedPrintable,
                )
                .map_err(|_| Error::internal(anyhow::anyhow!("mail body encoding")))?,
            )
            .map_err(Error::internal)?;
        self.send(message).await
    }

    /// Mails a digest of what the user missed, in their language, as plain
    /// text and as HTML (every value from users escaped).
    pub async fn send_digest(&self, digest: &Digest) -> Result<()> {
        let to: Mailbox = digest.to.parse().map_err(Error::internal)?;
        let (text, html) = digest_bodies(digest);
        let subject = match digest.lang {
            Lang::Zh => format!("chatroom：你有 {} 条未读消息", total_unread(digest)),
            Lang::En => format!("chatroom: {} unread messages", total_unread(digest)),
        };
        let part = |body: String, kind: ContentType| {
            Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
                .map(|body| SinglePart::builder().header(kind).body(body))
                .map_err(|_| Error::internal(anyhow::anyhow!("mail body encoding")))
        };
        let message = Message::builder()
            .from(self.from().clone())
            .to(to)
            .subject(subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(text, ContentType::TEXT_PLAIN)?)
                    .singlepart(part(html, ContentType::TEXT_HTML)?),
            )
            .map_err(Error::internal)?;
        self.send(message).await
    }

    async fn send(&self, message: Message) -> Result<()> {
        match self {
            Mailer::Smtp { transport, .. } => transport
                .send(message)
                .await
                .map(drop)
                .map_err(|e| Error::unavailable("smtp", e)),
            Mailer::Outbox { transport, .. } => transport
                .send(message)
                .await
                .map(drop)
                .map_err(Error::internal),
        }
    }
}

fn code_mail_body(code: &str, minutes: u64) -> String {
    format!(
        "你的 chatroom 注册验证码是：{code}\n\
         验证码 {minutes} 分钟内有效，只能使用一次。如果这不是你本人的操作，请忽略此邮件。\n\
         \n\
         Your chatroom registration code is: {code}\n\
         It is valid for {minutes} minutes and can be used once. \
         If you did not ask for it, please ignore this mail.\n"
    )
}

fn total_unread(digest: &Digest) -> u64 {
    digest.rooms.iter().map(|room| room.unread).sum()
}

/// The link that opens `room` in the web client.
fn room_link(digest: &Digest, room: &DigestRoom) -> String {
    match url::Url::parse(&digest.link) {
        Ok(mut link) => {
            link.query_pairs_mut()
                .append_pair("room", &room.room.to_string());
            link.to_string()
        }
        Err(_) => digest.link.clone(),
    }
}

/// The digest as plain text and as HTML.
fn digest_bodies(digest: &Digest) -> (String, String) {
    use html_escape::{encode_double_quoted_attribute as attribute, encode_text as html};
    let zh = digest.lang == Lang::Zh;
    let hello = match zh {
        true => format!("{}，你好：你不在的时候，有这些新消息。", digest.name),
        false => format!("Hello {}, this came while you were away.", digest.name),
    };
    let open = match zh {
        true => "打开 chatroom",
        false => "Open chatroom",
    };
    let mut text = format!("{hello}\n\n");
    let mut items = String::new();
    for room in &digest.rooms {
        let count = match zh {
            true => format!("{} 条未读", room.unread),
            false if room.unread == 1 => "1 unread message".to_owned(),
            false => format!("{} unread messages", room.unread),
        };
        let newest = match (&room.sender, &room.opening) {
            (Some(sender), Some(opening)) => Some(format!("{sender}: {opening}")),
            _ => None,
        };
        let link = room_link(digest, room);
        text.push_str(&format!("{} ({count})\n", room.name));
        if let Some(newest) = &newest {
            text.push_str(&format!("  {newest}\n"));
        }
        text.push_str(&format!("  {link}\n\n"));
        items.push_str(&format!(
            "<li><a href=\"{}\"><strong>{}</strong></a> ({})",
            attribute(&link),
            html(&room.name),
            html(&count)
        ));
        if let Some(newest) = &newest {
            items.push_str(&format!("<br>{}", html(newest)));
        }
        items.push_str("</li>\n");
    }
    text.push_str(&format!("{open}: {}\n", digest.link));
    let html_body = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>{}</p>\n<ul>\n{items}</ul>\n\
         <p><a href=\"{}\">{open}</a></p>\n</body></html>\n",
        html(&hello),
        attribute(&digest.link),
    );
    (text, html_body)
}
