//! Outgoing email: what Latch sends (verification and change notices, reset links) and
//! the backends that deliver it (`log`, `file:<dir>`, and SMTP in `smtp.rs`).
//!
//! Bodies are plain text with an HTML alternative; links appear verbatim in the text
//! part so that a program reading a `.eml` file can find `token=…`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::config::MailerConfig;

pub mod messages;
pub(crate) mod smtp;

/// One message to one recipient. `Debug` leaves the bodies out: they hold tokens.
#[derive(Clone)]
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("to", &self.to).field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Delivers messages.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Hands over one message. The `log` and `file:` backends have finished when this
    /// returns (tests read the `.eml` file right after the response); SMTP has only
    /// queued it, since a relay must never hold up or fail a request.
    async fn send(&self, message: Outgoing) -> anyhow::Result<()>;

    /// Delivers one message before returning (one attempt, the error returned), for a
    /// command that exits right after: a queue would die with the process.
    async fn send_now(&self, message: Outgoing) -> anyhow::Result<()> {
        self.send(message).await
    }
}

/// Builds the mailer named by the configuration.
pub fn build(config: &MailerConfig, from: &str) -> anyhow::Result<Arc<dyn Mailer>> {
    let from: Mailbox = from.parse().context("mail_from")?;
    match config {
        MailerConfig::Log => Ok(Arc::new(LogMailer)),
        MailerConfig::File(dir) => {
            crate::files::create_private_dir(dir).context("mail directory")?;
            Ok(Arc::new(FileMailer { dir: dir.clone(), from }))
        }
        MailerConfig::Smtp(url) => Ok(Arc::new(smtp::SmtpMailer::start(url, from)?)),
    }
}

fn to_message(from: &Mailbox, m: &Outgoing) -> anyhow::Result<Message> {
    let to: Mailbox = m.to.parse().context("recipient")?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&m.subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, &m.text))
                .singlepart(part(ContentType::TEXT_HTML, &m.html)),
        )
        .context("build message")
}

/// A body part in 7bit or 8bit encoding, so that links stay verbatim: lettre's own
/// choice turns any line of 76 characters or more into quoted-printable, where
/// `token=` would read `token=3D`. RFC 5322 allows lines of up to 998 characters.
fn part(content_type: ContentType, text: &str) -> SinglePart {
    let text = text.replace("\r\n", "\n").replace('\r', "").replace('\n', "\r\n");
    let fits = !text.contains('\0') && text.split("\r\n").all(|line| line.len() <= 998);
    let body = if !fits {
        Body::new(text)
    } else if text.is_ascii() {
        Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::EightBit)
    };
    SinglePart::builder().header(content_type).body(body)
}

/// Prints messages to the log: for development, where the link is wanted at hand.
struct LogMailer;

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, m: Outgoing) -> anyhow::Result<()> {
        tracing::info!(to = %m.to, subject = %m.subject, body = %m.text, "email (log mailer)");
        Ok(())
    }
}

/// Writes one `.eml` file per message, `0600` (it holds single-use links).
struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

#[async_trait::async_trait]
impl Mailer for FileMailer {
    async fn send(&self, m: Outgoing) -> anyhow::Result<()> {
        let message = to_message(&self.from, &m)?.formatted();
        let (dir, name) = (self.dir.clone(), format!("{}.eml", uuid::Uuid::new_v4()));
        tokio::task::spawn_blocking(move || crate::files::write_private(&dir, &name, &message))
            .await
            .context("write .eml file")??;
        Ok(())
    }
}

/// Escapes text for the HTML part.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
