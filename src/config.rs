//! Configuration: command-line flags, `LATCH_*` environment variables, a TOML file and
//! defaults, in that order of precedence, turned into one validated [`Config`].
//!
//! Every key has one name; the environment variable is `LATCH_` + the name in upper
//! case, the TOML key is the name itself, and the flag (where there is one) is
//! `--name-with-dashes`. Errors name the key the way the user wrote it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use crate::auth::kek::KeyEncryptionKey;

/// A key in the configuration: its name and whether it has a flag.
struct Key {
    name: &'static str,
    help: &'static str,
}

/// Every configuration key Latch knows, in the order the docs list them.
const KEYS: &[Key] = &[
    Key { name: "listen", help: "address to bind (port 0 = any free port)" },
    Key { name: "data_dir", help: "directory for local state" },
    Key { name: "database_url", help: "sqlite://… or postgres://…" },
    Key { name: "public_url", help: "token issuer and base of links in emails" },
    Key { name: "token_audience", help: "aud of access tokens" },
    Key { name: "webauthn_rp_id", help: "passkeys' relying party id: the public URL's host or a parent domain" },
    Key { name: "mailer", help: "log, file:<dir>, smtp://… or smtps://…" },
    Key { name: "mail_from", help: "From address of emails" },
    Key { name: "access_token_ttl", help: "access token lifetime" },
    Key { name: "refresh_token_ttl", help: "refresh token / session lifetime" },
    Key { name: "session_idle_timeout", help: "a session unused this long ends" },
    Key { name: "audit_retention", help: "audit events are kept this long (90d)" },
    Key { name: "require_verified_email", help: "unverified accounts cannot log in" },
    Key { name: "password_reset_url", help: "link template of reset emails" },
    Key { name: "email_verify_url", help: "link template of verification emails" },
    Key { name: "password_min_length", help: "minimum password length (8–256)" },
    Key { name: "signing_algorithm", help: "ES256 (default), EdDSA or RS256" },
    Key { name: "key_rotation_delay", help: "a rotated key signs only this long after it is published (10m)" },
    Key { name: "key_encryption_key_file", help: "file with the key that encrypts private signing keys" },
    Key { name: "hash_concurrency", help: "password hashes run at once" },
    Key { name: "hash_queue", help: "password hashes allowed to wait" },
    Key { name: "rate_limit", help: "on or off" },
    Key { name: "rate_limit_login_account_ip", help: "failed logins per account and address (10/15m)" },
    Key { name: "rate_limit_login_account", help: "failed logins per account (100/15m)" },
    Key { name: "rate_limit_login_ip", help: "failed logins per address (100/15m)" },
    Key { name: "rate_limit_register_ip", help: "registrations per address (20/1h)" },
    Key { name: "rate_limit_reset_ip", help: "password-reset requests per address (10/1h)" },
    Key { name: "rate_limit_reset_email", help: "password-reset requests per email (3/1h)" },
    Key { name: "rate_limit_verify_email", help: "verification emails per account (3/1h)" },
    Key { name: "ui", help: "on (default) or off: the hosted pages (/login, /verify-email, /reset-password, …)" },
    Key { name: "ui_title", help: "the name shown on the hosted pages and emails (Latch)" },
    Key { name: "ui_logo_url", help: "logo on the pages and emails: an https URL or a path" },
    Key { name: "ui_accent_color", help: "accent colour of the pages and emails, #rrggbb" },
    Key { name: "ui_templates", help: "directory of templates that replace the built-in pages" },
    Key { name: "cors_origins", help: "comma-separated origins whose browsers may call the API" },
    Key { name: "require_registered_clients", help: "refuse client_ids that are not registered" },
    Key { name: "trusted_proxies", help: "peers whose X-Forwarded-For is believed" },
    Key { name: "header_timeout", help: "request headers must arrive within it; idle connections close after it" },
    Key { name: "request_timeout", help: "a request is answered within it" },
    Key {
        name: "max_connections",
        help: "connections open at once (default: the file-descriptor limit less a reserve)",
    },
    Key { name: "shutdown_timeout", help: "after SIGTERM the process exits within it" },
    Key { name: "metrics_listen", help: "serve /metrics on this address only" },
    Key { name: "log", help: "log filter" },
    Key { name: "log_format", help: "pretty or json" },
];

