//! The only place with SQL. Each aggregate has a trait (`UserStore`, `SessionStore`, …)
//! and one body of SQL shared by the SQLite and PostgreSQL implementations through a
//! macro, so that the two backends cannot drift apart; handlers see `Arc<dyn Store>`.
//!
//! Ids and times are domain types ([`UserId`](crate::domain::UserId),
//! [`Timestamp`](crate::domain::Timestamp): whole seconds in UTC, kept by SQLite as
//! RFC 3339 text, which then sorts in time order). The store never reads the clock:
//! callers pass `now`.
//!
//! Changes that caches must not miss (a session ended, a user changed, a new signing
//! key) are announced as [`Change`]s after they commit: within the process, and on
//! PostgreSQL to every instance through `NOTIFY`.

pub(crate) mod audit;
mod clients;
mod file_watch;
mod keys;
mod mfa;
mod oidc;
mod one_time_tokens;
mod postgres;
pub(crate) mod rate_limits;
mod sessions;
mod sqlite;
pub(crate) mod users;

use std::sync::Arc;

pub use audit::{Actor, AuditEvent, AuditStore, EventQuery, EventRecord, EventType, Outcome};
pub use clients::{ClientRecord, ClientStore};
pub use keys::{KeyStore, SealedKey, StoredKey};
pub use mfa::{ChallengeRecord, FactorSummary, MfaStore, PasskeyRecord, TotpRecord};
pub use oidc::{ConsentRecord, OidcStore};
pub use one_time_tokens::{NewOneTimeToken, OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};
pub use postgres::PgStore;
pub use rate_limits::{Counter, RateLimitStore, Settle};
pub use sessions::{NewSession, ProofUse, RotateOutcome, SecondStepUse, SessionRecord, SessionStore};
pub use sqlite::SqliteStore;
pub use users::{
    AdminChange, AdminDelete, AdminPlan, AdminUpdate, IMPORT_BATCH_ROWS, ImportedUser, KeepSessions, NewUser,
    ProfileChange, TakenNames, UserPosition, UserQuery, UserRecord, UserSearch, UserStore,
};

use crate::config::DatabaseUrl;
use crate::domain::{SessionId, UserId};

/// Voids every password-reset link of the user `$1`: run in the transaction of any
/// change after which an earlier link must no longer work (SPEC §3, one-time tokens).
const VOID_RESET_LINKS: &str = "DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = 'reset_password'";

/// All of Latch's persistent state.
#[async_trait::async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + OneTimeTokenStore
    + KeyStore
    + ClientStore
    + RateLimitStore
    + AuditStore
    + OidcStore
    + MfaStore
    + Send
    + Sync
    + 'static
{
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Writes a consistent snapshot of the whole database to `path` while it keeps
    /// serving; refuses when `path` exists. Backends that cannot (PostgreSQL) refuse
    /// and name their own tool.
    async fn backup(&self, path: &std::path::Path) -> anyhow::Result<()>;
    /// Changes announced from now on, by this instance and (PostgreSQL) by others.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;
    /// How often caches should recheck what no announcement can reach them about
    /// (other processes on a SQLite file).
    fn poll_interval(&self) -> std::time::Duration;
    /// A cheap fingerprint of the database's state that changes whenever any process
    /// commits, for backends where other processes cannot announce their changes
    /// (SQLite: `latch user disable` while serving). `None` where every writer
    /// announces (PostgreSQL `NOTIFY`).
    fn fingerprint(&self) -> Option<Fingerprint>;
}

/// Computes a [`Store::fingerprint`] value.
pub type Fingerprint = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A committed change that cached state must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This session ended.
    Session(SessionId),
    /// This user changed, or some of their sessions ended.
    User(UserId),
    /// The signing keys changed.
    Keys,
    /// The registered clients changed.
    Clients,
    /// Announcements may have been missed: forget everything cached.
    All,
}

impl Change {
    /// The text form sent through `NOTIFY`.
    pub fn encode(self) -> String {
        match self {
            Self::Session(id) => format!("s:{id}"),
            Self::User(id) => format!("u:{id}"),
            Self::Keys => "k".to_owned(),
            Self::Clients => "c".to_owned(),
            Self::All => "*".to_owned(),
        }
    }

