//! The PostgreSQL backend, for several instances sharing one database. It runs the
//! same SQL as SQLite (see the `impl_*_store!` macros) and adds what sharing needs:
//! changes are announced with `NOTIFY latch_changes` and every instance `LISTEN`s, so
//! that a logout or a key rotation on one is honoured by all at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

use super::{CHANGE_CHANNEL, Change, Store, StoreError};

/// The `NOTIFY` channel of change announcements.
const CHANNEL: &str = "latch_changes";

/// Latch's state in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
    _listener: Arc<AbortOnDrop>,
}

/// Stops the listener task when the last handle on the store goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStore {
    /// Connects, applies migrations and starts listening for other instances' changes.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // sqlx keeps retrying an unreachable server until this passes; past it the
            // request gets a 503 before common client timeouts (10 s and more).
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("cannot connect to PostgreSQL")?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.context("cannot apply migrations")?;
        let changes = broadcast::channel(CHANGE_CHANNEL).0;
        let mut listener = PgListener::connect_with(&pool).await.context("cannot LISTEN for changes")?;
        listener.listen(CHANNEL).await.context("cannot LISTEN for changes")?;
        let task = tokio::spawn(forward(listener, changes.clone()));
        Ok(Self { pool, changes, _listener: Arc::new(AbortOnDrop(task)) })
    }

    fn read(&self) -> &PgPool {
        &self.pool
    }

    fn write(&self) -> &PgPool {
        &self.pool
    }

    /// What makes a comparison of text byte-wise, so that a prefix is one index range
    /// (SQLite compares bytes already; PostgreSQL follows the database's collation).
    pub(crate) const BYTE_ORDER: &str = r#" COLLATE "C""#;

    /// Locks the row a transaction reads before it writes (SQLite has one writer).
    pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";

    /// Locks the session of a refresh token before the token itself, in the order every
    /// other change takes them (a session, then by cascade its tokens), so that a refresh
    /// racing the end of its session (an admin's disable, a password reset) cannot
    /// deadlock. SQLite has one writer and needs none.
    pub(crate) const LOCK_SESSION_OF_TOKEN: Option<&str> = Some(
        "SELECT s.id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1
         FOR NO KEY UPDATE OF s",
    );

    /// Starts a transaction that reads before it writes: on SQLite it takes the write
    /// lock at once, so that another process's write in between cannot refuse the
    /// upgrade (SQLITE_BUSY).
    pub(crate) const BEGIN_WRITE: &str = "BEGIN";

    /// The function that finds text in text (1-based; 0 when absent).
    pub(crate) const POSITION: &str = "strpos";

    /// Announces a committed change to every instance, this one included.
    async fn changed(&self, change: Change) {
        let _ = self.changes.send(change);
        let sent =
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(change.encode()).execute(&self.pool).await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not announce a change to other instances");
        }
    }
}

/// Forwards notifications to the in-process channel. While the connection is down
/// (sqlx reconnects by itself) notifications are lost, so a reconnect announces `All`.
async fn forward(mut listener: PgListener, changes: broadcast::Sender<Change>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let _ = changes.send(Change::decode(notification.payload()));
            }
            Ok(None) => {
                tracing::warn!("change listener reconnected; dropping cached state");
                let _ = changes.send(Change::All);
            }
            Err(e) => {
                tracing::warn!(error = %e, "change listener failed; retrying");
                let _ = changes.send(Change::All);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn backup(&self, _path: &Path) -> anyhow::Result<()> {
        anyhow::bail!(
            "latch backup works on SQLite only; back up PostgreSQL with pg_dump \
             (for example: pg_dump --format=custom --file=latch.dump \"$LATCH_DATABASE_URL\")"
        )
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn fingerprint(&self) -> Option<super::Fingerprint> {
        None
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs(30)
    }
}

super::users::impl_user_store!(PgStore);
super::sessions::impl_session_store!(PgStore);
super::one_time_tokens::impl_one_time_token_store!(PgStore);
super::keys::impl_key_store!(PgStore);
super::clients::impl_client_store!(PgStore);
super::rate_limits::impl_rate_limit_store!(PgStore);
super::audit::impl_audit_store!(PgStore);
super::oidc::impl_oidc_store!(PgStore);
super::mfa::impl_mfa_store!(PgStore);
