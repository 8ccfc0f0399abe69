//! Errors as clients see them: RFC 9457 problem details on every endpoint but the
//! OAuth ones, which answer RFC 6749 `{error, error_description}`.
//!
//! Internal failures are logged once here, with their whole cause chain, and shown to
//! the client only as a generic problem.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::accounts::AccountError;
use crate::auth::clients::ClientError;
use crate::auth::mfa::{FactorError, MfaChallenge};
use crate::auth::password::HashError;
use crate::auth::sessions::SessionError;
use crate::domain::FieldError;
use crate::store::{StoreError, TokenPurpose};

/// One answer for a refresh token that is unknown, used, expired or of an ended session.
const INVALID_REFRESH_TOKEN: &str = "the refresh token is invalid, expired or revoked";

/// The stable identifier of every problem Latch answers. One match gives its status,
/// its `code`, its title and its RFC 6749 error on the token endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    /// A login whose username or password is wrong (401).
    InvalidCredentials,
    /// A password that confirms a change is wrong or missing (403, same `code`).
    WrongPassword,
    Forbidden,
    EmailNotVerified,
    AccountDisabled,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    ServiceUnavailable,
    InternalError,
    /// The password was right; a second factor is due (403, with an `mfa_token`).
    MfaRequired,
    /// A second step that failed (401; `invalid_grant` on `/token`).
    InvalidSecondFactor,
}

impl ErrorCode {
    /// `(status, code, OAuth error)`.
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use ErrorCode::*;
        match self {
            BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "invalid_request"),
            ValidationFailed => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "invalid_request"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "invalid_grant"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", "invalid_grant"),
            WrongPassword => (StatusCode::FORBIDDEN, "invalid_credentials", "invalid_grant"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "forbidden"),
            EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified", "email_not_verified"),
            AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled", "account_disabled"),
            NotFound => (StatusCode::NOT_FOUND, "not_found", "not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method_not_allowed"),
            Conflict => (StatusCode::CONFLICT, "conflict", "conflict"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "invalid_request"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "invalid_request"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "rate_limited"),
            ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "temporarily_unavailable"),
            InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "server_error"),
            MfaRequired => (StatusCode::FORBIDDEN, "mfa_required", "mfa_required"),
            InvalidSecondFactor => (StatusCode::UNAUTHORIZED, "invalid_mfa", "invalid_grant"),
        }
    }

    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The snake_case `code` of the problem document.
    pub fn as_str(self) -> &'static str {
        self.parts().1
    }

    /// The RFC 6749 `error` this problem is on the token endpoints.
    pub fn oauth_error(self) -> &'static str {
        self.parts().2
    }

    /// The status on the token endpoints: RFC 6749 answers a bad request or bad
    /// credentials 400, whatever the problem's own status.
    pub fn oauth_status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            BadRequest | ValidationFailed | Unauthorized | InvalidCredentials | WrongPassword | InvalidSecondFactor => {
                StatusCode::BAD_REQUEST
            }
            _ => self.status(),
        }
    }

    /// The problem's `title`: the status's reason phrase.
    pub fn title(self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }
}

