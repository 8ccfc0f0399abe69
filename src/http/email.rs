//! Email verification: `POST /email-verification` sends a new link,
//! `POST /email-verification/confirm` uses one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonBody, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{emails, secret};
use crate::error::ApiError;
use crate::http::extract::{AuthUser, Input, Json};
use crate::http::state::AppState;
use crate::http::users::{Fields, PrivateUser};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/email-verification", post(resend)).route("/email-verification/confirm", post(confirm))
}

/// Sends a fresh link for the current address; earlier links stay valid until they
/// expire. An already verified address gets no email, and the same answer.
async fn resend(
    State(state): State<AppState>,
    auth: AuthUser<true>,
) -> Result<(StatusCode, JsonBody<Value>), ApiError> {
    if !auth.user.email_verified {
        emails::send_verification(&state, &auth.user).await?;
    }
    Ok((StatusCode::ACCEPTED, JsonBody(json!({ "status": "sent" }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    token: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    Input(req): Json<TokenRequest>,
) -> Result<JsonBody<PrivateUser>, ApiError> {
    let mut fields = Fields::default();
    let token = fields.required(&req.token, "token");
    fields.finish()?;
    let token = token.unwrap_or_default();
    let user = state
        .store
        .confirm_email(&secret::digest(token), store::now())
        .await?
        .ok_or_else(|| ApiError::bad_request("the verification token is invalid, used or expired"))?;
    tracing::info!(user = %user.id, "email verified");
    Ok(JsonBody(PrivateUser::from(&user)))
}
