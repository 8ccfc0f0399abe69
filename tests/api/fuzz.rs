//! Property-based fuzzing over real HTTP: one Latch (SQLite, abuse limits off so that
//! the limiter masks no path) receives arbitrary Unicode, arbitrary bytes and wrong JSON
//! types in every field of `/token`, `/sessions`, `/users` and the other body-taking
//! endpoints (form and JSON), garbage `Basic`, `Bearer` and cookie credentials, raw
//! bodies under arbitrary content types, and arbitrary paths. Every answer must be below 500 (503 included: nothing is
//! overloaded here) and `/health` must still answer afterwards (SPEC §3: no input makes
//! the server panic or answer 5xx). A failure names the property and the minimal input.
//! `PROPTEST_CASES` overrides the number of cases per property for a longer run.
//!
//! The regression tests below pin inputs that once broke, or that sit on a limit.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

// ---------------------------------------------------------------------------------
// The server under test and the runner.

/// One Latch, its runtime, and credentials of a real account to mutate.
struct Target {
    app: TestApp,
    access_token: String,
    /// Of another session than `access_token`.
    refresh_token: String,
    /// An access token of a second account, whose name, email and password the
    /// fuzzer may change.
    changing_token: String,
    /// An access token of an account with the `admin` role.
    admin_token: String,
    /// The id of an account the admin API may change (never delete).
    victim_id: String,
    /// How often each status was answered in the current property: the coverage.
    statuses: RefCell<BTreeMap<u16, u32>>,
    /// Declared last: dropped after the server it runs.
    rt: tokio::runtime::Runtime,
}

impl Target {
    fn start() -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (app, access_token, refresh_token, changing_token, admin_token, victim_id) = rt.block_on(async {
            let app = spawn_app_with(|c| c.limits.enabled = false).await;
            app.create_user("fuzzer").await;
            let tokens = app.login("fuzzer").await;
            // A session of its own for the refresh grant: a mutation that happens to
            // reproduce the token rotates it, and a second one is reuse, which ends
            // that session.
            let refresh_token = app.login("fuzzer").await.refresh_token;
            // An imported account whose bcrypt hash is checked on every failed login
            // (a successful one replaces it with Argon2id).
            app.create_user("legacy").await;
            let url = format!("sqlite://{}", app.dir.path().join("latch.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = 'legacy'")
                .bind(bcrypt::hash(PASSWORD, 4).unwrap())
                .execute(&pool)
                .await
                .unwrap();
            app.create_user("fuzzadmin").await;
            sqlx::query("UPDATE users SET roles = 'admin' WHERE username = 'fuzzadmin'").execute(&pool).await.unwrap();
            let victim = app.create_user("victim").await;
            pool.close().await;
            app.create_user("changing").await;
            let changing = app.login("changing").await;
            let admin = app.login("fuzzadmin").await;
            let victim_id = victim["id"].as_str().unwrap().to_owned();
            (app, tokens.access_token, refresh_token, changing.access_token, admin.access_token, victim_id)
        });
        let statuses = RefCell::default();
        Target { app, access_token, refresh_token, changing_token, admin_token, victim_id, statuses, rt }
    }

    /// Sends a request; a transport error or a 5xx fails the case, and so does a
    /// `/health` that no longer answers 200 afterwards.
    fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<StatusCode, TestCaseError> {
        let (status, body) = self.rt.block_on(async {
            let response = request.timeout(Duration::from_secs(30)).send().await;
            match response {
                Ok(r) => {
                    let status = r.status();
                    Ok((status, r.text().await.unwrap_or_default()))
                }
                Err(e) => Err(TestCaseError::fail(format!("{what}: no answer: {e:#}"))),
            }
        })?;
        *self.statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
        if status.is_server_error() {
            return Err(TestCaseError::fail(format!("{what}: {status} {body}")));
        }
        let health = self.rt.block_on(async {
            self.app.client.get(self.app.url("/health")).timeout(Duration::from_secs(10)).send().await
        });
        match health {
            Ok(r) if r.status() == StatusCode::OK => Ok(status),
            Ok(r) => {
                Err(TestCaseError::fail(format!("{what}: answered {status}, then /health answered {}", r.status())))
            }
            Err(e) => Err(TestCaseError::fail(format!("{what}: answered {status}, then /health failed: {e:#}"))),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, self.app.url(path))
    }

    /// `POST path` with a body under a content type.
    fn post(&self, path: &str, (content_type, body): (&str, Vec<u8>)) -> Result<StatusCode, TestCaseError> {
        self.post_from(path, (content_type, body), None)
    }

