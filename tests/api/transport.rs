//! Transport: slow or idle clients cannot exhaust the server, SIGTERM ends it within
//! the shutdown timeout, refused requests keep the connection usable, response
//! headers, the metrics listener, and the modes of files at rest. Driven over raw
//! sockets where a client library would hide what is under test.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latch::app::App;
use latch::config::RawConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// One HTTP/1.1 connection driven by hand.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response read off a [`Raw`] connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw { stream: TcpStream::connect(addr).await.unwrap(), buffer: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next response, or `None` when none came within `within`.
    async fn response_within(&mut self, within: Duration) -> Option<RawResponse> {
        tokio::time::timeout(within, self.response()).await.ok()
    }

    async fn response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(i) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        while self.buffer.len() < head_end + length {
            self.fill().await;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        RawResponse { status, headers, body }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.expect("connection still open");
        assert!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes `stream` within `within` (whatever it sent before).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn addr(app: &TestApp) -> SocketAddr {
    app.base.strip_prefix("http://").unwrap().parse().unwrap()
}

/// A request line and one header, never finished.
const UNFINISHED: &[u8] = b"GET /health HTTP/1.1\r\nHost: latch\r\n";

// ---------------------------------------------------------------------------------
// `latch serve` as a process, for what concerns the whole process.

/// A `latch serve` process, killed if the test ends before it does.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `latch serve` in `dir` through `sh`, so that `prelude` (`ulimit`, `umask`) applies
/// to it; returns the process with the base URL and the lines it printed after it.
fn serve_process(dir: &Path, prelude: &str, env: &[(&str, &str)]) -> (Process, String, Vec<String>) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{prelude} && exec \"$0\" serve")).arg(env!("CARGO_BIN_EXE_latch"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn").env("LATCH_LISTEN", "127.0.0.1:0");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let mut more = Vec::new();
    if env.iter().any(|(k, _)| *k == "LATCH_METRICS_LISTEN") {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        more.push(line.trim().to_owned());
    }
    (Process(child), base.to_owned(), more)
}

fn terminate(child: &Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// The child's exit status if it exits within `within`; kills it otherwise.
async fn exits_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn slow_clients_cannot_take_health_down() {
    // 256 descriptors: 300 clients that never finish their headers would exhaust them
    // without a connection limit, and hold them forever without a header timeout.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, _) = serve_process(dir.path(), "ulimit -n 256", &[("LATCH_HEADER_TIMEOUT", "1s")]);
    let addr: SocketAddr = base.strip_prefix("http://").unwrap().parse().unwrap();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(UNFINISHED).await.unwrap();
        slow.push(stream);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let started = Instant::now();
    let health = client.get(format!("{base}/health")).send().await;
    assert!(matches!(health.as_ref().map(|r| r.status()), Ok(StatusCode::OK)), "{health:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // The slow clients were shown the door, not kept.
    assert!(closed_within(&mut slow[0], Duration::from_secs(5)).await);
    terminate(&child.0);
    assert_eq!(exits_within(&mut child.0, Duration::from_secs(10)).await.and_then(|s| s.code()), Some(0));
}

#[tokio::test]
async fn sigterm_ends_the_process_within_the_shutdown_timeout_whatever_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("LATCH_HEADER_TIMEOUT", "60s"), ("LATCH_SHUTDOWN_TIMEOUT", "1s")];
    let (mut child, base, _) = serve_process(dir.path(), "true", &env);
    let addr: SocketAddr = base.strip_prefix("http://").unwrap().parse().unwrap();
    // One client stuck in its headers, one in its body.
    let mut headers = TcpStream::connect(addr).await.unwrap();
    headers.write_all(UNFINISHED).await.unwrap();
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        b"POST /users HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    terminate(&child.0);
    let status = exits_within(&mut child.0, Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "still running 10 s after SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn secrets_at_rest_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode =
        |p: &Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let env = [("LATCH_DATA_DIR", "data"), ("LATCH_MAILER", "file:mail")];
    let (_child, base, _) = serve_process(dir.path(), "umask 000", &env);
    let client = reqwest::Client::new();
    let body = json!({"username": "private", "email": "private@example.com", "password": PASSWORD});
    let r = client.post(format!("{base}/users")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let data = dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    for file in ["latch.db", "latch.db-wal", "latch.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let mails: Vec<_> = std::fs::read_dir(dir.path().join("mail")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!mails.is_empty());
    for mail in &mails {
        assert_eq!(mode(mail), 0o600, "{}", mail.display());
    }

    let backup = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" --data-dir data backup copy.db")
        .arg(env!("CARGO_BIN_EXE_latch"))
        .current_dir(dir.path())
        .env("LATCH_LOG", "warn")
        .output()
        .unwrap();
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert_eq!(mode(&dir.path().join("copy.db")), 0o600);
}

#[tokio::test]
async fn the_metrics_address_is_printed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, lines) = serve_process(dir.path(), "true", &[("LATCH_METRICS_LISTEN", "127.0.0.1:0")]);
    let url = lines[0].strip_prefix("metrics on ").unwrap_or_else(|| panic!("{lines:?}"));
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------
// Connections, in process.

#[tokio::test]
async fn headers_that_never_finish_are_cut_off_after_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        // 350 KB of a header: under hyper's buffer limit, so only the timeout ends it.
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: latch\r\nX-Padding: ").await.unwrap();
        stream.write_all(&vec![b'a'; 350 * 1024]).await.unwrap();
        streams.push(stream);
    }
    for stream in &mut streams {
        assert!(closed_within(stream, Duration::from_secs(5)).await, "still open");
    }
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::connect(addr(&app)).await;
    raw.send(b"GET /health HTTP/1.1\r\nHost: latch\r\n\r\n").await;
    let r = raw.response().await;
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    assert!(closed_within(&mut raw.stream, Duration::from_secs(5)).await, "idle connection kept");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = spawn_app_with(|c| {
        c.max_connections = Some(2);
        c.header_timeout = Duration::from_secs(2);
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream.write_all(UNFINISHED).await.unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = Raw::connect(addr(&app)).await;
    waiting.send(b"GET /health HTTP/1.1\r\nHost: latch\r\n\r\n").await;
    assert!(waiting.response_within(Duration::from_millis(1000)).await.is_none(), "served beyond the limit");
    // The slow clients time out, and the waiting connection gets their slot.
    let r = waiting.response_within(Duration::from_secs(5)).await.expect("served once a slot freed");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_responses_loses_its_slot() {
    let app = spawn_app_with(|c| {
        c.max_connections = Some(1);
        c.header_timeout = Duration::from_secs(1);
    })
    .await;
    // Pipelined requests whose answers (megabytes) are never read fill the socket
    // buffers, and the server's write waits on the client.
    let mut stalled = TcpStream::connect(addr(&app)).await.unwrap();
    let requests = b"GET /openapi.json HTTP/1.1\r\nHost: latch\r\n\r\n".repeat(2000);
    let _ = tokio::time::timeout(Duration::from_secs(5), stalled.write_all(&requests)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let health = client.get(app.url("/health")).send().await;
    assert!(matches!(health.as_ref().map(|r| r.status()), Ok(StatusCode::OK)), "{health:?}");
}

#[tokio::test]
async fn a_request_is_answered_within_the_request_timeout() {
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::connect(addr(&app)).await;
    // A body that never completes keeps the handler waiting.
    raw.send(
        b"POST /users HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await;
    let r = raw.response_within(Duration::from_secs(5)).await.expect("answered");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some(), "{r:?}");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["code"], "service_unavailable");
}

// ---------------------------------------------------------------------------------
// Refused requests and the connection.

#[tokio::test]
async fn refused_requests_with_unread_bodies_keep_the_connection_usable() {
    let app = spawn_app().await;
    app.create_user("keeper").await;
    let r = app.post_form("/sessions", &[("username", "keeper"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    let mut raw = Raw::connect(addr(&app)).await;
    let body = br#"{"username": "someone-else", "email": "keeper@example.org", "current_password": "x"}"#;
    for i in 0..60 {
        let (head, expected) = match i % 3 {
            // Cookie authentication refused for a cross-site request: 403.
            0 => (format!("PATCH /users/me HTTP/1.1\r\nCookie: {cookie}\r\nSec-Fetch-Site: cross-site\r\n"), 403),
            // No credentials at all: 401.
            1 => ("POST /users/me/password HTTP/1.1\r\n".to_owned(), 401),
            // Not JSON: 415.
            _ => ("POST /users HTTP/1.1\r\n".to_owned(), 415),
        };
        let content_type = if expected == 415 { "text/plain" } else { "application/json" };
        let head =
            format!("{head}Host: latch\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
        raw.send(head.as_bytes()).await;
        if i % 2 == 0 {
            // The answer goes out before the body arrives: the case that broke.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        raw.send(body).await;
        let r = raw.response_within(Duration::from_secs(5)).await.expect("answered");
        assert_eq!(r.status, expected, "request {i}");
        assert!(!r.closes(), "request {i} closed the connection");
    }
    raw.send(format!("GET /users/me HTTP/1.1\r\nHost: latch\r\nCookie: {cookie}\r\n\r\n").as_bytes()).await;
    let r = raw.response_within(Duration::from_secs(5)).await.expect("answered on the same connection");
    assert_eq!(r.status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["username"], "keeper");
}

#[tokio::test]
async fn a_body_too_large_to_drain_is_answered_with_connection_close() {
    let app = spawn_app().await;
    let mut raw = Raw::connect(addr(&app)).await;
    let body = vec![b' '; 200 * 1024];
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    raw.send(head.as_bytes()).await;
    // The server may answer and close before the whole body is written.
    let _ = raw.stream.write_all(&body).await;
    let r = raw.response_within(Duration::from_secs(5)).await.expect("answered");
    assert_eq!(r.status, 413);
    assert!(r.closes(), "413 without Connection: close: {r:?}");
}

// ---------------------------------------------------------------------------------
// Response headers, the public URL, the metrics listener.

#[tokio::test]
async fn responses_carry_referrer_policy_and_the_api_csp() {
    let app = spawn_app().await;
    let ok = app.client.get(app.url("/health")).send().await.unwrap();
    let missing = app.client.get(app.url("/no/such/route")).send().await.unwrap();
    let invalid = app.post_json("/users", &json!({})).await;
    for r in [&ok, &missing, &invalid] {
        assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{}", r.url());
        assert_eq!(r.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        assert!(r.headers().get("strict-transport-security").is_none(), "HSTS over plain http");
    }
}

#[tokio::test]
async fn an_upper_case_https_public_url_is_https() {
    let env = BTreeMap::from([("LATCH_PUBLIC_URL".to_owned(), "HTTPS://Auth.Example.COM".to_owned())]);
    let public_url = RawConfig::from_parts(BTreeMap::new(), env, None).unwrap().build().unwrap().public_url;
    let app = spawn_app_with(|c| c.public_url = public_url).await;
    app.create_user("upper").await;
    let r = app.post_form("/sessions", &[("username", "upper"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-latch_session=") && cookie.contains("Secure"), "{cookie}");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
    let discovery: Value =
        app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(discovery["issuer"], "https://auth.example.com");
}

#[tokio::test]
async fn metrics_can_leave_the_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = App::build(config).await.unwrap();
    let public = format!("http://{}", app.local_addr());
    let metrics = format!("http://{}", app.metrics_addr().expect("a metrics address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let r = client.get(format!("{public}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client.get(format!("{public}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = client.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("# TYPE"));
    let r = client.get(format!("{metrics}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
