//! The OpenID provider's browser endpoints: `/authorize` (the authorization code flow:
//! sign in, consent, the code sent back) and `/end_session` (RP-initiated logout).
//! The rules are `auth::oidc`'s; this turns them into redirects and pages. Every answer
//! here is `no-store`, unframeable (`frame-ancestors 'none'`), and sends no `Referer`
//! onwards but to Latch itself.

use axum::body::to_bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::{Csrf, Page, message, see_other, with_cookies};
use crate::auth::oidc::{AuthRequest, AuthorizeError, AuthorizeParams, GrantError, LogoutRequest, Next, Refusal};
use crate::http::MAX_BODY_BYTES;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::extract::ClientInfo;
use crate::http::state::AppState;
use crate::store::{SessionRecord, UserRecord};

const CONSENT_HEADING: &str = "Allow access?";
const REFUSED_HEADING: &str = "Sign-in request refused";
const SIGN_OUT_HEADING: &str = "Sign out";

/// What each scope lets an application do, as the consent page says it.
fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account id)".to_owned(),
        "profile" => "See your username".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Stay connected when you are not using it".to_owned(),
        other => format!("Use “{other}”"),
    }
}

/// `GET /authorize`: an authorization request (OpenID Connect Core §3.1.2).
pub(super) async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    run(&state, AuthorizeParams::parse(query.as_deref().unwrap_or("")), &headers).await
}

