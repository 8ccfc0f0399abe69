//! The admin API under `/admin/` (users, their sessions, clients, the audit log) and
//! the user's own security history, `GET /users/me/events`.
//!
//! Every `/admin/` route first authenticates the caller and requires the `admin` role,
//! before it reads a path, a query or a body: an unauthenticated caller gets 401 and a
//! user without the role 403, the same answers whatever the rest of the request names.
//! Lists are paged by opaque cursors that carry an integrity tag, so that a cursor
//! that was altered is refused (400) instead of silently starting elsewhere.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::admin::{AdminError, RoleNames, UserPatch};
use crate::auth::audit::EventView;
use crate::auth::registry::{ClientSpec, ClientView};
use crate::domain::{EventId, FieldError, SessionId, Timestamp, UserId, roles};
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo, Input, Json};
use crate::http::state::AppState;
use crate::http::users::PrivateUser;
use crate::store::{
    Actor, EventQuery, EventType, Outcome, SessionRecord, UserPosition, UserQuery, UserRecord, UserSearch,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/admin/users/{id}/sessions", get(user_sessions).delete(end_user_sessions))
        .route("/admin/users/{id}/sessions/{sid}", axum::routing::delete(end_user_session))
        .route("/admin/users/{id}/mfa", get(user_factors).delete(reset_user_factors))
        .route("/admin/clients", get(list_clients).post(create_client))
        .route("/admin/clients/{client_id}", get(get_client).patch(update_client).delete(delete_client))
        .route("/admin/clients/{client_id}/secret", post(rotate_secret))
        .route("/admin/audit", get(audit))
        .route("/users/me/events", get(my_events))
}

/// Default page size of every list.
const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
const MAX_LIMIT: u32 = 200;

/// A caller allowed on the admin API: a user with the `admin` role (their current
/// roles, not those of the token they present: taking the role away takes effect at
/// once), and where they call from.
pub struct AdminCaller {
    pub actor: Actor,
    pub client: ClientInfo,
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A user first, through the cache of verified tokens; then, for a token that is
        // no user's, a confidential client's own token with the admin scope.
        let auth = match AuthUser::<false>::from_request_parts(parts, state).await {
            Ok(auth) => auth,
            Err(refused) => {
                let bearer = crate::http::extract::bearer_token(&parts.headers);
                let Some((client_id, may_admin)) = bearer.and_then(|token| state.oidc.client_of_token(token)) else {
                    return Err(refused);
                };
                return Self::client(parts, state, client_id, may_admin).await;
            }
        };
        let client = ClientInfo::from_request_parts(parts, state).await?;
        if !auth.user.has_role(roles::ADMIN) {
            // Recorded once a minute per user and address: a refused attempt at the admin
            // API is worth knowing of, a thousand of them are not worth a thousand rows.
            let audit = state.sessions.audit();
            let event = audit.event_from(EventType::AccessDenied, Actor::User(Some(auth.user.id)), client.client());
            audit.record_quietly(event.failed().detail("reason", "admin_role_required")).await;
            return Err(ApiError::forbidden("the admin API needs the admin role"));
        }
        Ok(Self { actor: Actor::Admin(auth.user.id), client })
    }
}

impl AdminCaller {
    /// A client calling with its own token: allowed with the admin scope.
    async fn client(parts: &mut Parts, state: &AppState, client_id: String, may_admin: bool) -> Result<Self, ApiError> {
        let client = ClientInfo::from_request_parts(parts, state).await?;
        if !may_admin {
            let audit = state.sessions.audit();
            let event = audit.event_from(EventType::AccessDenied, Actor::Client(client_id), client.client());
            audit.record_quietly(event.failed().detail("reason", "admin_scope_required")).await;
            return Err(ApiError::forbidden("the admin API needs the admin role, or a client token with latch:admin"));
        }
        Ok(Self { actor: Actor::Client(client_id), client })
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound => ApiError::not_found(),
            AdminError::Invalid(errors) => ApiError::validation(errors),
            AdminError::Taken(field) => ApiError::conflict(field),
            AdminError::Store(e) => e.into(),
        }
    }
}

