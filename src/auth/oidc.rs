//! The OpenID provider (SPEC §8): the rules of an authorization request, what a
//! signed-in browser's request leads to (sign in, consent, a code), the code's exchange
//! at `/token` under PKCE, ID tokens, consents, RP-initiated logout and the client
//! credentials grant. It knows nothing of HTTP; `http::pages::authorize` and
//! `http::tokens` turn its answers into redirects, pages and token responses.
//!
//! An authorization request is checked in two stages (RFC 6749 §4.1.2.1): until its
//! client and redirect URI are known to be registered, errors are shown to the person,
//! never sent anywhere; after, they go back to the client.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::auth::audit::Audit;
use crate::auth::clients::{self, Caller, Clients, RegisteredClient};
use crate::auth::registry::ADMIN_SCOPE;
use crate::auth::sessions::{Client, FromCode, Introspection, SessionError, Sessions, TokenPair};
use crate::auth::tokens::{Holder, TokenService};
use crate::clock::Clock;
use crate::domain::{SessionId, Timestamp, UserId};
use crate::settings::Settings;
use crate::store::{Actor, ConsentRecord, EventType, SessionRecord, Store, StoreError, UserRecord};

/// How long an authorization code can be exchanged (RFC 6749 §4.1.2: at most 10
/// minutes; SPEC §8: at most 60 s).
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// What an authorization code carries, sealed: a code needs no row until it is used,
/// so that answering `/authorize` writes nothing. Times in Unix seconds.
#[derive(Serialize, serde::Deserialize)]
pub struct CodeGrant {
    #[serde(rename = "c")]
    pub client_id: String,
    #[serde(rename = "u")]
    pub user_id: uuid::Uuid,
    #[serde(rename = "r")]
    pub redirect_uri: String,
    #[serde(rename = "s")]
    pub scope: String,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE `S256` challenge, as sent.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// When the user last proved who they are (the browser session's start).
    #[serde(rename = "t")]
    pub auth_time: i64,
    /// The browser session the code was issued in: the code dies with it (a sign-out,
    /// a new password), and it is the ID token's `sid`.
    #[serde(rename = "b")]
    pub browser_session: uuid::Uuid,
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// How they did, space-separated (`pwd`, `pwd otp mfa`): the browser session's.
    #[serde(rename = "a")]
    pub amr: String,
}

/// The name of the installation's code key in the store (`instance_secret`).
pub const CODE_KEY: &str = "authorization_codes";

/// Binds a sealed value to its use as an authorization code.
const CODE_AAD: &[u8] = b"latch authorization code";

/// Seals `grant` under `key` (XChaCha20-Poly1305, a random nonce): base64url of the
/// nonce and the ciphertext. The benchmark makes its codes ahead of a run with it.
pub fn seal_code(key: &[u8; 32], grant: &CodeGrant) -> anyhow::Result<String> {
    use chacha20poly1305::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let plain = serde_json::to_vec(grant)?;
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: &plain, aad: CODE_AAD })
        .map_err(|_| anyhow::anyhow!("cannot seal an authorization code"))?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The grant of a code sealed under `key`, and the digest that records its use; `None`
/// for anything Latch did not seal.
fn open_code(key: &[u8; 32], code: &str) -> Option<(CodeGrant, [u8; 32])> {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
    if code.len() > 4096 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(code).ok()?;
    if bytes.len() < 24 + 16 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(24);
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let plain = cipher.decrypt(nonce.into(), Payload { msg: sealed, aad: CODE_AAD }).ok()?;
    let grant = serde_json::from_slice(&plain).ok()?;
    Some((grant, Sha256::digest(&bytes).into()))
}

/// How long the way back from a forced sign-in may take.
const MARKER_TTL: Duration = Duration::from_secs(600);

/// How long a used code is remembered, so that a replay ends what its first use began.
pub const CODE_KEPT: Duration = Duration::from_secs(600);

/// Scopes about a user, which a client's own token cannot carry.
const USER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Longest `state`, `nonce` and `login_hint` accepted: they travel back in URLs.
const MAX_STATE_BYTES: usize = 1024;
const MAX_NONCE_BYTES: usize = 512;
const MAX_HINT_BYTES: usize = 320;

/// The parameters of an authorization request as sent, each at most once.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub pairs: Vec<(String, String)>,
}

impl AuthorizeParams {
    /// Reads a query string or form body.
    pub fn parse(query: &str) -> Self {
        Self { pairs: form_urlencoded::parse(query.as_bytes()).into_owned().collect() }
    }