/// Where a raw value came from, so that an error can name the key as the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Flag,
    Env,
    File,
}

/// A configuration error, naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Raw values gathered from flags, the environment and a file, before validation.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    flags: BTreeMap<&'static str, String>,
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    file_name: Option<PathBuf>,
}

impl RawConfig {
    /// Gathers values from `flags` (name → value), the process environment, and the
    /// TOML file named by `config_file` (or `LATCH_CONFIG`).
    pub fn gather(flags: BTreeMap<&'static str, String>, config_file: Option<PathBuf>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")).collect();
        Self::from_parts(flags, env, config_file)
    }

    /// Like [`RawConfig::gather`] with an explicit environment (used by tests).
    pub fn from_parts(
        flags: BTreeMap<&'static str, String>,
        env: BTreeMap<String, String>,
        config_file: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let file_name = config_file.or_else(|| env.get("LATCH_CONFIG").map(PathBuf::from));
        let file = match &file_name {
            Some(path) => read_toml(path)?,
            None => BTreeMap::new(),
        };
        Ok(Self { flags, env, file, file_name })
    }

    fn get(&self, name: &str) -> Option<(&str, Source)> {
        if let Some(v) = self.flags.get(name) {
            return Some((v, Source::Flag));
        }
        if let Some(v) = self.env.get(&env_name(name)) {
            return Some((v, Source::Env));
        }
        self.file.get(name).map(|v| (v.as_str(), Source::File))
    }

    fn key_label(&self, name: &str, source: Source) -> String {
        match source {
            Source::Flag => format!("--{}", name.replace('_', "-")),
            Source::Env => env_name(name),
            Source::File => {
                let file = self.file_name.as_deref().unwrap_or(Path::new("config file"));
                format!("{name} (in {})", file.display())
            }
        }
    }

