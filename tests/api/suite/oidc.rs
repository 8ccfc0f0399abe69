//! The OpenID provider (SPEC §8) over real HTTP, walked as a browser without script
//! would: `/authorize` → the sign-in page → consent → the code → `/token`, ID tokens
//! checked against the JWKS, userinfo, RP-initiated logout, and the client credentials
//! grant. The names of these tests are the checklist in `docs/oidc.md`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::helpers::*;

const APP: &str = "https://app.example/callback";
const SPA: &str = "http://127.0.0.1:9/cb";
const AFTER_LOGOUT: &str = "https://app.example/bye";

/// A browser: its cookies, and the headers a browser sends with a page's own form.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") { path.to_owned() } else { self.app.url(path) };
        let r = self.app.client.get(url).header("cookie", self.cookie_header()).send().await.unwrap();
        self.keep_cookies(&r);
        r
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", self.app.base.as_str())
            .header("sec-fetch-site", "same-origin")
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&r);
        r
    }

    fn csrf(&self) -> String {
        self.cookies["latch_csrf"].clone()
    }

    /// Signs in on the sign-in page the way `/authorize` sent us there; returns where
    /// the sign-in leads.
    async fn sign_in_at(&mut self, login_url: &str, username: &str) -> String {
        let page = self.get(login_url).await;
        assert_eq!(page.status(), StatusCode::OK, "{login_url}");
        let html = page.text().await.unwrap();
        let return_to = if html.contains(r#"name="return_to""#) { hidden(&html, "return_to") } else { String::new() };
        let csrf = self.csrf();
        let mut form = vec![("csrf", csrf.as_str()), ("username", username), ("password", PASSWORD)];
        if !return_to.is_empty() {
            form.push(("return_to", &return_to));
        }
        let r = self.post("/login", &form).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        location(&r)
    }

    async fn sign_in(&mut self, username: &str) {
        let to = self.sign_in_at("/login", username).await;
        assert_eq!(to, "/account");
    }
}

/// The value of a page's hidden field.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name} in {html}")) + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&").replace("&#x2f;", "/").replace("&quot;", "\"").replace("&#x27;", "'")
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no Location ({})", r.status())).to_str().unwrap().to_owned()
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!("{}-{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(client_id: &str, redirect_uri: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid profile email")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

/// Registers a client; `kind` adds `--confidential` / `--first-party` and the like.
async fn client(app: &TestApp, kind: &[&str]) -> Value {
    let mut args = vec!["--name", "Acme App", "--redirect-uri", APP, "--redirect-uri", SPA];
    args.extend_from_slice(&["--post-logout-redirect-uri", AFTER_LOGOUT]);
    args.extend_from_slice(kind);
    app.create_client(&args).await
}

fn id_of(client: &Value) -> &str {
    client["client_id"].as_str().unwrap()
}

