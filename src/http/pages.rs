//! Hosted pages (SPEC §7): server-rendered HTML forms that do what the API does, through
//! the same services, so that the links in Latch's emails land on a working page. The
//! templates are compiled once, at start. Every form carries a CSRF token (a random
//! value in a `SameSite=Strict` cookie, repeated in the form) besides the Origin check
//! of cookie requests; a `GET` never uses up a token. `LATCH_UI=off` removes them.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::auth::secret;
use crate::auth::sessions::{LoginOptions, SessionError};
use crate::domain::input::{self, TokenAndPassword};
use crate::http::cookies;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{ClientInfo, Input, JsonOrForm};
use crate::http::state::AppState;
use crate::settings::Settings;

/// `Content-Security-Policy` of the pages: the stylesheet from here, no script at all,
/// forms post only here, never framed.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("pages/style.css");

/// The routes of the pages, or none when `LATCH_UI=off`.
pub fn router(settings: &Settings) -> Router<AppState> {
    if !settings.ui {
        return Router::new();
    }
    Router::new()
        .route("/ui/style.css", get(style))
        .route("/verify-email", get(verify_email_page).post(verify_email))
        .route("/reset-password", get(reset_password_page).post(reset_password))
        .route("/forgot-password", get(forgot_password_page).post(forgot_password))
        .route("/login", get(login_page).post(login))
}

/// The compiled templates.
#[derive(Clone)]
pub struct Templates(Arc<Environment<'static>>);

impl Templates {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("pages/base.html")),
            ("verify_email.html", include_str!("pages/verify_email.html")),
            ("reset_password.html", include_str!("pages/reset_password.html")),
            ("forgot_password.html", include_str!("pages/forgot_password.html")),
            ("login.html", include_str!("pages/login.html")),
        ] {
            env.add_template(name, source)?;
        }
        Ok(Self(Arc::new(env)))
    }
}

/// One page to answer: its template, heading and values, with its status and the CSRF
/// cookie to set when the browser had none.
struct Page {
    status: StatusCode,
    template: &'static str,
    heading: &'static str,
    values: Value,
    csrf: Csrf,
}

