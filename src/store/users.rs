//! User accounts. Usernames are unique regardless of case (an index on
//! `lower(username)`), emails are stored lowercased and unique: the database, not a
//! pre-check, decides who wins a race for a name. Anything that changes who may log
//! in (a new password, disabling) ends the user's sessions in the same transaction,
//! so that no process serving the same database can see one change without the other.

use super::AuditEvent;
use super::StoreError;
use crate::domain::{Email, FieldError, SessionId, Timestamp, UserId, Username};

/// A user row. `Debug` leaves the password hash out.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub password_hash: String,
    /// Role names, sorted and joined by spaces (see [`crate::domain::roles`]).
    pub roles: String,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl UserRecord {
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        crate::domain::roles::split(&self.roles)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email_verified", &self.email_verified)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user about to be created.
pub struct NewUser<'a> {
    pub id: UserId,
    pub username: &'a Username,
    pub email: &'a Email,
    pub email_verified: bool,
    pub password_hash: &'a str,
    /// In stored form.
    pub roles: &'a str,
    pub now: Timestamp,
}

/// Changes to a user's name and address; `None` leaves a field alone.
pub struct ProfileChange<'a> {
    pub username: Option<&'a Username>,
    /// A new address also becomes unverified.
    pub email: Option<&'a Email>,
}

/// What an admin changes of a user; `None` leaves a field alone. A new address becomes
/// unverified unless `email_verified` says otherwise; disabling ends every session.
#[derive(Debug, Default, Clone)]
pub struct AdminChange {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
    /// In stored form.
    pub roles: Option<String>,
}

/// Decides an admin's change from the user as the transaction sees them (locked) and
/// the number of *other* enabled admins (locked too): the change with its events,
/// `None` when nothing would change, or a refusal. Deciding inside the transaction
/// keeps concurrent changes from undoing each other (two role changes each computed
/// from an older set) and two admins from demoting each other at once.
pub type AdminPlan<'a> =
    dyn Fn(&UserRecord, u64) -> Result<Option<(AdminChange, Vec<AuditEvent>)>, FieldError> + Send + Sync + 'a;

/// What [`UserStore::admin_delete_user`] did.
#[derive(Debug)]
pub enum AdminDelete {
    Deleted,
    NoUser,
    /// The user is the last enabled admin.
    LastAdmin,
}

/// Locks every enabled admin, in id order (so that two admin changes at once cannot
/// deadlock, whichever users they touch), and counts those other than `$id`.
macro_rules! other_admins {
    ($store:ty, $tx:expr, $id:expr) => {{
        let sql = format!(
            "SELECT id FROM users WHERE NOT disabled AND {}(' ' || roles || ' ', ' admin ') > 0 ORDER BY id{}",
            <$store>::POSITION,
            <$store>::FOR_UPDATE
        );
        let admins: Vec<($crate::domain::UserId,)> = sqlx::query_as(&sql).fetch_all(&mut *$tx).await?;
        admins.iter().filter(|(admin,)| *admin != $id).count() as u64
    }};
}
pub(crate) use other_admins;

/// What [`UserStore::admin_update`] did.
#[derive(Debug)]
pub enum AdminUpdate {
    NoUser,
    Refused(FieldError),
    Unchanged(UserRecord),
    Updated { before: UserRecord, after: UserRecord },
}

/// What the admin search looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSearch {
    /// That account.
    Id(UserId),
    /// Usernames (lowercased) or emails that start with this text.
    Prefix(String),
}

/// Where a page of the admin user list starts: usernames (lowercased) in byte order
/// first, then, for a prefix search, the accounts found only by their email in email
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPosition {
    pub by_email: bool,
    pub key: String,
}

/// A page of the admin user list.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub search: Option<UserSearch>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    /// Strictly after this position.
    pub after: Option<UserPosition>,
    pub limit: u32,
}

impl UserQuery {
    /// The position of `user` in this query's order.
    pub fn position(&self, user: &UserRecord) -> UserPosition {
        let username = user.username.to_lowercase();
        match &self.search {
            Some(UserSearch::Prefix(prefix)) if !username.starts_with(prefix.as_str()) => {
                UserPosition { by_email: true, key: user.email.clone() }
            }
            _ => UserPosition { by_email: false, key: username },
        }
    }
}

