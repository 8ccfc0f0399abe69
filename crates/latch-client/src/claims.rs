//! The claims of a Latch access token: one definition, which the server signs and the
//! verifier reads, so that the two cannot drift apart.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The claims of a Latch access token (RFC 9068 profile).
///
/// Latch signs exactly this type, so every field here is in every token it issues
/// (`roles` is left out when empty, because common validators refuse an empty list).
/// The fields are public so that the server builds it cheaply; a verified value comes
/// from [`Verifier::verify`](crate::Verifier::verify).
///
/// ```
/// # fn main() -> Result<(), serde_json::Error> {
/// let claims: latch_client::AccessClaims = serde_json::from_str(r#"{
///     "iss": "https://auth.example", "aud": ["https://auth.example", "api"],
///     "sub": "0190f7a4-6c2e-7cc5-a3b4-6f7c9f1e5b10", "exp": 1700000900, "iat": 1700000000,
///     "jti": "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "sid": "0190f7a4-6c2e-7cc5-a3b4-000000000001",
///     "client_id": "latch", "scope": "openid profile orders:read"
/// }"#)?;
/// assert!(claims.has_scope("orders:read"));
/// assert!(!claims.has_scope("orders"));
/// assert_eq!(claims.scopes().count(), 3);
/// assert_eq!(claims.aud, "https://auth.example");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: Latch's public URL, without a trailing slash.
    pub iss: String,
    /// Subject: the user's id; for a client's own token (client credentials grant, no
    /// `sid`), the client's id.
    pub sub: Uuid,
    /// Audience. Latch signs a single string; when a token carries an array, the
    /// verifier keeps the audience it was checked against.
    #[serde(deserialize_with = "string_or_first")]
    pub aud: String,
    /// Expiry, in Unix seconds.
    pub exp: i64,
    /// Issue time, in Unix seconds.
    pub iat: i64,
    /// Token id, unique per token.
    pub jti: Uuid,
    /// The session the token belongs to; ending the session (logout, revocation)
    /// ends every token of it on Latch's side. Absent from a client's own token
    /// (client credentials grant), which acts for no user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The client the token was issued to (`latch` when none was named).
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3).
    #[serde(default)]
    pub scope: String,
    /// The user's roles; absent from the token when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// How the user signed in (RFC 8176): `pwd`, `otp`, `hwk`, `swk`, and `mfa` when
    /// two factors were used. Absent from a client's own token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl AccessClaims {
    /// The granted scopes, one at a time.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    /// Whether `scope` was granted (exact, case-sensitive match of one scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether every one of `scopes` was granted.
    pub fn has_scopes(&self, scopes: &[&str]) -> bool {
        scopes.iter().all(|s| self.has_scope(s))
    }

    /// Whether this is a client's own token (client credentials grant): `sub` is the
    /// client, and no user is behind it.
    pub fn is_client_token(&self) -> bool {
        self.sid.is_none()
    }

    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); a non-empty array
/// yields its first member.
pub(crate) fn string_or_first<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Audience;

    impl<'de> Visitor<'de> for Audience {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a non-empty array of strings")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let first: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_any(Audience)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: Uuid::nil(),
            aud: "https://auth.example".into(),
            exp: 1_700_000_900,
            iat: 1_700_000_000,
            jti: Uuid::nil(),
            sid: Some(Uuid::nil()),
            client_id: "latch".into(),
            scope: "openid profile".into(),
            roles: Vec::new(),
            amr: Vec::new(),
        }
    }

    #[test]
    fn serializes_to_the_claim_set_latch_signs() {
        let value = serde_json::to_value(claims()).unwrap();
        assert_eq!(
            value,
            json!({
                "iss": "https://auth.example", "sub": Uuid::nil(), "aud": "https://auth.example",
                "exp": 1_700_000_900, "iat": 1_700_000_000, "jti": Uuid::nil(), "sid": Uuid::nil(),
                "client_id": "latch", "scope": "openid profile"
            }),
            "roles are left out when empty"
        );
        let with_roles = AccessClaims { roles: vec!["admin".into()], ..claims() };
        assert_eq!(serde_json::to_value(&with_roles).unwrap()["roles"], json!(["admin"]));
    }

    #[test]
    fn audience_is_a_string_or_an_array() {
        let mut value = serde_json::to_value(claims()).unwrap();
        value["aud"] = json!(["api", "other"]);
        assert_eq!(serde_json::from_value::<AccessClaims>(value.clone()).unwrap().aud, "api");
        value["aud"] = json!([]);
        assert!(serde_json::from_value::<AccessClaims>(value.clone()).is_err());
        value["aud"] = json!(7);
        assert!(serde_json::from_value::<AccessClaims>(value).is_err());
    }

    #[test]
    fn scope_and_roles_default_to_empty() {
        let mut value = serde_json::to_value(claims()).unwrap();
        value.as_object_mut().unwrap().remove("scope");
        let c: AccessClaims = serde_json::from_value(value).unwrap();
        assert_eq!(c.scopes().count(), 0);
        assert!(!c.has_scope(""));
        assert!(!c.has_role("admin"));
    }

    #[test]
    fn scopes_match_whole_words() {
        let c = AccessClaims { scope: "  openid   orders:read ".into(), ..claims() };
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["openid", "orders:read"]);
        assert!(c.has_scopes(&["orders:read", "openid"]));
        assert!(!c.has_scopes(&["orders:read", "orders:write"]));
        assert!(!c.has_scope("orders"));
    }
}
