//! The account page, `/account`: the profile, the address and its confirmation, the
//! password, the live sessions with a "sign out" for each, and deleting the account.
//! Each form posts to its own path; a change that worked redirects back to the page,
//! which says so (a reload does not post again), a refused one is answered with the
//! page and the error beside the form. Every change goes through the service the API uses, under the
//! same rules (a password confirms an email change, a password change or a deletion;
//! those checks count against the account's sign-in limits).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::signin::by_field;
use super::{Csrf, Page, PageForm, login_then, message, posted, see_other, signed_in, too_many, with_cookies};
use crate::auth::accounts::AccountError;
use crate::auth::mfa::{Confirmation, Enrolment, FactorError};
use crate::domain::input::ProfileUpdate;
use crate::domain::{SessionId, Timestamp};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo};
use crate::http::state::AppState;
use crate::store::{KeepSessions, UserRecord};

const HEADING: &str = "Your account";
const SETUP_HEADING: &str = "Set up an authenticator app";
const CODES_HEADING: &str = "Your recovery codes";
const PATH: &str = "/account";
const NOT_VERIFIED: &str = "Confirm your email address first: open the link we emailed you.";

/// What a change that worked says, after the redirect back to the page (so that a
/// reload does not post the form again): `/account?done=<key>`. Only these fixed texts
/// can appear, never anything from the query.
fn done_notice(key: &str, user: &UserRecord) -> Option<String> {
    Some(match key {
        "username" => "Username saved.".to_owned(),
        "email" => format!("Email changed. We sent a link to {} to confirm it.", user.email),
        "email-unchanged" => "That is your address already.".to_owned(),
        "link" if user.email_verified => "Your address is confirmed already.".to_owned(),
        "link" => format!("We sent a new link to {}.", user.email),
        "password" => "Password changed. Your other sessions have ended.".to_owned(),
        "session" => "The session has ended.".to_owned(),
        "consent" => "Access withdrawn. The application will ask again next time.".to_owned(),
        "mfa-removed" => "The authenticator app is removed.".to_owned(),
        "passkey" => "The passkey is added.".to_owned(),
        "passkey-removed" => "The passkey is removed.".to_owned(),
        _ => return None,
    })
}

/// The redirect back to the page after a change that worked.
fn done(key: &str) -> Response {
    see_other(&format!("{PATH}?done={key}"))
}

/// What the page shows besides the account: the outcome of the form just posted.
struct View {
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    /// Errors by the id of the input they belong to (`email-new`, `delete-password`…).
    errors: BTreeMap<String, String>,
    /// What was typed, by the same ids; never a password.
    typed: BTreeMap<&'static str, String>,
    retry_after: Option<u64>,
}

impl View {
    fn ok() -> Self {
        Self {
            status: StatusCode::OK,
            notice: None,
            error: None,
            errors: BTreeMap::new(),
            typed: BTreeMap::new(),
            retry_after: None,
        }
    }

    fn failed(status: StatusCode, error: impl Into<String>) -> Self {
        Self { status, error: Some(error.into()), ..Self::ok() }
    }

    fn typed(mut self, key: &'static str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.typed.insert(key, value.to_owned());
        }
        self
    }
}

/// A refusal of the account service as the page shows it, each field error under the
/// id of its form's input (`keys` maps the API's field names to them).
fn refused(e: AccountError, keys: &[(&str, &str)]) -> Result<View, ApiError> {
    let key = |field: &str| keys.iter().find(|(f, _)| *f == field).map(|(_, k)| (*k).to_owned());
    let view = match e {
        AccountError::Invalid(errors) => {
            let mut view = View::failed(StatusCode::UNPROCESSABLE_ENTITY, "Some fields need a change.");
            for (field, message) in by_field(&errors) {
                view.errors.insert(key(&field).unwrap_or(field), message);
            }
            view
        }
        AccountError::Taken(field) => {
            let mut view = View::failed(StatusCode::CONFLICT, format!("This {field} is taken."));
            if let Some(k) = key(field) {
                view.errors.insert(k, format!("This {field} is taken."));
            }
            view
        }
        AccountError::WrongPassword(field) => {
            let mut view = View::failed(StatusCode::FORBIDDEN, "The password is not right.");
            if let Some(k) = key(field) {
                view.errors.insert(k, "The password is not right.".to_owned());
            }
            view
        }
        AccountError::NotVerified => View::failed(StatusCode::FORBIDDEN, NOT_VERIFIED),
        AccountError::RateLimited { retry_after } => View {
            retry_after: Some(retry_after),
            ..View::failed(StatusCode::TOO_MANY_REQUESTS, too_many(retry_after))
        },
        e => return Err(ApiError::from(e)),
    };
    Ok(view)
}