/// The smallest text greater than every text that starts with `prefix`, in byte order
/// (no stored name holds U+10FFFF).
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

/// Which sessions survive a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepSessions {
    /// None: a reset, or an operator's `set-password`.
    None,
    /// The one that changed the password.
    This(SessionId),
}

impl KeepSessions {
    pub(crate) fn id(self) -> Option<SessionId> {
        match self {
            Self::None => None,
            Self::This(id) => Some(id),
        }
    }
}

/// Rows per `INSERT` of an import: 9 bound values each stays well below SQLite's
/// 32 766 and PostgreSQL's 65 535 parameters per statement.
pub const IMPORT_BATCH_ROWS: usize = 1_000;

/// A user brought in from another system with an existing password hash.
#[derive(Clone)]
pub struct ImportedUser {
    pub id: UserId,
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
pub trait UserStore {
    /// Inserts a user and `event`; `Conflict("username" | "email")` when either is taken.
    async fn insert_user(&self, user: &NewUser<'_>, event: &AuditEvent) -> Result<UserRecord, StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Finds a user by email (any case) or username (any case).
    async fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Which of `username` and `email` is already taken, if any.
    async fn taken(
        &self,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<Option<&'static str>, StoreError>;
    /// Renames the user or changes the address (which then becomes unverified and
    /// voids the reset links sent to the old one).
    async fn update_profile(
        &self,
        id: UserId,
        change: &ProfileChange<'_>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the hash without touching sessions (a rehash after login), only if it
    /// is still `old_hash`.
    async fn replace_password_hash(&self, id: UserId, old_hash: &str, new_hash: &str) -> Result<(), StoreError>;
    /// Sets a new password and, in the same transaction, ends every session of the
    /// user but `keep` and voids every reset link. `None` when there is no such user,
    /// else the number of sessions ended.
    async fn set_password(
        &self,
        id: UserId,
        new_hash: &str,
        keep: KeepSessions,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<u64>, StoreError>;
    /// Deletes the user and, by cascade, everything of theirs (but their events).
    async fn delete_user(&self, id: UserId, event: &AuditEvent) -> Result<bool, StoreError>;
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Disables or enables a user; disabling also ends all their sessions, in one
    /// transaction. `None` when there is no such user, else the sessions ended.
    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Option<u64>, StoreError>;
    /// An admin's change, decided by `plan` from the locked row and written with its
    /// event in one transaction; `Conflict` when a name is taken.
    async fn admin_update(&self, id: UserId, now: Timestamp, plan: &AdminPlan<'_>) -> Result<AdminUpdate, StoreError>;
    /// Deletes the user (as [`Self::delete_user`]) unless they are the last enabled
    /// admin, deciding in the transaction.
    async fn admin_delete_user(&self, id: UserId, event: &AuditEvent) -> Result<AdminDelete, StoreError>;
    /// A page of the admin user list, in the order of [`UserPosition`].
    async fn search_users(&self, query: &UserQuery) -> Result<Vec<UserRecord>, StoreError>;
    /// Every taken username (lowercased) and email, to check an import against.
    async fn taken_names(&self) -> Result<TakenNames, StoreError>;
    /// Inserts all `users` in one transaction, [`IMPORT_BATCH_ROWS`] per statement,
    /// calling `progress` with the number inserted so far after each batch. Either
    /// all are inserted or none (`Conflict` when a name was taken meanwhile).
    async fn import_users(
        &self,
        users: &[ImportedUser],
        now: Timestamp,
        progress: &(dyn Fn(u64) + Send + Sync),
        event: &AuditEvent,
    ) -> Result<u64, StoreError>;
}

/// The one body of "a new password" inside a transaction: sets the hash, ends every
/// session but `keep`, voids the reset links. With `proven_email` (a reset link that
/// reached that address) only while the account still has that address, and marks it
/// verified. Evaluates to the sessions ended, or `None` when no user matched.
macro_rules! set_password_in {
    ($tx:expr, $id:expr, $hash:expr, $keep:expr, $now:expr, $proven_email:expr) => {{
        let proven_email: Option<&str> = $proven_email;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3,
                email_verified = CASE WHEN $4 IS NULL THEN email_verified ELSE TRUE END
             WHERE id = $1 AND ($4 IS NULL OR email = $4)",
        )
        .bind($id)
        .bind($hash)
        .bind($now)
        .bind(proven_email)
        .execute(&mut *$tx)
        .await?;
        if updated.rows_affected() == 0 {
            None
        } else {
            let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
                .bind($id)
                .bind($keep)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            // A reset link issued before must not undo the change, nor a sign-in that
            // proved the old password finish its second step.
            sqlx::query($crate::store::VOID_RESET_LINKS).bind($id).execute(&mut *$tx).await?;
            sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1").bind($id).execute(&mut *$tx).await?;
            Some(ended)
        }
    }};
}
pub(crate) use set_password_in;

macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn insert_user(
                &self,
                u: &$crate::store::NewUser<'_>,
                event: &$crate::store::AuditEvent,
            ) -> Result<$crate::store::UserRecord, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let row = sqlx::query_as(
                    "INSERT INTO users (id, username, email, email_verified, password_hash, roles, disabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $7) RETURNING *",
                )
                .bind(u.id)
                .bind(u.username.as_str())
                .bind(u.email.as_str())
                .bind(u.email_verified)
                .bind(u.password_hash)
                .bind(u.roles)
                .bind(u.now)
                .fetch_one(&mut *tx)
                .await?;
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                Ok(row)
            }

            async fn user_by_id(
                &self,
                id: $crate::domain::UserId,
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
                username: Option<&$crate::domain::Username>,
                email: Option<&$crate::domain::Email>,
            ) -> Result<Option<&'static str>, $crate::store::StoreError> {
                if let Some(username) = username {
                    let hit: Option<($crate::domain::UserId,)> =
                        sqlx::query_as("SELECT id FROM users WHERE lower(username) = lower($1)")
                            .bind(username.as_str())
                            .fetch_optional(self.read())
                            .await?;
                    if hit.is_some() {
                        return Ok(Some("username"));
                    }
                }
                if let Some(email) = email {
                    let hit: Option<($crate::domain::UserId,)> =
                        sqlx::query_as("SELECT id FROM users WHERE email = $1")
                            .bind(email.as_str())
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
                id: $crate::domain::UserId,
                change: &$crate::store::ProfileChange<'_>,
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
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
                .bind(change.username.map($crate::domain::Username::as_str))
                .bind(change.email.map($crate::domain::Email::as_str))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if row.is_none() {
                    return Ok(None);
                }
                if change.email.is_some() {
                    // A reset link sent to the old address must not reach the account.
                    sqlx::query($crate::store::VOID_RESET_LINKS).bind(id).execute(&mut *tx).await?;
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(id)).await;
                Ok(row)
            }

            async fn replace_password_hash(
                &self,
                id: $crate::domain::UserId,
                old_hash: &str,
                new_hash: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                    .bind(id)
                    .bind(old_hash)
                    .bind(new_hash)
                    .execute(self.write())
                    .await?;
                Ok(())
            }

            async fn set_password(
                &self,
                id: $crate::domain::UserId,
                new_hash: &str,
                keep: $crate::store::KeepSessions,
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
            ) -> Result<Option<u64>, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let ended = $crate::store::users::set_password_in!(tx, id, new_hash, keep.id(), now, None);
                let Some(ended) = ended else {
                    return Ok(None);
                };
                let event = event.clone().detail("sessions_ended", ended);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(id)).await;
                Ok(Some(ended))
            }

