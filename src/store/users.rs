//! User accounts. Usernames are unique regardless of case (an index on
//! `lower(username)`), emails are stored lowercased and unique: the database, not a
//! pre-check, decides who wins a race for a name.

use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// A user row. `Debug` leaves the password hash out.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email_verified", &self.email_verified)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user about to be created.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub password_hash: &'a str,
    pub is_admin: bool,
    pub now: OffsetDateTime,
}

/// Changes to a user's name and address; `None` leaves a field alone.
pub struct ProfileChange<'a> {
    pub username: Option<&'a str>,
    /// A new address also becomes unverified.
    pub email: Option<&'a str>,
}

#[async_trait::async_trait]
pub trait UserStore {
    /// Inserts a user; `Conflict("username" | "email")` when either is taken.
    async fn insert_user(&self, user: &NewUser<'_>) -> Result<UserRecord, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;
    /// Finds a user by email (any case) or username (any case).
    async fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Which of `username` and `email` is already taken, if any.
    async fn taken(&self, username: Option<&str>, email: Option<&str>) -> Result<Option<&'static str>, StoreError>;
    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the hash without touching sessions (a rehash after login).
    async fn replace_password_hash(&self, id: Uuid, old_hash: &str, new_hash: &str) -> Result<(), StoreError>;
    /// Sets a new password and, in the same transaction, ends every session of the
    /// user except `keep` and voids every reset link.
    async fn change_password(
        &self,
        id: Uuid,
        new_hash: &str,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Deletes the user and, by cascade, everything of theirs.
    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError>;
}

macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn insert_user(
                &self,
                u: &$crate::store::NewUser<'_>,
            ) -> Result<$crate::store::UserRecord, $crate::store::StoreError> {
                let row = sqlx::query_as(
                    "INSERT INTO users (id, username, email, email_verified, password_hash, is_admin, disabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $7) RETURNING *",
                )
                .bind(u.id)
                .bind(u.username)
                .bind(u.email)
                .bind(u.email_verified)
                .bind(u.password_hash)
                .bind(u.is_admin)
                .bind(u.now)
                .fetch_one(self.write())
                .await?;
                Ok(row)
            }

            async fn user_by_id(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(self.read()).await?)
            }

            async fn user_by_login(
                &self,
                login: &str,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                // An email always holds '@', a username never does. The case-insensitive
                // key is Unicode lowercase computed here, not SQL lower(), which folds
                // only ASCII on SQLite; usernames are ASCII, so lower(username) agrees.
                let login = login.to_lowercase();
                let query = if login.contains('@') {
                    "SELECT * FROM users WHERE email = $1"
                } else {
                    "SELECT * FROM users WHERE lower(username) = $1"
                };
                Ok(sqlx::query_as(query).bind(login).fetch_optional(self.read()).await?)
            }

            async fn taken(
                &self,
                username: Option<&str>,
                email: Option<&str>,
            ) -> Result<Option<&'static str>, $crate::store::StoreError> {
                if let Some(username) = username {
                    let hit: Option<(uuid::Uuid,)> =
                        sqlx::query_as("SELECT id FROM users WHERE lower(username) = lower($1)")
                            .bind(username)
                            .fetch_optional(self.read())
                            .await?;
                    if hit.is_some() {
                        return Ok(Some("username"));
                    }
                }
                if let Some(email) = email {
                    let hit: Option<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
                        .bind(email)
                        .fetch_optional(self.read())
                        .await?;
                    if hit.is_some() {
                        return Ok(Some("email"));
                    }
                }
                Ok(None)
            }

            async fn update_profile(
                &self,
                id: uuid::Uuid,
                change: &$crate::store::ProfileChange<'_>,
                now: time::OffsetDateTime,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let row: Option<$crate::store::UserRecord> = sqlx::query_as(
                    "UPDATE users SET
                        username = COALESCE($2, username),
                        email_verified = CASE WHEN $3 IS NULL OR $3 = email THEN email_verified ELSE FALSE END,
                        email = COALESCE($3, email),
                        updated_at = $4
                     WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(change.username)
                .bind(change.email)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if change.email.is_some() {
                    // A reset link sent to the old address must not reach the account.
                    sqlx::query($crate::store::VOID_RESET_LINKS).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                self.changed($crate::store::Change::User(id)).await;
                Ok(row)
            }

            async fn replace_password_hash(
                &self,
                id: uuid::Uuid,
                old_hash: &str,
                new_hash: &str,
            ) -> Result<(), $crate::store::StoreError> {
                // Only if nobody changed the password in the meantime.
                sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                    .bind(id)
                    .bind(old_hash)
                    .bind(new_hash)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn change_password(
                &self,
                id: uuid::Uuid,
                new_hash: &str,
                keep: Option<uuid::Uuid>,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(new_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                    .bind(id)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?;
                // A reset link issued before must not undo the change.
                sqlx::query($crate::store::VOID_RESET_LINKS).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                self.changed($crate::store::Change::User(id)).await;
                Ok(())
            }

            async fn delete_user(&self, id: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(self.write()).await?;
                self.changed($crate::store::Change::User(id)).await;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_user_store;
