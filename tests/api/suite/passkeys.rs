//! Passkeys (SPEC §9) over HTTP with a software authenticator (`webauthn-authenticator-rs`'s
//! soft passkey): registration, the second step with a passkey, `amr`, and the
//! refusals — another origin or relying party, a replayed or regressed assertion, another
//! user's credential, a used ceremony. Sign-in with a passkey alone (a discoverable
//! credential, which the soft passkey cannot make) is walked in Chromium
//! (`browser_mfa.rs`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::helpers::*;

const MFA_GRANT: &str = "urn:latch:grant-type:mfa";

/// A server whose public URL names a host (`localhost`), as passkeys need.
async fn passkey_app() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    spawn_app_with(|c| {
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.public_url = Some(format!("http://localhost:{port}"));
    })
    .await
}

fn origin(app: &TestApp) -> Url {
    Url::parse(app.config.public_url.as_deref().unwrap()).unwrap()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Registers a passkey named `name` on the soft authenticator; the answer.
async fn register(app: &TestApp, token: &str, authenticator: &mut SoftPasskey, name: &str) -> reqwest::Response {
    let confirm = json!({"password": PASSWORD});
    let r = call(app, Method::POST, "/users/me/mfa/passkeys/options", token, Some(confirm)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let begun: Value = r.json().await.unwrap();
    let options = &begun["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "preferred");
    let options: CreationChallengeResponse = serde_json::from_value(begun["options"].clone()).unwrap();
    let credential = authenticator.do_registration(origin(app), options).unwrap();
    let body = json!({"ceremony": begun["ceremony"], "name": name, "credential": credential});
    call(app, Method::POST, "/users/me/mfa/passkeys", token, Some(body)).await
}

/// A password grant that answers `mfa_required`: its token and passkey options.
async fn challenge(app: &TestApp, login: &str) -> (String, Value) {
    let r = app.token(login, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required");
    (body["mfa_token"].as_str().unwrap().to_owned(), body["webauthn"].clone())
}

/// The soft authenticator's answer to `options` from `origin`, as a JSON string.
fn assert_with(authenticator: &mut SoftPasskey, origin: Url, options: &Value) -> String {
    let options: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    serde_json::to_string(&authenticator.do_authentication(origin, options).unwrap()).unwrap()
}

async fn mfa_grant(app: &TestApp, token: &str, assertion: &str) -> reqwest::Response {
    app.post_form("/token", &[("grant_type", MFA_GRANT), ("mfa_token", token), ("webauthn", assertion)]).await
}

async fn assert_invalid_grant(r: reqwest::Response) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_passkey_is_registered_and_then_asked_for_after_the_password() {
    let app = passkey_app().await;
    app.create_user("alice").await;
    let token = app.login("alice").await.access_token;
    let mut key = SoftPasskey::new(true);
    let r = register(&app, &token, &mut key, "Laptop").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered: Value = r.json().await.unwrap();
    assert_eq!(registered["passkey"]["name"], "Laptop");
    assert_eq!(registered["recovery_codes"].as_array().unwrap().len(), 10, "the first factor brings the codes");
    app.email_arriving("alice@example.com", "passkey named").await;
    // A second passkey brings no new codes.
    let mut other = SoftPasskey::new(true);
    let r = register(&app, &token, &mut other, "Phone").await;
    assert!(r.json::<Value>().await.unwrap().get("recovery_codes").is_none());
    let factors: Value = call(&app, Method::GET, "/users/me/mfa", &token, None).await.json().await.unwrap();
    assert_eq!(factors["methods"], json!(["webauthn", "recovery_code"]));
    let names: Vec<&str> =
        factors["passkeys"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Laptop", "Phone"]);

    let (mfa_token, options) = challenge(&app, "alice").await;
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(options["publicKey"]["allowCredentials"].as_array().unwrap().len(), 2);
    let assertion = assert_with(&mut key, origin(&app), &options);
    let r = mfa_grant(&app, &mfa_token, &assertion).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    assert_eq!(jwt_parts(pair["access_token"].as_str().unwrap()).1["amr"], json!(["pwd", "hwk", "mfa"]));
    let factors: Value = call(&app, Method::GET, "/users/me/mfa", &token, None).await.json().await.unwrap();
    assert!(factors["passkeys"][0]["last_used_at"].is_string(), "{factors}");

    // Replayed on a new sign-in: the challenge is another.
    let (mfa_token, _) = challenge(&app, "alice").await;
    assert_invalid_grant(mfa_grant(&app, &mfa_token, &assertion).await).await;

    // The browser's second step takes the same answer.
    let r = app.post_json("/sessions", &json!({"username": "alice", "password": PASSWORD})).await;
    let problem = assert_problem(r, StatusCode::FORBIDDEN, "mfa_required").await;
    let assertion: Value = serde_json::from_str(&assert_with(&mut other, origin(&app), &problem["webauthn"])).unwrap();
    let r = app.post_json("/sessions/mfa", &json!({"mfa_token": problem["mfa_token"], "webauthn": assertion})).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn assertions_for_another_origin_relying_party_or_user_are_refused() {
    let app = passkey_app().await;
    app.create_user("bob").await;
    let token = app.login("bob").await.access_token;
    let mut key = SoftPasskey::new(true);
    assert_eq!(register(&app, &token, &mut key, "Key").await.status(), StatusCode::CREATED);

    // Another origin, under the same relying party id.
    let (mfa_token, options) = challenge(&app, "bob").await;
    // (The authenticator's client wants a secure context off `localhost` itself.)
    let evil = Url::parse("https://evil.localhost").unwrap();
    assert_invalid_grant(mfa_grant(&app, &mfa_token, &assert_with(&mut key, evil, &options)).await).await;
    // Another relying party id (signed over its hash).
    let (mfa_token, mut options) = challenge(&app, "bob").await;
    options["publicKey"]["rpId"] = "evil.example".into();
    let assertion = assert_with(&mut key, Url::parse("https://evil.example").unwrap(), &options);
    assert_invalid_grant(mfa_grant(&app, &mfa_token, &assertion).await).await;

    // Another user's passkey, answering bob's challenge.
    app.create_user("carol").await;
    let carol = app.login("carol").await.access_token;
    let mut carols = SoftPasskey::new(true);
    assert_eq!(register(&app, &carol, &mut carols, "Carol's").await.status(), StatusCode::CREATED);
    let (_, carol_options) = challenge(&app, "carol").await;
    let (mfa_token, mut options) = challenge(&app, "bob").await;
    options["publicKey"]["allowCredentials"] = carol_options["publicKey"]["allowCredentials"].clone();
    assert_invalid_grant(mfa_grant(&app, &mfa_token, &assert_with(&mut carols, origin(&app), &options)).await).await;

    // The refusals counted as failures.
    let out = app.cli().args(["audit", "--json", "--type", "second_factor"]).output().unwrap();
    let failures = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"failure\"")).count();
    assert_eq!(failures, 3, "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn passkeys_are_renamed_and_removed_with_a_confirmation_and_the_last_takes_the_codes() {
    let app = passkey_app().await;
    app.create_user("dave").await;
    let token = app.login("dave").await.access_token;
    let mut key = SoftPasskey::new(true);
    let registered: Value = register(&app, &token, &mut key, "Old name").await.json().await.unwrap();
    let id = registered["passkey"]["id"].as_str().unwrap();
    let path = format!("/users/me/mfa/passkeys/{id}");
    let r = call(&app, Method::PATCH, &path, &token, Some(json!({"name": "Yubikey"}))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["passkeys"][0]["name"], "Yubikey");
    let r = call(&app, Method::PATCH, &path, &token, Some(json!({"name": ""}))).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["name"]);
    let r = call(&app, Method::PATCH, &path, &token, Some(json!({"name": "x".repeat(65)}))).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // Another user cannot touch it.
    app.create_user("erin").await;
    let erin = app.login("erin").await.access_token;
    let r = call(&app, Method::DELETE, &path, &erin, Some(json!({"password": PASSWORD}))).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // Without a confirmation, or a wrong one: refused.
    let r = call(&app, Method::DELETE, &path, &token, Some(json!({}))).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = call(&app, Method::DELETE, &path, &token, Some(json!({"password": "wrong password!"}))).await;
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    challenge(&app, "dave").await;
    // With a recovery code: gone, and the other codes with it.
    let code = registered["recovery_codes"][0].as_str().unwrap();
    let r = call(&app, Method::DELETE, &path, &token, Some(json!({"recovery_code": code}))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let factors: Value = call(&app, Method::GET, "/users/me/mfa", &token, None).await.json().await.unwrap();
    assert_eq!(factors, json!({"totp": false, "passkeys": [], "recovery_codes_left": 0, "methods": []}));
    assert_eq!(app.token("dave", PASSWORD).await.status(), StatusCode::OK);
    app.email_arriving("dave@example.com", "was removed").await;
}

#[tokio::test]
async fn ceremonies_work_once_for_their_user() {
    let app = passkey_app().await;
    app.create_user("frank").await;
    let token = app.login("frank").await.access_token;
    // A passkey signs in on its own: a session alone cannot add one.
    let r = call(&app, Method::POST, "/users/me/mfa/passkeys/options", &token, Some(json!({}))).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let wrong = json!({"password": "wrong password!"});
    let r = call(&app, Method::POST, "/users/me/mfa/passkeys/options", &token, Some(wrong)).await;
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    let confirm = json!({"password": PASSWORD});
    let begun: Value =
        call(&app, Method::POST, "/users/me/mfa/passkeys/options", &token, Some(confirm)).await.json().await.unwrap();
    let options: CreationChallengeResponse = serde_json::from_value(begun["options"].clone()).unwrap();
    let credential = SoftPasskey::new(true).do_registration(origin(&app), options).unwrap();
    let body = json!({"ceremony": begun["ceremony"], "name": "Key", "credential": credential});
    // Not another user's.
    app.create_user("grace").await;
    let grace = app.login("grace").await.access_token;
    let r = call(&app, Method::POST, "/users/me/mfa/passkeys", &grace, Some(body.clone())).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["ceremony"]);
    // That attempt used it up.
    let r = call(&app, Method::POST, "/users/me/mfa/passkeys", &token, Some(body)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // A sign-in ceremony with an answer that is no passkey's: 401, and the ceremony is gone.
    let begun: Value = app.post_json("/passkeys/options", &json!({})).await.json().await.unwrap();
    assert!(begun["options"]["publicKey"]["challenge"].is_string());
    assert!(
        begun["options"]["publicKey"].get("allowCredentials").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty))
    );
    let bogus = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"clientDataJSON": "AAAA", "authenticatorData": "AAAA", "signature": "AAAA", "userHandle": "AAAA"}});
    let r = app.post_json("/sessions/passkey", &json!({"ceremony": begun["ceremony"], "credential": bogus})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app.post_json("/sessions/passkey", &json!({"ceremony": "nothing", "credential": "not json"})).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["credential"]);
    let r = app
        .post_form(
            "/token",
            &[("grant_type", "urn:latch:grant-type:passkey"), ("ceremony", "x"), ("credential", &bogus.to_string())],
        )
        .await;
    assert_invalid_grant(r).await;
}