// ---- cursors ----

/// Kinds of cursor: one list's cursor is refused by another.
const USERS: u8 = b'u';
const EVENTS: u8 = b'e';

/// A cursor is the position after the last row of a page, sealed (XChaCha20-Poly1305
/// under the installation's cursor key) together with the list and the filters it
/// belongs to: it cannot be read, altered, forged, or used with other filters.
fn seal(key: &[u8; 32], kind: u8, binding: &str, payload: &[u8]) -> String {
    use chacha20poly1305::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = [&[kind][..], binding.as_bytes()].concat();
    // Sealing a few bytes in memory cannot fail; an empty cursor would just be refused.
    let sealed = cipher.encrypt(&nonce, Payload { msg: payload, aad: &aad }).unwrap_or_default();
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of a cursor of `kind` for `binding`; a 400 naming `cursor` for anything
/// else.
fn open(key: &[u8; 32], cursor: &str, kind: u8, binding: &str) -> Result<Vec<u8>, ApiError> {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused_cursor())?;
    if bytes.len() < 24 + 16 || bytes.len() > 1024 {
        return Err(refused_cursor());
    }
    let (nonce, sealed) = bytes.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| refused_cursor())?;
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let aad = [&[kind][..], binding.as_bytes()].concat();
    cipher
        .decrypt(&chacha20poly1305::XNonce::from(nonce), Payload { msg: sealed, aad: &aad })
        .map_err(|_| refused_cursor())
}

fn refused_cursor() -> ApiError {
    ApiError::bad_request_field("cursor", "is not a cursor of this list with these filters")
}

/// What a users cursor is bound to: every filter but the page size.
fn users_binding(query: &UserQuery) -> String {
    format!("{:?}|{:?}|{:?}|{:?}", query.search, query.role, query.disabled, query.email_verified)
}

fn user_cursor(key: &[u8; 32], query: &UserQuery, position: &UserPosition) -> String {
    let payload = [&[u8::from(position.by_email)][..], position.key.as_bytes()].concat();
    seal(key, USERS, &users_binding(query), &payload)
}

fn open_user_cursor(key: &[u8; 32], query: &UserQuery, cursor: &str) -> Result<UserPosition, ApiError> {
    let payload = open(key, cursor, USERS, &users_binding(query))?;
    let (&flag, text) = payload.split_first().ok_or_else(refused_cursor)?;
    let key = String::from_utf8(text.to_vec()).map_err(|_| refused_cursor())?;
    // Only what a stored username or email can be reaches the database.
    if flag > 1 || key.len() > 320 || key.chars().any(char::is_control) {
        return Err(refused_cursor());
    }
    Ok(UserPosition { by_email: flag == 1, key })
}

/// What an events cursor is bound to: every filter but the page size.
fn events_binding(query: &EventQuery) -> String {
    let q = query;
    format!("{:?}|{:?}|{:?}|{:?}|{:?}|{:?}", q.user, q.actor, q.outcome, q.types, q.since, q.until)
}

fn event_cursor(key: &[u8; 32], query: &EventQuery, at: Timestamp, id: EventId) -> String {
    let payload = [&at.unix().to_be_bytes()[..], id.as_uuid().as_bytes()].concat();
    seal(key, EVENTS, &events_binding(query), &payload)
}

fn open_event_cursor(key: &[u8; 32], query: &EventQuery, cursor: &str) -> Result<(Timestamp, EventId), ApiError> {
    let payload = open(key, cursor, EVENTS, &events_binding(query))?;
    let (secs, id) = payload.split_at_checked(8).ok_or_else(refused_cursor)?;
    let secs = i64::from_be_bytes(secs.try_into().map_err(|_| refused_cursor())?);
    let id = uuid::Uuid::from_slice(id).map_err(|_| refused_cursor())?;
    let at = Timestamp::from_unix(secs).ok_or_else(refused_cursor)?;
    Ok((at, EventId::from_uuid(id)))
}

// ---- query strings ----

