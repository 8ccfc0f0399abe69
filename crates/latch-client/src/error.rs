//! Why a token was refused, or why the authorization server could not be asked: one
//! [`Error`] carrying a [`ErrorKind`] to match on and the underlying cause, if any.

use std::error::Error as StdError;

/// What went wrong. New kinds may be added, so a `match` needs a catch-all arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not a compact JWS, or its header is not readable JSON.
    #[error("malformed token")]
    Malformed,
    /// The header's `typ` is not `at+jwt` (RFC 9068 §2.1): an ID token or another
    /// kind of JWT presented as an access token.
    #[error("not an access token (typ is not at+jwt)")]
    Type,
    /// The header lists `crit` extensions, none of which this verifier understands.
    #[error("critical header extension not understood")]
    Critical,
    /// No published key has the token's `kid`, even after refetching the key set
    /// (or a refetch was not due yet).
    #[error("signed by an unknown key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key named by `kid`.
    #[error("algorithm does not match the signing key")]
    Algorithm,
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name the expected audience.
    #[error("wrong audience")]
    Audience,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` has not come yet (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A required claim is missing or has the wrong type.
    #[error("claims missing or malformed")]
    Claims,
    /// The discovery document is unusable, or names another issuer.
    #[error("unusable discovery document")]
    Discovery,
    /// The JWK Set is unusable (not JSON, or no key this verifier supports).
    #[error("unusable key set")]
    Jwks,
    /// The authorization server refused this client's credentials (introspection).
    #[error("client authentication refused")]
    ClientRejected,
    /// The authorization server could not be reached or answered with an error.
    #[error("request to the authorization server failed")]
    Http,
}

impl ErrorKind {
    /// True for the kinds that say the token itself is bad, false for the kinds that
    /// say the authorization server or its configuration is (for an HTTP service:
    /// 401 versus 5xx).
    pub fn is_invalid_token(self) -> bool {
        !matches!(self, Self::Discovery | Self::Jwks | Self::ClientRejected | Self::Http)
    }
}

/// The error of every fallible operation of this crate.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct Error {
    kind: ErrorKind,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Shorthand for `self.kind().is_invalid_token()`.
    pub fn is_invalid_token(&self) -> bool {
        self.kind.is_invalid_token()
    }

    pub(crate) fn with(kind: ErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self { kind, source: Some(source.into()) }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }
}

impl From<jsonwebtoken::errors::Error> for Error {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as Jwt;
        let kind = match e.kind() {
            Jwt::InvalidSignature => ErrorKind::Signature,
            Jwt::InvalidAlgorithm | Jwt::InvalidAlgorithmName => ErrorKind::Algorithm,
            Jwt::InvalidIssuer => ErrorKind::Issuer,
            Jwt::InvalidAudience => ErrorKind::Audience,
            Jwt::ExpiredSignature => ErrorKind::Expired,
            Jwt::ImmatureSignature => ErrorKind::NotYetValid,
            Jwt::MissingRequiredClaim(_) | Jwt::InvalidClaimFormat(_) | Jwt::InvalidSubject | Jwt::Json(_) => {
                ErrorKind::Claims
            }
            _ => ErrorKind::Malformed,
        };
        Self::with(kind, e)
    }
}
