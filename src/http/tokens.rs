//! The OAuth endpoints: `POST /token` (password, refresh, authorization code and client
//! credentials grants, RFC 6749; the last two are `auth::oidc`'s),
//! `POST /revoke` (RFC 7009), and `POST /logout`.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonBody, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::clients::{self, Caller};
use crate::auth::mfa::{Completed, Start};
use crate::auth::sessions::{AMR_PASSWORD, BROWSER_CLIENT_ID, LoginOptions, SecondStep, SessionError, TokenPair};
use crate::http::error::OAuthError;
use crate::http::extract::{self, AuthUser, ClientInfo, Input, JsonOrForm};
use crate::http::mfa::SecondStepRequest;
use crate::http::state::AppState;
use crate::store::SessionRecord;

/// The grant that finishes a password grant with a second factor.
pub const MFA_GRANT: &str = "urn:latch:grant-type:mfa";
/// The grant that signs in with a passkey alone.
pub const PASSKEY_GRANT: &str = "urn:latch:grant-type:passkey";

pub fn router() -> Router<AppState> {
    Router::new().route("/token", post(token)).route("/revoke", post(revoke)).route("/logout", post(logout))
}

/// Parameters of `/token`. Unknown parameters are ignored, as RFC 6749 asks.
#[derive(Deserialize, ToSchema)]
struct TokenRequest {
    /// `password` (the default), `refresh_token`, `authorization_code`,
    /// `client_credentials`, `urn:latch:grant-type:mfa` or `urn:latch:grant-type:passkey`.
    #[schema(value_type = String, required = false, example = "password")]
    grant_type: Option<String>,
    /// An email or a username (password grant).
    #[schema(value_type = String, required = false, min_length = 1, example = "alice")]
    username: Option<String>,
    /// Password grant.
    #[schema(value_type = String, required = false, format = Password, min_length = 1)]
    password: Option<String>,
    /// Refresh grant: the refresh token to exchange; it is dead afterwards.
    #[schema(value_type = String, required = false, min_length = 1)]
    refresh_token: Option<String>,
    /// Authorization code grant: the code `/authorize` sent to the redirect URI.
    #[schema(value_type = String, required = false, min_length = 1)]
    code: Option<String>,
    /// Authorization code grant: the redirect URI of the authorization request.
    #[schema(value_type = String, required = false)]
    redirect_uri: Option<String>,
    /// Authorization code grant: the PKCE verifier (RFC 7636) of the request's
    /// `code_challenge`.
    #[schema(value_type = String, required = false, min_length = 43, max_length = 128)]
    code_verifier: Option<String>,
    /// Up to 255 printable ASCII characters; the token's `client_id` claim (default `latch`).
    /// May come instead as the user name of HTTP Basic client authentication.
    #[schema(value_type = String, required = false, example = "latch")]
    client_id: Option<String>,
    /// A confidential client's secret (`client_secret_post`); or use HTTP Basic.
    #[schema(value_type = String, required = false, format = Password)]
    client_secret: Option<String>,
    /// Second factor grant: the `mfa_token` of the password grant's `mfa_required` answer.
    #[schema(value_type = String, required = false)]
    mfa_token: Option<String>,
    /// Second factor grant: a current code of the authenticator app.
    #[schema(value_type = String, required = false, example = "123456")]
    otp: Option<String>,
    /// Second factor grant: an unused recovery code (used up).
    #[schema(value_type = String, required = false)]
    recovery_code: Option<String>,
    /// Second factor grant: a passkey's answer to the `webauthn` options of the
    /// `mfa_required` answer, `credential.toJSON()` as a JSON string.
    #[schema(value_type = String, required = false)]
    webauthn: Option<String>,
    /// Passkey grant: the ceremony of `POST /passkeys/options`.
    #[schema(value_type = String, required = false)]
    ceremony: Option<String>,
    /// Passkey grant: the browser's answer, `credential.toJSON()` as a JSON string.
    #[schema(value_type = String, required = false)]
    credential: Option<String>,
    /// Space-separated scopes to grant (default `openid profile email`); each must be
    /// allowed for the client. On a refresh, a subset of the session's scopes.
    #[schema(value_type = String, required = false, example = "openid profile email")]
    scope: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct TokenResponse {
    /// A JWT (RFC 9068, `typ: at+jwt`).
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Lifetime of the access token, in seconds.
    #[schema(example = 900)]
    expires_in: u64,
    /// Opaque and single-use: a refresh returns a new one. Not given to a client that
    /// is not first-party unless it was granted `offline_access` (authorization code),
    /// nor for client credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// OpenID Connect ID token (authorization code grant with scope `openid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    /// The granted scopes, space-separated.
    #[schema(example = "openid profile email")]
    scope: String,
}

impl IntoResponse for TokenPair {
    fn into_response(self) -> Response {
        let body = TokenResponse {
            access_token: self.access_token,
            token_type: "Bearer",
            expires_in: self.expires_in,
            refresh_token: self.refresh_token,
            id_token: self.id_token,
            scope: self.scope,
        };
        let mut response = JsonBody(body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// RFC 6749 token endpoint: the password, refresh-token, authorization-code and client
/// credentials grants.
#[utoipa::path(
    post,
    path = "/token",
    tag = "tokens",
    operation_id = "token",
    summary = "Issue tokens (password, refresh-token, authorization-code or client-credentials grant)",
    description = "`grant_type=password` (the default) starts a session; `grant_type=refresh_token` \
                   exchanges a refresh token for a new pair in the same session. Presenting an already \
                   rotated refresh token ends its whole session (reuse detection). \
                   `grant_type=authorization_code` exchanges a code from `/authorize` (with `redirect_uri` \
                   and the PKCE `code_verifier`) for a new session's tokens and, with scope `openid`, an ID \
                   token; a code works once, and a second use ends what the first started. \
                   `grant_type=client_credentials` gives a confidential client a token of its own (no \
                   session, no refresh token). For an account with a second factor the password grant answers \
                   403 `mfa_required` with an `mfa_token`; `grant_type=urn:latch:grant-type:mfa` with that \
                   `mfa_token` and `otp` (or `recovery_code`, or `webauthn`: a passkey's answer to the \
                   `webauthn` options of that answer) then issues the pair, to the same client; a refused second \
                   step is 400 `invalid_grant`. `grant_type=urn:latch:grant-type:passkey` with the `ceremony` \
                   of `POST /passkeys/options` and the browser's `credential` signs in with a passkey alone. \
                   Responses carry `Cache-Control: no-store`.",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, description = "`invalid_request` (missing or malformed parameters), `invalid_grant` \
                                      (one answer for an unknown user and a wrong password; an invalid, \
                                      expired, revoked or reused refresh token or code, or a wrong verifier \
                                      or redirect URI), `invalid_scope`, `unauthorized_client` (client \
                                      credentials for a public client) or `unsupported_grant_type`"),
        (status = 401, description = "`invalid_client`: a secret for an unknown or public client, a wrong secret, a \
                                      confidential client without its secret, or an unregistered client when \
                                      `LATCH_REQUIRE_REGISTERED_CLIENTS` is on"),
        (status = 403, description = "`mfa_required` (the password was right and the account has a second \
                                      factor: the body's `mfa_token` and `mfa_methods` lead to the \
                                      `urn:latch:grant-type:mfa` grant), `account_disabled`, or \
                                      `email_not_verified` when verified emails are required"),
        (status = 429, description = "Too many failed logins (`rate_limited`); the password was not checked"),
    ),
)]
async fn token(State(state): State<AppState>, client: ClientInfo, req: Request) -> Result<TokenPair, OAuthError> {
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let Input(req) = JsonOrForm::<TokenRequest>::from_request(req, &state).await?;
    let credentials =
        extract::client_credentials(authorization.as_ref(), req.client_id.as_deref(), req.client_secret.as_deref())?;
    if credentials.id.as_deref().is_some_and(|id| !valid_client_id(id)) {
        return Err(OAuthError::invalid_request("client_id must be at most 255 printable ASCII characters"));
    }
    // Browser sessions are recorded under this name; no token client may pass as one.
    if credentials.id.as_deref() == Some(BROWSER_CLIENT_ID) {
        return Err(OAuthError::invalid_request(format!(
            "client_id {BROWSER_CLIENT_ID} is reserved for browser sessions"
        )));
    }
    let caller = state.clients.caller(&credentials)?;
    match req.grant_type.as_deref().unwrap_or("password") {
        "password" => password_grant(&state, &client, &caller, req).await,
        "refresh_token" => refresh_grant(&state, &caller, &client, req).await,
        MFA_GRANT => mfa_grant(&state, &client, &caller, req).await,
        PASSKEY_GRANT => passkey_grant(&state, &client, &caller, req).await,
        "authorization_code" => {
            let pair = state
                .oidc
                .exchange(
                    &caller,
                    req.code.as_deref(),
                    req.redirect_uri.as_deref(),
                    req.code_verifier.as_deref(),
                    client.client(),
                )
                .await?;
            state.metrics.tokens_issued("authorization_code");
            Ok(pair)
        }
        "client_credentials" => {
            let pair = state.oidc.client_credentials(&caller, req.scope.as_deref(), client.client()).await?;
            state.metrics.tokens_issued("client_credentials");
            Ok(pair)
        }
        other => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {other} is not supported; use password, refresh_token, authorization_code, \
                 client_credentials, {MFA_GRANT} or {PASSKEY_GRANT}"
            ),
        )),
    }
}

