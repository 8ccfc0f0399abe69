//! What resource servers and relying parties ask of Latch about a token:
//! `POST /introspect` (RFC 7662), for confidential clients, and `GET /userinfo`
//! (OpenID Connect Core §5.3), for the token's holder.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::sessions::SessionError;
use crate::http::error::{ApiError, OAuthError};
use crate::http::extract::{self, Input, JsonOrForm};
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/introspect", post(introspect))
        .route("/userinfo", axum::routing::get(userinfo).post(userinfo_post))
}

#[derive(Deserialize, ToSchema)]
struct IntrospectRequest {
    /// An access token or a refresh token.
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    /// `access_token` or `refresh_token`; a hint only, every kind is tried.
    #[schema(value_type = String, required = false)]
    #[serde(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
    /// The calling client (`client_secret_post`); or use HTTP Basic.
    #[schema(value_type = String, required = false)]
    client_id: Option<String>,
    #[schema(value_type = String, required = false, format = Password)]
    client_secret: Option<String>,
}

/// RFC 7662 §2.2. Inactive tokens get `{"active": false}` and nothing else.
#[derive(Serialize, ToSchema)]
struct IntrospectResponse {
    active: bool,
    #[serde(flatten)]
    #[schema(inline)]
    details: Option<ActiveToken>,
}

#[derive(Serialize, ToSchema)]
struct ActiveToken {
    /// The user id.
    sub: String,
    /// The session id.
    sid: String,
    client_id: String,
    scope: String,
    username: String,
    /// `access_token` or `refresh_token`.
    token_type: &'static str,
    exp: i64,
    iat: i64,
    iss: String,
    aud: String,
}

/// Whether a token is active: an access token that verifies and whose session is live,
/// or an unused refresh token of a live session. Logout, revocation, a password change
/// and disabling show at once (and on other instances as soon as they hear of it).
#[utoipa::path(
    post,
    path = "/introspect",
    tag = "tokens",
    operation_id = "introspect",
    summary = "Token introspection (RFC 7662), for confidential clients",
    description = "The caller authenticates as a registered confidential client (`client_secret_basic` or \
                   `client_secret_post`). Anything that is not an active token, garbage included, is \
                   `{\"active\": false}`.",
    security(("client" = [])),
    request_body(content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "`{active: false}`, or `active: true` with the token's details",
         body = IntrospectResponse),
        (status = 400, description = "`token` is missing (`invalid_request`)"),
        (status = 401, description = "`invalid_client`: no, unknown or wrong client credentials"),
    ),
)]
async fn introspect(State(state): State<AppState>, req: Request) -> Result<Response, OAuthError> {
    let headers = req.headers().clone();
    let Input(req) = JsonOrForm::<IntrospectRequest>::from_request(req, &state).await?;
    let credentials = extract::client_credentials(&headers, req.client_id.as_deref(), req.client_secret.as_deref())?;
    state.clients.confidential(&credentials)?;
    let Some(token) = req.token.as_deref() else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let found = if token.is_empty() || token.len() > 8192 { None } else { state.sessions.introspect(token).await? };
    let details = found.map(|i| ActiveToken {
        sub: i.user.id.to_string(),
        sid: i.session.id.to_string(),
        client_id: i.client_id,
        scope: i.scope,
        username: i.user.username,
        token_type: i.token_type,
        exp: i.expires_at,
        iat: i.issued_at,
        iss: state.tokens.issuer().to_owned(),
        aud: state.tokens.audience().to_owned(),
    });
    let body = IntrospectResponse { active: details.is_some(), details };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// OpenID Connect Core §5.3.2; the claims follow the token's scopes.
#[derive(Serialize, ToSchema)]
struct UserInfo {
    /// The user id.
    sub: String,
    /// With scope `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    /// With scope `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// With scope `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// The claims about the holder of an access token, by the scopes it was granted.
#[utoipa::path(
    get,
    path = "/userinfo",
    tag = "users",
    operation_id = "userinfo",
    summary = "OpenID Connect UserInfo",
    description = "`sub` always; `preferred_username` with scope `profile`; `email` and `email_verified` with \
                   scope `email`. Bearer access tokens only (also on `POST`).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo),
        (status = 401, description = "No, an invalid, expired or revoked access token"),
    ),
)]
async fn userinfo(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    userinfo_post(state, headers).await
}

/// The same as `GET /userinfo`, as OpenID Connect Core §5.3.1 asks.
#[utoipa::path(
    post,
    path = "/userinfo",
    tag = "users",
    operation_id = "userinfo_post",
    summary = "OpenID Connect UserInfo (POST)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo),
        (status = 401, description = "No, an invalid, expired or revoked access token"),
    ),
)]
async fn userinfo_post(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
    let (_, user, claims) = state.sessions.access_token_claims(token).await.map_err(|e| match e {
        SessionError::Ended => ApiError::invalid_token(),
        e => e.into(),
    })?;
    let has = |scope: &str| claims.scope.split_ascii_whitespace().any(|s| s == scope);
    let body = UserInfo {
        sub: user.id.to_string(),
        preferred_username: has("profile").then(|| user.username.clone()),
        email: has("email").then(|| user.email.clone()),
        email_verified: has("email").then_some(user.email_verified),
    };
    Ok(Json(body).into_response())
}