impl Page {
    fn render(self, state: &AppState) -> Response {
        let values = context! {
            heading => self.heading,
            ui_title => state.settings.ui_title,
            csrf => self.csrf.token,
            ..self.values
        };
        let html = state.templates.0.get_template(self.template).and_then(|t| t.render(values));
        let html = match html {
            Ok(html) => html,
            Err(e) => {
                return ApiError::internal(anyhow::anyhow!("page {} did not render: {e}", self.template))
                    .into_response();
            }
        };
        let mut response = (self.status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        if let Some(cookie) = self.csrf.set_cookie {
            headers.insert(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// The form's CSRF token: the browser's `latch_csrf` cookie, or a new one to set.
struct Csrf {
    token: String,
    set_cookie: Option<HeaderValue>,
}

impl Csrf {
    fn for_browser(settings: &Settings, headers: &HeaderMap) -> Result<Self, ApiError> {
        if let Some(token) = cookies::read(headers, cookies::csrf_name(settings)).filter(|t| issued_form(t)) {
            return Ok(Self { token, set_cookie: None });
        }
        let token = secret::random_token();
        let set_cookie = Some(cookies::csrf(settings, &token)?);
        Ok(Self { token, set_cookie })
    }

    /// A form post is ours when it comes from our own origin (stricter than the API's
    /// rule: not another origin of the site, nor one allowed for CORS) and repeats the
    /// browser's CSRF cookie, which must have the form of the tokens we issue.
    fn check(
        state: &AppState,
        method: &Method,
        headers: &HeaderMap,
        presented: Option<&str>,
    ) -> Result<Self, ApiError> {
        refuse_other_origins(method, headers, &state.settings.public_url)?;
        let cookie = cookies::read(headers, cookies::csrf_name(&state.settings)).filter(|c| issued_form(c));
        let matches = match (&cookie, presented) {
            (Some(cookie), Some(presented)) => bool::from(cookie.as_bytes().ct_eq(presented.as_bytes())),
            _ => false,
        };
        if !matches {
            return Err(ApiError::forbidden(
                "the form has expired or did not come from this site; reload it and try again",
            ));
        }
        Ok(Self { token: cookie.unwrap_or_default(), set_cookie: None })
    }
}

/// The form of [`secret::random_token`]: 43 base64url characters.
fn issued_form(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Refuses a state-changing request that a browser says came from anywhere but our own
/// origin: `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` other than
/// the public URL's.
fn refuse_other_origins(method: &Method, headers: &HeaderMap, public_url: &str) -> Result<(), ApiError> {
    if method.is_safe() {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let refused = || ApiError::forbidden("the form did not come from this site; reload it and try again");
    if header("sec-fetch-site")
        .is_some_and(|s| !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none"))
    {
        return Err(refused());
    }
    let ours = url::Url::parse(public_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    match header("origin") {
        None => Ok(()),
        Some(origin) if url::Url::parse(origin).is_ok_and(|o| o.origin().ascii_serialization() == ours) => Ok(()),
        Some(_) => Err(refused()),
    }
}

async fn style() -> Response {
    let headers = [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, STYLE).into_response()
}

/// The `token` of a link's query; a link with it twice is no valid link.
struct TokenQuery {
    token: Option<String>,
}

impl TokenQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut tokens = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).filter(|(k, _)| k == "token");
        let token = match (tokens.next(), tokens.next()) {
            (Some((_, token)), None) => Some(token.into_owned()),
            _ => None,
        };
        Self { token }
    }
}

/// Turns an error into the page that shows it: a refused form (CSRF) or a limit keeps
/// its status; anything that is not the visitor's doing stays a problem document.
fn error_page(state: &AppState, e: ApiError, mut page: Page) -> Response {
    match e.code() {
        ErrorCode::Forbidden | ErrorCode::RateLimited | ErrorCode::BadRequest | ErrorCode::ValidationFailed => {
            page.status = e.status();
            let retry_after = e.retry_after();
            let mut response = page.render(state);
            if let Some(secs) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        _ => e.into_response(),
    }
}

const VERIFY_HEADING: &str = "Confirm your email address";
const INVALID_LINK: &str = "This link is invalid, used or expired. Ask for a new one.";

/// Shows the confirmation form: opening the link uses nothing up (mail scanners open
/// links too).
async fn verify_email_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    link_page(&state, &headers, TokenQuery::parse(query.as_deref()), "verify_email.html", VERIFY_HEADING)
}

/// A form posted to a page, once its CSRF token and origin are checked.
async fn posted(state: &AppState, req: Request) -> Result<(TokenForm, Csrf), ApiError> {
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let Input(form) = JsonOrForm::<TokenForm>::from_request(req, state).await?;
    let csrf = Csrf::check(state, &method, &headers, form.csrf.as_deref())?;
    Ok((form, csrf))
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: Option<String>,
    token: Option<String>,
    new_password: Option<String>,
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

async fn verify_email(State(state): State<AppState>, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(e) => return e.into_response(),
    };
    let token = form.token.unwrap_or_default();
    match state.accounts.confirm_email(&token).await {
        Ok(_) => Page {
            status: StatusCode::OK,
            template: "verify_email.html",
            heading: VERIFY_HEADING,
            values: context! { done => true },
            csrf,
        }
        .render(&state),
        Err(e) => {
            let e = ApiError::from(e);
            let page = Page {
                status: StatusCode::BAD_REQUEST,
                template: "verify_email.html",
                heading: VERIFY_HEADING,
                values: context! { error => INVALID_LINK },
                csrf,
            };
            error_page(&state, e, page)
        }
    }
}

const RESET_HEADING: &str = "Choose a new password";

/// The page a link opens: its form carries the link's token; without one, a 400 page.
fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    q: TokenQuery,
    template: &'static str,
    heading: &'static str,
) -> Response {
    let csrf = match Csrf::for_browser(&state.settings, headers) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    let token = q.token.filter(|t| !t.is_empty());
    let error = token.is_none().then_some(INVALID_LINK);
    let status = if token.is_some() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Page { status, template, heading, values: context! { token, error }, csrf }.render(state)
}

async fn reset_password_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    link_page(&state, &headers, TokenQuery::parse(query.as_deref()), "reset_password.html", RESET_HEADING)
}

async fn reset_password(State(state): State<AppState>, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(e) => return e.into_response(),
    };
    let result = match TokenAndPassword::parse(form.token.as_deref(), form.new_password.as_deref()) {
        Ok(TokenAndPassword { token, new_password }) => {
            state.accounts.reset_password(token, new_password).await.map_err(ApiError::from)
        }
        Err(errors) => Err(ApiError::validation(errors)),
    };
    let page = |values: Value, csrf: Csrf| Page {
        status: StatusCode::OK,
        template: "reset_password.html",
        heading: RESET_HEADING,
        values,
        csrf,
    };
    match result {
        Ok(()) => page(context! { done => true }, csrf).render(&state),
        Err(e) => {
            // A refused password keeps the token (the link still works); a bad token
            // ends the form.
            let field_error = e.field_errors().iter().find(|f| f.field == "new_password").map(|f| f.message.clone());
            let values = match &field_error {
                Some(_) => context! { token => form.token, field_error, error => "The new password was not accepted." },
                None => context! { error => INVALID_LINK },
            };
            error_page(&state, e, page(values, csrf))
        }
    }
}

const FORGOT_HEADING: &str = "Reset your password";

async fn forgot_password_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match Csrf::for_browser(&state.settings, &headers) {
        Ok(csrf) => Page {
            status: StatusCode::OK,
            template: "forgot_password.html",
            heading: FORGOT_HEADING,
            values: context! {},
            csrf,
        }
        .render(&state),
        Err(e) => e.into_response(),
    }
}

/// The API's rules and timing: the same answer, at the same moment, whether or not an
/// account uses the address (`password_reset::request_reset`).
async fn forgot_password(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(e) => return e.into_response(),
    };
    let page = |values: Value, csrf: Csrf| Page {
        status: StatusCode::OK,
        template: "forgot_password.html",
        heading: FORGOT_HEADING,
        values,
        csrf,
    };
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
                Some(secs) => format!("Too many requests. Try again in {secs} seconds."),
                None => e.detail().to_owned(),
            };
            let values = context! { email => form.email, error => message };
            error_page(&state, e, page(values, csrf))
        }
    }
}

