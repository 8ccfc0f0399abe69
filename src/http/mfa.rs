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

use axum::extract::Path;
use axum::extract::rejection::PathRejection;

use crate::auth::mfa::{self, Completed, Confirmation, Proof, Start};
use crate::auth::sessions::BROWSER_CLIENT_ID;
use crate::domain::FieldError;
use crate::domain::{PasskeyId, Timestamp, UserId};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, Json, JsonOrForm, refuse_cross_site};
use crate::http::state::AppState;
use crate::http::users::PrivateUser;
use crate::store::PasskeyRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/mfa", post(complete_session))
        .route("/users/me/mfa", get(factors))
        .route("/users/me/mfa/totp", post(begin_totp).delete(remove_totp))
        .route("/users/me/mfa/totp/confirm", post(confirm_totp))
        .route("/users/me/mfa/recovery-codes", post(regenerate_recovery_codes))
        .route("/users/me/mfa/passkeys/options", post(begin_passkey))
        .route("/users/me/mfa/passkeys", post(finish_passkey))
        .route("/users/me/mfa/passkeys/{id}", axum::routing::patch(rename_passkey).delete(remove_passkey))
        .route("/passkeys/options", post(begin_sign_in))
        .route("/sessions/passkey", post(sign_in_session))
}

/// The second factors of an account.
#[derive(Serialize, ToSchema)]
pub(crate) struct FactorsView {
    /// An authenticator app (TOTP) is enrolled and confirmed.
    totp: bool,
    /// The passkeys, oldest first.
    passkeys: Vec<PasskeyView>,
    /// Recovery codes not yet used.
    recovery_codes_left: i64,
    /// What a sign-in's second step accepts: `totp`, `webauthn`, `recovery_code`.
    #[schema(example = json!(["totp", "webauthn", "recovery_code"]))]
    methods: Vec<&'static str>,
}

/// A passkey of the account.
#[derive(Serialize, ToSchema)]
pub(crate) struct PasskeyView {
    #[schema(value_type = Uuid)]
    id: PasskeyId,
    name: String,
    /// A passkey that syncs between devices (`amr` `swk`), rather than one bound to a
    /// device (`hwk`).
    synced: bool,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<Timestamp>,
}

impl From<&PasskeyRecord> for PasskeyView {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            synced: p.backup_eligible,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

impl FactorsView {
    /// The factors of `user`.
    pub(crate) async fn of(state: &AppState, user: UserId) -> Result<Self, ApiError> {
        let summary = state.factors.summary(user).await?;
        let passkeys = state.factors.passkeys(user).await?;
        Ok(Self {
            totp: summary.totp,
            passkeys: passkeys.iter().map(PasskeyView::from).collect(),
            recovery_codes_left: summary.recovery_codes,
            methods: mfa::methods(&summary),
        })
    }
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
    Ok(JsonBody(FactorsView::of(&state, auth.user.id).await?))
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
    /// A passkey's answer to the `webauthn` options of the `mfa_required` answer: the
    /// `PublicKeyCredential` as JSON (`credential.toJSON()`), an object or a string.
    #[schema(value_type = Object, required = false)]
    pub webauthn: Option<serde_json::Value>,
}

impl SecondStepRequest {
    /// The token and the proof; the missing or extra field named.
    pub(crate) fn parts(&mut self) -> Result<(&str, Proof<'_>), FieldError> {
        let webauthn = credential_field(self.webauthn.take(), "webauthn")?;
        self.webauthn = webauthn;
        let token = given(&self.mfa_token).ok_or_else(|| FieldError::new("mfa_token", "is required"))?;
        match (given(&self.otp), given(&self.recovery_code), self.webauthn.as_ref()) {
            (Some(o), None, None) => Ok((token, Proof::Otp(o))),
            (None, Some(r), None) => Ok((token, Proof::RecoveryCode(r))),
            (None, None, Some(w)) => Ok((token, Proof::Passkey(w))),
            (None, None, None) => Err(FieldError::new("otp", "is required (or give recovery_code or webauthn)")),
            _ => Err(FieldError::new("otp", "give only one of otp, recovery_code and webauthn")),
        }
    }
}

/// A WebAuthn response field: a JSON object, or a string holding one (a form).
pub(crate) fn credential_field(
    value: Option<serde_json::Value>,
    field: &'static str,
) -> Result<Option<serde_json::Value>, FieldError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => serde_json::from_str::<serde_json::Value>(&s)
            .ok()
            .filter(serde_json::Value::is_object)
            .map(Some)
            .ok_or_else(|| FieldError::new(field, "is not a JSON object")),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(FieldError::new(field, "is not a JSON object")),
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
    Input(mut req): JsonOrForm<SecondStepRequest>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&method, &headers, &state)?;
    let (token, proof) = req.parts()?;
    let outcome = state.factors.complete(token, BROWSER_CLIENT_ID, proof, Start::Browser, client.client()).await;
    state.metrics.login(&outcome);
    browser_signed_in(&state, outcome?)
}