    /// The value of `name`, or an error naming it when it is there more than once
    /// (RFC 6749 §3.1). An empty value counts as absent.
    fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("{name} is given more than once"));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// The query string of this request, for a sign-in page to return to.
    pub fn to_query(&self) -> String {
        form_urlencoded::Serializer::new(String::new()).extend_pairs(self.pairs.iter()).finish()
    }
}

/// A request refused before its client and redirect URI are known to be registered:
/// shown to the person, never sent anywhere.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Untrusted(pub String);

/// A request refused once its client and redirect URI are known: sent back to them.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The RFC 6749 / OpenID error code.
    pub error: &'static str,
    pub description: String,
}

/// Why an authorization request cannot go on.
#[derive(Debug)]
pub enum AuthorizeError {
    Untrusted(Untrusted),
    Refused(Box<Refusal>),
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client: Arc<RegisteredClient>,
    pub redirect_uri: String,
    /// The scopes asked for and allowed for the client, space-separated.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<u64>,
    /// `acr_values` asks for a sign-in with two factors.
    pub wants_mfa: bool,
    pub login_hint: Option<String>,
    pub code_challenge: Option<String>,
    /// Set by Latch on the way back from a sign-in that `prompt=login` or `max_age`
    /// asked for: a browser session older than this must sign in again.
    pub signed_in_since: Option<i64>,
    /// The parameters as sent, for the way back after signing in.
    pub params: AuthorizeParams,
}

/// `prompt` (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// `acr` of a sign-in with the password alone.
pub const ACR_PASSWORD: &str = "urn:latch:acr:pwd";
/// `acr` of a sign-in with two factors; asked for by this value or by the PAPE
/// multi-factor policy, many relying parties' name for it.
pub const ACR_MFA: &str = "urn:latch:acr:mfa";
const ACR_PAPE_MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// The `acr_values` Latch understands, as discovery lists them.
pub const ACR_VALUES: [&str; 3] = [ACR_PASSWORD, ACR_MFA, ACR_PAPE_MFA];

/// The `acr` of a sign-in whose `amr` is `amr`.
fn acr_of(amr: &str) -> &'static str {
    if amr.split_ascii_whitespace().any(|m| m == "mfa") { ACR_MFA } else { ACR_PASSWORD }
}

/// The name of the parameter Latch adds on the way back from a forced sign-in.
pub const SIGNED_IN_SINCE: &str = "latch_signed_in_since";

impl AuthRequest {
    /// A refusal sent back to the client.
    pub fn refuse(&self, error: &'static str, description: impl Into<String>) -> AuthorizeError {
        AuthorizeError::Refused(Box::new(Refusal {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description: description.into(),
        }))
    }

    /// The query that brings the browser back here after a sign-in; `marker`, from
    /// [`Oidc::sign_in_marker`], says that the sign-in asked for is done once the browser
    /// session is newer than it.
    pub fn return_query(&self, signed_in_since: Option<String>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params.pairs {
            if k == SIGNED_IN_SINCE {
                continue;
            }
            if k == "prompt" && signed_in_since.is_some() {
                // The sign-in it asked for is done; a consent it asked for is not.
                if self.prompt.consent {
                    out.append_pair(k, "consent");
                }
                continue;
            }
            out.append_pair(k, v);
        }
        if let Some(marker) = signed_in_since {
            out.append_pair(SIGNED_IN_SINCE, &marker);
        }
        out.finish()
    }
}

/// What a checked request leads to for the browser that sent it.
#[derive(Debug)]
pub enum Next {
    /// Sign in first; `force` when a signed-in browser must sign in again.
    SignIn { force: bool },
    /// The signed-in account must confirm its address first (verified addresses are
    /// required).
    Unverified,
    /// Ask the person to allow the client these scopes.
    Consent,
    /// Send the code back: the redirect's query parameters.
    Code(Vec<(&'static str, String)>),
}

/// Why a code exchange or client credentials grant failed (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<clients::ClientError> for GrantError {
    fn from(e: clients::ClientError) -> Self {
        match e {
            clients::ClientError::InvalidClient => Self::InvalidClient,
            clients::ClientError::InvalidScope(m) => Self::InvalidScope(m),
        }
    }
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1).
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: String,
    amr: Vec<&'a str>,
    acr: &'static str,
    azp: &'a str,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// What an RP-initiated logout request is, once checked.
#[derive(Debug)]
pub struct LogoutRequest {
    /// The client named by the hint or `client_id`.
    pub client: Option<Arc<RegisteredClient>>,
    /// A registered `post_logout_redirect_uri`, with `state` added.
    pub redirect: Option<String>,
    /// The user and the browser session (its `sid`) the `id_token_hint` names.
    pub hint: Option<(UserId, Option<SessionId>)>,
}

/// The OpenID provider. Cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    store: Arc<dyn Store>,
    sessions: Sessions,
    tokens: TokenService,
    clients: Clients,
    audit: Audit,
    clock: Clock,
    settings: Arc<Settings>,
    /// Seals authorization codes; the same on every instance.
    code_key: Arc<[u8; 32]>,
}

