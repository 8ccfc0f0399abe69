//! Second factors (SPEC §9): the TOTP authenticator of an account, its passkeys, its
//! recovery codes (SHA-256 digests, each deleted when used), the sign-ins waiting for
//! their second step (`mfa_token` digests) and WebAuthn ceremonies under way.

use super::{AuditEvent, StoreError};
use crate::domain::{PasskeyId, Timestamp, UserId};

/// A passkey of an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRecord {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: Vec<u8>,
    pub name: String,
    /// The credential as webauthn-rs keeps it, JSON.
    pub passkey: String,
    /// A synced passkey (`swk`), rather than one bound to a device (`hwk`).
    pub backup_eligible: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// An account's TOTP authenticator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRecord {
    /// The key, sealed with the key-encryption key `kek_id` when that is set.
    pub secret: Vec<u8>,
    pub kek_id: Option<String>,
    /// False while the enrolment waits for its first code.
    pub confirmed: bool,
    /// The time step of the last code accepted.
    pub last_step: i64,
}

/// The second factors an account has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorSummary {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Recovery codes not yet used.
    pub recovery_codes: i64,
    /// Passkeys.
    pub passkeys: i64,
}

impl FactorSummary {
    /// Whether a sign-in needs a second step. Recovery codes alone are no factor: they
    /// stand in for one.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// A sign-in waiting for its second step.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChallengeRecord {
    pub user_id: UserId,
    /// The session it will start: its client (`browser` for a cookie) and scopes.
    pub client_id: String,
    pub scope: String,
    /// How the first step went (`pwd`).
    pub amr: String,
    /// Second steps tried, this one included.
    pub attempts: i64,
    pub expires_at: Timestamp,
    /// The passkey assertion it waits for (webauthn-rs state, JSON), when the account
    /// has passkeys.
    pub webauthn: Option<String>,
}