    /// [`post`](Self::post) with a `User-Agent` (stored with the session of a login).
    fn post_from(
        &self,
        path: &str,
        (content_type, body): (&str, Vec<u8>),
        user_agent: Option<&[u8]>,
    ) -> Result<StatusCode, TestCaseError> {
        let mut request = self.request(Method::POST, path).header(CONTENT_TYPE, content_type).body(body.clone());
        let mut what = format!("POST {path} ({content_type}) {}", body.escape_ascii());
        if let Some(agent) = user_agent {
            request = request.header(USER_AGENT, header_value(agent));
            what.push_str(&format!(" from User-Agent {}", agent.escape_ascii()));
        }
        self.send(request, &what)
    }
}

/// Runs one property; returns its failure (with the minimal input) instead of
/// panicking, so that one failing property does not hide the others.
fn check<S>(
    t: &Target,
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Option<String>
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 30_000,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    };
    let started = std::time::Instant::now();
    t.statuses.borrow_mut().clear();
    let result = TestRunner::new(config).run(&strategy, test);
    let statuses: Vec<String> = t.statuses.borrow().iter().map(|(s, n)| format!("{s}×{n}")).collect();
    eprintln!("fuzz property {name}: {cases} cases in {:.1?}; answers {}", started.elapsed(), statuses.join(" "));
    result.err().map(|e| format!("{name}: {e}"))
}

// ---------------------------------------------------------------------------------
// Strategies.

/// Fragments that break naive code: controls, NUL, bidi marks, characters whose
/// lowercase is longer, combining marks, emoji sequences, form and SQL metacharacters,
/// and the real account's names.
const PIECES: &[&str] = &[
    "a",
    "Z",
    "0",
    "_",
    "-",
    ".",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{200b}",
    "\u{200e}",
    "\u{200f}",
    "\u{202e}",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "e\u{301}",
    "ß",
    "ẞ",
    "İ",
    "Σ",
    "ς",
    "ﬃ",
    "€",
    "日本",
    "😀",
    "👩‍👩‍👧",
    "🇩🇪",
    "@",
    ":",
    "%",
    "%00",
    "%zz",
    "+",
    "&",
    "=",
    ";",
    "\"",
    "'",
    "\\",
    "/",
    "..",
    "<script>",
    "' OR 1=1 --",
    "fuzzer",
    "FUZZER",
    "fuzzer@example.com",
    "legacy",
    PASSWORD,
];

/// Characters of 1 to 4 bytes, to fill up to a byte limit.
const FILLERS: &[&str] = &["a", "é", "€", "😀", "İ"];

/// Sequences that are not UTF-8: a stray continuation, a truncated sequence, an
/// overlong NUL, an encoded surrogate, a code point past U+10FFFF.
const NOT_UTF8: &[&[u8]] =
    &[b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"];

/// JSON values other than plain strings, and strings that no Rust string can hold.
const JSON_VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "[]",
    "[\"a\"]",
    "{}",
    "{\"a\":1}",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"a\\u0000b\"",
    "\"\\uffff\"",
    "\"\\/\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Arbitrary Unicode: any characters, nasty fragments, or a long string.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        prop::collection::vec(select(PIECES), 0..24).prop_map(|p| p.concat()),
        long_text(),
    ]
}

/// Past the 254-byte email, 255-byte client id, 256-character password and 320-byte
/// login limits, with a multibyte fragment landing on every byte offset around them.
fn long_text() -> impl Strategy<Value = String> {
    let count = prop_oneof![3 => 240usize..340, 1 => 0usize..3000];
    (select(FILLERS), count, select(PIECES), prop::collection::vec(any::<char>(), 0..8)).prop_map(
        |(fill, count, piece, tail)| {
            let mut s = fill.repeat(count);
            s.push_str(piece);
            s.extend(tail);
            s
        },
    )
}

/// Arbitrary bytes, or text with sequences that are not UTF-8 spliced in.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        (text(), prop::collection::vec((any::<Index>(), select(NOT_UTF8)), 1..4)).prop_map(|(text, bad)| {
            let mut bytes = text.into_bytes();
            for (at, seq) in bad {
                let tail = bytes.split_off(at.index(bytes.len() + 1));
                bytes.extend_from_slice(seq);
                bytes.extend(tail);
            }
            bytes
        }),
    ]
}

/// One field's value as sent.
#[derive(Debug, Clone)]
enum Field {
    /// A string: escaped in JSON, percent-encoded in a form.
    Text(String),
    /// Bytes: percent-encoded in a form, raw between quotes in JSON (so that invalid
    /// UTF-8 and unescaped control characters reach the parser).
    Bytes(Vec<u8>),
    /// A JSON value of another type, sent as its text in a form.
    Json(&'static str),
}

impl Field {
    fn form(&self) -> Vec<u8> {
        match self {
            Field::Text(s) => s.as_bytes().to_vec(),
            Field::Bytes(b) => b.clone(),
            Field::Json(j) => j.as_bytes().to_vec(),
        }
    }