            async fn delete_user(
                &self,
                id: $crate::domain::UserId,
                event: &$crate::store::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                $crate::store::audit::record_in!(tx, event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(id)).await;
                Ok(true)
            }

            async fn list_users(&self) -> Result<Vec<$crate::store::UserRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT * FROM users ORDER BY created_at, id").fetch_all(self.read()).await?)
            }

            async fn set_disabled(
                &self,
                id: $crate::domain::UserId,
                disabled: bool,
                now: $crate::domain::Timestamp,
                event: &$crate::store::AuditEvent,
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
                let mut event = event.clone();
                if disabled {
                    event = event.detail("sessions_ended", ended);
                }
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(id)).await;
                Ok(Some(ended))
            }

            async fn admin_update(
                &self,
                id: $crate::domain::UserId,
                now: $crate::domain::Timestamp,
                plan: &$crate::store::users::AdminPlan<'_>,
            ) -> Result<$crate::store::users::AdminUpdate, $crate::store::StoreError> {
                use $crate::store::users::AdminUpdate;
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let other_admins = $crate::store::users::other_admins!($store, tx, id);
                let current: Option<$crate::store::UserRecord> =
                    sqlx::query_as(&format!("SELECT * FROM users WHERE id = $1{}", <$store>::FOR_UPDATE))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(current) = current else {
                    return Ok(AdminUpdate::NoUser);
                };
                let (change, events) = match plan(&current, other_admins) {
                    Err(refusal) => return Ok(AdminUpdate::Refused(refusal)),
                    Ok(None) => return Ok(AdminUpdate::Unchanged(current)),
                    Ok(Some(planned)) => planned,
                };
                let row: Option<$crate::store::UserRecord> = sqlx::query_as(
                    "UPDATE users SET
                        username = COALESCE($2, username),
                        email_verified = CASE WHEN $4 IS NOT NULL THEN $4
                            WHEN $3 IS NULL OR $3 = email THEN email_verified ELSE FALSE END,
                        email = COALESCE($3, email),
                        disabled = COALESCE($5, disabled),
                        roles = COALESCE($6, roles),
                        updated_at = $7
                     WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(change.username.as_ref().map($crate::domain::Username::as_str))
                .bind(change.email.as_ref().map($crate::domain::Email::as_str))
                .bind(change.email_verified)
                .bind(change.disabled)
                .bind(change.roles.as_deref())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(after) = row else {
                    return Ok(AdminUpdate::NoUser);
                };
                let mut events = events;
                if change.disabled == Some(true) {
                    let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    for event in events.iter_mut().filter(|e| e.kind == $crate::store::EventType::UserDisabled) {
                        event.details.insert("sessions_ended".to_owned(), ended.into());
                    }
                }
                if change.email.is_some() {
                    sqlx::query($crate::store::VOID_RESET_LINKS).bind(id).execute(&mut *tx).await?;
                }
                for event in &events {
                    $crate::store::audit::record_in!(tx, event);
                }
                tx.commit().await?;
                events.iter().for_each($crate::store::AuditEvent::log);
                self.changed($crate::store::Change::User(id)).await;
                Ok(AdminUpdate::Updated { before: current, after })
            }

            async fn admin_delete_user(
                &self,
                id: $crate::domain::UserId,
                event: &$crate::store::AuditEvent,
            ) -> Result<$crate::store::users::AdminDelete, $crate::store::StoreError> {
                use $crate::store::users::AdminDelete;
                let mut tx = self.write().begin_with(<$store>::BEGIN_WRITE).await?;
                let other_admins = $crate::store::users::other_admins!($store, tx, id);
                let user: Option<$crate::store::UserRecord> =
                    sqlx::query_as(&format!("SELECT * FROM users WHERE id = $1{}", <$store>::FOR_UPDATE))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(user) = user else {
                    return Ok(AdminDelete::NoUser);
                };
                if other_admins == 0 && !user.disabled && user.has_role($crate::domain::roles::ADMIN) {
                    return Ok(AdminDelete::LastAdmin);
                }
                sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
                let event = event.clone().detail("username", user.username.as_str());
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                self.changed($crate::store::Change::User(id)).await;
                Ok(AdminDelete::Deleted)
            }

            async fn search_users(
                &self,
                q: &$crate::store::UserQuery,
            ) -> Result<Vec<$crate::store::UserRecord>, $crate::store::StoreError> {
                use $crate::store::{UserSearch, users::prefix_end};
                let bytes = <$store>::BYTE_ORDER;
                let username = format!("lower(username){bytes}");
                let email = format!("email{bytes}");
                macro_rules! filters {
                    ($sql:expr) => {
                        if let Some(role) = &q.role {
                            // A whole name between spaces, compared byte for byte (SQLite's
                            // LIKE would ignore case).
                            $sql.push(format!(" AND {}(' ' || roles || ' ', ", <$store>::POSITION))
                                .push_bind(format!(" {role} "))
                                .push(") > 0");
                        }
                        if let Some(disabled) = q.disabled {
                            $sql.push(" AND disabled = ").push_bind(disabled);
                        }
                        if let Some(verified) = q.email_verified {
                            $sql.push(" AND email_verified = ").push_bind(verified);
                        }
                    };
                }
                let limit = i64::from(q.limit);
                let prefix = match &q.search {
                    Some(UserSearch::Id(id)) => {
                        let mut sql = sqlx::QueryBuilder::new("SELECT * FROM users WHERE id = ");
                        sql.push_bind(*id);
                        filters!(sql);
                        if q.after.is_some() {
                            return Ok(Vec::new());
                        }
                        return Ok(sql.build_query_as().fetch_all(self.read()).await?);
                    }
                    Some(UserSearch::Prefix(prefix)) => Some(prefix.as_str()),
                    None => None,
                };
                let mut found = Vec::new();
                let after_email = q.after.as_ref().filter(|a| a.by_email);
                if after_email.is_none() {
                    let mut sql = sqlx::QueryBuilder::new("SELECT * FROM users WHERE TRUE");
                    if let Some(prefix) = prefix {
                        sql.push(format!(" AND {username} >= ")).push_bind(prefix.to_owned());
                        sql.push(format!(" AND {username} < ")).push_bind(prefix_end(prefix));
                    }
                    if let Some(after) = &q.after {
                        sql.push(format!(" AND {username} > ")).push_bind(after.key.clone());
                    }
                    filters!(sql);
                    sql.push(format!(" ORDER BY {username} LIMIT ")).push_bind(limit);
                    found = sql.build_query_as().fetch_all(self.read()).await?;
                }
                let Some(prefix) = prefix else {
                    return Ok(found);
                };
                let rest = limit - found.len() as i64;
                if rest <= 0 {
                    return Ok(found);
                }
                // Then the accounts whose email starts with the text but whose username does not.
                let mut sql = sqlx::QueryBuilder::new("SELECT * FROM users WHERE ");
                sql.push(format!("{email} >= ")).push_bind(prefix.to_owned());
                sql.push(format!(" AND {email} < ")).push_bind(prefix_end(prefix));
                sql.push(format!(" AND NOT ({username} >= ")).push_bind(prefix.to_owned());
                sql.push(format!(" AND {username} < ")).push_bind(prefix_end(prefix)).push(")");
                if let Some(after) = after_email {
                    sql.push(format!(" AND {email} > ")).push_bind(after.key.clone());
                }
                filters!(sql);
                sql.push(format!(" ORDER BY {email} LIMIT ")).push_bind(rest);
                let more: Vec<$crate::store::UserRecord> = sql.build_query_as().fetch_all(self.read()).await?;
                found.extend(more);
                Ok(found)
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
                now: $crate::domain::Timestamp,
                progress: &(dyn Fn(u64) + Send + Sync),
                event: &$crate::store::AuditEvent,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.write().begin().await?;
                let mut inserted = 0u64;
                for batch in users.chunks($crate::store::IMPORT_BATCH_ROWS) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO users (id, username, email, email_verified, password_hash, roles, disabled, created_at, updated_at) ",
                    );
                    insert.push_values(batch, |mut row, u| {
                        row.push_bind(u.id)
                            .push_bind(u.username.as_str())
                            .push_bind(u.email.as_str())
                            .push_bind(u.email_verified)
                            .push_bind(u.password_hash.as_str())
                            .push_bind("")
                            .push_bind(false)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    inserted += insert.build().execute(&mut *tx).await?.rows_affected();
                    progress(inserted);
                }
                let event = event.clone().detail("users", inserted);
                $crate::store::audit::record_in!(tx, &event);
                tx.commit().await?;
                event.log();
                Ok(inserted)
            }
        }
    };
}
pub(crate) use impl_user_store;