const LOGIN_HEADING: &str = "Sign in";

/// Where a sign-in may send the browser: one of Latch's own paths, a page on an origin
/// allowed for CORS, or a registered redirect URI. Anything else is dropped, so that no
/// link through Latch leads elsewhere (no open redirect).
fn allowed_return_to(state: &AppState, return_to: Option<&str>) -> Option<String> {
    let target = return_to.filter(|t| !t.is_empty() && t.len() <= 2048)?;
    if target.starts_with('/') {
        // `//host` and `/\host` are other hosts to a browser.
        let own = !target.starts_with("//") && !target.starts_with("/\\") && !target.contains(['\\', '\r', '\n', '\t']);
        return own.then(|| target.to_owned());
    }
    let url = url::Url::parse(target).ok()?;
    let allowed = matches!(url.scheme(), "http" | "https")
        && (state.clients.origin_allowed(&url.origin().ascii_serialization())
            || state.clients.redirect_uri_registered(target));
    allowed.then(|| target.to_owned())
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let csrf = match Csrf::for_browser(&state.settings, &headers) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    let return_to = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "return_to")
        .and_then(|(_, v)| allowed_return_to(&state, Some(&v)));
    let values = context! { return_to };
    Page { status: StatusCode::OK, template: "login.html", heading: LOGIN_HEADING, values, csrf }.render(&state)
}

/// Signs the browser in under the API's rules (`POST /sessions`): the same limits, the
/// same one answer for an unknown user and a wrong password, the device cookie.
async fn login(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (form, csrf) = match posted(&state, req).await {
        Ok(posted) => posted,
        Err(e) => return e.into_response(),
    };
    let login = form.username.as_deref().unwrap_or("").trim().to_owned();
    let return_to = allowed_return_to(&state, form.return_to.as_deref());
    let page = |status: StatusCode, error: &str, csrf: Csrf| Page {
        status,
        template: "login.html",
        heading: LOGIN_HEADING,
        values: context! { username => login, return_to, error },
        csrf,
    };
    let password = form.password.as_deref().unwrap_or("");
    if login.is_empty() || password.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, "Enter your email or username and your password.", csrf)
            .render(&state);
    }
    let options = LoginOptions { require_verified: true, issue_device: true };
    let outcome = state.sessions.login(&login, password, client.client(), options).await;
    state.metrics.login(&outcome);
    let logged_in = match outcome {
        Ok(logged_in) => logged_in,
        Err(e) => {
            let (status, message) = match &e {
                SessionError::InvalidCredentials => {
                    (StatusCode::UNAUTHORIZED, "The email, username or password is not right.".to_owned())
                }
                SessionError::RateLimited { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many failed sign-ins. Try again in {retry_after} seconds."),
                ),
                SessionError::Disabled => (StatusCode::FORBIDDEN, "This account is disabled.".to_owned()),
                SessionError::NotVerified => (
                    StatusCode::FORBIDDEN,
                    "Confirm your email address first: open the link we emailed you.".to_owned(),
                ),
                _ => return ApiError::from(e).into_response(),
            };
            let mut response = page(status, &message, csrf).render(&state);
            if let SessionError::RateLimited { retry_after } = e {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            return response;
        }
    };
    let secret = match state.sessions.start_browser(&logged_in.user, client.client()).await {
        Ok(secret) => secret,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = match &return_to {
        Some(target) => match HeaderValue::from_str(target) {
            Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::SEE_OTHER.into_response(),
        },
        None => Page {
            status: StatusCode::OK,
            template: "login.html",
            heading: "Signed in",
            values: context! { done => true, username => logged_in.user.username },
            csrf,
        }
        .render(&state),
    };
    let mut set = vec![cookies::session(&state.settings, Some(&secret))];
    if let Some(device) = &logged_in.device {
        set.push(cookies::device(&state.settings, device));
    }
    for cookie in set {
        match cookie {
            Ok(cookie) => {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Err(e) => return e.into_response(),
        }
    }
    response
}
