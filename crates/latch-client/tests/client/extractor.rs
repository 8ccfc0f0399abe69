//! The axum extractors in a real axum server on a free port, with tokens from a real
//! `latch serve`: 401 without or with a bad token, 200 with a good one, 403 without the
//! required scope, 503 when the key set cannot be fetched.

use axum::Router;
use axum::routing::get;
use latch_client::Verifier;
use latch_client::axum::{Authenticated, RequireScopes, Scopes};
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;

use crate::support::*;

struct Profile;
impl Scopes for Profile {
    const REQUIRED: &'static [&'static str] = &["openid", "profile"];
}

struct OrdersRead;
impl Scopes for OrdersRead {
    const REQUIRED: &'static [&'static str] = &["orders:read"];
}

async fn me(user: Authenticated) -> String {
    user.sub.to_string()
}

async fn maybe(user: Option<Authenticated>) -> String {
    user.map_or_else(|| "anonymous".to_owned(), |u| u.sub.to_string())
}

async fn profile(user: RequireScopes<Profile>) -> String {
    user.sub.to_string()
}

async fn orders(user: RequireScopes<OrdersRead>) -> String {
    user.sub.to_string()
}

async fn runtime_scope(user: Authenticated) -> Result<String, latch_client::axum::AuthRejection> {
    user.require_scopes(&["email", "orders:write"])?;
    Ok(user.sub.to_string())
}

/// Serves the routes above with `verifier` as state; returns the base URL.
async fn serve(verifier: Verifier) -> String {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/profile", get(profile))
        .route("/orders", get(orders))
        .route("/runtime", get(runtime_scope))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: String,
}

async fn get_with(url: &str, authorization: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    Answer { status, challenge, body: r.text().await.unwrap() }
}

fn problem_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn requests_are_authenticated_by_latch_tokens() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let base = serve(Verifier::discover(&latch.base).await.unwrap()).await;
    let bearer = format!("Bearer {}", user.access_token);

    let ok = get_with(&format!("{base}/me"), Some(&bearer)).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, user.id.to_string().as_str()));
    let ok = get_with(&format!("{base}/profile"), Some(&bearer)).await;
    assert_eq!((ok.status, ok.body), (200, user.id.to_string()));

    // No credentials: a bare challenge (RFC 6750 §3.1: no error code).
    let none = get_with(&format!("{base}/me"), None).await;
    assert_eq!((none.status, none.challenge.as_deref()), (401, Some("Bearer")));
    assert_eq!(problem_code(&none.body), "unauthorized");
    let basic = get_with(&format!("{base}/me"), Some("Basic YWxpY2U6cGFzc3dvcmQ=")).await;
    assert_eq!((basic.status, basic.challenge.as_deref()), (401, Some("Bearer")));

    // A bad token: invalid_token.
    for bad in ["Bearer not.a.token", &format!("Bearer {}x", user.access_token)] {
        let refused = get_with(&format!("{base}/me"), Some(bad)).await;
        assert_eq!(refused.status, 401, "{bad}");
        let challenge = refused.challenge.unwrap();
        assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "{challenge}");
        assert_eq!(problem_code(&refused.body), "invalid_token");
    }

    // Optional authentication: absent is fine, invalid is not.
    assert_eq!(get_with(&format!("{base}/maybe"), None).await.body, "anonymous");
    assert_eq!(get_with(&format!("{base}/maybe"), Some(&bearer)).await.body, user.id.to_string());
    assert_eq!(get_with(&format!("{base}/maybe"), Some("Bearer junk")).await.status, 401);
}

#[tokio::test]
async fn a_missing_scope_is_forbidden() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let base = serve(Verifier::discover(&latch.base).await.unwrap()).await;
    let bearer = format!("Bearer {}", user.access_token);

    for (path, scope) in [("/orders", "orders:read"), ("/runtime", "email orders:write")] {
        let forbidden = get_with(&format!("{base}{path}"), Some(&bearer)).await;
        assert_eq!(forbidden.status, 403, "{path}");
        assert_eq!(
            forbidden.challenge.as_deref(),
            Some(format!(r#"Bearer error="insufficient_scope", scope="{scope}""#).as_str())
        );
        assert_eq!(problem_code(&forbidden.body), "insufficient_scope");
    }
    // Without a token it is still 401, not 403.
    assert_eq!(get_with(&format!("{base}/orders"), None).await.status, 401);
}

#[tokio::test]
async fn an_unreachable_key_set_answers_503() {
    let key = LocalKey::generate();
    let local = LocalIssuer::start(&[&key]).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let verifier = Verifier::builder(&local.issuer)
        .min_refetch_interval(std::time::Duration::ZERO)
        .http_client(http)
        .build()
        .await
        .unwrap();
    let base = serve(verifier).await;
    let known = format!("Bearer {}", key.sign(&claims(&local.issuer)));
    local.stop();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let unknown = format!("Bearer {}", LocalKey::generate().sign(&claims(&local.issuer)));
    let answer = get_with(&format!("{base}/me"), Some(&unknown)).await;
    assert_eq!((answer.status, answer.challenge), (503, None));
    assert_eq!(problem_code(&answer.body), "service_unavailable");
    assert_eq!(get_with(&format!("{base}/me"), Some(&known)).await.status, 200);
}
