//! What the admin API does, free of HTTP: read and change any account, end its
//! sessions, manage the client registry. Every change goes through the same store
//! operations as the user's own (disabling ends every session in its transaction, a
//! new address voids reset links) and is recorded with the admin as its actor.

use std::collections::BTreeSet;

use crate::auth::accounts::Accounts;
use crate::auth::registry::{self, ClientSpec};
use crate::auth::sessions::{Client, Sessions};
use crate::domain::{Email, FieldError, SessionId, UserId, Username, roles};
use crate::store::{
    Actor, AdminChange, AuditEvent, ClientRecord, EventType, SessionRecord, StoreError, UserQuery, UserRecord,
};

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user, session or client.
    #[error("not found")]
    NotFound,
    /// Fields that break the rules, each named.
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// The username or email belongs to another account.
    #[error("{0} already taken")]
    Taken(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for AdminError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

/// An admin's change to a user; `None` (or an empty list) leaves a field alone.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
    /// Replaces every role.
    pub roles: Option<Vec<String>>,
    pub add_roles: Vec<String>,
    pub remove_roles: Vec<String>,
}

/// The admin service. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    sessions: Sessions,
    accounts: Accounts,
}

impl Admin {
    pub fn new(sessions: Sessions, accounts: Accounts) -> Self {
        Self { sessions, accounts }
    }

    /// A page of users.
    pub async fn users(&self, query: &UserQuery) -> Result<Vec<UserRecord>, StoreError> {
        self.sessions.store.search_users(query).await
    }

    pub async fn user(&self, id: UserId) -> Result<UserRecord, AdminError> {
        self.sessions.store.user_by_id(id).await?.ok_or(AdminError::NotFound)
    }