impl Oidc {
    /// The provider; `code_key` is the installation's key for sealing codes.
    pub fn new(
        store: Arc<dyn Store>,
        sessions: Sessions,
        tokens: TokenService,
        clients: Clients,
        settings: Arc<Settings>,
        code_key: [u8; 32],
    ) -> Self {
        let audit = sessions.audit().clone();
        let clock = sessions.clock.clone();
        Self { store, sessions, tokens, clients, audit, clock, settings, code_key: Arc::new(code_key) }
    }

    /// The time by the server's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A mark of now for the way back from a forced sign-in of `request`: the time and
    /// its MAC under the code key, bound to the request (client, redirect URI, `state`,
    /// `nonce`), so that nobody can write one, nor carry one over to another request, to
    /// skip `prompt=login` or `max_age`.
    pub fn sign_in_marker(&self, request: &AuthRequest) -> String {
        let at = self.clock.now().unix();
        let bound = [&*request.client.client_id, &request.redirect_uri, opt(&request.state), opt(&request.nonce)];
        format!("{at}.{}", self.marker_mac(at, bound))
    }

    /// The time of a marker made here for this request in the last [`MARKER_TTL`].
    fn open_marker(&self, marker: &str, bound: [&str; 4]) -> Option<i64> {
        let (at, mac) = marker.split_once('.')?;
        let at: i64 = at.parse().ok()?;
        let fresh = (0..=MARKER_TTL.as_secs() as i64).contains(&(self.clock.now().unix() - at));
        (fresh && bool::from(self.marker_mac(at, bound).as_bytes().ct_eq(mac.as_bytes()))).then_some(at)
    }

