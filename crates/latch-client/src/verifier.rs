//! The verifier: reads discovery and the JWK Set once, keeps the keys by `kid`, and
//! verifies access tokens against them without blocking or allocating beyond what
//! decoding the claims needs. An unknown `kid` refetches the key set, at most once per
//! interval however many callers ask, so that tokens with made-up `kid`s cannot make it
//! hammer the authorization server.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::claims::AccessClaims;
use crate::error::{Error, ErrorKind};
use crate::jwks::{self, Expectations, Key, KeySet};

/// Default clock leeway on `exp`, `nbf` and `iat`; the leeway Latch itself uses.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// Default shortest time between two fetches of the key set.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Timeout of each request to the authorization server, unless the builder is given
/// its own HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Verifies Latch access tokens (RFC 9068 JWTs).
///
/// Cheap to clone (the clones share the key cache), so it can live in an axum state.
/// Checks, in order: the header (`typ` is `at+jwt`, no `crit`), the key named by `kid`
/// (refetching the key set if unknown), `alg` equal to that key's algorithm, the
/// signature, `iss`, `aud` (a string, or an array that contains the audience), `exp`,
/// `nbf` and `iat` with [leeway](VerifierBuilder::leeway).
///
/// ```no_run
/// # async fn run() -> Result<(), latch_client::Error> {
/// let verifier = latch_client::Verifier::discover("https://auth.example.com").await?;
/// let claims = verifier.verify("eyJ0eXAiOiJhdCtqd3Qi...").await?;
/// println!("user {} with scopes {}", claims.sub, claims.scope);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    keys: ArcSwap<KeySet>,
    /// Where to refetch the key set; none for a verifier built from a fixed document.
    source: Option<Source>,
}

struct Source {
    http: reqwest::Client,
    jwks_uri: String,
    min_interval: Duration,
    /// When the key set was last fetched. Held across a fetch, so that concurrent
    /// callers with the same unknown `kid` wait for that fetch instead of starting theirs.
    last_fetch: Mutex<Instant>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.inner.keys.load();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_uri", &self.inner.source.as_ref().map(|s| &s.jwks_uri))
            .field("kids", &kids)
            .finish()
    }
}

/// The header members the verifier reads before choosing a key. Borrowed from the
/// decoded header where possible: the hot path allocates nothing here.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    crit: Option<serde::de::IgnoredAny>,
}

impl Verifier {
    /// Builds a verifier for the issuer at `issuer` (Latch's public URL) from its
    /// discovery document, with the issuer as audience (Latch's default) and default
    /// settings. Fetches discovery and the key set before returning.
    pub async fn discover(issuer: &str) -> Result<Self, Error> {
        Self::builder(issuer).build().await
    }

    /// A verifier from a JWK Set document, for tests and offline use: its keys never
    /// change, and an unknown `kid` is refused without any request.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self, Error> {
        Self::builder(issuer).audience(audience).build_from_jwks(jwks)
    }

    /// Starts configuring a verifier for tokens issued by `issuer` (Latch's public URL,
    /// compared exactly with the tokens' `iss`; a trailing slash is dropped, as Latch does).
    pub fn builder(issuer: &str) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: None,
            jwks_uri: None,
            leeway: DEFAULT_LEEWAY,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            http: None,
        }
    }

    /// The issuer tokens must name in `iss`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience tokens must name in `aud`.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Verifies `token` and returns its claims. A `kid` that is not cached refetches
    /// the key set first, unless the last fetch was less than the minimum refetch
    /// interval ago; concurrent callers share one fetch.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let mut buf = [0; HEADER_BUFFER];
        let header = parse_header(token, &mut buf)?;
        let kid = header.kid.as_deref().ok_or(ErrorKind::UnknownKey)?;
        {
            let keys = self.inner.keys.load();
            if let Some(key) = keys.get(kid) {
                return self.inner.decode(token, &header, key);
            }
        }
        let keys = self.refetch(kid).await?;
        let key = keys.get(kid).ok_or(ErrorKind::UnknownKey)?;
        self.inner.decode(token, &header, key)
    }

    /// Verifies `token` with the keys already cached, without waiting for anything: a
    /// `kid` not in the cache is [`ErrorKind::UnknownKey`]. For synchronous code; the
    /// cache is filled by [`verify`](Self::verify).
    pub fn verify_cached(&self, token: &str) -> Result<AccessClaims, Error> {
        let mut buf = [0; HEADER_BUFFER];
        let header = parse_header(token, &mut buf)?;
        let kid = header.kid.as_deref().ok_or(ErrorKind::UnknownKey)?;
        let keys = self.inner.keys.load();
        let key = keys.get(kid).ok_or(ErrorKind::UnknownKey)?;
        self.inner.decode(token, &header, key)
    }

    /// Fetches the key set again if `kid` is still unknown and the last fetch is old
    /// enough; returns the key set to look `kid` up in.
    async fn refetch(&self, kid: &str) -> Result<Arc<KeySet>, Error> {
        let Some(source) = &self.inner.source else {
            return Err(ErrorKind::UnknownKey.into());
        };
        let mut last_fetch = source.last_fetch.lock().await;
        // Whoever held the lock before may have fetched the key we are after.
        let current = self.inner.keys.load_full();
        if current.contains_key(kid) || last_fetch.elapsed() < source.min_interval {
            return Ok(current);
        }
        // Counted before the request, so that failures are rate-limited too.
        *last_fetch = Instant::now();
        let fresh = Arc::new(fetch_jwks(&source.http, &source.jwks_uri, &self.inner.expectations()).await?);
        self.inner.keys.store(fresh.clone());
        Ok(fresh)
    }
}

