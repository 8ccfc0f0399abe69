//! Second factors of the signed-in user (SPEC §9): `GET /users/me/mfa`, TOTP enrolment
//! (`POST /users/me/mfa/totp`, `…/confirm`) and removal, new recovery codes; and the
//! second step of a browser sign-in, `POST /sessions/mfa`. (`/token`'s second step is
//! the `urn:latch:grant-type:mfa` grant, in `tokens.rs`.)

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::mfa::{self, Completed, Confirmation, Proof, Start};
use crate::auth::sessions::BROWSER_CLIENT_ID;
use crate::domain::FieldError;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, JsonOrForm, refuse_cross_site};
use crate::http::state::AppState;
use crate::http::users::PrivateUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/mfa", post(complete_session))
        .route("/users/me/mfa", get(factors))
        .route("/users/me/mfa/totp", post(begin_totp).delete(remove_totp))
        .route("/users/me/mfa/totp/confirm", post(confirm_totp))
        .route("/users/me/mfa/recovery-codes", post(regenerate_recovery_codes))
}

/// The second factors of an account.
#[derive(Serialize, ToSchema)]
pub(crate) struct FactorsView {
    /// An authenticator app (TOTP) is enrolled and confirmed.
    totp: bool,
    /// Recovery codes not yet used.
    recovery_codes_left: i64,
    /// What a sign-in's second step accepts: `totp`, `recovery_code`.
    #[schema(example = json!(["totp", "recovery_code"]))]
    methods: Vec<&'static str>,
}

/// The user's second factors.
#[utoipa::path(
    get,
    path = "/users/me/mfa",
    tag = "mfa",
    operation_id = "list_factors",
    summary = "The user's second factors",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses((status = 200, description = "The factors", body = FactorsView)),
)]
async fn factors(State(state): State<AppState>, auth: AuthUser) -> Result<JsonBody<FactorsView>, ApiError> {
    Ok(JsonBody(FactorsView::from(state.factors.summary(auth.user.id).await?)))
}

impl From<crate::store::FactorSummary> for FactorsView {
    fn from(summary: crate::store::FactorSummary) -> Self {
        Self { totp: summary.totp, recovery_codes_left: summary.recovery_codes, methods: mfa::methods(&summary) }
    }
}

/// A TOTP enrolment waiting for its first code.
#[derive(Serialize, ToSchema)]
struct EnrolmentView {
    /// The key in base32, for typing into an app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: String,
    /// The `otpauth://totp/…` URI an app reads from a QR code (SHA-1, 6 digits, 30 s).
    #[schema(
        example = "otpauth://totp/Latch:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Latch"
    )]
    otpauth_uri: String,
}

/// Starts the enrolment of an authenticator app: a new key, which works once
/// `…/confirm` has seen a code of it. Starting again replaces a pending key.
#[utoipa::path(
    post,
    path = "/users/me/mfa/totp",
    tag = "mfa",
    operation_id = "begin_totp",
    summary = "Start enrolling an authenticator app (TOTP)",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The new key; show `otpauth_uri` as a QR code", body = EnrolmentView,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 409, description = "An authenticator app is enrolled already (`conflict`)"),
    ),
)]
async fn begin_totp(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    let enrolment = state.factors.begin_totp(&auth.user).await?;
    let body = EnrolmentView { secret: enrolment.secret, otpauth_uri: enrolment.otpauth_uri };
    Ok(no_store(JsonBody(body)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    /// The app's current 6-digit code.
    #[schema(value_type = String, required = true, example = "123456")]
    code: Option<String>,
}

/// Recovery codes: each works once in place of the app's code. Shown only here.
#[derive(Serialize, ToSchema)]
struct RecoveryCodes {
    #[schema(example = json!(["7kq2m-x9d4t", "…"]))]
    recovery_codes: Vec<String>,
}

/// Confirms the enrolment with the app's current code; the app is a second factor from
/// then on, and 10 new recovery codes replace any earlier ones.
#[utoipa::path(
    post,
    path = "/users/me/mfa/totp/confirm",
    tag = "mfa",
    operation_id = "confirm_totp",
    summary = "Confirm the authenticator app with its first code",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ConfirmRequest = "application/json"), (ConfirmRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Enrolled; the recovery codes, shown once", body = RecoveryCodes,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 409, description = "No enrolment is pending (`conflict`)"),
        (status = 422, description = "`code` is missing or not the app's current code (`validation_failed`)"),
        (status = 429, description = "Too many wrong codes or passwords (`rate_limited`)"),
    ),
)]
async fn confirm_totp(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): JsonOrForm<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let Some(code) = req.code.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError::field("code", "is required"));
    };
    let recovery_codes = state.factors.confirm_totp(&auth.user, code, client.client()).await?;
    Ok(no_store(JsonBody(RecoveryCodes { recovery_codes })))
}

/// What confirms a change of factors: exactly one of the password, an app code or a
/// recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmationRequest {
    #[schema(value_type = String, required = false, format = Password)]
    password: Option<String>,
    /// A current code of the authenticator app.
    #[schema(value_type = String, required = false, example = "123456")]
    otp: Option<String>,
    /// An unused recovery code; it is used up.
    #[schema(value_type = String, required = false)]
    recovery_code: Option<String>,
}

