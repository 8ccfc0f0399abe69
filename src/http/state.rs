//! What every handler can reach: the store, the password hasher, the token service,
//! the mailer and the settings that shape responses. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::auth::cache::AuthCache;
use crate::auth::limits::RateLimiter;
use crate::auth::password::PasswordHasher;
use crate::auth::tokens::TokenService;
use crate::domain::PasswordPolicy;
use crate::mail::Mailer;
use crate::store::Store;

/// Settings derived from the configuration once the public URL is known.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Issuer and base of links, without a trailing slash.
    pub public_url: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_idle_timeout: Duration,
    pub require_verified_email: bool,
    pub password_reset_url: String,
    pub email_verify_url: String,
    pub trusted_proxies: Vec<IpNet>,
    /// `LATCH_HEADER_TIMEOUT`, which also bounds draining a body left unread.
    pub header_timeout: Duration,
    /// `LATCH_REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `/metrics` has a listener of its own (`LATCH_METRICS_LISTEN`).
    pub metrics_apart: bool,
}

/// Name of the device cookie over plain HTTP: it proves the browser to an account it
/// logged in to before, so that others' failed logins cannot lock it out.
pub const DEVICE_COOKIE_NAME: &str = "latch_device";
/// Name of the device cookie when the public URL is https.
pub const SECURE_DEVICE_COOKIE_NAME: &str = "__Host-latch_device";

/// Name of the session cookie over plain HTTP.
pub const COOKIE_NAME: &str = "latch_session";
/// Name of the session cookie when the public URL is https: the `__Host-` prefix
/// makes browsers insist on `Secure`, `Path=/` and no `Domain`.
pub const SECURE_COOKIE_NAME: &str = "__Host-latch_session";

impl Settings {
    /// Sessions last seen before this instant have ended. Times are whole seconds (a
    /// use is recorded rounded down), so a session ends within the second after its
    /// idle timeout, never before it.
    pub fn idle_cutoff(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.session_idle_timeout
    }

    /// How often a session's `last_seen_at` may move: once a minute, or a quarter of
    /// the idle timeout when that is shorter, so that a session in use never idles out.
    pub fn touch_interval(&self) -> Duration {
        (self.session_idle_timeout / 4).min(Duration::from_secs(60))
    }

    /// Browser cookies are `Secure` (and `__Host-`) when the public URL is https. The
    /// configuration lower-cases the scheme; the comparison ignores case all the same,
    /// so that a URL set any other way cannot lose the cookie's protection.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies() { SECURE_COOKIE_NAME } else { COOKIE_NAME }
    }

    pub fn device_cookie_name(&self) -> &'static str {
        if self.secure_cookies() { SECURE_DEVICE_COOKIE_NAME } else { DEVICE_COOKIE_NAME }
    }

    /// A link from a `{token}` template.
    pub fn link(template: &str, token: &str) -> String {
        template.replace("{token}", token)
    }
}

/// Shared application state. Cloned for every request, hence one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub hasher: PasswordHasher,
    pub tokens: TokenService,
    pub mailer: Arc<dyn Mailer>,
    pub policy: PasswordPolicy,
    pub limiter: RateLimiter,
    pub cache: Arc<AuthCache>,
    pub settings: Arc<Settings>,
    pub metrics: crate::http::metrics::Metrics,
}
