//! OAuth clients: the registry kept in the store (`latch client …`), cached in memory
//! and followed like the signing keys, and the rules of the token endpoint — who must
//! authenticate, with what, and which scopes a client may be granted.
//!
//! A `client_id` that is not registered stays what it always was, a label recorded on
//! the session and put in its tokens, unless `LATCH_REQUIRE_REGISTERED_CLIENTS` is on —
//! but never one that reads as a UUID, the form of registered ids, so that no label
//! passes for a registered client (another spelling of its id) or a deleted one.
//! A confidential client must prove its secret everywhere it names itself; a secret
//! presented for a public or unknown client is refused rather than ignored, since a
//! client that believes it authenticated should learn that it did not.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq as _;

use crate::auth::secret;
use crate::store::{Change, ClientRecord, Store, StoreError};

/// The `client_id` of first-party clients that send none.
pub const DEFAULT_CLIENT_ID: &str = "latch";

/// Scopes granted when a request asks for none.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];

/// Scopes an unregistered client may ask for, and a new client's allowed scopes unless
/// the operator names others.
pub const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Longest `scope` parameter accepted.
const MAX_SCOPE_BYTES: usize = 1024;

/// Why a client or its scope was refused (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unknown client with a secret, wrong or missing secret, a secret for a public
    /// client, or no registered client where one is required.
    #[error("client authentication failed")]
    InvalidClient,
    /// A malformed `scope`, or one the client may not have; names the scope.
    #[error("{0}")]
    InvalidScope(String),
}

/// A registered client, its lists parsed.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub first_party: bool,
    secret_hash: Option<[u8; 32]>,
    pub origins: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes its users' tokens may carry.
    pub scopes: Vec<String>,
    /// The scopes of its own tokens (client credentials): its list, with the admin
    /// API's scope when a confidential client lists it.
    pub service_scopes: Vec<String>,
}