/// The answer of a browser sign-in: the private view and the cookies.
fn browser_signed_in(state: &AppState, completed: Completed) -> Result<Response, ApiError> {
    let Completed::Browser { user, cookie, device } = completed else {
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

/// A WebAuthn ceremony: its id, to send back, and the options for the browser.
#[derive(Serialize, ToSchema)]
struct CeremonyView {
    ceremony: String,
    /// `{"publicKey": …}`: for `navigator.credentials.create` (registration) or
    /// `.get` (sign-in), through `PublicKeyCredential.parse…OptionsFromJSON`.
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

/// Starts registering a passkey: the options for `navigator.credentials.create`.
#[utoipa::path(
    post,
    path = "/users/me/mfa/passkeys/options",
    tag = "mfa",
    operation_id = "begin_passkey",
    summary = "Start registering a passkey",
    description = "Confirmed by the password (or a current code or a recovery code): a passkey signs in on \
                   its own. The ceremony lives five minutes and is used once. The options ask for a \
                   discoverable credential where the authenticator can make one, with user verification.",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ConfirmationRequest = "application/json"), (ConfirmationRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The ceremony and its options", body = CeremonyView),
        (status = 403, description = "The password or code confirming it is wrong (`invalid_credentials`)"),
        (status = 409, description = "Passkeys are unavailable: the public URL names an IP address (`conflict`)"),
        (status = 422, description = "No confirmation, or more than one (`validation_failed`)"),
        (status = 429, description = "Too many wrong codes or passwords (`rate_limited`)"),
    ),
)]
async fn begin_passkey(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): JsonOrForm<ConfirmationRequest>,
) -> Result<Response, ApiError> {
    let ceremony = state.factors.begin_passkey(&auth.user, req.confirmation()?, client.client()).await?;
    Ok(no_store(JsonBody(CeremonyView { ceremony: ceremony.id, options: ceremony.options })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterPasskeyRequest {
    #[schema(value_type = String, required = true)]
    ceremony: Option<String>,
    /// 1 to 64 characters.
    #[schema(value_type = String, required = true, example = "Laptop")]
    name: Option<String>,
    /// The browser's answer (`credential.toJSON()`), an object or a string.
    #[schema(value_type = Object, required = true)]
    credential: Option<serde_json::Value>,
}

/// A new passkey, with the recovery codes when it is the account's first factor.
#[derive(Serialize, ToSchema)]
struct RegisteredView {
    passkey: PasskeyView,
    /// Shown only now; present when the passkey is the account's first factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

/// Finishes registering a passkey.
#[utoipa::path(
    post,
    path = "/users/me/mfa/passkeys",
    tag = "mfa",
    operation_id = "finish_passkey",
    summary = "Register a passkey",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((RegisterPasskeyRequest = "application/json"))),
    responses(
        (status = 201, description = "Registered; a sign-in asks for a second factor from now on", body = RegisteredView),
        (status = 409, description = "Passkeys are unavailable (`conflict`)"),
        (status = 422, description = "`ceremony` unknown, used or expired, `name` missing or too long, or \
                                      `credential` refused: another origin or relying party, a wrong challenge \
                                      or signature, a passkey registered already (`validation_failed`)"),
    ),
)]
async fn finish_passkey(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): Json<RegisterPasskeyRequest>,
) -> Result<Response, ApiError> {
    let name = crate::auth::passkeys::passkey_name(req.name.as_deref())?;
    let ceremony = given(&req.ceremony).ok_or_else(|| ApiError::field("ceremony", "is required"))?;
    let credential =
        credential_field(req.credential, "credential")?.ok_or_else(|| ApiError::field("credential", "is required"))?;
    let registered = state.factors.finish_passkey(&auth.user, ceremony, &name, &credential, client.client()).await?;
    let body =
        RegisteredView { passkey: PasskeyView::from(&registered.passkey), recovery_codes: registered.recovery_codes };
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], JsonBody(body)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenamePasskeyRequest {
    /// 1 to 64 characters.
    #[schema(value_type = String, required = true)]
    name: Option<String>,
}