/// The parameters of a query string, each known name at most once (`repeatable` names
/// may repeat); anything else is a 400 that names the parameter.
fn query_params(query: Option<&str>, known: &[&str], repeatable: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(ApiError::bad_request_field(name.as_ref(), "is not a parameter of this list"));
        }
        if !repeatable.contains(&name.as_ref()) && seen.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request_field(name.as_ref(), "is given more than once"));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

fn one<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn limit(params: &[(String, String)]) -> Result<u32, ApiError> {
    match one(params, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::field("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))),
        },
    }
}

fn flag(params: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    match one(params, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::field(name, "must be true or false")),
    }
}

fn time_param(params: &[(String, String)], name: &str) -> Result<Option<Timestamp>, ApiError> {
    one(params, name)
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                ApiError::field(name, "must be an RFC 3339 time of the years 1 to 9999, like 2026-11-30T08:00:00Z")
            })
        })
        .transpose()
}

/// An id from a path segment; anything else is no such resource.
fn path_id<T>(path: Result<Path<String>, PathRejection>, parse: fn(&str) -> Option<T>) -> Result<T, ApiError> {
    path.ok().and_then(|Path(id)| parse(&id)).ok_or_else(ApiError::not_found)
}

// ---- users ----

/// An account as an admin sees it: the private view and whether it is disabled.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    #[serde(flatten)]
    user: PrivateUser,
    disabled: bool,
}

impl From<&UserRecord> for AdminUser {
    fn from(u: &UserRecord) -> Self {
        Self { user: PrivateUser::from(u), disabled: u.disabled }
    }
}

/// A page of users.
#[derive(Serialize, ToSchema)]
struct UserPage {
    users: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Lists and searches users.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    operation_id = "admin_list_users",
    summary = "List and search users",
    description = "Ordered by username (case-insensitive). With `q`, the users whose username or email \
                   starts with `q` (case-insensitive), or the one whose id it is: first those found by \
                   their username, then those found only by their email, in email order. Each search \
                   is an index range: its cost follows the page, not the number of users.",
    params(
        ("q" = Option<String>, Query, description = "Start of a username or email (1–254 characters), or a user id"),
        ("role" = Option<String>, Query, description = "Only users holding this role"),
        ("disabled" = Option<bool>, Query, description = "Only disabled (`true`) or enabled (`false`) users"),
        ("email_verified" = Option<bool>, Query, description = "Only users whose address is (not) verified"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (opaque)"),
    ),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "An unknown or repeated parameter, or a cursor that is not one of this list (`bad_request`)"),
        (status = 422, description = "An invalid parameter value (`validation_failed`)"),
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    _admin: AdminCaller,
    RawQuery(query): RawQuery,
) -> Result<JsonBody<UserPage>, ApiError> {
    let known = ["q", "role", "disabled", "email_verified", "limit", "cursor"];
    let params = query_params(query.as_deref(), &known, &[])?;
    let search = match one(&params, "q") {
        None => None,
        Some(q) if q.is_empty() || q.chars().count() > 254 || q.chars().any(char::is_control) => {
            return Err(ApiError::field("q", "must be 1 to 254 characters without control characters"));
        }
        // An id in its usual form; no username has 36 characters (32 hex digits do).
        Some(q) => Some(match UserId::parse(q).filter(|_| q.len() == 36) {
            Some(id) => UserSearch::Id(id),
            // Stored keys are lowercase; so is the search.
            None => UserSearch::Prefix(q.to_lowercase()),
        }),
    };
    let role = one(&params, "role").map(|r| roles::parse(r, "role")).transpose().map_err(ApiError::from)?;
    let page = limit(&params)?;
    let mut query = UserQuery {
        search,
        role,
        disabled: flag(&params, "disabled")?,
        email_verified: flag(&params, "email_verified")?,
        after: None,
        // One more than asked tells whether there is a next page.
        limit: page + 1,
    };
    let key = &state.cursor_key;
    query.after = one(&params, "cursor").map(|c| open_user_cursor(key, &query, c)).transpose()?;
    let mut users = state.admin.users(&query).await?;
    let next_cursor = if users.len() > page as usize {
        users.truncate(page as usize);
        users.last().map(|last| user_cursor(key, &query, &query.position(last)))
    } else {
        None
    };
    Ok(JsonBody(UserPage { users: users.iter().map(AdminUser::from).collect(), next_cursor }))
}

