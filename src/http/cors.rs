//! Cross-origin requests (the Fetch standard's CORS protocol). Browsers on an allowed
//! origin — `LATCH_CORS_ORIGINS` or a registered client's `--origin` — may call every
//! route, with credentials; every other origin gets no CORS header at all (never an
//! echo of its `Origin`), so the browser keeps the answer from it. The discovery
//! documents are public: any origin may read them, without credentials.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::clients::Clients;

/// How long a browser may cache a preflight answer.
const MAX_AGE: &str = "600";
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Response headers a script may read besides the CORS-safelisted ones.
const EXPOSED: &str = "WWW-Authenticate, Location, Retry-After";
/// Request headers allowed when a preflight names none we can echo.
const DEFAULT_HEADERS: &str = "Authorization, Content-Type";

/// Readable from any origin.
pub fn public(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an
/// allowed origin, or of any origin to a public document. `None` lets the request go
/// on to the router, which answers a refused origin as it answers any `OPTIONS`.
pub fn preflight(request: &Request, clients: &Clients) -> Option<Response> {
    let headers = request.headers();
    if request.method() != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    if public(request.uri().path()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
    } else if allowed(origin, clients) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
    } else {
        return None;
    }
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested_headers(headers));
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    out.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers"));
    Some(response)
}

/// Adds the CORS headers to the answer of an actual request from `origin`.
/// `public` says whether the request was for a public document.
pub fn decorate(public: bool, origin: Option<&HeaderValue>, clients: &Clients, response: &mut Response) {
    let out = response.headers_mut();
    if public {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        return;
    }
    // Where some origin is allowed, the answer depends on the Origin whether or not this
    // one is: a shared cache must not hand one origin's answer to another.
    if !clients.any_origin_allowed() {
        return;
    }
    out.append(header::VARY, HeaderValue::from_static("Origin"));
    // Pages are for people on this site: no other origin may read them (their forms
    // carry a CSRF token).
    let page = out.get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if let Some(origin) = origin.filter(|o| !page && allowed(o, clients)) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    }
}

fn allowed(origin: &HeaderValue, clients: &Clients) -> bool {
    origin.to_str().is_ok_and(|o| clients.origin_allowed(o))
}

/// The headers the preflight asks for, when they are a plain list of header names;
/// otherwise the ones Latch reads.
fn requested_headers(headers: &HeaderMap) -> HeaderValue {
    let token = |name: &str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.to_str().is_ok_and(|v| v.len() <= 1024 && v.split(',').map(str::trim).all(token)))
        .cloned()
        .unwrap_or(HeaderValue::from_static(DEFAULT_HEADERS))
}
