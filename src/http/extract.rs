//! Extractors: request bodies whose failures are our problem documents, the client's
//! address and user agent, and [`AuthUser`], the one way every authenticated route
//! learns who is calling.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;

use crate::auth::clients::Credentials;
use crate::auth::sessions::{Client, LoginOptions, SessionError};
use crate::domain::SessionId;
use crate::http::cookies;
use crate::http::error::{ApiError, ErrorCode, OAuthError};
use crate::http::state::AppState;
use crate::store::{SessionRecord, UserRecord};

/// A JSON body (`FORM = false`), or a JSON or `application/x-www-form-urlencoded`
/// body (`FORM = true`). Any other content type is answered 415.
pub struct Input<T, const FORM: bool>(pub T);

/// A JSON-only body.
pub type Json<T> = Input<T, false>;
/// A JSON or form body.
pub type JsonOrForm<T> = Input<T, true>;

enum Format {
    Json,
    Form,
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

impl<S: Send + Sync, T: DeserializeOwned, const FORM: bool> FromRequest<S> for Input<T, FORM> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = content_type(req.headers());
        let format = match ct.as_deref() {
            Some("application/json") => Some(Format::Json),
            Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => Some(Format::Json),
            Some("application/x-www-form-urlencoded") if FORM => Some(Format::Form),
            _ => None,
        };
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the body is larger than 64 KiB")
            } else {
                ApiError::bad_request("the body could not be read")
            }
        })?;
        let format = match (format, ct.is_none() && bytes.is_empty()) {
            (Some(f), _) => f,
            // No body at all reads as an empty object, so that missing fields are
            // reported by name.
            (None, true) => return parse_json(b"{}").map(Input),
            (None, false) => {
                let accepted =
                    if FORM { "application/json or application/x-www-form-urlencoded" } else { "application/json" };
                return Err(ApiError::new(ErrorCode::UnsupportedMediaType, format!("send {accepted}")));
            }
        };
        match format {
            Format::Json => parse_json(&bytes).map(Input),
            Format::Form => parse_form(&bytes).map(Input),
        }
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Serde would also read a struct from an array; only objects are accepted.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A form body into a struct of optional strings (every body of this API). The
/// pairs are split here rather than by a general form decoder, which walks every byte
/// of every value several times: most values (tokens, ids) hold no `%` or `+` and
/// are used as they are.
fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut rest = bytes;
    let pairs = std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (pair, tail) = match memchr::memchr(b'&', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = tail;
            if !pair.is_empty() {
                return Some(pair);
            }
        }
        None
    });
    let pairs = pairs.map(|pair| {
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (FormPart(form_decode(name)), FormPart(form_decode(value)))
    });
    // Every value is a string, so the only errors are unknown and repeated fields,
    // whose messages name them.
    let de = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs);
    T::deserialize(de).map_err(|e| data_error("", &e.to_string()))
}

/// One name or value of `application/x-www-form-urlencoded`: `+` is a space, `%XX` a
/// byte, and the result is read as UTF-8 with invalid sequences replaced, as the
/// WHATWG URL standard decodes forms.
fn form_decode(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'%', b'+', raw).is_none() {
        return match std::str::from_utf8(raw) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(raw),
        };
    }
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    std::borrow::Cow::Owned(percent_encoding::percent_decode(&spaced).decode_utf8_lossy().into_owned())
}

/// A form name or value, read as a string, or as `Some(string)` for an `Option`.
struct FormPart<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for FormPart<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for FormPart<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            std::borrow::Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            std::borrow::Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// A body of the wrong shape: 422 naming the field when there is one.
fn data_error(path: &str, message: &str) -> ApiError {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
        return ApiError::field(field.to_owned(), "is not a known field");
    }
    if let Some(field) = message.strip_prefix("duplicate field `").and_then(|m| m.split('`').next()) {
        return ApiError::field(field.to_owned(), "is given more than once");
    }
    if path.is_empty() || path == "." {
        return ApiError::bad_request(format!("the body must be an object: {message}"));
    }
    ApiError::field(path.to_owned(), message.to_owned())
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The device cookie of an earlier login from this browser.
    pub device: Option<String>,
}

impl ClientInfo {
    /// The client as the session service knows it.
    pub fn client(&self) -> Client<'_> {
        Client { ip: self.ip, user_agent: self.user_agent.as_deref(), device: self.device.as_deref() }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|peer| client_ip(peer, &parts.headers, &state.settings.trusted_proxies));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect::<String>());
        let device = cookies::read(&parts.headers, cookies::device_name(&state.settings));
        Ok(Self { ip, user_agent, device })
    }
}

/// The TCP peer, unless it is a trusted proxy: then the right-most `X-Forwarded-For`
/// entry that is not itself a trusted proxy. An entry that does not parse as an address
/// ends the walk at the last trusted hop: whatever stands to its left was written by
/// the client and proves nothing. IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let values: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return client;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
    BasicPassword,
}

