//! Test fixtures: a real `latch serve` on a free port with its own data directory, and
//! a local issuer that signs whatever tokens a test needs with its own keys and counts
//! how often its JWK Set is fetched.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple 42";

/// The `latch` binary: `$LATCH_BIN`, else the one beside this test binary's `deps/`
/// directory (`target/debug/latch` for a debug build), which `cargo test --workspace`
/// builds before it runs any test.
pub fn latch_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("LATCH_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => {
                let exe = std::env::current_exe().unwrap();
                let profile_dir = exe.parent().and_then(Path::parent).unwrap();
                profile_dir.join(format!("latch{}", std::env::consts::EXE_SUFFIX))
            }
        };
        assert!(
            bin.is_file(),
            "the latch binary is not at {} — run `cargo build -p latch --bin latch` first (`cargo test --workspace` \
             builds it), or point LATCH_BIN at one",
            bin.display()
        );
        bin
    })
}

/// A running `latch serve`, killed on drop.
pub struct Latch {
    pub base: String,
    child: Child,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

/// A user with a live session on a [`Latch`].
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub access_token: String,
}

impl Latch {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with `env` on top of the test defaults.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<(String, String)> =
            [("LATCH_DATA_DIR", dir.path().to_str().unwrap()), ("LATCH_RATE_LIMIT", "off"), ("LATCH_LOG", "warn")]
                .iter()
                .chain(env)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        all.push(("LATCH_LISTEN".into(), "127.0.0.1:0".into()));
        let mut cmd = latch_command(dir.path(), &all);
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut child = cmd.arg("serve").stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base = match line.trim().strip_prefix("listening on ") {
            Some(base) => base.to_owned(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
                panic!("latch serve did not start; its first line was {line:?}, its log:\n{log}");
            }
        };
        // Keep reading so that the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { base, child, dir, env: all, http: reqwest::Client::new() }
    }

    /// Runs `latch ARGS` against this server's data (same environment).
    pub fn cli(&self, args: &[&str]) -> Output {
        let output = latch_command(self.dir.path(), &self.env).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "latch {} failed ({}): {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Registers a new user and signs them in with the password grant.
    pub async fn user(&self, name: &str) -> User {
        let r = self
            .http
            .post(format!("{}/users", self.base))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
        let access_token = self.token(name).await;
        User { id, username: name.to_owned(), access_token }
    }

    /// A new access token for `username` (a new session).
    pub async fn token(&self, username: &str) -> String {
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .form(&[("grant_type", "password"), ("username", username), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn logout(&self, access_token: &str) {
        let r = self.http.post(format!("{}/logout", self.base)).bearer_auth(access_token).send().await.unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
}

impl Drop for Latch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
            eprintln!("latch serve's log:\n{log}");
        }
    }
}

fn latch_command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(latch_bin());
    cmd.current_dir(dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// The `kid` in a token's header.
pub fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A local authorization server: discovery and a JWK Set on a free port, with P-256
/// keys it generates and signs with, and a count of JWK Set fetches.
pub struct LocalIssuer {
    pub issuer: String,
    state: Arc<Served>,
    server: tokio::task::JoinHandle<()>,
}

struct Served {
    issuer: String,
    jwks: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
}

/// A signing key of the local issuer.
pub struct LocalKey {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The SEC1 public point, for the HS256 key-confusion attack.
    pub public_sec1: Vec<u8>,
    pub jwk: Value,
}

impl LocalKey {
    pub fn generate() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().unwrap();
        let point = secret.public_key().to_encoded_point(false);
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let kid = Uuid::new_v4().to_string();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        Self { kid, encoding: EncodingKey::from_ec_der(der.as_bytes()), public_sec1: point.as_bytes().to_vec(), jwk }
    }

    /// The JWK Set document with this key alone.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.jwk] }).to_string()
    }

    /// An at+jwt header naming this key.
    pub fn header(&self) -> Header {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(self.kid.clone());
        h
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
    }
}

/// The claims Latch signs, issued now for `issuer`, lasting 15 minutes.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer, "sub": Uuid::new_v4(), "aud": issuer, "exp": now + 900, "iat": now,
        "jti": Uuid::new_v4(), "sid": Uuid::new_v4(), "client_id": "latch", "scope": "openid profile email",
    })
}

impl LocalIssuer {
    pub async fn start(keys: &[&LocalKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Served {
            issuer: issuer.clone(),
            jwks: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<Arc<Served>>| async move {
                    Json(json!({ "issuer": s.issuer, "jwks_uri": format!("{}/.well-known/jwks.json", s.issuer) }))
                }),
            )
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<Arc<Served>>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    Json(json!({ "keys": *s.jwks.lock().unwrap() }))
                }),
            )
            .with_state(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { issuer, state, server }
    }

    /// Publishes `key` in the JWK Set from now on.
    pub fn publish(&self, key: &LocalKey) {
        self.state.jwks.lock().unwrap().push(key.jwk.clone());
    }

    /// How many times the JWK Set was fetched.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Stops answering (connections are refused from now on).
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for LocalIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