    fn marker_mac(&self, at: i64, bound: [&str; 4]) -> String {
        use hmac::{Hmac, Mac as _};
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.code_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"latch sign-in marker\0");
        mac.update(at.to_string().as_bytes());
        for part in bound {
            // Lengths first, so that no two requests' parts run together the same way.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// Ends the sessions `client_id` holds for `user` (RP-initiated logout).
    pub async fn end_client_sessions(
        &self,
        user: UserId,
        client_id: &str,
        client: Client<'_>,
    ) -> Result<u64, StoreError> {
        let event = self
            .audit
            .event_from(EventType::SessionEnded, Actor::User(Some(user)), client)
            .client_id(client_id)
            .detail("reason", "rp_logout");
        self.store.delete_user_sessions(user, Some(client_id), &event).await
    }

    /// The issuer, sent back as `iss` with every answer (RFC 9207).
    pub fn issuer(&self) -> &str {
        self.tokens.issuer()
    }

    /// Checks an authorization request.
    pub fn check(&self, params: AuthorizeParams) -> Result<AuthRequest, AuthorizeError> {
        let untrusted = |m: String| AuthorizeError::Untrusted(Untrusted(m));
        let client_id = params.one("client_id").map_err(untrusted)?;
        let redirect_uri = params.one("redirect_uri").map_err(untrusted)?;
        let Some(client_id) = client_id else {
            return Err(untrusted("The request names no application (client_id is missing).".to_owned()));
        };
        let Some(client) = self.clients.get(client_id) else {
            return Err(untrusted("The application that sent you here is not registered with this server.".to_owned()));
        };
        let Some(redirect_uri) = redirect_uri else {
            return Err(untrusted("The request does not say where to return (redirect_uri is missing).".to_owned()));
        };
        if !client.redirect_uris.iter().any(|r| clients::redirect_matches(r, redirect_uri)) {
            tracing::info!(client_id, redirect_uri, "authorization request with an unregistered redirect_uri");
            return Err(untrusted(format!(
                "The address {redirect_uri} that {} asked to return to is not one registered for it.",
                client.name
            )));
        }
        let state = params.one("state");
        let mut request = AuthRequest {
            client: client.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scope: String::new(),
            state: state.as_ref().ok().copied().flatten().map(str::to_owned),
            nonce: None,
            prompt: Prompt::default(),
            max_age: None,
            wants_mfa: false,
            login_hint: None,
            code_challenge: None,
            signed_in_since: None,
            params: AuthorizeParams::default(),
        };
        let invalid = |r: &AuthRequest, m: String| r.refuse("invalid_request", m);
        if let Err(m) = state {
            request.state = None;
            return Err(invalid(&request, m));
        }
        if request.state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            request.state = None;
            return Err(invalid(&request, format!("state is longer than {MAX_STATE_BYTES} bytes")));
        }
        let one = |name: &str| params.one(name).map_err(|m| invalid(&request, m));
        if one("request")?.is_some() {
            return Err(request.refuse("request_not_supported", "request objects are not supported"));
        }
        if one("request_uri")?.is_some() {
            return Err(request.refuse("request_uri_not_supported", "request_uri is not supported"));
        }
        if one("registration")?.is_some() {
            return Err(request.refuse("registration_not_supported", "registration is not supported"));
        }
        match one("response_type")? {
            None => return Err(invalid(&request, "response_type is required".to_owned())),
            Some("code") => {}
            Some(other) => {
                return Err(request
                    .refuse("unsupported_response_type", format!("response_type {other} is not supported; use code")));
            }
        }
        if let Some(mode) = one("response_mode")?
            && mode != "query"
        {
            return Err(invalid(&request, format!("response_mode {mode} is not supported; use query")));
        }
        let nonce = one("nonce")?;
        if nonce.is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
            return Err(invalid(&request, format!("nonce is longer than {MAX_NONCE_BYTES} bytes")));
        }
        let prompt = parse_prompt(one("prompt")?).map_err(|m| invalid(&request, m))?;
        let max_age = match one("max_age")? {
            None => None,
            Some(v) => Some(
                v.parse::<u64>().map_err(|_| invalid(&request, "max_age must be a number of seconds".to_owned()))?,
            ),
        };
        let login_hint = one("login_hint")?.filter(|h| h.len() <= MAX_HINT_BYTES).map(str::to_owned);
        // Unknown values are ignored: acr_values is a wish (OpenID Connect Core §3.1.2.1).
        let wants_mfa =
            one("acr_values")?.is_some_and(|v| v.split_ascii_whitespace().any(|a| a == ACR_MFA || a == ACR_PAPE_MFA));
        let challenge = one("code_challenge")?;
        let method = one("code_challenge_method")?;
        let code_challenge = match (challenge, method) {
            (None, None) if client.confidential => None,
            (None, None) => {
                return Err(invalid(
                    &request,
                    "code_challenge is required (PKCE with S256) for a public client".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(&request, "code_challenge_method without code_challenge".to_owned()));
            }
            (Some(_), method) if method != Some("S256") => {
                return Err(invalid(&request, "code_challenge_method must be S256 (plain is refused)".to_owned()));
            }
            (Some(c), _) => {
                if !(c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
                    return Err(invalid(
                        &request,
                        "code_challenge must be the base64url SHA-256 of the verifier (43 characters)".to_owned(),
                    ));
                }
                Some(c.to_owned())
            }
        };
        let marker = one(SIGNED_IN_SINCE)?;
        let scope = match one("scope")? {
            None => return Err(invalid(&request, "scope is required (with openid for an ID token)".to_owned())),
            Some(scope) => {
                let scopes = clients::parse_scope(scope).map_err(|e| request.refuse("invalid_scope", e.to_string()))?;
                if let Some(refused) = scopes.iter().find(|s| !client.scopes.iter().any(|a| a == *s)) {
                    return Err(
                        request.refuse("invalid_scope", format!("scope {refused} is not allowed for this client"))
                    );
                }
                if scopes.is_empty() {
                    return Err(invalid(&request, "scope is required (with openid for an ID token)".to_owned()));
                }
                scopes.join(" ")
            }
        };
        Ok(AuthRequest {
            scope,
            nonce: nonce.map(str::to_owned),
            prompt,
            max_age,
            wants_mfa,
            login_hint,
            code_challenge,
            // A marker Latch did not make for this request, or an old one, is none: the
            // sign-in is asked again.
            signed_in_since: marker.and_then(|m| {
                self.open_marker(m, [&*client.client_id, redirect_uri, opt(&request.state), nonce.unwrap_or("")])
            }),
            params,
            ..request
        })
    }

