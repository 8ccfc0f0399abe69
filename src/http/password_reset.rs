//! Password reset: `POST /password-reset` emails a single-use link (the same answer
//! whether or not the account exists), `POST /password-reset/confirm` sets the new
//! password and ends every session of the user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonBody, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{emails, secret};
use crate::domain::{Email, Username};
use crate::error::ApiError;
use crate::http::extract::{ClientInfo, Input, Json};
use crate::http::state::AppState;
use crate::http::users::Fields;
use crate::store::{self, TokenPurpose};

pub fn router() -> Router<AppState> {
    Router::new().route("/password-reset", post(request)).route("/password-reset/confirm", post(confirm))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: Option<String>,
}

async fn request(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): Json<ResetRequest>,
) -> Result<(StatusCode, JsonBody<Value>), ApiError> {
    let mut fields = Fields::default();
    let email = fields.required(&req.email, "email").and_then(|e| fields.check("email", Email::parse(e)));
    fields.finish()?;
    let Some(email) = email else {
        return Err(ApiError::bad_request("invalid fields"));
    };
    state.limiter.password_reset(client.ip, email.as_str()).await?;
    match state.store.user_by_login(email.as_str()).await? {
        Some(user) if !user.disabled => emails::send_password_reset(&state, &user).await?,
        _ => tracing::info!("password reset requested for an unknown or disabled account"),
    }
    let body = json!({ "status": "accepted", "detail": "if an account uses this address, a reset link is on its way" });
    Ok((StatusCode::ACCEPTED, JsonBody(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    token: Option<String>,
    new_password: Option<String>,
}

async fn confirm(State(state): State<AppState>, Input(req): Json<ConfirmRequest>) -> Result<StatusCode, ApiError> {
    let mut fields = Fields::default();
    let token = fields.required(&req.token, "token");
    let password = fields.required(&req.new_password, "new_password");
    fields.finish()?;
    let (Some(token), Some(password)) = (token, password) else {
        return Err(ApiError::bad_request("invalid fields"));
    };
    let invalid = || ApiError::bad_request("the reset token is invalid, used or expired");
    let hash = secret::digest(token);
    let now = store::now();
    let record = state.store.find_one_time_token(&hash, TokenPurpose::ResetPassword, now).await?.ok_or_else(invalid)?;
    let user = state.store.user_by_id(record.user_id).await?.ok_or_else(invalid)?;
    // A bad password leaves the token valid: it is used up only by a success.
    let username = Username::parse(&user.username).ok();
    let email = Email::parse(&user.email).ok();
    let new_password = state
        .policy
        .check(password, username.as_ref(), email.as_ref())
        .map_err(|message| ApiError::field("new_password", message))?;
    let new_hash = state.hasher.hash(new_password.expose()).await?;
    state.store.reset_password(&hash, &new_hash, store::now()).await?.ok_or_else(invalid)?;
    tracing::info!(user = %user.id, "password reset; all sessions ended");
    Ok(StatusCode::NO_CONTENT)
}
