//! Browser sessions: `POST /sessions` logs in and sets the session cookie,
//! `DELETE /sessions` logs out; users list and end their own sessions of every kind.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json as JsonBody, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::login;
use crate::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, JsonOrForm, Via};
use crate::http::state::{AppState, Settings};
use crate::http::users::PrivateUser;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create).delete(end_current))
        .route("/users/me/sessions", get(list))
        .route("/users/me/sessions/{id}", delete(end_one))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// `Set-Cookie` for a new session secret, or one that clears the cookie.
fn set_cookie(settings: &Settings, secret: Option<&str>) -> Result<HeaderValue, ApiError> {
    let secure = if settings.secure_cookies() { "; Secure" } else { "" };
    let (value, max_age) = match secret {
        Some(secret) => (secret, settings.refresh_token_ttl.as_secs()),
        None => ("", 0),
    };
    let cookie =
        format!("{}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}", settings.cookie_name());
    HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.into()))
}

async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): JsonOrForm<LoginRequest>,
) -> Result<Response, ApiError> {
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
    let require_verified = state.settings.require_verified_email;
    let user = login::check_password(&state, login, password, client.ip, require_verified).await?;
    let secret = login::start_browser_session(&state, &user, client.ip, client.user_agent.as_deref()).await?;
    tracing::info!(user = %user.id, "browser session started");
    let cookie = set_cookie(&state.settings, Some(&secret))?;
    Ok(([(header::SET_COOKIE, cookie)], JsonBody(PrivateUser::from(&user))).into_response())
}

/// Ends the session behind the credential and clears the cookie.
async fn end_current(State(state): State<AppState>, auth: AuthUser<true>) -> Result<Response, ApiError> {
    end_session_response(&state, &auth).await
}

/// Shared by `DELETE /sessions` and `POST /logout`.
pub async fn end_session_response<const A: bool>(state: &AppState, auth: &AuthUser<A>) -> Result<Response, ApiError> {
    if let Some(sid) = auth.session_id() {
        state.store.delete_session(sid).await?;
        tracing::info!(user = %auth.user.id, session = %sid, "session ended");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if auth.via == Via::Cookie {
        response.headers_mut().insert(header::SET_COOKIE, set_cookie(&state.settings, None)?);
    }
    Ok(response)
}

#[derive(Serialize)]
struct SessionView {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_seen_at: OffsetDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

async fn list(State(state): State<AppState>, auth: AuthUser<true>) -> Result<JsonBody<Vec<SessionView>>, ApiError> {
    let now = store::now();
    let current = auth.session_id();
    let sessions = state.store.list_sessions(auth.user.id, now, state.settings.idle_cutoff(now)).await?;
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

async fn end_one(
    State(state): State<AppState>,
    auth: AuthUser<true>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    if !state.store.delete_user_session(auth.user.id, id).await? {
        return Err(ApiError::not_found());
    }
    tracing::info!(user = %auth.user.id, session = %id, "session ended by its user");
    Ok(StatusCode::NO_CONTENT)
}
