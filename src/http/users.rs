//! Registration and account management: `POST /users`, `GET/PATCH/DELETE /users/me`,
//! `POST /users/me/password`, `GET /users/{id}`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::input::{NewAccount, ProfileUpdate};
use crate::domain::{Timestamp, UserId};
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, Json, JsonOrForm};
use crate::http::state::AppState;
use crate::store::{KeepSessions, UserRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(register))
        .route("/users/me", get(me).patch(update_me).delete(delete_me))
        .route("/users/me/password", post(change_password))
        .route("/users/{id}", get(public_profile))
}

/// What the user themself (or an admin) sees.
#[derive(Serialize, ToSchema)]
pub struct PrivateUser {
    #[schema(value_type = Uuid)]
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    /// The user's roles (`admin` opens the admin API), sorted.
    pub roles: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&UserRecord> for PrivateUser {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            roles: u.roles().map(str::to_owned).collect(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What anyone sees.
#[derive(Serialize, ToSchema)]
struct PublicUser {
    #[schema(value_type = Uuid)]
    id: UserId,
    username: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// 3–32 characters of `[A-Za-z0-9_.-]`, unique regardless of case.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    username: Option<String>,
    /// At most 254 bytes; stored lowercased.
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "alice@example.com")]
    email: Option<String>,
    /// 8 (or `LATCH_PASSWORD_MIN_LENGTH`) to 256 characters; not a common password, nor
    /// the username or email.
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 256)]
    password: Option<String>,
}

/// Creates an account and sends a verification email.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "register",
    summary = "Register a new account",
    request_body(content(
        (RegisterRequest = "application/json"),
        (RegisterRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "The account; a verification email is on its way", body = PrivateUser,
         headers(("Location" = String, description = "`/users/{id}` of the new account"))),
        (status = 409, description = "The username or email is taken, regardless of case (`conflict`)"),
        (status = 422, description = "Invalid fields, each named in `errors` (`validation_failed`)"),
        (status = 429, description = "Too many registrations from this address (`rate_limited`)"),
    ),
)]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    Input(req): JsonOrForm<RegisterRequest>,
) -> Result<Response, ApiError> {
    let account = NewAccount::parse(
        state.accounts.policy(),
        req.username.as_deref(),
        req.email.as_deref(),
        req.password.as_deref(),
    )?;
    let user = state.accounts.register(account, client.client()).await?;
    state.metrics.registration();
    let location = HeaderValue::from_str(&format!("/users/{}", user.id)).map_err(anyhow::Error::from)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], JsonBody(PrivateUser::from(&user))).into_response())
}

/// The private view of the authenticated user.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    operation_id = "get_me",
    summary = "The authenticated user",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses((status = 200, description = "The private view", body = PrivateUser)),
)]
async fn me(auth: AuthUser<true>) -> JsonBody<PrivateUser> {
    JsonBody(PrivateUser::from(&auth.user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateUserRequest)]
struct UpdateRequest {
    #[schema(value_type = Option<String>, required = false, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    username: Option<String>,
    /// A new address becomes unverified and gets a verification email.
    #[schema(value_type = Option<String>, required = false, format = Email, max_length = 254)]
    email: Option<String>,
    /// Required when changing the email (checked only then).
    #[schema(value_type = Option<String>, required = false, format = Password)]
    current_password: Option<String>,
}

/// Renames the user or changes their email.
#[utoipa::path(
    patch,
    path = "/users/me",
    tag = "users",
    operation_id = "update_me",
    summary = "Change the username or email",
    description = "Giving the current value of a field is not a change. A new email becomes unverified and \
                   gets a verification email; the old address is told of the change.",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((UpdateRequest = "application/json"))),
    responses(
        (status = 200, description = "The private view after the change", body = PrivateUser),
        (status = 403, description = "Changing the email needs the right `current_password` \
                                      (`invalid_credentials`); or a cross-site cookie request (`forbidden`)"),
        (status = 409, description = "The username or email is taken (`conflict`)"),
        (status = 422, description = "Invalid fields (`validation_failed`)"),
        (status = 429, description = "Too many wrong passwords, or too many renames (`rate_limited`)"),
    ),
)]
async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser<true>,
    client: ClientInfo,
    Input(req): Json<UpdateRequest>,
) -> Result<JsonBody<PrivateUser>, ApiError> {
    let update = ProfileUpdate::parse(req.username.as_deref(), req.email.as_deref())?;
    let current = req.current_password.as_deref();
    let updated = state.accounts.update_profile(auth.user, update, current, client.client()).await?;
    Ok(JsonBody(PrivateUser::from(&updated)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    current_password: Option<String>,
    /// Under the same rules as at registration.
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 256)]
    new_password: Option<String>,
}

/// Changes the password and ends every other session of the user.
#[utoipa::path(
    post,
    path = "/users/me/password",
    tag = "users",
    operation_id = "change_password",
    summary = "Change the password",
    description = "Every session and refresh token of the user except the one making the request is revoked.",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((ChangePasswordRequest = "application/json"))),
    responses(
        (status = 204, description = "Changed; the other sessions have ended"),
        (status = 403, description = "Wrong or missing `current_password` (`invalid_credentials`); or a \
                                      cross-site cookie request (`forbidden`)"),
        (status = 422, description = "The new password is refused (`validation_failed`)"),
        (status = 429, description = "Too many wrong passwords (`rate_limited`); the password was not checked"),
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let keep = auth.session_id().map_or(KeepSessions::None, KeepSessions::This);
    let (new, current) = (req.new_password.as_deref(), req.current_password.as_deref());
    state.accounts.change_password(&auth.user, new, current, keep, client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeleteAccountRequest)]
struct DeleteRequest {
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    password: Option<String>,
}

/// Deletes the account and all its sessions.
#[utoipa::path(
    delete,
    path = "/users/me",
    tag = "users",
    operation_id = "delete_me",
    summary = "Delete the account",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    request_body(content((DeleteRequest = "application/json"))),
    responses(
        (status = 204, description = "The account and all its sessions are gone"),
        (status = 403, description = "Wrong or missing `password` (`invalid_credentials`); or a cross-site \
                                      cookie request (`forbidden`)"),
        (status = 429, description = "Too many wrong passwords (`rate_limited`); the password was not checked"),
    ),
)]
async fn delete_me(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Input(req): Json<DeleteRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete(&auth.user, req.password.as_deref(), client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public view of any user.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "get_user",
    summary = "A user's public profile",
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The public view", body = PublicUser),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn public_profile(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<PublicUser>, ApiError> {
    // Not an id, nor even text: no such resource, as a problem like every other answer.
    let id = path.ok().and_then(|Path(id)| UserId::parse(&id)).ok_or_else(ApiError::not_found)?;
    let user = state.store.user_by_id(id).await?.ok_or_else(ApiError::not_found)?;
    Ok(JsonBody(PublicUser { id: user.id, username: user.username, created_at: user.created_at }))
}
