//! Sessions and their refresh tokens. A session is one login: a token family (refresh
//! tokens rotating under one `sid`) or a browser cookie. Ending a session deletes its
//! row; its refresh tokens go with it by cascade, and its access tokens are refused
//! because their `sid` no longer resolves.

use super::{AuditEvent, StoreError};
use crate::domain::{PasskeyId, SessionId, Timestamp, UserId};

/// A live or expired session row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub client_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    /// The granted scopes, space-separated; refreshed tokens carry them.
    pub scope: String,
    /// Started by the authorization code flow for a third-party client: its tokens may
    /// not use Latch's own account and admin API.
    pub delegated: bool,
    /// How the user signed in: RFC 8176 values, space-separated (`pwd otp mfa`).
    pub amr: String,
}

impl SessionRecord {
    /// Alive at `now` unless past its absolute lifetime or idle since `idle_cutoff`.
    pub fn is_alive(&self, now: Timestamp, idle_cutoff: Timestamp) -> bool {
        self.expires_at > now && self.last_seen_at >= idle_cutoff
    }
}

/// A session joined with its user, read in one query.
#[derive(sqlx::FromRow)]
pub struct SessionUserRow {
    #[sqlx(flatten)]
    pub session: SessionRecord,
    pub u_username: String,
    pub u_email: String,
    pub u_email_verified: bool,
    pub u_password_hash: String,
    pub u_roles: String,
    pub u_disabled: bool,
    pub u_created_at: Timestamp,
    pub u_updated_at: Timestamp,
}

impl SessionUserRow {
    pub fn split(self) -> (SessionRecord, super::UserRecord) {
        let user = super::UserRecord {
            id: self.session.user_id,
            username: self.u_username,
            email: self.u_email,
            email_verified: self.u_email_verified,
            password_hash: self.u_password_hash,
            roles: self.u_roles,
            disabled: self.u_disabled,
            created_at: self.u_created_at,
            updated_at: self.u_updated_at,
        };
        (self.session, user)
    }
}

/// A session about to start.
pub struct NewSession<'a> {
    pub id: SessionId,
    pub user_id: UserId,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// SHA-256 of the cookie secret, for browser sessions.
    pub cookie_hash: Option<&'a [u8]>,
    /// SHA-256 of the first refresh token, for token sessions.
    pub refresh_hash: Option<&'a [u8]>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub now: Timestamp,
    pub expires_at: Timestamp,
    /// See [`SessionRecord::delegated`].
    pub delegated: bool,
    /// The digest of the authorization code whose exchange starts the session: recorded
    /// as used in the session's own transaction, which fails with `Conflict("code")`
    /// when the code was used already — of two racing exchanges, exactly one starts a
    /// session, and the other finds it to end.
    pub code_hash: Option<&'a [u8]>,
    /// The browser session that code was issued in, which must still exist when the
    /// transaction commits (`Conflict("browser_session")` otherwise): a sign-out on
    /// another instance, which a cache may not know of yet, kills the code too.
    pub code_browser_session: Option<SessionId>,
    /// See [`SessionRecord::amr`].
    pub amr: &'a str,
    /// The second step that completes the sign-in: its challenge is used up and its code
    /// spent in the session's own transaction, which fails with `Conflict("mfa_token")`
    /// or `Conflict("mfa_code")` when a racing request used either first.
    pub second_step: Option<SecondStepUse<'a>>,
}

/// What a completed second step uses up.
#[derive(Debug, Clone, Copy)]
pub struct SecondStepUse<'a> {
    /// The digest of the `mfa_token`; none for a sign-in with a passkey alone.
    pub challenge: Option<&'a [u8]>,
    /// The digest of the sign-in ceremony a passkey alone answered, used up with it.
    pub ceremony: Option<&'a [u8]>,
    pub proof: ProofUse<'a>,
    /// Recorded with the session (`second_factor`).
    pub event: &'a AuditEvent,
}