    /// Parses the value of `name` with `parse`, or returns `None` when it is unset.
    fn parse<T>(&self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some((value, source)) => {
                parse(value.trim()).map(Some).map_err(|message| ConfigError::new(self.key_label(name, source), message))
            }
        }
    }

    /// Validates everything into a [`Config`].
    pub fn build(&self) -> Result<Config, ConfigError> {
        for name in self.env.keys() {
            let known = name == "LATCH_CONFIG" || KEYS.iter().any(|k| env_name(k.name) == *name);
            if !known {
                tracing::warn!(variable = %name, "unknown LATCH_ environment variable ignored");
            }
        }
        let listen = self.parse("listen", parse_address)?.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = self
            .parse("data_dir", |v| non_empty(v).map(PathBuf::from))?
            .unwrap_or_else(|| PathBuf::from("./latch-data"));
        let database_url = match self.parse("database_url", parse_database_url)? {
            Some(url) => url,
            None => DatabaseUrl::Sqlite(data_dir.join("latch.db")),
        };
        let public_url = self.parse("public_url", parse_public_url)?;
        let token_audience = self.parse("token_audience", |v| non_empty(v).map(str::to_owned))?;
        let webauthn_rp_id =
            self.parse("webauthn_rp_id", |v| non_empty(v).map(|v| v.trim_end_matches('.').to_ascii_lowercase()))?;
        let mailer = self.parse("mailer", parse_mailer)?.unwrap_or(MailerConfig::Log);
        let mail_from = self
            .parse("mail_from", |v| {
                v.parse::<lettre::message::Mailbox>()
                    .map(|_| v.to_owned())
                    .map_err(|e| format!("`{v}` is not a mailbox: {e}"))
            })?
            .unwrap_or_else(|| "Latch <latch@localhost>".to_owned());
        let access_token_ttl = self.parse("access_token_ttl", parse_duration)?.unwrap_or(Duration::from_secs(15 * 60));
        let refresh_token_ttl =
            self.parse("refresh_token_ttl", parse_duration)?.unwrap_or(Duration::from_secs(30 * 86400));
        let session_idle_timeout =
            self.parse("session_idle_timeout", parse_duration)?.unwrap_or(Duration::from_secs(7 * 86400));
        let audit_retention =
            self.parse("audit_retention", parse_retention)?.unwrap_or(Duration::from_secs(90 * 86400));
        let require_verified_email = self.parse("require_verified_email", parse_bool)?.unwrap_or(false);
        let password_reset_url = self.parse("password_reset_url", parse_link_template)?;
        let email_verify_url = self.parse("email_verify_url", parse_link_template)?;
        let password_min_length = self
            .parse("password_min_length", |v| match v.parse::<usize>() {
                Ok(n) if (8..=256).contains(&n) => Ok(n),
                _ => Err(format!("`{v}` must be a whole number from 8 to 256")),
            })?
            .unwrap_or(8);
        let signing_algorithm = self
            .parse("signing_algorithm", |v| match v.to_ascii_uppercase().as_str() {
                "ES256" => Ok(SigningAlgorithm::Es256),
                "EDDSA" | "ED25519" => Ok(SigningAlgorithm::EdDsa),
                "RS256" => Ok(SigningAlgorithm::Rs256),
                _ => Err(format!("`{v}` must be ES256, EdDSA or RS256")),
            })?
            .unwrap_or(SigningAlgorithm::Es256);
        let key_rotation_delay =
            self.parse("key_rotation_delay", parse_duration_or_zero)?.unwrap_or(Duration::from_secs(10 * 60));
        let key_encryption_key =
            self.parse("key_encryption_key_file", |v| KeyEncryptionKey::from_file(Path::new(non_empty(v)?)))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let hash_concurrency = self.parse("hash_concurrency", |v| parse_count(v, 1, 1024))?.unwrap_or(cores);
        let hash_queue = self.parse("hash_queue", |v| parse_count(v, 0, 1_000_000))?.unwrap_or(128 * hash_concurrency);
        let rate_limit = self.parse("rate_limit", parse_bool)?.unwrap_or(true);
        let limit = |name: &str, max: u32, secs: u64| -> Result<Limit, ConfigError> {
            Ok(self.parse(name, parse_limit)?.unwrap_or(Limit { max, window: Duration::from_secs(secs) }))
        };
        let limits = Limits {
            enabled: rate_limit,
            login_account_ip: limit("rate_limit_login_account_ip", 10, 15 * 60)?,
            login_account: limit("rate_limit_login_account", 100, 15 * 60)?,
            login_ip: limit("rate_limit_login_ip", 100, 15 * 60)?,
            register_ip: limit("rate_limit_register_ip", 20, 3600)?,
            reset_ip: limit("rate_limit_reset_ip", 10, 3600)?,
            reset_email: limit("rate_limit_reset_email", 3, 3600)?,
            verify_email: limit("rate_limit_verify_email", 3, 3600)?,
        };
        let trusted_proxies = self.parse("trusted_proxies", parse_proxies)?.unwrap_or_default();
        let cors_origins = self
            .parse("cors_origins", |v| {
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_origin).collect::<Result<Vec<_>, _>>()
            })?
            .unwrap_or_default();
        let require_registered_clients = self.parse("require_registered_clients", parse_bool)?.unwrap_or(false);
        let ui = self.parse("ui", parse_bool)?.unwrap_or(true);
        let ui_title = self
            .parse("ui_title", |v| {
                let v = v.trim();
                if v.is_empty() || v.chars().count() > 100 || v.chars().any(char::is_control) {
                    return Err(format!("`{v}` must be 1 to 100 characters without control characters"));
                }
                Ok(v.to_owned())
            })?
            .unwrap_or_else(|| "Latch".to_owned());
        let ui_logo_url = self.parse("ui_logo_url", parse_logo_url)?;
        let ui_accent_color = self.parse("ui_accent_color", parse_color)?;
        let ui_templates = self.parse("ui_templates", |v| Ok::<_, String>(PathBuf::from(v)))?;
        let header_timeout = self.parse("header_timeout", parse_duration)?.unwrap_or(Duration::from_secs(10));
        let request_timeout = self.parse("request_timeout", parse_duration)?.unwrap_or(Duration::from_secs(30));
        let max_connections = self.parse("max_connections", |v| parse_count(v, 1, 10_000_000))?;
        let shutdown_timeout = self.parse("shutdown_timeout", parse_duration)?.unwrap_or(Duration::from_secs(30));
        let metrics_listen = self.parse("metrics_listen", parse_address)?;
        let log = self.parse("log", |v| non_empty(v).map(str::to_owned))?.unwrap_or_else(|| "info".to_owned());
        let log_format = self
            .parse("log_format", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("`{v}` must be pretty or json")),
            })?
            .unwrap_or(LogFormat::Pretty);
        if audit_retention < Duration::from_secs(1) {
            let (_, source) = self.get("audit_retention").unwrap_or(("", Source::Env));
            return Err(ConfigError::new(self.key_label("audit_retention", source), "must be at least 1s"));
        }
        if session_idle_timeout < Duration::from_secs(1) {
            let (_, source) = self.get("session_idle_timeout").unwrap_or(("", Source::Env));
            return Err(ConfigError::new(self.key_label("session_idle_timeout", source), "must be at least 1s"));
        }
        Ok(Config {
            listen,
            data_dir,
            database_url,
            public_url,
            token_audience,
            webauthn_rp_id,
            mailer,
            mail_from,
            access_token_ttl,
            refresh_token_ttl,
            session_idle_timeout,
            audit_retention,
            require_verified_email,
            password_reset_url,
            email_verify_url,
            password_min_length,
            signing_algorithm,
            key_rotation_delay,
            key_encryption_key,
            hash_concurrency,
            hash_queue,
            limits,
            trusted_proxies,
            cors_origins,
            require_registered_clients,
            ui,
            ui_title,
            ui_logo_url,
            ui_accent_color,
            ui_templates,
            header_timeout,
            request_timeout,
            max_connections,
            shutdown_timeout,
            metrics_listen,
            log,
            log_format,
        })
    }
}

