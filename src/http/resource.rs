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

use crate::auth::sessions::{Introspection, SessionError};
use crate::domain::{SessionId, UserId};
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

/// RFC 7662 §2.2, as OpenAPI describes it; the answer itself is written by
/// [`active_json`]. Inactive tokens get `{"active": false}` and nothing else.
#[derive(Serialize, ToSchema)]
struct IntrospectResponse<'a> {
    active: bool,
    /// The user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    sub: Option<UserId>,
    /// The session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    sid: Option<SessionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    /// The roles the user holds now (left out when none), which may be newer than the
    /// token's `roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<&'a str>>,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
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
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let Input(req) = JsonOrForm::<IntrospectRequest>::from_request(req, &state).await?;
    let credentials =
        extract::client_credentials(authorization.as_ref(), req.client_id.as_deref(), req.client_secret.as_deref())?;
    state.clients.confidential(&credentials)?;
    let Some(token) = req.token.as_deref() else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let found = if token.is_empty() || token.len() > 8192 {
        None
    } else {
        match state.sessions.introspect(token).await? {
            Some(found) => Some(found),
            None => state.oidc.introspect_client_token(token),
        }
    };
    let body = match &found {
        None => br#"{"active":false}"#.to_vec(),
        Some(i) => active_json(i, state.tokens.issuer(), state.tokens.audience()),
    };
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")];
    Ok((headers, body).into_response())
}

/// The body of an active [`IntrospectResponse`], written directly: resource servers
/// ask for every request they serve, and a general serializer costs more than the
/// rest of the answer.
fn active_json(i: &Introspection, iss: &str, aud: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut uuid = uuid::Uuid::encode_buffer();
    let string = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        // Escapes quotes, backslashes and control characters; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    };
    out.extend_from_slice(br#"{"active":true"#);
    match i.entry.as_deref() {
        Some((session, user)) => {
            string(&mut out, "sub", user.id.as_uuid().hyphenated().encode_lower(&mut uuid));
            string(&mut out, "sid", session.id.as_uuid().hyphenated().encode_lower(&mut uuid));
            string(&mut out, "client_id", &i.client_id);
            string(&mut out, "scope", &i.scope);
            string(&mut out, "username", &user.username);
            if !user.roles.is_empty() {
                out.extend_from_slice(br#","roles":"#);
                let _ = serde_json::to_writer(&mut out, &user.roles().collect::<Vec<_>>());
            }
        }
        // A client's own token: the client is its subject.
        None => {
            string(&mut out, "sub", &i.client_id);
            string(&mut out, "client_id", &i.client_id);
            string(&mut out, "scope", &i.scope);
        }
    }
    string(&mut out, "token_type", i.token_type);
    string(&mut out, "iss", iss);
    string(&mut out, "aud", aud);
    out.extend_from_slice(format!(r#","exp":{},"iat":{}}}"#, i.expires_at, i.issued_at).as_bytes());
    out
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
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = crate::http::extract::bearer_token(&headers)
        .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
    userinfo_of(&state, token).await
}

/// The same as `GET /userinfo`, as OpenID Connect Core §5.3.1 asks.
#[utoipa::path(
    post,
    path = "/userinfo",
    tag = "users",
    operation_id = "userinfo_post",
    summary = "OpenID Connect UserInfo (POST)",
    description = "The bearer token in `Authorization`, or as `access_token` in a form body (RFC 6750 §2.2).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo),
        (status = 401, description = "No, an invalid, expired or revoked access token"),
    ),
)]
async fn userinfo_post(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if let Some(token) = crate::http::extract::bearer_token(req.headers()) {
        let token = token.to_owned();
        return userinfo_of(&state, &token).await;
    }
    // RFC 6750 §2.2: the token as a form field of the body.
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if form { axum::body::to_bytes(req.into_body(), 16 * 1024).await.ok() } else { None };
    let token = body
        .as_deref()
        .and_then(|b| form_urlencoded::parse(b).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned()))
        .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
    userinfo_of(&state, &token).await
}

async fn userinfo_of(state: &AppState, token: &str) -> Result<Response, ApiError> {
    let (entry, claims) = state.sessions.access_token_claims(token).await.map_err(|e| match e {
        SessionError::Ended => ApiError::invalid_token(),
        e => e.into(),
    })?;
    let user = &entry.1;
    let has = |scope: &str| claims.scope.split_ascii_whitespace().any(|s| s == scope);
    let body = UserInfo {
        sub: user.id.to_string(),
        preferred_username: has("profile").then(|| user.username.clone()),
        email: has("email").then(|| user.email.clone()),
        email_verified: has("email").then_some(user.email_verified),
    };
    Ok(Json(body).into_response())
}
