//! Outgoing mail: SMTP in production, a folder of `.eml` files in development.
//!
//! Both are lettre transports, so the message a developer reads in the outbox
//! is byte for byte the one SMTP would have sent.

use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Body, Mailbox,
        header::{ContentTransferEncoding, ContentType},
    },
};

use crate::{
    config::Config,
    error::{Error, Result},
};

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
