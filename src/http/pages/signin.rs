//! Signing in and out, and signing up: `/login`, `/signup`, `/logout`.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::{Csrf, Page, message, posted, see_other, signed_in, too_many, with_cookies};
use crate::auth::accounts::AccountError;
use crate::auth::mfa::{Completed, Proof, Start};
use crate::auth::sessions::{AMR_PASSWORD, BROWSER_CLIENT_ID, LoginOptions, SecondStep, SessionError};
use crate::domain::FieldError;
use crate::domain::input::NewAccount;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::ClientInfo;
use crate::http::mfa::given;
use crate::http::state::AppState;
use crate::settings::Settings;

pub(super) const LOGIN_HEADING: &str = "Sign in";
const SIGNUP_HEADING: &str = "Create an account";
const SECOND_STEP_HEADING: &str = "Two-step verification";
const LOGOUT_HEADING: &str = "Sign out";
/// Where a sign-in or sign-up lands without a `return_to`.
const HOME: &str = "/account";

/// Where a sign-in may send the browser: one of Latch's own paths, a page on an origin
/// allowed for CORS, or a registered redirect URI. Anything else is dropped, so that no
/// link through Latch leads elsewhere (no open redirect).
fn allowed_return_to(state: &AppState, return_to: Option<&str>) -> Option<String> {
    // Long enough for an authorization request to come back to.
    let target = return_to.filter(|t| !t.is_empty() && t.len() <= 4096)?;
    // URL parsers drop tabs and line breaks that a header would refuse, and read `\` as
    // `/`: a target with any of them is not what was checked.
    if target.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    if target.starts_with('/') {
        // `//host` is another host to a browser.
        return (!target.starts_with("//")).then(|| target.to_owned());
    }
    let url = url::Url::parse(target).ok()?;
    let allowed = matches!(url.scheme(), "http" | "https")
        && (state.clients.origin_allowed(&url.origin().ascii_serialization())
            || state.clients.redirect_uri_registered(target));
    allowed.then(|| target.to_owned())
}

/// The allowed `return_to` of a page's query.
fn return_to_of(state: &AppState, query: Option<&str>) -> Option<String> {
    allowed_return_to(state, query_value(query, "return_to").as_deref())
}

/// The first value of `name` in a page's query.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The sign-in form; a browser that is signed in already goes straight on.
pub(super) async fn login_page(State(state): State<AppState>, RawQuery(query): RawQuery, req: Request) -> Response {
    let (csrf, return_to) = match form_or_onwards(&state, query.as_deref(), req).await {
        Ok(form) => form,
        Err(onwards) => return onwards,
    };
    // Without a return_to or hint the page has no values of its own: the one rendered
    // at start.
    let hint = query_value(query.as_deref(), "login_hint").filter(|h| h.len() <= 320);
    let values = match (&return_to, hint) {
        (None, None) => context! {},
        (return_to, username) => context! { return_to, username => username.unwrap_or_default() },
    };
    Page::new("login.html", LOGIN_HEADING, values, csrf).returning_to(&state, return_to.as_deref()).render(&state)
}

