//! The operator command line (`latch user …`, `import`, `backup`), driven as the real
//! binary against a temporary data directory, with a server on the same database to
//! check what the commands did from the outside. `latch keys rotate` is tested on both
//! backends in `suite/signing_keys.rs`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use latch::config::DatabaseUrl;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::*;

/// `latch --data-dir DIR` with the caller's `LATCH_*` variables removed.
fn latch(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn").arg("--data-dir").arg(data_dir);
    cmd
}

/// Runs `latch --data-dir DIR ARGS…`, feeding `stdin` when given.
fn run(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = latch(data_dir);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Like [`run`], asserting success; returns stdout.
fn ok(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(data_dir, args, stdin);
    assert!(out.status.success(), "latch {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Like [`run`], asserting failure; returns stderr.
fn fails(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(data_dir, args, stdin);
    assert!(!out.status.success(), "latch {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn create_user(data_dir: &Path, username: &str, email: &str, password: &str) -> String {
    let args = ["user", "create", "--username", username, "--email", email, "--password-stdin"];
    ok(data_dir, &args, Some(&format!("{password}\n")))
}

/// A server in this process on the database of `data_dir`. The issuer is fixed so
/// that tokens outlive a restart on another port.
async fn server_on(data_dir: &Path) -> TestApp {
    let db = data_dir.join("latch.db");
    spawn_app_with(move |c| {
        c.database_url = DatabaseUrl::Sqlite(db);
        c.public_url = Some("http://latch.test".to_owned());
    })
    .await
}

fn show(data_dir: &Path, who: &str) -> Value {
    serde_json::from_str(&ok(data_dir, &["user", "show", who, "--json"], None)).unwrap()
}

async fn basic_me(app: &TestApp, login: &str, password: &str) -> reqwest::Response {
    app.client.get(app.url("/users/me")).basic_auth(login, Some(password)).send().await.unwrap()
}

async fn assert_oauth_error(response: reqwest::Response, status: StatusCode, error: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn a_created_user_logs_in_and_disable_enable_set_password_delete_take_effect() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let out = create_user(dir, "alice", "Alice@Example.com", PASSWORD);
    let id = out.trim();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "only the new id on standard output: {out}");
    assert_eq!(show(dir, id)["email"], "alice@example.com");
    let app = server_on(dir).await;

    // Created by an operator: verified, enabled, and able to log in at once.
    let user = show(dir, "alice@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["disabled"], false);
    assert_eq!(user["admin"], false);
    assert_eq!(show(dir, user["id"].as_str().unwrap())["username"], "alice");
    assert_eq!(show(dir, "ALICE")["id"], user["id"]);
    let tokens = app.login("alice").await;
    assert_eq!(app.me_status(&tokens.access_token).await, StatusCode::OK);

    // Disabled: sessions end, the correct password gets account_disabled, a wrong one
    // the generic failure.
    let out = ok(dir, &["user", "disable", "alice"], None);
    assert!(out.contains("1 session(s) ended"), "{out}");
    assert_eq!(show(dir, "alice")["disabled"], true);
    assert_eq!(app.me_status(&tokens.access_token).await, StatusCode::UNAUTHORIZED);
    assert_oauth_error(app.refresh(&tokens.refresh_token).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_oauth_error(app.token("alice", PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_oauth_error(app.token("alice", "not the password").await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_problem(basic_me(&app, "alice", PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;

    // Enabled again: logins work.
    ok(dir, &["user", "enable", "alice@example.com"], None);
    let tokens = app.login("alice").await;
    assert_eq!(basic_me(&app, "alice", PASSWORD).await.status(), StatusCode::OK);

    // A new password ends every session; only the new password works.
    let new_password = "a brand new passphrase 42";
    let mail = tempfile::tempdir().unwrap();
    let mailer = format!("file:{}", mail.path().display());
    let args = ["--mailer", mailer.as_str(), "user", "set-password", "alice", "--password-stdin"];
    let out = ok(dir, &args, Some(&format!("{new_password}\n")));
    assert!(out.contains("1 session(s) ended"), "{out}");
    // The owner is told, as of any other change of password.
    let notices: Vec<String> = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains("Your password was changed"))
        .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(app.me_status(&tokens.access_token).await, StatusCode::UNAUTHORIZED);
    assert_oauth_error(app.token("alice", PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(app.token("alice", new_password).await.status(), StatusCode::OK);

    // Deleted: gone for the server and for the command line.
    ok(dir, &["user", "delete", "alice"], None);
    assert_oauth_error(app.token("alice", new_password).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let err = fails(dir, &["user", "show", "alice"], None);
    assert!(err.contains("no user") && err.contains("alice"), "{err}");
}

#[test]
fn user_commands_refuse_invalid_input_and_unknown_users() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let create = |username: &str, email: &str, password: &str| {
        let args = ["user", "create", "--username", username, "--email", email, "--password-stdin"];
        fails(dir, &args, Some(&format!("{password}\n")))
    };
    let err = create("x", "not-an-email", PASSWORD);
    assert!(err.contains("username") && err.contains("email"), "{err}");
    assert!(create("bob", "bob@example.com", "password1").contains("password"));
    assert!(create("bob", "bob@example.com", "short").contains("password"));
    assert!(create("bob", "bob@example.com", "BOB@example.com").contains("password"));

    create_user(dir, "bob", "bob@example.com", PASSWORD);
    assert!(create("BOB", "other@example.com", PASSWORD).contains("username already taken"));
    assert!(create("robert", "Bob@Example.com", PASSWORD).contains("email already taken"));

    // No terminal and no --password-stdin: told how to pass it, never asked on argv.
    let out = latch(dir)
        .args(["user", "create", "--username", "carol", "--email", "carol@example.com"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));

    for command in ["show", "disable", "enable", "delete"] {
        let err = fails(dir, &["user", command, "nobody"], None);
        assert!(err.contains("no user") && err.contains("nobody"), "{command}: {err}");
    }
    let err = fails(dir, &["user", "set-password", "nobody@example.com", "--password-stdin"], Some("x\n"));
    assert!(err.contains("no user"), "{err}");
    let err = fails(dir, &["user", "set-password", "bob", "--password-stdin"], Some("\n"));
    assert!(err.contains("password"), "{err}");
    assert_eq!(show(dir, "bob")["disabled"], false);
}

#[test]
fn list_shows_every_user_as_a_table_or_json_lines() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    create_user(dir, "dave", "dave@example.com", PASSWORD);
    let args = ["user", "create", "--username", "erin", "--email", "erin@example.com", "--admin", "--password-stdin"];
    ok(dir, &args, Some(PASSWORD));
    ok(dir, &["user", "disable", "dave"], None);

    let table = ok(dir, &["user", "list"], None);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["ID", "USERNAME", "EMAIL", "VERIFIED", "ROLES", "DISABLED"] {
        assert!(lines[0].contains(column), "{table}");
    }
    let dave: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(dave[1..], ["dave", "dave@example.com", "yes", "-", "yes"]);
    let erin: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(erin[1..], ["erin", "erin@example.com", "yes", "admin", "no"]);

    let users: Vec<Value> =
        ok(dir, &["user", "list", "--json"], None).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(users.len(), 2);
    assert_eq!(users[1]["username"], "erin");
    assert_eq!(users[1]["admin"], true);
    assert!(users.iter().all(|u| u.get("password_hash").is_none()));
}

/// Hashes of [`PASSWORD`] made by other systems' reference implementations.
const BCRYPT: &str = "$2b$04$nwMQ5ME6vgO3xgqzrsJyb.WaQ5sA7ofUyN6zbqPdQNKQ1f2CjSvtG";
const PASSLIB: &str = "$pbkdf2-sha256$1000$GwOgNEbIee/9v9f6f4/Rug$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k";
const DJANGO: &str = "pbkdf2_sha256$1000$s0mes4lt$ALzVJX4GTsh7SIQ7SnLfRwOYuOuO/jT1CY73o7U4G3U=";

/// An Argon2id hash of [`PASSWORD`] with weaker parameters than Latch's.
fn weak_argon2() -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = argon2::Params::new(4096, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon.hash_password(PASSWORD.as_bytes(), &salt).unwrap().to_string()
}

fn write_lines(dir: &TempDir, name: &str, lines: &[Value]) -> PathBuf {
    let path = dir.path().join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

async fn stored_hash(data_dir: &Path, username: &str) -> String {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("latch.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    hash
}

#[tokio::test]
async fn imported_legacy_hashes_log_in_and_are_upgraded_to_argon2id() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let argon = weak_argon2();
    let users = [("bea", BCRYPT), ("pat", PASSLIB), ("django", DJANGO), ("ari", argon.as_str())];
    let lines: Vec<Value> = users
        .iter()
        .map(|(name, hash)| json!({"username": name, "email": format!("{name}@Example.com"), "password_hash": hash}))
        .chain([
            json!({"username": "vic", "email": "vic@example.com", "password_hash": BCRYPT, "email_verified": true}),
        ])
        .collect();
    let file = write_lines(&data, "users.jsonl", &lines);
    let out = ok(dir, &["import", file.to_str().unwrap()], None);
    assert!(out.contains("imported 5 users"), "{out}");
    assert_eq!(show(dir, "bea@example.com")["email_verified"], false);
    assert_eq!(show(dir, "vic")["email_verified"], true);

    let app = server_on(dir).await;
    for (name, hash) in users {
        assert_eq!(stored_hash(dir, name).await, hash);
        let t = app.login(&format!("{name}@example.com")).await;
        assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK, "{name}");
        // Replaced before the login was answered.
        let upgraded = stored_hash(dir, name).await;
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{name}: {upgraded}");
        assert_eq!(app.token(name, PASSWORD).await.status(), StatusCode::OK, "{name} after the upgrade");
        assert_eq!(app.token(name, "wrong password").await.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn an_import_with_bad_lines_reports_each_and_imports_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    create_user(dir, "existing", "existing@example.com", PASSWORD);
    let good = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password_hash": BCRYPT});
    let path = data.path().join("bad.jsonl");
    let text = [
        good("first").to_string(),
        json!({"username": "no", "email": "x@example.com", "password_hash": BCRYPT}).to_string(),
        good("second").to_string(),
        "{\"username\": ".to_owned(),
        json!({"username": "third", "email": "third@example.com", "password_hash": "md5:abc"}).to_string(),
        json!({"username": "FIRST", "email": "other@example.com", "password_hash": BCRYPT}).to_string(),
        json!({"username": "fourth", "email": "EXISTING@example.com", "password_hash": BCRYPT}).to_string(),
        good("fifth").to_string(),
    ]
    .join("\n");
    std::fs::write(&path, text).unwrap();

    let err = fails(dir, &["import", path.to_str().unwrap()], None);
    let reported: Vec<&str> = err.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(reported.len(), 5, "{err}");
    for (line, word) in [(2, "username"), (4, "JSON"), (5, "password_hash"), (6, "line 1"), (7, "already taken")] {
        let prefix = format!("line {line}: ");
        assert!(reported.iter().any(|l| l.starts_with(&prefix) && l.contains(word)), "line {line} ({word}): {err}");
    }
    assert!(err.contains("nothing was imported"), "{err}");
    let users = ok(dir, &["user", "list", "--json"], None);
    assert_eq!(users.lines().count(), 1, "only the user created before: {users}");
    fails(dir, &["import", data.path().join("missing.jsonl").to_str().unwrap()], None);
}

#[tokio::test]
async fn a_large_import_goes_in_one_batch_transaction() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let path = data.path().join("many.jsonl");
    let text: String = (0..20_000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"username": format!("u{i:05}"), "email": format!("u{i}@example.com"), "password_hash": BCRYPT})
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    let started = std::time::Instant::now();
    let out = ok(dir, &["import", path.to_str().unwrap()], None);
    assert!(out.contains("imported 20000 users"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let app = server_on(dir).await;
    assert_eq!(app.token("u19999", PASSWORD).await.status(), StatusCode::OK);
}

/// Starts `latch serve` on a free port; returns it with its base URL.
fn serve(mut cmd: Command) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    cmd.args(["--listen", "127.0.0.1:0", "serve"]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, base.to_owned())
}

#[tokio::test]
async fn a_backup_taken_while_serving_serves_as_is() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let (mut server, base) = serve(latch(dir));
    let client = reqwest::Client::new();
    let body = json!({"username": "frank", "email": "frank@example.com", "password": PASSWORD});
    assert_eq!(client.post(format!("{base}/users")).json(&body).send().await.unwrap().status(), StatusCode::CREATED);

    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("snapshot.db");
    let out = ok(dir, &["backup", backup.to_str().unwrap()], None);
    assert!(out.contains("backup written"), "{out}");
    // The server kept serving during and after the backup.
    let form = [("username", "frank"), ("password", PASSWORD)];
    assert_eq!(client.post(format!("{base}/token")).form(&form).send().await.unwrap().status(), StatusCode::OK);
    let err = fails(dir, &["backup", backup.to_str().unwrap()], None);
    assert!(err.contains("already exists"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();

    let empty = tempfile::tempdir().unwrap();
    let mut cmd = latch(empty.path());
    cmd.arg("--database-url").arg(format!("sqlite://{}", backup.display()));
    let (mut restored, base) = serve(cmd);
    assert_eq!(client.post(format!("{base}/token")).form(&form).send().await.unwrap().status(), StatusCode::OK);
    restored.kill().unwrap();
    restored.wait().unwrap();

    let err = fails(dir, &["--database-url", "postgres://db.invalid/latch", "backup", "x.db"], None);
    assert!(err.contains("pg_dump"), "{err}");
}

#[test]
fn a_listing_cut_short_by_its_reader_ends_quietly() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    // More than a pipe buffer of output (about 100 bytes a user), so that the reader
    // leaves before the listing is written.
    let hash = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
    let lines: Vec<Value> = (0..2000)
        .map(
            |i| json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password_hash": hash}),
        )
        .collect();
    let file = write_lines(&data, "users.jsonl", &lines);
    ok(dir, &["import", file.to_str().unwrap()], None);
    for args in [&["user", "list"][..], &["user", "list", "--json"]] {
        let mut child = latch(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "latch {args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
