//! The HTTP API: each area has its own `router()`, merged here with the layers every
//! request passes through.

mod email;
pub mod extract;
mod health;
mod password_reset;
mod sessions;
pub mod state;
mod tokens;
pub mod users;
mod well_known;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

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
/// - a panic becomes a 500 problem instead of a dropped connection.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(tokens::router())
        .merge(sessions::router())
        .merge(email::router())
        .merge(password_reset::router())
        .merge(well_known::router())
        .merge(health::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
        .into_response()
}
