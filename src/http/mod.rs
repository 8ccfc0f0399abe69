//! The HTTP API: each area has its own `router()`, merged here with the layers every
//! request passes through. Connections themselves (timeouts, limits, shutdown) are
//! `crate::server`'s.

mod admin;
pub mod cookies;
mod cors;
mod email;
pub mod error;
pub mod extract;
mod health;
mod keep_alive;
pub mod metrics;
pub(crate) mod mfa;
mod openapi;
pub mod pages;
mod password_reset;
mod resource;
mod sessions;
pub mod state;
mod tokens;
pub mod users;
mod well_known;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::auth::clients::Clients;
use crate::http::error::{ApiError, ErrorCode};
use crate::settings::Settings;
use state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `Strict-Transport-Security` when the public URL is https: two years (the
/// preload list's minimum is one) for this host and its subdomains, which share the
/// site of the session cookie.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// `Content-Security-Policy` of API responses: JSON is never a document that may load,
/// run or be framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The whole API: the routes with their layers, innermost first —
/// - body limit: 413 past 64 KiB (read by our extractors, which answer a problem);
/// - tracing of every request (method, path, status, latency; never bodies or headers);
/// - a panic becomes a 500 problem instead of a dropped connection;
/// - metrics: every request counted and timed by method, route template and status
///   (so that the 500 of a panic counts too) —
///
/// and around them, once per request rather than once per route ([`Api::handle`]):
/// - request timeout: a request still unanswered after `LATCH_REQUEST_TIMEOUT` gets a
///   503 problem (its handler is dropped);
/// - keep-alive guard: a body left unread by the answer is drained, or the answer says
///   `Connection: close` (see [`keep_alive`]);
/// - response headers, on every answer: `Cache-Control: no-store` unless a handler
///   chose otherwise (responses carry personal data and tokens),
///   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, the API's
///   `Content-Security-Policy` unless a handler chose one, and
///   `Strict-Transport-Security` when the public URL is https.
///
/// `/metrics` is served here unless `LATCH_METRICS_LISTEN` gives it an address of its
/// own ([`metrics_router`]).
pub fn router(state: AppState) -> Api {
    let mut api = Router::new()
        .merge(users::router())
        .merge(admin::router())
        .merge(tokens::router())
        .merge(sessions::router())
        .merge(mfa::router())
        .merge(email::router())
        .merge(password_reset::router())
        .merge(resource::router())
        .merge(pages::router(&state.settings))
        .merge(well_known::router())
        .merge(health::router())
        .merge(openapi::router(&state.settings));
    if !state.settings.metrics_apart {
        api = api.merge(metrics::router());
    }
    let settings = state.settings.clone();
    let clients = state.clients.clone();
    let router = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // 5xx answers are logged where they arise (ApiError); an overloaded hasher's
        // 503s are expected under load and must not flood the log.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state);
    Api::new(router, &settings, Some(clients))
}

/// `/metrics` alone, for the listener of `LATCH_METRICS_LISTEN`; everything else is 404.
pub fn metrics_router(state: AppState) -> Api {
    let settings = state.settings.clone();
    let router =
        metrics::router().fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state);
    Api::new(router, &settings, None)
}

/// A router with what every request passes through once: see [`router`].
#[derive(Clone)]
pub struct Api {
    router: Router,
    drain_within: Duration,
    request_timeout: Duration,
    hsts: Option<HeaderValue>,
    /// CORS origins; `None` on the metrics listener, which browsers have no business with.
    clients: Option<Clients>,
}

impl Api {
    fn new(router: Router, settings: &Settings, clients: Option<Clients>) -> Self {
        Self {
            router,
            clients,
            drain_within: settings.header_timeout,
            request_timeout: settings.request_timeout,
            hsts: settings.secure_cookies().then_some(HeaderValue::from_static(HSTS)),
        }
    }

    /// Answers one request.
    pub async fn handle(self, request: Request) -> Response {
        let (router, limit) = (self.router, self.request_timeout);
        let cors = self.clients.map(|clients| {
            let origin = request.headers().get(header::ORIGIN).cloned();
            (clients, cors::public(request.uri().path()), origin)
        });
        if let Some((clients, ..)) = &cors
            && let Some(answer) = cors::preflight(&request, clients)
        {
            return finish(answer, self.hsts.as_ref());
        }
        let mut response = keep_alive::guard(self.drain_within, request, |request| async move {
            // Dropping the router's future cancels its work (database transactions roll
            // back, a queued password hash is abandoned).
            match tokio::time::timeout(limit, router.oneshot(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::warn!(timeout = ?limit, "request not answered in time");
                    ApiError::unavailable("the request took too long", 1).into_response()
                }
            }
        })
        .await;
        if let Some((clients, public, origin)) = &cors {
            cors::decorate(*public, origin.as_ref(), clients, &mut response);
        }
        finish(response, self.hsts.as_ref())
    }
}

/// The headers every answer carries (see [`router`]).
fn finish(mut response: Response, hsts: Option<&HeaderValue>) -> Response {
    let headers = response.headers_mut();
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(API_CSP));
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, "this method is not allowed here").into_response()
}
