//! The pages the links of emails open — `/verify-email`, `/reset-password` — and the
//! form that asks for a reset link, `/forgot-password`.

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use super::{Csrf, Page, error_page, posted, too_many};
use crate::domain::input::{self, TokenAndPassword};
use crate::http::error::ApiError;
use crate::http::extract::ClientInfo;
use crate::http::state::AppState;

const VERIFY_HEADING: &str = "Confirm your email address";
const RESET_HEADING: &str = "Choose a new password";
pub(super) const FORGOT_HEADING: &str = "Reset your password";
const INVALID_LINK: &str = "This link is invalid, used or expired. Ask for a new one: sign in to send a new \
                            confirmation link from your account, or use \"Forgot your password?\" for a new reset link.";

/// The `token` of a link's query; a link with it twice is no valid link.
fn token_of(query: Option<&str>) -> Option<String> {
    let mut tokens = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).filter(|(k, _)| k == "token");
    match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) if !token.is_empty() => Some(token.into_owned()),
        _ => None,
    }
}

/// The page a link opens: its form carries the link's token; without one, a 400 page.
/// Opening it uses nothing up (mail scanners open links too).
fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    template: &'static str,
    heading: &'static str,
) -> Response {
    let csrf = match Csrf::for_browser(&state.settings, headers) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    let token = token_of(query);
    let error = token.is_none().then_some(INVALID_LINK);
    let status = if token.is_some() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Page::new(template, heading, context! { token, error }, csrf).status(status).render(state)
}

pub(super) async fn verify_email_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    link_page(&state, &headers, query.as_deref(), "verify_email.html", VERIFY_HEADING)
}

pub(super) async fn verify_email(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    match state.accounts.confirm_email(form.token.as_deref().unwrap_or_default(), client.client()).await {
        Ok(_) => Page::new("verify_email.html", VERIFY_HEADING, context! { done => true }, csrf).render(&state),
        Err(e) => {
            let page = Page::new("verify_email.html", VERIFY_HEADING, context! { error => INVALID_LINK }, csrf);
            error_page(&state, ApiError::from(e), page)
        }
    }
}

pub(super) async fn reset_password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    link_page(&state, &headers, query.as_deref(), "reset_password.html", RESET_HEADING)
}

pub(super) async fn reset_password(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let result = match TokenAndPassword::parse(form.token.as_deref(), form.new_password.as_deref()) {
        Ok(TokenAndPassword { token, new_password }) => {
            state.accounts.reset_password(token, new_password, client.client()).await.map_err(ApiError::from)
        }
        Err(errors) => Err(ApiError::validation(errors)),
    };
    let page = |values: Value, csrf: Csrf| Page::new("reset_password.html", RESET_HEADING, values, csrf);
    match result {
        Ok(()) => page(context! { done => true }, csrf).render(&state),
        Err(e) => {
            // A refused password keeps the token (the link still works); a bad token
            // ends the form.
            let field_error = e.field_errors().iter().find(|f| f.field == "new_password").map(|f| f.message.clone());
            let values = match (&field_error, e.retry_after()) {
                (_, Some(secs)) => context! { token => form.token, error => too_many(secs) },
                (Some(_), None) => {
                    context! { token => form.token, field_error, error => "The new password was not accepted." }
                }
                (None, None) => context! { error => INVALID_LINK },
            };
            error_page(&state, e, page(values, csrf))
        }
    }
}

pub(super) async fn forgot_password_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match Csrf::for_browser(&state.settings, &headers) {
        Ok(csrf) => Page::new("forgot_password.html", FORGOT_HEADING, context! {}, csrf).render(&state),
        Err(e) => e.into_response(),
    }
}

/// The API's rules and timing: the same answer, at the same moment, whether or not an
/// account uses the address (`password_reset::request_reset`).
pub(super) async fn forgot_password(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let page = |values: Value, csrf: Csrf| Page::new("forgot_password.html", FORGOT_HEADING, values, csrf);
    let email = match input::email(form.email.as_deref(), "email") {
        Ok(email) => email,
        Err(e) => {
            let values = context! { email => form.email, field_error => e.message };
            return error_page(&state, ApiError::validation(vec![]), page(values, csrf));
        }
    };
    match crate::http::password_reset::request_reset(&state, &client, email).await {
        Ok(()) => page(context! { done => true }, csrf).render(&state),
        Err(e) => {
            let message = match e.retry_after() {
                Some(secs) => too_many(secs),
                None => e.detail().to_owned(),
            };
            let values = context! { email => form.email, error => message };
            error_page(&state, e, page(values, csrf))
        }
    }
}