/// Signs the browser in under the API's rules (`POST /sessions`): the same limits, the
/// same one answer for an unknown user and a wrong password, the device cookie. Then
/// to `return_to` when it is allowed, else to the account page.
pub(super) async fn login(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let login = form.username.as_deref().unwrap_or("").trim().to_owned();
    let return_to = allowed_return_to(&state, form.return_to.as_deref());
    let page = |status: StatusCode, error: &str, csrf: Csrf| {
        Page::new("login.html", LOGIN_HEADING, context! { username => login, return_to, error }, csrf)
            .status(status)
            .returning_to(&state, return_to.as_deref())
    };
    let password = form.password.as_deref().unwrap_or("");
    if login.is_empty() || password.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, "Enter your email or username and your password.", csrf)
            .render(&state);
    }
    let scope = crate::auth::clients::DEFAULT_SCOPES.join(" ");
    let second_step = SecondStep { client_id: BROWSER_CLIENT_ID, scope: &scope };
    let options = LoginOptions { require_verified: true, issue_device: true, second_step: Some(second_step) };
    let outcome = state.sessions.login(&login, password, client.client(), options).await;
    state.metrics.login(&outcome);
    let logged_in = match outcome {
        Ok(logged_in) => logged_in,
        Err(SessionError::MfaRequired(challenge)) => {
            let (methods, webauthn) = (&challenge.methods, challenge.webauthn.as_ref());
            return second_step_page(
                &state,
                csrf,
                &challenge.token,
                methods,
                webauthn,
                return_to.as_deref(),
                None,
                false,
            )
            .render(&state);
        }
        Err(e) => {
            let (status, message, retry_after) = match &e {
                SessionError::InvalidCredentials => {
                    (StatusCode::UNAUTHORIZED, "The email, username or password is not right.".to_owned(), None)
                }
                SessionError::RateLimited { retry_after } => {
                    (StatusCode::TOO_MANY_REQUESTS, too_many(*retry_after), Some(*retry_after))
                }
                SessionError::Disabled => (StatusCode::FORBIDDEN, "This account is disabled.".to_owned(), None),
                SessionError::NotVerified => (
                    StatusCode::FORBIDDEN,
                    "Confirm your email address first: open the link we emailed you.".to_owned(),
                    None,
                ),
                _ => return ApiError::from(e).into_response(),
            };
            return page(status, &message, csrf).render_error(&state, retry_after);
        }
    };
    signed_in_to(&state, &logged_in.user, AMR_PASSWORD, logged_in.device.as_deref(), return_to.as_deref(), &client)
        .await
}

