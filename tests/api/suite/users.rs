//! Registration and account management.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn registration_answers_201_with_the_private_view_and_location() {
    let app = spawn_app().await;
    let r = app.register("Alice", "Alice@Example.COM", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", body["id"].as_str().unwrap()));
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["email"], "alice@example.com", "emails are stored lowercased");
    assert_eq!(body["email_verified"], false);
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(body["roles"], serde_json::json!([]), "no roles until given");
    assert_eq!(keys.len(), 7, "{body}");
}

#[tokio::test]
async fn registration_accepts_a_form() {
    let app = spawn_app().await;
    let r = app.post_form("/users", &[("username", "bob"), ("email", "bob@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.login("bob").await;
}

#[tokio::test]
async fn registration_sends_a_verification_email_with_the_token_link() {
    let app = spawn_app().await;
    app.create_user("carol").await;
    let mails = app.emails_to("carol@example.com");
    assert_eq!(mails.len(), 1);
    let link = format!("{}/verify-email?token=", app.base);
    assert!(mails[0].contains(&link), "{}", mails[0]);
    assert_eq!(token_in(&mails[0]).len(), 43);
}

#[tokio::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    app.create_user("dave").await;
    let r = app.register("DAVE", "other@example.com", PASSWORD).await;
    let p = assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(problem_fields(&p), ["username"]);
    let r = app.register("dave2", "DAVE@example.com", PASSWORD).await;
    let p = assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(problem_fields(&p), ["email"]);
}

#[tokio::test]
async fn twenty_simultaneous_registrations_of_one_email_make_one_account() {
    let app = spawn_app().await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move { app.register(&format!("racer{i}"), "race@example.com", PASSWORD).await.status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 19, "{statuses:?}");
}

#[tokio::test]
async fn invalid_fields_are_all_named_in_one_422() {
    let app = spawn_app().await;
    let r = app.register("a b", "not-an-email", "short").await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["username", "email", "password"]);
    let r = app.post_json("/users", &json!({})).await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["username", "email", "password"]);
}

#[tokio::test]
async fn field_rules_are_enforced() {
    let app = spawn_app().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ab", "ab@example.com", PASSWORD, "username"),
        (&"x".repeat(33), "x@example.com", PASSWORD, "username"),
        ("bad!name", "bad@example.com", PASSWORD, "username"),
        ("emailless", "emailless@", PASSWORD, "email"),
        ("longmail", &format!("{}@example.com", "a".repeat(250)), PASSWORD, "email"),
        ("weak", "weak@example.com", "password1", "password"),
        ("weak2", "weak2@example.com", "12345678", "password"),
        ("samename", "samename@example.com", "SameName", "password"),
        ("sameemail", "sameemail@example.com", "SameEmail@Example.com", "password"),
        ("toolong", "toolong@example.com", &"y".repeat(257), "password"),
    ];
    for (username, email, password, field) in cases {
        let r = app.register(username, email, password).await;
        let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&p), [*field], "{username} {email}");
    }
    // Unicode is allowed and verified exactly as received.
    let r = app.register("unicode", "unicode@example.com", "pässwörd-ñandú-☃").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.token("unicode", "pässwörd-ñandú-☃").await.status(), StatusCode::OK);
    assert_eq!(app.token("unicode", "passwörd-ñandú-☃").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_minimum_password_length_is_configurable() {
    let app = spawn_app_with(|c| c.password_min_length = 12).await;
    let r = app.register("erin", "erin@example.com", "elevenchars").await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(app.register("erin", "erin@example.com", "twelve chars").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_and_mistyped_fields_are_named() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/users",
            &json!({"username": "frank", "email": "f@example.com", "password": PASSWORD, "admin": true}),
        )
        .await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["admin"]);
    let r = app.post_json("/users", &json!({"username": 42, "email": "f@example.com", "password": PASSWORD})).await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["username"]);
}

