//! The HTTP API: each area has its own `router()`, merged here with the layers every
//! request passes through. Connections themselves (timeouts, limits, shutdown) are
//! `crate::server`'s.

mod email;
pub mod extract;
mod health;
mod keep_alive;
pub mod metrics;
mod openapi;
mod password_reset;
mod sessions;
pub mod state;
mod tokens;
pub mod users;
mod well_known;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::{ApiError, ErrorCode};
use state::{AppState, Settings};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `Strict-Transport-Security` when the public URL is https: two years (the
/// preload list's minimum is one) for this host and its subdomains, which share the
/// site of the session cookie.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// `Content-Security-Policy` of API responses: JSON is never a document that may load,
/// run or be framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The whole API with its layers, innermost first:
/// - body limit: 413 past 64 KiB (read by our extractors, which answer a problem);
/// - request timeout: a request still unanswered after `LATCH_REQUEST_TIMEOUT` gets a
///   503 problem (its handler is dropped);
/// - tracing of every request (method, path, status, latency; never bodies or headers);
/// - a panic becomes a 500 problem instead of a dropped connection;
/// - response headers, on every answer including those of the two layers above:
///   `Cache-Control: no-store` unless a handler chose otherwise (responses carry
///   personal data and tokens), `X-Content-Type-Options: nosniff`,
///   `Referrer-Policy: no-referrer`, the API's `Content-Security-Policy` unless a
///   handler chose one, and `Strict-Transport-Security` when the public URL is https;
/// - metrics: every request counted and timed by method, route template and status
///   (so that the 500 of a panic counts too);
/// - keep-alive guard (outermost): a body left unread by the answer is drained, or the
///   answer says `Connection: close` (see [`keep_alive`]).
///
/// `/metrics` is served here unless `LATCH_METRICS_LISTEN` gives it an address of its
/// own ([`metrics_router`]).
pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .merge(users::router())
        .merge(tokens::router())
        .merge(sessions::router())
        .merge(email::router())
        .merge(password_reset::router())
        .merge(well_known::router())
        .merge(health::router())
        .merge(openapi::router(&state.settings));
    if !state.settings.metrics_apart {
        api = api.merge(metrics::router());
    }
    let settings = state.settings.clone();
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(settings.request_timeout, answer_within))
        // 5xx answers are logged where they arise (ApiError); an overloaded hasher's
        // 503s are expected under load and must not flood the log.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()));
    with_response_headers(api, &settings)
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(middleware::from_fn_with_state(settings.header_timeout, keep_alive::guard))
        .with_state(state)
}

/// `/metrics` alone, for the listener of `LATCH_METRICS_LISTEN`; everything else is 404.
pub fn metrics_router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let api = metrics::router().fallback(not_found).method_not_allowed_fallback(method_not_allowed);
    with_response_headers(api, &settings).with_state(state)
}

/// The response headers every answer carries (see [`router`]).
fn with_response_headers(router: Router<AppState>, settings: &Settings) -> Router<AppState> {
    let hsts = settings.secure_cookies().then_some(HeaderValue::from_static(HSTS));
    router
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, hsts))
}

/// Answers 503 when the handler has not answered within `limit`; dropping it cancels
/// its work (database transactions roll back, a queued password hash is abandoned).
async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?limit, "request not answered in time");
            ApiError::unavailable("the request took too long", 1).into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, "this method is not allowed here").into_response()
}