/// Walks `/authorize` → sign in (when asked) → consent (when asked) → the redirect
/// back, and returns its query.
async fn code_for(browser: &mut Browser<'_>, url: &str, username: &str) -> BTreeMap<String, String> {
    let mut r = browser.get(url).await;
    for _ in 0..5 {
        match r.status() {
            StatusCode::FOUND if location(&r).starts_with("https://") || location(&r).starts_with("http://127") => {
                return query_of(&location(&r));
            }
            StatusCode::SEE_OTHER | StatusCode::FOUND => {
                let to = location(&r);
                if to.starts_with("/login") {
                    let back = browser.sign_in_at(&to, username).await;
                    r = browser.get(&back).await;
                } else if to.starts_with("http") {
                    return query_of(&to);
                } else {
                    r = browser.get(&to).await;
                }
            }
            StatusCode::OK => {
                let html = r.text().await.unwrap();
                assert!(html.contains("Allow"), "a consent page: {html}");
                let (csrf, query) = (browser.csrf(), hidden(&html, "query"));
                r = browser.post("/authorize", &[("csrf", &csrf), ("query", &query), ("decision", "allow")]).await;
                assert_eq!(r.status(), StatusCode::SEE_OTHER);
                return query_of(&location(&r));
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
        }
    }
    panic!("too many steps");
}

/// `latch audit --json --type <types>`: the events, newest first.
fn audit(app: &TestApp, types: &str) -> Vec<Value> {
    let out = app.cli().args(["audit", "--json", "--type", types]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A code for `client_id` from a browser signed in as alice, and its PKCE verifier.
async fn fresh(browser: &mut Browser<'_>, client_id: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let q = code_for(browser, &authorize_url(client_id, APP, &challenge, &[]), "alice").await;
    (q["code"].clone(), verifier)
}

/// A code for `client_id` from a signed-in browser, exchanged: the exchange's form
/// (to present again) and the tokens.
async fn signed_in_through(
    app: &TestApp,
    browser: &mut Browser<'_>,
    client_id: &str,
) -> (Vec<(&'static str, String)>, Value) {
    let (verifier, challenge) = pkce();
    let q = code_for(browser, &authorize_url(client_id, APP, &challenge, &[]), "alice").await;
    let form = vec![
        ("code", q["code"].clone()),
        ("redirect_uri", APP.to_owned()),
        ("client_id", client_id.to_owned()),
        ("code_verifier", verifier),
    ];
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = exchange(app, &borrowed).await;
    assert_eq!(r.status(), StatusCode::OK);
    (form, r.json().await.unwrap())
}

async fn exchange(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.post_form("/token", &[&[("grant_type", "authorization_code")], form].concat()).await
}

async fn oauth_error(r: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Verifies an ID token's signature against the JWKS and returns its claims.
async fn verified_id_token(app: &TestApp, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256, "ID tokens are RS256");
    let jwks: jsonwebtoken::jwk::JwkSet =
        app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the ID token's key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn discovery_describes_the_provider() {
    let app = spawn_app().await;
    let d: Value =
        app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], app.base);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("end_session_endpoint", "/end_session"),
    ] {
        assert_eq!(d[field], app.url(path), "{field}");
    }
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(d["grant_types_supported"].as_array().unwrap().contains(&grant.into()), "{grant}");
    }
    for claim in ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "email"] {
        assert!(d["claims_supported"].as_array().unwrap().contains(&claim.into()), "{claim}");
    }
    assert!(d["scopes_supported"].as_array().unwrap().contains(&"openid".into()));
    assert!(d["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&"client_secret_basic".into()));
    // Every endpoint advertised exists.
    let r = app.client.get(app.url("/authorize")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.client.get(app.url("/end_session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Without the pages there is no code flow to describe.
    let app = spawn_app_with(|c| c.ui = false).await;
    let d: Value =
        app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert!(d.get("authorization_endpoint").is_none() && d.get("end_session_endpoint").is_none(), "{d}");
    assert_eq!(d["response_types_supported"], serde_json::json!(["none"]));
    assert!(!d["grant_types_supported"].as_array().unwrap().contains(&"authorization_code".into()));
    assert_eq!(app.client.get(app.url("/authorize")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_code_flow_signs_in_asks_consent_and_issues_an_id_token() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let client = client(&app, &[]).await;
    let id = id_of(&client);
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new(&app);

    // Not signed in: to the sign-in page, which comes back.
    let url = authorize_url(id, APP, &challenge, &[]);
    let r = browser.get(&url).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let login = location(&r);
    assert!(login.starts_with("/login?return_to=%2Fauthorize%3F"), "{login}");
    let page = browser.get(&login).await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' https://app.example"), "the sign-in may lead to the client: {csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"autocomplete="username" autocapitalize="none" spellcheck="false" required value="""#),
        "{html}"
    );
    let back = browser.sign_in_at(&login, "alice").await;
    assert!(back.starts_with("/authorize?"), "{back}");

    // A third-party client: a consent page, framed by nobody, whose form may lead to
    // the client.
    let r = browser.get(&back).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self' https://app.example"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("Acme App") && html.contains("See your email address"), "{html}");
    let query = hidden(&html, "query");
    // Without the CSRF token the answer is refused and nothing is issued.
    let r = browser.post("/authorize", &[("query", &query), ("decision", "allow")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = browser.csrf();
    let r = browser.post("/authorize", &[("csrf", &csrf), ("query", &query), ("decision", "allow")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.starts_with(APP), "{to}");
    let q = query_of(&to);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.base, "RFC 9207");
    let code = &q["code"];

    let r =
        exchange(&app, &[("code", code), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verified_id_token(&app, id_token, id).await;
    assert_eq!(claims["sub"], alice["id"]);
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], id);
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((claims["auth_time"].as_i64().unwrap() - now).abs() < 60);
    assert!(claims["exp"].as_i64().unwrap() > now && (claims["iat"].as_i64().unwrap() - now).abs() < 60);
    let at_hash = URL_SAFE_NO_PAD.encode(&Sha256::digest(access.as_bytes())[..16]);
    assert_eq!(claims["at_hash"], at_hash);
    let (_, access_claims) = jwt_parts(access);
    assert!(claims["sid"].is_string() && claims["sid"] != access_claims["sid"], "the browser session: {claims}");
    assert_eq!(access_claims["client_id"], id);
    // A third-party application's token is for what the person allowed it, not for
    // Latch's own account or admin API.
    assert_eq!(app.me_status(access).await, StatusCode::FORBIDDEN);
    let r = app.client.get(app.url("/users/me/sessions")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Userinfo by the granted scopes.
    let info: Value =
        app.client.get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["sub"], alice["id"]);
    assert_eq!(info["email"], "alice@example.com");
    // By POST too, the token in the header or in the body (RFC 6750 §2.2).
    let r = app.client.post(app.url("/userinfo")).form(&[("access_token", access)]).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], alice["id"]);
    let r = app.client.post(app.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The consent is remembered: the next request comes straight back with a code.
    let (_, challenge) = pkce();
    let r = browser.get(&authorize_url(id, APP, &challenge, &[])).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(query_of(&location(&r)).contains_key("code"));
    // A wider request asks again.
    let wider =
        authorize_url(id, APP, &challenge, &[]).replace("scope=openid+profile+email", "scope=openid+offline_access");
    let r = browser.get(&wider).await;
    assert_eq!(r.status(), StatusCode::OK);
    // `prompt=consent` asks again too.
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("prompt", "consent")])).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Denying sends access_denied back.
    let html = r.text().await.unwrap();
    let (csrf, query) = (browser.csrf(), hidden(&html, "query"));
    let r = browser.post("/authorize", &[("csrf", &csrf), ("query", &query), ("decision", "deny")]).await;
    let q = query_of(&location(&r));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "st-1", app.base.as_str())
    );

    // A code the application got before the person withdrew its access.
    let (pending_verifier, pending_challenge) = pkce();
    let r = browser.get(&authorize_url(id, APP, &pending_challenge, &[])).await;
    let pending = query_of(&location(&r))["code"].clone();

    // The consent is listed on the account page and withdrawn there.
    let page = browser.get("/account").await.text().await.unwrap();
    assert!(page.contains("Acme App") && page.contains("Withdraw access"), "{page}");
    let csrf = browser.csrf();
    let r = browser.post("/account/consents/revoke", &[("csrf", &csrf), ("client_id", id)]).await;
    assert_eq!(location(&r), "/account?done=consent");
    let r = app.client.get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "withdrawing access ends the application's sessions");
    let form =
        [("code", pending.as_str()), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &pending_verifier)];
    oauth_error(exchange(&app, &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = browser.get(&authorize_url(id, APP, &challenge, &[])).await;
    assert_eq!(r.status(), StatusCode::OK, "asked again once withdrawn");

    let events = audit(&app, "consent_granted,consent_revoked");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["consent_revoked", "consent_granted"], "{events:?}");
    assert_eq!(events[1]["client_id"], id);
    assert_eq!(events[1]["details"]["scope"], "openid profile email");
}

