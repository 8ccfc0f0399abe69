//! The OpenID provider's state: the authorization codes used (SHA-256 digests, so that
//! each works once) and the consents users gave to clients that are not first-party.

use super::StoreError;
use crate::domain::{SessionId, Timestamp, UserId};

/// A consent a user gave a client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRecord {
    pub client_id: String,
    pub scope: String,
    pub granted_at: Timestamp,
}

#[async_trait::async_trait]
pub trait OidcStore {
    /// The session the first use of the code with this digest started, if it was used.
    /// (A first use that succeeds records itself with the session it starts:
    /// [`NewSession::code_hash`](super::NewSession::code_hash).)
    async fn used_code(&self, hash: &[u8]) -> Result<Option<SessionId>, StoreError>;
    /// Records a use of the code with this digest that started nothing (a failed
    /// exchange), so that it cannot be tried again; false when it was used before.
    async fn burn_code(&self, hash: &[u8], now: Timestamp) -> Result<bool, StoreError>;
    /// Forgets the codes used before `before`; returns how many.
    async fn delete_old_codes(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// The scopes `user` allowed `client_id`, if any.
    async fn consent(&self, user: UserId, client_id: &str) -> Result<Option<String>, StoreError>;
    /// Every consent of `user`, newest first.
    async fn consents(&self, user: UserId) -> Result<Vec<ConsentRecord>, StoreError>;
    /// Records that `user` allowed `client_id` the scopes `scope` (the union with what
    /// was allowed before). Records `event` with the change.
    async fn grant_consent(
        &self,
        user: UserId,
        client_id: &str,
        scope: &str,
        now: Timestamp,
        event: &super::AuditEvent,
    ) -> Result<(), StoreError>;
    /// Withdraws the consent of `user` to `client_id` and ends the sessions that client
    /// started for them; false when there was no consent. Records `event` (with the
    /// number of sessions ended) with the change.
    async fn revoke_consent(
        &self,
        user: UserId,
        client_id: &str,
        event: &super::AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// Records the first use of a code (`$1` its digest, `$2` the session it starts, `$3`
/// the time); a code used before is left as it was, which the caller learns from the
/// rows affected.
pub(crate) const RECORD_CODE_USE: &str = "INSERT INTO used_authorization_codes (code_hash, session_id, used_at)
     VALUES ($1, $2, $3) ON CONFLICT (code_hash) DO NOTHING";

macro_rules! impl_oidc_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::OidcStore for $store {
            async fn used_code(
                &self,
                hash: &[u8],
            ) -> Result<Option<$crate::domain::SessionId>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT session_id FROM used_authorization_codes WHERE code_hash = $1")
                    .bind(hash)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn burn_code(
                &self,
                hash: &[u8],
                now: $crate::domain::Timestamp,
            ) -> Result<bool, $crate::store::StoreError> {
                // A session id nothing has: ending "its" session on a replay ends nothing.
                let done = sqlx::query($crate::store::oidc::RECORD_CODE_USE)
                .bind(hash)
                .bind($crate::domain::SessionId::generate())
                .bind(now)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_old_codes(
                &self,
                before: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM used_authorization_codes WHERE used_at < $1")
                    .bind(before)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn consent(
                &self,
                user: $crate::domain::UserId,
                client_id: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user)
                    .bind(client_id)
                    .fetch_optional(self.read())
                    .await?)
            }

            async fn consents(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<Vec<$crate::store::ConsentRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT client_id, scope, granted_at FROM consents WHERE user_id = $1
                     ORDER BY granted_at DESC, client_id",
                )
                .bind(user)
                .fetch_all(self.read())
                .await?)
            }

            async fn grant_consent(
                &self,
                user: $crate::domain::UserId,
                client_id: &str,
                scope: &str,
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let before: Option<String> = sqlx::query_scalar(&format!(
                    "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2{}",
                    <$store>::FOR_UPDATE
                ))
                .bind(user)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
                let mut scopes: Vec<&str> = before.as_deref().unwrap_or("").split_ascii_whitespace().collect();
                for s in scope.split_ascii_whitespace() {
                    if !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
                )
                .bind(user)
                .bind(client_id)
                .bind(scopes.join(" "))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(())
            }

            async fn revoke_consent(
                &self,
                user: $crate::domain::UserId,
                client_id: &str,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND client_id = $2")
                    .bind(user)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let event = event.clone().detail("sessions_ended", ended);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user)).await;
                Ok(true)
            }
        }
    };
}
pub(crate) use impl_oidc_store;