fn env_name(name: &str) -> String {
    format!("LATCH_{}", name.to_ascii_uppercase())
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&label, format!("cannot read: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e| ConfigError::new(&label, format!("not valid TOML: {e}")))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.iter().any(|k| k.name == key) {
            return Err(ConfigError::new(format!("{key} (in {label})"), "unknown key"));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(ConfigError::new(format!("{key} (in {label})"), format!("unexpected value {other}"))),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// One line per key, for `--help` and the docs.
pub fn keys_help() -> String {
    KEYS.iter().map(|k| format!("  {:<28} {}\n", env_name(k.name), k.help)).collect()
}

fn non_empty(v: &str) -> Result<&str, String> {
    if v.is_empty() { Err("must not be empty".to_owned()) } else { Ok(v) }
}

fn parse_count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` must be a whole number from {min} to {max}")),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("`{v}` must be true/false (or on/off)")),
    }
}

/// A retention: a duration with its unit (`90d`), since a bare number would be seconds
/// and `90` meant as days would empty the audit log.
fn parse_retention(v: &str) -> Result<Duration, String> {
    if v.trim().parse::<f64>().is_ok() {
        return Err(format!("`{v}` needs a unit, such as 90d"));
    }
    parse_duration(v)
}

/// Parses `15m`, `30d`, `1h 30m` (and plain seconds).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|_| format!("`{v}` is not a duration like 15m, 12h or 30d"))?,
    };
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    if d > Duration::from_secs(10 * 365 * 86400) {
        return Err("must be at most ten years".to_owned());
    }
    Ok(d)
}

fn parse_address(v: &str) -> Result<SocketAddr, String> {
    v.parse::<SocketAddr>().map_err(|_| format!("`{v}` is not an address like 127.0.0.1:8080"))
}

/// Like [`parse_duration`], and zero allowed.
fn parse_duration_or_zero(v: &str) -> Result<Duration, String> {
    let zero = v.parse::<u64>().ok() == Some(0) || humantime::parse_duration(v).is_ok_and(|d| d.is_zero());
    if zero { Ok(Duration::ZERO) } else { parse_duration(v) }
}

fn parse_database_url(v: &str) -> Result<DatabaseUrl, String> {
    if let Some(path) = v.strip_prefix("sqlite://").or_else(|| v.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        non_empty(path)?;
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    } else if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        url::Url::parse(v).map_err(|e| format!("not a valid URL: {e}"))?;
        Ok(DatabaseUrl::Postgres(SecretString::from(v.to_owned())))
    } else {
        Err("must start with sqlite:// or postgres://".to_owned())
    }
}

/// The public URL in its normal form: scheme and host in lower case (the URL parser
/// does that), so that `HTTPS://Auth.Example.COM` gets secure cookies and the same
/// issuer as `https://auth.example.com`; no trailing slash.
fn parse_public_url(v: &str) -> Result<String, String> {
    let url = url::Url::parse(v).map_err(|e| format!("`{v}` is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err("must be a base URL with a host and no query".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse_link_template(v: &str) -> Result<String, String> {
    if !v.contains("{token}") {
        return Err("must contain {token}".to_owned());
    }
    let sample = v.replace("{token}", "x");
    url::Url::parse(&sample).map_err(|e| format!("not a URL: {e}"))?;
    Ok(v.to_owned())
}

fn parse_mailer(v: &str) -> Result<MailerConfig, String> {
    if v == "log" {
        Ok(MailerConfig::Log)
    } else if let Some(dir) = v.strip_prefix("file:") {
        non_empty(dir)?;
        Ok(MailerConfig::File(PathBuf::from(dir)))
    } else if v.starts_with("smtp://") || v.starts_with("smtps://") {
        // The mailer parses the URL again at start; one parser keeps both in agreement.
        crate::mail::smtp::SmtpUrl::parse(v)?;
        Ok(MailerConfig::Smtp(SecretString::from(v.to_owned())))
    } else {
        Err("must be log, file:<dir>, smtp://… or smtps://…".to_owned())
    }
}

fn parse_limit(v: &str) -> Result<Limit, String> {
    let bad = || format!("`{v}` is not a limit like 10/15m (count per duration)");
    let (max, window) = v.split_once('/').ok_or_else(bad)?;
    let max = max.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let window = parse_duration(window.trim()).map_err(|_| bad())?;
    Ok(Limit { max, window })
}

fn parse_proxies(v: &str) -> Result<Vec<IpNet>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an address or CIDR range"))
        })
        .collect()
}

/// A web origin, `scheme://host[:port]` (http or https, nothing after the authority),
/// in its serialized form: lowercase host, default port dropped.
pub fn parse_origin(v: &str) -> Result<String, String> {
    let bad = || format!("`{v}` is not an origin like https://app.example.com (scheme, host and port only)");
    let url = url::Url::parse(v).map_err(|_| bad())?;
    let bare = url.path() == "/" && !v.ends_with('/') && url.query().is_none() && url.fragment().is_none();
    let plain_host = url.host_str().is_some_and(|h| !h.contains('*'));
    let no_credentials = url.username().is_empty() && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !plain_host || !bare || !no_credentials {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// A logo address: an absolute http(s) URL (emails need one) or a path of this server.
fn parse_logo_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    let bad = || format!("`{v}` must be an http(s) URL or a path starting with /");
    if v.len() > 2048 || v.chars().any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '\\') {
        return Err(bad());
    }
    if v.starts_with('/') && !v.starts_with("//") {
        return Ok(v.to_owned());
    }
    let url = url::Url::parse(v).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(url.to_string())
}

/// A colour `#rgb` or `#rrggbb`, returned as lowercase `#rrggbb`.
fn parse_color(v: &str) -> Result<String, String> {
    let hex = v.trim().strip_prefix('#').filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    match hex {
        Some(h) if h.len() == 6 => Ok(format!("#{}", h.to_ascii_lowercase())),
        Some(h) if h.len() == 3 => Ok(h.chars().fold(String::from("#"), |mut s, c| {
            s.push(c.to_ascii_lowercase());
            s.push(c.to_ascii_lowercase());
            s
        })),
        _ => Err(format!("`{v}` must be a colour like #1f5fbf")),
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may hold a password).
    Postgres(SecretString),
}

/// How emails leave the server.
#[derive(Debug, Clone)]
pub enum MailerConfig {
    /// Written to the log.
    Log,
    /// One `.eml` file per message in this directory.
    File(PathBuf),
    /// An SMTP relay URL (may hold credentials).
    Smtp(SecretString),
}

/// Algorithm of newly signed access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256, the default: verified by every mainstream JOSE
    /// library with its default settings, unlike EdDSA.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
}

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// The abuse limits of the contract; `enabled = false` turns them all off.
#[derive(Debug, Clone)]
pub struct Limits {
    pub enabled: bool,
    pub login_account_ip: Limit,
    pub login_account: Limit,
    pub login_ip: Limit,
    pub register_ip: Limit,
    pub reset_ip: Limit,
    pub reset_email: Limit,
    pub verify_email: Limit,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// `None` means `http://<bound address>`, known only after binding.
    pub public_url: Option<String>,
    /// `None` means the public URL.
    pub token_audience: Option<String>,
    /// `None` means the public URL's host.
    pub webauthn_rp_id: Option<String>,
    pub mailer: MailerConfig,
    pub mail_from: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_idle_timeout: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    pub require_verified_email: bool,
    pub password_reset_url: Option<String>,
    pub email_verify_url: Option<String>,
    pub password_min_length: usize,
    pub signing_algorithm: SigningAlgorithm,
    /// How long `latch keys rotate` (and a change of algorithm) publishes a new key
    /// before it signs, so that verifiers' JWKS caches know it first.
    pub key_rotation_delay: Duration,
    /// From `key_encryption_key_file`: encrypts private signing keys at rest.
    pub key_encryption_key: Option<KeyEncryptionKey>,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    pub limits: Limits,
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed for CORS besides the registered clients' (serialized origins).
    pub cors_origins: Vec<String>,
    /// Refuse `client_id`s that are not registered.
    pub require_registered_clients: bool,
    /// Serve the hosted pages.
    pub ui: bool,
    /// The name on the hosted pages and emails.
    pub ui_title: String,
    /// The logo on the pages and emails: an absolute http(s) URL or a path of this server.
    pub ui_logo_url: Option<String>,
    /// The accent colour, `#rrggbb`.
    pub ui_accent_color: Option<String>,
    /// A directory whose templates replace the built-in ones of the same name.
    pub ui_templates: Option<PathBuf>,
    /// Request headers must arrive within it; an idle kept-alive connection is closed
    /// after it.
    pub header_timeout: Duration,
    /// A request is answered within it (503 when the handler takes longer).
    pub request_timeout: Duration,
    /// `None` means what the file-descriptor limit allows, less a reserve.
    pub max_connections: Option<usize>,
    /// After the shutdown signal the server stops within it, whatever clients do.
    pub shutdown_timeout: Duration,
    /// Where `/metrics` is served instead of the public listener.
    pub metrics_listen: Option<SocketAddr>,
    pub log: String,
    pub log_format: LogFormat,
}

