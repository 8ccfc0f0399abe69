//! How the API answers malformed requests: never a 5xx, always a problem document.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in ["{", "{\"username\": }", "[1,2", "nul", "{} trailing"] {
        let r = app
            .client
            .post(app.url("/users"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let r =
        app.client.post(app.url("/users")).header("content-type", "application/json").body("[]").send().await.unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn other_content_types_are_415() {
    let app = spawn_app().await;
    let r = app.client.post(app.url("/users")).header("content-type", "text/plain").body("hello").send().await.unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    app.create_user("alice").await;
    let t = app.login("alice").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&t.access_token)
        .form(&[("username", "alicia")])
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = spawn_app().await;
    let big = json!({"username": "x".repeat(70 * 1024), "email": "a@b.co", "password": PASSWORD});
    let r = app.post_json("/users", &big).await;
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let r = app.post_form("/token", &[("username", &"x".repeat(70 * 1024)), ("password", "x")]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/no/such/thing")).send().await.unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.client.put(app.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Ids that are no UUID, or not even UTF-8, name no resource.
    for id in ["not-a-uuid", "%FF", "%C3%28"] {
        let r = app.client.get(app.url(&format!("/users/{id}"))).send().await.unwrap();
        assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let t = app.create_user("paula").await;
    let t = app.login(t["username"].as_str().unwrap()).await;
    let r = app.client.delete(app.url("/users/me/sessions/%FF")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn hostile_inputs_never_get_a_5xx() {
    let app = spawn_app().await;
    app.create_user("bob").await;
    let t = app.login("bob").await;
    let bodies = [
        json!({"username": "\u{0}", "email": "\u{0}@x.com", "password": "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}"}),
        json!({"username": null, "email": [], "password": {}}),
        json!({"username": "a".repeat(10_000), "email": "é@é.é", "password": "🔑".repeat(300)}),
        json!({"username": "'; DROP TABLE users; --", "email": "x@x.x", "password": "' OR 1=1 --xx"}),
    ];
    for body in &bodies {
        for path in ["/users", "/token", "/revoke"] {
            let r = app.post_json(path, body).await;
            assert!(r.status().is_client_error(), "{path} {body}: {}", r.status());
        }
        let r = app.client.patch(app.url("/users/me")).bearer_auth(&t.access_token).json(body).send().await.unwrap();
        assert!(r.status().is_client_error(), "{body}: {}", r.status());
    }
    for header in ["Bearer", "Bearer ", "Basic", "Basic Og==", "Basic OjpaOg==", "\u{7f}"] {
        let r = app.client.get(app.url("/users/me")).header("authorization", header).send().await;
        if let Ok(r) = r {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        }
    }
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
}
