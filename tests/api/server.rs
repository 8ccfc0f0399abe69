//! The `latch` binary: zero-configuration start, configuration errors, durability
//! across `kill -9`, graceful shutdown, `latch migrate`, health and readiness.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn latch(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn");
    cmd
}

/// Starts `latch serve` and returns it with the base URL it printed.
fn serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.arg("serve").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, base.to_owned())
}

#[tokio::test]
async fn zero_configuration_serves_from_latch_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = latch(dir.path());
    cmd.env("LATCH_LISTEN", "127.0.0.1:0");
    let (mut child, base) = serve(cmd);
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"), "{base}");
    let r = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(dir.path().join("latch-data/latch.db").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn flags_beat_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = latch(dir.path());
    cmd.env("LATCH_LISTEN", "127.0.0.1:1").args(["--listen", "127.0.0.1:0", "--data-dir", "elsewhere"]);
    let (mut child, _base) = serve(cmd);
    assert!(dir.path().join("elsewhere/latch.db").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("LATCH_ACCESS_TOKEN_TTL", "soon"),
        ("LATCH_PASSWORD_MIN_LENGTH", "4"),
        ("LATCH_PASSWORD_MIN_LENGTH", "300"),
        ("LATCH_LISTEN", "localhost"),
        ("LATCH_PUBLIC_URL", "ftp://x"),
        ("LATCH_MAILER", "carrier-pigeon"),
        ("LATCH_DATABASE_URL", "mysql://x"),
        ("LATCH_REQUIRE_VERIFIED_EMAIL", "perhaps"),
        ("LATCH_TRUSTED_PROXIES", "10.0.0.0/33"),
    ];
    for (key, value) in cases {
        let out = latch(dir.path()).env(key, value).arg("serve").output().unwrap();
        assert!(!out.status.success(), "{key}={value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key}={value}: {stderr}");
    }
    std::fs::write(dir.path().join("latch.toml"), "listen = 5\n").unwrap();
    let out = latch(dir.path()).args(["--config", "latch.toml", "serve"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[tokio::test]
async fn an_answered_registration_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = latch(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (mut child, base) = serve(cmd);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"username": "durable", "email": "durable@example.com", "password": PASSWORD});
    let r = client.post(format!("{base}/users")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut cmd = latch(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (mut child, base) = serve(cmd);
    let r = client
        .post(format!("{base}/token"))
        .form(&[("username", "durable"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = latch(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (mut child, base) = serve(cmd);
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body =
        serde_json::json!({"username": "inflight", "email": "inflight@example.com", "password": PASSWORD}).to_string();
    // A request surely in flight when SIGTERM lands: its headers and half its body are
    // in, and the server, which accepted it, waits for the rest.
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = latch(dir.path()).args(["--data-dir", "d", "migrate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("d/latch.db").exists());
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn security_events_are_logged_as_structured_lines_without_request_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = latch(dir.path());
    cmd.env("LATCH_LISTEN", "127.0.0.1:0").env("LATCH_LOG", "info").env("LATCH_LOG_FORMAT", "json");
    cmd.env("LATCH_RATE_LIMIT_LOGIN_ACCOUNT_IP", "2/15m");
    let (mut child, base) = serve(cmd);
    let client = reqwest::Client::new();
    let token = |login: &str, password: &str| {
        client
            .post(format!("{base}/token"))
            .form(&[("grant_type", "password"), ("username", login), ("password", password)])
            .send()
    };
    let body = serde_json::json!({"username": "logan", "email": "logan@example.com", "password": PASSWORD});
    let r = client.post(format!("{base}/users")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let forged = "nobody\n{\"level\":\"INFO\",\"fields\":{\"message\":\"forged\"}}";
    assert_eq!(token(forged, "wrong password!").await.unwrap().status(), StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        assert_eq!(token("logan", "wrong password!").await.unwrap().status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(token("logan", "wrong password!").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    let pair: Value = token("logan@example.com", PASSWORD).await.unwrap().json().await.unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    for _ in 0..2 {
        client.post(format!("{base}/token")).form(&form).send().await.unwrap();
    }
    child.kill().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    child.wait().unwrap();

    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("{l}"))).collect();
    let events = |name: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["fields"]["event"] == name).map(|l| &l["fields"]).collect()
    };
    let failed = events("login_failed");
    assert!(failed.iter().any(|f| f["account"] == "unknown" && f["ip"] == "127.0.0.1"), "{log}");
    assert!(failed.iter().any(|f| f["account"].as_str().is_some_and(|a| a.len() == 36)), "{log}");
    assert_eq!(events("rate_limited").len(), 1, "{log}");
    let reuse = events("refresh_token_reused");
    assert!(reuse.len() == 1 && reuse[0]["user"].is_string() && reuse[0]["session"].is_string(), "{log}");
    // Every audit event is a line of its own.
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "latch::audit").map(|l| &l["fields"]).collect();
    let has = |kind: &str, outcome: &str| audit.iter().any(|f| f["audit"] == kind && f["outcome"] == outcome);
    assert!(has("registration", "success") && has("login", "success") && has("login", "failure"), "{log}");
    assert!(has("rate_limited", "failure") && has("refresh_token_reuse", "failure"), "{log}");
    assert!(audit.iter().all(|f| f["actor"].is_string() && f["details"].is_string()), "{log}");
    assert!(audit.iter().any(|f| f["audit"] == "login" && f["ip"] == "127.0.0.1" && f["user"].is_null()), "{log}");
    assert!(!log.contains("forged") && !log.contains("nobody"), "request data reached the log: {log}");
}
