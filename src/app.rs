//! Building and running the server: `App::build` binds the listeners (port 0 allowed),
//! opens the store and loads the keys; `run` serves until the shutdown future
//! completes, then finishes in-flight requests (see `server` for how connections are
//! bounded). `main` and the tests share it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::accounts::Accounts;
use crate::auth::admin::Admin;
use crate::auth::audit::Audit;
use crate::auth::cache::AuthCache;
use crate::auth::clients::Clients;
use crate::auth::emails::Emails;
use crate::auth::limits::RateLimiter;
use crate::auth::password::PasswordHasher;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::http::state::{AppState, Services};
use crate::server;
use crate::settings::{Links, Settings, Theme};
use crate::store;

/// Connections open at once on the metrics listener: scrapers, not the public.
const METRICS_CONNECTIONS: usize = 16;

/// A bound, ready-to-run server.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    metrics_addr: Option<SocketAddr>,
    limits: server::Limits,
    state: AppState,
    clock: Clock,
}

impl App {
    /// Binds the address, opens the database (applying migrations) and loads or
    /// creates the signing key.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// [`App::build`] with a clock of the caller's: tests move time forward with it.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_listen {
            Some(metrics) => Some(
                TcpListener::bind(metrics).await.with_context(|| format!("cannot listen on {metrics} for metrics"))?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        // Raises the soft file-descriptor limit as well, which a configured limit needs too.
        let capacity = server::default_max_connections();
        let max_connections = config.max_connections.unwrap_or(capacity);
        if max_connections > capacity {
            tracing::warn!(
                max_connections,
                capacity,
                "LATCH_MAX_CONNECTIONS exceeds what the file-descriptor limit allows; \
                 accepting may fail with `Too many open files`"
            );
        }
        let limits = server::Limits {
            max_connections,
            header_timeout: config.header_timeout,
            shutdown_timeout: config.shutdown_timeout,
        };
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let audience = config.token_audience.clone().unwrap_or_else(|| public_url.clone());
        let store = store::open(&config.database_url).await?;
        let tokens = TokenService::load(&*store, &config, &public_url, &audience, clock.clone())
            .await
            .context("cannot load signing keys")?;
        let hasher = PasswordHasher::new(config.hash_concurrency, config.hash_queue)?;
        let mailer = crate::mail::build(&config.mailer, &config.mail_from)?;
        if !config.ui && (config.password_reset_url.is_none() || config.email_verify_url.is_none()) {
            tracing::warn!(
                "LATCH_UI=off removes the pages that the default email links open; set LATCH_EMAIL_VERIFY_URL \
                 and LATCH_PASSWORD_RESET_URL to pages of your application"
            );
        }
        let links = Links {
            password_reset: config
                .password_reset_url
                .clone()
                .unwrap_or_else(|| format!("{public_url}/reset-password?token={{token}}")),
            email_verify: config
                .email_verify_url
                .clone()
                .unwrap_or_else(|| format!("{public_url}/verify-email?token={{token}}")),
        };
        let settings = Arc::new(Settings {
            public_url: public_url.clone(),
            access_token_ttl: config.access_token_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            session_idle_timeout: config.session_idle_timeout,
            require_verified_email: config.require_verified_email,
            trusted_proxies: config.trusted_proxies.clone(),
            header_timeout: config.header_timeout,
            request_timeout: config.request_timeout,
            metrics_apart: metrics_addr.is_some(),
            ui: config.ui,
            theme: Theme::new(
                &config.ui_title,
                config.ui_logo_url.as_deref(),
                config.ui_accent_color.as_deref(),
                &public_url,
            ),
            webauthn: crate::settings::webauthn(&public_url, config.webauthn_rp_id.as_deref(), &config.ui_title)?
                .map(Arc::new),
        });
        let metrics = crate::http::metrics::Metrics::new(hasher.abandoned());
        let limiter = RateLimiter::new(store.clone(), config.limits.clone(), clock.clone());
        let cache = Arc::new(AuthCache::new(store.subscribe(), store.fingerprint(), clock.clone()));
        let audit = Audit::new(store.clone(), clock.clone(), config.audit_retention);
        let sessions = Sessions::new(
            store.clone(),
            hasher.clone(),
            tokens.clone(),
            limiter.clone(),
            cache,
            clock.clone(),
            settings.clone(),
            audit,
        );
        let emails = Emails::new(store.clone(), mailer, clock.clone(), links, settings.theme.clone());
        let factors =
            crate::auth::mfa::Factors::new(sessions.clone(), emails.clone(), config.key_encryption_key.clone());
        let accounts = Accounts::new(sessions.clone(), emails, PasswordPolicy::new(config.password_min_length));
        let clients = Clients::load(&*store, &config.cors_origins, config.require_registered_clients).await?;
        let templates = crate::http::pages::Templates::new(&settings, config.ui_templates.as_deref())?;
        let cursor_key = store
            .instance_secret("cursor", &rand::random::<[u8; 32]>())
            .await
            .context("cannot read the installation's cursor key")?;
        let cursor_key: [u8; 32] =
            cursor_key.try_into().map_err(|_| anyhow::anyhow!("the stored cursor key is not 32 bytes"))?;
        let admin = Admin::new(sessions.clone(), accounts.clone(), clients.clone());
        let code_key = store
            .instance_secret(crate::auth::oidc::CODE_KEY, &rand::random::<[u8; 32]>())
            .await
            .context("cannot read the installation's code key")?;
        // With a key-encryption key, a copy of the database is not enough to forge codes.
        let code_key: [u8; 32] = match &config.key_encryption_key {
            Some(kek) => *kek.derive(crate::auth::oidc::CODE_KEY, &code_key),
            None => code_key.try_into().map_err(|_| anyhow::anyhow!("the stored code key is not 32 bytes"))?,
        };
        let oidc = crate::auth::oidc::Oidc::new(
            store.clone(),
            sessions.clone(),
            tokens.clone(),
            clients.clone(),
            settings.clone(),
            code_key,
        );
        let state = AppState::new(Services {
            oidc,
            sessions,
            factors,
            accounts,
            admin,
            clients,
            templates,
            cursor_key,
            store,
            tokens,
            settings,
            metrics,
        });
        Ok(Self { listener, addr, metrics_listener, metrics_addr, limits, state, clock })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics listener, when `/metrics` has one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Client connections served at once.
    pub fn max_connections(&self) -> usize {
        self.limits.max_connections
    }

    /// The public URL (token issuer).
    pub fn public_url(&self) -> &str {
        &self.state.settings.public_url
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at
    /// most the shutdown timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let janitor = tokio::spawn(sweep_expired(self.state.clone(), self.clock.clone()));
        let keys = tokio::spawn(self.state.tokens.clone().follow(self.state.store.clone()));
        let clients = tokio::spawn(self.state.clients.clone().follow(self.state.store.clone()));
        // One signal stops both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(());
        });
        let stopping = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::http::metrics_router(self.state.clone());
            let limits = server::Limits { max_connections: METRICS_CONNECTIONS, ..self.limits };
            tokio::spawn(server::serve(listener, router, limits, stopping(stopped.clone())))
        });
        let router = crate::http::router(self.state);
        server::serve(self.listener, router, self.limits, stopping(stopped)).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        signal.abort();
        janitor.abort();
        keys.abort();
        clients.abort();
        Ok(())
    }
}

/// Deletes ended sessions, expired one-time tokens, old limit counters and audit events
/// past their retention at start and every ten minutes, so that no table grows without
/// bound; correctness never depends on it, since every check compares expiry times itself.
async fn sweep_expired(state: AppState, clock: Clock) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = clock.now();
        let swept = [
            ("sessions", state.store.delete_expired_sessions(now, state.settings.idle_cutoff(now)).await),
            ("one-time tokens", state.store.delete_expired_one_time_tokens(now).await),
            ("limit counters", state.store.delete_expired_limits(now).await),
            ("audit events", state.sessions.audit().prune().await),
            ("authorization codes", state.store.delete_old_codes(now - crate::auth::oidc::CODE_KEPT).await),
            ("second-step challenges", state.store.delete_expired_challenges(now).await),
        ];
        for (what, result) in swept {
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired {what} deleted"),
                Err(e) => tracing::warn!(error = %e, "could not delete expired {what}"),
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
