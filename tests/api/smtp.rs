//! The SMTP mailer against a small SMTP server of the test's own: delivery with
//! credentials, links kept verbatim, and requests that never wait for the relay.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use latch::config::MailerConfig;
use reqwest::StatusCode;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::*;

/// One message as the fake server received it.
#[derive(Debug, Clone, Default)]
struct Received {
    /// User and password of a successful AUTH on the connection, if any.
    auth: Option<(String, String)>,
    mail_from: String,
    rcpt_to: Vec<String>,
    /// The DATA text, dot-stuffing undone, without the final `.` line.
    data: String,
}

/// A minimal SMTP server on 127.0.0.1: enough of RFC 5321 for lettre (EHLO, AUTH
/// PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT), no STARTTLS, so the opportunistic
/// client stays in plain text. Stops when dropped.
struct FakeSmtp {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    server: JoinHandle<()>,
}

impl FakeSmtp {
    async fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    async fn start_on(port: u16) -> Self {
        Self::serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap())
    }

    fn serve(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(session(stream, Arc::clone(&sink)));
            }
        });
        Self { port, received, server }
    }

    /// Waits up to `limit` for `n` messages and returns what arrived.
    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Speaks SMTP on one connection; any I/O error just ends it.
async fn session(stream: TcpStream, sink: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |s: &str| String::from_utf8(b64.decode(s.trim()).unwrap_or_default()).unwrap_or_default();
    let mut current = Received::default();
    write.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    while let Some(command) = read_line(&mut lines).await? {
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-fake.test\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000\r\n"
        } else if upper.starts_with("HELO") {
            b"250 fake.test\r\n"
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = command["AUTH PLAIN".len()..].trim().to_owned();
            let response = if initial.is_empty() {
                write.write_all(b"334 \r\n").await?;
                read_line(&mut lines).await?.unwrap_or_default()
            } else {
                initial
            };
            // PLAIN is "authzid \0 user \0 password".
            let plain = decode(&response);
            let mut parts = plain.split('\0').skip(1);
            let user = parts.next().unwrap_or_default().to_owned();
            let password = parts.next().unwrap_or_default().to_owned();
            current.auth = Some((user, password));
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("AUTH LOGIN") {
            write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let user = decode(&read_line(&mut lines).await?.unwrap_or_default());
            write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let password = decode(&read_line(&mut lines).await?.unwrap_or_default());
            current.auth = Some((user, password));
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            current.mail_from = address(&command);
            b"250 2.1.0 Ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt_to.push(address(&command));
            b"250 2.1.5 Ok\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            while let Some(text) = read_line(&mut lines).await? {
                if text == "." {
                    break;
                }
                data.push_str(text.strip_prefix('.').unwrap_or(&text));
                data.push_str("\r\n");
            }
            current.data = data;
            let auth = current.auth.clone();
            sink.lock().unwrap().push(std::mem::take(&mut current));
            current.auth = auth;
            b"250 2.0.0 Ok: queued\r\n"
        } else if upper == "RSET" {
            current = Received { auth: current.auth.take(), ..Received::default() };
            b"250 2.0.0 Ok\r\n"
        } else if upper == "NOOP" {
            b"250 2.0.0 Ok\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 Command not recognized\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// One line without its CRLF, or `None` at end of stream.
async fn read_line(lines: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if lines.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned()))
}

/// The address inside `<…>` of a MAIL FROM or RCPT TO command.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

fn smtp_mailer(url: String) -> impl FnOnce(&mut latch::config::Config) {
    move |c| c.mailer = MailerConfig::Smtp(SecretString::from(url))
}

#[tokio::test]
async fn registration_sends_the_verification_email_over_smtp_with_credentials() {
    // Arrange
    let smtp = FakeSmtp::start().await;
    let app = spawn_app_with(smtp_mailer(format!("smtp://user:secret@127.0.0.1:{}", smtp.port))).await;

    // Act
    let r = app.register("alice", "alice@example.com", PASSWORD).await;

    // Assert
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    let mail = &received[0];
    assert_eq!(mail.rcpt_to, ["alice@example.com"]);
    assert_eq!(mail.mail_from, "latch@localhost");
    assert_eq!(mail.auth, Some(("user".to_owned(), "secret".to_owned())));
    assert!(mail.data.lines().any(|l| l.eq_ignore_ascii_case("To: alice@example.com")), "{}", mail.data);
    let link = format!("{}/verify-email?token=", app.base);
    assert!(mail.data.contains(&link), "no verbatim link {link} in:\n{}", mail.data);
    assert!(!mail.data.contains("quoted-printable"), "{}", mail.data);

    // The token in the email works.
    let token = token_in(&mail.data);
    let r = app.post_json("/email-verification/confirm", &serde_json::json!({ "token": token })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn percent_encoded_credentials_are_decoded() {
    let smtp = FakeSmtp::start().await;
    let url = format!("smtp://me%40example.com:p%3Ass%40w%2Frd@127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(smtp_mailer(url)).await;

    let r = app.register("bob", "bob@example.com", PASSWORD).await;

    assert_eq!(r.status(), StatusCode::CREATED);
    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].auth, Some(("me@example.com".to_owned(), "p:ss@w/rd".to_owned())));
}

#[tokio::test]
async fn an_unreachable_relay_neither_delays_nor_fails_the_request_and_a_retry_delivers() {
    // Arrange: a port on which nothing listens yet.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(smtp_mailer(format!("smtp://user:secret@127.0.0.1:{port}"))).await;

    // Act
    let started = Instant::now();
    let r = app.register("carol", "carol@example.com", PASSWORD).await;
    let took = started.elapsed();

    // Assert: answered at once; the first attempts fail; a later one reaches the relay.
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert!(took < Duration::from_secs(1), "registration took {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let smtp = FakeSmtp::start_on(port).await;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].rcpt_to, ["carol@example.com"]);
    assert!(received[0].data.contains(&format!("{}/verify-email?token=", app.base)));
}

#[tokio::test]
async fn a_stalled_relay_does_not_hold_the_response() {
    // Arrange: a relay that accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let app = spawn_app_with(smtp_mailer(format!("smtp://127.0.0.1:{port}"))).await;

    // Act
    let started = Instant::now();
    let r = app.register("dave", "dave@example.com", PASSWORD).await;
    let took = started.elapsed();

    // Assert
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert!(took < Duration::from_secs(1), "registration took {took:?}");
    silent.abort();
}