    pub fn decode(text: &str) -> Self {
        match text.split_once(':') {
            Some(("s", rest)) => SessionId::parse(rest).map_or(Self::All, Self::Session),
            Some(("u", rest)) => UserId::parse(rest).map_or(Self::All, Self::User),
            _ if text == "k" => Self::Keys,
            _ if text == "c" => Self::Clients,
            _ => Self::All,
        }
    }
}

/// Capacity of the in-process announcement channel; a lagging receiver is told to
/// forget everything.
pub const CHANGE_CHANNEL: usize = 4096;

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
            _ if cannot_serve(&e) => Self::Unavailable(e),
            _ => Self::Other(e),
        }
    }
}

impl StoreError {
    /// Whether this error (or a `sqlx::Error` found in its cause chain) means that the
    /// database cannot serve now rather than that the request was wrong.
    pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Unavailable(_)))
                || e.downcast_ref::<sqlx::Error>().is_some_and(cannot_serve)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// A database that is there (or should be) but cannot serve now: unreachable, refused
/// or dropped connections, no free connection within the pool's wait, SQLite busy.
fn cannot_serve(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                sqlite_cannot_serve(&code)
            } else {
                postgres_cannot_serve(&code, db.message())
            }
        }
        _ => false,
    }
}

/// SQLite result codes (extended; the primary code is the low byte): busy or locked
/// past the busy timeout, an I/O error, a full disk, a file that cannot be opened.
fn sqlite_cannot_serve(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// PostgreSQL SQLSTATEs: class 08 (connection exceptions), class 53 (insufficient
/// resources: too many clients, out of memory or disk), 57P (shutting down, starting
/// up, database dropped), 55000 when the database accepts no connections (`ALTER
/// DATABASE … ALLOW_CONNECTIONS false`; the code alone also covers unrelated
/// prerequisite errors), and 25006 (a read-only standby, as after a failover).
fn postgres_cannot_serve(code: &str, message: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "25006"
        || (code == "55000" && message.contains("not currently accepting connections"))
}
/// The user named by `who`: an id, a username or an email, in any case. A 32-hex-digit
/// username also parses as a UUID, so a miss by id falls back to the name; text that can
/// name no account (empty, over 320 bytes, control characters, which PostgreSQL would
/// refuse) finds nobody without a query.
pub async fn find_user(store: &dyn Store, who: &str) -> Result<Option<UserRecord>, StoreError> {
    if let Some(id) = UserId::parse(who)
        && let Some(user) = store.user_by_id(id).await?
    {
        return Ok(Some(user));
    }
    if who.is_empty() || who.len() > 320 || who.chars().any(char::is_control) {
        return Ok(None);
    }
    store.user_by_login(who).await
}

/// Opens (creating if needed) the database and applies pending migrations.
pub async fn open(url: &DatabaseUrl) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => {
            use secrecy::ExposeSecret as _;
            Ok(Arc::new(PgStore::open(url.expose_secret()).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_that_cannot_serve() {
        for code in ["08001", "08006", "53300", "53100", "57P01", "57P03", "25006"] {
            assert!(postgres_cannot_serve(code, ""), "{code}");
        }
        assert!(postgres_cannot_serve("55000", "database \"latch\" is not currently accepting connections"));
        assert!(!postgres_cannot_serve("55000", "object not in prerequisite state"));
        for code in ["23505", "42P01", "22001", ""] {
            assert!(!postgres_cannot_serve(code, ""), "{code}");
        }
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED, SQLITE_IOERR_WRITE, SQLITE_FULL.
        for code in ["5", "517", "6", "778", "13", "14"] {
            assert!(sqlite_cannot_serve(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR.
        assert!(!sqlite_cannot_serve("2067") && !sqlite_cannot_serve("1"));
        assert!(cannot_serve(&sqlx::Error::PoolTimedOut));
        assert!(!cannot_serve(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn unavailable_is_found_in_a_cause_chain() {
        let wrapped = anyhow::Error::from(StoreError::from(sqlx::Error::PoolTimedOut)).context("while registering");
        assert!(StoreError::is_unavailable(wrapped.as_ref()));
        let wrapped = anyhow::Error::from(sqlx::Error::PoolClosed).context("reading");
        assert!(StoreError::is_unavailable(wrapped.as_ref()));
        let other = anyhow::Error::from(sqlx::Error::RowNotFound).context("reading");
        assert!(!StoreError::is_unavailable(other.as_ref()));
    }
}