/// An error answered with `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    /// A presented bearer token was refused: the challenge says `error="invalid_token"`.
    invalid_token: bool,
    /// The second step a sign-in waits for (`mfa_required`).
    mfa: Option<Box<MfaChallenge>>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            invalid_token: false,
            mfa: None,
            source: None,
        }
    }

    /// 403 `mfa_required`: the password was right; the sign-in continues with the
    /// challenge's `mfa_token` and one of its methods.
    pub fn mfa_required(challenge: MfaChallenge) -> Self {
        let mut e = Self::new(ErrorCode::MfaRequired, "a second factor is required to finish signing in");
        e.mfa = Some(Box::new(challenge));
        e
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
        let mut e = Self::new(ErrorCode::ValidationFailed, format!("invalid fields: {}", fields.join(", ")));
        e.errors = errors;
        e
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    /// 400 naming the field (a query parameter) that made the request unreadable.
    pub fn bad_request_field(field: &str, message: &str) -> Self {
        let mut e = Self::new(ErrorCode::BadRequest, format!("{field} {message}"));
        e.errors = vec![FieldError::new(field, message)];
        e
    }

    /// 401: no usable credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }

    /// 401: a username/password pair that does not match; one message for every cause.
    pub fn invalid_credentials() -> Self {
        Self::new(ErrorCode::InvalidCredentials, "invalid username or password")
    }

    /// 403: a password given to confirm a change was wrong or missing.
    pub fn wrong_password(field: &'static str) -> Self {
        let mut e = Self::new(ErrorCode::WrongPassword, "the current password is wrong or missing");
        e.errors = vec![FieldError::new(field, "is wrong or missing")];
        e
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn conflict(field: &'static str) -> Self {
        let mut e = Self::new(ErrorCode::Conflict, format!("this {field} is already taken"));
        e.errors = vec![FieldError::new(field, "is already taken")];
        e
    }

    pub fn email_not_verified() -> Self {
        Self::new(ErrorCode::EmailNotVerified, "confirm your email address first")
    }

    pub fn account_disabled() -> Self {
        Self::new(ErrorCode::AccountDisabled, "this account is disabled")
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited, "too many attempts; try again later");
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503 with `Retry-After`: a temporary overload or outage.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::ServiceUnavailable, detail);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500; the cause is logged, never shown.
    pub fn internal(source: anyhow::Error) -> Self {
        let mut e = Self::new(ErrorCode::InternalError, "an unexpected error occurred");
        e.source = Some(source);
        e
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The offending fields of a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
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

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::validation(errors)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::validation(vec![error])
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::unavailable("too many logins at once; try again shortly", 1),
            HashError::Failed(e) => ApiError::internal(e),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(errors) => ApiError::validation(errors),
            AccountError::Taken(field) => ApiError::conflict(field),
            AccountError::WrongPassword(field) => ApiError::wrong_password(field),
            AccountError::NotVerified => ApiError::email_not_verified(),
            AccountError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            AccountError::InvalidToken(TokenPurpose::VerifyEmail) => {
                ApiError::bad_request("the verification token is invalid, used or expired")
            }
            AccountError::InvalidToken(TokenPurpose::ResetPassword) => {
                ApiError::bad_request("the reset token is invalid, used or expired")
            }
            AccountError::Gone => ApiError::not_found(),
            AccountError::Busy => HashError::Busy.into(),
            AccountError::Store(e) => e.into(),
            AccountError::Internal(e) => e.into(),
        }
    }
}

