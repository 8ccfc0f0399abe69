//! The cookies Latch sets: the session cookie and the device cookie, their names
//! (`__Host-` and `Secure` when the public URL is https), and reading them back.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::http::error::ApiError;
use crate::settings::Settings;

/// Name of the session cookie over plain HTTP.
pub const SESSION: &str = "latch_session";
/// Name of the session cookie when the public URL is https: the `__Host-` prefix
/// makes browsers insist on `Secure`, `Path=/` and no `Domain`.
pub const SECURE_SESSION: &str = "__Host-latch_session";
/// Name of the device cookie over plain HTTP: it proves the browser to an account it
/// logged in to before, so that others' failed logins cannot lock it out.
pub const DEVICE: &str = "latch_device";
/// Name of the device cookie when the public URL is https.
pub const SECURE_DEVICE: &str = "__Host-latch_device";

/// The CSRF cookie of the hosted pages' forms, over plain HTTP and over https.
pub const CSRF: &str = "latch_csrf";
pub const SECURE_CSRF: &str = "__Host-latch_csrf";

pub fn csrf_name(settings: &Settings) -> &'static str {
    if settings.secure_cookies() { SECURE_CSRF } else { CSRF }
}

/// `Set-Cookie` for the CSRF token of the pages' forms: `SameSite=Strict`, so that no
/// other site's request carries it, for a day.
pub fn csrf(settings: &Settings, token: &str) -> Result<HeaderValue, ApiError> {
    let cookie = cookie::Cookie::build((csrf_name(settings), token))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(time::Duration::days(1))
        .secure(settings.secure_cookies());
    HeaderValue::from_str(&cookie.to_string()).map_err(|e| ApiError::internal(e.into()))
}

pub fn session_name(settings: &Settings) -> &'static str {
    if settings.secure_cookies() { SECURE_SESSION } else { SESSION }
}

pub fn device_name(settings: &Settings) -> &'static str {
    if settings.secure_cookies() { SECURE_DEVICE } else { DEVICE }
}

/// `Set-Cookie` for a new session secret, or one that clears the cookie.
pub fn session(settings: &Settings, secret: Option<&str>) -> Result<HeaderValue, ApiError> {
    let (value, max_age) = match secret {
        Some(secret) => (secret, settings.refresh_token_ttl.as_secs()),
        None => ("", 0),
    };
    build(settings, session_name(settings), value, max_age)
}

/// `Set-Cookie` for a device cookie secret.
pub fn device(settings: &Settings, secret: &str) -> Result<HeaderValue, ApiError> {
    let max_age = crate::auth::limits::KNOWN_CLIENT_TTL.whole_seconds().unsigned_abs();
    build(settings, device_name(settings), secret, max_age)
}

fn build(settings: &Settings, name: &str, value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let max_age = time::Duration::seconds(i64::try_from(max_age).unwrap_or(i64::MAX));
    let cookie = cookie::Cookie::build((name, value))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(max_age)
        .secure(settings.secure_cookies());
    HeaderValue::from_str(&cookie.to_string()).map_err(|e| ApiError::internal(e.into()))
}

/// The value of the cookie `name`, if the request carries one that is not empty.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value_trimmed().is_empty())
        .map(|c| c.value_trimmed().to_owned())
}