/// One user.
#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    tag = "admin",
    operation_id = "admin_get_user",
    summary = "One user",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUser),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn get_user(
    State(state): State<AppState>,
    _admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<AdminUser>, ApiError> {
    let id = path_id(path, UserId::parse)?;
    Ok(JsonBody(AdminUser::from(&state.admin.user(id).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminUserUpdate)]
/// Fields left out (or `null`) stay as they are.
struct UpdateUserRequest {
    #[schema(value_type = Option<String>, required = false, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    /// A new address becomes unverified (unless `email_verified` is given too) and gets
    /// a verification email; the old address is told of the change.
    #[schema(value_type = Option<String>, required = false, format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(value_type = Option<bool>, required = false)]
    email_verified: Option<bool>,
    /// `true` ends every session of the user at once; logins get 403 `account_disabled`.
    #[schema(value_type = Option<bool>, required = false)]
    disabled: Option<bool>,
    /// Replaces every role (names of 1–64 characters of `[A-Za-z0-9_.:-]`, at most 32).
    #[schema(value_type = Option<Vec<String>>, required = false)]
    roles: Option<Vec<String>>,
    /// Roles to give.
    #[schema(value_type = Option<Vec<String>>, required = false)]
    add_roles: Option<Vec<String>>,
    /// Roles to take away.
    #[schema(value_type = Option<Vec<String>>, required = false)]
    remove_roles: Option<Vec<String>>,
}

/// Changes a user.
#[utoipa::path(
    patch,
    path = "/admin/users/{id}",
    tag = "admin",
    operation_id = "admin_update_user",
    summary = "Change a user",
    description = "Fields left out stay. Giving the current value is no change. Disabling ends every \
                   session of the user at once (on every instance within a second). An admin cannot \
                   disable themself or take away their own `admin` role here (`latch user` can).",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body(content((UpdateUserRequest = "application/json"))),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The user after the change", body = AdminUser),
        (status = 404, description = "No such user (`not_found`)"),
        (status = 409, description = "The username or email is taken (`conflict`)"),
        (status = 422, description = "Invalid fields, each named (`validation_failed`)"),
    ),
)]
async fn update_user(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
    Input(req): Json<UpdateUserRequest>,
) -> Result<JsonBody<AdminUser>, ApiError> {
    let id = path_id(path, UserId::parse)?;
    // Every bad field at once.
    let update = crate::domain::input::ProfileUpdate::parse(req.username.as_deref(), req.email.as_deref());
    let roles = RoleNames::parse(req.roles.as_deref(), req.add_roles.as_deref(), req.remove_roles.as_deref());
    let (update, roles) = match (update, roles) {
        (Ok(update), Ok(roles)) => (update, roles),
        (update, roles) => {
            let errors = update.err().into_iter().flatten().chain(roles.err().into_iter().flatten()).collect();
            return Err(ApiError::validation(errors));
        }
    };
    let patch = UserPatch {
        username: update.username,
        email: update.email,
        email_verified: req.email_verified,
        disabled: req.disabled,
        roles,
    };
    let updated = state.admin.update(&admin.actor, id, patch, admin.client.client()).await?;
    Ok(JsonBody(AdminUser::from(&updated)))
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}",
    tag = "admin",
    operation_id = "admin_delete_user",
    summary = "Delete a user",
    description = "The account, its sessions and tokens are gone; its audit events stay until their \
                   retention ends. An admin cannot delete themself here.",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user (`not_found`)"),
        (status = 422, description = "The admin's own account (`validation_failed`)"),
    ),
)]
async fn delete_user(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(path, UserId::parse)?;
    state.admin.delete(&admin.actor, id, admin.client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A live session, as an admin sees it.
#[derive(Serialize, ToSchema)]
#[schema(as = AdminSession)]
struct SessionView {
    #[schema(value_type = Uuid)]
    id: SessionId,
    /// The client that started it (`browser` for a cookie session).
    client_id: String,
    scope: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    last_seen_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        Self {
            id: s.id,
            client_id: s.client_id,
            scope: s.scope,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionView>,
}

/// A user's live sessions.
#[utoipa::path(
    get,
    path = "/admin/users/{id}/sessions",
    tag = "admin",
    operation_id = "admin_user_sessions",
    summary = "A user's live sessions",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The live sessions, newest first", body = SessionList),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn user_sessions(
    State(state): State<AppState>,
    _admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<SessionList>, ApiError> {
    let id = path_id(path, UserId::parse)?;
    let sessions = state.admin.sessions(id).await?;
    Ok(JsonBody(SessionList { sessions: sessions.into_iter().map(SessionView::from).collect() }))
}

/// Ends every session of a user.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}/sessions",
    tag = "admin",
    operation_id = "admin_end_user_sessions",
    summary = "End every session of a user",
    description = "Their refresh tokens die and Latch refuses their access tokens at once (every instance \
                   within a second).",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Every session has ended"),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn end_user_sessions(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(path, UserId::parse)?;
    state.admin.end_sessions(&admin.actor, id, admin.client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's second factors.
#[utoipa::path(
    get,
    path = "/admin/users/{id}/mfa",
    tag = "admin",
    operation_id = "admin_user_factors",
    summary = "A user's second factors",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The factors", body = crate::http::mfa::FactorsView),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn user_factors(
    State(state): State<AppState>,
    _admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<crate::http::mfa::FactorsView>, ApiError> {
    let id = path_id(path, UserId::parse)?;
    let user = state.store.user_by_id(id).await?.ok_or_else(ApiError::not_found)?;
    Ok(JsonBody(crate::http::mfa::FactorsView::of(&state, user.id).await?))
}

/// Removes every second factor of a user, for one who lost them all.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}/mfa",
    tag = "admin",
    operation_id = "admin_reset_user_factors",
    summary = "Remove a user's second factors",
    description = "The authenticator app and the recovery codes go; the user signs in with the password \
                   alone until they enrol again, and is told so by email.",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "The user has no second factor now"),
        (status = 404, description = "No such user (`not_found`)"),
    ),
)]
async fn reset_user_factors(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(path, UserId::parse)?;
    let user = state.store.user_by_id(id).await?.ok_or_else(ApiError::not_found)?;
    state.factors.reset(&user, admin.actor.clone(), admin.client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends one session of a user.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}/sessions/{sid}",
    tag = "admin",
    operation_id = "admin_end_user_session",
    summary = "End one session of a user",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("sid" = Uuid, Path, description = "The session's id"),
    ),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 404, description = "No such user, or not a live session of theirs (`not_found`)"),
    ),
)]
async fn end_user_session(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (id, sid) = path
        .ok()
        .and_then(|Path((id, sid))| Some((UserId::parse(&id)?, SessionId::parse(&sid)?)))
        .ok_or_else(ApiError::not_found)?;
    state.admin.end_session(&admin.actor, id, sid, admin.client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- clients ----

#[derive(Serialize, ToSchema)]
struct ClientList {
    clients: Vec<ClientView>,
}

/// Every registered client.
#[utoipa::path(
    get,
    path = "/admin/clients",
    tag = "admin",
    operation_id = "admin_list_clients",
    summary = "Every registered client",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The clients, oldest first", body = ClientList),
    ),
)]
async fn list_clients(State(state): State<AppState>, _admin: AdminCaller) -> Result<JsonBody<ClientList>, ApiError> {
    let clients = state.admin.clients().await?;
    Ok(JsonBody(ClientList { clients: clients.iter().map(ClientView::from).collect() }))
}

