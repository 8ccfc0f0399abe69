//! Registered OAuth clients. A client's lists (origins, redirect URIs) are stored as
//! JSON arrays in text columns, which read the same on both backends; its secret as
//! a SHA-256 digest. Deleting a client ends the sessions it started.

use super::StoreError;
use crate::domain::Timestamp;

/// A client row. `Debug` leaves the secret's digest out.
#[derive(Clone, sqlx::FromRow)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    /// Has a secret and must authenticate with it.
    pub confidential: bool,
    /// Trusted by the operator: no consent screen (the OpenID provider's flows).
    pub first_party: bool,
    /// SHA-256 of the secret, for confidential clients.
    pub secret_hash: Option<Vec<u8>>,
    /// JSON array of exact origins allowed for CORS.
    pub origins: String,
    /// JSON array of exact redirect URIs.
    pub redirect_uris: String,
    /// JSON array of exact post-logout redirect URIs.
    pub post_logout_redirect_uris: String,
    /// Space-separated scopes the client may be granted.
    pub scopes: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("confidential", &self.confidential)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
pub trait ClientStore {
    /// Adds a client; `Conflict("client_id")` when the id exists.
    async fn create_client(&self, client: &ClientRecord, event: &super::AuditEvent) -> Result<(), StoreError>;
    /// Every client, oldest first.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Replaces the settings of `client.client_id` (not its secret); false when there is
    /// none.
    /// Changes the settings of `client_id` (not its secret) with `apply`, run on the row
    /// as the transaction reads it (locked), so that concurrent changes of different
    /// settings never undo each other. `None` when there is no such client.
    async fn update_client(
        &self,
        client_id: &str,
        apply: &(dyn for<'c> Fn(&'c mut ClientRecord) + Send + Sync),
        event: &super::AuditEvent,
    ) -> Result<Option<ClientRecord>, StoreError>;
    /// Replaces the secret's digest of a confidential client alone, so that no
    /// concurrent change of settings can bring the old secret back; false when there is
    /// no such confidential client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
        now: crate::domain::Timestamp,
        event: &super::AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Deletes a client and ends its sessions; false when there was none.
    async fn delete_client(&self, client_id: &str, event: &super::AuditEvent) -> Result<bool, StoreError>;
}

macro_rules! impl_client_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientStore for $store {
            async fn create_client(
                &self,
                c: &$crate::store::ClientRecord,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query(
                    "INSERT INTO clients (client_id, name, confidential, first_party, secret_hash, origins,
                         redirect_uris, post_logout_redirect_uris, scopes, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (client_id) DO NOTHING",
                )
                .bind(&c.client_id)
                .bind(&c.name)
                .bind(c.confidential)
                .bind(c.first_party)
                .bind(&c.secret_hash)
                .bind(&c.origins)
                .bind(&c.redirect_uris)
                .bind(&c.post_logout_redirect_uris)
                .bind(&c.scopes)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Conflict("client_id"));
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Clients).await;
                Ok(())
            }

            async fn clients(&self) -> Result<Vec<$crate::store::ClientRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM clients ORDER BY created_at, client_id")
                    .fetch_all(self.read())
                    .await?)
            }

            async fn update_client(
                &self,
                client_id: &str,
                apply: &(dyn for<'c> Fn(&'c mut $crate::store::ClientRecord) + Send + Sync),
                event: &$crate::store::AuditEvent,
            ) -> Result<Option<$crate::store::ClientRecord>, $crate::store::StoreError> {
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let current: Option<$crate::store::ClientRecord> =
                    sqlx::query_as(&format!("SELECT * FROM clients WHERE client_id = $1{}", <$store>::FOR_UPDATE))
                        .bind(client_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(mut c) = current else {
                    return Ok(None);
                };
                apply(&mut c);
                sqlx::query(
                    "UPDATE clients SET name = $2, first_party = $3, origins = $4,
                         redirect_uris = $5, post_logout_redirect_uris = $6, scopes = $7, updated_at = $8
                     WHERE client_id = $1",
                )
                .bind(&c.client_id)
                .bind(&c.name)
                .bind(c.first_party)
                .bind(&c.origins)
                .bind(&c.redirect_uris)
                .bind(&c.post_logout_redirect_uris)
                .bind(&c.scopes)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Clients).await;
                Ok(Some(c))
            }

            async fn set_client_secret(
                &self,
                client_id: &str,
                secret_hash: &[u8],
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query(
                    "UPDATE clients SET secret_hash = $2, updated_at = $3 WHERE client_id = $1 AND confidential",
                )
                .bind(client_id)
                .bind(secret_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::Clients).await;
                Ok(true)
            }

            async fn delete_client(
                &self,
                client_id: &str,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done =
                    sqlx::query("DELETE FROM clients WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                let ended = sqlx::query("DELETE FROM sessions WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let event = event.clone().detail("sessions_ended", ended);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                // Sessions of many users ended: caches start over.
                self.changed($crate::store::Change::All).await;
                Ok(true)
            }
        }
    };
}
pub(crate) use impl_client_store;
