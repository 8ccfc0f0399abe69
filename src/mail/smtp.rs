//! SMTP delivery through a relay: `smtp://` (STARTTLS when the server offers it) and
//! `smtps://` (TLS from the first byte). `send` only puts the message on a bounded
//! in-memory queue; a background task delivers it, retrying with exponential back-off,
//! so that a slow or absent relay never holds up or fails the HTTP request that caused
//! the email.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{Semaphore, mpsc};

use super::{Mailer, Outgoing, to_message};

/// Messages allowed to wait for delivery. Past this, new messages are dropped (and
/// logged) so that a relay that is down cannot make memory grow without bound.
const QUEUE_CAPACITY: usize = 10_000;

/// Deliveries in progress at once, each on its own connection (lettre's connection pool
/// is not compiled in). A message keeps its slot while it waits for a retry, which keeps
/// the number of messages held in memory below capacity + this.
const CONCURRENT_DELIVERIES: usize = 8;

/// Attempts per message, the first included: 1 s, 2 s, 4 s and 8 s apart, so a relay
/// that comes back within about 15 s loses nothing.
const MAX_ATTEMPTS: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Limit on connecting and on each SMTP command; lettre's default of 60 s would let a
/// stalled relay hold a delivery slot for minutes.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the relay is and how to talk to it, as written in `LATCH_MAILER`.
pub(crate) struct SmtpUrl {
    host: String,
    port: u16,
    implicit_tls: bool,
    credentials: Option<(String, SecretString)>,
}

impl SmtpUrl {
    /// Parses `smtp://[user:pass@]host[:port]` (port 25 by default) or `smtps://…`
    /// (port 465 by default). User and password are percent-decoded. Error messages
    /// never repeat the URL, which may hold a password.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let url = url::Url::parse(value).map_err(|e| format!("not a valid URL: {e}"))?;
        let (implicit_tls, default_port) = match url.scheme() {
            "smtp" => (false, 25),
            "smtps" => (true, 465),
            _ => return Err("an SMTP URL starts with smtp:// or smtps://".to_owned()),
        };
        // `host_str` keeps the brackets of an IPv6 address, which would not resolve.
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err("an SMTP URL needs a host".to_owned()),
        };
        let port = url.port().unwrap_or(default_port);
        if port == 0 {
            return Err("the SMTP port cannot be 0".to_owned());
        }
        // lettre would read a path as the EHLO name and a query as TLS options; refusing
        // them keeps one meaning per URL instead of settings that silently do nothing.
        if !matches!(url.path(), "" | "/") {
            return Err("an SMTP URL takes no path".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("an SMTP URL takes no query or fragment".to_owned());
        }
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(password)) if !user.is_empty() => {
                let user = percent_decode(user).map_err(|e| format!("user name: {e}"))?;
                let password = percent_decode(password).map_err(|e| format!("password: {e}"))?;
                Some((user, SecretString::from(password)))
            }
            _ => return Err("SMTP credentials need both a user name and a password (user:pass@host)".to_owned()),
        };
        Ok(Self { host, port, implicit_tls, credentials })
    }

    fn transport(&self) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
        let tls = TlsParameters::new(self.host.clone()).context("SMTP TLS settings")?;
        let tls = if self.implicit_tls { Tls::Wrapper(tls) } else { Tls::Opportunistic(tls) };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(builder.build())
    }
}

/// Decodes `%XX` escapes (as in the user info of a URL) into UTF-8 text. A `%` without
/// two hexadecimal digits is refused rather than kept literally (as `percent-encoding`
/// would): it is almost always a mistyped escape, and a wrong password found at the
/// first send is harder to trace than a refusal at start.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    // Each `%` starts a piece of the split after the first, which must open with two hex digits.
    let escape = |rest: &str| rest.as_bytes().get(..2).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    if !s.split('%').skip(1).all(escape) {
        return Err("`%` must be followed by two hexadecimal digits");
    }
    match percent_encoding::percent_decode_str(s).decode_utf8() {
        Ok(text) => Ok(text.into_owned()),
        Err(_) => Err("percent-escapes do not form UTF-8 text"),
    }
}

/// One formatted message waiting for delivery. Formatting happens once, at enqueue
/// time, so that every attempt sends the same bytes (same `Message-ID` and `Date`).
struct Queued {
    envelope: Envelope,
    bytes: Vec<u8>,
    to: String,
    subject: String,
}

