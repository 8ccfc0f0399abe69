//! Browser sessions: `POST /sessions` logs in and sets the session cookie,
//! `DELETE /sessions` logs out; users list and end their own sessions of every kind.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json as JsonBody, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::sessions::{AMR_PASSWORD, BROWSER_CLIENT_ID, LoginOptions, SecondStep};
use crate::domain::{SessionId, Timestamp};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, JsonOrForm, Via, refuse_cross_site};
use crate::http::state::AppState;
use crate::http::users::PrivateUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create).delete(end_current))
        .route("/users/me/sessions", get(list))
        .route("/users/me/sessions/{id}", delete(end_one))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// An email or a username; or give `email` instead.
    #[schema(value_type = String, required = false, min_length = 1, example = "alice")]
    username: Option<String>,
    #[schema(value_type = String, required = false, format = Email, min_length = 1)]
    email: Option<String>,
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    password: Option<String>,
}

/// Logs in and sets the session cookie.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    operation_id = "login",
    summary = "Log in with a browser session",
    description = "Sets `latch_session` (`__Host-latch_session`, `Secure`, when the public URL is https): \
                   `HttpOnly; SameSite=Lax; Path=/`.",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in: the private view", body = PrivateUser,
         headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "One answer for an unknown user and a wrong password (`invalid_credentials`)"),
        (status = 403, description = "`mfa_required` (the password was right; finish with `POST /sessions/mfa` \
                                      and the answer's `mfa_token`), `account_disabled`, `email_not_verified` \
                                      when verified emails are required, or a cross-site request (`forbidden`: \
                                      login CSRF)"),
        (status = 422, description = "`username` (or `email`) or `password` is missing (`validation_failed`)"),
        (status = 429, description = "Too many failed logins (`rate_limited`); the password was not checked"),
    ),
)]
async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Input(req): JsonOrForm<LoginRequest>,
) -> Result<Response, ApiError> {
    // Login CSRF: another site must not sign the browser in to an account of its choosing.
    refuse_cross_site(&method, &headers, &state)?;
    let login = req.username.as_deref().or(req.email.as_deref()).unwrap_or("");
    let password = req.password.as_deref().unwrap_or("");
    if login.is_empty() || password.is_empty() {
        let mut missing = Vec::new();
        if login.is_empty() {
            missing.push(crate::domain::FieldError::new("username", "is required (a username or an email)"));
        }
        if password.is_empty() {
            missing.push(crate::domain::FieldError::new("password", "is required"));
        }
        return Err(ApiError::validation(missing));
    }
    let scope = crate::auth::clients::DEFAULT_SCOPES.join(" ");
    let second_step = SecondStep { client_id: BROWSER_CLIENT_ID, scope: &scope };
    let options = LoginOptions { require_verified: true, issue_device: true, second_step: Some(second_step) };
    let outcome = state.sessions.login(login, password, client.client(), options).await;
    state.metrics.login(&outcome);
    let logged_in = outcome?;
    let secret = state.sessions.start_browser(&logged_in.user, AMR_PASSWORD, client.client()).await?;
    let mut response = JsonBody(PrivateUser::from(&logged_in.user)).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookies::session(&state.settings, Some(&secret))?);
    if let Some(device) = logged_in.device {
        headers.append(header::SET_COOKIE, cookies::device(&state.settings, &device)?);
    }
    Ok(response)
}

/// Ends the session behind the credential and clears the cookie.
#[utoipa::path(
    delete,
    path = "/sessions",
    tag = "sessions",
    operation_id = "logout_session",
    summary = "Log out: end the current session",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "The session has ended",
         headers(("Set-Cookie" = String, description = "Clears the session cookie when it was the credential"))),
    ),
)]
async fn end_current(
    State(state): State<AppState>,
    client: ClientInfo,
    auth: AuthUser<true>,
) -> Result<Response, ApiError> {
    end_session_response(&state, &auth, &client).await
}

/// Shared by `DELETE /sessions` and `POST /logout`.
pub async fn end_session_response<const A: bool>(
    state: &AppState,
    auth: &AuthUser<A>,
    client: &ClientInfo,
) -> Result<Response, ApiError> {
    if let Some(sid) = auth.session_id() {
        state.sessions.logout(auth.user.id, sid, client.client()).await?;
        tracing::info!(user = %auth.user.id, session = %sid, "session ended");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if auth.via == Via::Cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookies::session(&state.settings, None)?);
    }
    Ok(response)
}

/// A live session of the user: a browser session or a token family.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
struct SessionView {
    /// The `sid` of its access tokens.
    #[schema(value_type = Uuid)]
    id: SessionId,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    last_seen_at: Timestamp,
    /// As given when the session started.
    user_agent: Option<String>,
    /// The client address when the session started.
    ip: Option<String>,
    /// Whether this is the session making the request.
    current: bool,
}

/// The user's live sessions of every kind.
#[utoipa::path(
    get,
    path = "/users/me/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    summary = "The user's live sessions",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses((status = 200, description = "The live sessions", body = Vec<SessionView>)),
)]
async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<JsonBody<Vec<SessionView>>, ApiError> {
    let current = auth.session_id();
    let sessions = state.sessions.list(auth.user.id).await?;
    Ok(JsonBody(
        sessions
            .into_iter()
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect(),
    ))
}

/// Ends one of the user's sessions: its refresh tokens die and its access tokens are refused.
#[utoipa::path(
    delete,
    path = "/users/me/sessions/{id}",
    tag = "sessions",
    operation_id = "end_session",
    summary = "End one of the user's sessions",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 404, description = "Not a live session of this user (`not_found`)"),
    ),
)]
async fn end_one(
    State(state): State<AppState>,
    client: ClientInfo,
    auth: AuthUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    // Not an id, nor even text: no such resource, as a problem like every other answer.
    let id = path.ok().and_then(|Path(id)| SessionId::parse(&id)).ok_or_else(ApiError::not_found)?;
    if !state.sessions.end_own(auth.user.id, id, client.client()).await? {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
