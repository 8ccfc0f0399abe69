//! Verify Latch access tokens in Rust services.
//!
//! Latch issues access tokens as signed JWTs (RFC 9068, `typ: at+jwt`, ES256 by
//! default, EdDSA or RS256 as configured). A service that receives one checks it
//! locally, without asking Latch, with a [`Verifier`]:
//!
//! - it reads Latch's discovery document and JWK Set once, and keeps the keys by `kid`;
//! - a token signed by a key it has not seen (after `latch keys rotate`) refetches the
//!   key set, at most once per [interval](VerifierBuilder::min_refetch_interval) however
//!   many requests ask, so made-up `kid`s cannot turn it against the server;
//! - the algorithm is the key's, never the token's choice (`none` and `HS256` are
//!   refused), and `typ`, `iss`, `aud`, `exp`, `nbf` and `iat` are checked, with 5 s of
//!   clock leeway by default;
//! - verifying with a cached key costs about what a bare `jsonwebtoken::decode` costs:
//!   no lock, no request.
//!
//! The claims come back as [`AccessClaims`], the very type Latch signs.
//!
//! ```no_run
//! use latch_client::{ErrorKind, Verifier};
//!
//! # async fn run(token: &str) -> Result<(), latch_client::Error> {
//! // Once, at start-up: the issuer is Latch's public URL (`LATCH_PUBLIC_URL`).
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("https://auth.example.com") // the default; LATCH_TOKEN_AUDIENCE if set
//!     .build()
//!     .await?;
//!
//! // Per request:
//! match verifier.verify(token).await {
//!     Ok(claims) if claims.has_scope("orders:read") => println!("user {}", claims.sub),
//!     Ok(_) => println!("403: scope orders:read missing"),
//!     Err(e) if e.kind() == ErrorKind::Expired => println!("401: refresh and try again"),
//!     Err(e) if e.is_invalid_token() => println!("401: {e}"),
//!     Err(e) => println!("503: cannot reach Latch: {e}"),
//! }
//! # Ok(()) }
//! ```
//!
//! A signature cannot tell that a user logged out: an access token stays valid until its
//! `exp` (15 minutes by default). Where that matters, ask Latch with an
//! [`Introspector`] (RFC 7662), which needs a confidential client
//! (`latch client create --name my-api --confidential`).
//!
//! # Features
//!
//! - `axum`: the `axum::Authenticated` extractor and `axum::RequireScopes`, which
//!   answer 401 and 403 as RFC 6750 says.
//!
//! # Offline and in tests
//!
//! [`Verifier::from_jwks`] builds a verifier over a fixed JWK Set document, which never
//! makes a request.

#![deny(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod claims;
#[cfg(feature = "verify")]
mod error;
#[cfg(feature = "verify")]
mod introspect;
#[cfg(feature = "verify")]
mod jwks;
#[cfg(feature = "verify")]
mod verifier;

pub use claims::AccessClaims;
#[cfg(feature = "verify")]
pub use error::{Error, ErrorKind};
#[cfg(feature = "verify")]
pub use introspect::{Introspection, Introspector};
#[cfg(feature = "verify")]
pub use verifier::{DEFAULT_LEEWAY, DEFAULT_MIN_REFETCH_INTERVAL, Verifier, VerifierBuilder};

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "verify"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