impl ConfirmationRequest {
    fn confirmation(&self) -> Result<Confirmation<'_>, ApiError> {
        // A password is checked exactly as given; codes are forgiven their spaces.
        let password = self.password.as_deref().filter(|p| !p.is_empty());
        match (password, given(&self.otp), given(&self.recovery_code)) {
            (Some(p), None, None) => Ok(Confirmation::Password(p)),
            (None, Some(o), None) => Ok(Confirmation::Factor(Proof::Otp(o))),
            (None, None, Some(r)) => Ok(Confirmation::Factor(Proof::RecoveryCode(r))),
            (None, None, None) => Err(ApiError::validation(vec![FieldError::new(
                "password",
                "is required to confirm the change (or give otp or recovery_code)",
            )])),
            _ => Err(ApiError::validation(vec![FieldError::new(
                "password",
                "give only one of password, otp and recovery_code",
            )])),
        }
    }
}

/// Removes the authenticator app; with it, the recovery codes go.
#[utoipa::path(
    delete,
    path = "/users/me/mfa/totp",
    tag = "mfa",
    operation_id = "remove_totp",
    summary = "Remove the authenticator app",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ConfirmationRequest = "application/json"), (ConfirmationRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The password or code confirming it is wrong (`invalid_credentials`)"),
        (status = 404, description = "No authenticator app is enrolled (`not_found`)"),
        (status = 422, description = "No confirmation, or more than one (`validation_failed`)"),
        (status = 429, description = "Too many wrong codes or passwords (`rate_limited`)"),
    ),
)]
async fn remove_totp(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): JsonOrForm<ConfirmationRequest>,
) -> Result<StatusCode, ApiError> {
    state.factors.remove_totp(&auth.user, req.confirmation()?, client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes 10 new recovery codes; the old ones stop working.
#[utoipa::path(
    post,
    path = "/users/me/mfa/recovery-codes",
    tag = "mfa",
    operation_id = "regenerate_recovery_codes",
    summary = "Replace the recovery codes",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ConfirmationRequest = "application/json"), (ConfirmationRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The new codes, shown once", body = RecoveryCodes,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 403, description = "The password or code confirming it is wrong (`invalid_credentials`)"),
        (status = 404, description = "The account has no second factor (`not_found`)"),
        (status = 422, description = "No confirmation, or more than one (`validation_failed`)"),
        (status = 429, description = "Too many wrong codes or passwords (`rate_limited`)"),
    ),
)]
async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): JsonOrForm<ConfirmationRequest>,
) -> Result<Response, ApiError> {
    let recovery_codes =
        state.factors.regenerate_recovery_codes(&auth.user, req.confirmation()?, client.client()).await?;
    Ok(no_store(JsonBody(RecoveryCodes { recovery_codes })))
}

/// The second step of a sign-in: its `mfa_token` and one proof.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecondStepRequest {
    /// From the `mfa_required` answer.
    #[schema(value_type = String, required = true)]
    pub mfa_token: Option<String>,
    /// A current code of the authenticator app.
    #[schema(value_type = String, required = false, example = "123456")]
    pub otp: Option<String>,
    /// An unused recovery code; it is used up.
    #[schema(value_type = String, required = false)]
    pub recovery_code: Option<String>,
}

impl SecondStepRequest {
    /// The token and the proof; the missing or extra field named.
    pub(crate) fn parts(&self) -> Result<(&str, Proof<'_>), FieldError> {
        let token = given(&self.mfa_token).ok_or_else(|| FieldError::new("mfa_token", "is required"))?;
        match (given(&self.otp), given(&self.recovery_code)) {
            (Some(o), None) => Ok((token, Proof::Otp(o))),
            (None, Some(r)) => Ok((token, Proof::RecoveryCode(r))),
            (None, None) => Err(FieldError::new("otp", "is required (or give recovery_code)")),
            _ => Err(FieldError::new("otp", "give only one of otp and recovery_code")),
        }
    }
}

/// Finishes a browser sign-in that answered `mfa_required`, and sets the session cookie.
#[utoipa::path(
    post,
    path = "/sessions/mfa",
    tag = "sessions",
    operation_id = "login_second_step",
    summary = "Finish a browser sign-in with a second factor",
    description = "The `mfa_token` of `POST /sessions`'s `mfa_required` answer works for five minutes and \
                   five attempts; a wrong code counts against the login limits like a wrong password.",
    request_body(content((SecondStepRequest = "application/json"), (SecondStepRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Signed in: the private view", body = PrivateUser,
         headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "A wrong or used code, or an unknown, expired or exhausted `mfa_token` \
                                      (`invalid_mfa`)"),
        (status = 403, description = "A cross-site request (`forbidden`: login CSRF)"),
        (status = 422, description = "`mfa_token`, or `otp` / `recovery_code`, is missing (`validation_failed`)"),
        (status = 429, description = "Too many failed sign-ins (`rate_limited`); the code was not checked"),
    ),
)]
async fn complete_session(
    State(state): State<AppState>,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Input(req): JsonOrForm<SecondStepRequest>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&method, &headers, &state)?;
    let (token, proof) = req.parts()?;
    let outcome = state.factors.complete(token, BROWSER_CLIENT_ID, proof, Start::Browser, client.client()).await;
    state.metrics.login(&outcome);
    let Completed::Browser { user, cookie, device } = outcome? else {
        return Err(anyhow::anyhow!("a browser sign-in started a token session").into());
    };
    let mut response = JsonBody(PrivateUser::from(&user)).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookies::session(&state.settings, Some(&cookie))?);
    if let Some(device) = device {
        headers.append(header::SET_COOKIE, cookies::device(&state.settings, &device)?);
    }
    Ok(response)
}

fn no_store(body: impl IntoResponse) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// A field's value, unless it is missing or empty.
pub(crate) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
