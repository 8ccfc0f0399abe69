//! Building and running the server: `App::build` binds the listener (port 0 allowed),
//! opens the store and loads the keys; `run` serves until the shutdown future
//! completes, then finishes in-flight requests. `main` and the tests share it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::cache::AuthCache;
use crate::auth::limits::RateLimiter;
use crate::auth::password::PasswordHasher;
use crate::auth::tokens::TokenService;
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::http::state::{AppState, Services, Settings};
use crate::store;

/// A bound, ready-to-run server.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

impl App {
    /// Binds the address, opens the database (applying migrations) and loads or
    /// creates the signing key.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let audience = config.token_audience.clone().unwrap_or_else(|| public_url.clone());
        let store = store::open(&config.database_url).await?;
        let tokens =
            TokenService::load(&*store, &config, &public_url, &audience).await.context("cannot load signing keys")?;
        let hasher = PasswordHasher::new(config.hash_concurrency, config.hash_queue)?;
        let mailer = crate::mail::build(&config.mailer, &config.mail_from)?;
        let settings = Settings {
            password_reset_url: config
                .password_reset_url
                .clone()
                .unwrap_or_else(|| format!("{public_url}/reset-password?token={{token}}")),
            email_verify_url: config
                .email_verify_url
                .clone()
                .unwrap_or_else(|| format!("{public_url}/verify-email?token={{token}}")),
            public_url,
            access_token_ttl: config.access_token_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            session_idle_timeout: config.session_idle_timeout,
            require_verified_email: config.require_verified_email,
            trusted_proxies: config.trusted_proxies.clone(),
        };
        let metrics = crate::http::metrics::Metrics::new(hasher.abandoned());
        let state = AppState::new(Services {
            limiter: RateLimiter::new(store.clone(), config.limits.clone()),
            cache: Arc::new(AuthCache::new(store.subscribe(), store.fingerprint())),
            store,
            hasher,
            tokens,
            mailer,
            policy: PasswordPolicy::new(config.password_min_length),
            settings: Arc::new(settings),
            metrics,
        });
        Ok(Self { listener, addr, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public URL (token issuer).
    pub fn public_url(&self) -> &str {
        &self.state.settings.public_url
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let janitor = tokio::spawn(sweep_expired(self.state.clone()));
        let keys = tokio::spawn(self.state.tokens.clone().follow(self.state.store.clone()));
        let router = crate::http::router(self.state);
        let result = axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("server failed");
        janitor.abort();
        keys.abort();
        result
    }
}

/// Deletes ended sessions now and then; correctness never depends on it, since every
/// check compares expiry times itself.
async fn sweep_expired(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = store::now();
        match state.store.delete_expired_sessions(now, state.settings.idle_cutoff(now)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired sessions"),
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