    fn json(&self) -> Vec<u8> {
        match self {
            Field::Text(s) => serde_json::to_vec(s).unwrap(),
            Field::Bytes(b) => {
                let mut out = vec![b'"'];
                for &c in b {
                    if c == b'"' || c == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
                out.push(b'"');
                out
            }
            Field::Json(j) => j.as_bytes().to_vec(),
        }
    }
}

/// Any value a field can take, or its absence.
fn field() -> impl Strategy<Value = Option<Field>> {
    prop_oneof![
        1 => Just(None),
        5 => text().prop_map(|s| Some(Field::Text(s))),
        2 => bytes().prop_map(|b| Some(Field::Bytes(b))),
        1 => select(JSON_VALUES).prop_map(|j| Some(Field::Json(j))),
    ]
}

/// A field that is sometimes one of the given real values, so that some cases get
/// past the password check into the code behind it.
fn field_or(real: &'static [&'static str]) -> impl Strategy<Value = Option<Field>> {
    prop_oneof![4 => field(), 1 => select(real).prop_map(|r| Some(Field::Text(r.to_owned())))]
}

/// Logins of the real accounts.
const LOGINS: &[&str] = &["fuzzer", "FUZZER", "fuzzer@example.com", "legacy", "legacy@example.com"];

/// A body's encoding, and sometimes one more field with an arbitrary (or a repeated)
/// name.
#[derive(Debug, Clone)]
struct Shape {
    json: bool,
    extra: Option<(String, Field)>,
}

fn shape(names: &'static [&'static str]) -> impl Strategy<Value = Shape> {
    let name = prop_oneof![select(names).prop_map(|n| n.to_owned()), text()];
    let extra = prop::option::weighted(0.2, (name, field().prop_filter_map("a value", |f| f)));
    (any::<bool>(), extra).prop_map(|(json, extra)| Shape { json, extra })
}

/// The content type and body for these fields in this shape.
fn body(shape: &Shape, fields: &[(&str, &Option<Field>)]) -> (&'static str, Vec<u8>) {
    let mut all: Vec<(Vec<u8>, &Field)> =
        fields.iter().filter_map(|(name, f)| f.as_ref().map(|f| (name.as_bytes().to_vec(), f))).collect();
    if let Some((name, f)) = &shape.extra {
        all.push((name.as_bytes().to_vec(), f));
    }
    if shape.json {
        let mut out = b"{".to_vec();
        for (i, (name, f)) in all.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend(serde_json::to_vec(&String::from_utf8_lossy(name)).unwrap());
            out.push(b':');
            out.extend(f.json());
        }
        out.push(b'}');
        ("application/json", out)
    } else {
        let pairs: Vec<String> = all
            .iter()
            .map(|(name, f)| {
                let value: String = form_urlencoded::byte_serialize(&f.form()).collect();
                format!("{}={value}", form_urlencoded::byte_serialize(name).collect::<String>())
            })
            .collect();
        ("application/x-www-form-urlencoded", pairs.join("&").into_bytes())
    }
}

/// Header bytes that HTTP can carry: visible ASCII, space, tab and obs-text.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')];
    prop::collection::vec(byte, 0..300)
}

fn header_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

/// `s` with every byte but the unreserved ones percent-encoded.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// The properties, all against one server.