    /// What `request` leads to for a browser signed in as `signed_in` (its session and
    /// user), or for one that is not.
    pub async fn next(
        &self,
        request: &AuthRequest,
        signed_in: Option<(&SessionRecord, &UserRecord)>,
    ) -> Result<Next, AuthorizeError> {
        let now = self.clock.now();
        let signed_in = match signed_in {
            Some((_, user)) if self.settings.require_verified_email && !user.email_verified => {
                if request.prompt.none {
                    return Err(request.refuse("login_required", "the user must confirm their email address"));
                }
                return Ok(Next::Unverified);
            }
            other => other,
        };
        let Some((session, user)) = signed_in else {
            if request.prompt.none {
                return Err(request.refuse("login_required", "the user is not signed in"));
            }
            return Ok(Next::SignIn { force: request.prompt.login || request.max_age.is_some() });
        };
        // A sign-in asked for on the way here (`prompt=login`, `max_age`) is done once the
        // session started after it was asked for.
        let created = session.created_at.unix();
        let fresh = request.signed_in_since.is_some_and(|t| created >= t);
        let too_old = request.max_age.is_some_and(|max| now.unix().saturating_sub(created) > max as i64);
        if !fresh && (too_old || request.prompt.login || request.signed_in_since.is_some()) {
            if request.prompt.none {
                return Err(request.refuse("login_required", "the user must sign in again"));
            }
            return Ok(Next::SignIn { force: true });
        }
        // Two factors asked for and a session of one: signing in again asks for the
        // second, when the account has one (otherwise the ID token's `acr` says what was done).
        if request.wants_mfa && acr_of(&session.amr) != ACR_MFA && !fresh {
            let factors = self.store.factors(user.id).await.map_err(|e| {
                tracing::error!(error = %e, "could not read an account's factors");
                request.refuse("server_error", "the account could not be read")
            })?;
            if factors.any() {
                if request.prompt.none {
                    return Err(request.refuse("interaction_required", "the user must sign in with a second factor"));
                }
                return Ok(Next::SignIn { force: true });
            }
        }
        if !request.client.first_party {
            let allowed = self.store.consent(user.id, &request.client.client_id).await.map_err(|e| {
                tracing::error!(error = %e, "could not read a consent");
                request.refuse("server_error", "the consent could not be read")
            })?;
            let covered = allowed.is_some_and(|a| covers(&a, &request.scope));
            if !covered || request.prompt.consent {
                if request.prompt.none {
                    return Err(request.refuse("consent_required", "the user has not allowed this application"));
                }
                return Ok(Next::Consent);
            }
        }
        self.issue_code(request, session, user).map(Next::Code).map_err(|e| {
            tracing::error!(error = %e, "could not seal an authorization code");
            request.refuse("server_error", "the code could not be issued")
        })
    }

    /// Records the person's consent to `request` and issues its code.
    pub async fn allow(
        &self,
        request: &AuthRequest,
        session: &SessionRecord,
        user: &UserRecord,
        client: Client<'_>,
    ) -> Result<Vec<(&'static str, String)>, GrantError> {
        let event = self
            .audit
            .event_from(EventType::ConsentGranted, Actor::User(Some(user.id)), client)
            .client_id(&request.client.client_id)
            .detail("scope", request.scope.as_str());
        self.store.grant_consent(user.id, &request.client.client_id, &request.scope, self.clock.now(), &event).await?;
        Ok(self.issue_code(request, session, user)?)
    }

