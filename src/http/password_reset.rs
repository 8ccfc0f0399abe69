//! Password reset: `POST /password-reset` emails a single-use link (the same answer
//! whether or not the account exists), `POST /password-reset/confirm` sets the new
//! password and ends every session of the user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonBody, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::input::{self, TokenAndPassword};
use crate::http::error::ApiError;
use crate::http::extract::{ClientInfo, Input, Json};
use crate::http::openapi::Status;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/password-reset", post(request)).route("/password-reset/confirm", post(confirm))
}

/// How long after its arrival a reset request is answered, whether or not an account
/// uses the address: longer than the lookup, token and email of a known address take.
const RESET_ANSWER_TIME: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PasswordResetRequest)]
struct ResetRequest {
    #[schema(value_type = String, required = true, format = Email, min_length = 1, max_length = 254, example = "alice@example.com")]
    email: Option<String>,
}

/// Emails a reset link when an account uses the address.
#[utoipa::path(
    post,
    path = "/password-reset",
    tag = "email",
    operation_id = "request_password_reset",
    summary = "Request a password reset link",
    description = "The same answer whether or not the account exists. The link's token is single-use, \
                   expires in 1 hour and is stored hashed.",
    request_body(content((ResetRequest = "application/json"))),
    responses(
        (status = 202, description = "Accepted: if an account uses this address, a link is on its way", body = Status),
        (status = 422, description = "`email` is missing or invalid (`validation_failed`)"),
        (status = 429, description = "Too many reset requests from this address or for this email (`rate_limited`)"),
    ),
)]
async fn request(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): Json<ResetRequest>,
) -> Result<(StatusCode, JsonBody<Value>), ApiError> {
    let email = input::email(req.email.as_deref(), "email")?;
    request_reset(&state, &client, email).await?;
    let body = json!({ "status": "accepted", "detail": "if an account uses this address, a reset link is on its way" });
    Ok((StatusCode::ACCEPTED, JsonBody(body)))
}

/// Counts the request against the limits and emails a reset link when an account uses
/// `email`. Known and unknown addresses are answered at the same moment: the lookup,
/// the token and the email are done by a task of their own, and the answer waits for
/// it until a fixed time after the request, no more and no less. A task that takes
/// longer goes on after the answer. The page `/forgot-password` goes through here too.
pub(crate) async fn request_reset(
    state: &AppState,
    client: &ClientInfo,
    email: crate::domain::Email,
) -> Result<(), ApiError> {
    state.accounts.limit_password_reset(client.client(), &email).await?;
    let deadline = tokio::time::Instant::now() + RESET_ANSWER_TIME;
    let background = state.clone();
    let job = tokio::spawn(async move {
        if let Err(e) = background.accounts.send_password_reset(&email).await {
            tracing::error!(error = %e, "password reset email not sent");
        }
    });
    let _ = tokio::time::timeout_at(deadline, job).await;
    tokio::time::sleep_until(deadline).await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PasswordResetConfirmRequest)]
struct ConfirmRequest {
    /// The `token` of the link in the reset email.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
    /// Under the same rules as at registration.
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 256)]
    new_password: Option<String>,
}

/// Sets a new password with a reset token and ends every session of the user.
#[utoipa::path(
    post,
    path = "/password-reset/confirm",
    tag = "email",
    operation_id = "confirm_password_reset",
    summary = "Set a new password with a reset token",
    description = "Every session and refresh token of the user is revoked. A refused password leaves the \
                   token valid.",
    request_body(content((ConfirmRequest = "application/json"))),
    responses(
        (status = 204, description = "The password is set; every session has ended"),
        (status = 400, description = "The token is invalid, used or expired (`bad_request`), or the body is malformed"),
        (status = 422, description = "A field is missing or the new password is refused (`validation_failed`)"),
    ),
)]
async fn confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): Json<ConfirmRequest>,
) -> Result<StatusCode, ApiError> {
    let TokenAndPassword { token, new_password } =
        TokenAndPassword::parse(req.token.as_deref(), req.new_password.as_deref())?;
    state.accounts.reset_password(token, new_password, client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}