#[test]
fn arbitrary_input_never_gets_a_5xx() {
    let target = Target::start();
    let t = &target;
    let started = std::time::Instant::now();
    let failures: Vec<String> = [
        token_password_grant(t),
        token_refresh_grant(t),
        sessions(t),
        registration(t),
        other_bodies(t),
        account_changes(t),
        basic_credentials(t),
        bearer_and_cookie_credentials(t),
        raw_bodies(t),
        paths(t),
        admin_queries(t),
        admin_bodies(t),
    ]
    .into_iter()
    .flatten()
    .collect();
    eprintln!("fuzz: all properties in {:.1?}", started.elapsed());
    assert!(failures.is_empty(), "{} properties failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn token_password_grant(t: &Target) -> Option<String> {
    let grant = prop_oneof![
        3 => Just(None),
        3 => Just(Some(Field::Text("password".to_owned()))),
        1 => field(),
    ];
    let strategy = (
        shape(&["grant_type", "username", "password", "client_id"]),
        grant,
        field_or(LOGINS),
        field_or(&[PASSWORD]),
        prop_oneof![2 => Just(None), 1 => field()],
        prop::option::of(header_bytes()),
    );
    check(t, "POST /token (password grant)", 300, strategy, |(shape, grant, username, password, client_id, agent)| {
        let fields =
            [("grant_type", &grant), ("username", &username), ("password", &password), ("client_id", &client_id)];
        t.post_from("/token", body(&shape, &fields), agent.as_deref())?;
        Ok(())
    })
}

fn token_refresh_grant(t: &Target) -> Option<String> {
    let real = t.refresh_token.clone();
    let mutated = (any::<Index>(), any::<char>(), any::<bool>()).prop_map(move |(at, c, replace)| {
        let mut chars: Vec<char> = real.chars().collect();
        let at = at.index(chars.len());
        if replace {
            chars[at] = c;
        } else {
            chars.truncate(at);
        }
        Some(Field::Text(chars.into_iter().collect()))
    });
    let strategy = (
        shape(&["grant_type", "refresh_token", "client_id"]),
        prop_oneof![3 => Just(Some(Field::Text("refresh_token".to_owned()))), 1 => field()],
        prop_oneof![3 => field(), 1 => mutated],
        prop_oneof![2 => Just(None), 1 => field()],
    );
    check(t, "POST /token (refresh grant)", 500, strategy, |(shape, grant, refresh_token, client_id)| {
        let fields = [("grant_type", &grant), ("refresh_token", &refresh_token), ("client_id", &client_id)];
        t.post("/token", body(&shape, &fields))?;
        Ok(())
    })
}

fn sessions(t: &Target) -> Option<String> {
    let strategy = (
        shape(&["username", "email", "password"]),
        field_or(LOGINS),
        prop_oneof![2 => Just(None), 1 => field_or(&["fuzzer@example.com", "legacy@example.com"])],
        field_or(&[PASSWORD]),
        prop::option::of(header_bytes()),
    );
    check(t, "POST /sessions", 300, strategy, |(shape, username, email, password, agent)| {
        let fields = [("username", &username), ("email", &email), ("password", &password)];
        t.post_from("/sessions", body(&shape, &fields), agent.as_deref())?;
        Ok(())
    })
}

/// Addresses near the edge of validity: Unicode, quoted and literal parts, long labels.
fn email() -> impl Strategy<Value = Option<Field>> {
    let address =
        (email_part(), email_part()).prop_map(|(local, domain)| Some(Field::Text(format!("{local}@{domain}"))));
    prop_oneof![2 => address, 1 => field()]
}

fn email_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._+-]{1,20}",
        "[A-Za-z0-9-]{1,12}\\.[a-z]{2,6}",
        "[\\p{L}\\p{N}]{1,10}(\\.[\\p{L}]{1,6}){1,2}",
        prop::collection::vec(select(PIECES), 1..6).prop_map(|p| p.concat()),
        long_text(),
        Just("\"quoted local\"".to_owned()),
        Just("[127.0.0.1]".to_owned()),
        Just("[IPv6:::1]".to_owned()),
        Just("xn--nxasmq6b.com".to_owned()),
        Just("bücher.de".to_owned()),
    ]
}

fn registration(t: &Target) -> Option<String> {
    let username = prop_oneof![3 => "[A-Za-z0-9_.-]{1,40}".prop_map(|u| Some(Field::Text(u))), 2 => field()];
    let password = prop_oneof![
        1 => Just(Some(Field::Text("fuzzing is fun for everyone".to_owned()))),
        1 => "[a-z]{4,12}".prop_map(|p| Some(Field::Text(format!("{p}-\u{0}\n-{p}")))),
        3 => field(),
    ];
    let strategy = (shape(&["username", "email", "password"]), username, email(), password);
    check(t, "POST /users", 500, strategy, |(shape, username, email, password)| {
        let fields = [("username", &username), ("email", &email), ("password", &password)];
        t.post("/users", body(&shape, &fields))?;
        Ok(())
    })
}

/// The other endpoints that take a body and no credentials.
fn other_bodies(t: &Target) -> Option<String> {
    const ENDPOINTS: &[(&str, &[&str])] = &[
        ("/revoke", &["token"]),
        ("/password-reset", &["email"]),
        ("/password-reset/confirm", &["token", "new_password"]),
        ("/email-verification/confirm", &["token"]),
    ];
    let strategy = (select(ENDPOINTS), shape(&["token", "email", "new_password"]), field(), field());
    check(t, "POST /revoke, /password-reset, …", 500, strategy, |((path, names), shape, first, second)| {
        let mut fields = vec![(names[0], &first)];
        if let Some(name) = names.get(1) {
            fields.push((*name, &second));
        }
        t.post(path, body(&shape, &fields))?;
        Ok(())
    })
}

