//! axum 0.8 extractors (feature `axum`): [`Authenticated`] verifies the request's
//! `Authorization: Bearer` token with the [`Verifier`] in the router's state, and
//! [`RequireScopes`] also demands scopes. Refusals follow RFC 6750 §3: 401 with
//! `WWW-Authenticate: Bearer` (and `error="invalid_token"` when a token was presented),
//! 403 with `error="insufficient_scope"`.
//!
//! The verifier is found with [`FromRef`], so the state can be the [`Verifier`] itself
//! or any state that hands one out:
//!
//! ```
//! use axum::{Router, extract::FromRef, routing::get};
//! use latch_client::{Verifier, axum::{Authenticated, RequireScopes, Scopes}};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     verifier: Verifier,
//! }
//!
//! impl FromRef<AppState> for Verifier {
//!     fn from_ref(state: &AppState) -> Verifier {
//!         state.verifier.clone()
//!     }
//! }
//!
//! struct OrdersRead;
//!
//! impl Scopes for OrdersRead {
//!     const REQUIRED: &'static [&'static str] = &["orders:read"];
//! }
//!
//! async fn me(user: Authenticated) -> String {
//!     user.sub.to_string()
//! }
//!
//! async fn orders(user: RequireScopes<OrdersRead>) -> String {
//!     format!("orders of {}", user.sub)
//! }
//!
//! fn router(verifier: Verifier) -> Router {
//!     Router::new()
//!         .route("/me", get(me))
//!         .route("/orders", get(orders))
//!         .with_state(AppState { verifier })
//! }
//! ```

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{AccessClaims, Error, Verifier};

/// The verified claims of the request's bearer token.
///
/// As `Option<Authenticated>`, a request without a bearer token yields `None` while an
/// invalid token is still refused. A service calling with its own token (client
/// credentials) is authenticated too: then `sub` is the client, not a user, and
/// [`AccessClaims::is_client_token`] says so.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessClaims);

impl Deref for Authenticated {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

impl Authenticated {
    /// Refuses with 403 `insufficient_scope` unless every one of `scopes` was granted:
    /// for handlers whose required scopes are only known at run time.
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), AuthRejection> {
        if self.0.has_scopes(scopes) { Ok(()) } else { Err(AuthRejection::InsufficientScope(scopes.join(" "))) }
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let token = bearer_token(&parts.headers).ok_or(AuthRejection::MissingToken)?;
        authenticate(token, &Verifier::from_ref(state)).await
    }
}

impl<S> OptionalFromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, AuthRejection> {
        match bearer_token(&parts.headers) {
            Some(token) => authenticate(token, &Verifier::from_ref(state)).await.map(Some),
            None => Ok(None),
        }
    }
}

async fn authenticate(token: &str, verifier: &Verifier) -> Result<Authenticated, AuthRejection> {
    verifier
        .verify(token)
        .await
        .map(Authenticated)
        .map_err(|e| if e.is_invalid_token() { AuthRejection::InvalidToken(e) } else { AuthRejection::Unavailable(e) })
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive,
/// RFC 7235 §2.1); `None` for no header or another scheme.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A set of scopes a handler requires, for [`RequireScopes`].
pub trait Scopes {
    /// Every one of these must be granted.
    const REQUIRED: &'static [&'static str];
}

/// Like [`Authenticated`], and refuses with 403 `insufficient_scope` unless the token
/// grants every scope of `R`.
pub struct RequireScopes<R: Scopes> {
    claims: AccessClaims,
    scopes: PhantomData<fn() -> R>,
}

impl<R: Scopes> RequireScopes<R> {
    /// The verified claims.
    pub fn into_claims(self) -> AccessClaims {
        self.claims
    }
}

impl<R: Scopes> Deref for RequireScopes<R> {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.claims
    }
}

impl<R: Scopes> std::fmt::Debug for RequireScopes<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireScopes").field("required", &R::REQUIRED).field("claims", &self.claims).finish()
    }
}

impl<S, R> FromRequestParts<S> for RequireScopes<R>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    R: Scopes,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let user = <Authenticated as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        user.require_scopes(R::REQUIRED)?;
        Ok(Self { claims: user.0, scopes: PhantomData })
    }
}

/// Why a request was refused; renders as an RFC 6750 challenge with an RFC 9457
/// problem body. Match on it to log the cause or to answer differently.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No `Authorization: Bearer` header: 401 with a bare `Bearer` challenge.
    MissingToken,
    /// The token was refused: 401, `error="invalid_token"`.
    InvalidToken(Error),
    /// The token lacks scopes (space-separated here): 403, `error="insufficient_scope"`.
    InsufficientScope(String),
    /// The key set could not be fetched to check the token: 503.
    Unavailable(Error),
}

impl AuthRejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The verification error behind the rejection, if there is one.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::InvalidToken(e) | Self::Unavailable(e) => Some(e),
            Self::MissingToken | Self::InsufficientScope(_) => None,
        }
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingToken => f.write_str("a bearer access token is required"),
            Self::InvalidToken(e) => write!(f, "invalid access token: {e}"),
            Self::InsufficientScope(scopes) => write!(f, "the access token lacks a scope of: {scopes}"),
            Self::Unavailable(e) => write!(f, "the access token cannot be checked now: {e}"),
        }
    }
}

impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, challenge) = match &self {
            Self::MissingToken => ("unauthorized", Some("Bearer".to_owned())),
            Self::InvalidToken(e) => {
                ("invalid_token", Some(format!(r#"Bearer error="invalid_token", error_description="{e}""#)))
            }
            Self::InsufficientScope(scopes) => {
                ("insufficient_scope", Some(format!(r#"Bearer error="insufficient_scope", scope="{scopes}""#)))
            }
            Self::Unavailable(_) => ("service_unavailable", None),
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or_default(),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": code,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(value) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
