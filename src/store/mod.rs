//! The only place with SQL. Each aggregate has a trait (`UserStore`, `SessionStore`, …)
//! and one body of SQL shared by the SQLite and PostgreSQL implementations through a
//! macro, so that the two backends cannot drift apart; handlers see `Arc<dyn Store>`.
//!
//! Timestamps are whole seconds in UTC ([`now`]): SQLite keeps them as RFC 3339 text,
//! which then sorts in time order.

mod admin;
mod keys;
mod one_time_tokens;
mod rate_limits;
mod sessions;
mod sqlite;
mod users;

use std::sync::Arc;

use time::OffsetDateTime;

pub use admin::{AdminStore, IMPORT_BATCH_ROWS, ImportedUser, TakenNames};
pub use keys::{KeyStore, StoredKey};
pub use one_time_tokens::{NewOneTimeToken, OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};
pub use rate_limits::{Counter, RateLimitStore};
pub use sessions::{NewSession, RotateOutcome, SessionRecord, SessionStore};
pub use sqlite::SqliteStore;
pub use users::{NewUser, ProfileChange, UserRecord, UserStore};

use crate::config::DatabaseUrl;

/// All of Latch's persistent state.
#[async_trait::async_trait]
pub trait Store:
    UserStore + SessionStore + OneTimeTokenStore + KeyStore + RateLimitStore + AdminStore + Send + Sync + 'static
{
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Writes a consistent snapshot of the whole database to `path` while it keeps
    /// serving; refuses when `path` exists. Backends that cannot (PostgreSQL) refuse
    /// and name their own tool.
    async fn backup(&self, path: &std::path::Path) -> anyhow::Result<()>;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (`username` or `email`) is already taken.
    #[error("{0} already taken")]
    Conflict(&'static str),
    /// The database cannot be reached.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // SQLite names the index in its message, PostgreSQL in the constraint.
                let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
                if text.contains("username") {
                    Self::Conflict("username")
                } else if text.contains("email") {
                    Self::Conflict("email")
                } else {
                    Self::Other(e)
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(e)
            }
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Self::Unavailable(e),
            _ => Self::Other(e),
        }
    }
}

/// SQLITE_BUSY / SQLITE_LOCKED (with extended codes) or PostgreSQL connection failures.
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(c) => c == "5" || c == "6" || c.parse::<i64>().is_ok_and(|n| n & 0xff == 5) || c.starts_with("08"),
        None => false,
    }
}

/// The current time, truncated to whole seconds.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Opens (creating if needed) the database and applies pending migrations.
pub async fn open(url: &DatabaseUrl) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(_) => anyhow::bail!("PostgreSQL is not supported by this build"),
    }
}
