//! The HTTP API: each area has its own `router()`, merged here with the layers every
//! request passes through.

mod email;
pub mod extract;
mod health;
pub mod metrics;
mod openapi;
mod password_reset;
mod sessions;
pub mod state;
mod tokens;
pub mod users;
mod well_known;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::ApiError;
use state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API with its layers, outermost last:
/// - body limit: 413 past 64 KiB (read by our extractors, which answer a problem);
/// - `Cache-Control: no-store` unless a handler chose otherwise (responses carry
///   personal data and tokens);
/// - `X-Content-Type-Options: nosniff`;
/// - tracing of every request (method, path, status, latency; never bodies or headers);
/// - a panic becomes a 500 problem instead of a dropped connection;
/// - metrics: every request counted and timed by method, route template and status
///   (outermost, so that the 500 of a panic counts too).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(tokens::router())
        .merge(sessions::router())
        .merge(email::router())
        .merge(password_reset::router())
        .merge(well_known::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router(&state.settings))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        // 5xx answers are logged where they arise (ApiError); an overloaded hasher's
        // 503s are expected under load and must not flood the log.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
        .into_response()
}
