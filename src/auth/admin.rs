//! What the admin API does, free of HTTP: read and change any account, end its
//! sessions, manage the client registry. Every change goes through the same store
//! operations as the user's own (disabling ends every session in its transaction, a
//! new address voids reset links) and is recorded with the admin as its actor.

use std::collections::BTreeSet;

use crate::auth::accounts::Accounts;
use crate::auth::clients::Clients;
use crate::auth::registry::{self, ClientSpec};
use crate::auth::sessions::{Client, Sessions};
use crate::domain::{Email, FieldError, SessionId, UserId, Username, roles};
use crate::store::{
    Actor, AdminChange, AdminDelete, AdminUpdate, AuditEvent, ClientRecord, EventType, SessionRecord, StoreError,
    UserQuery, UserRecord,
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

/// An admin's change to a user; `None` (or no role names) leaves a field alone.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
    pub roles: RoleNames,
}

/// The role changes of a patch, checked: `roles` replaces the set, then `add_roles` are
/// given and `remove_roles` taken away.
#[derive(Debug, Default)]
pub struct RoleNames {
    replace: Option<BTreeSet<String>>,
    add: Vec<String>,
    remove: Vec<String>,
}

impl RoleNames {
    /// Every bad name is reported, each under its field.
    pub fn parse(
        replace: Option<&[String]>,
        add: Option<&[String]>,
        remove: Option<&[String]>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut names = |list: Option<&[String]>, field: &str| -> Vec<String> {
            let mut ok = Vec::new();
            for name in list.unwrap_or_default() {
                match roles::parse(name, field) {
                    Ok(name) => ok.push(name),
                    Err(e) => errors.push(e),
                }
            }
            ok
        };
        let replace_list = names(replace, "roles");
        let add = names(add, "add_roles");
        let remove = names(remove, "remove_roles");
        if replace.is_some_and(|r| r.len() > roles::MAX_ROLES) || add.len() > roles::MAX_ROLES {
            let field = if add.len() > roles::MAX_ROLES { "add_roles" } else { "roles" };
            errors.push(FieldError::new(field, format!("a user holds at most {} roles", roles::MAX_ROLES)));
        }
        if let Some(both) = add.iter().find(|r| remove.contains(r)) {
            errors.push(FieldError::new("remove_roles", format!("`{both}` is also in add_roles")));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { replace: replace.map(|_| replace_list.into_iter().collect()), add, remove })
    }

    /// The stored form of `user`'s roles after the change, or `None` when they stay.
    fn apply(&self, user: &UserRecord) -> Result<Option<String>, FieldError> {
        if self.replace.is_none() && self.add.is_empty() && self.remove.is_empty() {
            return Ok(None);
        }
        let mut set = self.replace.clone().unwrap_or_else(|| user.roles().map(str::to_owned).collect());
        set.extend(self.add.iter().cloned());
        for role in &self.remove {
            set.remove(role);
        }
        let stored = roles::join(&set, "roles")?;
        Ok((stored != user.roles).then_some(stored))
    }
}

/// The admin service. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    sessions: Sessions,
    accounts: Accounts,
    clients: Clients,
}

impl Admin {
    pub fn new(sessions: Sessions, accounts: Accounts, clients: Clients) -> Self {
        Self { sessions, accounts, clients }
    }

