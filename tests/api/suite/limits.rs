//! Abuse limits: failed logins, registrations and reset requests.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn the_eleventh_failure_is_429_without_checking_the_password() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    for _ in 0..10 {
        assert_eq!(app.token("alice", "wrong password!").await.status(), StatusCode::BAD_REQUEST);
    }
    let r = app.token("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limited");
    // Sessions and Basic count against the same limits.
    let r = app.post_form("/sessions", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another account is not locked.
    app.create_user("bob").await;
    assert_eq!(app.token("bob", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_success_clears_the_account_and_address_counter() {
    let app = spawn_app().await;
    app.create_user("carol").await;
    for _ in 0..9 {
        app.token("carol", "wrong password!").await;
    }
    assert_eq!(app.token("carol@example.com", PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..9 {
        assert_eq!(app.token("carol", "wrong password!").await.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.token("carol", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn limits_are_configurable_and_can_be_turned_off() {
    let app = spawn_app_with(|c| c.limits.enabled = false).await;
    app.create_user("dave").await;
    for _ in 0..12 {
        app.token("dave", "wrong password!").await;
    }
    assert_eq!(app.token("dave", PASSWORD).await.status(), StatusCode::OK);

    let app = spawn_app_with(|c| c.limits.login_ip.max = 3).await;
    app.create_user("erin").await;
    app.create_user("fred").await;
    app.token("erin", "wrong password!").await;
    app.token("fred", "wrong password!").await;
    app.token("nobody", "wrong password!").await;
    let r = app.token("fred", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "per-address limit across accounts");
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(|c| c.limits.register_ip.max = 2).await;
    app.create_user("gail").await;
    app.create_user("hal").await;
    let r = app.register("ivan", "ivan@example.com", PASSWORD).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn reset_requests_are_limited_per_email_even_when_unknown() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let r = app.post_json("/password-reset", &json!({"email": "ghost@example.com"})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = app.post_json("/password-reset", &json!({"email": "ghost@example.com"})).await;
    let retry = r.headers().get("retry-after").cloned();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(retry.is_some());
    let r = app.post_json("/password-reset", &json!({"email": "other@example.com"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn reset_requests_are_limited_per_address() {
    let app = spawn_app().await;
    for i in 0..10 {
        let r = app.post_json("/password-reset", &json!({"email": format!("p{i}@example.com")})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = app.post_json("/password-reset", &json!({"email": "p99@example.com"})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn the_client_address_comes_from_trusted_proxies_only() {
    use latch::http::extract::client_ip;
    use reqwest::header::{HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7, 203.0.113.5, 10.0.0.2"));
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let peer = "10.0.0.1".parse().unwrap();
    assert_eq!(client_ip(peer, &headers, &trusted).to_string(), "203.0.113.5", "right-most untrusted hop");
    let stranger = "192.0.2.1".parse().unwrap();
    assert_eq!(
        client_ip(stranger, &headers, &trusted).to_string(),
        "192.0.2.1",
        "untrusted peers are believed only themselves"
    );
    assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted).to_string(), "10.0.0.1");
    // An IPv4 peer seen through a dual-stack socket is still the trusted proxy.
    let mapped = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(client_ip(mapped, &headers, &trusted).to_string(), "203.0.113.5");
    assert_eq!(client_ip("::ffff:192.0.2.1".parse().unwrap(), &headers, &trusted).to_string(), "192.0.2.1");
    // A hop that is no address ends the walk: nothing to its left is believed.
    let mut forged = HeaderMap::new();
    forged.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7, garbage"));
    assert_eq!(client_ip(peer, &forged, &trusted).to_string(), "10.0.0.1");
    forged.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7, unknown, 10.0.0.3"));
    assert_eq!(client_ip(peer, &forged, &trusted).to_string(), "10.0.0.3");
}