    /// A new code for `request`: the redirect's parameters.
    fn issue_code(
        &self,
        request: &AuthRequest,
        session: &SessionRecord,
        user: &UserRecord,
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        let grant = CodeGrant {
            client_id: request.client.client_id.clone(),
            user_id: user.id.as_uuid(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.created_at.unix(),
            browser_session: session.id.as_uuid(),
            expires_at: (self.clock.now() + CODE_TTL).unix(),
            amr: session.amr.clone(),
        };
        let code = seal_code(&self.code_key, &grant)?;
        let mut params = vec![("code", code)];
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.issuer().to_owned()));
        Ok(params)
    }

    /// `grant_type=authorization_code`: checks the code against the client, the
    /// redirect URI and the PKCE verifier, and starts a session for the client. A code
    /// presented again ends the session its first use started.
    pub async fn exchange(
        &self,
        caller: &Caller,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        client: Client<'_>,
    ) -> Result<TokenPair, GrantError> {
        let Some(registered) = caller.registered.clone() else {
            return Err(GrantError::InvalidClient);
        };
        let Some(code) = code.filter(|c| !c.is_empty()) else {
            return Err(GrantError::InvalidRequest("code is required".to_owned()));
        };
        if let Some(v) = verifier
            && !valid_verifier(v)
        {
            return Err(GrantError::InvalidRequest(
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~".to_owned(),
            ));
        }
        let now = self.clock.now();
        let invalid = |m: &str| GrantError::InvalidGrant(m.to_owned());
        let Some((record, digest)) = open_code(&self.code_key, code) else {
            return Err(invalid("the code is invalid"));
        };
        let user = match self.check_code(&record, &registered, redirect_uri, verifier, now).await {
            Ok(user) => user,
            Err(e) => {
                // A code with a wrong verifier, or from another client, gets no second try;
                // one used before, also after it expired, ends what its first use started.
                if !self.store.burn_code(&digest, now).await?
                    && let Some(first) = self.store.used_code(&digest).await?
                {
                    return Err(self.replayed(first, caller, client).await?);
                }
                return Err(e);
            }
        };
        let scope = clients::still_allowed(&record.scope, &registered.scopes);
        let browser = SessionId::from_uuid(record.browser_session);
        let from_code = FromCode { hash: &digest, delegated: !registered.first_party, browser_session: browser };
        let started = self
            .sessions
            .start_token_session(&user, &registered.client_id, &scope, &record.amr, Some(from_code), None, client)
            .await;
        let mut pair = match started {
            Ok(pair) => pair,
            // Used before (or by an exchange racing this one): its session is the one to end.
            Err(SessionError::Store(StoreError::Conflict("code"))) => {
                let first = self.store.used_code(&digest).await?;
                return Err(match first {
                    Some(first) => self.replayed(first, caller, client).await?,
                    None => invalid("the code has been used"),
                });
            }
            Err(SessionError::Store(StoreError::Conflict("browser_session"))) => {
                return Err(invalid("the sign-in behind the code has ended"));
            }
            Err(e) => return Err(e.into()),
        };
        let has = |s: &str| scope.split(' ').any(|g| g == s);
        if !registered.first_party && !has("offline_access") {
            pair.refresh_token = None;
        }
        if has("openid") {
            let at_hash = {
                let digest = Sha256::digest(pair.access_token.as_bytes());
                URL_SAFE_NO_PAD.encode(&digest[..16])
            };
            let claims = IdClaims {
                iss: self.issuer(),
                sub: user.id.to_string(),
                aud: &registered.client_id,
                exp: now.unix() + self.tokens.ttl().as_secs() as i64,
                iat: now.unix(),
                auth_time: record.auth_time,
                nonce: record.nonce.as_deref(),
                sid: browser.to_string(),
                amr: record.amr.split_ascii_whitespace().collect(),
                acr: acr_of(&record.amr),
                azp: &registered.client_id,
                at_hash,
                preferred_username: has("profile").then_some(user.username.as_str()),
                email: has("email").then_some(user.email.as_str()),
                email_verified: has("email").then_some(user.email_verified),
            };
            pair.id_token = Some(self.tokens.sign_id_token(&*self.store, &claims).await?);
        }
        Ok(pair)
    }

    /// A second use of a code: ends the session `first` of its first use and says so.
    async fn replayed(&self, first: SessionId, caller: &Caller, client: Client<'_>) -> Result<GrantError, StoreError> {
        let event = self
            .audit
            .event_from(EventType::AuthorizationCodeReuse, Actor::Client(caller.client_id.clone()), client)
            .failed()
            .session(first)
            .client_id(&caller.client_id);
        let ended = self.store.delete_session(first, &event).await?;
        tracing::warn!(
            event = "authorization_code_reused",
            session = %first,
            ended,
            "authorization code used twice; the session of its first use has been ended"
        );
        Ok(GrantError::InvalidGrant("the code has been used".to_owned()))
    }

    /// The checks of a code's exchange: its age, client, redirect URI, PKCE verifier, and
    /// the browser session it was issued in, whose user it returns.
    async fn check_code(
        &self,
        record: &CodeGrant,
        registered: &RegisteredClient,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now: Timestamp,
    ) -> Result<UserRecord, GrantError> {
        let invalid = |m: &str| GrantError::InvalidGrant(m.to_owned());
        if record.expires_at <= now.unix() {
            return Err(invalid("the code has expired"));
        }
        if record.client_id != registered.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        match redirect_uri {
            None => return Err(GrantError::InvalidRequest("redirect_uri is required".to_owned())),
            Some(uri) if uri != record.redirect_uri => {
                return Err(invalid("redirect_uri is not the one of the authorization request"));
            }
            Some(_) => {}
        }
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) => {
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                    return Err(invalid("code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(invalid("code_verifier is required")),
            (None, Some(_)) => return Err(invalid("code_verifier given, but the request had no code_challenge")),
            (None, None) => {}
        }
        // A person who withdrew the application's access since the code was issued has
        // not allowed what it would start.
        if !registered.first_party {
            let allowed = self.store.consent(UserId::from_uuid(record.user_id), &registered.client_id).await?;
            if !allowed.is_some_and(|a| covers(&a, &record.scope)) {
                return Err(invalid("the person has withdrawn this application's access"));
            }
        }
        match self.sessions.live(SessionId::from_uuid(record.browser_session)).await? {
            Some((_, user))
                if user.id.as_uuid() == record.user_id
                    && (user.email_verified || !self.settings.require_verified_email) =>
            {
                Ok(user)
            }
            _ => Err(invalid("the sign-in behind the code has ended")),
        }
    }

    /// `grant_type=client_credentials`: a confidential client's own token, `sub` the
    /// client, without a session or a refresh token. Its scopes are those asked for, each
    /// one it lists; without a request, all it lists but those about a user.
    pub async fn client_credentials(
        &self,
        caller: &Caller,
        requested: Option<&str>,
        client: Client<'_>,
    ) -> Result<TokenPair, GrantError> {
        let registered = match &caller.registered {
            Some(c) if c.confidential && caller.authenticated => c.clone(),
            Some(_) => {
                return Err(GrantError::UnauthorizedClient(
                    "client_credentials is for confidential clients, authenticated with their secret".to_owned(),
                ));
            }
            None => return Err(GrantError::InvalidClient),
        };
        let Ok(id) = uuid::Uuid::parse_str(&registered.client_id) else {
            return Err(GrantError::InvalidClient);
        };
        let about_users = |s: &str| USER_SCOPES.contains(&s);
        let scope = match requested.filter(|r| !r.trim_matches(' ').is_empty()) {
            // Latch's own API scopes only when asked for by name.
            None => registered
                .service_scopes
                .iter()
                .filter(|s| !about_users(s) && !s.starts_with("latch:"))
                .cloned()
                .collect::<Vec<_>>(),
            Some(requested) => {
                let scopes = clients::parse_scope(requested)?;
                if let Some(refused) =
                    scopes.iter().find(|s| about_users(s) || !registered.service_scopes.iter().any(|a| a == *s))
                {
                    return Err(GrantError::InvalidScope(format!(
                        "scope {refused} is not allowed for this client's own token"
                    )));
                }
                scopes.into_iter().map(str::to_owned).collect()
            }
        };
        let scope = scope.join(" ");
        let access_token = self.tokens.sign_for_client(id, &scope)?;
        let event = self
            .audit
            .event_from(EventType::ClientToken, Actor::Client(registered.client_id.clone()), client)
            .client_id(&registered.client_id)
            .detail("scope", scope.as_str());
        self.audit.record(event).await;
        Ok(TokenPair {
            access_token,
            refresh_token: None,
            id_token: None,
            expires_in: self.tokens.ttl().as_secs(),
            scope,
        })
    }

    /// The client whose own token (client credentials) `token` is, while that client is
    /// registered, and whether the token may use the admin API: it carries the admin
    /// scope and the client still lists it. `None` for any other token.
    pub fn client_of_token(&self, token: &str) -> Option<(String, bool)> {
        let claims = self.tokens.verify(token).ok()?;
        if claims.holder != Holder::Client || !claims.key_still_trusted() {
            return None;
        }
        let client = self.clients.get(&claims.client_id)?;
        let scoped = claims.scope.split_ascii_whitespace().any(|s| s == ADMIN_SCOPE);
        let may_admin = scoped && client.service_scopes.iter().any(|s| s == ADMIN_SCOPE);
        Some((client.client_id.clone(), may_admin))
    }

    /// What introspection says of a client's own token (client credentials) while its
    /// client is registered.
    pub fn introspect_client_token(&self, token: &str) -> Option<Introspection> {
        let claims = self.tokens.verify(token).ok()?;
        if claims.holder != Holder::Client || !claims.key_still_trusted() {
            return None;
        }
        self.clients.get(&claims.client_id)?;
        Some(Introspection {
            entry: None,
            token_type: "access_token",
            client_id: claims.client_id,
            scope: claims.scope,
            issued_at: claims.iat,
            expires_at: claims.exp,
        })
    }

    /// The consents `user` gave, with the clients' names (clients deleted since are
    /// left out).
    pub async fn consents(&self, user: UserId) -> Result<Vec<(ConsentRecord, String)>, StoreError> {
        Ok(self
            .store
            .consents(user)
            .await?
            .into_iter()
            .filter_map(|c| {
                let name = self.clients.get(&c.client_id)?.name.clone();
                Some((c, name))
            })
            .collect())
    }

    /// Withdraws a consent: the client asks again next time.
    pub async fn revoke_consent(&self, user: UserId, client_id: &str, client: Client<'_>) -> Result<bool, StoreError> {
        let event =
            self.audit.event_from(EventType::ConsentRevoked, Actor::User(Some(user)), client).client_id(client_id);
        self.store.revoke_consent(user, client_id, &event).await
    }

    /// Checks an RP-initiated logout request: the hint must be an ID token Latch
    /// signed; a `post_logout_redirect_uri` must be registered for the client the
    /// hint or `client_id` names. `Err` says why, to show on a page.
    pub fn check_logout(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<LogoutRequest, Untrusted> {
        // A hint that does not verify (its key rotated away, or forged) is no hint: the
        // person is asked instead.
        let hint = id_token_hint.and_then(|token| self.tokens.id_token_hint(token));
        if let (Some(hint), Some(client_id)) = (&hint, client_id)
            && hint.aud != client_id
        {
            return Err(Untrusted("The sign-out request names two different applications.".into()));
        }
        let client_id = hint.as_ref().map(|h| h.aud.as_str()).or(client_id);
        let client = client_id.and_then(|id| self.clients.get(id));
        let redirect = match post_logout_redirect_uri {
            None => None,
            Some(uri) => {
                let registered = client.as_ref().is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    return Err(Untrusted(
                        "The address the application asked to return to after signing out is not registered for it."
                            .into(),
                    ));
                }
                let mut url = url::Url::parse(uri).map_err(|_| Untrusted("The return address is not a URL.".into()))?;
                if let Some(state) = state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url.to_string())
            }
        };
        let hint = hint.and_then(|h| {
            let user = UserId::parse(&h.sub)?;
            Some((user, h.sid.as_deref().and_then(SessionId::parse)))
        });
        Ok(LogoutRequest { client, redirect, hint })
    }
}

