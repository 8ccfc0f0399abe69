//! Prometheus metrics: one registry per app (held in `AppState`, so that any number of
//! apps can live in one process), HTTP metrics recorded by a layer, login, registration
//! and token counters recorded by the handlers, and `GET /metrics` to read them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::auth::sessions::SessionError;
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// Upper bounds of the request-duration buckets, in seconds: from cheap reads (well
/// under a millisecond) to logins that wait for the password hasher.
const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `route` label of requests that matched no route (404), so that scanners cannot
/// create a series per probed path.
const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: &'static str,
}

/// Every `result` of `latch_logins_total`.
const LOGIN_RESULTS: [&str; 8] =
    ["success", "failure", "rate_limited", "disabled", "unverified", "unavailable", "mfa_required", "error"];

/// Every `grant` of `latch_tokens_issued_total`.
const GRANTS: [&str; 2] = ["password", "refresh_token"];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metrics of one app. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    logins: Family<LoginLabels, Counter>,
    registrations: Counter,
    tokens_issued: Family<GrantLabels, Counter>,
}

impl Metrics {
    /// The metrics of an app whose password hasher counts its abandoned jobs in
    /// `hash_jobs_abandoned`.
    pub fn new(hash_jobs_abandoned: Counter) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "latch_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "latch_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response headers), by route template",
            durations.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "latch_logins",
            "Password logins on /token and /sessions, by result: success, failure (unknown user or wrong \
             password), rate_limited, disabled, unverified, unavailable (hasher saturated) or error",
            logins.clone(),
        );
        let registrations = Counter::default();
        registry.register("latch_registrations", "Accounts created through POST /users", registrations.clone());
        registry.register(
            "latch_password_jobs_abandoned",
            "Password hashing jobs dropped unhashed because their request was cancelled while they waited",
            hash_jobs_abandoned,
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        registry.register(
            "latch_tokens_issued",
            "Access and refresh token pairs issued by /token, by grant type",
            tokens_issued.clone(),
        );
        // Known label values start at 0, so that rates are defined before the first event.
        for result in LOGIN_RESULTS {
            logins.get_or_create_owned(&LoginLabels { result });
        }
        for grant in GRANTS {
            tokens_issued.get_or_create_owned(&GrantLabels { grant });
        }
        Self { inner: Arc::new(Inner { registry, requests, durations, logins, registrations, tokens_issued }) }
    }

    fn request(&self, method: &'static str, route: String, status: StatusCode, elapsed: Duration) {
        self.inner.durations.get_or_create(&RouteLabels { route: route.clone() }).observe(elapsed.as_secs_f64());
        self.inner.requests.get_or_create(&RequestLabels { method, route, status: status.as_u16() }).inc();
    }

    /// Counts the outcome of a password check.
    pub fn login<T>(&self, outcome: &Result<T, SessionError>) {
        let result = match outcome {
            Ok(_) => "success",
            Err(SessionError::InvalidCredentials) => "failure",
            Err(SessionError::Disabled) => "disabled",
            Err(SessionError::NotVerified) => "unverified",
            Err(SessionError::RateLimited { .. }) => "rate_limited",
            Err(SessionError::Busy) => "unavailable",
            Err(SessionError::MfaRequired(_)) => "mfa_required",
            Err(SessionError::InvalidSecondFactor) => "failure",
            Err(_) => "error",
        };
        self.inner.logins.get_or_create(&LoginLabels { result }).inc();
    }

    pub fn registration(&self) {
        self.inner.registrations.inc();
    }

    /// Counts a token pair issued by `grant`, one of [`GRANTS`].
    pub fn tokens_issued(&self, grant: &'static str) {
        self.inner.tokens_issued.get_or_create(&GrantLabels { grant }).inc();
    }

    /// The Prometheus text format (0.0.4), or OpenMetrics when `openmetrics`.
    fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)?;
        }
        Ok(text)
    }
}

/// The `method` label: the standard methods by name, anything else as `OTHER`, so that
/// clients cannot create series at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The layer that counts and times every request by its route template (never the raw
/// path, which would make a series per user id).
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    metrics.request(method, route, response.status(), started.elapsed());
    response
}

const OPENMETRICS: &str = "application/openmetrics-text";

/// Whether the scraper asked for OpenMetrics (Prometheus does) rather than the classic
/// text format.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            parts.next().is_some_and(|media| media.eq_ignore_ascii_case(OPENMETRICS))
                && !parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"))
        })
    })
}

/// The metrics of this instance in the Prometheus text format (version 0.0.4), or in
/// OpenMetrics when the `Accept` header asks for it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics of this instance",
    description = "The Prometheus text format (version 0.0.4); OpenMetrics 1.0 when `Accept` asks for \
                   `application/openmetrics-text`.",
    responses(
        (status = 200, description = "The metrics", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
    ),
)]
async fn render(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let openmetrics = wants_openmetrics(&headers);
    let text = state.metrics.encode(openmetrics).map_err(|e| ApiError::internal(e.into()))?;
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn openmetrics_is_served_only_when_asked_for() {
        assert!(!wants_openmetrics(&HeaderMap::new()));
        assert!(!wants_openmetrics(&accept("text/plain")));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(wants_openmetrics(&accept(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(&accept("application/openmetrics-text; q=0, text/plain")));
    }

    #[test]
    fn the_text_format_has_the_counters_with_their_labels() {
        let abandoned = Counter::default();
        let metrics = Metrics::new(abandoned.clone());
        abandoned.inc();
        metrics.request("GET", "/users/{id}".into(), StatusCode::OK, Duration::from_millis(3));
        metrics.registration();
        metrics.tokens_issued("password");
        metrics.login::<()>(&Ok(()));
        let text = metrics.encode(false).unwrap();
        assert!(text.contains("latch_password_jobs_abandoned_total 1"), "{text}");
        assert!(
            text.contains(r#"latch_http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"latch_http_request_duration_seconds_bucket{route="/users/{id}",le="0.005"} 1"#),
            "{text}"
        );
        assert!(text.contains("latch_registrations_total 1"), "{text}");
        assert!(text.contains(r#"latch_tokens_issued_total{grant="password"} 1"#), "{text}");
        assert!(text.contains(r#"latch_logins_total{result="success"} 1"#), "{text}");
        assert!(text.contains(r#"latch_logins_total{result="rate_limited"} 0"#), "{text}");
        assert!(text.contains(r#"latch_tokens_issued_total{grant="refresh_token"} 0"#), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(metrics.encode(true).unwrap().ends_with("# EOF\n"));
    }
}