/// `POST /authorize`: the consent page's answer, or an authorization request sent as a
/// form (OpenID Connect Core §3.1.2.1 asks for both methods).
pub(super) async fn authorize_post(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let form = match read_form(&headers, req).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let field = |name: &str| form.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(decision) = field("decision") else {
        return run(&state, form, &headers).await;
    };
    let csrf = match Csrf::check(&state, &method, &headers, field("csrf")) {
        Ok(csrf) => csrf,
        Err(e) => return refused_form(&state, &headers, e),
    };
    let params = AuthorizeParams::parse(field("query").unwrap_or(""));
    let request = match state.oidc.check(params) {
        Ok(request) => request,
        Err(e) => return refused(&state, csrf, e),
    };
    let Some((session, user)) = browser(&state, &headers).await else {
        // Signed out meanwhile (another tab): start again from the request.
        return see_other(&format!("/authorize?{}", request.return_query(None)));
    };
    // What `/authorize` decided still holds: a sign-in that grew too old meanwhile is
    // asked again rather than consented past.
    match state.oidc.next(&request, Some((&session, &user))).await {
        Ok(Next::Consent | Next::Code(_)) => {}
        Ok(Next::SignIn { force }) => return sign_in(&state, &request, force),
        Ok(Next::Unverified) => return see_other(&format!("/authorize?{}", request.return_query(None))),
        Err(e) => return refused(&state, csrf, e),
    }
    if decision != "allow" {
        return match request.refuse("access_denied", "the user did not allow access") {
            AuthorizeError::Refused(refusal) => redirect_error(&state, &refusal, StatusCode::SEE_OTHER),
            AuthorizeError::Untrusted(u) => message(&state, csrf, StatusCode::BAD_REQUEST, REFUSED_HEADING, &u.0, None),
        };
    }
    match state.oidc.allow(&request, &session, &user, client.client()).await {
        Ok(params) => redirect(&request.redirect_uri, &params, StatusCode::SEE_OTHER),
        Err(GrantError::Store(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::internal(e.into()).into_response(),
    }
}

/// Answers a checked or refused request for the browser behind `headers`.
async fn run(state: &AppState, params: AuthorizeParams, headers: &HeaderMap) -> Response {
    // Only pages need the CSRF token: the usual answer, a redirect, makes none.
    let csrf = || Csrf::for_browser(&state.settings, headers);
    let request = match state.oidc.check(params) {
        Ok(request) => request,
        Err(e) => return with_csrf(csrf(), |csrf| refused(state, csrf, e)),
    };
    let signed_in = browser(state, headers).await;
    let next = state.oidc.next(&request, signed_in.as_ref().map(|(s, u)| (s, u))).await;
    match (next, signed_in) {
        (Ok(Next::Code(params)), _) => redirect(&request.redirect_uri, &params, StatusCode::FOUND),
        (Ok(Next::SignIn { force }), _) => sign_in(state, &request, force),
        (Ok(Next::Unverified), _) => with_csrf(csrf(), |csrf| {
            let text = "Confirm your email address first: open the link we emailed you, then try again.";
            message(state, csrf, StatusCode::FORBIDDEN, REFUSED_HEADING, text, None)
        }),
        (Ok(Next::Consent), Some((_, user))) => with_csrf(csrf(), |csrf| consent_page(state, csrf, &request, &user)),
        (Ok(Next::Consent), None) => sign_in(state, &request, false),
        (Err(e), _) => with_csrf(csrf(), |csrf| refused(state, csrf, e)),
    }
}

/// `page` with the browser's CSRF token, or the error of making one.
fn with_csrf(csrf: Result<Csrf, ApiError>, page: impl FnOnce(Csrf) -> Response) -> Response {
    match csrf {
        Ok(csrf) => page(csrf),
        Err(e) => e.into_response(),
    }
}

/// To the sign-in page, which comes back here; a forced sign-in is marked so that it
/// is asked for once.
fn sign_in(state: &AppState, request: &AuthRequest, force: bool) -> Response {
    let marker = force.then(|| state.oidc.sign_in_marker(request));
    let back = format!("/authorize?{}", request.return_query(marker));
    let mut to = form_urlencoded::Serializer::new(String::new());
    to.append_pair("return_to", &back);
    if force {
        to.append_pair("prompt", "login");
    }
    if let Some(hint) = &request.login_hint {
        to.append_pair("login_hint", hint);
    }
    see_other(&format!("/login?{}", to.finish()))
}

fn consent_page(state: &AppState, csrf: Csrf, request: &AuthRequest, user: &UserRecord) -> Response {
    let scopes: Vec<String> = request.scope.split(' ').map(describe).collect();
    let values = context! {
        client_name => &request.client.name,
        username => &user.username,
        scopes,
        query => request.params.to_query(),
        redirect_host => url::Url::parse(&request.redirect_uri).ok().and_then(|u| u.host_str().map(str::to_owned)),
    };
    Page::new("consent.html", CONSENT_HEADING, values, csrf)
        .returning_to(state, Some(&request.redirect_uri))
        .render(state)
}

/// A refused request: a page while the client or redirect URI are not known to be
/// registered, else back to the client.
fn refused(state: &AppState, csrf: Csrf, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Untrusted(u) => message(state, csrf, StatusCode::BAD_REQUEST, REFUSED_HEADING, &u.0, None),
        AuthorizeError::Refused(r) => redirect_error(state, &r, StatusCode::FOUND),
    }
}

fn redirect_error(state: &AppState, r: &Refusal, status: StatusCode) -> Response {
    let mut params = vec![("error", r.error.to_owned()), ("error_description", r.description.clone())];
    if let Some(s) = &r.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", state.oidc.issuer().to_owned()));
    redirect(&r.redirect_uri, &params, status)
}

/// A redirect to `uri` (a registered redirect URI: absolute, without a fragment) with
/// `params` added to its query, form-encoded.
fn redirect(uri: &str, params: &[(&str, String)], status: StatusCode) -> Response {
    let mut location = String::with_capacity(uri.len() + 64 + params.iter().map(|(_, v)| v.len()).sum::<usize>());
    location.push_str(uri);
    let mut separator = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        location.push(separator);
        separator = '&';
        location.push_str(name);
        location.push('=');
        // A code is base64url, which needs no escape: copied as is, it costs nothing.
        if value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*')) {
            location.push_str(value);
        } else {
            location.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        }
    }
    match HeaderValue::from_str(&location) {
        Ok(location) => (status, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "the redirect URI is not a URL").into_response(),
    }
}

/// The browser's session and user, from its session cookie.
async fn browser(state: &AppState, headers: &HeaderMap) -> Option<(SessionRecord, UserRecord)> {
    let secret = cookies::read(headers, cookies::session_name(&state.settings))?;
    state.sessions.by_cookie(&secret).await.ok()
}

/// A urlencoded form body, as pairs.
async fn read_form(headers: &HeaderMap, req: Request) -> Result<AuthorizeParams, Response> {
    let urlencoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !urlencoded {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/x-www-form-urlencoded").into_response());
    }
    let body = to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response())?;
    let text =
        std::str::from_utf8(&body).map_err(|_| (StatusCode::BAD_REQUEST, "the form is not UTF-8").into_response())?;
    Ok(AuthorizeParams::parse(text))
}

