//! The audit log: one row per security event. An event that records a change is
//! written in the transaction of that change ([`record_in!`]), so that neither is ever
//! kept without the other; an event that changes nothing (a failed login, a refusal
//! over a limit) is written on its own ([`AuditStore::record_event`]). Every committed
//! event is also logged as a structured line (target `latch::audit`).

use serde_json::{Map, Value};

use super::StoreError;
use crate::domain::{EventId, SessionId, Timestamp, UserId};

/// What happened. The names are the stable `type` of the API and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Registration,
    Login,
    Logout,
    RefreshTokenReuse,
    PasswordChange,
    PasswordReset,
    EmailChange,
    EmailVerification,
    SessionEnded,
    RateLimited,
    UserUpdated,
    RolesChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    UsersImported,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    KeyRotation,
    AccessDenied,
    ConsentGranted,
    ConsentRevoked,
    AuthorizationCodeReuse,
    ClientToken,
    SecondFactor,
    FactorAdded,
    FactorRemoved,
    RecoveryCodesRegenerated,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [Self; 30] = [
        Self::Registration,
        Self::Login,
        Self::Logout,
        Self::RefreshTokenReuse,
        Self::PasswordChange,
        Self::PasswordReset,
        Self::EmailChange,
        Self::EmailVerification,
        Self::SessionEnded,
        Self::RateLimited,
        Self::UserUpdated,
        Self::RolesChanged,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::UsersImported,
        Self::ClientCreated,
        Self::ClientUpdated,
        Self::ClientDeleted,
        Self::ClientSecretRotated,
        Self::KeyRotation,
        Self::AccessDenied,
        Self::ConsentGranted,
        Self::ConsentRevoked,
        Self::AuthorizationCodeReuse,
        Self::ClientToken,
        Self::SecondFactor,
        Self::FactorAdded,
        Self::FactorRemoved,
        Self::RecoveryCodesRegenerated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::PasswordChange => "password_change",
            Self::PasswordReset => "password_reset",
            Self::EmailChange => "email_change",
            Self::EmailVerification => "email_verification",
            Self::SessionEnded => "session_ended",
            Self::RateLimited => "rate_limited",
            Self::UserUpdated => "user_updated",
            Self::RolesChanged => "roles_changed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserDeleted => "user_deleted",
            Self::UsersImported => "users_imported",
            Self::ClientCreated => "client_created",
            Self::ClientUpdated => "client_updated",
            Self::ClientDeleted => "client_deleted",
            Self::ClientSecretRotated => "client_secret_rotated",
            Self::KeyRotation => "key_rotation",
            Self::AccessDenied => "access_denied",
            Self::ConsentGranted => "consent_granted",
            Self::ConsentRevoked => "consent_revoked",
            Self::AuthorizationCodeReuse => "authorization_code_reuse",
            Self::ClientToken => "client_token",
            Self::SecondFactor => "second_factor",
            Self::FactorAdded => "factor_added",
            Self::FactorRemoved => "factor_removed",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Whether the attempt succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Success, Self::Failure].into_iter().find(|o| o.as_str() == text)
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person acting on their own account; `None` when the account is unknown (a
    /// failed login for a name that belongs to nobody).
    User(Option<UserId>),
    /// A user with the `admin` role, through the admin API.
    Admin(UserId),
    /// A registered client acting on its own (client credentials).
    Client(String),
    /// The operator at the command line, or Latch itself.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Admin(_) => "admin",
            Self::Client(_) => "client",
            Self::System => "system",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Self::User(id) => id.map(|id| id.to_string()),
            Self::Admin(id) => Some(id.to_string()),
            Self::Client(id) => Some(id.clone()),
            Self::System => None,
        }
    }
}

/// An event about to be written. `details` never holds a secret: no password, token,
/// hash or link.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: EventId,
    pub at: Timestamp,
    pub kind: EventType,
    pub outcome: Outcome,
    pub actor: Actor,
    /// The account the event is about.
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_id: Option<String>,
    pub session_id: Option<SessionId>,
    pub details: Map<String, Value>,
}

impl AuditEvent {
    /// A successful event of `kind` by `actor` at `at`, with no context yet. A user acts
    /// on their own account, which the event is then about.
    pub fn new(kind: EventType, actor: Actor, at: Timestamp) -> Self {
        let user_id = match &actor {
            Actor::User(id) => *id,
            _ => None,
        };
        Self {
            id: EventId::generate(),
            at,
            kind,
            outcome: Outcome::Success,
            actor,
            user_id,
            ip: None,
            user_agent: None,
            client_id: None,
            session_id: None,
            details: Map::new(),
        }
    }

    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    pub fn user(mut self, id: UserId) -> Self {
        self.user_id = Some(id);
        self
    }

