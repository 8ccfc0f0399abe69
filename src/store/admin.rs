//! Operator queries behind the `latch` command line: listing users, disabling them,
//! setting a password, and importing many users at once. Anything that changes who
//! may log in also ends the user's sessions in the same transaction, so that no
//! process serving the same database can see one change without the other.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, UserRecord};

/// Rows per `INSERT` of an import: 9 bound values each stays well below SQLite's
/// 32 766 and PostgreSQL's 65 535 parameters per statement.
pub const IMPORT_BATCH_ROWS: usize = 1_000;

/// A user brought in from another system with an existing password hash.
#[derive(Clone)]
pub struct ImportedUser {
    pub id: Uuid,
    pub username: String,
    /// Lowercased, as every stored email.
    pub email: String,
    pub email_verified: bool,
    pub password_hash: String,
}

impl std::fmt::Debug for ImportedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedUser").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// The usernames (lowercased) and emails already taken.
#[derive(Debug, Default)]
pub struct TakenNames {
    pub usernames: Vec<String>,
    pub emails: Vec<String>,
}

#[async_trait::async_trait]
pub trait AdminStore {
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Disables or enables a user; disabling also ends all their sessions, in one
    /// transaction. `None` when there is no such user, else the sessions ended.
    async fn set_disabled(&self, id: Uuid, disabled: bool, now: OffsetDateTime) -> Result<Option<u64>, StoreError>;
    /// Replaces the password hash and ends all the user's sessions, in one
    /// transaction. `None` when there is no such user, else the sessions ended.
    async fn set_password_hash_and_end_sessions(
        &self,
        id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;
    /// Every taken username (lowercased) and email, to check an import against.
    async fn taken_names(&self) -> Result<TakenNames, StoreError>;
    /// Inserts all `users` in one transaction, [`IMPORT_BATCH_ROWS`] per statement,
    /// calling `progress` with the number inserted so far after each batch. Either
    /// all are inserted or none (`Conflict` when a name was taken meanwhile).
    async fn import_users(
        &self,
        users: &[ImportedUser],
        now: OffsetDateTime,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, StoreError>;
}

macro_rules! impl_admin_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AdminStore for $store {
            async fn list_users(&self) -> Result<Vec<$crate::store::UserRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM users ORDER BY created_at, id").fetch_all(self.read()).await?)
            }

            async fn set_disabled(
                &self,
                id: uuid::Uuid,
                disabled: bool,
                now: time::OffsetDateTime,
            ) -> Result<Option<u64>, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(disabled)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let mut ended = 0;
                if disabled {
                    ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                self.changed($crate::store::Change::User(id)).await;
                Ok(Some(ended))
            }

            async fn set_password_hash_and_end_sessions(
                &self,
                id: uuid::Uuid,
                hash: &str,
                now: time::OffsetDateTime,
            ) -> Result<Option<u64>, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let ended =
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
                sqlx::query($crate::store::VOID_RESET_LINKS).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                self.changed($crate::store::Change::User(id)).await;
                Ok(Some(ended))
            }

            async fn taken_names(&self) -> Result<$crate::store::TakenNames, $crate::store::StoreError> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT lower(username), email FROM users").fetch_all(self.read()).await?;
                let (usernames, emails) = rows.into_iter().unzip();
                Ok($crate::store::TakenNames { usernames, emails })
            }

            async fn import_users(
                &self,
                users: &[$crate::store::ImportedUser],
                now: time::OffsetDateTime,
                progress: &(dyn Fn(u64) + Send + Sync),
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let mut inserted = 0u64;
                for batch in users.chunks($crate::store::IMPORT_BATCH_ROWS) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO users (id, username, email, email_verified, password_hash, is_admin, disabled, created_at, updated_at) ",
                    );
                    insert.push_values(batch, |mut row, u| {
                        row.push_bind(u.id)
                            .push_bind(u.username.as_str())
                            .push_bind(u.email.as_str())
                            .push_bind(u.email_verified)
                            .push_bind(u.password_hash.as_str())
                            .push_bind(false)
                            .push_bind(false)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    inserted += insert.build().execute(&mut *tx).await?.rows_affected();
                    progress(inserted);
                }
                tx.commit().await?;
                Ok(inserted)
            }
        }
    };
}
pub(crate) use impl_admin_store;
