//! Browser sessions: the cookie, its attributes, logout, listing and ending sessions,
//! expiry, and the cross-site refusal.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use super::helpers::*;

/// The `name=value` part of the session cookie set by a response.
fn session_cookie(r: &reqwest::Response) -> (String, String) {
    let full = r.headers().get(SET_COOKIE).expect("a Set-Cookie header").to_str().unwrap().to_owned();
    let pair = full.split(';').next().unwrap().to_owned();
    (pair, full)
}

async fn browser_login(app: &TestApp, login: &str) -> String {
    let r = app.post_form("/sessions", &[("username", login), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    session_cookie(&r).0
}

#[tokio::test]
async fn logging_in_sets_an_http_only_lax_cookie() {
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let r = app.post_json("/sessions", &json!({"email": "alice@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (pair, full) = session_cookie(&r);
    assert!(pair.starts_with("latch_session=") && pair.len() > 30, "{full}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(full.contains(attribute), "{full}");
    }
    assert!(!full.contains("Secure"), "plain http: {full}");
    assert_eq!(r.json::<Value>().await.unwrap(), user);
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &pair).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "alice");
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure_and_host_prefixed() {
    let app = spawn_app_with(|c| c.public_url = Some("https://auth.example.com".into())).await;
    app.create_user("bob").await;
    let r = app.post_form("/sessions", &[("username", "bob"), ("password", PASSWORD)]).await;
    let (pair, full) = session_cookie(&r);
    assert!(pair.starts_with("__Host-latch_session="), "{full}");
    assert!(full.contains("Secure") && full.contains("Path=/") && !full.contains("Domain"), "{full}");
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &pair).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_failed_browser_login_says_nothing_about_which_part_was_wrong() {
    let app = spawn_app().await;
    app.create_user("carol").await;
    let wrong = app.post_form("/sessions", &[("username", "carol"), ("password", "wrong password!")]).await;
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let a = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app.post_form("/sessions", &[("username", "nobody"), ("password", "wrong password!")]).await;
    let b = assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn deleting_the_session_clears_the_cookie_and_ends_it() {
    let app = spawn_app().await;
    app.create_user("dave").await;
    let cookie = browser_login(&app, "dave").await;
    let r = app.client.delete(app.url("/sessions")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("latch_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.client.delete(app.url("/sessions")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_with_the_cookie_ends_the_browser_session() {
    let app = spawn_app().await;
    app.create_user("erin").await;
    let cookie = browser_login(&app, "erin").await;
    let r = app.client.post(app.url("/logout")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cross_site_state_changes_with_the_cookie_are_refused() {
    let app = spawn_app().await;
    app.create_user("fay").await;
    let cookie = browser_login(&app, "fay").await;
    let patch = |headers: &[(&str, &str)]| {
        let mut req = app.client.patch(app.url("/users/me")).header(COOKIE, &cookie).json(&json!({"username": "fay2"}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let r = patch(&[("origin", "https://evil.example")]).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = patch(&[("sec-fetch-site", "cross-site")]).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.client.post(app.url("/logout")).header(COOKIE, &cookie).header(ORIGIN, "null").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Reading is fine from anywhere; writing from our own origin is fine.
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &cookie).header(ORIGIN, "https://evil.example");
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);
    let r = patch(&[("origin", &app.base), ("sec-fetch-site", "same-origin")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bearer tokens are not sent by browsers on their own: no origin check.
    let t = app.login("fay@example.com").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .header(ORIGIN, "https://evil.example")
        .json(&json!({"username": "fay3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn users_list_and_end_their_own_sessions() {
    let app = spawn_app().await;
    app.create_user("gail").await;
    app.create_user("hal").await;
    let cookie = browser_login(&app, "gail").await;
    let phone = app.login("gail").await;
    let other_user = app.login("hal").await;
    let r = app
        .client
        .get(app.url("/users/me/sessions"))
        .header(COOKIE, &cookie)
        .header("user-agent", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sessions: Vec<Value> = r.json().await.unwrap();
    assert_eq!(sessions.len(), 2);
    for s in &sessions {
        for key in ["id", "created_at", "last_seen_at", "user_agent", "ip", "current"] {
            assert!(s.get(key).is_some(), "{s}");
        }
        assert_eq!(s["ip"], "127.0.0.1");
    }
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let phone_sid = jwt_parts(&phone.access_token).1["sid"].as_str().unwrap().to_owned();
    assert!(sessions.iter().any(|s| s["id"] == phone_sid.as_str() && s["current"] == false));

    let hal_sid = jwt_parts(&other_user.access_token).1["sid"].as_str().unwrap().to_owned();
    let r = app
        .client
        .delete(app.url(&format!("/users/me/sessions/{hal_sid}")))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.me_status(&other_user.access_token).await, StatusCode::OK);

    let r = app
        .client
        .delete(app.url(&format!("/users/me/sessions/{phone_sid}")))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&phone.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&phone.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    let r = app.client.get(app.url("/users/me/sessions")).bearer_auth(&other_user.access_token).send().await.unwrap();
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sessions_end_at_their_lifetime() {
    // Access tokens outlive the session here, so that only the session's end refuses them.
    let app = spawn_app_with(|c| {
        c.refresh_token_ttl = Duration::from_secs(3600);
        c.access_token_ttl = Duration::from_secs(7200);
        c.session_idle_timeout = Duration::from_secs(7200);
    })
    .await;
    app.create_user("ian").await;
    let cookie = browser_login(&app, "ian").await;
    let t = app.login("ian").await;
    app.clock.advance(Duration::from_secs(3540));
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK, "a minute before the end");
    app.clock.advance(Duration::from_secs(61));
    let r = app.client.get(app.url("/users/me")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sessions_end_when_idle() {
    // Timestamps are whole seconds: margins of a second either way.
    let app = spawn_app_with(|c| {
        c.session_idle_timeout = Duration::from_secs(1800);
        c.access_token_ttl = Duration::from_secs(7200);
    })
    .await;
    app.create_user("jan").await;
    let t = app.login("jan").await;
    let kept = app.login("jan").await;
    app.clock.advance(Duration::from_secs(1200));
    let kept = app.refresh(&kept.refresh_token).await.json::<Tokens>().await.unwrap();
    app.clock.advance(Duration::from_secs(602));
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED, "idle for 30 min 2 s");
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.me_status(&kept.access_token).await, StatusCode::OK, "used 10 min ago");
}

#[tokio::test]
async fn requests_keep_a_session_alive_under_the_shortest_idle_timeout() {
    // Every use counts even when the timeout is shorter than the once-a-minute
    // recording of `last_seen_at`, and whole-second times never end a session early.
    let app = spawn_app_with(|c| c.session_idle_timeout = std::time::Duration::from_secs(1)).await;
    app.create_user("kim").await;
    let used = app.login("kim").await;
    let unused = app.login("kim").await;
    // Each use is recorded in the background; the test waits for it, as the half
    // second between requests would have in real time.
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    let sid = latch::domain::SessionId::parse(jwt_parts(&used.access_token).1["sid"].as_str().unwrap()).unwrap();
    for _ in 0..4 {
        app.clock.advance(Duration::from_millis(500));
        let at = app.clock.clock().now();
        assert_eq!(app.me_status(&used.access_token).await, StatusCode::OK);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.session_with_user(sid).await.unwrap().unwrap().0.last_seen_at < at {
            assert!(std::time::Instant::now() < deadline, "the use at {at} was never recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    app.clock.advance(Duration::from_millis(500));
    assert_eq!(app.me_status(&unused.access_token).await, StatusCode::UNAUTHORIZED, "idle for 2.5 s");
    assert_eq!(app.refresh(&unused.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.refresh(&used.refresh_token).await.status(), StatusCode::OK, "used 0.5 s ago");
}