/// The text of an optional value, empty when absent.
fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// Whether the scopes `allowed` (space-separated) include every one of `requested`.
fn covers(allowed: &str, requested: &str) -> bool {
    requested.split_ascii_whitespace().all(|r| allowed.split_ascii_whitespace().any(|a| a == r))
}

/// `prompt`: space-separated `none`, `login`, `consent`, `select_account` (read as
/// `login`: the sign-in form lets the person switch accounts); `none` alone.
fn parse_prompt(value: Option<&str>) -> Result<Prompt, String> {
    let mut prompt = Prompt::default();
    let Some(value) = value else {
        return Ok(prompt);
    };
    let mut count = 0;
    for v in value.split(' ').filter(|v| !v.is_empty()) {
        count += 1;
        match v {
            "none" => prompt.none = true,
            "login" | "select_account" => prompt.login = true,
            "consent" => prompt.consent = true,
            other => return Err(format!("prompt {other} is not supported; use none, login or consent")),
        }
    }
    if prompt.none && count > 1 {
        return Err("prompt none cannot be combined with other values".to_owned());
    }
    Ok(prompt)
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_values() {
        assert_eq!(parse_prompt(None).unwrap(), Prompt::default());
        assert!(parse_prompt(Some("none")).unwrap().none);
        let p = parse_prompt(Some("login consent")).unwrap();
        assert!(p.login && p.consent && !p.none);
        assert!(parse_prompt(Some("none login")).is_err());
        assert!(parse_prompt(Some("bogus")).is_err());
    }

    #[test]
    fn verifiers_and_scopes() {
        assert!(valid_verifier(&"a".repeat(43)) && valid_verifier(&"~".repeat(128)));
        assert!(!valid_verifier(&"a".repeat(42)) && !valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(covers("openid profile email", "email openid"));
        assert!(!covers("openid", "openid email"));
    }

    #[test]
    fn codes_open_only_as_sealed_under_their_key() {
        let grant = CodeGrant {
            client_id: "c".into(),
            user_id: uuid::Uuid::nil(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            nonce: Some("n".into()),
            code_challenge: None,
            auth_time: 1,
            browser_session: uuid::Uuid::nil(),
            expires_at: 2,
            amr: "pwd".into(),
        };
        let key = [7u8; 32];
        let code = seal_code(&key, &grant).unwrap();
        let (opened, digest) = open_code(&key, &code).unwrap();
        assert_eq!((opened.client_id.as_str(), opened.nonce.as_deref()), ("c", Some("n")));
        assert_ne!(seal_code(&key, &grant).unwrap(), code, "a fresh nonce each time");
        assert_eq!(open_code(&key, &code).unwrap().1, digest);
        assert!(open_code(&[8u8; 32], &code).is_none(), "another installation's key");
        let mut bytes = URL_SAFE_NO_PAD.decode(&code).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(open_code(&key, &URL_SAFE_NO_PAD.encode(bytes)).is_none(), "altered");
        assert!(open_code(&key, "made-up").is_none() && open_code(&key, "").is_none());
    }

    #[test]
    fn parameters_given_twice_are_refused() {
        let p = AuthorizeParams::parse("a=1&b=2&a=3&c=");
        assert!(p.one("a").is_err());
        assert_eq!(p.one("b").unwrap(), Some("2"));
        assert_eq!(p.one("c").unwrap(), None);
    }
}