#[async_trait::async_trait]
pub trait MfaStore {
    /// The factors `user` has.
    async fn factors(&self, user: UserId) -> Result<FactorSummary, StoreError>;
    /// The TOTP authenticator of `user`, confirmed or pending.
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError>;
    /// Starts (or restarts) a TOTP enrolment; false, changing nothing, when a confirmed
    /// authenticator exists.
    async fn begin_totp(
        &self,
        user: UserId,
        secret: &[u8],
        kek_id: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Confirms the pending enrolment of the key `secret` (as stored) with the code of
    /// time step `step` and replaces the recovery codes with `codes` (digests); false
    /// when that key is not pending (another enrolment replaced it). Records `event`.
    async fn confirm_totp(
        &self,
        user: UserId,
        secret: &[u8],
        step: i64,
        codes: &[[u8; 32]],
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Accepts the code of time step `step` once: false when a code of that step or a
    /// later one was accepted before, or there is no confirmed authenticator.
    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;
    /// Uses up a recovery code; false when `user` has no such unused code.
    async fn use_recovery_code(&self, user: UserId, hash: &[u8]) -> Result<bool, StoreError>;
    /// Replaces the recovery codes; false (changing nothing) when `user` has no factor.
    /// Records `event`.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[[u8; 32]],
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Removes the TOTP authenticator, and the recovery codes with the last factor;
    /// false when there was none. Records `event`.
    async fn remove_totp(&self, user: UserId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Removes every factor and recovery code of `user`, and the sign-ins waiting for
    /// a second step; false when there was none. Records `event` (with `removed`)
    /// either way.
    async fn reset_factors(&self, user: UserId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Records a sign-in waiting for its second step under the digest `hash`.
    async fn create_challenge(&self, hash: &[u8], challenge: &ChallengeRecord) -> Result<(), StoreError>;
    /// Counts an attempt at the second step of `hash` and returns it, with the attempt
    /// counted; `None` when it is unknown, expired at `now` or out of attempts (`max`).
    async fn attempt_challenge(
        &self,
        hash: &[u8],
        now: Timestamp,
        max: i64,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Forgets the challenges and ceremonies that expired before `before`; returns how many.
    async fn delete_expired_challenges(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// The passkeys of `user`, oldest first.
    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError>;
    /// The passkey with this WebAuthn credential id.
    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Adds a passkey; with `codes`, the recovery codes are replaced in the same
    /// transaction (the account's first factor). `Conflict("passkey")` when the
    /// credential is registered already. Records `event`.
    async fn add_passkey(
        &self,
        passkey: &PasskeyRecord,
        codes: Option<&[[u8; 32]]>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Renames a passkey of `user`; false when there is no such passkey.
    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: &str) -> Result<bool, StoreError>;
    /// Removes a passkey of `user` (and the recovery codes and waiting sign-ins with the
    /// last factor); false when there is no such passkey. Records `event`.
    async fn remove_passkey(&self, user: UserId, id: PasskeyId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Records a WebAuthn ceremony under the digest of its id.
    async fn create_ceremony(
        &self,
        hash: &[u8],
        user: Option<UserId>,
        kind: &str,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The live ceremony `hash` of `kind`: its user and state. (A sign-in uses it up in
    /// the session's transaction: [`SecondStepUse::ceremony`](super::SecondStepUse).)
    async fn ceremony(
        &self,
        hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<UserId>, String)>, StoreError>;
    /// Takes (deletes and returns) the live ceremony `hash` of `kind`: its user and state.
    async fn take_ceremony(
        &self,
        hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> Result<Option<(Option<UserId>, String)>, StoreError>;
}

/// Whether the user `$1` has a factor that recovery codes stand in for.
pub(crate) const HAS_FACTOR: &str = "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed)
     OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)";

/// After a factor of `$user` is removed inside `$tx`: with the last one, the recovery
/// codes go; a sign-in waiting for a second step waits for nothing either way.
macro_rules! after_removal_in {
    ($tx:ident, $user:expr) => {
        let left: bool = sqlx::query_scalar($crate::store::mfa::HAS_FACTOR).bind($user).fetch_one(&mut *$tx).await?;
        if !left {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind($user).execute(&mut *$tx).await?;
        }
        sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1").bind($user).execute(&mut *$tx).await?;
    };
}
pub(crate) use after_removal_in;

/// Replaces the recovery codes of `$user` with `$codes` inside the transaction `$tx`.
macro_rules! replace_codes_in {
    ($tx:ident, $user:expr, $codes:expr) => {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind($user).execute(&mut *$tx).await?;
        for code in $codes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind($user)
                .bind(&code[..])
                .execute(&mut *$tx)
                .await?;
        }
    };
}
pub(crate) use replace_codes_in;

macro_rules! impl_mfa_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::MfaStore for $store {
            async fn factors(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<$crate::store::FactorSummary, $crate::store::StoreError> {
                let (totp, recovery_codes, passkeys): (bool, i64, i64) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed),
                            (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1),
                            (SELECT COUNT(*) FROM passkeys WHERE user_id = $1)",
                )
                .bind(user)
                .fetch_one(self.read())
                .await?;
                Ok($crate::store::FactorSummary { totp, recovery_codes, passkeys })
            }

            async fn totp(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<Option<$crate::store::TotpRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT secret, kek_id, confirmed, last_step FROM totp_factors WHERE user_id = $1")
                    .bind(user)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn begin_totp(
                &self,
                user: $crate::domain::UserId,
                secret: &[u8],
                kek_id: Option<&str>,
                now: $crate::domain::Timestamp,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO totp_factors (user_id, secret, kek_id, confirmed, last_step, created_at)
                     VALUES ($1, $2, $3, FALSE, 0, $4)
                     ON CONFLICT (user_id) DO UPDATE
                         SET secret = excluded.secret, kek_id = excluded.kek_id, created_at = excluded.created_at
                         WHERE NOT totp_factors.confirmed",
                )
                .bind(user)
                .bind(secret)
                .bind(kek_id)
                .bind(now)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn confirm_totp(
                &self,
                user: $crate::domain::UserId,
                secret: &[u8],
                step: i64,
                codes: &[[u8; 32]],
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let done = sqlx::query(
                    "UPDATE totp_factors SET confirmed = TRUE, last_step = $2
                     WHERE user_id = $1 AND NOT confirmed AND secret = $3",
                )
                .bind(user)
                .bind(step)
                .bind(secret)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                $crate::store::mfa::replace_codes_in!(tx, user, codes);
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(true)
            }

            async fn use_totp_step(
                &self,
                user: $crate::domain::UserId,
                step: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE totp_factors SET last_step = $2 WHERE user_id = $1 AND confirmed AND last_step < $2",
                )
                .bind(user)
                .bind(step)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn use_recovery_code(
                &self,
                user: $crate::domain::UserId,
                hash: &[u8],
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
                    .bind(user)
                    .bind(hash)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn replace_recovery_codes(
                &self,
                user: $crate::domain::UserId,
                codes: &[[u8; 32]],
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let has_factor: bool = sqlx::query_scalar($crate::store::mfa::HAS_FACTOR)
                    .bind(user)
                    .fetch_one(&mut *tx)
                    .await?;
                if !has_factor {
                    tx.rollback().await?;
                    return Ok(false);
                }
                $crate::store::mfa::replace_codes_in!(tx, user, codes);
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(true)
            }

            async fn remove_totp(
                &self,
                user: $crate::domain::UserId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let done = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1 AND confirmed")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                $crate::store::mfa::after_removal_in!(tx, user);
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user)).await;
                Ok(true)
            }

            async fn reset_factors(
                &self,
                user: $crate::domain::UserId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let mut removed = 0;
                for sql in [
                    "DELETE FROM totp_factors WHERE user_id = $1",
                    "DELETE FROM passkeys WHERE user_id = $1",
                    "DELETE FROM recovery_codes WHERE user_id = $1",
                    "DELETE FROM mfa_challenges WHERE user_id = $1",
                ] {
                    removed += sqlx::query(sql).bind(user).execute(&mut *tx).await?.rows_affected();
                }
                let event = event.clone().detail("removed", removed > 0);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user)).await;
                Ok(removed > 0)
            }

            async fn create_challenge(
                &self,
                hash: &[u8],
                c: &$crate::store::ChallengeRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO mfa_challenges (token_hash, user_id, client_id, scope, amr, attempts, expires_at, webauthn)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(hash)
                .bind(c.user_id)
                .bind(&c.client_id)
                .bind(&c.scope)
                .bind(&c.amr)
                .bind(c.attempts)
                .bind(c.expires_at)
                .bind(&c.webauthn)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn attempt_challenge(
                &self,
                hash: &[u8],
                now: $crate::domain::Timestamp,
                max: i64,
            ) -> Result<Option<$crate::store::ChallengeRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "UPDATE mfa_challenges SET attempts = attempts + 1
                     WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3
                     RETURNING user_id, client_id, scope, amr, attempts, expires_at, webauthn",
                )
                .bind(hash)
                .bind(now)
                .bind(max)
                .fetch_optional(self.write())
                .await?)
            }

            async fn delete_expired_challenges(
                &self,
                before: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut deleted = 0;
                for sql in
                    ["DELETE FROM mfa_challenges WHERE expires_at < $1", "DELETE FROM webauthn_ceremonies WHERE expires_at < $1"]
                {
                    deleted += sqlx::query(sql).bind(before).execute(self.write()).await?.rows_affected();
                }
                Ok(deleted)
            }

            async fn passkeys(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<Vec<$crate::store::PasskeyRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM passkeys WHERE user_id = $1 ORDER BY created_at, id")
                    .bind(user)
                    .fetch_all(self.read())
                    .await?)
            }

            async fn passkey_by_credential(
                &self,
                credential_id: &[u8],
            ) -> Result<Option<$crate::store::PasskeyRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM passkeys WHERE credential_id = $1")
                    .bind(credential_id)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn add_passkey(
                &self,
                p: &$crate::store::PasskeyRecord,
                codes: Option<&[[u8; 32]]>,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let added = sqlx::query(
                    "INSERT INTO passkeys (id, user_id, credential_id, name, passkey, backup_eligible, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING",
                )
                .bind(p.id)
                .bind(p.user_id)
                .bind(&p.credential_id)
                .bind(&p.name)
                .bind(&p.passkey)
                .bind(p.backup_eligible)
                .bind(p.created_at)
                .execute(&mut *tx)
                .await?;
                if added.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Err($crate::store::StoreError::Conflict("passkey"));
                }
                if let Some(codes) = codes {
                    $crate::store::mfa::replace_codes_in!(tx, p.user_id, codes);
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(())
            }

            async fn rename_passkey(
                &self,
                user: $crate::domain::UserId,
                id: $crate::domain::PasskeyId,
                name: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user)
                    .bind(name)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove_passkey(
                &self,
                user: $crate::domain::UserId,
                id: $crate::domain::PasskeyId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                $crate::store::mfa::after_removal_in!(tx, user);
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user)).await;
                Ok(true)
            }

            async fn create_ceremony(
                &self,
                hash: &[u8],
                user: Option<$crate::domain::UserId>,
                kind: &str,
                state: &str,
                expires_at: $crate::domain::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO webauthn_ceremonies (id_hash, user_id, kind, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(hash)
                .bind(user)
                .bind(kind)
                .bind(state)
                .bind(expires_at)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn ceremony(
                &self,
                hash: &[u8],
                kind: &str,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<(Option<$crate::domain::UserId>, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT user_id, state FROM webauthn_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3",
                )
                .bind(hash)
                .bind(kind)
                .bind(now)
                .fetch_optional(self.read())
                .await?)
            }

            async fn take_ceremony(
                &self,
                hash: &[u8],
                kind: &str,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<(Option<$crate::domain::UserId>, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3
                     RETURNING user_id, state",
                )
                .bind(hash)
                .bind(kind)
                .bind(now)
                .fetch_optional(self.write())
                .await?)
            }
        }
    };
}
pub(crate) use impl_mfa_store;