#[tokio::test]
async fn me_shows_the_private_view_to_its_owner_only() {
    let app = spawn_app().await;
    let user = app.create_user("gina").await;
    let tokens = app.login("gina@example.com").await;
    let r = app.me(&tokens.access_token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), user);
    let r = app.client.get(app.url("/users/me")).send().await.unwrap();
    let values: Vec<String> =
        r.headers().get_all("www-authenticate").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(values.iter().any(|v| v.starts_with("Bearer")), "{values:?}");
    assert!(values.iter().any(|v| v.starts_with("Basic realm=\"latch\"")), "{values:?}");
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn anyone_sees_the_public_view() {
    let app = spawn_app().await;
    let user = app.create_user("hank").await;
    let r = app.client.get(app.url(&format!("/users/{}", user["id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"id": user["id"], "username": "hank", "created_at": user["created_at"]}));
    let r = app.client.get(app.url("/users/0190b0a8-1111-7000-8000-000000000000")).send().await.unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.client.get(app.url("/users/not-a-uuid")).send().await.unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn renaming_needs_no_password_but_keeps_names_unique() {
    let app = spawn_app().await;
    app.create_user("ivan").await;
    app.create_user("judy").await;
    let t = app.login("ivan").await;
    let patch = |body: Value| app.client.patch(app.url("/users/me")).bearer_auth(&t.access_token).json(&body).send();
    let r = patch(json!({"username": "Ivan.the-2nd"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "Ivan.the-2nd");
    let r = patch(json!({"username": "JUDY"})).await.unwrap();
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    let r = patch(json!({"username": "x"})).await.unwrap();
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["username"]);
    assert_eq!(app.token("ivan.THE-2nd", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn changing_the_email_needs_the_password_and_reverifies() {
    let app = spawn_app().await;
    app.create_user("kate").await;
    app.create_user("leo").await;
    let t = app.login("kate").await;
    let patch = |body: Value| app.client.patch(app.url("/users/me")).bearer_auth(&t.access_token).json(&body).send();
    let r = patch(json!({"email": "kate@new.example"})).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    let r = patch(json!({"email": "kate@new.example", "current_password": "wrong password!"})).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    let r = patch(json!({"email": "LEO@example.com", "current_password": PASSWORD})).await.unwrap();
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    let r = patch(json!({"email": "Kate@New.example", "current_password": PASSWORD})).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email"], "kate@new.example");
    assert_eq!(body["email_verified"], false);
    let to_new = app.emails_to("kate@new.example");
    assert_eq!(to_new.len(), 1);
    assert!(to_new[0].contains("token="));
    assert_eq!(app.emails_to("kate@example.com").len(), 2, "verification at sign-up, then the change notice");
    let notice = app.email_about("kate@example.com", "changed to kate@new.example");
    assert!(!notice.contains("token="));
    assert_eq!(app.token("kate@new.example", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.token("kate@example.com", PASSWORD).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = spawn_app().await;
    app.create_user("mia").await;
    let current = app.login("mia").await;
    let other = app.login("mia").await;
    let change = |body: Value| {
        app.client.post(app.url("/users/me/password")).bearer_auth(&current.access_token).json(&body).send()
    };
    let r =
        change(json!({"current_password": "not the password", "new_password": "a brand new secret"})).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    let r = change(json!({"current_password": PASSWORD, "new_password": "password"})).await.unwrap();
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["new_password"]);
    assert_eq!(app.me_status(&other.access_token).await, StatusCode::OK, "nothing changed yet");

    let r = change(json!({"current_password": PASSWORD, "new_password": "a brand new secret"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&current.access_token).await, StatusCode::OK);
    assert_eq!(app.me_status(&other.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&other.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.refresh(&current.refresh_token).await.status(), StatusCode::OK);
    assert_eq!(app.token("mia", PASSWORD).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token("mia", "a brand new secret").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_ends_everything() {
    let app = spawn_app().await;
    let user = app.create_user("nina").await;
    let t = app.login("nina").await;
    let delete = |body: Value| app.client.delete(app.url("/users/me")).bearer_auth(&t.access_token).json(&body).send();
    let r = delete(json!({"password": "nope nope nope"})).await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    let r = app.client.delete(app.url("/users/me")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "invalid_credentials").await;
    assert_eq!(delete(json!({"password": PASSWORD})).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.token("nina", PASSWORD).await.status(), StatusCode::BAD_REQUEST);
    let r = app.client.get(app.url(&format!("/users/{}", user["id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.register("nina", "nina@example.com", PASSWORD).await.status(), StatusCode::CREATED);
}