fn refused_form(state: &AppState, headers: &HeaderMap, e: crate::http::error::ApiError) -> Response {
    match Csrf::for_browser(&state.settings, headers) {
        Ok(csrf) => message(state, csrf, e.status(), "Form refused", super::FORM_REFUSED, None),
        Err(e) => e.into_response(),
    }
}

/// `GET /end_session`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
/// With an `id_token_hint` for the signed-in user, signs out at once; without one, asks.
pub(super) async fn end_session(
    State(state): State<AppState>,
    client: ClientInfo,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = AuthorizeParams::parse(query.as_deref().unwrap_or(""));
    logout(&state, &client, &Method::GET, &headers, params).await
}

/// `POST /end_session`: the same request as a form, or the answer of the page that asks.
pub(super) async fn end_session_post(State(state): State<AppState>, client: ClientInfo, req: Request) -> Response {
    let (method, headers) = (req.method().clone(), req.headers().clone());
    match read_form(&headers, req).await {
        Ok(form) => logout(&state, &client, &method, &headers, form).await,
        Err(refused) => refused,
    }
}

async fn logout(
    state: &AppState,
    client: &ClientInfo,
    method: &Method,
    headers: &HeaderMap,
    params: AuthorizeParams,
) -> Response {
    let field =
        |name: &str| params.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let csrf = match Csrf::for_browser(&state.settings, headers) {
        Ok(csrf) => csrf,
        Err(e) => return e.into_response(),
    };
    let checked = state.oidc.check_logout(
        field("id_token_hint"),
        field("client_id"),
        field("post_logout_redirect_uri"),
        field("state"),
    );
    let request = match checked {
        Ok(request) => request,
        Err(u) => return message(state, csrf, StatusCode::BAD_REQUEST, SIGN_OUT_HEADING, &u.0, None),
    };
    let signed_in = browser(state, headers).await;
    let hinted_user = request.hint.map(|(user, _)| user);
    // Only the confirmation page's form confirms: a POST, with its CSRF token.
    let confirmed = *method == Method::POST && field("confirm").is_some() && {
        match Csrf::check(state, method, headers, field("csrf")) {
            Ok(_) => true,
            Err(e) => return refused_form(state, headers, e),
        }
    };
    // At once only for the browser session the hint was issued in (RP-Initiated Logout
    // §2: otherwise the person is asked), or when there is nothing to end at all.
    let same_session = match (&signed_in, request.hint) {
        (Some((session, user)), Some((hinted, sid))) => user.id == hinted && sid == Some(session.id),
        _ => false,
    };
    let nothing_to_end = signed_in.is_none() && hinted_user.is_none();
    if !(confirmed || same_session || nothing_to_end) {
        let username = signed_in.as_ref().map(|(_, u)| u.username.clone());
        let values = context! {
            username,
            client_name => request.client.as_ref().map(|c| c.name.clone()),
            fields => params.pairs.iter().filter(|(k, _)| k != "csrf" && k != "confirm").collect::<Vec<_>>(),
        };
        let page = Page::new("end_session.html", SIGN_OUT_HEADING, values, csrf);
        return page.returning_to(state, request.redirect.as_deref()).render(state);
    }
    signed_out(state, client, request, signed_in, csrf).await
}

/// Ends the browser's session and the sessions the hinted client holds for its user,
/// then returns to the client or says so.
async fn signed_out(
    state: &AppState,
    client: &ClientInfo,
    request: LogoutRequest,
    signed_in: Option<(SessionRecord, UserRecord)>,
    csrf: Csrf,
) -> Response {
    if let Some((session, user)) = &signed_in
        && let Err(e) = state.sessions.logout(user.id, session.id, client.client()).await
    {
        return ApiError::from(e).into_response();
    }
    if let (Some((user, _)), Some(hinted)) = (request.hint, &request.client)
        && signed_in.as_ref().is_none_or(|(_, u)| u.id == user)
        && let Err(e) = state.oidc.end_client_sessions(user, &hinted.client_id, client.client()).await
    {
        return ApiError::from(e).into_response();
    }
    let clear = vec![cookies::session(&state.settings, None)];
    match &request.redirect {
        Some(to) => with_cookies(
            (
                StatusCode::FOUND,
                [(header::LOCATION, HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")))],
            )
                .into_response(),
            clear,
        ),
        None => with_cookies(
            message(
                state,
                csrf,
                StatusCode::OK,
                "Signed out",
                "You are signed out.",
                Some(("/login", "Sign in again")),
            ),
            clear,
        ),
    }
}