/// One client.
#[utoipa::path(
    get,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_get_client",
    summary = "One registered client",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 404, description = "No such client (`not_found`)"),
    ),
)]
async fn get_client(
    State(state): State<AppState>,
    _admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<ClientView>, ApiError> {
    let id = path_id(path, |s| Some(s.to_owned()))?;
    Ok(JsonBody(ClientView::from(&state.admin.client(&id).await?)))
}

/// Fields left out (or `null`) take their defaults (or, on `PATCH`, stay as they are).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
    /// For people (shown on consent pages); 1–200 characters. Required to create.
    #[schema(value_type = Option<String>, required = false)]
    name: Option<String>,
    /// Create only: the client keeps a secret (a server-side app).
    #[schema(value_type = Option<bool>, required = false)]
    confidential: Option<bool>,
    /// Trusted by the operator: users are not asked for consent.
    #[schema(value_type = Option<bool>, required = false)]
    first_party: Option<bool>,
    /// Web origins whose browsers may call the API (CORS).
    #[schema(value_type = Option<Vec<String>>, required = false)]
    origins: Option<Vec<String>>,
    /// Exact redirect URIs for the authorization-code flow.
    #[schema(value_type = Option<Vec<String>>, required = false)]
    redirect_uris: Option<Vec<String>>,
    /// Exact URIs to return to after logout.
    #[schema(value_type = Option<Vec<String>>, required = false)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Scopes the client may be granted (default `openid profile email offline_access`).
    #[schema(value_type = Option<Vec<String>>, required = false)]
    scopes: Option<Vec<String>>,
}