    pub fn session(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }

    pub fn client_id(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_owned());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The same event about `user` with a fresh id, for a change that learns its
    /// subject inside the transaction.
    /// An unidentified user actor becomes that user: whoever presented their token or link.
    pub fn about(&self, user: UserId) -> Self {
        let actor = match &self.actor {
            Actor::User(None) => Actor::User(Some(user)),
            actor => actor.clone(),
        };
        Self { id: EventId::generate(), user_id: Some(user), actor, ..self.clone() }
    }

    pub(crate) fn details_json(&self) -> String {
        Value::Object(self.details.clone()).to_string()
    }

    /// The structured log line of a committed event.
    pub fn log(&self) {
        let user = self.user_id.map(|id| id.to_string());
        let session = self.session_id.map(|id| id.to_string());
        tracing::info!(
            target: "latch::audit",
            id = %self.id,
            audit = self.kind.as_str(),
            outcome = self.outcome.as_str(),
            actor = self.actor.kind(),
            actor_id = self.actor.id(),
            user,
            ip = self.ip,
            user_agent = self.user_agent,
            client_id = self.client_id,
            session,
            details = %self.details_json(),
            "audit event"
        );
    }
}

/// An event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    pub id: EventId,
    pub at: Timestamp,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub outcome: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub client_id: Option<String>,
    pub session_id: Option<SessionId>,
    pub details: String,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub user: Option<UserId>,
    /// Done by this user (an admin or the user) or client.
    pub actor: Option<String>,
    pub outcome: Option<Outcome>,
    /// Any of these types; all when empty.
    pub types: Vec<EventType>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Strictly older than this event (the last of the previous page).
    pub after: Option<(Timestamp, EventId)>,
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait AuditStore {
    /// Writes an event that records no change of its own.
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;
    async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;
    /// Deletes the events older than `before`, a batch per transaction, so that a large
    /// backlog (a retention just lowered) never holds the writer for long.
    async fn delete_events_before(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Writes `$event` (an `&AuditEvent`) in the transaction `$tx`.
macro_rules! record_in {
    ($tx:expr, $event:expr) => {{
        let e: &$crate::store::AuditEvent = $event;
        sqlx::query(
            "INSERT INTO audit_events
                (id, at, type, outcome, actor_type, actor_id, user_id, ip, user_agent, client_id, session_id, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(e.id)
        .bind(e.at)
        .bind(e.kind.as_str())
        .bind(e.outcome.as_str())
        .bind(e.actor.kind())
        .bind(e.actor.id())
        .bind(e.user_id)
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.client_id.as_deref())
        .bind(e.session_id)
        .bind(e.details_json())
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use record_in;

macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AuditStore for $store {
            async fn record_event(&self, event: &$crate::store::AuditEvent) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(())
            }

            async fn events(
                &self,
                q: &$crate::store::EventQuery,
            ) -> Result<Vec<$crate::store::EventRecord>, $crate::store::StoreError> {
                let mut sql = sqlx::QueryBuilder::new("SELECT * FROM audit_events WHERE TRUE");
                if let Some(user) = q.user {
                    sql.push(" AND user_id = ").push_bind(user);
                }
                if let Some(actor) = &q.actor {
                    sql.push(" AND actor_id = ").push_bind(actor.clone());
                }
                if let Some(outcome) = q.outcome {
                    sql.push(" AND outcome = ").push_bind(outcome.as_str());
                }
                if !q.types.is_empty() {
                    sql.push(" AND type IN (");
                    let mut list = sql.separated(", ");
                    for t in &q.types {
                        list.push_bind(t.as_str());
                    }
                    sql.push(")");
                }
                if let Some(since) = q.since {
                    sql.push(" AND at >= ").push_bind(since);
                }
                if let Some(until) = q.until {
                    sql.push(" AND at < ").push_bind(until);
                }
                if let Some((at, id)) = q.after {
                    sql.push(" AND (at < ").push_bind(at);
                    sql.push(" OR (at = ").push_bind(at).push(" AND id < ").push_bind(id).push("))");
                }
                sql.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(q.limit));
                Ok(sql.build_query_as().fetch_all(self.read()).await?)
            }

            async fn delete_events_before(
                &self,
                before: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                const BATCH: i64 = 10_000;
                let mut deleted = 0;
                loop {
                    let done = sqlx::query(
                        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(BATCH)
                    .execute(self.write())
                    .await?
                    .rows_affected();
                    deleted += done;
                    if done < BATCH as u64 {
                        return Ok(deleted);
                    }
                    // Lets the logins waiting for the writer go first.
                    tokio::task::yield_now().await;
                }
            }
        }
    };
}
pub(crate) use impl_audit_store;