/// The authenticated caller: a live user, and the session behind the credential
/// (none for `Basic user:password`). When verified emails are required, an unverified
/// account is refused (403 `email_not_verified`) with every kind of credential, except
/// on the few routes that take `AuthUser<true>`: reading the account, changing its
/// email, asking for a verification email and logging out.
pub struct AuthUser<const ALLOW_UNVERIFIED: bool = false> {
    pub user: UserRecord,
    pub session: Option<SessionRecord>,
    pub via: Via,
}

impl<const A: bool> AuthUser<A> {
    pub fn session_id(&self) -> Option<SessionId> {
        self.session.as_ref().map(|s| s.id)
    }
}

impl<const ALLOW_UNVERIFIED: bool> FromRequestParts<AppState> for AuthUser<ALLOW_UNVERIFIED> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Self::authenticate(parts, state).await?;
        if state.settings.require_verified_email && !ALLOW_UNVERIFIED && !auth.user.email_verified {
            return Err(ApiError::email_not_verified());
        }
        Ok(auth)
    }
}

impl<const ALLOW_UNVERIFIED: bool> AuthUser<ALLOW_UNVERIFIED> {
    async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return match cookies::read(&parts.headers, cookies::session_name(&state.settings)) {
                Some(secret) => {
                    refuse_cross_site(&parts.method, &parts.headers, state)?;
                    let (session, user) = state.sessions.by_cookie(&secret).await?;
                    Ok(Self { user, session: Some(session), via: Via::Cookie })
                }
                None => Err(ApiError::unauthorized("authentication required")),
            };
        };
        let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return bearer(state, credentials).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::unauthorized("unsupported authorization scheme"));
        }
        let decoded = decode_basic(credentials).ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
        let (login, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if password.is_empty() {
            return bearer(state, login).await;
        }
        let client = ClientInfo::from_request_parts(parts, state).await?;
        let logged_in = state.sessions.login(login, password, client.client(), LoginOptions::default()).await?;
        Ok(Self { user: logged_in.user, session: None, via: Via::BasicPassword })
    }
}

fn decode_basic(credentials: &str) -> Option<String> {
    STANDARD.decode(credentials).ok().and_then(|b| String::from_utf8(b).ok())
}

/// OAuth client authentication (RFC 6749 §2.3.1) on the token endpoints: HTTP Basic
/// with the form-urlencoded id and secret (`client_secret_basic`; an empty secret for
/// a public client), or `client_id` and `client_secret` in the body
/// (`client_secret_post`). Using both methods at once, or naming two different
/// clients, is `invalid_request`.
pub fn client_credentials(
    authorization: Option<&HeaderValue>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Credentials, OAuthError> {
    let form_id = form_id.filter(|s| !s.is_empty());
    let form_secret = form_secret.filter(|s| !s.is_empty());
    let Some((id, secret)) = basic_client(authorization)? else {
        return Ok(Credentials { id: form_id.map(str::to_owned), secret: form_secret.map(str::to_owned) });
    };
    if form_secret.is_some() {
        return Err(OAuthError::invalid_request("use one client authentication method: Basic or client_secret"));
    }
    if form_id.is_some_and(|f| f != id) {
        return Err(OAuthError::invalid_request("client_id differs from the client of the Authorization header"));
    }
    Ok(Credentials { id: Some(id), secret: Some(secret).filter(|s| !s.is_empty()) })
}

/// The (id, secret) of a Basic Authorization header; `None` without one.
fn basic_client(authorization: Option<&HeaderValue>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_request("malformed Authorization header");
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, credentials) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request("client authentication uses the Basic scheme"));
    }
    let decoded = decode_basic(credentials.trim()).ok_or_else(malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 §2.3.1: both are form-urlencoded.
    let unescape = |s: &str| -> String {
        if s.contains(['%', '+']) {
            form_urlencoded::parse(format!("v={s}").as_bytes()).map(|(_, v)| v.into_owned()).next().unwrap_or_default()
        } else {
            s.to_owned()
        }
    };
    let (id, secret) = (unescape(id), unescape(secret));
    match (id.is_empty(), secret.is_empty()) {
        // Swagger UI sends `Basic Og==` (":") when no client is filled in.
        (true, true) => Ok(None),
        (true, false) => Err(malformed()),
        (false, _) => Ok(Some((id, secret))),
    }
}

/// Cookies ride along on requests from any site, so a state-changing request that
/// shows another site's `Sec-Fetch-Site` or `Origin` is refused (CSRF). Logins use the
/// same rule (login CSRF). An origin allowed for CORS is trusted like our own site.
pub fn refuse_cross_site(method: &Method, headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    if method.is_safe() {
        return Ok(());
    }
    let public_url = state.settings.public_url.as_str();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("origin").is_some_and(|origin| state.clients.origin_allowed(origin)) {
        return Ok(());
    }
    let refused = || ApiError::forbidden("cross-site requests cannot use or start a browser session");
    match header("sec-fetch-site").map(str::to_ascii_lowercase).as_deref() {
        Some("cross-site") => return Err(refused()),
        Some("same-origin" | "same-site" | "none") => return Ok(()),
        // Absent, or a value no browser sends: the Origin decides.
        _ => {}
    }
    match header("origin") {
        None => Ok(()),
        Some(origin) if same_site(origin, public_url) => Ok(()),
        Some(_) => Err(refused()),
    }
}

