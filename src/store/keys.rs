//! Access-token signing keys. Private keys are PKCS#8 (Ed25519) or PKCS#1 (RSA) DER;
//! a retired key no longer signs but stays published until its tokens have expired.

use time::OffsetDateTime;

use super::StoreError;

/// A signing key row. `Debug` leaves the private key out.
#[derive(Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub private_der: Vec<u8>,
    pub public_jwk: String,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
pub trait KeyStore {
    /// Keys not retired before `retired_after`, newest first.
    async fn signing_keys(&self, retired_after: OffsetDateTime) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds `key` as the signing key, retiring the others at `key.created_at`.
    async fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
}

macro_rules! impl_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $store {
            async fn signing_keys(
                &self,
                retired_after: time::OffsetDateTime,
            ) -> Result<Vec<$crate::store::StoredKey>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
                )
                .bind(retired_after)
                .fetch_all(self.read())
                .await?)
            }

            async fn add_signing_key(&self, key: &$crate::store::StoredKey) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                    .bind(key.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, private_der, public_jwk, created_at, retired_at)
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.private_der)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.changed($crate::store::Change::Keys).await;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_key_store;