/// `PATCH /users/me`, `POST /users/me/password` and `DELETE /users/me` of an account
/// of the fuzzer's own, with arbitrary fields and sometimes the right password.
fn account_changes(t: &Target) -> Option<String> {
    const ENDPOINTS: &[(&str, &str, &[&str])] = &[
        ("PATCH", "/users/me", &["username", "email", "current_password"]),
        ("POST", "/users/me/password", &["current_password", "new_password"]),
        ("DELETE", "/users/me", &["password"]),
    ];
    let name = prop_oneof![1 => "[A-Za-z0-9_.-]{1,40}".prop_map(|u| Some(Field::Text(u))), 2 => field()];
    let strategy = (
        select(ENDPOINTS),
        shape(&["username", "email", "current_password", "new_password", "password"]),
        prop_oneof![name, email()],
        prop_oneof![1 => field(), 1 => email()],
        field_or(&[PASSWORD]),
    );
    check(t, "PATCH /users/me, POST /users/me/password, DELETE /users/me", 500, strategy, |case| {
        let ((method, path, names), shape, first, second, password) = case;
        let values = match path {
            "/users/me/password" => vec![&password, &second],
            // Deleting the account would end the property's reach: its password is never sent.
            _ if method == "DELETE" => vec![&first],
            _ => vec![&first, &second, &password],
        };
        let fields: Vec<(&str, &Option<Field>)> = names.iter().copied().zip(values).collect();
        let (content_type, body) = body(&shape, &fields);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let request = t
            .request(method.clone(), path)
            .bearer_auth(&t.changing_token)
            .header(CONTENT_TYPE, content_type)
            .body(body.clone());
        t.send(request, &format!("{method} {path} ({content_type}) {}", body.escape_ascii()))?;
        Ok(())
    })
}

/// How the credentials of a Basic header are encoded.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Standard,
    NoPadding,
    UrlSafe,
    /// Not base64 at all: the bytes as they are.
    Raw,
}

fn basic_credentials(t: &Target) -> Option<String> {
    let token_as_user = format!("{}:", t.access_token);
    let credentials = prop_oneof![
        3 => bytes(),
        3 => (bytes(), bytes()).prop_map(|(user, password)| [user, b":".to_vec(), password].concat()),
        2 => (text(), text()).prop_map(|(user, password)| format!("{user}:{password}").into_bytes()),
        1 => bytes().prop_map(|b| b.into_iter().filter(|&c| c != b':').collect()),
        1 => (select(&["fuzzer", "fuzzer@example.com", "FUZZER"][..]), text())
            .prop_map(|(user, password)| format!("{user}:{password}").into_bytes()),
        1 => Just(format!("fuzzer:{PASSWORD}").into_bytes()),
        1 => (any::<Index>(), any::<u8>()).prop_map(move |(at, b)| {
            let mut bytes = token_as_user.clone().into_bytes();
            let at = at.index(bytes.len());
            bytes[at] = b;
            bytes
        }),
    ];
    let encoding = prop_oneof![
        6 => Just(Encoding::Standard),
        1 => Just(Encoding::NoPadding),
        1 => Just(Encoding::UrlSafe),
        1 => Just(Encoding::Raw),
    ];
    let scheme = select(&["Basic ", "basic ", "BASIC  ", " Basic ", "Basic\t", "Basic"][..]);
    let strategy = (credentials, encoding, scheme, any::<bool>());
    check(t, "Authorization: Basic", 500, strategy, |(credentials, encoding, scheme, on_token)| {
        let encoded = match encoding {
            Encoding::Standard => STANDARD.encode(&credentials).into_bytes(),
            Encoding::NoPadding => STANDARD_NO_PAD.encode(&credentials).into_bytes(),
            Encoding::UrlSafe => URL_SAFE_NO_PAD.encode(&credentials).into_bytes(),
            Encoding::Raw => credentials.iter().copied().filter(|&b| b >= 0x20 && b != 0x7f).collect(),
        };
        let value = header_value(&[scheme.as_bytes(), &encoded].concat());
        let what = format!("Basic {:?} of {}", encoding, credentials.escape_ascii());
        if on_token {
            // `/token` reads a Basic header as client authentication.
            let request = t
                .request(Method::POST, "/token")
                .header(AUTHORIZATION, value)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "not-a-token")]);
            t.send(request, &format!("POST /token with {what}"))?;
        } else {
            t.send(
                t.request(Method::GET, "/users/me").header(AUTHORIZATION, value),
                &format!("GET /users/me with {what}"),
            )?;
        }
        Ok(())
    })
}

/// JWT-shaped garbage: a header naming real and unknown keys and algorithms, any
/// claims, any signature, and sometimes too few or too many segments.
fn jwt(kid: String) -> impl Strategy<Value = Vec<u8>> {
    let header = (
        select(&["ES256", "RS256", "EdDSA", "HS256", "none", "PS512", ""][..]),
        select(&["at+jwt", "JWT", "application/at+jwt", ""][..]),
        prop_oneof![Just(kid), text()],
    )
        .prop_map(|(alg, typ, kid)| json!({"alg": alg, "typ": typ, "kid": kid}).to_string().into_bytes());
    let header = prop_oneof![3 => header, 1 => bytes()];
    let claims = prop_oneof![
        (any::<i64>(), text(), text()).prop_map(|(exp, sub, sid)| {
            json!({"sub": sub, "sid": sid, "exp": exp, "iat": exp, "aud": sub, "iss": sid}).to_string().into_bytes()
        }),
        bytes(),
    ];
    let segments = prop::collection::vec(bytes(), 0..3);
    (header, claims, segments).prop_map(|(header, claims, rest)| {
        let mut parts = vec![URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims)];
        parts.extend(rest.iter().map(|r| URL_SAFE_NO_PAD.encode(r)));
        parts.join(".").into_bytes()
    })
}

