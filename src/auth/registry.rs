//! Changes to the client registry, shared by `latch client …` and the admin API: the
//! rules a client's settings follow, new clients and secrets, and the client as both
//! show it. A confidential client's secret exists in plaintext only in the answer that
//! makes it; the store keeps its digest.

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::clients::{STANDARD_SCOPES, valid_scope_token};
use crate::auth::secret;
use crate::config::parse_origin;
use crate::domain::{FieldError, Timestamp};
use crate::store::ClientRecord;

/// A client's settings as given; `None` leaves a setting alone (or, for a new client,
/// takes its default).
#[derive(Debug, Default, Clone)]
pub struct ClientSpec {
    pub name: Option<String>,
    pub first_party: Option<bool>,
    pub origins: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

/// The scope of the admin API (SPEC §10), granted only through the client credentials
/// grant to a confidential client that lists it.
pub const ADMIN_SCOPE: &str = "latch:admin";

/// Most entries in one of a client's lists.
const MAX_LIST: usize = 100;

impl ClientSpec {
    /// Checks every setting of a client (`confidential` or public); each broken rule
    /// names its field (`name`, `origins`, `redirect_uris`, `post_logout_redirect_uris`,
    /// `scopes`).
    pub fn check(&self, confidential: bool) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control))
        {
            // Names are printed to terminals and shown on pages.
            errors.push(FieldError::new("name", "must be 1 to 200 characters without control characters"));
        }
        for (field, list) in [
            ("origins", &self.origins),
            ("redirect_uris", &self.redirect_uris),
            ("post_logout_redirect_uris", &self.post_logout_redirect_uris),
            ("scopes", &self.scopes),
        ] {
            if list.as_ref().is_some_and(|l| l.len() > MAX_LIST) {
                errors.push(FieldError::new(field, format!("at most {MAX_LIST} entries")));
            }
        }
        for origin in self.origins.iter().flatten() {
            if let Err(e) = parse_origin(origin) {
                errors.push(FieldError::new("origins", e.to_string()));
            }
        }
        for (field, list) in
            [("redirect_uris", &self.redirect_uris), ("post_logout_redirect_uris", &self.post_logout_redirect_uris)]
        {
            for uri in list.iter().flatten() {
                if let Err(message) = check_redirect_uri(uri) {
                    errors.push(FieldError::new(field, message));
                }
            }
        }
        for scope in self.scopes.iter().flatten() {
            if scope == ADMIN_SCOPE && !confidential {
                errors.push(FieldError::new(
                    "scopes",
                    format!("`{ADMIN_SCOPE}` is for confidential clients only (client credentials)"),
                ));
            } else if scope != ADMIN_SCOPE && scope.split_whitespace().any(|s| s.starts_with("latch:")) {
                // Scopes of Latch's own APIs are never granted through a client's list,
                // but the admin API's to a confidential client acting on its own.
                errors.push(FieldError::new("scopes", format!("`{scope}` is reserved for Latch's own APIs")));
            } else if !valid_scope_token(scope) {
                errors.push(FieldError::new(
                    "scopes",
                    format!("`{scope}` is not one scope (printable ASCII without spaces, quotes or backslashes)"),
                ));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The names of the settings given, for the record of a change.
    pub fn given(&self) -> Vec<&'static str> {
        let given = [
            ("name", self.name.is_some()),
            ("first_party", self.first_party.is_some()),
            ("origins", self.origins.is_some()),
            ("redirect_uris", self.redirect_uris.is_some()),
            ("post_logout_redirect_uris", self.post_logout_redirect_uris.is_some()),
            ("scopes", self.scopes.is_some()),
        ];
        given.into_iter().filter_map(|(name, is)| is.then_some(name)).collect()
    }

    fn origins(&self) -> Option<Vec<String>> {
        // Stored in the form CORS compares: scheme and host lowercased, no default port.
        self.origins.as_ref().map(|list| list.iter().filter_map(|o| parse_origin(o).ok()).collect())
    }
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2); plain http only for the
/// loopback interface (RFC 8252 §7.3), never a scheme that runs script.
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    // URL parsers drop or encode these, so the URI compared would not be the one
    // written; a redirect's `Location` could not carry some of them either.
    if !uri.is_ascii()
        || uri.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '"' | '<' | '>'))
    {
        return Err(format!(
            "`{}`: spaces, control characters, `\\`, `\"`, `<`, `>` and non-ASCII characters are refused (percent-encode them)",
            uri.escape_debug()
        ));
    }
    let url = url::Url::parse(uri).map_err(|_| format!("`{uri}` is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("`{uri}`: a redirect URI cannot have a fragment"));
    }
    let refused = ["javascript", "data", "vbscript", "file", "blob", "filesystem", "about", "ws", "wss"];
    if refused.contains(&url.scheme()) {
        return Err(format!("`{uri}`: scheme {} refused", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{uri}`: a redirect URI cannot hold credentials"));
    }
    if url.host_str().is_some_and(|h| h.contains('*')) {
        return Err(format!("`{uri}`: no wildcards; list each URI"));
    }
    if url.scheme() == "http" && !matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) {
        return Err(format!("`{uri}`: plain http is allowed only for localhost; use https"));
    }
    Ok(())
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// A new client from `spec` (the name is required), and its secret when it is
/// confidential.
pub fn new_client(
    spec: &ClientSpec,
    confidential: bool,
    now: Timestamp,
) -> Result<(ClientRecord, Option<String>), Vec<FieldError>> {
    spec.check(confidential)?;
    let Some(name) = spec.name.clone() else {
        return Err(vec![FieldError::new("name", "is required")]);
    };
    let secret = confidential.then(secret::random_token);
    let scopes = spec.scopes.clone().unwrap_or_else(|| STANDARD_SCOPES.iter().map(|s| s.to_string()).collect());
    let client = ClientRecord {
        client_id: uuid::Uuid::new_v4().to_string(),
        name,
        confidential,
        first_party: spec.first_party.unwrap_or(false),
        secret_hash: secret.as_deref().map(|s| secret::digest(s).to_vec()),
        origins: json_list(&spec.origins().unwrap_or_default()),
        redirect_uris: json_list(spec.redirect_uris.as_deref().unwrap_or_default()),
        post_logout_redirect_uris: json_list(spec.post_logout_redirect_uris.as_deref().unwrap_or_default()),
        scopes: scopes.join(" "),
        created_at: now,
        updated_at: now,
    };
    Ok((client, secret))
}

/// Applies a [`ClientSpec::check`]ed `spec` to `client`.
pub fn apply(client: &mut ClientRecord, spec: &ClientSpec, now: Timestamp) {
    if let Some(name) = &spec.name {
        client.name = name.clone();
    }
    if let Some(first_party) = spec.first_party {
        client.first_party = first_party;
    }
    if let Some(origins) = spec.origins() {
        client.origins = json_list(&origins);
    }
    if let Some(uris) = &spec.redirect_uris {
        client.redirect_uris = json_list(uris);
    }
    if let Some(uris) = &spec.post_logout_redirect_uris {
        client.post_logout_redirect_uris = json_list(uris);
    }
    if let Some(scopes) = &spec.scopes {
        client.scopes = scopes.join(" ");
    }
    client.updated_at = now;
}

/// A new secret for a confidential client and its digest, to store with
/// `set_client_secret` (the old one stops working then); `None` for a public client,
/// which has none.
pub fn new_secret(client: &ClientRecord) -> Option<(String, [u8; 32])> {
    if !client.confidential {
        return None;
    }
    let secret = secret::random_token();
    let digest = secret::digest(&secret);
    Some((secret, digest))
}

/// A registered client as the admin API and `latch client show --json` show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub first_party: bool,
    pub origins: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&ClientRecord> for ClientView {
    fn from(c: &ClientRecord) -> Self {
        let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            confidential: c.confidential,
            first_party: c.first_party,
            origins: list(&c.origins),
            redirect_uris: list(&c.redirect_uris),
            post_logout_redirect_uris: list(&c.post_logout_redirect_uris),
            scopes: c.scopes.split_ascii_whitespace().map(str::to_owned).collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClientSpec {
        ClientSpec { name: Some("app".into()), ..ClientSpec::default() }
    }

    #[test]
    fn every_broken_rule_names_its_field() {
        let now = crate::clock::Clock::system().now();
        let bad = ClientSpec {
            name: Some("a\nb".into()),
            origins: Some(vec!["not an origin".into()]),
            redirect_uris: Some(vec![
                "http://app.example/cb".into(),
                "javascript:alert(1)".into(),
                "https://app.example/c b".into(),
                "https://app.example/ü".into(),
            ]),
            post_logout_redirect_uris: Some(vec!["https://app.example/#x".into()]),
            scopes: Some(vec!["two words".into(), "latch:admin".into(), " latch:admin".into(), "latch:other".into()]),
            ..ClientSpec::default()
        };
        let fields: Vec<String> = new_client(&bad, false, now).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "origins",
                "redirect_uris",
                "redirect_uris",
                "redirect_uris",
                "redirect_uris",
                "post_logout_redirect_uris",
                "scopes",
                "scopes",
                "scopes",
                "scopes"
            ],
        );
        let admin = ClientSpec { scopes: Some(vec!["latch:admin".into()]), ..spec() };
        assert!(new_client(&admin, true, now).is_ok(), "a confidential client may have the admin scope");
        let unnamed = ClientSpec { name: None, ..spec() };
        assert_eq!(new_client(&unnamed, false, now).unwrap_err()[0].field, "name");
    }

    #[test]
    fn secrets_only_for_confidential_clients() {
        let now = crate::clock::Clock::system().now();
        let (public, secret) = new_client(&spec(), false, now).unwrap();
        assert!(secret.is_none() && public.secret_hash.is_none());
        assert!(new_secret(&public).is_none());
        let (private, secret) = new_client(&spec(), true, now).unwrap();
        let secret = secret.unwrap();
        assert_eq!(private.secret_hash.as_deref(), Some(&secret::digest(&secret)[..]));
        let (rotated, digest) = new_secret(&private).unwrap();
        assert_ne!(rotated, secret);
        assert_eq!(digest, secret::digest(&rotated));
        assert_eq!(ClientView::from(&private).scopes, STANDARD_SCOPES);
    }
}