/// A session's client as a person reads it ("Firefox on Windows"), from its user agent.
fn client_label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
        return "Unknown client".to_owned();
    };
    let has = |needle: &str| ua.contains(needle);
    let browser = if has("Edg/") {
        Some("Edge")
    } else if has("OPR/") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("CriOS/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let os = if has("Android") {
        Some("Android")
    } else if has("iPhone") || has("iPad") {
        Some("iOS")
    } else if has("Windows") {
        Some("Windows")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("Linux") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(browser), Some(os)) => format!("{browser} on {os}"),
        (Some(browser), None) => browser.to_owned(),
        // A program: its name, as in `curl/8.5.0` or `python-requests/2.32`.
        _ => ua.split(['/', ' ']).next().unwrap_or(ua).chars().take(40).collect(),
    }
}

/// A time as the page shows it.
fn when(t: Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.get().format(format).unwrap_or_else(|_| t.to_string())
}

async fn render(state: &AppState, user: &UserRecord, current: Option<SessionId>, csrf: Csrf, view: View) -> Response {
    let sessions = match state.sessions.list(user.id).await {
        Ok(sessions) => sessions,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            context! {
                id => s.id.to_string(),
                // A registered application's session is named after the application, not
                // after the HTTP library it calls Latch with.
                client => state.clients.get(&s.client_id).map_or_else(|| client_label(s.user_agent.as_deref()), |c| c.name.clone()),
                user_agent => s.user_agent,
                ip => s.ip,
                created => when(s.created_at),
                last_seen => when(s.last_seen_at),
                current => Some(s.id) == current,
            }
        })
        .collect();
    let consents = match state.oidc.consents(user.id).await {
        Ok(consents) => consents,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let consents: Vec<_> = consents
        .iter()
        .map(|(c, name)| {
            context! { client_id => c.client_id, name, scope => c.scope, granted => when(c.granted_at) }
        })
        .collect();
    let (factors, passkeys) = match (state.factors.summary(user.id).await, state.factors.passkeys(user.id).await) {
        (Ok(factors), Ok(passkeys)) => (factors, passkeys),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    let passkeys: Vec<_> = passkeys
        .iter()
        .map(|p| {
            context! {
                id => p.id.to_string(), name => p.name, synced => p.backup_eligible,
                created => when(p.created_at), last_used => p.last_used_at.map(when),
            }
        })
        .collect();
    let locked = state.settings.require_verified_email && !user.email_verified;
    let values = context! {
        consents,
        mfa => context! { totp => factors.totp, recovery_codes_left => factors.recovery_codes, passkeys },
        user => context! { username => user.username, email => user.email, email_verified => user.email_verified },
        locked,
        sessions,
        notice => view.notice,
        error => view.error,
        errors => view.errors,
        typed => view.typed,
        wide => true,
    };
    Page::new("account.html", HEADING, values, csrf).status(view.status).render_error(state, view.retry_after)
}

/// Shows the account, or sends a browser that is not signed in to sign in first.
pub(super) async fn page(State(state): State<AppState>, RawQuery(query): RawQuery, req: Request) -> Response {
    let csrf = match Csrf::for_browser(&state.settings, req.headers()) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    match signed_in(&state, req).await.0 {
        Ok(auth) => {
            let notice = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "done")
                .and_then(|(_, key)| done_notice(&key, &auth.user));
            let view = View { notice, ..View::ok() };
            render(&state, &auth.user, auth.session_id(), csrf, view).await
        }
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => see_other(&login_then(PATH)),
        Err(e) => e.into_response(),
    }
}

/// A form posted to the account page: the signed-in account, its form, its CSRF token.
async fn account_form(state: &AppState, req: Request) -> Result<(AuthUser<true>, PageForm, Csrf), Response> {
    let (auth, req) = signed_in(state, req).await;
    let (form, csrf) = posted(state, req).await?;
    match auth {
        Ok(auth) => Ok((auth, form, csrf)),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => Err(see_other(&login_then(PATH))),
        Err(e) => Err(e.into_response()),
    }
}