/// Up to 255 printable ASCII characters.
fn valid_client_id(id: &str) -> bool {
    id.len() <= 255 && id.chars().all(|c| c.is_ascii_graphic())
}

async fn password_grant(
    state: &AppState,
    client: &ClientInfo,
    caller: &Caller,
    req: TokenRequest,
) -> Result<TokenPair, OAuthError> {
    let (Some(username), Some(password)) = (req.username.as_deref(), req.password.as_deref()) else {
        return Err(OAuthError::invalid_request("username and password are required"));
    };
    // Checked before the password, so that a bad request costs no hash.
    let scope = clients::grant_scope(caller, req.scope.as_deref())?;
    let second_step = SecondStep { client_id: &caller.client_id, scope: &scope };
    let options = LoginOptions { require_verified: true, issue_device: false, second_step: Some(second_step) };
    let outcome = state.sessions.login(username, password, client.client(), options).await;
    state.metrics.login(&outcome);
    let user = outcome?.user;
    let pair = state.sessions.start_token(&user, &caller.client_id, &scope, AMR_PASSWORD, client.client()).await?;
    state.metrics.tokens_issued("password");
    Ok(pair)
}

/// `grant_type=urn:latch:grant-type:passkey`: a sign-in with a passkey alone, for the
/// ceremony of `POST /passkeys/options`.
async fn passkey_grant(
    state: &AppState,
    client: &ClientInfo,
    caller: &Caller,
    req: TokenRequest,
) -> Result<TokenPair, OAuthError> {
    let scope = clients::grant_scope(caller, req.scope.as_deref())?;
    let step = crate::http::mfa::PasskeySignInRequest {
        ceremony: req.ceremony,
        credential: req.credential.map(serde_json::Value::String),
    };
    let (ceremony, credential) =
        step.parts().map_err(|e| OAuthError::invalid_request(format!("{}: {}", e.field, e.message)))?;
    let outcome = state
        .factors
        .finish_sign_in(&ceremony, &credential, Start::Token, &caller.client_id, &scope, client.client())
        .await;
    state.metrics.login(&outcome);
    match outcome? {
        Completed::Token(pair) => {
            state.metrics.tokens_issued(PASSKEY_GRANT);
            Ok(pair)
        }
        Completed::Browser { .. } => {
            Err(OAuthError::from(anyhow::anyhow!("a token sign-in started a browser session")))
        }
    }
}

