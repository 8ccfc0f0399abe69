//! Email verification and password reset, read from the file mailer's `.eml` files.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn the_emailed_token_verifies_the_address_once() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let token = token_in(&app.emails_to("alice@example.com")[0]);
    let r = app.post_json("/email-verification/confirm", &json!({"token": token})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["username"], "alice");
    let r = app.post_json("/email-verification/confirm", &json!({"token": token})).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let t = app.login("alice").await;
    assert_eq!(app.me(&t.access_token).await.json::<Value>().await.unwrap()["email_verified"], true);
}

#[tokio::test]
async fn bad_verification_tokens_are_400() {
    let app = spawn_app().await;
    let r = app.post_json("/email-verification/confirm", &json!({"token": "made-up"})).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let r = app.post_json("/email-verification/confirm", &json!({})).await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["token"]);
}

#[tokio::test]
async fn resending_sends_a_new_working_link() {
    let app = spawn_app().await;
    app.create_user("bob").await;
    let t = app.login("bob").await;
    let r = app.client.post(app.url("/email-verification")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mails = app.emails_to("bob@example.com");
    assert_eq!(mails.len(), 2);
    let r = app.post_json("/email-verification/confirm", &json!({"token": token_in(&mails[1])})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.post(app.url("/email-verification")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_verifies_only_the_address_it_was_sent_to() {
    let app = spawn_app().await;
    app.create_user("carol").await;
    let old_token = token_in(&app.emails_to("carol@example.com")[0]);
    let t = app.login("carol").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .json(&json!({"email": "carol@new.example", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.post_json("/email-verification/confirm", &json!({"token": old_token})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let new_token = token_in(&app.emails_to("carol@new.example")[0]);
    let r = app.post_json("/email-verification/confirm", &json!({"token": new_token})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], "carol@new.example");
}

#[tokio::test]
async fn verification_links_follow_the_template() {
    let app = spawn_app_with(|c| {
        c.public_url = Some("https://auth.example.com".into());
        c.email_verify_url = Some("https://app.example.com/confirm#t={token}".into());
    })
    .await;
    app.client
        .post(app.url("/users"))
        .header("host", "evil.example")
        .json(&json!({"username": "dora", "email": "dora@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let mail = &app.emails_to("dora@example.com")[0];
    assert!(mail.contains("https://app.example.com/confirm#t="), "{mail}");
    assert!(!mail.contains("evil.example"));
}

#[tokio::test]
async fn required_verification_keeps_unverified_accounts_out_until_confirmed() {
    let app = spawn_app_with(|c| c.require_verified_email = true).await;
    app.create_user("emil").await;
    let r = app.token("emil", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "email_not_verified");
    let r = app.post_form("/sessions", &[("username", "emil"), ("password", PASSWORD)]).await;
    assert!(r.headers().get("set-cookie").is_none());
    assert_problem(r, StatusCode::FORBIDDEN, "email_not_verified").await;
    // A wrong password still gets the generic answer.
    assert_eq!(app.token("emil", "wrong password!").await.status(), StatusCode::BAD_REQUEST);
    let token = token_in(&app.emails_to("emil@example.com")[0]);
    app.post_json("/email-verification/confirm", &json!({"token": token})).await;
    assert_eq!(app.token("emil", PASSWORD).await.status(), StatusCode::OK);
}

async fn request_reset(app: &TestApp, email: &str) -> (StatusCode, Value) {
    let r = app.post_json("/password-reset", &json!({"email": email})).await;
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn password_reset_answers_the_same_for_unknown_addresses() {
    let app = spawn_app().await;
    app.create_user("fred").await;
    let known = request_reset(&app, "fred@example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);
    assert_eq!(app.emails_to("nobody@example.com").len(), 0);
    assert_eq!(app.emails_arriving("fred@example.com", 2).await.len(), 2);
    app.email_about("fred@example.com", &format!("{}/reset-password?token=", app.base));
}

#[tokio::test]
async fn a_reset_sets_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    app.create_user("gina").await;
    let t = app.login("gina").await;
    request_reset(&app, "GINA@example.com").await;
    let token = token_in(&app.email_arriving("gina@example.com", "reset-password?token=").await);

    let r = app.post_json("/password-reset/confirm", &json!({"token": token, "new_password": "password"})).await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["new_password"]);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK, "a 422 changes nothing");

    let r =
        app.post_json("/password-reset/confirm", &json!({"token": token, "new_password": "fresh start 2026"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token("gina", PASSWORD).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token("gina", "fresh start 2026").await.status(), StatusCode::OK);

    let r =
        app.post_json("/password-reset/confirm", &json!({"token": token, "new_password": "another one 2026"})).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let r = app
        .post_json("/password-reset/confirm", &json!({"token": "made-up", "new_password": "another one 2026"}))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn reset_links_follow_the_template() {
    let app =
        spawn_app_with(|c| c.password_reset_url = Some("https://app.example.com/reset?token={token}&x=1".into())).await;
    app.create_user("hank").await;
    request_reset(&app, "hank@example.com").await;
    app.email_arriving("hank@example.com", "https://app.example.com/reset?token=").await;
}

#[tokio::test]
async fn emailed_links_expire_a_reset_link_after_an_hour_a_verification_link_after_a_day() {
    let app = spawn_app().await;
    app.create_user("otto").await;
    app.create_user("ulla").await;
    let verify = |to: &str| token_in(&app.emails_to(to)[0]);
    let (otto_verify, ulla_verify) = (verify("otto@example.com"), verify("ulla@example.com"));
    for to in ["otto@example.com", "ulla@example.com"] {
        app.post_json("/password-reset", &json!({"email": to})).await;
    }
    let otto_reset = token_in(&app.email_arriving("otto@example.com", "reset-password").await);
    let ulla_reset = token_in(&app.email_arriving("ulla@example.com", "reset-password").await);
    let confirm_reset = |token: String| {
        let app = &app;
        async move {
            let body = json!({"token": token, "new_password": "another fine password"});
            app.post_json("/password-reset/confirm", &body).await
        }
    };
    let confirm_email = |token: String| {
        let app = &app;
        async move { app.post_json("/email-verification/confirm", &json!({"token": token})).await }
    };

    app.clock.advance(Duration::from_secs(3540));
    assert_eq!(confirm_reset(otto_reset).await.status(), StatusCode::NO_CONTENT, "a minute before the hour");
    app.clock.advance(Duration::from_secs(61));
    assert_problem(confirm_reset(ulla_reset).await, StatusCode::BAD_REQUEST, "bad_request").await;

    app.clock.advance(Duration::from_secs(23 * 3600 - 60));
    assert_eq!(confirm_email(otto_verify).await.status(), StatusCode::OK, "a minute before the day");
    app.clock.advance(Duration::from_secs(61));
    assert_problem(confirm_email(ulla_verify).await, StatusCode::BAD_REQUEST, "bad_request").await;
}