/// Unpacks [`account_form`] in a handler.
macro_rules! account_form {
    ($state:expr, $req:expr) => {
        match account_form(&$state, $req).await {
            Ok(posted) => posted,
            Err(response) => return response,
        }
    };
}

/// Answers a refused change: the page with the error beside the form.
async fn answer(state: &AppState, auth: &AuthUser<true>, csrf: Csrf, view: View) -> Response {
    render(state, &auth.user, auth.session_id(), csrf, view).await
}

pub(super) async fn profile(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    let username = form.username.as_deref().map(str::trim);
    let result = match ProfileUpdate::parse(username, None) {
        Ok(update) => state.accounts.update_profile(auth.user.clone(), update, None, client.client()).await,
        Err(errors) => Err(AccountError::Invalid(errors)),
    };
    let view = match result {
        Ok(_) => return done("username"),
        Err(e) => match refused(e, &[("username", "profile-username")]) {
            Ok(view) => view.typed("profile-username", username),
            Err(e) => return e.into_response(),
        },
    };
    answer(&state, &auth, csrf, view).await
}

pub(super) async fn email(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    let email = form.email.as_deref().map(str::trim);
    let result = match ProfileUpdate::parse(None, Some(email.unwrap_or_default())) {
        Ok(update) => {
            let current = form.current_password.as_deref();
            state.accounts.update_profile(auth.user.clone(), update, current, client.client()).await
        }
        Err(errors) => Err(AccountError::Invalid(errors)),
    };
    let view = match result {
        Ok(user) if user.email == auth.user.email => return done("email-unchanged"),
        Ok(_) => return done("email"),
        Err(e) => match refused(e, &[("email", "email-new"), ("current_password", "email-password")]) {
            Ok(view) => view.typed("email-new", email),
            Err(e) => return e.into_response(),
        },
    };
    answer(&state, &auth, csrf, view).await
}

pub(super) async fn verification(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, _, csrf) = account_form!(state, req);
    let view = match state.accounts.resend_verification(&auth.user, client.client()).await {
        Ok(()) => return done("link"),
        Err(e) => match refused(e, &[]) {
            Ok(view) => view,
            Err(e) => return e.into_response(),
        },
    };
    answer(&state, &auth, csrf, view).await
}

/// The API's `AuthUser` (without `true`) refuses an unverified account when verified
/// addresses are required; so do these forms.
fn locked(state: &AppState, auth: &AuthUser<true>) -> Option<View> {
    (state.settings.require_verified_email && !auth.user.email_verified)
        .then(|| View::failed(StatusCode::FORBIDDEN, NOT_VERIFIED))
}

pub(super) async fn password(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    let keep = auth.session_id().map_or(KeepSessions::None, KeepSessions::This);
    let (new, current) = (form.new_password.as_deref(), form.current_password.as_deref());
    let view = match state.accounts.change_password(&auth.user, new, current, keep, client.client()).await {
        Ok(()) => return done("password"),
        Err(e) => match refused(e, &[("current_password", "password-current"), ("new_password", "password-new")]) {
            Ok(view) => view,
            Err(e) => return e.into_response(),
        },
    };
    answer(&state, &auth, csrf, view).await
}

/// Ends one session of the list; ending this browser's own signs it out.
pub(super) async fn end_session(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    let Some(sid) = form.session.as_deref().and_then(SessionId::parse) else {
        let view = View::failed(StatusCode::UNPROCESSABLE_ENTITY, "Choose a session to sign out.");
        return answer(&state, &auth, csrf, view).await;
    };
    let view = match state.sessions.end_own(auth.user.id, sid, client.client()).await {
        Ok(true) if Some(sid) == auth.session_id() => {
            let page = message(
                &state,
                csrf,
                StatusCode::OK,
                "Signed out",
                "You are signed out.",
                Some(("/login", "Sign in again")),
            );
            return with_cookies(page, vec![cookies::session(&state.settings, None)]);
        }
        Ok(true) => return done("session"),
        Ok(false) => View::failed(StatusCode::NOT_FOUND, "That session has ended already."),
        Err(e) => return ApiError::from(e).into_response(),
    };
    answer(&state, &auth, csrf, view).await
}