impl From<FactorError> for ApiError {
    fn from(e: FactorError) -> Self {
        match e {
            FactorError::AlreadyEnrolled => ApiError::new(
                ErrorCode::Conflict,
                "an authenticator app is enrolled already; remove it before enrolling another",
            ),
            FactorError::NotPending => ApiError::new(
                ErrorCode::Conflict,
                "no enrolment is waiting for a code; start one with POST /users/me/mfa/totp",
            ),
            FactorError::WrongCode => ApiError::field("code", "is not the app's current code"),
            FactorError::WrongConfirmation(field) => {
                let mut e =
                    ApiError::new(ErrorCode::WrongPassword, format!("the {field} confirming the change is wrong"));
                e.errors = vec![FieldError::new(field, "is wrong")];
                e
            }
            FactorError::NoFactor => ApiError::not_found(),
            FactorError::Invalid(field, message) => ApiError::field(field, message),
            FactorError::PasskeysUnavailable => ApiError::new(
                ErrorCode::Conflict,
                "passkeys need the public URL to name a host, not an IP address (LATCH_PUBLIC_URL)",
            ),
            FactorError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            FactorError::Busy => HashError::Busy.into(),
            FactorError::Store(e) => e.into(),
            FactorError::Internal(e) => e.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::InvalidCredentials => ApiError::invalid_credentials(),
            SessionError::Disabled => ApiError::account_disabled(),
            SessionError::NotVerified => ApiError::email_not_verified(),
            SessionError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            SessionError::InvalidGrant => ApiError::bad_request(INVALID_REFRESH_TOKEN),
            SessionError::Ended => ApiError::unauthorized("the session has ended"),
            SessionError::Busy => HashError::Busy.into(),
            SessionError::MfaRequired(challenge) => ApiError::mfa_required(challenge),
            SessionError::PasswordNotEnough => ApiError::unauthorized(
                "this account has a second factor: sign in through /token or /sessions, not with Basic credentials",
            ),
            SessionError::InvalidSecondFactor => ApiError::new(
                ErrorCode::InvalidSecondFactor,
                "the code is wrong or used, or the mfa_token is unknown, expired or out of attempts",
            ),
            SessionError::Store(e) => e.into(),
            SessionError::Internal(e) => e.into(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_methods: Option<&'a [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webauthn: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct FieldErrorBody<'a> {
    field: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.code.status(), self.code.as_str());
        if let Some(source) = &self.source
            && status.is_server_error()
        {
            tracing::error!(code, error = format!("{source:#}"), "request failed");
        }
        let errors: Vec<FieldErrorBody<'_>> =
            self.errors.iter().map(|e| FieldErrorBody { field: &e.field, message: &e.message }).collect();
        let problem = Problem {
            kind: format!("urn:latch:problem:{}", code.replace('_', "-")),
            title: self.code.title(),
            status: status.as_u16(),
            detail: &self.detail,
            code,
            errors: &errors,
            mfa_token: self.mfa.as_ref().map(|m| m.token.as_str()),
            mfa_methods: self.mfa.as_ref().map(|m| &m.methods[..]),
            webauthn: self.mfa.as_ref().and_then(|m| m.webauthn.as_ref()),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
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
    mfa: Option<Box<MfaChallenge>>,
    source: Option<anyhow::Error>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after: None, mfa: None, source: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
}

/// A refresh token that does not work is `invalid_grant`; the rest as any problem.
impl From<SessionError> for OAuthError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::InvalidGrant => Self::invalid_grant(INVALID_REFRESH_TOKEN),
            e => ApiError::from(e).into(),
        }
    }
}

/// RFC 6749 §5.2: a client that failed to authenticate gets 401 `invalid_client`.
impl From<ClientError> for OAuthError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidClient => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed: unknown client, wrong secret, or a client that must authenticate",
            ),
            ClientError::InvalidScope(message) => Self::new(StatusCode::BAD_REQUEST, "invalid_scope", message),
        }
    }
}

/// The OpenID grants' refusals (RFC 6749 §5.2).
impl From<crate::auth::oidc::GrantError> for OAuthError {
    fn from(e: crate::auth::oidc::GrantError) -> Self {
        use crate::auth::oidc::GrantError as G;
        match e {
            G::InvalidRequest(m) => Self::invalid_request(m),
            G::InvalidGrant(m) => Self::invalid_grant(m),
            G::InvalidClient => ClientError::InvalidClient.into(),
            G::UnauthorizedClient(m) => Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", m),
            G::InvalidScope(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_scope", m),
            G::Session(e) => e.into(),
            G::Store(e) => e.into(),
            G::Internal(e) => e.into(),
        }
    }
}

/// The token endpoints speak OAuth; every problem maps onto its vocabulary.
impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        let (status, error) = (e.code.oauth_status(), e.code.oauth_error());
        let description = match e.errors.first() {
            Some(f) => format!("{}: {}", f.field, f.message),
            None => e.detail,
        };
        Self { status, error, description, retry_after: e.retry_after, mfa: e.mfa, source: e.source }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_methods: Option<&'a [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webauthn: Option<&'a serde_json::Value>,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source
            && self.status.is_server_error()
        {
            tracing::error!(error = format!("{source:#}"), "token request failed");
        }
        let body = serde_json::to_vec(&OAuthBody {
            error: self.error,
            error_description: &self.description,
            mfa_token: self.mfa.as_ref().map(|m| m.token.as_str()),
            mfa_methods: self.mfa.as_ref().map(|m| &m.methods[..]),
            webauthn: self.mfa.as_ref().and_then(|m| m.webauthn.as_ref()),
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.error == "invalid_client" {
            headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"latch\", charset=\"UTF-8\""));
        }
        response
    }
}