/// `grant_type=urn:latch:grant-type:mfa`: the second step of a password grant that
/// answered `mfa_required`, by the same client.
async fn mfa_grant(
    state: &AppState,
    client: &ClientInfo,
    caller: &Caller,
    req: TokenRequest,
) -> Result<TokenPair, OAuthError> {
    let mut step = SecondStepRequest {
        mfa_token: req.mfa_token,
        otp: req.otp,
        recovery_code: req.recovery_code,
        webauthn: req.webauthn.map(serde_json::Value::String),
    };
    let (token, proof) =
        step.parts().map_err(|e| OAuthError::invalid_request(format!("{}: {}", e.field, e.message)))?;
    let outcome = state.factors.complete(token, &caller.client_id, proof, Start::Token, client.client()).await;
    state.metrics.login(&outcome);
    match outcome? {
        Completed::Token(pair) => {
            state.metrics.tokens_issued(MFA_GRANT);
            Ok(pair)
        }
        Completed::Browser { .. } => {
            Err(OAuthError::from(anyhow::anyhow!("a token sign-in started a browser session")))
        }
    }
}

async fn refresh_grant(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    req: TokenRequest,
) -> Result<TokenPair, OAuthError> {
    let Some(presented) = req.refresh_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(OAuthError::invalid_request("refresh_token is required"));
    };
    if let Some(scope) = req.scope.as_deref() {
        clients::parse_scope(scope)?;
    }
    // Both checks run before the token is used up, so that a refused request leaves the
    // client its refresh token; a scope refusal is reported as such.
    let scope_refused = std::sync::Mutex::new(None);
    let accept = |session: &SessionRecord| {
        if !caller.may_use_session_of(&session.client_id, &state.clients) {
            return false;
        }
        let granted = clients::still_allowed(&session.scope, &state.clients.allowed_scopes(&session.client_id));
        match clients::narrow_scope(&granted, req.scope.as_deref()) {
            Ok(_) => true,
            Err(e) => {
                if let Ok(mut refused) = scope_refused.lock() {
                    *refused = Some(e);
                }
                false
            }
        }
    };
    let narrow = |session_scope: &str, client_id: &str| {
        let granted = clients::still_allowed(session_scope, &state.clients.allowed_scopes(client_id));
        clients::narrow_scope(&granted, req.scope.as_deref()).map_err(|e| SessionError::Internal(e.into()))
    };
    let pair = match state.sessions.refresh(presented, client.client(), &accept, narrow).await {
        Err(SessionError::InvalidGrant) => {
            let refused = scope_refused.lock().ok().and_then(|mut r| r.take());
            return Err(refused.map_or_else(|| SessionError::InvalidGrant.into(), OAuthError::from));
        }
        other => other?,
    };
    state.metrics.tokens_issued("refresh_token");
    Ok(pair)
}

