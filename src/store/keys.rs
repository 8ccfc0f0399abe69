//! Signing keys, of access tokens and of ID tokens. Private keys are PKCS#8 (Ed25519) or PKCS#1 (RSA) DER,
//! encrypted when `encrypted_with` names the key-encryption key that sealed them.
//!
//! A key signs from `signs_from` until `retired_at` (the `signs_from` of the next key
//! added): a rotation publishes the new key at once but lets it sign only later, so
//! that verifiers have fetched it before they meet it. A retired key stays published
//! until its tokens have expired.

use crate::domain::Timestamp;

use super::StoreError;

/// A signing key row. `Debug` leaves the private key out.
#[derive(Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    /// The private key, plaintext DER or sealed (see `encrypted_with`).
    pub private_der: Vec<u8>,
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When it stops signing; `None` while no newer key is scheduled.
    pub retired_at: Option<Timestamp>,
    /// When it starts signing.
    pub signs_from: Timestamp,
    /// The id of the key-encryption key that sealed `private_der`; `None`: plaintext.
    pub encrypted_with: Option<String>,
    /// What it signs: `access` tokens or `id` tokens; each kind has its own schedule.
    pub purpose: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("purpose", &self.purpose)
            .field("signs_from", &self.signs_from)
            .field("retired_at", &self.retired_at)
            .field("encrypted_with", &self.encrypted_with)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
pub trait KeyStore {
    /// Keys not retired before `retired_after` (scheduled ones included), newest first.
    async fn signing_keys(&self, retired_after: Timestamp) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds `key`. Every key of its purpose that would still sign at `key.signs_from`
    /// retires then; with `replace_all` every other key of its purpose is deleted
    /// instead (a compromised key).
    /// Records `event` with the change.
    async fn add_signing_key(
        &self,
        key: &StoredKey,
        replace_all: bool,
        event: &super::AuditEvent,
    ) -> Result<(), StoreError>;
    /// The installation's secret called `name`: `fresh` stored now when there is none
    /// yet (the first instance to ask wins a race), else the stored one.
    async fn instance_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Keys of any age whose private key is stored in plaintext.
    async fn plaintext_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Replaces a plaintext private key by its sealed form; `false` when the row is
    /// gone or was sealed meanwhile (another instance got there first).
    async fn encrypt_signing_key(&self, sealed: &SealedKey<'_>) -> Result<bool, StoreError>;
}

/// A private key sealed with a key-encryption key: named fields, since the key's and
/// the key-encryption key's ids are both text.
pub struct SealedKey<'a> {
    /// The signing key's `kid`.
    pub kid: &'a str,
    pub private_der: &'a [u8],
    /// The id of the key-encryption key.
    pub encrypted_with: &'a str,
}

macro_rules! impl_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $store {
            async fn signing_keys(
                &self,
                retired_after: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::store::StoredKey>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
                )
                .bind(retired_after)
                .fetch_all(self.read())
                .await?)
            }

            async fn add_signing_key(
                &self,
                key: &$crate::store::StoredKey,
                replace_all: bool,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                if replace_all {
                    sqlx::query("DELETE FROM signing_keys WHERE purpose = $1")
                        .bind(&key.purpose)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query(
                        "UPDATE signing_keys SET retired_at = $1
                         WHERE purpose = $2 AND (retired_at IS NULL OR retired_at > $1)",
                    )
                    .bind(key.signs_from)
                    .bind(&key.purpose)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO signing_keys
                         (kid, algorithm, private_der, public_jwk, created_at, retired_at, signs_from, encrypted_with,
                          purpose)
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8)",
                )
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.private_der)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .bind(key.signs_from)
                .bind(&key.encrypted_with)
                .bind(&key.purpose)
                .execute(&mut *tx)
                .await?;
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Keys).await;
                Ok(())
            }

            async fn instance_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, $crate::store::StoreError> {
                sqlx::query("INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(fresh)
                    .execute(self.write())
                    .await?;
                Ok(sqlx::query_scalar("SELECT value FROM instance_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.write())
                    .await?)
            }

            async fn plaintext_signing_keys(&self) -> Result<Vec<$crate::store::StoredKey>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM signing_keys WHERE encrypted_with IS NULL ORDER BY created_at, kid")
                    .fetch_all(self.write())
                    .await?)
            }

            async fn encrypt_signing_key(
                &self,
                key: &$crate::store::SealedKey<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET private_der = $2, encrypted_with = $3
                     WHERE kid = $1 AND encrypted_with IS NULL",
                )
                .bind(key.kid)
                .bind(key.private_der)
                .bind(key.encrypted_with)
                .execute(self.write())
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use impl_key_store;
