//! Single-use tokens sent by email (address verification, password reset), stored as
//! SHA-256 digests with the address they were sent to and an expiry.

use super::StoreError;
use crate::domain::{Timestamp, UserId};

/// What a one-time token is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A token about to be stored.
pub struct NewOneTimeToken<'a> {
    pub hash: &'a [u8],
    pub user_id: UserId,
    pub purpose: TokenPurpose,
    pub email: &'a str,
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

/// A stored token that is still valid.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OneTimeTokenRecord {
    pub user_id: UserId,
    pub email: String,
}

#[async_trait::async_trait]
pub trait OneTimeTokenStore {
    /// Stores a token; a new reset token replaces the user's earlier ones.
    async fn insert_one_time_token(&self, token: &NewOneTimeToken<'_>) -> Result<(), StoreError>;
    /// Deletes expired tokens; returns how many.
    async fn delete_expired_one_time_tokens(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// The valid (unexpired) token with this digest and purpose.
    async fn find_one_time_token(
        &self,
        hash: &[u8],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError>;
    /// Uses up a verification token and marks the address it was sent to verified, if
    /// it is still the user's address; otherwise changes nothing and returns `None`.
    /// Records `event` (about the user) with the change.
    async fn confirm_email(
        &self,
        hash: &[u8],
        now: Timestamp,
        event: &super::AuditEvent,
    ) -> Result<Option<super::UserRecord>, StoreError>;
    /// Uses up a reset token, sets the new password hash and ends every session of the
    /// user, in one transaction. Returns the user, or `None` for an invalid token.
    /// Records `event` (about the user) with the change.
    async fn reset_password(
        &self,
        hash: &[u8],
        new_hash: &str,
        now: Timestamp,
        event: &super::AuditEvent,
    ) -> Result<Option<UserId>, StoreError>;
}

macro_rules! impl_one_time_token_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::OneTimeTokenStore for $store {
            async fn insert_one_time_token(
                &self,
                t: &$crate::store::NewOneTimeToken<'_>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                if t.purpose == $crate::store::TokenPurpose::ResetPassword {
                    // Only the newest reset link works.
                    sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2")
                        .bind(t.user_id)
                        .bind(t.purpose.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO one_time_tokens (token_hash, user_id, purpose, email, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.hash)
                .bind(t.user_id)
                .bind(t.purpose.as_str())
                .bind(t.email)
                .bind(t.now)
                .bind(t.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_expired_one_time_tokens(
                &self,
                now: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM one_time_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.write())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn find_one_time_token(
                &self,
                hash: &[u8],
                purpose: $crate::store::TokenPurpose,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::store::one_time_tokens::OneTimeTokenRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT user_id, email FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
                )
                .bind(hash)
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(self.read())
                .await?)
            }

            async fn confirm_email(
                &self,
                hash: &[u8],
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let token: Option<($crate::domain::UserId, String)> = sqlx::query_as(
                    "DELETE FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3
                     RETURNING user_id, email",
                )
                .bind(hash)
                .bind($crate::store::TokenPurpose::VerifyEmail.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_id, email)) = token else {
                    return Ok(None);
                };
                let user: Option<$crate::store::UserRecord> = sqlx::query_as(
                    "UPDATE users SET email_verified = TRUE, updated_at = $3 WHERE id = $1 AND email = $2 RETURNING *",
                )
                .bind(user_id)
                .bind(&email)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if user.is_some() {
                    let event = event.about(user_id).detail("email", email.as_str());
                    $crate::store::audit::record_in!(tx, &event);
                    tx.commit().await?;
                    event.log();
                    self.changed($crate::store::Change::User(user_id)).await;
                } else {
                    tx.rollback().await?;
                }
                Ok(user)
            }

            async fn reset_password(
                &self,
                hash: &[u8],
                new_hash: &str,
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
            ) -> Result<Option<$crate::domain::UserId>, $crate::store::StoreError> {
                let purpose = $crate::store::TokenPurpose::ResetPassword.as_str();
                let mut tx = self.write().begin().await?;
                let token: Option<($crate::domain::UserId, String)> = sqlx::query_as(
                    "DELETE FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3
                     RETURNING user_id, email",
                )
                .bind(hash)
                .bind(purpose)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_id, email)) = token else {
                    return Ok(None);
                };
                // Only while the account still uses the address the link was sent to; the
                // link reached that address, which proves it.
                let keep: Option<$crate::domain::SessionId> = None;
                let ended = $crate::store::users::set_password_in!(tx, user_id, new_hash, keep, now, Some(&email));
                let Some(ended) = ended else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let event = event.about(user_id).detail("sessions_ended", ended);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(user_id)).await;
                Ok(Some(user_id))
            }
        }
    };
}
pub(crate) use impl_one_time_token_store;
