//! Latch as an OpenID provider for a single-page app in a real browser: a page built on
//! the npm package `oidc-client-ts` (pinned in `tests/browser/package-lock.json`, its
//! browser bundle served as is) signs a person in with the authorization code flow and
//! PKCE, loads the userinfo, renews with its refresh token and signs out through
//! `/end_session`, in headless Chromium driven over WebDriver with the tools and helpers
//! of `browser.rs` (without them: `NOT RUN`, or a failure under CI).
//!
//! The app (`tests/browser/spa/`) is served from a second origin, registered as a
//! public, third-party client: so the journey goes through Latch's sign-in and consent
//! pages, and every call the library makes — discovery, `/token`, `/userinfo` — is a
//! cross-origin `fetch`. The page shows what it knows (`#status`, `#email`,
//! `#renewed`, `#error`); the test reads it, and checks over HTTP and from the app's
//! origin that signing out ended the tokens and the browser's session at Latch.
//! Screenshots go to `target/browser/screenshots/oidc-*.png`, checked with axe-core
//! like the hosted pages.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, Chromedriver, Kind, WAIT, tools, work_dir};
use crate::helpers::*;

/// The files of the app: its pages from `tests/browser/spa/`, its script the example of
/// `docs/oidc.md`, and the installed `oidc-client-ts`.
const FILES: [(&str, &str); 4] = [
    ("/index.html", "spa/index.html"),
    ("/callback.html", "spa/callback.html"),
    ("/app.js", "example:spa_oidc.js"),
    ("/oidc-client-ts.min.js", "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js"),
];

/// The single-page app on its own origin, `http://127.0.0.1:<port>`.
struct Spa {
    origin: String,
    server: tokio::task::JoinHandle<()>,
}