impl Inner {
    fn expectations(&self) -> Expectations<'_> {
        Expectations { issuer: &self.issuer, audience: &self.audience, leeway_secs: self.leeway_secs }
    }

    fn decode(&self, token: &str, header: &Header<'_>, key: &Key) -> Result<AccessClaims, Error> {
        // Pinned: the key decides the algorithm. `none` and HS* never match a key.
        if header.alg != key.alg {
            return Err(ErrorKind::Algorithm.into());
        }
        let mut claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &key.validation)?.claims;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if claims.iat > i64::try_from(now.saturating_add(self.leeway_secs)).unwrap_or(i64::MAX) {
            return Err(ErrorKind::IssuedInFuture.into());
        }
        // The validation found our audience in the token, alone or in an array.
        if claims.aud != self.audience {
            claims.aud.clone_from(&self.audience);
        }
        Ok(claims)
    }
}

/// Room for a decoded JWS header. Latch's are under 100 bytes; a header that does not
/// fit is refused before any JSON is parsed.
const HEADER_BUFFER: usize = 1024;

/// Reads the header of a compact JWS into `buf` and checks what needs no key: `typ`
/// and `crit`.
fn parse_header<'b>(token: &str, buf: &'b mut [u8; HEADER_BUFFER]) -> Result<Header<'b>, Error> {
    let encoded = token.split_once('.').map(|(h, _)| h).ok_or(ErrorKind::Malformed)?;
    let len = URL_SAFE_NO_PAD.decode_slice(encoded, &mut buf[..]).map_err(|e| Error::with(ErrorKind::Malformed, e))?;
    let decoded: &'b [u8; HEADER_BUFFER] = buf;
    let header: Header<'b> =
        serde_json::from_slice(&decoded[..len]).map_err(|e| Error::with(ErrorKind::Malformed, e))?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions we do not understand must be refused, and we
        // understand none.
        return Err(ErrorKind::Critical.into());
    }
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(ErrorKind::Type.into());
    }
    Ok(header)
}

/// Configures a [`Verifier`]; from [`Verifier::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: Option<String>,
    jwks_uri: Option<String>,
    leeway: Duration,
    min_refetch_interval: Duration,
    http: Option<reqwest::Client>,
}

impl VerifierBuilder {
    /// The audience tokens must name (`LATCH_TOKEN_AUDIENCE` on the server); the
    /// issuer by default, as on the server.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Where the JWK Set is, instead of reading `jwks_uri` from the issuer's discovery
    /// document (which is then not fetched at all).
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// Clock leeway on `exp`, `nbf` and `iat`, in whole seconds; 5 s by default.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The shortest time between two fetches of the key set; 5 s by default. A token
    /// with an unknown `kid` within this time of the last fetch is refused without a
    /// request.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// The HTTP client for discovery and the key set (for proxies, custom roots or
    /// timeouts); by default one with a 10 s timeout.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Reads discovery (unless [`jwks_uri`](Self::jwks_uri) was given) and the key set,
    /// then returns the verifier.
    pub async fn build(self) -> Result<Verifier, Error> {
        let http = match self.http.clone() {
            Some(client) => client,
            None => default_http_client()?,
        };
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => discover(&http, &self.issuer).await?.jwks_uri,
        };
        let (issuer, audience, leeway_secs) = self.parts();
        let expect = Expectations { issuer: &issuer, audience: &audience, leeway_secs };
        let keys = fetch_jwks(&http, &jwks_uri, &expect).await?;
        let source =
            Source { http, jwks_uri, min_interval: self.min_refetch_interval, last_fetch: Mutex::new(Instant::now()) };
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer,
                audience,
                leeway_secs,
                keys: ArcSwap::from_pointee(keys),
                source: Some(source),
            }),
        })
    }

    /// A verifier over the keys of the JWK Set document `jwks`, which never refetches.
    pub fn build_from_jwks(self, jwks: &str) -> Result<Verifier, Error> {
        let (issuer, audience, leeway_secs) = self.parts();
        let keys = jwks::parse(jwks.as_bytes(), &Expectations { issuer: &issuer, audience: &audience, leeway_secs })?;
        Ok(Verifier {
            inner: Arc::new(Inner { issuer, audience, leeway_secs, keys: ArcSwap::from_pointee(keys), source: None }),
        })
    }

    fn parts(&self) -> (String, String, u64) {
        let audience = self.audience.clone().unwrap_or_else(|| self.issuer.clone());
        (self.issuer.clone(), audience, self.leeway.as_secs())
    }
}

pub(crate) fn default_http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().map_err(|e| Error::with(ErrorKind::Http, e))
}

/// The members of an OpenID Provider's metadata this crate reads.
#[derive(Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: String,
    pub(crate) introspection_endpoint: Option<String>,
}

/// Reads `{issuer}/.well-known/openid-configuration`, whose `issuer` must be the
/// issuer asked for (OpenID Connect Discovery §4.3).
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, Error> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/openid-configuration");
    let body = get(http, &url).await?;
    let doc: Discovery = serde_json::from_slice(&body).map_err(|e| Error::with(ErrorKind::Discovery, e))?;
    if doc.issuer.trim_end_matches('/') != issuer {
        return Err(Error::with(ErrorKind::Discovery, format!("{url} names issuer {:?}, not {issuer:?}", doc.issuer)));
    }
    Ok(doc)
}

async fn fetch_jwks(http: &reqwest::Client, url: &str, expect: &Expectations<'_>) -> Result<KeySet, Error> {
    jwks::parse(&get(http, url).await?, expect)
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, Error> {
    let response = http.get(url).send().await.map_err(|e| Error::with(ErrorKind::Http, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::with(ErrorKind::Http, format!("GET {url}: {status}")));
    }
    Ok(response.bytes().await.map_err(|e| Error::with(ErrorKind::Http, e))?.to_vec())
}