fn bearer_and_cookie_credentials(t: &Target) -> Option<String> {
    let (header, _) = jwt_parts(&t.access_token);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let real = t.access_token.clone();
    let mutated = (any::<Index>(), 0x20u8..0x7f, any::<bool>()).prop_map(move |(at, b, replace)| {
        let mut bytes = real.clone().into_bytes();
        let at = at.index(bytes.len());
        if replace {
            bytes[at] = b;
        } else {
            bytes.truncate(at);
        }
        bytes
    });
    let credential =
        prop_oneof![4 => header_bytes(), 4 => jwt(kid), 2 => mutated, 1 => Just(t.access_token.clone().into_bytes())];
    let scheme = select(&["Bearer ", "bearer ", "BEARER  ", "Bearer", "Bearer\t", "Token ", ""][..]);
    let strategy = (credential, scheme, any::<bool>(), select(vec![Method::GET, Method::DELETE, Method::POST]));
    check(t, "Authorization: Bearer and the session cookie", 500, strategy, |(credential, scheme, cookie, method)| {
        let (path, request) = match method {
            m if m == Method::GET => ("/users/me", t.request(m, "/users/me")),
            m if m == Method::DELETE => ("/users/me/sessions/x", t.request(m, "/users/me/sessions/x")),
            m => ("/email-verification", t.request(m, "/email-verification")),
        };
        let (request, what) = if cookie {
            let value = header_value(&[b"latch_session=".as_slice(), &credential].concat());
            (request.header(COOKIE, value), format!("{path} with cookie {}", credential.escape_ascii()))
        } else {
            let value = header_value(&[scheme.as_bytes(), &credential].concat());
            (request.header(AUTHORIZATION, value), format!("{path} with {scheme}{}", credential.escape_ascii()))
        };
        t.send(request, &what)?;
        Ok(())
    })
}

/// Every route that takes a body, with any content type and any bytes.
fn raw_bodies(t: &Target) -> Option<String> {
    const ROUTES: &[(&str, &str, bool)] = &[
        ("POST", "/token", false),
        ("POST", "/sessions", false),
        ("POST", "/users", false),
        ("POST", "/revoke", false),
        ("POST", "/password-reset", false),
        ("POST", "/password-reset/confirm", false),
        ("POST", "/email-verification/confirm", false),
        ("POST", "/email-verification", true),
        // Authenticated: the fuzzer's own account, which a random body cannot delete or
        // change the password of (both need the current password).
        ("PATCH", "/users/me", true),
        ("DELETE", "/users/me", true),
        ("POST", "/users/me/password", true),
    ];
    let content_type = prop_oneof![
        3 => select(&[
            "application/json",
            "application/x-www-form-urlencoded",
            "APPLICATION/JSON; charset=utf-16",
            "application/x-www-form-urlencoded;charset=latin1",
            "application/problem+json",
            "application/+json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
            ";",
            "application/json\t;",
        ][..])
        .prop_map(|ct| Some(ct.as_bytes().to_vec())),
        1 => header_bytes().prop_map(Some),
        1 => Just(None),
    ];
    let payload = prop_oneof![
        bytes(),
        prop::collection::vec(
            select(&["{", "}", "[", "]", "\"", ":", ",", "=", "&", "%", "a", "1", "\\u0000"][..]),
            0..200
        )
        .prop_map(|p| p.concat().into_bytes()),
    ];
    let strategy = (select(ROUTES), content_type, payload);
    check(t, "raw bodies", 1000, strategy, |((method, path, authenticated), content_type, payload)| {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = t.request(method.clone(), path).body(payload.clone());
        if let Some(ct) = &content_type {
            request = request.header(CONTENT_TYPE, header_value(ct));
        }
        if authenticated {
            request = request.bearer_auth(&t.access_token);
        }
        let ct = content_type.map(|c| c.escape_ascii().to_string()).unwrap_or_else(|| "none".to_owned());
        t.send(request, &format!("{method} {path} ({ct}) {}", payload.escape_ascii()))?;
        Ok(())
    })
}

/// A path segment: arbitrary bytes percent-encoded, text the URL parser encodes as it
/// sees fit, or a name that routes know.
#[derive(Debug, Clone)]
enum Segment {
    Encoded(Vec<u8>),
    Text(String),
}