impl Spa {
    /// Serves the app from `listener`, configured for `authority` and `client_id` by
    /// `/config.js`.
    fn serve(listener: tokio::net::TcpListener, authority: &str, client_id: &str) -> Spa {
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/integrate/examples");
        let mut router = axum::Router::new();
        for (route, file) in FILES {
            let path = match file.strip_prefix("example:") {
                Some(example) => examples.join(example),
                None if file.starts_with("spa/") => source.join(file),
                None => work_dir().join(file),
            };
            let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if route == "/index.html" {
                router = route_to(router, "/", body.clone());
            }
            router = route_to(router, route, body);
        }
        let config = format!("window.LATCH = {};\n", json!({ "authority": authority, "client_id": client_id }));
        router = route_to(router, "/config.js", config);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Spa { origin, server }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for Spa {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `router` with `GET route` answering `body`, typed by the route's extension.
fn route_to(router: axum::Router, route: &str, body: String) -> axum::Router {
    let kind = if route.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/html; charset=utf-8" };
    router.route(
        route,
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-store")], body) }
        }),
    )
}

/// Waits until the app's page `path` shows in `#id` a text that `wanted` accepts, and
/// returns it; fails at once on an error the page shows.
async fn until_shown(b: &Browser, spa: &Spa, path: &str, id: &str, wanted: impl Fn(&str) -> bool) -> String {
    const READ: &str = "const at = location.origin + location.pathname;
        const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : ''; };
        return [at, text(arguments[0]), text('error')];";
    let deadline = Instant::now() + WAIT;
    let mut last = Value::Null;
    loop {
        // Between two documents a script may fail: then try again.
        if let Ok(read) = b.client.execute(READ, vec![json!(id)]).await {
            let at = read[0].as_str().unwrap_or_default();
            let (text, error) = (read[1].as_str().unwrap_or_default(), read[2].as_str().unwrap_or_default());
            assert!(error.is_empty(), "the app at {at} shows an error: {error}");
            if at == spa.url(path) && wanted(text) {
                return text.to_owned();
            }
            last = read;
        }
        assert!(Instant::now() < deadline, "the app never showed the #{id} wanted on {path}; last seen {last}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The user that oidc-client-ts keeps in the app's session storage.
async fn stored_user(b: &Browser) -> Value {
    let stored = b
        .script(
            "const keys = Object.keys(sessionStorage).filter((k) => k.startsWith('oidc.user:'));
            return keys.length === 1 ? sessionStorage.getItem(keys[0]) : null;",
        )
        .await;
    match stored.as_str() {
        Some(user) => serde_json::from_str(user).unwrap(),
        None => Value::Null,
    }
}

/// `GET /userinfo` with `access_token`, by `fetch` from the page shown (so under CORS):
/// the status (0 when the browser kept the answer from the page) and the body.
async fn userinfo_from_page(b: &Browser, access_token: &str) -> (u16, String) {
    const FETCH: &str = "const [token, done] = [arguments[0], arguments[arguments.length - 1]];
        fetch(window.LATCH.authority + '/userinfo', { headers: { Authorization: 'Bearer ' + token } }).then(
          (r) => r.text().then((body) => done([r.status, body])),
          (e) => done([0, String(e)]));";
    let answer = b.client.execute_async(FETCH, vec![json!(access_token)]).await.unwrap();
    (u16::try_from(answer[0].as_u64().unwrap()).unwrap(), answer[1].as_str().unwrap_or_default().to_owned())
}

/// Clicks a button whose work stays on the page.
async fn click(b: &Browser, css: &str) {
    b.find(css).await.click().await.unwrap();
}

#[tokio::test]
async fn a_single_page_app_signs_in_renews_and_signs_out_with_oidc_client_ts() {
    let Some(tools) = tools("browser: a single-page app on oidc-client-ts") else { return };
    let started = Instant::now();
    let app = spawn_app_with(|_| {}).await;
    app.create_user("alice").await;

    // The app's origin, then its registration: public (PKCE), third party (consent).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let client = app
        .create_client(&[
            "--name",
            "Test SPA",
            "--redirect-uri",
            &format!("{origin}/callback.html"),
            "--post-logout-redirect-uri",
            &format!("{origin}/"),
            "--origin",
            &origin,
        ])
        .await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let spa = Spa::serve(listener, &app.base, &client_id);
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &app.base, Kind::Desktop).await;

    // Signed out at first.
    b.goto(&spa.url("/")).await;
    until_shown(&b, &spa, "/", "status", |s| s == "signed out").await;
    b.check("oidc-spa-signed-out").await;

    // Sign in: to Latch's sign-in page (the library read the discovery document first),
    // then its consent page, then back through the callback to the app.
    let signin = b.find("#signin").await;
    b.click_and_wait(&signin).await;
    assert_eq!(b.origin().await, app.base, "not on Latch: {}", b.text().await);
    let login = b.path().await;
    assert!(login.starts_with("/login?return_to=%2Fauthorize%3F"), "{login}");
    b.check("oidc-login").await;
    b.sign_in("alice", PASSWORD).await;
    assert_eq!(b.heading().await, "Allow access?", "{}", b.text().await);
    let consent = b.text().await;
    assert!(consent.contains("Test SPA") && consent.contains("alice"), "{consent}");
    assert!(consent.contains("Stay connected when you are not using it"), "offline_access not asked: {consent}");
    b.check("oidc-consent").await;
    b.press("/authorize", "Allow").await;
    let status = until_shown(&b, &spa, "/", "status", |s| s.starts_with("signed in")).await;
    assert_eq!(status, "signed in as alice");
    // The profile is the ID token's claims and the userinfo's (loadUserInfo: a failed
    // userinfo call fails the callback).
    assert_eq!(b.find("#email").await.text().await.unwrap(), "alice@example.com");
    b.check("oidc-spa-signed-in").await;
    let user = stored_user(&b).await;
    let first = user["access_token"].as_str().unwrap().to_owned();
    let first_refresh = user["refresh_token"].as_str().unwrap_or_default().to_owned();
    assert!(!first_refresh.is_empty(), "no refresh token: {user}");
    assert!(user["id_token"].is_string() && user["scope"].as_str().unwrap().contains("offline_access"), "{user}");
    let (status, body) = userinfo_from_page(&b, &first).await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (info["preferred_username"].as_str(), info["email"].as_str()),
        (Some("alice"), Some("alice@example.com"))
    );
    let (_, claims) = jwt_parts(user["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], client_id);
    assert!(claims["sid"].is_string(), "{claims}");

    // Renew: with a refresh token the library uses the refresh grant, a new access token.
    click(&b, "#renew").await;
    let renewed = until_shown(&b, &spa, "/", "renewed", |s| !s.is_empty()).await;
    assert!(renewed.starts_with("renewed, expires at "), "{renewed}");
    assert_eq!(b.find("#status").await.text().await.unwrap(), "signed in as alice");
    b.check("oidc-spa-renewed").await;
    let user = stored_user(&b).await;
    let second = user["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "the renewal kept the access token");
    // The refresh grant, not a new authorization in a hidden frame: the refresh token
    // rotated within the same session (`sid`), where a new code would start another.
    let refresh = user["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, first_refresh, "the refresh token did not rotate");
    let (_, renewed_claims) = jwt_parts(user["id_token"].as_str().unwrap());
    assert_eq!(renewed_claims["sid"], claims["sid"], "the renewal started another session");
    let (status, body) = userinfo_from_page(&b, &second).await;
    assert_eq!(status, 200, "{body}");

    // Sign out: through Latch's end_session and straight back, signed out there too.
    let signout = b.find("#signout").await;
    b.click_and_wait(&signout).await;
    until_shown(&b, &spa, "/", "status", |s| s == "signed out").await;
    assert_eq!(b.path().await, "/", "the app did not finish the sign-out");
    assert_eq!(stored_user(&b).await, Value::Null, "the app kept the user");
    b.check("oidc-spa-signed-out-again").await;
    let (status, body) = userinfo_from_page(&b, &second).await;
    assert_eq!(status, 401, "the access token still works after signing out: {body}");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", &client_id)];
    let r = app.client.post(app.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the refresh token still works after signing out");
    b.goto("/account").await;
    assert_eq!(b.path().await, "/login?return_to=%2Faccount", "the browser is still signed in at Latch");

    b.finish().await;
    eprintln!("browser: the single-page app took {:?}", started.elapsed());
}
