//! Token introspection (RFC 7662): asks Latch whether a token is still good, for the
//! cases a signature cannot answer — a session that ended by logout or revocation
//! before its access tokens expired, or an opaque refresh token.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind};
use crate::verifier::{default_http_client, discover};

/// Latch's answer about a token. Inactive tokens carry nothing but `active: false`
/// (RFC 7662 §2.2), so every other member is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is live: issued by Latch, not expired, its session not ended.
    pub active: bool,
    /// The user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    /// The session the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `access_token` or `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (the first one, when the server lists several).
    #[serde(default, deserialize_with = "optional_audience", skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Introspection {
    /// The granted scopes, one at a time (none for an inactive token).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or_default().split_ascii_whitespace()
    }

    /// Whether the token is active and `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.active && self.scopes().any(|s| s == scope)
    }
}

fn optional_audience<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "crate::claims::string_or_first")] String);
    Option::<Wrapper>::deserialize(deserializer).map(|w| w.map(|Wrapper(aud)| aud))
}

/// Asks Latch's introspection endpoint about tokens, authenticated as a registered
/// confidential client (`latch client create --confidential`) with
/// `client_secret_basic`.
///
/// ```no_run
/// # async fn run() -> Result<(), latch_client::Error> {
/// use latch_client::Introspector;
///
/// let introspector = Introspector::discover("https://auth.example.com", "my-api", "s3cret").await?;
/// if introspector.introspect("eyJ0eXAiOiJhdCtqd3Qi...").await?.active {
///     // the session behind the token has not ended
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Introspector {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

impl Introspector {
    /// An introspector for the endpoint at `endpoint` (Latch's `{issuer}/introspect`).
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, Error> {
        Ok(Self {
            http: default_http_client()?,
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        })
    }

    /// An introspector for the `introspection_endpoint` that `issuer`'s discovery
    /// document advertises.
    pub async fn discover(
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, Error> {
        let http = default_http_client()?;
        let endpoint = discover(&http, issuer)
            .await?
            .introspection_endpoint
            .ok_or_else(|| Error::with(ErrorKind::Discovery, "the discovery document has no introspection_endpoint"))?;
        Ok(Self { http, endpoint, client_id: client_id.into(), client_secret: client_secret.into() })
    }

    /// Uses `client` for requests instead of the default (10 s timeout).
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// Asks whether `token` (an access or refresh token) is active.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, Error> {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&self.endpoint)
            .basic_auth(encode(&self.client_id), Some(encode(&self.client_secret)))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| Error::with(ErrorKind::Http, e))?;
        let status = response.status();
        if !status.is_success() {
            // The OAuth error body says why (RFC 6749 §5.2); a bounded excerpt of it.
            let body = response.text().await.unwrap_or_default();
            let excerpt: String = body.chars().take(200).collect();
            let kind =
                if status == reqwest::StatusCode::UNAUTHORIZED { ErrorKind::ClientRejected } else { ErrorKind::Http };
            return Err(Error::with(kind, format!("POST {}: {status}: {excerpt}", self.endpoint)));
        }
        response.json().await.map_err(|e| Error::with(ErrorKind::Http, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_answers_carry_nothing_else() {
        let r: Introspection = serde_json::from_str(r#"{"active": false}"#).unwrap();
        assert_eq!(r, Introspection::default());
        assert!(!r.has_scope("openid"));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"active":false}"#);
    }

    #[test]
    fn audience_may_be_an_array() {
        let r: Introspection = serde_json::from_str(r#"{"active": true, "aud": ["a", "b"], "scope": "x y"}"#).unwrap();
        assert_eq!(r.aud.as_deref(), Some("a"));
        assert!(r.has_scope("y"));
        let r: Introspection = serde_json::from_str(r#"{"active": true, "aud": null}"#).unwrap();
        assert_eq!(r.aud, None);
    }
}
