//! Hosted pages (SPEC §7): server-rendered HTML forms that do what the API does, through
//! the same services, so that a person can sign up, sign in, confirm an address, reset a
//! password and manage the account in a browser, and the links in Latch's emails land
//! on a working page. The templates are compiled once, at start (built-in ones, or those
//! of `LATCH_UI_TEMPLATES`). Every form carries a CSRF token (a random value in a
//! `SameSite=Strict` cookie, repeated in the form) besides an Origin check stricter
//! than the API's; a `GET` never uses up a token. No page runs script.
//! `LATCH_UI=off` removes them.

mod account;
mod authorize;
mod links;
pub(crate) mod signin;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::auth::secret;
use crate::http::cookies;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{AuthUser, Input, JsonOrForm};
use crate::http::state::AppState;
use crate::settings::Settings;

pub use signin::{logout, wants_page};

/// The built-in templates, by name; a file of the same name in `LATCH_UI_TEMPLATES`
/// replaces one.
const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("message.html", include_str!("templates/message.html")),
    ("verify_email.html", include_str!("templates/verify_email.html")),
    ("reset_password.html", include_str!("templates/reset_password.html")),
    ("forgot_password.html", include_str!("templates/forgot_password.html")),
    ("login.html", include_str!("templates/login.html")),
    ("signup.html", include_str!("templates/signup.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("login_mfa.html", include_str!("templates/login_mfa.html")),
    ("account.html", include_str!("templates/account.html")),
    ("mfa_setup.html", include_str!("templates/mfa_setup.html")),
    ("recovery_codes.html", include_str!("templates/recovery_codes.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("end_session.html", include_str!("templates/end_session.html")),
    ("style.css", include_str!("templates/style.css")),
];

/// The routes of the pages, or none when `LATCH_UI=off`. `POST /logout` is the API's
/// route, which hands form posts from a browser to [`logout`].
pub fn router(settings: &Settings) -> Router<AppState> {
    if !settings.ui {
        return Router::new();
    }
    Router::new()
        .route("/ui/style.css", get(style))
        .route("/ui/passkeys.js", get(passkeys_script))
        .route("/verify-email", get(links::verify_email_page).post(links::verify_email))
        .route("/reset-password", get(links::reset_password_page).post(links::reset_password))
        .route("/forgot-password", get(links::forgot_password_page).post(links::forgot_password))
        .route("/login", get(signin::login_page).post(signin::login))
        .route("/login/mfa", get(signin::restart_login).post(signin::login_second_step))
        .route("/signup", get(signin::signup_page).post(signin::signup))
        .route("/logout", get(signin::logout_page))
        .route("/account", get(account::page))
        .route("/account/profile", post(account::profile))
        .route("/account/email", post(account::email))
        .route("/account/verification", post(account::verification))
        .route("/account/password", post(account::password))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/delete", post(account::delete))
        .route("/account/consents/revoke", post(account::revoke_consent))
        .route("/account/mfa/totp", post(account::begin_totp))
        .route("/account/mfa/totp/confirm", post(account::confirm_totp))
        .route("/account/mfa/totp/remove", post(account::remove_totp))
        .route("/account/mfa/recovery-codes", post(account::recovery_codes))
        .route("/account/passkeys/remove", post(account::remove_passkey))
        .route("/authorize", get(authorize::authorize).post(authorize::authorize_post))
        .route("/end_session", get(authorize::end_session).post(authorize::end_session_post))
}

/// The compiled templates, the stylesheet rendered with the theme, and the pages'
/// `Content-Security-Policy`.
#[derive(Clone)]
pub struct Templates(Arc<Compiled>);

struct Compiled {
    env: Environment<'static>,
    css: String,
    csp: HeaderValue,
    /// The image sources of the CSP, for pages whose forms may lead elsewhere.
    img: String,
    /// Pages with no values of their own, rendered at start around a placeholder for
    /// the CSRF token: a first visit to `/login` costs a copy, not a render.
    fixed: HashMap<&'static str, Vec<String>>,
}

/// Stands for the CSRF token in the pages rendered at start; like a token, it has 43
/// base64url characters, so escaping leaves it as it is.
const TOKEN_PLACEHOLDER: &str = "LatchCsrfTokenPlaceholder0123456789abcdefgh";

/// The pages that are often opened with no values of their own.
const FIXED: &[(&str, &str)] =
    &[("login.html", signin::LOGIN_HEADING), ("forgot_password.html", links::FORGOT_HEADING)];

impl Templates {
    /// Compiles the built-in templates, each replaced by the file of the same name in
    /// `overrides` when there is one; other `.html` files there are added (for the
    /// overrides to include). A template that does not compile stops the start.
    pub fn new(settings: &Settings, overrides: Option<&Path>) -> anyhow::Result<Self> {
        let mut sources: Vec<(String, String)> =
            BUILT_IN.iter().map(|(name, source)| ((*name).to_owned(), (*source).to_owned())).collect();
        if let Some(dir) = overrides {
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("LATCH_UI_TEMPLATES: cannot read the directory {}", dir.display()))?;
            for entry in entries {
                let path = entry?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
                if !(name.ends_with(".html") || name == "style.css") {
                    continue;
                }
                let source = std::fs::read_to_string(&path)
                    .with_context(|| format!("LATCH_UI_TEMPLATES: {}", path.display()))?;
                match sources.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = source,
                    None => sources.push((name, source)),
                }
            }
        }
        let mut env = Environment::new();
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source)
                .with_context(|| format!("template {name} does not compile"))?;
        }
        let css = env
            .get_template("style.css")
            .and_then(|t| t.render(context! { theme => &settings.theme }))
            .context("style.css does not render")?;
        // A logo elsewhere is the one image source the pages may load besides their own.
        let logo_origin = settings
            .theme
            .logo_url
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null" && settings.public_url != *o);
        let img = match logo_origin {
            Some(origin) => format!("img-src 'self' {origin}"),
            None => "img-src 'self'".to_owned(),
        };
        // Passkeys need the pages' one script, which asks Latch's API for the WebAuthn
        // options and answers; without passkeys the pages run no script at all.
        let img =
            if settings.webauthn.is_some() { format!("{img}; script-src 'self'; connect-src 'self'") } else { img };
        let csp = HeaderValue::from_str(&csp(&img, None))?;
        let mut fixed = HashMap::new();
        for &(template, heading) in FIXED {
            let values = page_values(settings, heading, TOKEN_PLACEHOLDER, context! {});
            let html = env.get_template(template).and_then(|t| t.render(values))?;
            fixed.insert(template, html.split(TOKEN_PLACEHOLDER).map(str::to_owned).collect());
        }
        Ok(Self(Arc::new(Compiled { env, css, csp, img, fixed })))
    }
}