#[tokio::test]
async fn first_party_clients_skip_consent_and_always_get_a_refresh_token() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = client(&app, &["--first-party"]).await;
    let id = id_of(&client);
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new(&app);
    browser.sign_in("alice").await;
    let r = browser.get(&authorize_url(id, APP, &challenge, &[])).await;
    assert_eq!(r.status(), StatusCode::FOUND, "no consent page");
    let q = query_of(&location(&r));
    let r =
        exchange(&app, &[("code", &q["code"]), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)])
            .await;
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().expect("a first-party client gets a refresh token");
    let r = app
        .post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", id)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A third-party client gets one only with offline_access.
    let third = self::client(&app, &[]).await;
    let third_id = id_of(&third);
    let (verifier, challenge) = pkce();
    let url = authorize_url(third_id, APP, &challenge, &[])
        .replace("scope=openid+profile+email", "scope=openid+offline_access");
    let q = code_for(&mut browser, &url, "alice").await;
    let r = exchange(
        &app,
        &[("code", &q["code"]), ("redirect_uri", APP), ("client_id", third_id), ("code_verifier", &verifier)],
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert_eq!(tokens["scope"], "openid offline_access");
}

#[tokio::test]
async fn prompt_max_age_and_login_hint_are_honoured() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = client(&app, &["--first-party"]).await;
    let id = id_of(&client);
    let (_, challenge) = pkce();
    let mut browser = Browser::new(&app);

    // prompt=none without a session: login_required, back to the client.
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("prompt", "none")])).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let q = query_of(&location(&r));
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("login_required", "st-1"));
    assert_eq!(q["iss"], app.base);

    // login_hint fills in the sign-in form.
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("login_hint", "alice@example.com")])).await;
    let login = location(&r);
    let html = browser.get(&login).await.text().await.unwrap();
    assert!(html.contains(r#"value="alice@example.com""#), "{html}");

    browser.sign_in("alice").await;
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("prompt", "none")])).await;
    assert!(query_of(&location(&r)).contains_key("code"));

    // prompt=login: the sign-in form again, even though signed in, and then a code
    // whose auth_time is the new sign-in.
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("prompt", "login")])).await;
    let login = location(&r);
    assert!(login.starts_with("/login?") && login.contains("prompt=login"), "{login}");
    app.clock.advance(std::time::Duration::from_secs(30));
    let back = browser.sign_in_at(&login, "alice").await;
    let r = browser.get(&back).await;
    assert_eq!(r.status(), StatusCode::FOUND, "signed in again: no second sign-in");
    assert!(query_of(&location(&r)).contains_key("code"));
    // Its mark is bound to that request: carried over to another, the sign-in is asked.
    let other = format!("{}&prompt=login", back.replace("state=st-1", "state=st-2"));
    assert!(location(&browser.get(&other).await).starts_with("/login?"), "{other}");

    // The mark of a done sign-in cannot be written by hand.
    for forged in ["0", "99999999999", "1.AAAA"] {
        let r = browser
            .get(&authorize_url(id, APP, &challenge, &[("prompt", "login"), ("latch_signed_in_since", forged)]))
            .await;
        assert!(location(&r).starts_with("/login?"), "{forged}");
    }

    // max_age: a sign-in older than it must be done again.
    app.clock.advance(std::time::Duration::from_secs(120));
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("max_age", "60")])).await;
    assert!(location(&r).starts_with("/login?"), "too old a sign-in");
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("max_age", "60"), ("prompt", "none")])).await;
    assert_eq!(query_of(&location(&r))["error"], "login_required");
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("max_age", "3600")])).await;
    assert!(query_of(&location(&r)).contains_key("code"));

    // prompt=none where consent is missing: consent_required.
    let third = self::client(&app, &[]).await;
    let r = browser.get(&authorize_url(id_of(&third), APP, &challenge, &[("prompt", "none")])).await;
    assert_eq!(query_of(&location(&r))["error"], "consent_required");
    // Once allowed, `prompt=login consent` still asks for both.
    code_for(&mut browser, &authorize_url(id_of(&third), APP, &challenge, &[]), "alice").await;
    let r = browser.get(&authorize_url(id_of(&third), APP, &challenge, &[("prompt", "login consent")])).await;
    let back = browser.sign_in_at(&location(&r), "alice").await;
    let r = browser.get(&back).await;
    assert_eq!(r.status(), StatusCode::OK, "the consent page, after the sign-in");
}

