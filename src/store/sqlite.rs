//! The SQLite backend: one file in WAL mode with full sync, so that an answered
//! request survives `kill -9`. The file and its directory are private (0600, 0700). Writes go through a single connection (SQLite has one
//! writer anyway, and this avoids busy errors between our own connections); reads use
//! a pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use tokio::sync::broadcast;

use super::{CHANGE_CHANNEL, Change, Store, StoreError};

/// Latch's state in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    changes: broadcast::Sender<Change>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens or creates the file at `path` and migrates it.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir(dir)?;
        }
        // SQLite creates the file with 0644 less the umask, and its -wal and -shm files
        // with the main file's mode: a 0600 file made here keeps all three private.
        crate::files::make_private_file(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await.context("cannot apply migrations")?;
        let readers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2) as u32 * 2;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { write, read, changes: broadcast::channel(CHANGE_CHANNEL).0, path: path.to_path_buf() })
    }

    /// What makes a comparison of text byte-wise, so that a prefix is one index range
    /// (SQLite compares bytes already; PostgreSQL follows the database's collation).
    pub(crate) const BYTE_ORDER: &str = "";

    /// Locks the row a transaction reads before it writes (SQLite has one writer).
    pub(crate) const FOR_UPDATE: &str = "";

    /// Locks the session of a refresh token before the token itself, in the order every
    /// other change takes them (a session, then by cascade its tokens), so that a refresh
    /// racing the end of its session (an admin's disable, a password reset) cannot
    /// deadlock. SQLite has one writer and needs none.
    pub(crate) const LOCK_SESSION_OF_TOKEN: Option<&str> = None;

    /// Starts a transaction that reads before it writes: on SQLite it takes the write
    /// lock at once, so that another process's write in between cannot refuse the
    /// upgrade (SQLITE_BUSY).
    pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

    /// The function that finds text in text (1-based; 0 when absent).
    pub(crate) const POSITION: &str = "instr";

    /// Announces a committed change to this process (other processes on the same file
    /// catch up by polling).
    async fn changed(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    fn write(&self) -> &SqlitePool {
        &self.write
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn fingerprint(&self) -> Option<super::Fingerprint> {
        Some(super::file_watch::fingerprint(&self.path))
    }

    fn poll_interval(&self) -> Duration {
        // Twice a second, so that a key rotation by `latch keys rotate` is in use
        // within the second the contract allows.
        Duration::from_millis(500)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.read()).await?;
        Ok(())
    }

    async fn backup(&self, path: &Path) -> anyhow::Result<()> {
        // VACUUM INTO reads one snapshot (in WAL mode other processes keep writing
        // meanwhile) and writes it as a compact, self-contained file. It runs on the
        // write connection because the read pool is opened read-only and could not
        // create the target file.
        if path.exists() {
            anyhow::bail!("{} already exists; choose a new file", path.display());
        }
        let target = path.to_str().with_context(|| format!("{} is not valid UTF-8", path.display()))?;
        // VACUUM INTO writes into an empty file as it finds it: made here, it is 0600.
        crate::files::create_private_file(path)?;
        let written = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(self.write())
            .await
            .with_context(|| format!("cannot write the backup to {}", path.display()));
        if written.is_err() {
            // Leave no empty file behind that the next attempt would refuse.
            let _ = std::fs::remove_file(path);
        }
        written?;
        Ok(())
    }
}

super::users::impl_user_store!(SqliteStore);
super::sessions::impl_session_store!(SqliteStore);
super::one_time_tokens::impl_one_time_token_store!(SqliteStore);
super::keys::impl_key_store!(SqliteStore);
super::clients::impl_client_store!(SqliteStore);
super::rate_limits::impl_rate_limit_store!(SqliteStore);
super::audit::impl_audit_store!(SqliteStore);
super::oidc::impl_oidc_store!(SqliteStore);
super::mfa::impl_mfa_store!(SqliteStore);