/// Hands messages to the delivery task; see the module documentation.
pub(crate) struct SmtpMailer {
    from: Mailbox,
    queue: mpsc::Sender<Queued>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// Builds the transport and starts the delivery task on the current Tokio runtime.
    /// Nothing is sent (nor the relay contacted) until the first message.
    pub(crate) fn start(url: &SecretString, from: Mailbox) -> anyhow::Result<Self> {
        let transport =
            SmtpUrl::parse(url.expose_secret()).map_err(anyhow::Error::msg).context("mailer")?.transport()?;
        let runtime = tokio::runtime::Handle::try_current().context("the SMTP mailer needs a Tokio runtime")?;
        let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
        // The task ends when the last sender (this mailer, inside the app state) is dropped.
        runtime.spawn(run_queue(transport.clone(), pending));
        Ok(Self { from, queue, transport })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, m: Outgoing) -> anyhow::Result<()> {
        let message = to_message(&self.from, &m)?;
        let queued =
            Queued { envelope: message.envelope().clone(), bytes: message.formatted(), to: m.to, subject: m.subject };
        match self.queue.try_send(queued) {
            Ok(()) => {}
            // Logged here rather than returned: a full queue must not turn into a failed request.
            Err(mpsc::error::TrySendError::Full(q)) => {
                tracing::error!(to = %q.to, subject = %q.subject, capacity = QUEUE_CAPACITY, "mail queue full; email dropped");
            }
            Err(mpsc::error::TrySendError::Closed(q)) => {
                tracing::error!(to = %q.to, subject = %q.subject, "mail delivery task has stopped; email dropped");
            }
        }
        Ok(())
    }

    async fn send_now(&self, m: Outgoing) -> anyhow::Result<()> {
        let message = to_message(&self.from, &m)?;
        self.transport.send_raw(message.envelope(), &message.formatted()).await.context("SMTP delivery")?;
        Ok(())
    }
}

/// Takes messages off the queue and delivers each in its own task, at most
/// [`CONCURRENT_DELIVERIES`] at once.
async fn run_queue(transport: AsyncSmtpTransport<Tokio1Executor>, mut pending: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(message) = pending.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let transport = transport.clone();
        tokio::spawn(async move {
            deliver(&transport, &message).await;
            drop(slot);
        });
    }
}

/// Sends one message, retrying transient failures. Logs name the recipient and subject,
/// never the body, which holds single-use tokens.
async fn deliver(transport: &AsyncSmtpTransport<Tokio1Executor>, m: &Queued) {
    let mut delay = FIRST_RETRY_DELAY;
    for attempt in 1..=MAX_ATTEMPTS {
        match transport.send_raw(&m.envelope, &m.bytes).await {
            Ok(_) => {
                tracing::info!(to = %m.to, subject = %m.subject, attempt, "email delivered");
                return;
            }
            Err(e) if e.is_permanent() => {
                tracing::error!(to = %m.to, subject = %m.subject, attempt, error = %e, "email refused by the SMTP server; not retried");
                return;
            }
            Err(e) if attempt == MAX_ATTEMPTS => {
                tracing::error!(to = %m.to, subject = %m.subject, attempt, error = %e, "email not delivered; giving up");
                return;
            }
            Err(e) => {
                tracing::warn!(to = %m.to, subject = %m.subject, attempt, retry_in = ?delay, error = %e, "email delivery failed; will retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_default_by_scheme() {
        let plain = SmtpUrl::parse("smtp://mail.example.com").unwrap();
        assert_eq!((plain.port, plain.implicit_tls), (25, false));
        let tls = SmtpUrl::parse("smtps://mail.example.com").unwrap();
        assert_eq!((tls.port, tls.implicit_tls), (465, true));
        assert_eq!(SmtpUrl::parse("smtp://mail.example.com:587").unwrap().port, 587);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let url = SmtpUrl::parse("smtp://me%40example.com:p%3Ass%2Fw%C3%B6rd@mail.example.com:587").unwrap();
        let (user, password) = url.credentials.unwrap();
        assert_eq!(user, "me@example.com");
        assert_eq!(password.expose_secret(), "p:ss/wörd");
        assert!(SmtpUrl::parse("smtp://mail.example.com").unwrap().credentials.is_none());
        // `+` is not a space in a URL's user info, and `%25` is a literal `%`.
        let url = SmtpUrl::parse("smtp://a+b:100%25@mail.example.com").unwrap();
        let (user, password) = url.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose_secret()), ("a+b", "100%"));
    }

    #[test]
    fn malformed_escapes_and_invalid_utf8_are_refused() {
        for (url, part, reason) in [
            ("smtp://me%zz:pw@mail.example.com", "user name", "hexadecimal"),
            ("smtp://me:pw%4@mail.example.com", "password", "hexadecimal"),
            ("smtp://me:pw%@mail.example.com", "password", "hexadecimal"),
            ("smtp://me:%%41@mail.example.com", "password", "hexadecimal"),
            ("smtp://me:%ff%fe@mail.example.com", "password", "UTF-8"),
            ("smtp://%C3:pw@mail.example.com", "user name", "UTF-8"),
        ] {
            let err = SmtpUrl::parse(url).err().unwrap_or_else(|| panic!("{url} accepted"));
            assert!(err.starts_with(part) && err.contains(reason), "{url}: {err}");
        }
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        assert_eq!(SmtpUrl::parse("smtp://[::1]:2525").unwrap().host, "::1");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "smtp://user@mail.example.com",
            "smtp://:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com/helo",
            "smtp://user:hunter2@mail.example.com?tls=required",
            "smtp://user:hunter2%zz@mail.example.com",
            "smtp://mail.example.com:0",
            "smtp://",
        ] {
            let err = SmtpUrl::parse(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