#[derive(Deserialize, ToSchema)]
struct RevokeRequest {
    /// A refresh token or an access token.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
}

/// RFC 7009: revoking any token of a session ends that session. Unknown tokens are
/// answered 200 as well, so the endpoint tells nothing about which tokens exist.
#[utoipa::path(
    post,
    path = "/revoke",
    tag = "tokens",
    operation_id = "revoke",
    summary = "Revoke a token and end its session (RFC 7009)",
    request_body(content(
        (RevokeRequest = "application/x-www-form-urlencoded"),
        (RevokeRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Revoked, or unknown: the answer is the same, `{}`", body = Object),
        (status = 400, description = "`token` is missing (`invalid_request`), or the body is malformed"),
    ),
)]
async fn revoke(State(state): State<AppState>, req: Request) -> Result<Response, OAuthError> {
    let (mut parts, body) = req.into_parts();
    let client = ClientInfo::from_request_parts(&mut parts, &state).await?;
    let Input(req) = JsonOrForm::<RevokeRequest>::from_request(Request::from_parts(parts, body), &state).await?;
    let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    state.sessions.revoke(token, client.client()).await?;
    // RFC 7009 leaves the body to the server; an empty JSON object keeps every
    // response of the API JSON.
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(serde_json::json!({}))).into_response())
}

/// Ends the session behind the credential (clearing the cookie when that was the
/// credential). Basic `user:password` has no session, so there is nothing to end and
/// the answer is still 204.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "tokens",
    operation_id = "logout",
    summary = "End the session behind the credential",
    description = "Its refresh tokens die and Latch refuses its access tokens from then on. With a session \
                   cookie the cookie is cleared. Basic `user:password` has no session: 204, nothing ended. \
                   (The sign-out page's own form, a browser's urlencoded post accepting `text/html`, is \
                   answered with a page instead.)",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "The session has ended",
         headers(("Set-Cookie" = String, description = "Clears the session cookie when it was the credential"))),
    ),
)]
async fn logout(State(state): State<AppState>, req: Request) -> Response {
    // The sign-out page's form posts here too; a browser's form navigation gets a page.
    if crate::http::pages::wants_page(&state.settings, req.headers()) {
        return crate::http::pages::logout(state, req).await;
    }
    let (mut parts, _) = req.into_parts();
    let client = match ClientInfo::from_request_parts(&mut parts, &state).await {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    match AuthUser::<true>::from_request_parts(&mut parts, &state).await {
        Ok(auth) => crate::http::sessions::end_session_response(&state, &auth, &client).await.into_response(),
        Err(e) => e.into_response(),
    }
}
