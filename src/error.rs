//! Errors as clients see them: RFC 9457 problem details on every endpoint but the
//! OAuth ones, which answer RFC 6749 `{error, error_description}`.
//!
//! Internal failures are logged once here, with their whole cause chain, and shown to
//! the client only as a generic problem.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;
use crate::store::StoreError;

/// An error answered with `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    /// A presented bearer token was refused: the challenge says `error="invalid_token"`.
    invalid_token: bool,
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            invalid_token: false,
            source: None,
        }
    }

    /// 401 for a bearer token that is invalid, expired or revoked (RFC 6750, section 3.1).
    pub fn invalid_token() -> Self {
        let mut e = Self::unauthorized("the access token is invalid or expired");
        e.invalid_token = true;
        e
    }

    /// 422 with one entry per offending field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("invalid fields: {}", fields.join(", ")),
        );
        e.errors = errors;
        e
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 401: no usable credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 401: a username/password pair that does not match; one message for every cause.
    pub fn invalid_credentials() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "invalid username or password")
    }

    /// 403: a password given to confirm a change was wrong or missing.
    pub fn wrong_password(field: &'static str) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, "invalid_credentials", "the current password is wrong or missing");
        e.errors = vec![FieldError::new(field, "is wrong or missing")];
        e
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn conflict(field: &'static str) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "conflict", format!("this {field} is already taken"));
        e.errors = vec![FieldError::new(field, "is already taken")];
        e
    }

    pub fn email_not_verified() -> Self {
        Self::new(StatusCode::FORBIDDEN, "email_not_verified", "confirm your email address first")
    }

    pub fn account_disabled() -> Self {
        Self::new(StatusCode::FORBIDDEN, "account_disabled", "this account is disabled")
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts; try again later");
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503 with `Retry-After`: a temporary overload or outage.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500; the cause is logged, never shown.
    pub fn internal(source: anyhow::Error) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an unexpected error occurred");
        e.source = Some(source);
        e
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => Self::conflict(field),
            StoreError::Unavailable(source) => {
                let mut e = Self::unavailable("the database is unreachable", 5);
                e.source = Some(source.into());
                e
            }
            StoreError::Other(source) => Self::internal(source.into()),
        }
    }
}

impl From<crate::auth::limits::LimitError> for ApiError {
    fn from(e: crate::auth::limits::LimitError) -> Self {
        match e {
            crate::auth::limits::LimitError::RateLimited { retry_after } => Self::rate_limited(retry_after),
            crate::auth::limits::LimitError::Store(e) => e.into(),
        }
    }
}

/// Errors that reach a handler wrapped in `anyhow` are internal, unless a database
/// that cannot serve is behind them: that is an outage (503), whatever the path.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if StoreError::is_unavailable(e.as_ref()) {
            let mut unavailable = Self::unavailable("the database is unreachable", 5);
            unavailable.source = Some(e);
            return unavailable;
        }
        Self::internal(e)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldErrorBody<'a>],
}

#[derive(Serialize)]
struct FieldErrorBody<'a> {
    field: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source
            && self.status.is_server_error()
        {
            tracing::error!(code = self.code, error = format!("{source:#}"), "request failed");
        }
        let errors: Vec<FieldErrorBody<'_>> =
            self.errors.iter().map(|e| FieldErrorBody { field: &e.field, message: &e.message }).collect();
        let problem = Problem {
            kind: format!("urn:latch:problem:{}", self.code.replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            let bearer = if self.invalid_token {
                "Bearer error=\"invalid_token\", error_description=\"the access token is invalid or expired\""
            } else {
                "Bearer"
            };
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(bearer));
            headers
                .append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"latch\", charset=\"UTF-8\""));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// An RFC 6749 error of the token endpoints.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
    source: Option<anyhow::Error>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after: None, source: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
}

/// The token endpoints speak OAuth; every problem maps onto its vocabulary.
impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        let (status, error) = match e.code {
            "validation_failed" | "bad_request" => (StatusCode::BAD_REQUEST, "invalid_request"),
            "payload_too_large" | "unsupported_media_type" => (e.status, "invalid_request"),
            "invalid_credentials" | "unauthorized" => (StatusCode::BAD_REQUEST, "invalid_grant"),
            "service_unavailable" => (e.status, "temporarily_unavailable"),
            "internal_error" => (e.status, "server_error"),
            other => (e.status, other),
        };
        let description = match e.errors.first() {
            Some(f) => format!("{}: {}", f.field, f.message),
            None => e.detail,
        };
        Self { status, error, description, retry_after: e.retry_after, source: e.source }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Serialize)]
struct OAuthBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source
            && self.status.is_server_error()
        {
            tracing::error!(error = format!("{source:#}"), "token request failed");
        }
        let body = serde_json::to_vec(&OAuthBody { error: self.error, error_description: &self.description })
            .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