impl ClientRequest {
    fn spec(self) -> ClientSpec {
        ClientSpec {
            name: self.name,
            first_party: self.first_party,
            origins: self.origins,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            scopes: self.scopes,
        }
    }
}

/// A new client, with its secret: shown only in this answer.
#[derive(Serialize, ToSchema)]
struct CreatedClient {
    #[serde(flatten)]
    client: ClientView,
    /// A confidential client's secret; Latch keeps only its digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// Registers a client.
#[utoipa::path(
    post,
    path = "/admin/clients",
    tag = "admin",
    operation_id = "admin_create_client",
    summary = "Register a client",
    request_body(content((ClientRequest = "application/json"))),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The client, with its secret when confidential (shown only now)", body = CreatedClient,
         headers(("Location" = String, description = "`/admin/clients/{client_id}` of the new client"))),
        (status = 422, description = "Invalid fields, each named (`validation_failed`)"),
    ),
)]
async fn create_client(
    State(state): State<AppState>,
    admin: AdminCaller,
    Input(req): Json<ClientRequest>,
) -> Result<Response, ApiError> {
    let confidential = req.confidential.unwrap_or(false);
    let (client, secret) =
        state.admin.create_client(&admin.actor, &req.spec(), confidential, admin.client.client()).await?;
    let location = axum::http::HeaderValue::from_str(&format!("/admin/clients/{}", client.client_id))
        .map_err(anyhow::Error::from)?;
    let body = CreatedClient { client: ClientView::from(&client), client_secret: secret };
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, location)], JsonBody(body)).into_response())
}

/// Changes a client.
#[utoipa::path(
    patch,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_update_client",
    summary = "Change a client",
    description = "A list given replaces the stored one. Whether a client is confidential cannot change.",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body(content((ClientRequest = "application/json"))),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The client after the change", body = ClientView),
        (status = 404, description = "No such client (`not_found`)"),
        (status = 422, description = "Invalid fields, each named (`validation_failed`)"),
    ),
)]
async fn update_client(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
    Input(req): Json<ClientRequest>,
) -> Result<JsonBody<ClientView>, ApiError> {
    let id = path_id(path, |s| Some(s.to_owned()))?;
    if req.confidential.is_some() {
        return Err(ApiError::field("confidential", "cannot change; register a new client"));
    }
    let client = state.admin.update_client(&admin.actor, &id, &req.spec(), admin.client.client()).await?;
    Ok(JsonBody(ClientView::from(&client)))
}