    /// Changes a user. An admin cannot disable themself or take their own `admin` role
    /// away here (the command line can): the last admin must not lock everyone out.
    pub async fn update(
        &self,
        actor: &Actor,
        id: UserId,
        patch: UserPatch,
        client: Client<'_>,
    ) -> Result<UserRecord, AdminError> {
        let user = self.user(id).await?;
        let roles = new_roles(&user, &patch)?;
        let is_self = *actor == Actor::Admin(id);
        if is_self && patch.disabled == Some(true) {
            return Err(FieldError::new("disabled", "an admin cannot disable their own account").into());
        }
        if is_self && roles.as_deref().is_some_and(|r| !roles::split(r).any(|r| r == roles::ADMIN)) {
            return Err(FieldError::new("roles", "an admin cannot take away their own admin role").into());
        }
        let username = patch.username.filter(|u| u.as_str() != user.username);
        let email = patch.email.filter(|e| e.as_str() != user.email);
        let email_verified = patch.email_verified.filter(|&v| v != user.email_verified || email.is_some());
        let disabled = patch.disabled.filter(|&d| d != user.disabled);
        if username.is_none() && email.is_none() && email_verified.is_none() && disabled.is_none() && roles.is_none() {
            return Ok(user);
        }
        let renamed_to_other = username.as_ref().filter(|u| !u.as_str().eq_ignore_ascii_case(&user.username));
        if let Some(field) = self.sessions.store.taken(renamed_to_other, email.as_ref()).await? {
            return Err(AdminError::Taken(field));
        }
        let mut event = self
            .sessions
            .audit
            .from(event_type(&username, &email, email_verified, disabled, &roles), actor.clone(), client)
            .user(id);
        if let Some(username) = &username {
            event = event.detail("username", username.as_str());
        }
        if let Some(email) = &email {
            event = event.detail("email", email.as_str());
        }
        if let Some(verified) = email_verified {
            event = event.detail("email_verified", verified);
        }
        if let Some(disabled) = disabled {
            event = event.detail("disabled", disabled);
        }
        if let Some(roles) = &roles {
            let before: BTreeSet<&str> = user.roles().collect();
            let after: BTreeSet<&str> = roles::split(roles).collect();
            event = event
                .detail("roles_added", after.difference(&before).copied().collect::<Vec<_>>())
                .detail("roles_removed", before.difference(&after).copied().collect::<Vec<_>>());
        }
        let change = AdminChange {
            username: username.as_ref(),
            email: email.as_ref(),
            email_verified,
            disabled,
            roles: roles.as_deref(),
        };
        let updated = self
            .sessions
            .store
            .admin_update(id, &change, self.sessions.clock.now(), &event)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(field) => AdminError::Taken(field),
                e => e.into(),
            })?
            .ok_or(AdminError::NotFound)?;
        if email.is_some() {
            if !updated.email_verified {
                self.accounts.emails().send_verification(&updated).await?;
            }
            self.accounts.emails().send_email_changed(&user.email, &updated).await;
        }
        Ok(updated)
    }

    /// Deletes a user and everything of theirs. An admin cannot delete themself here.
    pub async fn delete(&self, actor: &Actor, id: UserId, client: Client<'_>) -> Result<(), AdminError> {
        if *actor == Actor::Admin(id) {
            return Err(FieldError::new("id", "an admin cannot delete their own account").into());
        }
        let event = self.sessions.audit.from(EventType::UserDeleted, actor.clone(), client).user(id);
        if self.sessions.store.delete_user(id, &event).await? { Ok(()) } else { Err(AdminError::NotFound) }
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(&self, id: UserId) -> Result<Vec<SessionRecord>, AdminError> {
        self.user(id).await?;
        Ok(self.sessions.list(id).await?)
    }

    /// Ends every session of the user; how many there were.
    pub async fn end_sessions(&self, actor: &Actor, id: UserId, client: Client<'_>) -> Result<u64, AdminError> {
        self.user(id).await?;
        let event =
            self.sessions.audit.from(EventType::SessionEnded, actor.clone(), client).detail("reason", "ended_by_admin");
        Ok(self.sessions.store.delete_user_sessions(id, &event).await?)
    }

    /// Ends one session of the user.
    pub async fn end_session(
        &self,
        actor: &Actor,
        id: UserId,
        sid: SessionId,
        client: Client<'_>,
    ) -> Result<(), AdminError> {
        let event =
            self.sessions.audit.from(EventType::SessionEnded, actor.clone(), client).detail("reason", "ended_by_admin");
        if self.sessions.store.delete_user_session(id, sid, &event).await? { Ok(()) } else { Err(AdminError::NotFound) }
    }

    /// Every registered client, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.sessions.store.clients().await
    }

    pub async fn client(&self, client_id: &str) -> Result<ClientRecord, AdminError> {
        let clients = self.clients().await?;
        clients.into_iter().find(|c| c.client_id == client_id).ok_or(AdminError::NotFound)
    }

    /// Registers a client; its secret, when confidential, is in the answer only.
    pub async fn create_client(
        &self,
        actor: &Actor,
        spec: &ClientSpec,
        confidential: bool,
        client: Client<'_>,
    ) -> Result<(ClientRecord, Option<String>), AdminError> {
        let (record, secret) =
            registry::new_client(spec, confidential, self.sessions.clock.now()).map_err(AdminError::Invalid)?;
        let event = self.client_event(EventType::ClientCreated, actor, &record.client_id, client);
        self.sessions.store.create_client(&record, &event).await?;
        Ok((record, secret))
    }

    pub async fn update_client(
        &self,
        actor: &Actor,
        client_id: &str,
        spec: &ClientSpec,
        client: Client<'_>,
    ) -> Result<ClientRecord, AdminError> {
        let mut record = self.client(client_id).await?;
        registry::update(&mut record, spec, self.sessions.clock.now()).map_err(AdminError::Invalid)?;
        let event = self.client_event(EventType::ClientUpdated, actor, client_id, client);
        if self.sessions.store.update_client(&record, &event).await? { Ok(record) } else { Err(AdminError::NotFound) }
    }

    /// Deletes a client and ends the sessions it started.
    pub async fn delete_client(&self, actor: &Actor, client_id: &str, client: Client<'_>) -> Result<(), AdminError> {
        let event = self.client_event(EventType::ClientDeleted, actor, client_id, client);
        if self.sessions.store.delete_client(client_id, &event).await? { Ok(()) } else { Err(AdminError::NotFound) }
    }

    /// A new secret for a confidential client; the old one stops working.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        client_id: &str,
        client: Client<'_>,
    ) -> Result<String, AdminError> {
        let mut record = self.client(client_id).await?;
        let secret = registry::new_secret(&mut record, self.sessions.clock.now())
            .ok_or_else(|| FieldError::new("client_id", "a public client has no secret"))?;
        let event = self.client_event(EventType::ClientSecretRotated, actor, client_id, client);
        if self.sessions.store.update_client(&record, &event).await? { Ok(secret) } else { Err(AdminError::NotFound) }
    }

    fn client_event(&self, kind: EventType, actor: &Actor, client_id: &str, client: Client<'_>) -> AuditEvent {
        self.sessions.audit.from(kind, actor.clone(), client).detail("client", client_id)
    }
}

/// The stored form of the user's roles after `patch`, or `None` when they stay.
fn new_roles(user: &UserRecord, patch: &UserPatch) -> Result<Option<String>, AdminError> {
    if patch.roles.is_none() && patch.add_roles.is_empty() && patch.remove_roles.is_empty() {
        return Ok(None);
    }
    let mut set: BTreeSet<String> = match &patch.roles {
        Some(list) => list.iter().map(|r| roles::parse(r, "roles")).collect::<Result<_, _>>()?,
        None => user.roles().map(str::to_owned).collect(),
    };
    for role in &patch.add_roles {
        set.insert(roles::parse(role, "add_roles")?);
    }
    for role in &patch.remove_roles {
        set.remove(&roles::parse(role, "remove_roles")?);
    }
    let stored = roles::join(&set, "roles")?;
    Ok((stored != user.roles).then_some(stored))
}

/// One type per admin change: a change of roles alone, of the disabled flag alone, or
/// anything else.
fn event_type(
    username: &Option<Username>,
    email: &Option<Email>,
    email_verified: Option<bool>,
    disabled: Option<bool>,
    roles: &Option<String>,
) -> EventType {
    let profile = username.is_some() || email.is_some() || email_verified.is_some();
    match (profile, disabled, roles.is_some()) {
        (false, None, true) => EventType::RolesChanged,
        (false, Some(true), false) => EventType::UserDisabled,
        (false, Some(false), false) => EventType::UserEnabled,
        _ => EventType::UserUpdated,
    }
}
