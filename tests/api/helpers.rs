//! `TestApp`: a real Latch on a free port with its own SQLite file and mail directory,
//! driven over HTTP, with typed helpers per endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use latch::app::App;
use latch::clock::Clock;
use latch::config::{Config, DatabaseUrl, MailerConfig};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub config: Config,
    /// The server's clock: the real time, moved forward by [`TestClock::advance`].
    pub clock: TestClock,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL database made for this test, dropped with it.
    database: Option<TestDatabase>,
}

/// A clock that runs with the real time plus an offset the test moves forward, so
/// that expiry tests advance time instead of waiting for it.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Moves the server's time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap();
        self.0.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let offset = self.0.clone();
        Clock::from_fn(move || {
            time::OffsetDateTime::now_utc() + time::Duration::milliseconds(offset.load(Ordering::SeqCst))
        })
    }
}

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(latch_postgres_tests), allow(dead_code))]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server named by `LATCH_TEST_DATABASE_URL`, where tests create their databases.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("LATCH_TEST_DATABASE_URL").ok().filter(|v| !v.is_empty())
}

/// A database of one test's own on the PostgreSQL server.
#[cfg_attr(not(latch_postgres_tests), allow(dead_code))]
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        use sqlx::Connection as _;
        let admin_url = postgres_admin_url().expect("LATCH_TEST_DATABASE_URL is set");
        let name = format!("latch_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("PostgreSQL at LATCH_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        TestDatabase { admin_url, name, url: url.to_string() }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on a future itself.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A configuration for one hermetic test server.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config::defaults().expect("defaults are valid");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.database_url = DatabaseUrl::Sqlite(dir.path().join("latch.db"));
    config.mailer = MailerConfig::File(dir.path().join("mail"));
    config
}

/// A server on SQLite.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server on SQLite with an adjusted configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(Backend::Sqlite, adjust).await
}

/// A server on `backend` with an adjusted configuration.
pub async fn spawn_on(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = TestDatabase::create().await;
            config.database_url = DatabaseUrl::Postgres(db.url.clone().into());
            Some(db)
        }
    };
    adjust(&mut config);
    let mut app = start(dir, config, TestClock::default()).await;
    app.database = database;
    app
}

async fn start(dir: TempDir, config: Config, clock: TestClock) -> TestApp {
    let app = App::build_with_clock(config.clone(), clock.clock()).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { base, client, dir, config, clock, shutdown: Some(tx), server: Some(server), database: None }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and starts a new one on the same data.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let database = self.database.take();
        let mut app = start(dir, config, self.clock.clone()).await;
        app.database = database;
        app
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client.post(self.url(path)).form(form).send().await.unwrap()
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json("/users", &json!({ "username": username, "email": email, "password": password })).await
    }

    /// Registers a user and returns its private view.
    pub async fn create_user(&self, username: &str) -> Value {
        let r = self.register(username, &format!("{username}@example.com"), PASSWORD).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    pub async fn token(&self, login: &str, password: &str) -> Response {
        self.post_form("/token", &[("grant_type", "password"), ("username", login), ("password", password)]).await
    }

    /// A fresh token pair for a user created with [`PASSWORD`].
    pub async fn login(&self, login: &str) -> Tokens {
        let r = self.token(login, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json::<Tokens>().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.client.get(self.url("/users/me")).bearer_auth(access_token).send().await.unwrap()
    }

    pub async fn me_status(&self, access_token: &str) -> StatusCode {
        self.me(access_token).await.status()
    }

    /// The `latch` command line on this server's database.
    pub fn cli(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latch"));
        let url = match (&self.database, &self.config.database_url) {
            (Some(db), _) => db.url.clone(),
            (None, DatabaseUrl::Sqlite(path)) => format!("sqlite://{}", path.display()),
            (None, DatabaseUrl::Postgres(_)) => unreachable!("PostgreSQL test servers have their database"),
        };
        cmd.env("LATCH_DATABASE_URL", url).env("LATCH_DATA_DIR", self.dir.path()).env("LATCH_LOG", "warn");
        cmd
    }

    /// Registers a client with `latch client create --json <args>`, returns what it
    /// printed (`client_id`, `client_secret`), and waits until the server knows it.
    pub async fn create_client(&self, args: &[&str]) -> Value {
        let client = self.run_cli(&[&["client", "create", "--json"], args].concat());
        // Clients are reloaded whole: once a client made after this one authenticates,
        // this one is known too.
        let probe = self.run_cli(&["client", "create", "--json", "--name", "probe", "--confidential"]);
        let (id, secret) = (probe["client_id"].as_str().unwrap(), probe["client_secret"].as_str().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.client.post(self.url("/introspect")).basic_auth(id, Some(secret)).form(&[("token", "x")]);
            if r.send().await.unwrap().status() == StatusCode::OK {
                return client;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not learn of the new client");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `latch <args>` on this server's database; its standard output as JSON.
    pub fn run_cli(&self, args: &[&str]) -> Value {
        let out = self.cli().args(args).output().unwrap();
        assert!(out.status.success(), "latch {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Every email written by the file mailer, oldest first.
    pub fn emails(&self) -> Vec<String> {
        let dir = self.dir.path().join("mail");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.into_iter().map(|(_, p)| std::fs::read_to_string(p).unwrap()).collect()
    }

    /// The one email to `to` that contains `needle` (file times are too coarse to
    /// order emails sent within milliseconds of each other).
    pub fn email_about(&self, to: &str, needle: &str) -> String {
        let mut found: Vec<String> = self.emails_to(to).into_iter().filter(|m| m.contains(needle)).collect();
        assert_eq!(found.len(), 1, "one email to {to} about {needle:?}");
        found.remove(0)
    }

    /// Like [`TestApp::email_about`], for an email sent in the background (a reset
    /// link): waits for it for up to five seconds.
    pub async fn email_arriving(&self, to: &str, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if self.emails_to(to).iter().any(|m| m.contains(needle)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.email_about(to, needle)
    }

    /// Emails to `to` once there are at least `count` of them (the latest may be sent in
    /// the background): waits for up to five seconds.
    pub async fn emails_arriving(&self, to: &str, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mails = self.emails_to(to);
            if mails.len() >= count || std::time::Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Emails to `to`, oldest first.
    pub fn emails_to(&self, to: &str) -> Vec<String> {
        self.emails().into_iter().filter(|m| m.lines().any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))).collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// The `token=` value of the first link in an email.
pub fn token_in(email: &str) -> String {
    let start = email.find("token=").expect("email holds a token link") + "token=".len();
    email[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// The decoded (unverified) header and claims of a JWT.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

/// Asserts a problem document with this status and code; returns it.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let ct = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

/// The field names listed in a validation problem.
pub fn problem_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}