/// Renames a passkey.
#[utoipa::path(
    patch,
    path = "/users/me/mfa/passkeys/{id}",
    tag = "mfa",
    operation_id = "rename_passkey",
    summary = "Rename a passkey",
    params(("id" = Uuid, Path, description = "The passkey's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((RenamePasskeyRequest = "application/json"))),
    responses(
        (status = 200, description = "Renamed", body = FactorsView),
        (status = 404, description = "No such passkey of this user (`not_found`)"),
        (status = 422, description = "`name` missing or too long (`validation_failed`)"),
    ),
)]
async fn rename_passkey(
    State(state): State<AppState>,
    auth: AuthUser,
    path: Result<Path<String>, PathRejection>,
    Input(req): Json<RenamePasskeyRequest>,
) -> Result<JsonBody<FactorsView>, ApiError> {
    let id = path.ok().and_then(|Path(id)| PasskeyId::parse(&id)).ok_or_else(ApiError::not_found)?;
    let name = crate::auth::passkeys::passkey_name(req.name.as_deref())?;
    if !state.factors.rename_passkey(&auth.user, id, &name).await? {
        return Err(ApiError::not_found());
    }
    Ok(JsonBody(FactorsView::of(&state, auth.user.id).await?))
}

/// Removes a passkey; with the last factor, the recovery codes go.
#[utoipa::path(
    delete,
    path = "/users/me/mfa/passkeys/{id}",
    tag = "mfa",
    operation_id = "remove_passkey",
    summary = "Remove a passkey",
    params(("id" = Uuid, Path, description = "The passkey's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ConfirmationRequest = "application/json"), (ConfirmationRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The password or code confirming it is wrong (`invalid_credentials`)"),
        (status = 404, description = "No such passkey of this user (`not_found`)"),
        (status = 422, description = "No confirmation, or more than one (`validation_failed`)"),
        (status = 429, description = "Too many wrong codes or passwords (`rate_limited`)"),
    ),
)]
async fn remove_passkey(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    path: Result<Path<String>, PathRejection>,
    Input(req): JsonOrForm<ConfirmationRequest>,
) -> Result<StatusCode, ApiError> {
    let id = path.ok().and_then(|Path(id)| PasskeyId::parse(&id)).ok_or_else(ApiError::not_found)?;
    state.factors.remove_passkey(&auth.user, id, req.confirmation()?, client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a sign-in with a passkey alone: options without allowed credentials, for the
/// browser's passkey list or autofill.
#[utoipa::path(
    post,
    path = "/passkeys/options",
    tag = "sessions",
    operation_id = "begin_passkey_sign_in",
    summary = "Start signing in with a passkey",
    description = "Then `POST /sessions/passkey` (a browser session) or `/token` with \
                   `grant_type=urn:latch:grant-type:passkey` (tokens), with the ceremony and the browser's answer.",
    responses(
        (status = 200, description = "The ceremony and its options", body = CeremonyView),
        (status = 409, description = "Passkeys are unavailable (`conflict`)"),
    ),
)]
async fn begin_sign_in(State(state): State<AppState>) -> Result<Response, ApiError> {
    let ceremony = state.factors.begin_sign_in().await?;
    Ok(no_store(JsonBody(CeremonyView { ceremony: ceremony.id, options: ceremony.options })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasskeySignInRequest {
    #[schema(value_type = String, required = true)]
    pub ceremony: Option<String>,
    /// The browser's answer (`credential.toJSON()`), an object or a string.
    #[schema(value_type = Object, required = true)]
    pub credential: Option<serde_json::Value>,
}

impl PasskeySignInRequest {
    pub(crate) fn parts(self) -> Result<(String, serde_json::Value), FieldError> {
        let ceremony = given(&self.ceremony).ok_or_else(|| FieldError::new("ceremony", "is required"))?.to_owned();
        let credential = credential_field(self.credential, "credential")?
            .ok_or_else(|| FieldError::new("credential", "is required"))?;
        Ok((ceremony, credential))
    }
}

/// Signs in with a passkey alone and sets the session cookie.
#[utoipa::path(
    post,
    path = "/sessions/passkey",
    tag = "sessions",
    operation_id = "login_passkey",
    summary = "Sign in with a passkey",
    request_body(content((PasskeySignInRequest = "application/json"))),
    responses(
        (status = 200, description = "Signed in: the private view", body = PrivateUser,
         headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "The passkey was not accepted, or the ceremony is unknown, used or expired \
                                      (`invalid_credentials`)"),
        (status = 403, description = "`account_disabled`, `email_not_verified`, or a cross-site request (`forbidden`)"),
        (status = 422, description = "`ceremony` or `credential` missing (`validation_failed`)"),
        (status = 429, description = "Too many refused sign-ins (`rate_limited`)"),
    ),
)]
async fn sign_in_session(
    State(state): State<AppState>,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Input(req): Json<PasskeySignInRequest>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&method, &headers, &state)?;
    let (ceremony, credential) = req.parts()?;
    let scope = crate::auth::clients::DEFAULT_SCOPES.join(" ");
    let outcome = state
        .factors
        .finish_sign_in(&ceremony, &credential, Start::Browser, BROWSER_CLIENT_ID, &scope, client.client())
        .await;
    state.metrics.login(&outcome);
    browser_signed_in(&state, outcome?)
}

fn no_store(body: impl IntoResponse) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// A field's value, unless it is missing or empty.
pub(crate) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
