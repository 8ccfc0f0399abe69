//! The abuse rules of SPEC §2 and the hardening rules of §3 that hold against hostile
//! clients: limits under concurrency, password checks behind the limits, no lockout of
//! the owner, one-time tokens that die when they should, client addresses behind
//! proxies, login CSRF, enumeration side channels, and verified-email enforcement.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use super::helpers::*;

/// Trusts the loopback peer's `X-Forwarded-For`, so that a test can speak from many
/// addresses.
fn behind_proxy(c: &mut latch::config::Config) {
    c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

async fn token_from(app: &TestApp, ip: &str, login: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/token"))
        .header("x-forwarded-for", ip)
        .form(&[("grant_type", "password"), ("username", login), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn simultaneous_guesses_get_no_more_password_checks_than_the_limit() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let guesses = (0..60).map(|i| {
        let app = &app;
        async move { app.token("alice", &format!("wrong password {i}")).await.status() }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(checked, 10, "{statuses:?}");
    assert_eq!(refused, 50, "{statuses:?}");
}

#[tokio::test]
async fn passwords_that_confirm_changes_count_against_the_login_limits() {
    let app = spawn_app().await;
    app.create_user("bert").await;
    let t = app.login("bert").await;
    let wrong = [
        ("PATCH", "/users/me", json!({"email": "bert2@example.com", "current_password": "not it at all"})),
        ("POST", "/users/me/password", json!({"current_password": "not it at all", "new_password": "a brand new one"})),
        ("DELETE", "/users/me", json!({"password": "not it at all"})),
    ];
    for i in 0..10 {
        let (method, path, body) = &wrong[i % 3];
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&t.access_token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    }
    // The eleventh check is refused without looking at the password, right or not…
    let r = app
        .client
        .delete(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // …and logins share the counters.
    assert_eq!(app.token("bert", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK, "the account still exists");
}

#[tokio::test]
async fn a_refused_new_password_does_not_confirm_the_current_one() {
    let app = spawn_app().await;
    app.create_user("cleo").await;
    let t = app.login("cleo").await;
    let change = |current: &str| {
        app.client
            .post(app.url("/users/me/password"))
            .bearer_auth(&t.access_token)
            .json(&json!({"current_password": current, "new_password": ""}))
            .send()
    };
    let right = change(PASSWORD).await.unwrap();
    let wrong = change("a wrong guess here").await.unwrap();
    assert_eq!(right.status(), wrong.status());
    let (right, wrong) = (right.json::<Value>().await.unwrap(), wrong.json::<Value>().await.unwrap());
    assert_eq!(right, wrong);
    assert_eq!(problem_fields(&right), ["new_password"]);
}

#[tokio::test]
async fn others_failures_do_not_lock_out_a_proven_address_or_browser() {
    let app = spawn_app_with(|c| {
        behind_proxy(c);
        c.limits.login_account.max = 12;
        c.limits.login_account_ip.max = 4;
    })
    .await;
    app.create_user("dora").await;
    // The owner signs in from home, and in a browser elsewhere (which gets a device cookie).
    assert_eq!(token_from(&app, "198.51.100.1", "dora", PASSWORD).await.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/sessions"))
        .header("x-forwarded-for", "198.51.100.2")
        .form(&[("username", "dora"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let device = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("latch_device="))
        .expect("a device cookie");
    // Attackers from three addresses exhaust the account's limit.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..4 {
            assert_eq!(token_from(&app, ip, "dora", "a wrong guess!").await.status(), StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(token_from(&app, "203.0.113.4", "dora", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // The owner's known address still logs in…
    assert_eq!(token_from(&app, "198.51.100.1", "dora", PASSWORD).await.status(), StatusCode::OK);
    // …and so does the browser with its device cookie, from an address never seen.
    let r = app
        .client
        .post(app.url("/sessions"))
        .header("x-forwarded-for", "192.0.2.77")
        .header(COOKIE, &device)
        .form(&[("username", "dora"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A forged device cookie proves nothing.
    let r = app
        .client
        .post(app.url("/sessions"))
        .header("x-forwarded-for", "192.0.2.78")
        .header(COOKIE, "latch_device=forged")
        .form(&[("username", "dora"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn limit_state_does_not_link_a_username_to_its_email() {
    let app = spawn_app().await;
    app.create_user("emma").await;
    for _ in 0..10 {
        app.token("emma", "a wrong guess!").await;
    }
    assert_eq!(app.token("emma", "a wrong guess!").await.status(), StatusCode::TOO_MANY_REQUESTS);
    // The email is judged by its own counters, as any other identifier would be.
    assert_eq!(app.token("emma@example.com", "a wrong guess!").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn verification_emails_are_limited_per_account() {
    let app = spawn_app().await;
    app.create_user("finn").await;
    let t = app.login("finn").await;
    for _ in 0..3 {
        let r = app.client.post(app.url("/email-verification")).bearer_auth(&t.access_token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = app.client.post(app.url("/email-verification")).bearer_auth(&t.access_token).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.emails_to("finn@example.com").len(), 4, "registration's email and three more");
}

async fn reset_token(app: &TestApp, email: &str) -> String {
    let before = app.emails_to(email).len();
    let r = app.post_json("/password-reset", &json!({"email": email})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mails = app.emails_arriving(email, before + 1).await;
    assert_eq!(mails.len(), before + 1);
    token_in(mails.last().unwrap())
}

async fn confirm_reset(app: &TestApp, token: &str) -> StatusCode {
    let body = json!({"token": token, "new_password": "another fine password"});
    app.post_json("/password-reset/confirm", &body).await.status()
}

#[tokio::test]
async fn a_reset_token_dies_with_a_password_change_an_email_change_or_a_newer_token() {
    let app = spawn_app().await;
    app.create_user("gus").await;
    let t = app.login("gus").await;

    // A password change.
    let stale = reset_token(&app, "gus@example.com").await;
    let r = app
        .client
        .post(app.url("/users/me/password"))
        .bearer_auth(&t.access_token)
        .json(&json!({"current_password": PASSWORD, "new_password": "the second password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(confirm_reset(&app, &stale).await, StatusCode::BAD_REQUEST);
    assert!(app.emails_to("gus@example.com").iter().any(|m| m.contains("Your password was changed")));

    // A newer token.
    let older = reset_token(&app, "gus@example.com").await;
    let newer = reset_token(&app, "gus@example.com").await;
    assert_eq!(confirm_reset(&app, &older).await, StatusCode::BAD_REQUEST);

    // An email change.
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .json(&json!({"email": "gus.new@example.com", "current_password": "the second password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(confirm_reset(&app, &newer).await, StatusCode::BAD_REQUEST);

    // A fresh token for the new address still works.
    let fresh = reset_token(&app, "gus.new@example.com").await;
    assert_eq!(confirm_reset(&app, &fresh).await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn renaming_is_limited_like_registration() {
    let app = spawn_app_with(|c| c.limits.register_ip.max = 3).await;
    app.create_user("hugo").await;
    let t = app.login("hugo").await;
    for name in ["taken1", "taken2"] {
        app.create_user(name).await;
    }
    let rename = |name: &'static str| {
        app.client.patch(app.url("/users/me")).bearer_auth(&t.access_token).json(&json!({"username": name})).send()
    };
    assert_eq!(rename("taken1").await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(rename("taken2").await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(rename("free1").await.unwrap().status(), StatusCode::OK);
    let r = rename("taken1").await.unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // A change of case only is no probe.
    assert_eq!(rename("FREE1").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn login_csrf_is_refused() {
    let app = spawn_app().await;
    app.create_user("iris").await;
    let login = |headers: &[(&'static str, &'static str)]| {
        let mut req = app.client.post(app.url("/sessions")).form(&[("username", "iris"), ("password", PASSWORD)]);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let r = login(&[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")]).await.unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = login(&[("origin", "https://evil.example")]).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(login(&[("sec-fetch-site", "same-origin")]).await.unwrap().status(), StatusCode::OK);
    assert_eq!(login(&[]).await.unwrap().status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/sessions"))
        .header(ORIGIN, &app.base)
        .form(&[("username", "iris"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn same_site_means_same_scheme_and_registrable_domain() {
    let app = spawn_app_with(|c| c.public_url = Some("https://auth.example.co.uk".into())).await;
    app.create_user("jack").await;
    let login = |origin: &'static str| {
        app.client
            .post(app.url("/sessions"))
            .header(ORIGIN, origin)
            .form(&[("username", "jack"), ("password", PASSWORD)])
            .send()
    };
    assert_eq!(login("https://evil.co.uk").await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(login("http://app.example.co.uk").await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(login("https://app.example.co.uk").await.unwrap().status(), StatusCode::OK);
    assert_eq!(login("https://AUTH.example.co.uk").await.unwrap().status(), StatusCode::OK);
}

/// The fastest of `n` interleaved runs of each of two requests.
async fn fastest_pair<A, B, FA, FB>(n: usize, mut a: A, mut b: B) -> (Duration, Duration)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: std::future::Future<Output = StatusCode>,
    FB: std::future::Future<Output = StatusCode>,
{
    let (mut fa, mut fb) = (Duration::MAX, Duration::MAX);
    for _ in 0..n {
        let start = Instant::now();
        a().await;
        fa = fa.min(start.elapsed());
        let start = Instant::now();
        b().await;
        fb = fb.min(start.elapsed());
    }
    (fa, fb)
}

#[tokio::test]
async fn a_reset_request_takes_as_long_for_an_unknown_address_as_for_a_known_one() {
    let app = spawn_app_with(|c| c.limits.enabled = false).await;
    app.create_user("kate").await;
    let reset = |email: &'static str| {
        let app = &app;
        move || async move { app.post_json("/password-reset", &json!({"email": email})).await.status() }
    };
    let (known, unknown) = fastest_pair(8, reset("kate@example.com"), reset("nobody@example.com")).await;
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!((0.8..1.25).contains(&ratio), "known {known:?}, unknown {unknown:?}");
}

#[tokio::test]
async fn a_wrong_password_for_a_legacy_hash_takes_as_long_as_for_an_unknown_user() {
    let app = spawn_app_with(|c| c.limits.enabled = false).await;
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    let imported = latch::store::ImportedUser {
        id: latch::domain::UserId::generate(),
        username: "leon".into(),
        email: "leon@example.com".into(),
        email_verified: true,
        // passlib pbkdf2-sha256 of PASSWORD, 1000 rounds: far cheaper than Argon2id.
        password_hash: "$pbkdf2-sha256$1000$GwOgNEbIee/9v9f6f4/Rug$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k".into(),
    };
    let now = latch::clock::Clock::system().now();
    let event = latch::store::AuditEvent::new(latch::store::EventType::UsersImported, latch::store::Actor::System, now);
    store.import_users(&[imported], now, &|_| {}, &event).await.unwrap();
    let (legacy, unknown) = fastest_pair(
        5,
        || async { app.token("leon", "a wrong guess!").await.status() },
        || async { app.token("nobody-at-all", "a wrong guess!").await.status() },
    )
    .await;
    assert!(legacy.as_secs_f64() >= 0.8 * unknown.as_secs_f64(), "legacy {legacy:?}, unknown {unknown:?}");
    // The right password still works (and upgrades the hash).
    assert_eq!(app.token("leon", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unverified_account_can_only_reach_its_account_and_verification() {
    let app = spawn_app_with(|c| c.require_verified_email = true).await;
    app.create_user("mona").await;
    let token = token_in(&app.email_about("mona@example.com", "verify-email?token="));
    app.post_json("/email-verification/confirm", &json!({"token": token})).await;
    let t = app.login("mona").await;
    // A new address makes the account unverified again.
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .json(&json!({"email": "mona.new@example.com", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["email_verified"], false);

    let r = app.refresh(&t.refresh_token).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "email_not_verified");
    let r = app.client.get(app.url("/users/me/sessions")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "email_not_verified").await;
    let basic = |path: &str| app.client.get(app.url(path)).basic_auth("mona", Some(PASSWORD)).send();
    assert_problem(basic("/users/me/sessions").await.unwrap(), StatusCode::FORBIDDEN, "email_not_verified").await;
    // What an unverified account may still do.
    assert_eq!(basic("/users/me").await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
    let r = app.client.post(app.url("/email-verification")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Once verified, the refresh token that was refused works.
    let token = token_in(app.emails_to("mona.new@example.com").last().unwrap());
    app.post_json("/email-verification/confirm", &json!({"token": token})).await;
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn per_address_limits_group_ipv6_by_64() {
    let app = spawn_app_with(|c| {
        behind_proxy(c);
        c.limits.login_ip.max = 3;
    })
    .await;
    for (i, ip) in ["2001:db8:7:7::1", "2001:db8:7:7:ffff::2", "2001:db8:7:7:1:2:3:4"].iter().enumerate() {
        let r = token_from(&app, ip, &format!("ghost{i}"), "a wrong guess!").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = token_from(&app, "2001:db8:7:7::99", "ghost9", "a wrong guess!").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the same /64");
    let r = token_from(&app, "2001:db8:7:8::1", "ghost9", "a wrong guess!").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "another /64");
}

#[tokio::test]
async fn a_long_multibyte_login_is_a_plain_failure() {
    let app = spawn_app().await;
    let login = format!("{}é", "a".repeat(319));
    assert_eq!(app.token(&login, "a wrong guess!").await.status(), StatusCode::BAD_REQUEST);
    let r = app.post_form("/sessions", &[("username", &login), ("password", "a wrong guess!")]).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app.client.get(app.url("/users/me")).basic_auth(&login, Some("a wrong guess!")).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn a_refused_bearer_token_gets_the_invalid_token_challenge() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/users/me")).bearer_auth("not.a.token").send().await.unwrap();
    let challenges: Vec<_> = r.headers().get_all(WWW_AUTHENTICATE).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(challenges.iter().any(|c| c.starts_with("Bearer error=\"invalid_token\"")), "{challenges:?}");
    // Without a credential there is no error in the challenge (RFC 6750, section 3.1).
    let r = app.client.get(app.url("/users/me")).send().await.unwrap();
    let challenges: Vec<_> = r.headers().get_all(WWW_AUTHENTICATE).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(challenges.contains(&"Bearer"), "{challenges:?}");
}

#[tokio::test]
async fn non_ascii_emails_log_in_in_any_case() {
    let app = spawn_app().await;
    let r = app.register("noel", "Émile.Ñoño@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], "émile.ñoño@example.com");
    assert_eq!(app.token("ÉMILE.ÑOÑO@EXAMPLE.COM", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.token("émile.ñoño@example.com", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn limit_keys_never_hold_what_the_caller_typed_and_expired_rows_are_deleted() {
    let app = spawn_app().await;
    app.token("attacker-chosen-key", "a wrong guess!").await;
    app.post_json("/password-reset", &json!({"email": "chosen@example.com"})).await;
    let keys: Vec<String> = match &app.config.database_url {
        latch::config::DatabaseUrl::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query_scalar("SELECT key FROM rate_limits").fetch_all(&pool).await.unwrap()
        }
        latch::config::DatabaseUrl::Postgres(url) => {
            use secrecy::ExposeSecret as _;
            let pool = sqlx::PgPool::connect(url.expose_secret()).await.unwrap();
            sqlx::query_scalar("SELECT key FROM rate_limits").fetch_all(&pool).await.unwrap()
        }
    };
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("attacker") && !k.contains("chosen")), "{keys:?}");
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    let now = latch::clock::Clock::system().now();
    // A day on, every counter's window has passed; the reset links of an hour, too.
    let later = now + time::Duration::days(1);
    let deleted = store.delete_expired_limits(later).await.unwrap();
    assert!(deleted >= 4, "{deleted}");
    assert_eq!(store.delete_expired_limits(later).await.unwrap(), 0);
    app.create_user("olaf").await;
    app.post_json("/password-reset", &json!({"email": "olaf@example.com"})).await;
    assert!(store.delete_expired_one_time_tokens(later).await.unwrap() >= 1);
    assert_eq!(store.delete_expired_one_time_tokens(now).await.unwrap(), 0, "a fresh verification link stays");
}

#[tokio::test]
async fn logins_refused_while_others_are_in_flight_neither_count_nor_wait_long() {
    let app = spawn_app().await;
    app.create_user("pia").await;
    // Three waves of logins with the right password, more at once than the limit.
    for _ in 0..3 {
        let logins = (0..14).map(|_| async {
            let r = app.token("pia", PASSWORD).await;
            let retry: Option<u64> = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
            (r.status(), retry)
        });
        for (status, retry) in futures::future::join_all(logins).await {
            match status {
                StatusCode::OK => {}
                StatusCode::TOO_MANY_REQUESTS => assert_eq!(retry, Some(1), "no failure was settled"),
                other => panic!("{other}"),
            }
        }
    }
    // Nothing failed, so nothing stays counted: the account and the address are free.
    for _ in 0..10 {
        assert_eq!(app.token("pia", "a wrong guess!").await.status(), StatusCode::BAD_REQUEST);
    }
    let r = app.token("pia", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the eleventh is refused after ten failures");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 800, "a limit reached by failures lasts its window: {retry}");
}

#[tokio::test]
async fn email_changes_are_limited_like_verification_emails() {
    let app = spawn_app().await;
    app.create_user("quin").await;
    app.create_user("taken").await;
    let t = app.login("quin").await;
    let change = |email: &'static str| {
        app.client
            .patch(app.url("/users/me"))
            .bearer_auth(&t.access_token)
            .json(&json!({"email": email, "current_password": PASSWORD}))
            .send()
    };
    assert_eq!(change("victim@example.org").await.unwrap().status(), StatusCode::OK);
    assert_eq!(change("quin@example.com").await.unwrap().status(), StatusCode::OK);
    assert_eq!(change("victim@example.org").await.unwrap().status(), StatusCode::OK);
    let r = change("quin@example.com").await.unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.emails_to("victim@example.org").len(), 3, "two verifications and a notice");
}

#[tokio::test]
async fn an_unverified_account_cannot_rename_itself_when_verification_is_required() {
    let app = spawn_app_with(|c| c.require_verified_email = true).await;
    app.create_user("rhea").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .basic_auth("rhea", Some(PASSWORD))
        .json(&json!({"username": "rhea2"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "email_not_verified").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .basic_auth("rhea", Some(PASSWORD))
        .json(&json!({"email": "rhea.fixed@example.com", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "correcting the address is allowed");
    let r =
        app.client.delete(app.url("/users/me")).basic_auth("rhea", Some(PASSWORD)).json(&json!({"password": PASSWORD}));
    assert_problem(r.send().await.unwrap(), StatusCode::FORBIDDEN, "email_not_verified").await;
}

#[tokio::test]
async fn an_unknown_sec_fetch_site_leaves_the_decision_to_the_origin() {
    let app = spawn_app().await;
    app.create_user("sven").await;
    let r = app
        .client
        .post(app.url("/sessions"))
        .header("sec-fetch-site", "bogus")
        .header(ORIGIN, "https://evil.example")
        .form(&[("username", "sven"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
}
