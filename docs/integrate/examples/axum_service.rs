//! An axum API that accepts Latch access tokens.
//!
//! LATCH_ISSUER=http://127.0.0.1:8080 cargo run -p latch-client --example axum_service
//!
//! LATCH_ISSUER is Latch's public URL, LATCH_AUDIENCE the audience its tokens carry
//! (Latch's public URL unless LATCH_TOKEN_AUDIENCE is set there), LISTEN the address
//! to serve on (default 127.0.0.1:3000; port 0 picks a free one). It prints
//! `listening on http://ADDRESS` once it serves.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use latch_client::Verifier;
use latch_client::axum::{AuthRejection, Authenticated, RequireScopes, Scopes};
use serde_json::{Value, json};

#[derive(Clone)]
struct AppState {
    verifier: Verifier,
}

// The extractors find the verifier in any state that can hand one out.
impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

/// Any valid token: 401 without one.
async fn me(user: Authenticated) -> Json<Value> {
    Json(json!({ "sub": user.sub, "scopes": user.scopes().collect::<Vec<_>>() }))
}

/// Scopes known at compile time: 403 unless the token grants `orders:read`.
struct OrdersRead;

impl Scopes for OrdersRead {
    const REQUIRED: &'static [&'static str] = &["orders:read"];
}

async fn orders(user: RequireScopes<OrdersRead>) -> Json<Value> {
    Json(json!({ "owner": user.sub, "orders": [] }))
}

/// Scopes decided at run time, and a role check.
async fn admin(user: Authenticated) -> Result<Json<Value>, AuthRejection> {
    user.require_scopes(&["openid"])?;
    Ok(Json(json!({ "admin": user.has_role("admin") })))
}

/// Signed-in or not: `Option` makes a missing token `None`; a bad one is still a 401.
async fn greeting(user: Option<Authenticated>) -> String {
    match user {
        Some(user) => format!("hello, {}", user.sub),
        None => "hello, stranger".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("LATCH_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let audience = std::env::var("LATCH_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    // Once, at start-up: reads discovery and the key set. Keys are cached; a rotated
    // key is fetched when the first token signed by it arrives.
    let verifier = Verifier::builder(&issuer).audience(audience).build().await?;

    let app = Router::new()
        .route("/me", get(me))
        .route("/orders", get(orders))
        .route("/admin", get(admin))
        .route("/", get(greeting))
        .with_state(AppState { verifier });

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