    /// Rereads the registry after a change, so that this instance honours it (a new
    /// client, a rotated secret) from the answer on; the others follow the announcement
    /// within a second.
    async fn registry_changed(&self) {
        if let Err(e) = self.clients.reload(&*self.sessions.store).await {
            tracing::warn!(error = %e, "could not reread the client registry; it follows within a second");
        }
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
    /// What changes is decided against the user as the transaction sees them, so that
    /// concurrent changes never undo each other.
    pub async fn update(
        &self,
        actor: &Actor,
        id: UserId,
        patch: UserPatch,
        client: Client<'_>,
    ) -> Result<UserRecord, AdminError> {
        let user = self.user(id).await?;
        // A cheap check first; the unique indexes decide races.
        let username = patch.username.as_ref().filter(|u| !u.as_str().eq_ignore_ascii_case(&user.username));
        let email = patch.email.as_ref().filter(|e| e.as_str() != user.email);
        if let Some(field) = self.sessions.store.taken(username, email).await? {
            return Err(AdminError::Taken(field));
        }
        let base = self.sessions.audit.event_from(EventType::UserUpdated, actor.clone(), client).user(id);
        let is_self = *actor == Actor::Admin(id);
        let plan = |user: &UserRecord, other_admins: u64| plan(user, other_admins, &patch, is_self, &base);
        let outcome =
            self.sessions.store.admin_update(id, self.sessions.clock.now(), &plan).await.map_err(|e| match e {
                StoreError::Conflict(field) => AdminError::Taken(field),
                e => e.into(),
            })?;
        let (before, after) = match outcome {
            AdminUpdate::NoUser => return Err(AdminError::NotFound),
            AdminUpdate::Refused(refusal) => return Err(refusal.into()),
            AdminUpdate::Unchanged(user) => return Ok(user),
            AdminUpdate::Updated { before, after } => (before, after),
        };
        if after.email != before.email {
            // The change is made: a mail that cannot be queued must not answer it as failed.
            if !after.email_verified
                && let Err(e) = self.accounts.emails().send_verification(&after).await
            {
                tracing::warn!(user = %id, error = %e, "could not send the verification email of an admin's change");
            }
            self.accounts.emails().send_email_changed(&before.email, &after).await;
        }
        Ok(after)
    }

    /// Deletes a user and everything of theirs. An admin cannot delete themself here,
    /// nor the last enabled admin.
    pub async fn delete(&self, actor: &Actor, id: UserId, client: Client<'_>) -> Result<(), AdminError> {
        if *actor == Actor::Admin(id) {
            return Err(FieldError::new("id", "an admin cannot delete their own account").into());
        }
        let event = self.sessions.audit.event_from(EventType::UserDeleted, actor.clone(), client).user(id);
        match self.sessions.store.admin_delete_user(id, &event).await? {
            AdminDelete::Deleted => Ok(()),
            AdminDelete::NoUser => Err(AdminError::NotFound),
            AdminDelete::LastAdmin => Err(FieldError::new("id", "the last admin cannot be deleted").into()),
        }
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(&self, id: UserId) -> Result<Vec<SessionRecord>, AdminError> {
        self.user(id).await?;
        Ok(self.sessions.list(id).await?)
    }

    /// Ends every session of the user; how many there were.
    pub async fn end_sessions(&self, actor: &Actor, id: UserId, client: Client<'_>) -> Result<u64, AdminError> {
        self.user(id).await?;
        let event = self
            .sessions
            .audit
            .event_from(EventType::SessionEnded, actor.clone(), client)
            .detail("reason", "ended_by_admin");
        Ok(self.sessions.store.delete_user_sessions(id, None, &event).await?)
    }

    /// Ends one session of the user.
    pub async fn end_session(
        &self,
        actor: &Actor,
        id: UserId,
        sid: SessionId,
        client: Client<'_>,
    ) -> Result<(), AdminError> {
        let event = self
            .sessions
            .audit
            .event_from(EventType::SessionEnded, actor.clone(), client)
            .detail("reason", "ended_by_admin");
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
        self.registry_changed().await;
        Ok((record, secret))
    }

    pub async fn update_client(
        &self,
        actor: &Actor,
        client_id: &str,
        spec: &ClientSpec,
        client: Client<'_>,
    ) -> Result<ClientRecord, AdminError> {
        let record = self.client(client_id).await?;
        spec.check(record.confidential).map_err(AdminError::Invalid)?;
        if spec.given().is_empty() {
            return Ok(record);
        }
        let event =
            self.client_event(EventType::ClientUpdated, actor, client_id, client).detail("fields", spec.given());
        let now = self.sessions.clock.now();
        let apply = |c: &mut ClientRecord| registry::apply(c, spec, now);
        let updated =
            self.sessions.store.update_client(client_id, &apply, &event).await?.ok_or(AdminError::NotFound)?;
        self.registry_changed().await;
        Ok(updated)
    }

    /// Deletes a client and ends the sessions it started.
    pub async fn delete_client(&self, actor: &Actor, client_id: &str, client: Client<'_>) -> Result<(), AdminError> {
        // Only an id of the registry reaches the database (PostgreSQL refuses a NUL).
        self.client(client_id).await?;
        let event = self.client_event(EventType::ClientDeleted, actor, client_id, client);
        if !self.sessions.store.delete_client(client_id, &event).await? {
            return Err(AdminError::NotFound);
        }
        self.registry_changed().await;
        Ok(())
    }

    /// A new secret for a confidential client; the old one stops working.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        client_id: &str,
        client: Client<'_>,
    ) -> Result<String, AdminError> {
        let record = self.client(client_id).await?;
        let (secret, digest) = registry::new_secret(&record)
            .ok_or_else(|| FieldError::new("client_id", "a public client has no secret"))?;
        let event = self.client_event(EventType::ClientSecretRotated, actor, client_id, client);
        let now = self.sessions.clock.now();
        if !self.sessions.store.set_client_secret(client_id, &digest, now, &event).await? {
            return Err(AdminError::NotFound);
        }
        self.registry_changed().await;
        Ok(secret)
    }

    fn client_event(&self, kind: EventType, actor: &Actor, client_id: &str, client: Client<'_>) -> AuditEvent {
        self.sessions.audit.event_from(kind, actor.clone(), client).detail("client", client_id)
    }
}

/// An admin's change of `user` as it stands, with its events: only what differs; one
/// event per kind of change (roles, the disabled flag, the rest), so that a filter by
/// type finds each. The last enabled admin keeps the role and stays enabled.
fn plan(
    user: &UserRecord,
    other_admins: u64,
    patch: &UserPatch,
    is_self: bool,
    base: &AuditEvent,
) -> Result<Option<(AdminChange, Vec<AuditEvent>)>, FieldError> {
    let roles = patch.roles.apply(user)?;
    let loses_admin = roles.as_deref().is_some_and(|r| !roles::split(r).any(|r| r == roles::ADMIN));
    if is_self && patch.disabled == Some(true) {
        return Err(FieldError::new("disabled", "an admin cannot disable their own account"));
    }
    if is_self && loses_admin {
        return Err(FieldError::new("roles", "an admin cannot take away their own admin role"));
    }
    let last_admin = other_admins == 0 && !user.disabled && user.has_role(roles::ADMIN);
    if last_admin && loses_admin {
        return Err(FieldError::new("roles", "the last admin keeps the admin role"));
    }
    if last_admin && patch.disabled == Some(true) {
        return Err(FieldError::new("disabled", "the last admin cannot be disabled"));
    }
    let email = patch.email.clone().filter(|e| e.as_str() != user.email);
    let change = AdminChange {
        username: patch.username.clone().filter(|u| u.as_str() != user.username),
        // A new address is unverified unless the patch says otherwise.
        email_verified: patch.email_verified.filter(|&v| v != user.email_verified || email.is_some()),
        email,
        disabled: patch.disabled.filter(|&d| d != user.disabled),
        roles,
    };
    let event = |kind: EventType| {
        let mut event = base.about(user.id);
        event.kind = kind;
        event
    };
    let mut events = Vec::new();
    if change.username.is_some() || change.email.is_some() || change.email_verified.is_some() {
        let mut updated = event(EventType::UserUpdated);
        if let Some(username) = &change.username {
            updated = updated.detail("username", username.as_str());
        }
        if let Some(email) = &change.email {
            updated = updated.detail("email", email.as_str());
        }
        if let Some(verified) = change.email_verified {
            updated = updated.detail("email_verified", verified);
        }
        events.push(updated);
    }
    if let Some(disabled) = change.disabled {
        let kind = if disabled { EventType::UserDisabled } else { EventType::UserEnabled };
        events.push(event(kind).detail("disabled", disabled));
    }
    if let Some(roles) = &change.roles {
        let before: BTreeSet<&str> = user.roles().collect();
        let after: BTreeSet<&str> = roles::split(roles).collect();
        events.push(
            event(EventType::RolesChanged)
                .detail("roles_added", after.difference(&before).copied().collect::<Vec<_>>())
                .detail("roles_removed", before.difference(&after).copied().collect::<Vec<_>>()),
        );
    }
    Ok((!events.is_empty()).then_some((change, events)))
}