/// The code a second step spends.
#[derive(Debug, Clone, Copy)]
pub enum ProofUse<'a> {
    /// The authenticator app's code of this time step (and every older one).
    TotpStep(i64),
    /// The recovery code with this digest.
    RecoveryCode(&'a [u8]),
    /// The passkey `id` of the user, its credential as the assertion updated it; the
    /// use counts only if it is still stored `before` (no racing use moved its counter).
    Passkey { id: PasskeyId, before: &'a str, passkey: &'a str },
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum RotateOutcome {
    /// The token was live; it is now used and `new_hash` replaces it.
    Rotated(SessionRecord),
    /// The token had been used before: its whole session has been ended.
    Reused { session: SessionId, user: Option<UserId> },
    /// Unknown token, or its session expired (and has been ended).
    Invalid,
    /// The session is live but the caller may not use it; nothing changed.
    Refused,
}

#[async_trait::async_trait]
pub trait SessionStore {
    /// Starts a session and records `event` (a login).
    async fn create_session(&self, session: &NewSession<'_>, event: &AuditEvent) -> Result<(), StoreError>;

    /// The session and its user, in one query.
    async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, super::UserRecord)>, StoreError>;
    async fn session_by_cookie(&self, cookie_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError>;
    /// Records a use of the session.
    async fn touch_session(&self, id: SessionId, now: Timestamp) -> Result<(), StoreError>;
    /// Ends a session and records `event` (about the session's user); false when
    /// there was none, and then nothing is recorded.
    async fn delete_session(&self, id: SessionId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Ends one session, only if it belongs to `user_id`.
    async fn delete_user_session(&self, user_id: UserId, id: SessionId, event: &AuditEvent)
    -> Result<bool, StoreError>;
    /// Ends every session of the user (of whom there must be one), or those `client_id`
    /// started, and records `event`, also when there was none to end.
    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        client_id: Option<&str>,
        event: &AuditEvent,
    ) -> Result<u64, StoreError>;
    async fn list_sessions(
        &self,
        user_id: UserId,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Uses up the refresh token `old_hash` and issues `new_hash` in its place, or
    /// detects reuse, atomically: of two concurrent presentations only one rotates.
    /// When `accept` refuses the live session (another client presents its token),
    /// nothing changes and the outcome is `Refused`. A reuse records `reuse` (about
    /// the session and its user) with the end of the session.
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: Timestamp,
        idle_cutoff: Timestamp,
        accept: &(dyn for<'s> Fn(&'s SessionRecord) -> bool + Sync),
        reuse: &AuditEvent,
    ) -> Result<RotateOutcome, StoreError>;
    /// The session of a refresh token not used yet, and when the token was issued.
    async fn live_refresh_token(&self, hash: &[u8]) -> Result<Option<(SessionId, Timestamp)>, StoreError>;
    /// The session a refresh token (used or not) belongs to.
    async fn session_of_refresh_token(&self, hash: &[u8]) -> Result<Option<SessionId>, StoreError>;
    /// Deletes sessions past their lifetime or idle since `idle_cutoff`.
    async fn delete_expired_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StoreError>;
}

macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SessionStore for $store {
            async fn create_session(
                &self,
                s: &$crate::store::NewSession<'_>,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                if let Some(code) = s.code_hash {
                    let claimed = sqlx::query($crate::store::oidc::RECORD_CODE_USE)
                    .bind(code)
                    .bind(s.id)
                    .bind(s.now)
                    .execute(&mut *tx)
                    .await?;
                    if claimed.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Err($crate::store::StoreError::Conflict("code"));
                    }
                }
                if let Some(step) = s.second_step {
                    let consumed = match step.challenge {
                        Some(challenge) => sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
                            .bind(challenge)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                        None => 1,
                    };
                    let consumed = match step.ceremony {
                        Some(ceremony) => sqlx::query("DELETE FROM webauthn_ceremonies WHERE id_hash = $1")
                            .bind(ceremony)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            .min(consumed),
                        None => consumed,
                    };
                    let spent = match step.proof {
                        $crate::store::ProofUse::TotpStep(n) => sqlx::query(
                            "UPDATE totp_factors SET last_step = $2 WHERE user_id = $1 AND confirmed AND last_step < $2",
                        )
                        .bind(s.user_id)
                        .bind(n),
                        $crate::store::ProofUse::RecoveryCode(hash) => {
                            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
                                .bind(s.user_id)
                                .bind(hash)
                        }
                        $crate::store::ProofUse::Passkey { id, before, passkey } => sqlx::query(
                            "UPDATE passkeys SET passkey = $3, last_used_at = $4
                             WHERE user_id = $1 AND id = $2 AND passkey = $5",
                        )
                        .bind(s.user_id)
                        .bind(id)
                        .bind(passkey)
                        .bind(s.now)
                        .bind(before),
                    }
                    .execute(&mut *tx)
                    .await?;
                    if consumed == 0 || spent.rows_affected() == 0 {
                        tx.rollback().await?;
                        let what = if consumed == 0 { "mfa_token" } else { "mfa_code" };
                        return Err($crate::store::StoreError::Conflict(what));
                    }
                    $crate::store::audit::record_in!(tx, step.event);
                }
                if let Some(browser) = s.code_browser_session {
                    let live: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)")
                        .bind(browser)
                        .fetch_one(&mut *tx)
                        .await?;
                    if !live {
                        tx.rollback().await?;
                        return Err($crate::store::StoreError::Conflict("browser_session"));
                    }
                }
                sqlx::query(
                    "INSERT INTO sessions
                         (id, user_id, client_id, cookie_hash, user_agent, ip, created_at, last_seen_at, expires_at, scope,
                          delegated, amr)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)",
                )
                .bind(s.id)
                .bind(s.user_id)
                .bind(s.client_id)
                .bind(s.cookie_hash)
                .bind(s.user_agent)
                .bind(s.ip)
                .bind(s.now)
                .bind(s.expires_at)
                .bind(s.scope)
                .bind(s.delegated)
                .bind(s.amr)
                .execute(&mut *tx)
                .await?;
                if let Some(hash) = s.refresh_hash {
                    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
                        .bind(hash)
                        .bind(s.id)
                        .bind(s.now)
                        .execute(&mut *tx)
                        .await?;
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                if let Some(step) = s.second_step {
                    step.event.log();
                }
                event.log();
                Ok(())
            }

            async fn session_with_user(
                &self,
                id: $crate::domain::SessionId,
            ) -> Result<Option<($crate::store::SessionRecord, $crate::store::UserRecord)>, $crate::store::StoreError>
            {
                let row: Option<$crate::store::sessions::SessionUserRow> = sqlx::query_as(
                    "SELECT s.*, u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified,
                        u.password_hash AS u_password_hash, u.roles AS u_roles, u.disabled AS u_disabled,
                        u.created_at AS u_created_at, u.updated_at AS u_updated_at
                     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
                )
                .bind(id)
                .fetch_optional(self.read())
                .await?;
                Ok(row.map($crate::store::sessions::SessionUserRow::split))
            }

            async fn session_by_cookie(
                &self,
                cookie_hash: &[u8],
            ) -> Result<Option<$crate::store::SessionRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM sessions WHERE cookie_hash = $1")
                    .bind(cookie_hash)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn touch_session(
                &self,
                id: $crate::domain::SessionId,
                now: $crate::domain::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
                    .bind(id)
                    .bind(now)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn delete_session(
                &self,
                id: $crate::domain::SessionId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let ended: Option<($crate::domain::UserId, String)> =
                    sqlx::query_as("DELETE FROM sessions WHERE id = $1 RETURNING user_id, client_id")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((user, client_id)) = ended else {
                    return Ok(false);
                };
                let mut event = event.about(user).session(id);
                if event.client_id.is_none() {
                    event = event.client_id(&client_id);
                }
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Session(id)).await;
                Ok(true)
            }

            async fn delete_user_session(
                &self,
                user_id: $crate::domain::UserId,
                id: $crate::domain::SessionId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let ended: Option<(String,)> =
                    sqlx::query_as("DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING client_id")
                        .bind(id)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((client_id,)) = ended else {
                    return Ok(false);
                };
                let event = event.about(user_id).session(id).client_id(&client_id);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Session(id)).await;
                Ok(true)
            }

            async fn delete_user_sessions(
                &self,
                user_id: $crate::domain::UserId,
                client_id: Option<&str>,
                event: &$crate::store::AuditEvent,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let ended = match client_id {
                    None => sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id),
                    Some(client_id) => sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND client_id = $2")
                        .bind(user_id)
                        .bind(client_id),
                }
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let event = event.about(user_id).detail("sessions_ended", ended);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user_id)).await;
                Ok(ended)
            }

            async fn list_sessions(
                &self,
                user_id: $crate::domain::UserId,
                now: $crate::domain::Timestamp,
                idle_cutoff: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::store::SessionRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM sessions WHERE user_id = $1 AND expires_at > $2 AND last_seen_at >= $3
                     ORDER BY created_at DESC, id",
                )
                .bind(user_id)
                .bind(now)
                .bind(idle_cutoff)
                .fetch_all(self.read())
                .await?)
            }

            async fn rotate_refresh_token(
                &self,
                old_hash: &[u8],
                new_hash: &[u8],
                now: $crate::domain::Timestamp,
                idle_cutoff: $crate::domain::Timestamp,
                accept: &(dyn for<'s> Fn(&'s $crate::store::SessionRecord) -> bool + Sync),
                reuse: &$crate::store::AuditEvent,
            ) -> Result<$crate::store::RotateOutcome, $crate::store::StoreError> {
                use $crate::store::RotateOutcome;
                let mut tx = self.write().begin().await?;
                if let Some(lock) = <$store>::LOCK_SESSION_OF_TOKEN {
                    sqlx::query(lock).bind(old_hash).execute(&mut *tx).await?;
                }
                // Claiming the token is the first write, so the transaction holds the write
                // lock (SQLite) from the start; on PostgreSQL the session's row lock above
                // comes first, in the order every other change takes them.
                let claimed: Option<($crate::domain::SessionId,)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id",
                )
                .bind(old_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((session_id,)) = claimed else {
                    let owner: Option<($crate::domain::SessionId,)> =
                        sqlx::query_as("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                            .bind(old_hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let mut recorded = None;
                    let outcome = match owner {
                        Some((session_id,)) => {
                            let ended: Option<($crate::domain::UserId, String)> =
                                sqlx::query_as("DELETE FROM sessions WHERE id = $1 RETURNING user_id, client_id")
                                    .bind(session_id)
                                    .fetch_optional(&mut *tx)
                                    .await?;
                            if let Some((user, client_id)) = &ended {
                                let event = reuse.about(*user).session(session_id).client_id(client_id);
                                $crate::store::audit::record_in!(tx, &event);
                                recorded = Some(event);
                            }
                            RotateOutcome::Reused { session: session_id, user: ended.map(|(user, _)| user) }
                        }
                        None => RotateOutcome::Invalid,
                    };
                    tx.commit().await?;
                    if let Some(event) = recorded {
                        event.log();
                    }
                    if let Some((session_id,)) = owner {
                        self.changed($crate::store::Change::Session(session_id)).await;
                    }
                    return Ok(outcome);
                };
                let session: $crate::store::SessionRecord = sqlx::query_as("SELECT * FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if !session.is_alive(now, idle_cutoff) {
                    sqlx::query("DELETE FROM sessions WHERE id = $1").bind(session_id).execute(&mut *tx).await?;
                    tx.commit().await?;
                    self.changed($crate::store::Change::Session(session_id)).await;
                    return Ok(RotateOutcome::Invalid);
                }
                if !accept(&session) {
                    // Dropping the transaction gives the token back.
                    return Ok(RotateOutcome::Refused);
                }
                sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
                    .bind(new_hash)
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RotateOutcome::Rotated($crate::store::SessionRecord { last_seen_at: now, ..session }))
            }

            async fn session_of_refresh_token(
                &self,
                hash: &[u8],
            ) -> Result<Option<$crate::domain::SessionId>, $crate::store::StoreError> {
                let row: Option<($crate::domain::SessionId,)> =
                    sqlx::query_as("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                        .bind(hash)
                        .fetch_optional(self.read())
                        .await?;
                Ok(row.map(|(id,)| id))
            }

            async fn live_refresh_token(
                &self,
                hash: &[u8],
            ) -> Result<Option<($crate::domain::SessionId, $crate::domain::Timestamp)>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT session_id, created_at FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(self.read())
                .await?)
            }

            async fn delete_expired_sessions(
                &self,
                now: $crate::domain::Timestamp,
                idle_cutoff: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                    .bind(now)
                    .bind(idle_cutoff)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_session_store;
