//! Accounts: registration, profile and password changes, deletion, email
//! verification and password reset. Like [`Sessions`], it knows nothing of HTTP:
//! handlers hand it parsed values and map [`AccountError`] to their answers. The rules
//! of who may change what (a password confirms an email change, the limits on
//! renames and emails, the reset link that only works for the address it reached)
//! live here.

use crate::auth::emails::Emails;
use crate::auth::limits::LimitError;
use crate::auth::password::HashError;
use crate::auth::secret;
use crate::auth::sessions::{Client, SessionError, Sessions};
use crate::domain::input::{self, NewAccount, ProfileUpdate};
use crate::domain::{Email, FieldError, NewPassword, PasswordPolicy, UserId, Username};
use crate::store::{Actor, EventType, KeepSessions, NewUser, ProfileChange, StoreError, TokenPurpose, UserRecord};

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Fields that break the rules, each named.
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// The username or email belongs to another account.
    #[error("{0} already taken")]
    Taken(&'static str),
    /// The password confirming a change is wrong or missing; names its field.
    #[error("wrong password")]
    WrongPassword(&'static str),
    /// When verified emails are required, an unverified account may only correct its
    /// address.
    #[error("email not verified")]
    NotVerified,
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// An emailed token that is unknown, used, expired, or for another address.
    #[error("invalid token")]
    InvalidToken(TokenPurpose),
    /// The account was deleted while the request was under way.
    #[error("no such account")]
    Gone,
    /// The password hashing queue is full.
    #[error("too many password checks at once")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<LimitError> for AccountError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LimitError::Store(e) => Self::Store(e),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy,
            HashError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<FieldError> for AccountError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

impl From<Vec<FieldError>> for AccountError {
    fn from(e: Vec<FieldError>) -> Self {
        Self::Invalid(e)
    }
}

/// The account service. Cheap to clone. It works on the store, hasher, limits and
/// clock of the [`Sessions`] it is given, which also checks the passwords that
/// confirm a change.
#[derive(Clone)]
pub struct Accounts {
    sessions: Sessions,
    emails: Emails,
    policy: PasswordPolicy,
}

impl Accounts {
    pub fn new(sessions: Sessions, emails: Emails, policy: PasswordPolicy) -> Self {
        Self { sessions, emails, policy }
    }

    /// The emails that prove an address and tell of changes.
    pub(super) fn emails(&self) -> &Emails {
        &self.emails
    }

    /// The rules a new password must follow.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Creates an account and sends its verification email.
    pub async fn register(&self, account: NewAccount, client: Client<'_>) -> Result<UserRecord, AccountError> {
        let NewAccount { username, email, password } = account;
        // Valid attempts count, taken names included, so that probing for accounts is limited.
        let limited = self.sessions.limiter.register(client.ip).await;
        self.limited(limited, "registration", None, client).await?;
        // Cheap check first, so that a taken name costs no hashing; the unique indexes
        // decide races.
        if let Some(field) = self.sessions.store.taken(Some(&username), Some(&email)).await? {
            return Err(AccountError::Taken(field));
        }
        let hash = self.sessions.hasher.hash(password.expose()).await?;
        let id = UserId::generate();
        let event = self
            .sessions
            .audit
            .event_from(EventType::Registration, Actor::User(Some(id)), client)
            .detail("username", username.as_str());
        let user = self
            .sessions
            .store
            .insert_user(
                &NewUser {
                    id,
                    username: &username,
                    email: &email,
                    email_verified: false,
                    password_hash: &hash,
                    roles: "",
                    now: self.sessions.clock.now(),
                },
                &event,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(field) => AccountError::Taken(field),
                e => e.into(),
            })?;
        tracing::info!(user = %user.id, "user registered");
        self.emails.send_verification(&user).await?;
        Ok(user)
    }

    /// Renames the user or changes their address. Giving the current value is no
    /// change. A new address needs `current_password`, becomes unverified, gets a
    /// verification email, and the old one a notice.
    pub async fn update_profile(
        &self,
        user: UserRecord,
        update: ProfileUpdate,
        current_password: Option<&str>,
        client: Client<'_>,
    ) -> Result<UserRecord, AccountError> {
        let new_username = update.username.filter(|u| u.as_str() != user.username);
        let new_email = update.email.filter(|e| e.as_str() != user.email);
        if new_email.is_some() {
            self.confirm_password(&user, current_password.unwrap_or(""), client, "current_password").await?;
        }
        if new_username.is_none() && new_email.is_none() {
            return Ok(user);
        }
        let renamed_to_other = new_username.as_ref().filter(|u| !u.as_str().eq_ignore_ascii_case(&user.username));
        if new_username.is_some() && self.sessions.settings.require_verified_email && !user.email_verified {
            // An unverified account may correct its address, nothing else.
            return Err(AccountError::NotVerified);
        }
        if renamed_to_other.is_some() || new_email.is_some() {
            // Limited like registration: a change must be no free "is this name taken" oracle.
            let limited = self.sessions.limiter.rename(user.id, client.ip).await;
            self.limited(limited, "rename", Some(user.id), client).await?;
        }
        if new_email.is_some() {
            // A new address gets a verification email (and the old one a notice), counted
            // like any other so that changing back and forth sends no flood of mail.
            let limited = self.sessions.limiter.verification_email(user.id).await;
            self.limited(limited, "verification_email", Some(user.id), client).await?;
        }
        if let Some(field) = self.sessions.store.taken(renamed_to_other, new_email.as_ref()).await? {
            return Err(AccountError::Taken(field));
        }
        let change = ProfileChange { username: new_username.as_ref(), email: new_email.as_ref() };
        let kind = if new_email.is_some() { EventType::EmailChange } else { EventType::UserUpdated };
        let mut event = self.sessions.audit.event_from(kind, Actor::User(Some(user.id)), client);
        if let Some(username) = &new_username {
            event = event.detail("username", username.as_str());
        }
        if let Some(email) = &new_email {
            event = event.detail("email", email.as_str());
        }
        let updated = self
            .sessions
            .store
            .update_profile(user.id, &change, self.sessions.clock.now(), &event)
            .await?
            .ok_or(AccountError::Gone)?;
        if new_email.is_some() {
            tracing::info!(event = "email_changed", user = %user.id, "email changed");
            self.emails.send_verification(&updated).await?;
            self.emails.send_email_changed(&user.email, &updated).await;
        }
        Ok(updated)
    }

    /// Sets a new password, confirmed by the current one, and ends every other session
    /// of the user (`keep` survives).
    pub async fn change_password(
        &self,
        user: &UserRecord,
        new_password: Option<&str>,
        current_password: Option<&str>,
        keep: KeepSessions,
        client: Client<'_>,
    ) -> Result<(), AccountError> {
        // The new password is judged before the current one is checked, so that a refusal
        // of the new one cannot confirm a guess of the current one.
        let new_password = self.new_password_for(user, new_password)?;
        self.confirm_password(user, current_password.unwrap_or(""), client, "current_password").await?;
        let hash = self.sessions.hasher.hash(new_password.expose()).await?;
        let event = self.sessions.audit.event_from(EventType::PasswordChange, Actor::User(Some(user.id)), client);
        self.sessions.store.set_password(user.id, &hash, keep, self.sessions.clock.now(), &event).await?;
        tracing::info!(event = "password_changed", user = %user.id, "password changed; other sessions ended");
        self.emails.send_password_changed(user).await;
        Ok(())
    }

    /// Deletes the account and everything of it, confirmed by its password.
    pub async fn delete(
        &self,
        user: &UserRecord,
        password: Option<&str>,
        client: Client<'_>,
    ) -> Result<(), AccountError> {
        self.confirm_password(user, password.unwrap_or(""), client, "password").await?;
        let event = self
            .sessions
            .audit
            .event_from(EventType::UserDeleted, Actor::User(Some(user.id)), client)
            .detail("username", user.username.as_str());
        self.sessions.store.delete_user(user.id, &event).await?;
        tracing::info!(user = %user.id, "account deleted");
        Ok(())
    }

    /// Sends a new verification link, unless the address is verified already; counted
    /// either way.
    pub async fn resend_verification(&self, user: &UserRecord, client: Client<'_>) -> Result<(), AccountError> {
        let limited = self.sessions.limiter.verification_email(user.id).await;
        self.limited(limited, "verification_email", Some(user.id), client).await?;
        if !user.email_verified {
            self.emails.send_verification(user).await?;
        }
        Ok(())
    }

    /// Uses a verification token: the address it was sent to becomes verified.
    pub async fn confirm_email(&self, token: &str, client: Client<'_>) -> Result<UserRecord, AccountError> {
        let event = self.sessions.audit.event_from(EventType::EmailVerification, Actor::User(None), client);
        let user = self
            .sessions
            .store
            .confirm_email(&secret::digest(token), self.sessions.clock.now(), &event)
            .await?
            .ok_or(AccountError::InvalidToken(TokenPurpose::VerifyEmail))?;
        tracing::info!(user = %user.id, "email verified");
        Ok(user)
    }

    /// Counts a reset request for the address; over the limit, nothing is sent.
    pub async fn limit_password_reset(&self, client: Client<'_>, email: &Email) -> Result<(), AccountError> {
        let limited = self.sessions.limiter.password_reset(client.ip, email.as_str()).await;
        self.limited(limited, "password_reset", None, client).await
    }

    /// Passes a limiter's answer on, recording a refusal.
    async fn limited(
        &self,
        result: Result<(), LimitError>,
        limit: &str,
        user: Option<UserId>,
        client: Client<'_>,
    ) -> Result<(), AccountError> {
        if let Err(LimitError::RateLimited { retry_after }) = &result {
            let event = self
                .sessions
                .audit
                .event_from(EventType::RateLimited, Actor::User(user), client)
                .failed()
                .detail("limit", limit)
                .detail("retry_after", *retry_after);
            self.sessions.audit.record_quietly(event).await;
        }
        Ok(result?)
    }

    /// Emails a reset link to the account using `email`, if there is one that is not
    /// disabled. Says nothing about which.
    pub async fn send_password_reset(&self, email: &Email) -> Result<(), StoreError> {
        match self.sessions.store.user_by_login(email.as_str()).await? {
            Some(user) if !user.disabled => self.emails.send_password_reset(&user).await,
            _ => {
                tracing::info!("password reset requested for an unknown or disabled account");
                Ok(())
            }
        }
    }

    /// Sets a new password with a reset token, which works only while the account
    /// still has the address it was sent to, and ends every session of the user. A
    /// refused password leaves the token valid.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: Client<'_>,
    ) -> Result<(), AccountError> {
        let hash = secret::digest(token);
        let now = self.sessions.clock.now();
        let record = self
            .sessions
            .store
            .find_one_time_token(&hash, TokenPurpose::ResetPassword, now)
            .await?
            .ok_or(AccountError::InvalidToken(TokenPurpose::ResetPassword))?;
        let user = self
            .sessions
            .store
            .user_by_id(record.user_id)
            .await?
            .filter(|u| u.email == record.email)
            .ok_or(AccountError::InvalidToken(TokenPurpose::ResetPassword))?;
        let new_password = self.new_password_for(&user, Some(new_password))?;
        let new_hash = self.sessions.hasher.hash(new_password.expose()).await?;
        let event = self.sessions.audit.event_from(EventType::PasswordReset, Actor::User(Some(user.id)), client);
        self.sessions
            .store
            .reset_password(&hash, &new_hash, self.sessions.clock.now(), &event)
            .await?
            .ok_or(AccountError::InvalidToken(TokenPurpose::ResetPassword))?;
        tracing::info!(event = "password_reset", user = %user.id, "password reset; all sessions ended");
        self.emails.send_password_changed(&user).await;
        Ok(())
    }

    /// `value` as a new password of `user`'s account (field `new_password`).
    fn new_password_for(&self, user: &UserRecord, value: Option<&str>) -> Result<NewPassword, FieldError> {
        // Stored names passed the same rules once; an imported oddity just skips the
        // "not your username" comparison.
        let username = Username::parse(&user.username).ok();
        let email = Email::parse(&user.email).ok();
        input::new_password(&self.policy, value, "new_password", username.as_ref(), email.as_ref())
    }

    /// The password that confirms a change, under the login limits.
    async fn confirm_password(
        &self,
        user: &UserRecord,
        password: &str,
        client: Client<'_>,
        field: &'static str,
    ) -> Result<(), AccountError> {
        match self.sessions.confirm_password(user, password, client).await {
            Ok(()) => Ok(()),
            Err(SessionError::InvalidCredentials) => Err(AccountError::WrongPassword(field)),
            Err(SessionError::RateLimited { retry_after }) => Err(AccountError::RateLimited { retry_after }),
            Err(SessionError::Busy) => Err(AccountError::Busy),
            Err(SessionError::Store(e)) => Err(e.into()),
            Err(e) => Err(AccountError::Internal(e.into())),
        }
    }
}