#[tokio::test]
async fn passkeys_need_a_host_name() {
    let app = spawn_app().await;
    app.create_user("heidi").await;
    let token = app.login("heidi").await.access_token;
    let confirm = json!({"password": PASSWORD});
    let r = call(&app, Method::POST, "/users/me/mfa/passkeys/options", &token, Some(confirm)).await;
    let problem = assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    assert!(problem["detail"].as_str().unwrap().contains("IP address"), "{problem}");
    let r = app.post_json("/passkeys/options", &json!({})).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn an_answer_held_back_cannot_come_after_later_ones() {
    let app = passkey_app().await;
    app.create_user("ivan").await;
    let token = app.login("ivan").await.access_token;
    let mut key = SoftPasskey::new(true);
    assert_eq!(register(&app, &token, &mut key, "Key").await.status(), StatusCode::CREATED);
    // An answer made first and held back…
    let (held_token, options) = challenge(&app, "ivan").await;
    let held = assert_with(&mut key, origin(&app), &options);
    // …while later sign-ins move the counter on…
    for _ in 0..2 {
        let (mfa_token, options) = challenge(&app, "ivan").await;
        let r = mfa_grant(&app, &mfa_token, &assert_with(&mut key, origin(&app), &options)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // …is refused: its counter is behind the stored one.
    assert_invalid_grant(mfa_grant(&app, &held_token, &held).await).await;
}