fn paths(t: &Target) -> Option<String> {
    let segment = prop_oneof![
        2 => bytes().prop_map(Segment::Encoded),
        1 => text().prop_map(Segment::Text),
        1 => select(&["users", "me", "sessions", "..", ".", "", "%", "%2F", "token", "health"][..])
            .prop_map(|s| Segment::Text(s.to_owned())),
    ];
    let strategy = (
        select(&["/users/", "/users/me/sessions/", "/.well-known/", "/"][..]),
        prop::collection::vec(segment, 1..4),
        prop::option::weighted(0.2, bytes()),
        select(vec![Method::GET, Method::GET, Method::DELETE, Method::POST, Method::PATCH, Method::OPTIONS]),
        any::<bool>(),
    );
    check(t, "paths", 1000, strategy, |(prefix, segments, query, method, authenticated)| {
        let rendered: Vec<String> = segments
            .iter()
            .map(|s| match s {
                Segment::Encoded(b) => percent_encode(b),
                Segment::Text(s) => s.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23"),
            })
            .collect();
        let mut url = reqwest::Url::parse(&t.app.base).unwrap();
        url.set_path(&format!("{prefix}{}", rendered.join("/")));
        if let Some(query) = &query {
            url.set_query(Some(&percent_encode(query)));
        }
        let mut request = t.app.client.request(method.clone(), url.clone());
        // Only reads carry the token: `DELETE /sessions` would end its session.
        if authenticated && method == Method::GET {
            request = request.bearer_auth(&t.access_token);
        }
        t.send(request, &format!("{method} {url}"))?;
        Ok(())
    })
}

/// Query strings of the admin lists and the user's own events, as an admin: known
/// parameter names with arbitrary values, arbitrary names, repeats, and raw bytes.
fn admin_queries(t: &Target) -> Option<String> {
    let name = prop_oneof![
        4 => select(&["q", "role", "disabled", "email_verified", "limit", "cursor", "user", "type", "since", "until"][..])
            .prop_map(|n| n.as_bytes().to_vec()),
        1 => bytes(),
    ];
    let value = prop_oneof![
        3 => bytes(),
        2 => text().prop_map(String::into_bytes),
        2 => select(&["%", "_", "\\", "admin", "true", "0", "200", "201", "-1", "login", "2026-11-30T08:00:00Z", "fuzz", "AAAA"][..])
            .prop_map(|v| v.as_bytes().to_vec()),
    ];
    let strategy =
        (select(&["/admin/users", "/admin/audit", "/users/me/events"][..]), prop::collection::vec((name, value), 0..4));
    check(t, "GET /admin/users, /admin/audit, /users/me/events (query)", 500, strategy, |(path, pairs)| {
        let query: Vec<String> =
            pairs.iter().map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v))).collect();
        let mut url = reqwest::Url::parse(&t.app.url(path)).unwrap();
        url.set_query(Some(&query.join("&")));
        let request = t.app.client.get(url.clone()).bearer_auth(&t.admin_token);
        t.send(request, &format!("GET {url}"))?;
        Ok(())
    })
}