/// Withdraws the consent given to an application: it asks again next time.
pub(super) async fn revoke_consent(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    let Some(client_id) = form.client_id.as_deref().filter(|c| !c.is_empty()) else {
        let view = View::failed(StatusCode::UNPROCESSABLE_ENTITY, "Choose an application.");
        return answer(&state, &auth, csrf, view).await;
    };
    let view = match state.oidc.revoke_consent(auth.user.id, client_id, client.client()).await {
        Ok(true) => return done("consent"),
        Ok(false) => View::failed(StatusCode::NOT_FOUND, "That application has no access already."),
        Err(e) => return ApiError::from(e).into_response(),
    };
    answer(&state, &auth, csrf, view).await
}

pub(super) async fn delete(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    match state.accounts.delete(&auth.user, form.password.as_deref(), client.client()).await {
        Ok(()) => {
            let text = "Your account and all its sessions are gone.";
            let page =
                message(&state, csrf, StatusCode::OK, "Account deleted", text, Some(("/signup", "Create an account")));
            with_cookies(page, vec![cookies::session(&state.settings, None)])
        }
        Err(e) => match refused(e, &[("password", "delete-password")]) {
            Ok(view) => answer(&state, &auth, csrf, view).await,
            Err(e) => e.into_response(),
        },
    }
}

/// A refusal of the factors service as the page shows it; `key` is the id of the input
/// that carried the password or code.
fn factor_refused(e: FactorError, key: &str, empty_password: bool) -> Result<View, ApiError> {
    let mut view = match e {
        FactorError::AlreadyEnrolled => View::failed(StatusCode::CONFLICT, "An authenticator app is set up already."),
        FactorError::NotPending => {
            View::failed(StatusCode::CONFLICT, "That setup has ended. Start setting up the app again.")
        }
        FactorError::NoFactor => View::failed(StatusCode::NOT_FOUND, "There is no authenticator app to remove."),
        FactorError::WrongConfirmation(_) | FactorError::WrongCode if empty_password => {
            View::failed(StatusCode::UNPROCESSABLE_ENTITY, "Enter your password.")
        }
        FactorError::WrongConfirmation(_) | FactorError::WrongCode => {
            View::failed(StatusCode::FORBIDDEN, "The password is not right.")
        }
        FactorError::RateLimited { retry_after } => View {
            retry_after: Some(retry_after),
            ..View::failed(StatusCode::TOO_MANY_REQUESTS, too_many(retry_after))
        },
        e => return Err(ApiError::from(e)),
    };
    if view.status == StatusCode::FORBIDDEN || empty_password {
        let message = if empty_password { "Enter your password." } else { "The password is not right." };
        view.errors.insert(key.to_owned(), message.to_owned());
    }
    Ok(view)
}

/// The setup page: the QR code of the new key, the key itself, and the form for the
/// app's first code.
fn setup_page(
    state: &AppState,
    csrf: Csrf,
    enrolment: &Enrolment,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let qr = match qrcode::QrCode::new(enrolment.otpauth_uri.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build(),
        Err(e) => return ApiError::internal(anyhow::anyhow!("no QR code for the key: {e}")).into_response(),
    };
    // Spaced in fours, as apps show keys, for typing.
    let spaced: Vec<String> =
        enrolment.secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let values = context! {
        qr => minijinja::Value::from_safe_string(qr),
        secret => spaced.join(" "),
        otpauth_uri => enrolment.otpauth_uri,
        error,
    };
    Page::new("mfa_setup.html", SETUP_HEADING, values, csrf).status(status).render(state)
}

fn codes_page(state: &AppState, csrf: Csrf, codes: &[String], first: bool) -> Response {
    let values = context! { codes, first };
    Page::new("recovery_codes.html", CODES_HEADING, values, csrf).render(state)
}

