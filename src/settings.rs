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
    /// How the pages and emails look.
    pub theme: Theme,
    /// The passkeys' relying party; `None` when the public URL's host is an IP address,
    /// which no passkey can name.
    pub webauthn: Option<std::sync::Arc<webauthn_rs::Webauthn>>,
}

/// The passkeys' relying party for `public_url`: its host, or `rp_id` when that is the
/// host or a parent domain of it. `None` for an IP address (or a URL without a host).
pub fn webauthn(public_url: &str, rp_id: Option<&str>, name: &str) -> anyhow::Result<Option<webauthn_rs::Webauthn>> {
    let url = url::Url::parse(public_url)?;
    let host = match url.host() {
        Some(url::Host::Domain(host)) => host.to_ascii_lowercase(),
        _ => return Ok(None),
    };
    let rp_id = rp_id.unwrap_or(&host);
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        anyhow::bail!("LATCH_WEBAUTHN_RP_ID {rp_id} is neither the public URL's host {host} nor a parent domain of it");
    }
    let webauthn = webauthn_rs::WebauthnBuilder::new(rp_id, &url)
        .and_then(|b| b.rp_name(name).build())
        .map_err(|e| anyhow::anyhow!("passkeys cannot use {rp_id} for {public_url}: {e}"))?;
    Ok(Some(webauthn))
}

/// The branding of the hosted pages and the HTML part of emails: `LATCH_UI_TITLE`,
/// `LATCH_UI_LOGO_URL`, `LATCH_UI_ACCENT_COLOR`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Theme {
    pub title: String,
    /// An absolute URL (a path of this server made absolute).
    pub logo_url: Option<String>,
    /// `#rrggbb`: buttons and focus rings.
    pub accent: String,
    /// The text on accent buttons: white or near-black, whichever contrasts more.
    pub on_accent: String,
    /// Links: the accent when it reads well on white (4.5:1), else the text colour.
    pub link: String,
    /// Focus rings and borders: the accent when it stands out on white (3:1, WCAG's
    /// rule for non-text), else the text colour.
    pub focus: String,
}

/// The default accent, a blue with 6.1:1 against white.
pub const DEFAULT_ACCENT: &str = "#1f5fbf";
const TEXT: &str = "#1b1f24";

impl Theme {
    pub fn new(title: &str, logo_url: Option<&str>, accent: Option<&str>, public_url: &str) -> Self {
        let accent = accent.unwrap_or(DEFAULT_ACCENT).to_owned();
        let on_accent = if contrast(&accent, "#ffffff") >= contrast(&accent, TEXT) { "#ffffff" } else { TEXT };
        let link = if contrast(&accent, "#ffffff") >= 4.5 { accent.clone() } else { TEXT.to_owned() };
        let focus = if contrast(&accent, "#ffffff") >= 3.0 { accent.clone() } else { TEXT.to_owned() };
        let logo_url = logo_url.map(|l| if l.starts_with('/') { format!("{public_url}{l}") } else { l.to_owned() });
        Self { title: title.to_owned(), logo_url, accent, on_accent: on_accent.to_owned(), link, focus }
    }
}

/// WCAG 2 contrast ratio of two `#rrggbb` colours.
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

fn luminance(color: &str) -> f64 {
    let channel = |i: usize| {
        let v = color.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
        let c = f64::from(v) / 255.0;
        if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accent_keeps_its_text_readable() {
        assert!((contrast("#ffffff", "#000000") - 21.0).abs() < 1e-9);
        let default = Theme::new("Latch", None, None, "http://x");
        assert_eq!((default.on_accent.as_str(), default.link.as_str()), ("#ffffff", DEFAULT_ACCENT));
        let light = Theme::new("Latch", Some("/logo.png"), Some("#ffcc00"), "https://id.example");
        assert_eq!((light.on_accent.as_str(), light.link.as_str(), light.focus.as_str()), (TEXT, TEXT, TEXT));
        assert_eq!(light.logo_url.as_deref(), Some("https://id.example/logo.png"));
    }

    #[test]
    fn the_relying_party_is_the_host_or_a_parent_domain_and_none_for_an_address() {
        assert!(webauthn("https://auth.example.com", None, "Latch").is_ok_and(|w| w.is_some()));
        assert!(webauthn("https://auth.example.com", Some("example.com"), "Latch").is_ok_and(|w| w.is_some()));
        assert!(webauthn("https://auth.example.com", Some("other.example"), "Latch").is_err());
        assert!(webauthn("https://auth.example.com", Some("ample.com"), "Latch").is_err());
        assert!(webauthn("http://127.0.0.1:8080", None, "Latch").is_ok_and(|w| w.is_none()));
        assert!(webauthn("http://[::1]:8080", None, "Latch").is_ok_and(|w| w.is_none()));
    }
}