/// Same site, as browsers define it: the same scheme and the same registrable domain
/// (the whole Public Suffix List, as browsers use it, from the `psl` crate), so
/// `app.example.co.uk` is the site of `auth.example.co.uk` but `evil.co.uk` is not, and
/// neither is `eve.github.io` the site of `latch.github.io`. IP addresses and hosts
/// without a registrable domain (`localhost`) must match exactly.
fn same_site(origin: &str, public_url: &str) -> bool {
    let parse = |u: &str| {
        let url = url::Url::parse(u).ok()?;
        Some((url.scheme().to_owned(), url.host_str()?.to_ascii_lowercase()))
    };
    let (Some((their_scheme, theirs)), Some((our_scheme, ours))) = (parse(origin), parse(public_url)) else {
        return false;
    };
    if their_scheme != our_scheme {
        return false;
    }
    if theirs == ours {
        return true;
    }
    let site = |host: &str| {
        if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            return None;
        }
        psl::domain_str(host.trim_end_matches('.')).map(str::to_owned)
    };
    matches!((site(&theirs), site(&ours)), (Some(a), Some(b)) if a == b)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

async fn bearer<const A: bool>(state: &AppState, token: &str) -> Result<AuthUser<A>, ApiError> {
    match state.sessions.by_access_token(token).await {
        Ok((session, _)) if session.delegated => Err(ApiError::forbidden(
            "this token was issued to a third-party application: it may read /userinfo, not use the account",
        )),
        Ok((session, user)) => Ok(AuthUser { user, session: Some(session), via: Via::Bearer }),
        Err(SessionError::Ended) => Err(ApiError::invalid_token()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_form, same_site};

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Form {
        a: Option<String>,
        b: Option<String>,
    }

    #[test]
    fn forms_decode_as_browsers_encode_them() {
        let form: Form = parse_form(b"a=x+y%20z%2B&b=").unwrap();
        assert_eq!(form, Form { a: Some("x y z+".into()), b: Some(String::new()) });
        let form: Form = parse_form(b"&b&&unknown=1&a=%FF%e2%82%ac").unwrap();
        assert_eq!(form, Form { a: Some("\u{FFFD}€".into()), b: Some(String::new()) });
        assert_eq!(parse_form::<Form>(b"").unwrap(), Form { a: None, b: None });
        let twice = parse_form::<Form>(b"a=1&a=2").unwrap_err();
        assert!(format!("{twice:?}").contains("given more than once"), "{twice:?}");
    }

    #[test]
    fn subdomains_of_one_registrable_domain_are_one_site() {
        let ours = "https://auth.example.co.uk";
        for theirs in ["https://app.example.co.uk", "https://example.co.uk", "https://a.b.example.co.uk:8443"] {
            assert!(same_site(theirs, ours), "{theirs}");
        }
        for theirs in
            ["https://evil.co.uk", "https://co.uk", "https://example.co.uk.evil.com", "http://app.example.co.uk"]
        {
            assert!(!same_site(theirs, ours), "{theirs}");
        }
    }

    /// Cases a "last two labels" rule gets wrong: private suffixes where anyone can own
    /// a subdomain, suffixes of more than two labels, wildcard and exception rules.
    #[test]
    fn the_suffix_comes_from_the_public_suffix_list() {
        let cases = [
            ("https://eve.github.io", "https://latch.github.io", false),
            ("https://docs.latch.github.io", "https://latch.github.io", true),
            ("https://evil.uk.com", "https://auth.example.uk.com", false),
            ("https://app.example.uk.com", "https://auth.example.uk.com", true),
            ("https://a.example.kawasaki.jp", "https://b.example.kawasaki.jp", false),
            ("https://a.city.kawasaki.jp", "https://b.city.kawasaki.jp", true),
            ("https://a.xn--85x722f.xn--55qx5d.cn", "https://b.xn--85x722f.xn--55qx5d.cn", true),
            ("https://a.食狮.中国", "https://b.食狮.中国", true),
        ];
        for (theirs, ours, same) in cases {
            assert_eq!(same_site(theirs, ours), same, "{theirs} vs {ours}");
        }
    }

    #[test]
    fn addresses_and_hosts_without_a_registrable_domain_compare_whole() {
        let cases = [
            ("http://127.0.0.1:3000", "http://127.0.0.1:8080", true),
            ("http://10.0.0.1", "http://10.0.0.2", false),
            ("http://1.2.3.4", "http://5.2.3.4", false),
            ("http://[::1]:3000", "http://[::1]:8080", true),
            ("http://[::1]", "http://[::2]", false),
            ("http://localhost:3000", "http://localhost:8080", true),
            ("http://app.localhost", "http://localhost", false),
            ("https://github.io", "https://latch.github.io", false),
            ("null", "https://auth.example.com", false),
        ];
        for (theirs, ours, same) in cases {
            assert_eq!(same_site(theirs, ours), same, "{theirs} vs {ours}");
        }
    }
}