/// Starts setting up an authenticator app.
pub(super) async fn begin_totp(State(state): State<AppState>, req: Request) -> Response {
    let (auth, _, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    match state.factors.begin_totp(&auth.user).await {
        Ok(enrolment) => setup_page(&state, csrf, &enrolment, None, StatusCode::OK),
        Err(e) => match factor_refused(e, "mfa", false) {
            Ok(view) => answer(&state, &auth, csrf, view).await,
            Err(e) => e.into_response(),
        },
    }
}

/// Confirms the app with its first code, and shows the recovery codes once.
pub(super) async fn confirm_totp(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    let code = form.code.as_deref().map(str::trim).unwrap_or_default();
    let outcome = if code.is_empty() {
        Err(FactorError::WrongCode)
    } else {
        state.factors.confirm_totp(&auth.user, code, client.client()).await
    };
    let (error, status) = match outcome {
        Ok(codes) => return codes_page(&state, csrf, &codes, true),
        Err(FactorError::WrongCode) => {
            ("That is not the app's current code. Enter the code it shows now.", StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => {
            return match factor_refused(e, "mfa", false) {
                Ok(view) => answer(&state, &auth, csrf, view).await,
                Err(e) => e.into_response(),
            };
        }
    };
    match state.factors.pending_totp(&auth.user).await {
        Ok(Some(enrolment)) => setup_page(&state, csrf, &enrolment, Some(error), status),
        Ok(None) => answer(&state, &auth, csrf, View::failed(StatusCode::CONFLICT, "That setup has ended.")).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// What confirms a change of factors on the page: the password.
fn page_confirmation(form: &PageForm) -> Confirmation<'_> {
    Confirmation::Password(form.password.as_deref().unwrap_or_default())
}

/// Removes the authenticator app, confirmed by the password.
pub(super) async fn remove_totp(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    match state.factors.remove_totp(&auth.user, page_confirmation(&form), client.client()).await {
        Ok(()) => done("mfa-removed"),
        Err(e) => match factor_refused(e, "mfa-remove-password", form.password.as_deref().unwrap_or("").is_empty()) {
            Ok(view) => answer(&state, &auth, csrf, view).await,
            Err(e) => e.into_response(),
        },
    }
}

/// Replaces the recovery codes, confirmed by the password, and shows the new ones once.
pub(super) async fn recovery_codes(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    match state.factors.regenerate_recovery_codes(&auth.user, page_confirmation(&form), client.client()).await {
        Ok(codes) => codes_page(&state, csrf, &codes, false),
        Err(e) => match factor_refused(e, "mfa-codes-password", form.password.as_deref().unwrap_or("").is_empty()) {
            Ok(view) => answer(&state, &auth, csrf, view).await,
            Err(e) => e.into_response(),
        },
    }
}

/// Removes a passkey, confirmed by the password.
pub(super) async fn remove_passkey(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (auth, form, csrf) = account_form!(state, req);
    if let Some(view) = locked(&state, &auth) {
        return answer(&state, &auth, csrf, view).await;
    }
    let Some(id) = form.passkey.as_deref().and_then(crate::domain::PasskeyId::parse) else {
        let view = View::failed(StatusCode::UNPROCESSABLE_ENTITY, "Choose a passkey to remove.");
        return answer(&state, &auth, csrf, view).await;
    };
    // The input's id on the page: the passkey's place in the list.
    let key = match state.factors.passkeys(auth.user.id).await {
        Ok(passkeys) => passkeys.iter().position(|p| p.id == id).map(|i| format!("passkey-remove-{}", i + 1)),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let empty = form.password.as_deref().unwrap_or("").is_empty();
    match state.factors.remove_passkey(&auth.user, id, page_confirmation(&form), client.client()).await {
        Ok(()) => done("passkey-removed"),
        Err(FactorError::NoFactor) => {
            answer(&state, &auth, csrf, View::failed(StatusCode::NOT_FOUND, "That passkey is gone already.")).await
        }
        Err(e) => match factor_refused(e, key.as_deref().unwrap_or("passkey"), empty) {
            Ok(view) => answer(&state, &auth, csrf, view).await,
            Err(e) => e.into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::client_label;

    #[test]
    fn a_session_is_labelled_by_its_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36 EdgA/131.0 Edg/131.0",
                "Edge on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            ("curl/8.5.0", "curl"),
            ("python-requests/2.32.3", "python-requests"),
            ("", "Unknown client"),
        ];
        for (ua, label) in cases {
            assert_eq!(client_label(Some(ua)), label, "{ua}");
        }
        assert_eq!(client_label(None), "Unknown client");
    }
}