/// A field of the admin API: anything, or a list (roles, origins, URIs, scopes).
fn admin_field() -> impl Strategy<Value = Option<Field>> {
    let lists = &[
        r#"["admin"]"#,
        r#"["a","b","a"]"#,
        r#"["https://a.example","http://localhost:3000/cb"]"#,
        r#"[1,2]"#,
        r#"[null]"#,
        r#"["%_\\"]"#,
        r#"[""]"#,
        r#"[[]]"#,
    ][..];
    let plausible = &["true", "false", r#""fuzzname""#, r#""fuzz@example.com""#, r#""Fuzz App""#, r#"["editor"]"#][..];
    prop_oneof![
        4 => Just(None),
        2 => field(),
        2 => select(plausible).prop_map(|j| Some(Field::Json(j))),
        1 => select(lists).prop_map(|j| Some(Field::Json(j))),
    ]
}

/// Bodies of the admin API's changes: a user's fields (never deleted) and new clients.
fn admin_bodies(t: &Target) -> Option<String> {
    let user_path = format!("/admin/users/{}", t.victim_id);
    let strategy = (
        any::<bool>(),
        shape(&["username", "email", "email_verified", "disabled", "roles", "add_roles", "remove_roles", "name"]),
        prop::collection::vec(admin_field(), 7),
    );
    check(t, "PATCH /admin/users/{id}, POST /admin/clients", 500, strategy, |(user, shape, values)| {
        let names: &[&str] = if user {
            &["username", "email", "email_verified", "disabled", "roles", "add_roles", "remove_roles"]
        } else {
            &["name", "confidential", "first_party", "origins", "redirect_uris", "post_logout_redirect_uris", "scopes"]
        };
        let fields: Vec<(&str, &Option<Field>)> = names.iter().copied().zip(values.iter()).collect();
        let (_, body) = body(&Shape { json: true, ..shape }, &fields);
        let (method, path) = if user { (Method::PATCH, user_path.as_str()) } else { (Method::POST, "/admin/clients") };
        let request = t
            .request(method.clone(), path)
            .bearer_auth(&t.admin_token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        t.send(request, &format!("{method} {path} {}", body.escape_ascii()))?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------
// Regression cases.

async fn fuzz_app() -> TestApp {
    let app = spawn_app_with(|c| c.limits.enabled = false).await;
    app.create_user("fuzzer").await;
    app
}

fn basic(credentials: &[u8]) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

/// 319 ASCII bytes and a two-byte character: byte 320, where logins are cut, falls
/// inside the character.
#[tokio::test]
async fn a_login_cut_at_320_bytes_inside_a_character_is_refused_not_a_5xx() {
    let app = fuzz_app().await;
    let login = format!("{}é", "a".repeat(319));
    let r = app.token(&login, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "/token: {}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = app.post_json("/sessions", &json!({"username": login, "password": PASSWORD})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app
        .client
        .get(app.url("/users/me"))
        .header(AUTHORIZATION, basic(format!("{login}:{PASSWORD}").as_bytes()))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

/// No account name holds a newline or a NUL; such logins are refused like an
/// unknown user, on every way in and in both body formats.
#[tokio::test]
async fn logins_with_a_newline_or_nul_are_refused_not_a_5xx() {
    let app = fuzz_app().await;
    for login in ["fuzzer\n", "fuz\nzer", "fuzzer\0", "\0", "fuzzer@example.com\0"] {
        let r = app.token(login, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{login:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant", "{login:?}");
        let r = app.post_json("/token", &json!({"username": login, "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{login:?}");
        let r = app.post_json("/sessions", &json!({"username": login, "password": PASSWORD})).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let r = app.post_form("/sessions", &[("email", login), ("password", PASSWORD)]).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let credentials = format!("{login}:{PASSWORD}");
        let r = app.client.get(app.url("/users/me")).header(AUTHORIZATION, basic(credentials.as_bytes())).send();
        assert_problem(r.await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

/// A password may hold a newline and a NUL: it is verified exactly as received.
#[tokio::test]
async fn a_password_with_a_newline_and_nul_works() {
    let app = fuzz_app().await;
    let password = "line one\nline\0two";
    let r = app.register("nul_password", "nul@example.com", password).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert_eq!(app.token("nul_password", password).await.status(), StatusCode::OK);
    let r = app.post_json("/sessions", &json!({"username": "nul_password", "password": password})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.token("nul_password", "line one\nline").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Exactly 64 KiB is read; one byte more is 413, on every body-taking endpoint.
#[tokio::test]
async fn bodies_past_64_kib_are_413() {
    let app = fuzz_app().await;
    let json_of = |len: usize| {
        let mut body = br#"{"username":""#.to_vec();
        body.resize(len - 2, b'a');
        body.extend(br#""}"#);
        body
    };
    for path in ["/token", "/sessions", "/users", "/revoke", "/password-reset"] {
        let r = app.client.post(app.url(path)).header(CONTENT_TYPE, "application/json").body(json_of(64 * 1024));
        let status = r.send().await.unwrap().status();
        assert!(status.is_client_error() && status != StatusCode::PAYLOAD_TOO_LARGE, "{path}: {status}");
        let r = app.client.post(app.url(path)).header(CONTENT_TYPE, "application/json").body(json_of(64 * 1024 + 1));
        assert_eq!(r.send().await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE, "{path} JSON");
        let big = "é".repeat(12 * 1024);
        let r = app.post_form(path, &[("username", &big)]).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path} form");
    }
    // Still answering on the same client afterwards.
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), StatusCode::OK);
}

/// Basic credentials that are not UTF-8 are malformed credentials: 401, not a 5xx;
/// as client authentication on `/token`, a malformed request (400).
#[tokio::test]
async fn basic_credentials_that_are_not_utf8_are_401() {
    let app = fuzz_app().await;
    for credentials in [&b"\xff\xfe:password"[..], b"fuzzer:\xc3", b"\xc0\x80", b"fuzzer\xed\xa0\x80:", b"\x80"] {
        let r = app.client.get(app.url("/users/me")).header(AUTHORIZATION, basic(credentials)).send();
        let r = r.await.unwrap();
        assert!(r.headers().get("www-authenticate").is_some(), "{}", credentials.escape_ascii());
        assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let r = app
            .client
            .post(app.url("/token"))
            .header(AUTHORIZATION, basic(credentials))
            .form(&[("username", "fuzzer"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", credentials.escape_ascii());
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");
    }
}