/// The pages' `Content-Security-Policy`. `form-action` also governs where the redirect
/// after a form post may lead, so a sign-in form that returns to an application's
/// origin must name it.
fn csp(img: &str, form_leads_to: Option<&str>) -> String {
    let also = form_leads_to.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; {img}; form-action 'self'{also}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// One page to answer: its template, heading and values, with its status and the CSRF
/// cookie to set when the browser had none.
struct Page {
    status: StatusCode,
    template: &'static str,
    heading: &'static str,
    values: Value,
    csrf: Csrf,
    /// Another origin its form's answer may redirect to (an allowed `return_to`).
    form_leads_to: Option<String>,
}

impl Page {
    fn new(template: &'static str, heading: &'static str, values: Value, csrf: Csrf) -> Self {
        Self { status: StatusCode::OK, template, heading, values, csrf, form_leads_to: None }
    }

    /// The page's form may end in a redirect to `return_to` when that is on another
    /// origin — also through `/authorize`, whose answer leads to the client's redirect
    /// URI (which `/authorize` checks before it leads anywhere).
    fn returning_to(mut self, state: &AppState, return_to: Option<&str>) -> Self {
        let target = match return_to {
            Some(path) if path.starts_with('/') => path
                .strip_prefix("/authorize?")
                .and_then(|query| form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "redirect_uri"))
                .map(|(_, v)| v.into_owned())
                .filter(|uri| state.clients.redirect_uri_matches(uri)),
            other => other.map(str::to_owned),
        };
        // A native app's own scheme (`com.example.app:/callback`) is a scheme source.
        self.form_leads_to = target.and_then(|t| url::Url::parse(&t).ok()).map(|u| match u.scheme() {
            "http" | "https" => u.origin().ascii_serialization(),
            scheme => format!("{scheme}:"),
        });
        self
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn render(self, state: &AppState) -> Response {
        let compiled = &state.templates.0;
        let fixed = compiled.fixed.get(self.template).filter(|_| self.values.len() == Some(0));
        let html = match fixed {
            Some(parts) => Ok(parts.join(self.csrf.token.as_str())),
            None => {
                let values = page_values(&state.settings, self.heading, &self.csrf.token, self.values);
                compiled.env.get_template(self.template).and_then(|t| t.render(values))
            }
        };
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
        let csp = match &self.form_leads_to {
            None => compiled.csp.clone(),
            Some(origin) => {
                HeaderValue::from_str(&csp(&compiled.img, Some(origin))).unwrap_or_else(|_| compiled.csp.clone())
            }
        };
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        // Pages hold a CSRF token and personal data: never from a shared cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Not the API's `no-referrer`: under it browsers send `Origin: null` with a
        // page's own form posts, which the origin check could not tell from a sandboxed
        // attacker. `same-origin` sends the origin to us only; a link's token never
        // leaves in a `Referer` to anyone else.
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        if let Some(cookie) = self.csrf.set_cookie {
            headers.insert(header::SET_COOKIE, cookie);
        }
        response
    }

    /// The same page with a `Retry-After` header when the error had one.
    fn render_error(self, state: &AppState, retry_after: Option<u64>) -> Response {
        let mut response = self.render(state);
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What every template receives, with the page's own values.
fn page_values(settings: &Settings, heading: &str, csrf: &str, own: Value) -> Value {
    context! {
        heading,
        theme => &settings.theme,
        csrf,
        passkeys => settings.webauthn.is_some(),
        ..own
    }
}

/// A page with a heading, a sentence and perhaps a link onwards.
fn message(
    state: &AppState,
    csrf: Csrf,
    status: StatusCode,
    heading: &'static str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let values = context! { text, link_href => link.map(|l| l.0), link_text => link.map(|l| l.1) };
    Page::new("message.html", heading, values, csrf).status(status).render(state)
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
            return Err(ApiError::forbidden(FORM_REFUSED));
        }
        Ok(Self { token: cookie.unwrap_or_default(), set_cookie: None })
    }
}

const FORM_UNREADABLE: &str = "The form could not be read. Go back, reload the page and try again.";
const FORM_REFUSED: &str =
    "The form has expired or did not come from this site. Go back, reload the page and try again.";

/// The form of [`secret::random_token`]: 43 base64url characters.
fn issued_form(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Refuses a state-changing request that a browser says came from anywhere but our own
/// origin: `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` other than
/// the public URL's. `Sec-Fetch-Site: same-origin` is the browser's own word (a page
/// cannot set it) and settles it; without it the `Origin` must be ours.
fn refuse_other_origins(method: &Method, headers: &HeaderMap, public_url: &str) -> Result<(), ApiError> {
    if method.is_safe() {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let refused = || ApiError::forbidden(FORM_REFUSED);
    match header("sec-fetch-site") {
        Some(s) if s.eq_ignore_ascii_case("same-origin") => return Ok(()),
        Some(s) if !s.eq_ignore_ascii_case("none") => return Err(refused()),
        _ => {}
    }
    let ours = url::Url::parse(public_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    match header("origin") {
        None => Ok(()),
        Some(origin) if url::Url::parse(origin).is_ok_and(|o| o.origin().ascii_serialization() == ours) => Ok(()),
        Some(_) => Err(refused()),
    }
}

/// The pages' script: passkeys on the account, sign-in and second-step pages.
async fn passkeys_script() -> Response {
    let headers =
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, include_str!("templates/passkeys.js")).into_response()
}

async fn style(State(state): State<AppState>) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, state.templates.0.css.clone()).into_response()
}

/// The fields of every page's forms; each form uses some.
#[derive(Deserialize, Default)]
struct PageForm {
    csrf: Option<String>,
    token: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
    return_to: Option<String>,
    session: Option<String>,
    client_id: Option<String>,
    mfa_token: Option<String>,
    otp: Option<String>,
    recovery_code: Option<String>,
    webauthn: Option<String>,
    code: Option<String>,
    passkey: Option<String>,
}

/// A form posted to a page, once its CSRF token and origin are checked. A refused form
/// is a 403 page.
async fn posted(state: &AppState, req: Request) -> Result<(PageForm, Csrf), Response> {
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let form = match JsonOrForm::<PageForm>::from_request(req, state).await {
        Ok(Input(form)) => form,
        Err(e) => {
            // A body no form of ours sends (a field twice, too large, another type).
            let csrf = match Csrf::for_browser(&state.settings, &headers) {
                Ok(csrf) => csrf,
                Err(e) => return Err(e.into_response()),
            };
            return Err(message(state, csrf, e.status(), "Form refused", FORM_UNREADABLE, None));
        }
    };
    match Csrf::check(state, &method, &headers, form.csrf.as_deref()) {
        Ok(csrf) => Ok((form, csrf)),
        Err(_) => {
            // The refusal page offers a fresh token for the reload.
            let csrf = match Csrf::for_browser(&state.settings, &headers) {
                Ok(csrf) => csrf,
                Err(e) => return Err(e.into_response()),
            };
            Err(message(state, csrf, StatusCode::FORBIDDEN, "Form refused", FORM_REFUSED, None))
        }
    }
}

/// The signed-in browser behind a page request: its session cookie (or another
/// credential the API accepts), including an account whose address is not yet
/// confirmed.
async fn signed_in(state: &AppState, req: Request) -> (Result<AuthUser<true>, ApiError>, Request) {
    let (mut parts, body) = req.into_parts();
    let auth = AuthUser::<true>::from_request_parts(&mut parts, state).await;
    (auth, Request::from_parts(parts, body))
}

/// Turns an error into the page that shows it: a refused form (CSRF) or a limit keeps
/// its status; anything that is not the visitor's doing stays a problem document.
fn error_page(state: &AppState, e: ApiError, mut page: Page) -> Response {
    match e.code() {
        ErrorCode::Forbidden | ErrorCode::RateLimited | ErrorCode::BadRequest | ErrorCode::ValidationFailed => {
            page.status = e.status();
            page.render_error(state, e.retry_after())
        }
        _ => e.into_response(),
    }
}

/// What a limit says on a page.
fn too_many(retry_after: u64) -> String {
    format!("Too many attempts. Try again in {}.", wait(retry_after))
}

fn wait(secs: u64) -> String {
    match secs {
        0..=1 => "a second".to_owned(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// The path a redirect to the sign-in page carries back.
fn login_then(path: &str) -> String {
    let back: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    format!("/login?return_to={back}")
}

/// A redirect (303) to `location`, or to the account page when `location` cannot be a
/// header value (the allow-list refuses such targets first).
fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/account"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Adds `Set-Cookie` headers, or answers the error of one that could not be built.
fn with_cookies(mut response: Response, set: Vec<Result<HeaderValue, ApiError>>) -> Response {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::Theme;

    #[test]
    fn a_page_rendered_at_start_is_the_page_rendered_now() {
        let settings = Settings {
            public_url: "http://127.0.0.1:8080".to_owned(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            session_idle_timeout: Duration::from_secs(3600),
            require_verified_email: false,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            metrics_apart: false,
            ui: true,
            theme: Theme::new("Acme", Some("/logo.png"), None, "http://127.0.0.1:8080"),
            webauthn: None,
        };
        let templates = Templates::new(&settings, None).unwrap();
        let token = secret::random_token();
        for &(template, heading) in FIXED {
            let now = templates.0.env.get_template(template).unwrap();
            let now = now.render(page_values(&settings, heading, &token, context! {})).unwrap();
            let fixed = templates.0.fixed[template].join(token.as_str());
            assert_eq!(fixed, now, "{template}");
            assert!(fixed.contains(&format!(r#"name="csrf" value="{token}""#)), "{fixed}");
        }
    }
}