/// Deletes a client.
#[utoipa::path(
    delete,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "admin_delete_client",
    summary = "Delete a client",
    description = "The sessions it started end.",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such client (`not_found`)"),
    ),
)]
async fn delete_client(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(path, |s| Some(s.to_owned()))?;
    state.admin.delete_client(&admin.actor, &id, admin.client.client()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct NewSecret {
    client_id: String,
    /// Shown only now; the old secret no longer works.
    client_secret: String,
}

/// A new secret for a confidential client.
#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/secret",
    tag = "admin",
    operation_id = "admin_rotate_client_secret",
    summary = "Give a confidential client a new secret",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The new secret (shown only now)", body = NewSecret),
        (status = 404, description = "No such client (`not_found`)"),
        (status = 422, description = "A public client, which has no secret (`validation_failed`)"),
    ),
)]
async fn rotate_secret(
    State(state): State<AppState>,
    admin: AdminCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<JsonBody<NewSecret>, ApiError> {
    let id = path_id(path, |s| Some(s.to_owned()))?;
    let secret = state.admin.rotate_secret(&admin.actor, &id, admin.client.client()).await?;
    Ok(JsonBody(NewSecret { client_id: id, client_secret: secret }))
}

// ---- audit ----

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
struct EventPage {
    events: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The filters both event lists share, read from `params`.
fn event_query(
    key: &[u8; 32],
    params: &[(String, String)],
    user: Option<UserId>,
    actor: Option<String>,
) -> Result<(EventQuery, u32), ApiError> {
    let mut types = Vec::new();
    for (name, value) in params {
        if name != "type" {
            continue;
        }
        for t in value.split(',').filter(|t| !t.is_empty()) {
            let kind = EventType::parse(t)
                .ok_or_else(|| ApiError::from(FieldError::new("type", format!("`{t}` is not an event type"))))?;
            types.push(kind);
        }
    }
    let page = limit(params)?;
    let outcome = one(params, "outcome")
        .map(|o| Outcome::parse(o).ok_or_else(|| ApiError::field("outcome", "must be success or failure")))
        .transpose()?;
    let mut query = EventQuery {
        user,
        actor,
        outcome,
        types,
        since: time_param(params, "since")?,
        until: time_param(params, "until")?,
        after: None,
        limit: page + 1,
    };
    query.after = one(params, "cursor").map(|c| open_event_cursor(key, &query, c)).transpose()?;
    Ok((query, page))
}

/// A page of events; `own` shows them to the user they are about, who learns that an
/// admin acted but not which one, nor from where.
async fn event_page(state: &AppState, query: EventQuery, page: u32, own: bool) -> Result<EventPage, ApiError> {
    let mut events = state.sessions.audit().events(&query).await?;
    let next_cursor = if events.len() > page as usize {
        events.truncate(page as usize);
        events.last().map(|e| event_cursor(&state.cursor_key, &query, e.at, e.id))
    } else {
        None
    };
    let views = events.into_iter().map(EventView::from).map(|mut e| {
        if own && e.actor.kind != "user" {
            (e.actor.id, e.ip, e.user_agent) = (None, None, None);
        }
        e
    });
    Ok(EventPage { events: views.collect(), next_cursor })
}

/// The audit log.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    operation_id = "admin_audit",
    summary = "The audit log, newest first",
    params(
        ("user" = Option<String>, Query, description = "Only events about this user: an id (also of a deleted account), a username or an email"),
        ("actor" = Option<String>, Query, description = "Only events done by this user (id, username or email) or client (client id)"),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`"),
        ("type" = Option<Vec<String>>, Query, explode = true, description = "Only events of these types (repeat, or separate with commas)"),
        ("since" = Option<String>, Query, format = DateTime, description = "At or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Before this time (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (opaque)"),
    ),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "An unknown or repeated parameter, or a cursor that is not one of this list (`bad_request`)"),
        (status = 422, description = "An invalid parameter value (`validation_failed`)"),
    ),
)]
async fn audit(
    State(state): State<AppState>,
    _admin: AdminCaller,
    RawQuery(query): RawQuery,
) -> Result<JsonBody<EventPage>, ApiError> {
    let known = ["user", "actor", "outcome", "type", "since", "until", "limit", "cursor"];
    let params = query_params(query.as_deref(), &known, &["type"])?;
    let user = match one(&params, "user") {
        None => None,
        Some(who) => Some(find_user(&state, who, "user").await?),
    };
    let actor = match one(&params, "actor") {
        None => None,
        // A client acts under its client id; a user (an admin) under their user id.
        Some(who) if state.clients.get(who).is_some() => Some(who.to_owned()),
        Some(who) => Some(find_user(&state, who, "actor").await?.to_string()),
    };
    let (query, page) = event_query(&state.cursor_key, &params, user, actor)?;
    Ok(JsonBody(event_page(&state, query, page, false).await?))
}

/// A user named by id (also of a deleted account, whose events stay), username or email.
async fn find_user(state: &AppState, who: &str, field: &str) -> Result<UserId, ApiError> {
    match crate::store::find_user(&*state.store, who).await? {
        Some(user) => Ok(user.id),
        None => UserId::parse(who)
            .filter(|_| who.len() == 36)
            .ok_or_else(|| ApiError::field(field, "is no user id, username or email")),
    }
}

/// The user's own security history.
#[utoipa::path(
    get,
    path = "/users/me/events",
    tag = "users",
    operation_id = "my_events",
    summary = "The user's own security events, newest first",
    description = "Sign-ins (and failed attempts), sign-outs, password and email changes, ended sessions \
                   and what admins changed of the account, as the audit log keeps them.",
    params(
        ("type" = Option<Vec<String>>, Query, explode = true, description = "Only events of these types (repeat, or separate with commas)"),
        ("outcome" = Option<String>, Query, description = "`success` or `failure`"),
        ("since" = Option<String>, Query, format = DateTime, description = "At or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Before this time (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (opaque)"),
    ),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "An unknown or repeated parameter, or a cursor that is not one of this list (`bad_request`)"),
        (status = 422, description = "An invalid parameter value (`validation_failed`)"),
    ),
)]
async fn my_events(
    State(state): State<AppState>,
    auth: AuthUser<true>,
    RawQuery(query): RawQuery,
) -> Result<JsonBody<EventPage>, ApiError> {
    let params = query_params(query.as_deref(), &["type", "outcome", "since", "until", "limit", "cursor"], &["type"])?;
    let (query, page) = event_query(&state.cursor_key, &params, Some(auth.user.id), None)?;
    Ok(JsonBody(event_page(&state, query, page, true).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_any_change_forgery_or_other_filters() {
        let key = [7u8; 32];
        let query = UserQuery { search: Some(UserSearch::Prefix("al".into())), ..UserQuery::default() };
        let position = UserPosition { by_email: true, key: "alice@example.com".into() };
        let cursor = user_cursor(&key, &query, &position);
        assert_eq!(open_user_cursor(&key, &query, &cursor).unwrap(), position);
        assert!(!cursor.contains("alice"), "sealed, not just encoded");
        let mut bytes = cursor.clone().into_bytes();
        for i in 0..bytes.len() {
            let original = bytes[i];
            bytes[i] = if original == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes.clone()).unwrap();
            assert!(open_user_cursor(&key, &query, &tampered).is_err(), "byte {i} changed: {tampered}");
            bytes[i] = original;
        }
        let other_filters = UserQuery { role: Some("admin".into()), ..query.clone() };
        assert!(open_user_cursor(&key, &other_filters, &cursor).is_err(), "another query's cursor");
        assert!(open_user_cursor(&[8u8; 32], &query, &cursor).is_err(), "another installation's cursor");
        let control = UserPosition { by_email: false, key: "a\0b".into() };
        assert!(open_user_cursor(&key, &query, &user_cursor(&key, &query, &control)).is_err());

        let events = EventQuery::default();
        let at = Timestamp::new(time::macros::datetime!(2026-11-30 08:00:00 UTC));
        let id = EventId::generate();
        let cursor = event_cursor(&key, &events, at, id);
        assert_eq!(open_event_cursor(&key, &events, &cursor).unwrap(), (at, id));
        assert!(open_user_cursor(&key, &query, &cursor).is_err(), "a cursor of another list");
        let ancient = [&(-1i64 << 40).to_be_bytes()[..], &[0; 16]].concat();
        let ancient = seal(&key, EVENTS, &events_binding(&events), &ancient);
        assert!(open_event_cursor(&key, &events, &ancient).is_err(), "a time no database stores");
        for junk in ["", "x", "!!!", &"A".repeat(4000)] {
            assert!(open_event_cursor(&key, &events, junk).is_err(), "{junk}");
        }
    }
}
