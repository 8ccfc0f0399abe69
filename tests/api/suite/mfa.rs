//! Second factors (SPEC §9): TOTP enrolment and removal, recovery codes, the second step
//! on `/token` and `/sessions`, `amr`, the limits, the refusals, the admin's reset.
//! Codes are computed with `totp-lite`, an implementation independent of the server's.

use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::*;

const MFA_GRANT: &str = "urn:latch:grant-type:mfa";

/// An account with a confirmed authenticator app.
struct Enrolled {
    key: Vec<u8>,
    recovery_codes: Vec<String>,
    /// A token of the session that enrolled it.
    access_token: String,
}

/// The 6-digit code of `key` at the server's time plus `offset` steps.
fn code_at(app: &TestApp, key: &[u8], offset: i64) -> String {
    let now = app.clock.clock().now().unix() + offset * 30;
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, key, u64::try_from(now).unwrap())
}

/// Moves the server's clock to the next time step, so that a new code is due.
fn next_step(app: &TestApp) {
    app.clock.advance(Duration::from_secs(30));
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Registers `name` and enrols an authenticator app through the API.
async fn enrolled(app: &TestApp, name: &str) -> Enrolled {
    app.create_user(name).await;
    let access_token = app.login(name).await.access_token;
    let r = call(app, Method::POST, "/users/me/mfa/totp", &access_token, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let begun: Value = r.json().await.unwrap();
    let secret = begun["secret"].as_str().unwrap();
    let key = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
    assert_eq!(key.len(), 20, "160-bit keys");
    let uri = begun["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    let r = call(
        app,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &access_token,
        Some(json!({"code": code_at(app, &key, 0)})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let confirmed: Value = r.json().await.unwrap();
    let recovery_codes: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    Enrolled { key, recovery_codes, access_token }
}

/// A password grant that must answer `mfa_required`; its `mfa_token`.
async fn mfa_token(app: &TestApp, login: &str) -> String {
    let r = app.token(login, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required", "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn mfa_grant(app: &TestApp, token: &str, proof: (&str, &str)) -> reqwest::Response {
    app.post_form("/token", &[("grant_type", MFA_GRANT), ("mfa_token", token), proof]).await
}

async fn assert_invalid_grant(r: reqwest::Response) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn an_enrolled_app_makes_the_password_grant_ask_for_a_code() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let access = app.login("alice").await.access_token;
    let r = call(&app, Method::GET, "/users/me/mfa", &access, None).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0, "methods": []})
    );

    let begun: Value = call(&app, Method::POST, "/users/me/mfa/totp", &access, None).await.json().await.unwrap();
    let key = data_encoding::BASE32_NOPAD.decode(begun["secret"].as_str().unwrap().as_bytes()).unwrap();
    // Pending: the password alone still signs in.
    assert_eq!(app.token("alice", PASSWORD).await.status(), StatusCode::OK);
    let wrong = call(&app, Method::POST, "/users/me/mfa/totp/confirm", &access, Some(json!({"code": "000000"}))).await;
    let problem = assert_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["code"]);
    let code = code_at(&app, &key, 0);
    let r = call(&app, Method::POST, "/users/me/mfa/totp/confirm", &access, Some(json!({"code": code}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let codes: Value = r.json().await.unwrap();
    let codes = codes["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let r = call(&app, Method::GET, "/users/me/mfa", &access, None).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"totp": true, "passkeys": [], "recovery_codes_left": 10, "methods": ["totp", "recovery_code"]})
    );
    app.email_arriving("alice@example.com", "authenticator app was added").await;

    let r = app.token("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required");
    assert_eq!(body["mfa_methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none());
    let token = body["mfa_token"].as_str().unwrap();
    assert!(token.len() >= 43);

    // The code that confirmed the enrolment was used: it does not work again.
    assert_invalid_grant(mfa_grant(&app, token, ("otp", &code)).await).await;
    next_step(&app);
    let r = mfa_grant(&app, token, ("otp", &code_at(&app, &key, 0))).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let pair: Value = r.json().await.unwrap();
    let claims = jwt_parts(pair["access_token"].as_str().unwrap()).1;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(app.me_status(pair["access_token"].as_str().unwrap()).await, StatusCode::OK);
    // A refreshed token says the same.
    let refreshed: Value = app.refresh(pair["refresh_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(jwt_parts(refreshed["access_token"].as_str().unwrap()).1["amr"], json!(["pwd", "otp", "mfa"]));
    // The mfa_token is used up.
    next_step(&app);
    assert_invalid_grant(mfa_grant(&app, token, ("otp", &code_at(&app, &key, 0))).await).await;
    // A password-only token says so too.
    let bob = {
        app.create_user("bob").await;
        app.login("bob").await
    };
    assert_eq!(jwt_parts(&bob.access_token).1["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn codes_are_accepted_once_within_one_step_either_side() {
    let app = spawn_app().await;
    let e = enrolled(&app, "carol").await;
    // Two steps on, so that the step before the current one is not the enrolment's.
    next_step(&app);
    next_step(&app);
    for (offset, accepted) in [(-2, false), (2, false), (-1, true), (1, true)] {
        let token = mfa_token(&app, "carol").await;
        let r = mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, offset))).await;
        assert_eq!(r.status() == StatusCode::OK, accepted, "offset {offset}: {}", r.text().await.unwrap());
    }
    // The code of step +1 was accepted: the current one and older ones are spent.
    let token = mfa_token(&app, "carol").await;
    assert_invalid_grant(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await).await;
    next_step(&app);
    next_step(&app);
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_works_once_in_any_case_and_spacing() {
    let app = spawn_app().await;
    let e = enrolled(&app, "dave").await;
    let code = &e.recovery_codes[0];
    let typed = code.to_uppercase().replace('-', " ");
    let token = mfa_token(&app, "dave").await;
    let r = mfa_grant(&app, &token, ("recovery_code", &typed)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    assert_eq!(jwt_parts(pair["access_token"].as_str().unwrap()).1["amr"], json!(["pwd", "otp", "mfa"]));
    let token = mfa_token(&app, "dave").await;
    assert_invalid_grant(mfa_grant(&app, &token, ("recovery_code", code)).await).await;
    let r = call(&app, Method::GET, "/users/me/mfa", &e.access_token, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["recovery_codes_left"], 9);
    // Another account's code is nobody's here.
    let other = enrolled(&app, "erin").await;
    let token = mfa_token(&app, "dave").await;
    assert_invalid_grant(mfa_grant(&app, &token, ("recovery_code", &other.recovery_codes[0])).await).await;
}

#[tokio::test]
async fn an_mfa_token_lives_five_minutes_five_attempts_for_its_own_client() {
    let app = spawn_app().await;
    let e = enrolled(&app, "frank").await;
    next_step(&app);
    // Expired.
    let token = mfa_token(&app, "frank").await;
    app.clock.advance(Duration::from_secs(301));
    assert_invalid_grant(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await).await;
    // Out of attempts: the sixth try fails even with the right code.
    let token = mfa_token(&app, "frank").await;
    for _ in 0..5 {
        assert_invalid_grant(mfa_grant(&app, &token, ("otp", "000000")).await).await;
    }
    assert_invalid_grant(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await).await;
    // Bound to the client that asked, and to the token endpoint.
    let token = mfa_token(&app, "frank").await;
    let r = app
        .post_form(
            "/token",
            &[
                ("grant_type", MFA_GRANT),
                ("mfa_token", &token),
                ("otp", &code_at(&app, &e.key, 0)),
                ("client_id", "other"),
            ],
        )
        .await;
    assert_invalid_grant(r).await;
    let r = app.post_json("/sessions/mfa", &json!({"mfa_token": token, "otp": code_at(&app, &e.key, 0)})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    // Another account's token with this account's code.
    let other = enrolled(&app, "grace").await;
    next_step(&app);
    let token = mfa_token(&app, "grace").await;
    assert_invalid_grant(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await).await;
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &other.key, 0))).await.status(), StatusCode::OK);
    // Malformed second steps name their field.
    let r = app.post_form("/token", &[("grant_type", MFA_GRANT), ("otp", "123456")]).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("mfa_token"), "{body}");
    let r = app.post_json("/sessions/mfa", &json!({"mfa_token": "x"})).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["otp"]);
}

#[tokio::test]
async fn a_browser_sign_in_finishes_at_sessions_mfa() {
    let app = spawn_app().await;
    let e = enrolled(&app, "heidi").await;
    next_step(&app);
    let r = app.post_json("/sessions", &json!({"username": "heidi", "password": PASSWORD})).await;
    assert!(r.headers().get(SET_COOKIE).is_none(), "no cookie before the second step");
    let problem = assert_problem(r, StatusCode::FORBIDDEN, "mfa_required").await;
    assert_eq!(problem["mfa_methods"], json!(["totp", "recovery_code"]));
    let token = problem["mfa_token"].as_str().unwrap();
    let r = app.post_json("/sessions/mfa", &json!({"mfa_token": token, "otp": "123456"})).await;
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    let r = app.post_form("/sessions/mfa", &[("mfa_token", token), ("otp", &code_at(&app, &e.key, 0))]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<String> = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let session = cookies.iter().find(|c| c.starts_with("latch_session=")).unwrap();
    assert!(cookies.iter().any(|c| c.starts_with("latch_device=")), "{cookies:?}");
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "heidi");
    let r = app.client.get(app.url("/users/me")).header(COOKIE, session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn basic_credentials_are_not_enough_for_an_account_with_a_factor() {
    let app = spawn_app().await;
    enrolled(&app, "ivan").await;
    let r = app.client.get(app.url("/users/me")).basic_auth("ivan", Some(PASSWORD)).send().await.unwrap();
    let problem = assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(problem["detail"].as_str().unwrap().contains("second factor"), "{problem}");
    app.create_user("judy").await;
    let r = app.client.get(app.url("/users/me")).basic_auth("judy", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn removing_the_app_or_making_new_codes_needs_the_password_or_a_factor() {
    let app = spawn_app().await;
    let e = enrolled(&app, "kim").await;
    let token = &e.access_token;
    // Nothing, two things, a wrong password, a wrong code: refused, nothing changed.
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", token, Some(json!({}))).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let both = json!({"password": PASSWORD, "otp": "123456"});
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", token, Some(both)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", token, Some(json!({"password": "wrong password!"}))).await;
    let problem = assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    assert_eq!(problem_fields(&problem), ["password"]);
    let r = call(&app, Method::POST, "/users/me/mfa/recovery-codes", token, Some(json!({"otp": "000000"}))).await;
    let problem = assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    assert_eq!(problem_fields(&problem), ["otp"]);
    let r = call(&app, Method::POST, "/users/me/mfa/recovery-codes", token, None).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    mfa_token(&app, "kim").await;

    // New codes, confirmed by an app code: the old codes die.
    next_step(&app);
    let confirm = json!({"otp": code_at(&app, &e.key, 0)});
    let r = call(&app, Method::POST, "/users/me/mfa/recovery-codes", token, Some(confirm)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: Value = r.json().await.unwrap();
    let fresh = fresh["recovery_codes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    let t = mfa_token(&app, "kim").await;
    assert_invalid_grant(mfa_grant(&app, &t, ("recovery_code", &e.recovery_codes[1])).await).await;
    app.email_arriving("kim@example.com", "new recovery codes").await;

    // Removal, confirmed by a recovery code: the password alone signs in again.
    let confirm = json!({"recovery_code": fresh[0]});
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", token, Some(confirm)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.token("kim", PASSWORD).await.status(), StatusCode::OK);
    let r = call(&app, Method::GET, "/users/me/mfa", token, None).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0, "methods": []})
    );
    app.email_arriving("kim@example.com", "authenticator app was removed").await;
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", token, Some(json!({"password": PASSWORD}))).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // A second enrolment works as the first.
    let begun = call(&app, Method::POST, "/users/me/mfa/totp", token, None).await;
    assert_eq!(begun.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_second_enrolment_is_refused_while_an_app_is_enrolled() {
    let app = spawn_app().await;
    let e = enrolled(&app, "leo").await;
    let r = call(&app, Method::POST, "/users/me/mfa/totp", &e.access_token, None).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    let r =
        call(&app, Method::POST, "/users/me/mfa/totp/confirm", &e.access_token, Some(json!({"code": "123456"}))).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    // The enrolled app still works.
    next_step(&app);
    let token = mfa_token(&app, "leo").await;
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await.status(), StatusCode::OK);
}

/// A server that refuses an account on one address after three failures.
async fn three_failures_allowed() -> TestApp {
    spawn_app_with(|c| {
        c.limits.login_account_ip.max = 3;
        c.limits.login_account.max = 100;
        c.limits.login_ip.max = 100;
    })
    .await
}

#[tokio::test]
async fn wrong_codes_count_against_the_login_limits() {
    let app = three_failures_allowed().await;
    let e = enrolled(&app, "mallory").await;
    next_step(&app);
    for _ in 0..3 {
        let token = mfa_token(&app, "mallory").await;
        assert_invalid_grant(mfa_grant(&app, &token, ("otp", "000000")).await).await;
    }
    // Over the limit: neither the password nor a good code is checked.
    let r = app.token("mallory", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let events: Value = {
        let admin = {
            app.create_user("root").await;
            app.run_cli(&["user", "roles", "root", "--add", "admin"]);
            app.login("root").await
        };
        call(&app, Method::GET, "/admin/audit?type=second_factor", &admin.access_token, None)
            .await
            .json()
            .await
            .unwrap()
    };
    let failures = events["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "failure").count();
    assert_eq!(failures, 3, "{events}");
    let _ = e;
}

#[tokio::test]
async fn a_completed_second_step_clears_the_counters_a_password_alone_does_not() {
    let app = three_failures_allowed().await;
    let e = enrolled(&app, "nina").await;
    next_step(&app);
    // Two failures, then right passwords: still two.
    for _ in 0..2 {
        let token = mfa_token(&app, "nina").await;
        assert_invalid_grant(mfa_grant(&app, &token, ("otp", "000000")).await).await;
    }
    let token = mfa_token(&app, "nina").await;
    // A completed step clears them: three more failures are allowed before a refusal.
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await.status(), StatusCode::OK);
    for _ in 0..2 {
        let token = mfa_token(&app, "nina").await;
        assert_invalid_grant(mfa_grant(&app, &token, ("otp", "000000")).await).await;
    }
    mfa_token(&app, "nina").await;
}

#[tokio::test]
async fn an_admin_and_the_operator_can_remove_a_users_factors() {
    let app = spawn_app().await;
    enrolled(&app, "oscar").await;
    enrolled(&app, "peggy").await;
    app.create_user("root").await;
    app.run_cli(&["user", "roles", "root", "--add", "admin"]);
    let admin = app.login("root").await.access_token;
    let oscar = app.run_cli(&["user", "show", "oscar", "--json"]);
    let path = format!("/admin/users/{}/mfa", oscar["id"].as_str().unwrap());
    let r = call(&app, Method::GET, &path, &admin, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["totp"], true);
    // Not for anyone else.
    app.create_user("sam").await;
    let sam = app.login("sam").await.access_token;
    assert_eq!(call(&app, Method::DELETE, &path, &sam, None).await.status(), StatusCode::FORBIDDEN);
    let r = call(&app, Method::DELETE, &path, &admin, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.token("oscar", PASSWORD).await.status(), StatusCode::OK);
    app.email_arriving("oscar@example.com", "removed your second factors").await;
    let r = call(&app, Method::DELETE, "/admin/users/00000000-0000-0000-0000-000000000000/mfa", &admin, None).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;

    let out = app.cli().args(["user", "reset-mfa", "peggy"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed"));
    assert_eq!(app.token("peggy", PASSWORD).await.status(), StatusCode::OK);
    let out = app.cli().args(["user", "reset-mfa", "peggy"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("no second factor"));
    let events: Value =
        call(&app, Method::GET, "/admin/audit?type=factor_removed", &admin, None).await.json().await.unwrap();
    // Newest first: the second reset found nothing, and says so.
    let removed: Vec<&Value> = events["events"].as_array().unwrap().iter().map(|e| &e["details"]["removed"]).collect();
    assert_eq!(removed, [&json!(false), &json!(true), &json!(true)], "{events}");
}

#[tokio::test]
async fn totp_keys_are_sealed_with_the_key_encryption_key() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latch.kek");
    std::fs::write(&file, format!("{}\n", base64::engine::general_purpose::STANDARD.encode([9u8; 32]))).unwrap();
    let kek = latch::auth::kek::KeyEncryptionKey::from_file(&file).unwrap();
    let app = spawn_app_with(|c| c.key_encryption_key = Some(kek)).await;
    let e = enrolled(&app, "quinn").await;
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    let user = latch::store::find_user(&*store, "quinn").await.unwrap().unwrap();
    let stored = store.totp(user.id).await.unwrap().unwrap();
    assert!(stored.kek_id.is_some());
    assert!(!stored.secret.windows(8).any(|w| e.key.windows(8).any(|k| k == w)), "the key is not stored in clear");
    next_step(&app);
    let token = mfa_token(&app, "quinn").await;
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn factor_changes_are_in_the_users_own_events() {
    let app = spawn_app().await;
    let e = enrolled(&app, "rupert").await;
    let r = call(&app, Method::GET, "/users/me/events", &e.access_token, None).await;
    let events: Value = r.json().await.unwrap();
    let types: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"factor_added"), "{types:?}");
}

#[tokio::test]
async fn codes_from_many_addresses_meet_the_accounts_own_limit() {
    let app = spawn_app_with(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let e = enrolled(&app, "trent").await;
    next_step(&app);
    let from = |i: u32| format!("203.0.113.{i}");
    let step = |token: String, code: String, ip: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/token"))
                .header("x-forwarded-for", ip)
                .form(&[("grant_type", MFA_GRANT), ("mfa_token", &token), ("otp", &code)])
                .send()
                .await
                .unwrap()
        }
    };
    let token_from = |ip: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/token"))
                .header("x-forwarded-for", ip)
                .form(&[("grant_type", "password"), ("username", "trent"), ("password", PASSWORD)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            r.json::<Value>().await.unwrap()["mfa_token"].as_str().unwrap().to_owned()
        }
    };
    // Ten wrong codes, each from an address of its own: each address is far from its
    // own limit, the account is at its.
    for i in 1..=10 {
        let token = token_from(from(i)).await;
        assert_invalid_grant(step(token, "000000".into(), from(i)).await).await;
    }
    let token = token_from(from(11)).await;
    let r = step(token, code_at(&app, &e.key, 0), from(11)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "even the right code waits");
    // The owner's own address, known from the sign-in that enrolled the app, is not held up.
    let token = mfa_token(&app, "trent").await;
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &e.key, 0))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_new_password_voids_the_sign_ins_waiting_for_a_code() {
    let app = spawn_app().await;
    let e = enrolled(&app, "uma").await;
    let waiting = mfa_token(&app, "uma").await;
    let change = json!({"current_password": PASSWORD, "new_password": "another-Passw0rd-9"});
    let r = call(&app, Method::POST, "/users/me/password", &e.access_token, Some(change)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_invalid_grant(mfa_grant(&app, &waiting, ("recovery_code", &e.recovery_codes[0])).await).await;
    // The code was not spent by the refusal.
    let r = app.token("uma", "another-Passw0rd-9").await;
    let token = r.json::<Value>().await.unwrap()["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(mfa_grant(&app, &token, ("recovery_code", &e.recovery_codes[0])).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_browser_client_id_is_no_token_clients() {
    let app = spawn_app().await;
    let e = enrolled(&app, "victor").await;
    let r = app.post_json("/sessions", &json!({"username": "victor", "password": PASSWORD})).await;
    let token = r.json::<Value>().await.unwrap()["mfa_token"].as_str().unwrap().to_owned();
    let r = app
        .post_form(
            "/token",
            &[
                ("grant_type", MFA_GRANT),
                ("mfa_token", &token),
                ("recovery_code", &e.recovery_codes[0]),
                ("client_id", "browser"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = app
        .post_form(
            "/token",
            &[("grant_type", "password"), ("username", "victor"), ("password", PASSWORD), ("client_id", "browser")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_confirming_password_is_checked_exactly_as_typed() {
    let app = spawn_app().await;
    let password = " Spacey-Pass-7781 ";
    let r = app.register("wendy", "wendy@example.com", password).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let access =
        app.token("wendy", password).await.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let begun: Value = call(&app, Method::POST, "/users/me/mfa/totp", &access, None).await.json().await.unwrap();
    let key = data_encoding::BASE32_NOPAD.decode(begun["secret"].as_str().unwrap().as_bytes()).unwrap();
    let code = code_at(&app, &key, 0);
    // Spaced as apps show it.
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let r = call(&app, Method::POST, "/users/me/mfa/totp/confirm", &access, Some(json!({"code": spaced}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&app, Method::DELETE, "/users/me/mfa/totp", &access, Some(json!({"password": password}))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_admins_reset_is_recorded_also_when_there_was_nothing_to_remove() {
    let app = spawn_app().await;
    app.create_user("xena").await;
    app.create_user("root").await;
    app.run_cli(&["user", "roles", "root", "--add", "admin"]);
    let admin = app.login("root").await.access_token;
    let xena = app.run_cli(&["user", "show", "xena", "--json"]);
    let path = format!("/admin/users/{}/mfa", xena["id"].as_str().unwrap());
    assert_eq!(call(&app, Method::DELETE, &path, &admin, None).await.status(), StatusCode::NO_CONTENT);
    let events: Value =
        call(&app, Method::GET, "/admin/audit?type=factor_removed", &admin, None).await.json().await.unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["removed"], false);
    assert_eq!(events[0]["actor"]["type"], "admin");
}