impl RegisteredClient {
    fn from_record(r: &ClientRecord) -> Self {
        let list = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
        Self {
            client_id: r.client_id.clone(),
            name: r.name.clone(),
            confidential: r.confidential,
            first_party: r.first_party,
            secret_hash: r.secret_hash.as_deref().and_then(|h| <[u8; 32]>::try_from(h).ok()),
            origins: list(&r.origins),
            redirect_uris: list(&r.redirect_uris),
            post_logout_redirect_uris: list(&r.post_logout_redirect_uris),
            // Scopes of Latch's own APIs are never granted to a user's token through a
            // client's list, also not one stored before they were refused there.
            scopes: r.scopes.split_ascii_whitespace().filter(|s| !s.starts_with("latch:")).map(str::to_owned).collect(),
            service_scopes: r
                .scopes
                .split_ascii_whitespace()
                .filter(|s| !s.starts_with("latch:") || (r.confidential && *s == super::registry::ADMIN_SCOPE))
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// What a request says about its client: the id (form field or HTTP Basic user name)
/// and the secret, if any (`client_secret_post` or `client_secret_basic`).
#[derive(Default)]
pub struct Credentials {
    pub id: Option<String>,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The client a token request is made for.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Recorded on the session and in its tokens.
    pub client_id: String,
    /// The registered client, when it is one.
    pub registered: Option<Arc<RegisteredClient>>,
    /// Whether the caller proved a confidential client's secret.
    pub authenticated: bool,
    /// Whether the request named a client (else it is the default label).
    pub named: bool,
}

impl Caller {
    /// Whether this caller may use a session started by `client_id` (RFC 6749 §10.4:
    /// a refresh token is bound to its client): a confidential client's sessions only
    /// by that client, authenticated; a caller that names a client only that client's
    /// sessions. A request that names none may refresh any public session, as before
    /// clients were registered.
    pub fn may_use_session_of(&self, client_id: &str, clients: &Clients) -> bool {
        let owner_confidential = clients.get(client_id).is_some_and(|c| c.confidential);
        if owner_confidential || self.authenticated {
            return self.authenticated && self.client_id == client_id;
        }
        !self.named || self.client_id == client_id
    }
}

struct ClientSet {
    by_id: HashMap<String, Arc<RegisteredClient>>,
    origins: HashSet<String>,
}

/// The registry, cached. Cheap to clone.
#[derive(Clone)]
pub struct Clients {
    set: Arc<RwLock<Arc<ClientSet>>>,
    /// `LATCH_CORS_ORIGINS`, lowercased.
    configured_origins: Arc<HashSet<String>>,
    require_registered: bool,
    /// Compared against when the client is unknown, so that an unknown id costs what a
    /// wrong secret does.
    dummy_hash: [u8; 32],
}

impl Clients {
    /// Loads the registry from the store.
    pub async fn load(
        store: &dyn Store,
        cors_origins: &[String],
        require_registered: bool,
    ) -> Result<Self, StoreError> {
        let clients = Self {
            set: Arc::new(RwLock::new(Arc::new(ClientSet { by_id: HashMap::new(), origins: HashSet::new() }))),
            configured_origins: Arc::new(cors_origins.iter().map(|o| o.to_ascii_lowercase()).collect()),
            require_registered,
            dummy_hash: secret::digest(&secret::random_token()),
        };
        clients.reload(store).await?;
        Ok(clients)
    }

    /// Rereads the registry.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let records = store.clients().await?;
        let by_id: HashMap<String, Arc<RegisteredClient>> =
            records.iter().map(|r| (r.client_id.clone(), Arc::new(RegisteredClient::from_record(r)))).collect();
        let origins = by_id.values().flat_map(|c| c.origins.iter().map(|o| o.to_ascii_lowercase())).collect();
        let set = Arc::new(ClientSet { by_id, origins });
        match self.set.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    /// Follows changes announced by the store, and polls at the store's interval for
    /// what announcements cannot reach (`latch client` on a SQLite file).
    pub async fn follow(self, store: Arc<dyn Store>) {
        let wants = |change| matches!(change, Change::Clients | Change::All);
        super::follow(store, wants, |store| {
            let clients = self.clone();
            async move {
                if let Err(e) = clients.reload(&*store).await {
                    tracing::warn!(error = %e, "could not reload the registered clients");
                }
            }
        })
        .await;
    }

    fn current(&self) -> Arc<ClientSet> {
        match self.set.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The registered client `client_id`.
    pub fn get(&self, client_id: &str) -> Option<Arc<RegisteredClient>> {
        self.current().by_id.get(client_id).cloned()
    }

    /// Whether browsers on `origin` may call the API (CORS): a configured origin or a
    /// registered client's. Origins compare ASCII-case-insensitively.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.configured_origins.contains(&origin) || self.current().origins.contains(&origin)
    }

    /// Whether `uri` is exactly one of the registered redirect URIs.
    pub fn redirect_uri_registered(&self, uri: &str) -> bool {
        self.current().by_id.values().any(|c| c.redirect_uris.iter().any(|r| r == uri))
    }

    /// Whether `uri` is a redirect URI of some client, under the rules of
    /// [`redirect_matches`].
    pub fn redirect_uri_matches(&self, uri: &str) -> bool {
        self.current().by_id.values().any(|c| c.redirect_uris.iter().any(|r| redirect_matches(r, uri)))
    }

    /// Whether any origin at all is allowed for CORS.
    pub fn any_origin_allowed(&self) -> bool {
        !self.configured_origins.is_empty() || !self.current().origins.is_empty()
    }

    /// Checks a confidential client's secret. Every failure is the same error, and an
    /// unknown id costs the same as a wrong secret.
    pub fn authenticate(&self, client_id: &str, presented: &str) -> Result<Arc<RegisteredClient>, ClientError> {
        let client = self.get(client_id);
        let expected = client.as_ref().and_then(|c| c.secret_hash).unwrap_or(self.dummy_hash);
        let matches: bool = secret::digest(presented).ct_eq(&expected).into();
        match client {
            Some(c) if matches && c.confidential && c.secret_hash.is_some() => Ok(c),
            _ => Err(ClientError::InvalidClient),
        }
    }

    /// The client a token request is made for, under the rules in the module docs.
    pub fn caller(&self, credentials: &Credentials) -> Result<Caller, ClientError> {
        let secret = credentials.secret.as_deref().filter(|s| !s.is_empty());
        let Some(id) = credentials.id.as_deref().filter(|id| !id.is_empty()) else {
            if secret.is_some() || self.require_registered {
                return Err(ClientError::InvalidClient);
            }
            let client_id = DEFAULT_CLIENT_ID.to_owned();
            return Ok(Caller { client_id, registered: None, authenticated: false, named: false });
        };
        if let Some(secret) = secret {
            let client = self.authenticate(id, secret)?;
            let client_id = client.client_id.clone();
            return Ok(Caller { client_id, registered: Some(client), authenticated: true, named: true });
        }
        match self.get(id) {
            Some(client) if client.confidential => Err(ClientError::InvalidClient),
            Some(client) => {
                let client_id = client.client_id.clone();
                Ok(Caller { client_id, registered: Some(client), authenticated: false, named: true })
            }
            None if self.require_registered || uuid::Uuid::parse_str(id).is_ok() => Err(ClientError::InvalidClient),
            None => Ok(Caller { client_id: id.to_owned(), registered: None, authenticated: false, named: true }),
        }
    }

    /// The scopes `client_id` may be granted now: a registered client's list, else
    /// the standard ones. A refresh keeps no scope the client has since lost.
    pub fn allowed_scopes(&self, client_id: &str) -> Vec<String> {
        match self.get(client_id) {
            Some(client) => client.scopes.clone(),
            None => STANDARD_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A confidential client proven by its secret, as introspection requires.
    pub fn confidential(&self, credentials: &Credentials) -> Result<Arc<RegisteredClient>, ClientError> {
        match (credentials.id.as_deref(), credentials.secret.as_deref()) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => self.authenticate(id, secret),
            _ => Err(ClientError::InvalidClient),
        }
    }
}

/// Whether `presented` is the registered redirect URI `registered`: the same string,
/// except that for `http` on a loopback IP address any port matches (RFC 8252 §7.3:
/// native apps listen on a port the system chooses).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let loopback = |uri: &str| {
        let url = url::Url::parse(uri).ok()?;
        let ip = match url.host()? {
            url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
            url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        (url.scheme() == "http" && ip.is_loopback()).then_some(url)
    };
    let (Some(mut a), Some(mut b)) = (loopback(registered), loopback(presented)) else {
        return false;
    };
    // Compared as written but for the port: the parsed forms only decide that both are
    // loopback URLs, and the strings without their ports must then be equal.
    let _ = (a.set_port(None), b.set_port(None));
    a == b && strip_port(registered) == strip_port(presented)
}

/// `uri` without the `:port` after its host.
fn strip_port(uri: &str) -> String {
    let Some(rest) = uri.strip_prefix("http://") else {
        return uri.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    format!("http://{host}{path}")
}

/// The scopes to grant `caller` for `requested` (a `scope` parameter): each must be
/// one the client may have (a registered client's allowed scopes; the standard ones
/// for a label). Without a request, the default scopes the client may have.
pub fn grant_scope(caller: &Caller, requested: Option<&str>) -> Result<String, ClientError> {
    let allowed: Vec<&str> = match &caller.registered {
        Some(client) => client.scopes.iter().map(String::as_str).collect(),
        None => STANDARD_SCOPES.to_vec(),
    };
    let granted: Vec<&str> = match requested.filter(|s| !blank(s)) {
        None => {
            let defaults: Vec<&str> = DEFAULT_SCOPES.iter().copied().filter(|s| allowed.contains(s)).collect();
            if defaults.is_empty() {
                allowed.into_iter().filter(|s| *s != "offline_access").collect()
            } else {
                defaults
            }
        }
        Some(requested) => {
            let scopes = parse_scope(requested)?;
            if let Some(refused) = scopes.iter().find(|s| !allowed.contains(s)) {
                return Err(ClientError::InvalidScope(format!("scope {refused} is not allowed for this client")));
            }
            scopes
        }
    };
    Ok(granted.join(" "))
}

/// The scopes of `granted` that are still in `allowed`.
pub fn still_allowed(granted: &str, allowed: &[String]) -> String {
    granted.split(' ').filter(|s| allowed.iter().any(|a| a == s)).collect::<Vec<_>>().join(" ")
}

/// A `scope` parameter of nothing but spaces is no request: the defaults apply.
fn blank(scope: &str) -> bool {
    scope.bytes().all(|b| b == b' ')
}

/// `requested` when every scope in it is also in `granted` (a refresh may narrow the
/// session's scopes, never widen them).
pub fn narrow_scope(granted: &str, requested: Option<&str>) -> Result<String, ClientError> {
    let Some(requested) = requested.filter(|s| !blank(s)) else {
        return Ok(granted.to_owned());
    };
    let scopes = parse_scope(requested)?;
    let have: Vec<&str> = granted.split_ascii_whitespace().collect();
    if let Some(refused) = scopes.iter().find(|s| !have.contains(s)) {
        return Err(ClientError::InvalidScope(format!("scope {refused} was not granted to this session")));
    }
    Ok(scopes.join(" "))
}

/// RFC 6749 §3.3: space-delimited tokens of printable ASCII but `"` and `\`; repeats
/// are dropped, the order kept.
pub fn parse_scope(text: &str) -> Result<Vec<&str>, ClientError> {
    if text.len() > MAX_SCOPE_BYTES {
        return Err(ClientError::InvalidScope(format!("scope is longer than {MAX_SCOPE_BYTES} bytes")));
    }
    let mut scopes = Vec::new();
    for scope in text.split(' ').filter(|s| !s.is_empty()) {
        if !scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(ClientError::InvalidScope("scope holds a character RFC 6749 does not allow".to_owned()));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

/// A scope token as `latch client --scope` accepts it.
pub fn valid_scope_token(scope: &str) -> bool {
    !scope.is_empty() && parse_scope(scope).is_ok_and(|s| s.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scopes: Option<&[&str]>) -> Caller {
        Caller {
            client_id: "c".to_owned(),
            registered: scopes.map(|s| {
                Arc::new(RegisteredClient {
                    client_id: "c".to_owned(),
                    name: "c".to_owned(),
                    confidential: false,
                    first_party: false,
                    secret_hash: None,
                    origins: vec![],
                    redirect_uris: vec![],
                    post_logout_redirect_uris: vec![],
                    scopes: s.iter().map(|s| s.to_string()).collect(),
                    service_scopes: Vec::new(),
                })
            }),
            authenticated: false,
            named: true,
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_loosely() {
        let native = "http://127.0.0.1/callback";
        assert!(redirect_matches(native, "http://127.0.0.1:54321/callback"));
        assert!(redirect_matches("http://127.0.0.1:8000/cb", "http://127.0.0.1:9/cb"));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:4000/cb"));
        assert!(!redirect_matches(native, "http://127.0.0.1:54321/callback/"));
        assert!(!redirect_matches(native, "http://127.0.0.1:54321/Callback"));
        assert!(!redirect_matches(native, "http://127.0.0.2:5/callback"));
        assert!(!redirect_matches("http://localhost/cb", "http://localhost:5/cb"), "names are not IPs");
        assert!(!redirect_matches("https://app.example/cb", "https://app.example:444/cb"));
        assert!(!redirect_matches(native, "http://127.0.0.1:5/callback?x=1"));
        assert!(!redirect_matches(native, "http://127.0.0.1:5/x/../callback"));
    }

    #[test]
    fn scopes_are_granted_within_what_the_client_may_have() {
        assert_eq!(grant_scope(&caller(None), None).unwrap(), "openid profile email");
        assert_eq!(grant_scope(&caller(None), Some("  ")).unwrap(), "openid profile email");
        assert!(grant_scope(&caller(None), Some("\topenid")).is_err(), "a tab is no separator");
        assert_eq!(grant_scope(&caller(None), Some("email openid email")).unwrap(), "email openid");
        assert!(
            matches!(grant_scope(&caller(None), Some("admin")), Err(ClientError::InvalidScope(m)) if m.contains("admin"))
        );
        let api = caller(Some(&["api:read", "email", "offline_access"]));
        assert_eq!(grant_scope(&api, None).unwrap(), "email");
        assert_eq!(grant_scope(&api, Some("api:read")).unwrap(), "api:read");
        assert!(grant_scope(&api, Some("openid")).is_err());
        let narrow = caller(Some(&["api:read", "offline_access"]));
        assert_eq!(grant_scope(&narrow, None).unwrap(), "api:read");
        assert!(parse_scope("a\"b").is_err() && parse_scope("a\\b").is_err() && parse_scope("é").is_err());
        assert!(parse_scope(&"a".repeat(2000)).is_err());
        assert_eq!(narrow_scope("openid email", Some("email")).unwrap(), "email");
        assert_eq!(narrow_scope("openid email", None).unwrap(), "openid email");
        assert!(narrow_scope("openid email", Some("profile")).is_err());
    }
}