/// Starts the browser session and sends the browser on.
async fn signed_in_to(
    state: &AppState,
    user: &crate::store::UserRecord,
    amr: &str,
    device: Option<&str>,
    return_to: Option<&str>,
    client: &ClientInfo,
) -> Response {
    let secret = match state.sessions.start_browser(user, amr, client.client()).await {
        Ok(secret) => secret,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut set = vec![cookies::session(&state.settings, Some(&secret))];
    if let Some(device) = device {
        set.push(cookies::device(&state.settings, device));
    }
    with_cookies(see_other(return_to.unwrap_or(HOME)), set)
}

/// The second step of a sign-in: the app's code, or a recovery code. `recovering`
/// opens the recovery code's form, where the error (if any) belongs.
#[allow(clippy::too_many_arguments)] // the page's parts
fn second_step_page(
    state: &AppState,
    csrf: Csrf,
    mfa_token: &str,
    methods: &[&str],
    webauthn: Option<&serde_json::Value>,
    return_to: Option<&str>,
    error: Option<&str>,
    recovering: bool,
) -> Page {
    let recovery = methods.contains(&"recovery_code");
    let webauthn = webauthn.map(serde_json::Value::to_string);
    let values = context! {
        mfa_token, return_to, error, recovery, recovering, webauthn,
        totp => methods.contains(&"totp"),
    };
    Page::new("login_mfa.html", SECOND_STEP_HEADING, values, csrf).returning_to(state, return_to)
}

/// The second step's address opened again (a reload, the history): its form is gone
/// with the request, so the sign-in starts over.
pub(super) async fn restart_login() -> Response {
    see_other("/login")
}

/// Checks the second step's code (`POST /sessions/mfa`'s rules) and signs the browser in.
pub(super) async fn login_second_step(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let return_to = allowed_return_to(&state, form.return_to.as_deref());
    let token = form.mfa_token.as_deref().unwrap_or("");
    let webauthn = given(&form.webauthn).and_then(|w| serde_json::from_str::<serde_json::Value>(w).ok());
    let proof = match (given(&form.otp), given(&form.recovery_code), webauthn.as_ref()) {
        (Some(otp), _, _) => Some(Proof::Otp(otp)),
        (None, Some(code), _) => Some(Proof::RecoveryCode(code)),
        (None, None, Some(answer)) => Some(Proof::Passkey(answer)),
        (None, None, None) => None,
    };
    let methods = ["totp", "recovery_code"];
    let recovering = form.recovery_code.is_some();
    let Some(proof) = proof.filter(|_| !token.is_empty()) else {
        let error = "Enter the code from your authenticator app, or a recovery code.";
        return second_step_page(&state, csrf, token, &methods, None, return_to.as_deref(), Some(error), recovering)
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .render(&state);
    };
    let outcome = state.factors.complete(token, BROWSER_CLIENT_ID, proof, Start::Browser, client.client()).await;
    state.metrics.login(&outcome);
    match outcome {
        Ok(Completed::Browser { cookie, device, .. }) => {
            let mut set = vec![cookies::session(&state.settings, Some(&cookie))];
            if let Some(device) = &device {
                set.push(cookies::device(&state.settings, device));
            }
            with_cookies(see_other(return_to.as_deref().unwrap_or(HOME)), set)
        }
        Ok(Completed::Token(_)) => {
            ApiError::internal(anyhow::anyhow!("a browser sign-in started a token session")).into_response()
        }
        Err(SessionError::InvalidSecondFactor) => {
            let error = "That code is not right, or was used already. Try the current code, or sign in again \
                         if this keeps failing.";
            second_step_page(&state, csrf, token, &methods, None, return_to.as_deref(), Some(error), recovering)
                .status(StatusCode::UNAUTHORIZED)
                .render(&state)
        }
        Err(SessionError::RateLimited { retry_after }) => {
            let error = too_many(retry_after);
            second_step_page(&state, csrf, token, &methods, None, return_to.as_deref(), Some(&error), recovering)
                .status(StatusCode::TOO_MANY_REQUESTS)
                .render_error(&state, Some(retry_after))
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// What the sign-in and sign-up forms need — the CSRF token and the allowed
/// `return_to` of the query — or, for a browser signed in already, the redirect onwards.
async fn form_or_onwards(
    state: &AppState,
    query: Option<&str>,
    req: Request,
) -> Result<(Csrf, Option<String>), Response> {
    let csrf = Csrf::for_browser(&state.settings, req.headers()).map_err(IntoResponse::into_response)?;
    let return_to = return_to_of(state, query);
    let has_session = cookies::read(req.headers(), cookies::session_name(&state.settings)).is_some();
    // `prompt=login`: an application (through `/authorize`) asks for the password again.
    let again = query_value(query, "prompt").is_some_and(|p| p == "login");
    if has_session && !again && signed_in(state, req).await.0.is_ok() {
        return Err(see_other(return_to.as_deref().unwrap_or(HOME)));
    }
    Ok((csrf, return_to))
}

/// The sign-up form; a browser that is signed in already goes straight on.
pub(super) async fn signup_page(State(state): State<AppState>, RawQuery(query): RawQuery, req: Request) -> Response {
    let (csrf, return_to) = match form_or_onwards(&state, query.as_deref(), req).await {
        Ok(form) => form,
        Err(onwards) => return onwards,
    };
    let min = state.accounts.policy().min_length();
    let values = context! { return_to, password_min_length => min, errors => BTreeMap::<String, String>::new() };
    Page::new("signup.html", SIGNUP_HEADING, values, csrf).returning_to(&state, return_to.as_deref()).render(&state)
}

/// Field errors by field, for the templates.
pub(super) fn by_field<'a>(errors: impl IntoIterator<Item = &'a FieldError>) -> BTreeMap<String, String> {
    errors.into_iter().map(|e| (e.field.clone(), e.message.clone())).collect()
}

/// Registers under the API's rules (`POST /users`: field rules, limits, the answer for a
/// taken name). When verified addresses are required the person is asked to open the
/// link first; otherwise the browser is signed in at once.
pub(super) async fn signup(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let return_to = allowed_return_to(&state, form.return_to.as_deref());
    let min = state.accounts.policy().min_length();
    let page = |status: StatusCode, errors: BTreeMap<String, String>, error: Option<String>, csrf: Csrf| {
        let values = context! {
            username => form.username, email => form.email, return_to, errors, error, password_min_length => min,
        };
        Page::new("signup.html", SIGNUP_HEADING, values, csrf).status(status).returning_to(&state, return_to.as_deref())
    };
    let account = NewAccount::parse(
        state.accounts.policy(),
        form.username.as_deref(),
        form.email.as_deref(),
        form.password.as_deref(),
    );
    let account = match account {
        Ok(account) => account,
        Err(errors) => {
            let error = Some("Some fields need a change.".to_owned());
            return page(StatusCode::UNPROCESSABLE_ENTITY, by_field(&errors), error, csrf).render(&state);
        }
    };
    let user = match state.accounts.register(account, client.client()).await {
        Ok(user) => user,
        Err(AccountError::Taken(field)) => {
            let errors = BTreeMap::from([(field.to_owned(), format!("This {field} is taken."))]);
            let error = Some(format!("Choose another {field}."));
            return page(StatusCode::CONFLICT, errors, error, csrf).render(&state);
        }
        Err(AccountError::RateLimited { retry_after }) => {
            return page(StatusCode::TOO_MANY_REQUESTS, BTreeMap::new(), Some(too_many(retry_after)), csrf)
                .render_error(&state, Some(retry_after));
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    state.metrics.registration();
    if state.settings.require_verified_email {
        let text = format!("We sent a link to {}. Open it to confirm your address, then sign in.", user.email);
        let sign_in = match &return_to {
            Some(target) => super::login_then(target),
            None => "/login".to_owned(),
        };
        return message(&state, csrf, StatusCode::OK, "Check your email", &text, Some((&sign_in, "Sign in")));
    }
    match state.sessions.start_browser(&user, AMR_PASSWORD, client.client()).await {
        Ok(secret) => with_cookies(
            see_other(return_to.as_deref().unwrap_or(HOME)),
            vec![cookies::session(&state.settings, Some(&secret))],
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// "Sign out?": a button that posts to `/logout`, so that a link or a prefetch never
/// signs anyone out.
#[utoipa::path(
    get,
    path = "/logout",
    tag = "pages",
    operation_id = "logout_page",
    summary = "The sign-out page (hosted pages; absent with LATCH_UI=off)",
    description = "An HTML page asking to sign out, with a form that posts to `POST /logout`. Opening it \
                   signs nobody out.",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)),
)]
pub(crate) async fn logout_page(State(state): State<AppState>, req: Request) -> Response {
    let csrf = match Csrf::for_browser(&state.settings, req.headers()) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    let (auth, _) = signed_in(&state, req).await;
    let username = auth.ok().map(|a| a.user.username);
    Page::new("logout.html", LOGOUT_HEADING, context! { username }, csrf).render(&state)
}

/// Whether a `POST /logout` is the form of the sign-out page (a browser navigating with
/// a form) rather than an API call, which keeps its 204.
pub fn wants_page(settings: &Settings, headers: &HeaderMap) -> bool {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    settings.ui
        && value(header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
        && (headers.get("sec-fetch-dest").is_some_and(|d| d == "document")
            || value(header::ACCEPT).contains("text/html"))
}

/// The sign-out form's post: ends the browser's session, clears its cookie, and says so
/// (also when it was signed out already).
pub async fn logout(state: AppState, req: Request) -> Response {
    let (auth, req) = signed_in(&state, req).await;
    let (mut parts, body) = req.into_parts();
    let client = match ClientInfo::from_request_parts(&mut parts, &state).await {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    let (_, csrf) = match posted(&state, Request::from_parts(parts, body)).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    if let Some((user, sid)) = auth.as_ref().ok().and_then(|a| Some((a.user.id, a.session_id()?))) {
        if let Err(e) = state.sessions.logout(user, sid, client.client()).await {
            return ApiError::from(e).into_response();
        }
        tracing::info!(session = %sid, "session ended by its sign-out page");
    }
    let page =
        message(&state, csrf, StatusCode::OK, "Signed out", "You are signed out.", Some(("/login", "Sign in again")));
    with_cookies(page, vec![cookies::session(&state.settings, None)])
}
