//! Single-use tokens sent by email (address verification, password reset), stored as
//! SHA-256 digests with the address they were sent to and an expiry.

use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

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
    pub user_id: Uuid,
    pub purpose: TokenPurpose,
    pub email: &'a str,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A stored token that is still valid.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OneTimeTokenRecord {
    pub user_id: Uuid,
    pub email: String,
}

#[async_trait::async_trait]
pub trait OneTimeTokenStore {
    async fn insert_one_time_token(&self, token: &NewOneTimeToken<'_>) -> Result<(), StoreError>;
    /// The valid (unexpired) token with this digest and purpose.
    async fn find_one_time_token(
        &self,
        hash: &[u8],
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError>;
}

macro_rules! impl_one_time_token_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::OneTimeTokenStore for $store {
            async fn insert_one_time_token(
                &self,
                t: &$crate::store::NewOneTimeToken<'_>,
            ) -> Result<(), $crate::store::StoreError> {
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
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn find_one_time_token(
                &self,
                hash: &[u8],
                purpose: $crate::store::TokenPurpose,
                now: time::OffsetDateTime,
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
        }
    };
}
pub(crate) use impl_one_time_token_store;