impl Config {
    /// The defaults, as `latch serve` with no configuration would use them.
    pub fn defaults() -> Result<Self, ConfigError> {
        RawConfig::default().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_needs_a_unit() {
        assert_eq!(Config::defaults().unwrap().audit_retention, Duration::from_secs(90 * 86400), "SPEC §10: 90d");
        assert_eq!(parse_retention("90d").unwrap(), Duration::from_secs(90 * 86400));
        assert_eq!(parse_retention("12h").unwrap(), Duration::from_secs(12 * 3600));
        for bad in ["90", "90.5", " 7 ", "forever"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branding_values_are_checked() {
        assert_eq!(parse_color("#1F5FBF").unwrap(), "#1f5fbf");
        assert_eq!(parse_color("#fc0").unwrap(), "#ffcc00");
        for bad in ["1f5fbf", "#12345", "red", "#ggg", "#1f5fbf;}body{"] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_logo_url("/static/logo.png").unwrap(), "/static/logo.png");
        assert_eq!(parse_logo_url("https://cdn.example/l.svg").unwrap(), "https://cdn.example/l.svg");
        for bad in ["//evil.example/x.png", "javascript:alert(1)", "data:image/png;base64,AA", "logo.png", "/a\"b"] {
            assert!(parse_logo_url(bad).is_err(), "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\naccess_token_ttl = \"1m\"\npassword_min_length = 12\n")
            .unwrap();
        let flags = BTreeMap::from([("listen", "127.0.0.1:3".to_owned())]);
        let raw = RawConfig::from_parts(
            flags,
            env(&[("LATCH_LISTEN", "127.0.0.1:2"), ("LATCH_ACCESS_TOKEN_TTL", "2m")]),
            Some(file),
        )
        .unwrap();
        let config = raw.build().unwrap();
        assert_eq!(config.listen.port(), 3);
        assert_eq!(config.access_token_ttl, Duration::from_secs(120));
        assert_eq!(config.password_min_length, 12);
    }

    #[test]
    fn errors_name_the_key() {
        let raw = RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_PASSWORD_MIN_LENGTH", "7")]), None).unwrap();
        let err = raw.build().unwrap_err().to_string();
        assert!(err.contains("LATCH_PASSWORD_MIN_LENGTH"), "{err}");
        let raw = RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_ACCESS_TOKEN_TTL", "soon")]), None).unwrap();
        assert!(raw.build().unwrap_err().to_string().contains("LATCH_ACCESS_TOKEN_TTL"));
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let raw =
            RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_PUBLIC_URL", "https://auth.example.com/")]), None)
                .unwrap();
        assert_eq!(raw.build().unwrap().public_url.as_deref(), Some("https://auth.example.com"));
    }

    #[test]
    fn public_url_scheme_and_host_are_lower_cased() {
        let raw = RawConfig::from_parts(
            BTreeMap::new(),
            env(&[("LATCH_PUBLIC_URL", "HTTPS://Auth.Example.COM/Base/")]),
            None,
        )
        .unwrap();
        assert_eq!(raw.build().unwrap().public_url.as_deref(), Some("https://auth.example.com/Base"));
    }

    #[test]
    fn connection_settings() {
        let config = Config::defaults().unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, None);
        assert_eq!(config.metrics_listen, None);
        let raw = RawConfig::from_parts(
            BTreeMap::new(),
            env(&[
                ("LATCH_HEADER_TIMEOUT", "2s"),
                ("LATCH_MAX_CONNECTIONS", "100"),
                ("LATCH_METRICS_LISTEN", "127.0.0.1:9100"),
            ]),
            None,
        )
        .unwrap();
        let config = raw.build().unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(2));
        assert_eq!(config.max_connections, Some(100));
        assert_eq!(config.metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
        for (key, value) in [("LATCH_MAX_CONNECTIONS", "0"), ("LATCH_METRICS_LISTEN", "localhost")] {
            let raw = RawConfig::from_parts(BTreeMap::new(), env(&[(key, value)]), None).unwrap();
            assert!(raw.build().unwrap_err().to_string().contains(key), "{key}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = RawConfig::from_parts(BTreeMap::new(), BTreeMap::new(), Some(file)).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn limits() {
        let raw = RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_RATE_LIMIT_LOGIN_IP", "5/1m")]), None).unwrap();
        let config = raw.build().unwrap();
        assert_eq!(config.limits.login_ip, Limit { max: 5, window: Duration::from_secs(60) });
        assert_eq!(config.limits.login_account_ip.max, 10);
        let raw = RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_RATE_LIMIT_RESET_IP", "lots")]), None).unwrap();
        assert!(raw.build().unwrap_err().to_string().contains("LATCH_RATE_LIMIT_RESET_IP"));
        let raw = RawConfig::from_parts(BTreeMap::new(), env(&[("LATCH_RATE_LIMIT", "off")]), None).unwrap();
        assert!(!raw.build().unwrap().limits.enabled);
    }

    #[test]
    fn key_settings() {
        let config = Config::defaults().unwrap();
        assert_eq!(config.key_rotation_delay, Duration::from_secs(600));
        assert!(config.key_encryption_key.is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kek");
        std::fs::write(&file, format!("{}\n", "0f".repeat(32))).unwrap();
        let raw = RawConfig::from_parts(
            BTreeMap::new(),
            env(&[("LATCH_KEY_ROTATION_DELAY", "0"), ("LATCH_KEY_ENCRYPTION_KEY_FILE", file.to_str().unwrap())]),
            None,
        )
        .unwrap();
        let config = raw.build().unwrap();
        assert_eq!(config.key_rotation_delay, Duration::ZERO);
        assert!(config.key_encryption_key.is_some());
        std::fs::write(&file, "too short").unwrap();
        let err = raw.build().unwrap_err().to_string();
        assert!(err.contains("LATCH_KEY_ENCRYPTION_KEY_FILE") && !err.contains("too short"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
    }
}
