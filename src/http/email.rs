//! Email verification: `POST /email-verification` sends a new link,
//! `POST /email-verification/confirm` uses one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonBody, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::input;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, Json};
use crate::http::openapi::Status;
use crate::http::state::AppState;
use crate::http::users::PrivateUser;

pub fn router() -> Router<AppState> {
    Router::new().route("/email-verification", post(resend)).route("/email-verification/confirm", post(confirm))
}

/// Sends a fresh link for the current address; earlier links stay valid until they
/// expire. An already verified address gets no email, and the same answer.
#[utoipa::path(
    post,
    path = "/email-verification",
    tag = "email",
    operation_id = "send_verification_email",
    summary = "Send a new verification email",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 202, description = "Sent (or nothing to do: the address is verified already)", body = Status),
        (status = 429, description = "Too many verification emails for this account (`rate_limited`)"),
    ),
)]
async fn resend(
    State(state): State<AppState>,
    client: ClientInfo,
    auth: AuthUser<true>,
) -> Result<(StatusCode, JsonBody<Value>), ApiError> {
    state.accounts.resend_verification(&auth.user, client.client()).await?;
    Ok((StatusCode::ACCEPTED, JsonBody(json!({ "status": "sent" }))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VerificationConfirmRequest)]
pub struct TokenRequest {
    /// The `token` of the link in the verification email.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
}

/// Uses a verification link: the address it was sent to becomes verified.
#[utoipa::path(
    post,
    path = "/email-verification/confirm",
    tag = "email",
    operation_id = "confirm_email",
    summary = "Confirm an email address",
    description = "The token is single-use and expires in 24 hours; it verifies only the address it was sent to.",
    request_body(content((TokenRequest = "application/json"))),
    responses(
        (status = 200, description = "The private view, `email_verified: true`", body = PrivateUser),
        (status = 400, description = "The token is invalid, used or expired (`bad_request`), or the body is malformed"),
        (status = 422, description = "`token` is missing (`validation_failed`)"),
    ),
)]
async fn confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): Json<TokenRequest>,
) -> Result<JsonBody<PrivateUser>, ApiError> {
    let token = input::required(req.token.as_deref(), "token")?;
    let user = state.accounts.confirm_email(token, client.client()).await?;
    Ok(JsonBody(PrivateUser::from(&user)))
}