#[tokio::test]
async fn requests_that_cannot_be_trusted_show_a_page_and_never_redirect() {
    let app = spawn_app().await;
    let client = client(&app, &[]).await;
    let id = id_of(&client);
    let (_, challenge) = pkce();
    let unknown = uuid::Uuid::new_v4().to_string();
    let near_misses = [
        "https://app.example/callback/",
        "https://app.example:8443/callback",
        "https://APP.example/callback",
        "https://app.example/Callback",
        "https://app.example/x/../callback",
        "https://app.example/callback?x=1",
        "https://app.example/callback#f",
        "http://app.example/callback",
        "https://evil.example/callback",
    ];
    let mut urls: Vec<String> = near_misses.iter().map(|uri| authorize_url(id, uri, &challenge, &[])).collect();
    urls.push(authorize_url(&unknown, APP, &challenge, &[]));
    urls.push(authorize_url(id, APP, &challenge, &[]).replace(&format!("redirect_uri={}", urlencoded(APP)), ""));
    urls.push(format!("{}&client_id={id}", authorize_url(id, APP, &challenge, &[])));
    urls.push(format!("{}&redirect_uri={}", authorize_url(id, APP, &challenge, &[]), urlencoded(APP)));
    for url in urls {
        let r = app.client.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(r.headers().get("location").is_none(), "{url}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    }
}

fn urlencoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bad_requests_from_a_known_client_go_back_with_the_rfc_error() {
    let app = spawn_app().await;
    let client = client(&app, &[]).await;
    let confidential = self::client(&app, &["--confidential"]).await;
    let id = id_of(&client);
    let (_, challenge) = pkce();
    let base = authorize_url(id, APP, &challenge, &[]);
    let cases: Vec<(String, &str)> = vec![
        (base.replace("response_type=code", "response_type=token"), "unsupported_response_type"),
        (base.replace("response_type=code", "response_type=code+id_token"), "unsupported_response_type"),
        (base.replace("response_type=code&", ""), "invalid_request"),
        (format!("{base}&request=eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
        (format!("{base}&request_uri=https%3A%2F%2Fx.example%2Fr"), "request_uri_not_supported"),
        (base.replace("code_challenge_method=S256", "code_challenge_method=plain"), "invalid_request"),
        (base.replace("&code_challenge_method=S256", ""), "invalid_request"),
        (authorize_url(id, APP, "short", &[]), "invalid_request"),
        (base.replace(&format!("&code_challenge={challenge}&code_challenge_method=S256"), ""), "invalid_request"),
        (base.replace("scope=openid+profile+email", "scope=openid+admin"), "invalid_scope"),
        (base.replace("scope=openid+profile+email", "scope=openid+latch%3Aadmin"), "invalid_scope"),
        (base.replace("scope=openid+profile+email&", ""), "invalid_request"),
        (format!("{base}&prompt=none+login"), "invalid_request"),
        (format!("{base}&max_age=soon"), "invalid_request"),
        (format!("{base}&response_mode=fragment"), "invalid_request"),
        (format!("{base}&scope=email"), "invalid_request"),
    ];
    for (url, error) in cases {
        let r = app.client.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{url}");
        let to = location(&r);
        assert!(to.starts_with(APP), "{to}");
        let q = query_of(&to);
        assert_eq!(q["error"], error, "{url}");
        assert_eq!(q["iss"], app.base);
        assert!(!q.contains_key("code"));
    }
    // A confidential client may leave PKCE out (it still may use it).
    let url = authorize_url(id_of(&confidential), APP, &challenge, &[])
        .replace(&format!("&code_challenge={challenge}&code_challenge_method=S256"), "");
    let r = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "to the sign-in page");
}

#[tokio::test]
async fn a_code_is_single_use_bound_to_its_client_redirect_and_verifier_and_short_lived() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = client(&app, &["--first-party"]).await;
    let other = self::client(&app, &["--first-party"]).await;
    let secret_client = self::client(&app, &["--first-party", "--confidential"]).await;
    let id = id_of(&client);
    let mut browser = Browser::new(&app);
    browser.sign_in("alice").await;

    // Each wrong detail is invalid_grant, and uses the code up.
    let (code, verifier) = fresh(&mut browser, id).await;
    let wrong = "x".repeat(43);
    for (form, what) in [
        (
            vec![("code", code.as_str()), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &wrong)],
            "verifier",
        ),
        (vec![("code", code.as_str()), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)], "used"),
    ] {
        oauth_error(exchange(&app, &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
        let _ = what;
    }
    let (code, verifier) = fresh(&mut browser, id).await;
    let r = exchange(&app, &[("code", &code), ("redirect_uri", APP), ("client_id", id)]).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let _ = verifier;
    let (code, verifier) = fresh(&mut browser, id).await;
    let r = exchange(&app, &[("code", &code), ("redirect_uri", SPA), ("client_id", id), ("code_verifier", &verifier)])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let (code, verifier) = fresh(&mut browser, id).await;
    let r = exchange(
        &app,
        &[("code", &code), ("redirect_uri", APP), ("client_id", id_of(&other)), ("code_verifier", &verifier)],
    )
    .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r =
        exchange(&app, &[("code", "made-up"), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)])
            .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = exchange(&app, &[("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)]).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r =
        exchange(&app, &[("code", "x"), ("redirect_uri", APP), ("client_id", id), ("code_verifier", "short")]).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // An unregistered client: invalid_client.
    let r = exchange(
        &app,
        &[("code", "x"), ("redirect_uri", APP), ("client_id", "some-label"), ("code_verifier", &verifier)],
    )
    .await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // A confidential client must authenticate to exchange its code.
    let (code, verifier) = fresh(&mut browser, id_of(&secret_client)).await;
    let form = [
        ("code", code.as_str()),
        ("redirect_uri", APP),
        ("client_id", id_of(&secret_client)),
        ("code_verifier", &verifier),
    ];
    oauth_error(exchange(&app, &form).await, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // A code dies with the browser session it was issued in.
    let (code, verifier) = fresh(&mut browser, id).await;
    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", browser.cookie_header())
        .header("origin", app.base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = exchange(&app, &[("code", &code), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    browser.sign_in("alice").await;

    // Expired after 60 s.
    let (code, verifier) = fresh(&mut browser, id).await;
    app.clock.advance(std::time::Duration::from_secs(61));
    let r = exchange(&app, &[("code", &code), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_replayed_code_revokes_the_tokens_its_first_use_issued() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = client(&app, &["--first-party"]).await;
    let id = id_of(&client);
    let mut browser = Browser::new(&app);
    browser.sign_in("alice").await;
    let (form, tokens) = signed_in_through(&app, &mut browser, id).await;
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.client.get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap().status(), StatusCode::OK);

    oauth_error(exchange(&app, &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = app.client.get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the access token of the first use is dead");
    let r = app
        .post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", id)])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Also after the code expired.
    let (form, tokens) = signed_in_through(&app, &mut browser, id).await;
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.clock.advance(std::time::Duration::from_secs(120));
    oauth_error(exchange(&app, &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = app
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", id),
            ],
        )
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Two exchanges racing: one wins, and its tokens die with the other's attempt.
    for _ in 0..5 {
        let (code, verifier) = fresh(&mut browser, id).await;
        let form = [("code", code.as_str()), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)];
        let (a, b) = tokio::join!(exchange(&app, &form), exchange(&app, &form));
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
        let winner: Value =
            if a.status() == StatusCode::OK { a.json().await.unwrap() } else { b.json().await.unwrap() };
        let r = app.client.get(app.url("/userinfo")).bearer_auth(winner["access_token"].as_str().unwrap()).send();
        assert_eq!(r.await.unwrap().status(), StatusCode::UNAUTHORIZED, "the winner's tokens are revoked");
    }
    let events = audit(&app, "authorization_code_reuse");
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[0]["client_id"], id);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_sessions_and_returns_only_to_registered_uris() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    app.create_user("bob").await;
    let client = client(&app, &["--first-party"]).await;
    let id = id_of(&client);
    let mut browser = Browser::new(&app);
    browser.sign_in("alice").await;
    let (_, tokens) = signed_in_through(&app, &mut browser, id).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // An unregistered return address, or a forged hint: a page, no redirect, nobody
    // signed out.
    for query in [
        format!("id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"),
        format!("client_id={id}&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye%2F"),
        "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye".to_owned(),
    ] {
        let r = browser.get(&format!("/end_session?{query}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(r.headers().get("location").is_none());
    }
    // A hint that does not verify is no hint: the person is asked.
    let forged = format!("{}x", &id_token[..id_token.len() - 1]);
    let r = browser.get(&format!("/end_session?id_token_hint={forged}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Sign out"));
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK, "still signed in");

    // Without a hint the person is asked.
    let r = browser
        .get(&format!("/end_session?client_id={id}&post_logout_redirect_uri={}", urlencoded(AFTER_LOGOUT)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("asks to sign you out"), "{html}");
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK, "asking signs nobody out");

    // With the hint: signed out at once, back to the registered address with state.
    let url =
        format!("/end_session?id_token_hint={id_token}&post_logout_redirect_uri={}&state=s2", urlencoded(AFTER_LOGOUT));
    let r = browser.get(&url).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), format!("{AFTER_LOGOUT}?state=s2"));
    assert_eq!(browser.get("/account").await.status(), StatusCode::SEE_OTHER, "the browser is signed out");
    let r = app
        .post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", id)])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A hint from an earlier browser session is not this one's: the person is asked.
    browser.sign_in("alice").await;
    let r = browser.get(&format!("/end_session?id_token_hint={id_token}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK, "still signed in");

    // Only the page's form confirms, by POST.
    let csrf = browser.csrf();
    let r = browser.get(&format!("/end_session?client_id={id}&confirm=yes&csrf={csrf}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK, "a GET confirms nothing");

    // The confirmation page's form signs out too.
    let mut other = Browser::new(&app);
    other.sign_in("bob").await;
    let r =
        other.get(&format!("/end_session?client_id={id}&post_logout_redirect_uri={}", urlencoded(AFTER_LOGOUT))).await;
    let html = r.text().await.unwrap();
    let csrf = other.csrf();
    let post_logout = hidden(&html, "post_logout_redirect_uri");
    let r = other
        .post(
            "/end_session",
            &[("csrf", &csrf), ("confirm", "yes"), ("client_id", id), ("post_logout_redirect_uri", &post_logout)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), AFTER_LOGOUT);
    assert_eq!(other.get("/account").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn client_credentials_issue_a_client_token_that_can_use_the_admin_api_with_its_scope() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let service =
        app.create_client(&["--name", "ops", "--confidential", "--scope", "latch:admin", "--scope", "reports"]).await;
    let (id, secret) = (id_of(&service), service["client_secret"].as_str().unwrap());
    let grant = |scope: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        app.client.post(app.url("/token")).basic_auth(id, Some(secret)).form(&form).send()
    };
    // Without `scope`: the client's scopes but Latch's own, which must be asked for.
    let r = grant(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let plain: Value = r.json().await.unwrap();
    assert_eq!(plain["scope"], "reports");
    let r = grant(Some("latch:admin reports")).await.unwrap();
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none(), "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert!(claims.get("sid").is_none(), "{claims}");
    assert_eq!(claims["scope"], "latch:admin reports");
    let issued = audit(&app, "client_token");
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(
        (issued[0]["actor"]["type"].as_str(), issued[0]["details"]["scope"].as_str()),
        (Some("client"), Some("latch:admin reports"))
    );

    // The admin API, as the client.
    let r = app.client.get(app.url("/admin/users")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Not a user: no account, no userinfo.
    assert_eq!(app.me_status(token).await, StatusCode::UNAUTHORIZED);
    let r = app.client.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Without the admin scope: 403.
    let narrow: Value = grant(Some("reports")).await.unwrap().json().await.unwrap();
    let r = app
        .client
        .get(app.url("/admin/users"))
        .bearer_auth(narrow["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Scopes about users, or not listed: invalid_scope.
    oauth_error(grant(Some("openid")).await.unwrap(), StatusCode::BAD_REQUEST, "invalid_scope").await;
    oauth_error(grant(Some("other")).await.unwrap(), StatusCode::BAD_REQUEST, "invalid_scope").await;
    // A wrong secret, a public client: refused.
    let r =
        app.client.post(app.url("/token")).basic_auth(id, Some("nope")).form(&[("grant_type", "client_credentials")]);
    oauth_error(r.send().await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_client").await;
    let public = client(&app, &[]).await;
    let r = app.post_form("/token", &[("grant_type", "client_credentials"), ("client_id", id_of(&public))]).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    // The admin scope is for confidential clients only.
    let out = app.cli().args(["client", "create", "--name", "spa", "--scope", "latch:admin"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("confidential"), "{}", String::from_utf8_lossy(&out.stderr));

    // Its changes are recorded with the client as the actor.
    let users = app.run_cli(&["user", "show", "alice", "--json"]);
    let r = app
        .client
        .patch(app.url(&format!("/admin/users/{}", users["id"].as_str().unwrap())))
        .bearer_auth(token)
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = audit(&app, "user_disabled");
    assert_eq!(events[0]["actor"]["type"], "client", "{events:?}");
    assert_eq!(events[0]["actor"]["id"], id);

    // A deleted client's tokens stop working.
    app.run_cli(&["client", "delete", id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = app.client.get(app.url("/admin/users")).bearer_auth(token).send().await.unwrap();
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {}", r.status());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_factor_is_asked_on_the_way_and_named_in_amr_and_acr() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = client(&app, &["--first-party"]).await;
    let id = id_of(&client);
    let mut browser = Browser::new(&app);
    let (_, tokens) = signed_in_through(&app, &mut browser, id).await;
    let claims = verified_id_token(&app, tokens["id_token"].as_str().unwrap(), id).await;
    assert_eq!(
        (claims["amr"].clone(), claims["acr"].clone()),
        (serde_json::json!(["pwd"]), "urn:latch:acr:pwd".into())
    );

    // Alice enrols an authenticator app.
    let access = app.login("alice").await.access_token;
    let begun: Value =
        app.client.post(app.url("/users/me/mfa/totp")).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    let key = data_encoding::BASE32_NOPAD.decode(begun["secret"].as_str().unwrap().as_bytes()).unwrap();
    let code = |app: &TestApp| {
        let now = u64::try_from(app.clock.clock().now().unix()).unwrap();
        totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &key, now)
    };
    let r = app
        .client
        .post(app.url("/users/me/mfa/totp/confirm"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"code": code(&app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Her browser session is of the password alone: asked for two factors, she signs in
    // again, and the sign-in page asks for the app's code after the password.
    let (verifier, challenge) = pkce();
    let url = authorize_url(id, APP, &challenge, &[("acr_values", "urn:latch:acr:mfa")]);
    let r = browser.get(&url).await;
    let login = location(&r);
    assert!(login.starts_with("/login?"), "{login}");
    let html = browser.get(&login).await.text().await.unwrap();
    let return_to = hidden(&html, "return_to");
    let csrf = browser.csrf();
    let r = browser
        .post("/login", &[("csrf", &csrf), ("username", "alice"), ("password", PASSWORD), ("return_to", &return_to)])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the second step's page");
    let html = r.text().await.unwrap();
    assert!(html.contains("authenticator app"), "{html}");
    let mfa_token = hidden(&html, "mfa_token");
    assert_eq!(hidden(&html, "return_to"), return_to);
    app.clock.advance(std::time::Duration::from_secs(30));
    let wrong = browser
        .post("/login/mfa", &[("csrf", &csrf), ("mfa_token", &mfa_token), ("otp", "000000"), ("return_to", &return_to)])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("not right"));
    let r = browser
        .post(
            "/login/mfa",
            &[("csrf", &csrf), ("mfa_token", &mfa_token), ("otp", &code(&app)), ("return_to", &return_to)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = browser.get(&location(&r)).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let q = query_of(&location(&r));
    let form = [("code", q["code"].as_str()), ("redirect_uri", APP), ("client_id", id), ("code_verifier", &verifier)];
    let tokens: Value = exchange(&app, &form).await.json().await.unwrap();
    let claims = verified_id_token(&app, tokens["id_token"].as_str().unwrap(), id).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "urn:latch:acr:mfa");
    let access = jwt_parts(tokens["access_token"].as_str().unwrap()).1;
    assert_eq!(access["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // The session has two factors now: asked again, no sign-in.
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("acr_values", "urn:latch:acr:mfa")])).await;
    assert!(query_of(&location(&r)).contains_key("code"));
    // max_age forces a fresh sign-in, with its second step.
    app.clock.advance(std::time::Duration::from_secs(120));
    let r = browser.get(&authorize_url(id, APP, &challenge, &[("max_age", "60")])).await;
    let login = location(&r);
    let html = browser.get(&login).await.text().await.unwrap();
    let return_to = hidden(&html, "return_to");
    let r = browser
        .post("/login", &[("csrf", &csrf), ("username", "alice"), ("password", PASSWORD), ("return_to", &return_to)])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "a fresh sign-in asks for the code again");
}
