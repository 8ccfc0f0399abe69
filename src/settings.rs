//! Settings derived from the configuration once the public URL is known: what the
//! services and handlers read at request time.

use std::time::Duration;

use ipnet::IpNet;

use crate::domain::Timestamp;

/// Settings derived from the configuration once the public URL is known.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Issuer and base of links, without a trailing slash.
    pub public_url: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_idle_timeout: Duration,
    pub require_verified_email: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// `LATCH_HEADER_TIMEOUT`, which also bounds draining a body left unread.
    pub header_timeout: Duration,
    /// `LATCH_REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `/metrics` has a listener of its own (`LATCH_METRICS_LISTEN`).
    pub metrics_apart: bool,
    /// `LATCH_UI`: the hosted pages are served.
    pub ui: bool,
    /// `LATCH_UI_TITLE`.
    pub ui_title: String,
}

/// The `{token}` templates of the links that emails carry.
#[derive(Debug, Clone)]
pub struct Links {
    pub password_reset: String,
    pub email_verify: String,
}

impl Links {
    /// A link from a `{token}` template.
    pub fn fill(template: &str, token: &str) -> String {
        template.replace("{token}", token)
    }
}

impl Settings {
    /// Sessions last seen before this instant have ended. Times are whole seconds (a
    /// use is recorded rounded down), so a session ends within the second after its
    /// idle timeout, never before it.
    pub fn idle_cutoff(&self, now: Timestamp) -> Timestamp {
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
}
