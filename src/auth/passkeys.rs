//! Passkeys (WebAuthn, SPEC §9) with `webauthn-rs`: registration, naming and removal,
//! and their use as a second factor (the assertion a sign-in's `mfa_token` waits for)
//! and for signing in without a password (a discoverable credential). The relying party
//! is the public URL's host (or `LATCH_WEBAUTHN_RP_ID`); ceremonies are stored, used
//! once, and live five minutes; a non-zero signature counter that does not increase is
//! refused by `webauthn-rs`.

use time::Duration;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Webauthn,
};

use crate::auth::mfa::{Completed, Confirmation, FactorError, Factors, RECOVERY_CODES, Start, recovery_codes};
use crate::auth::secret;
use crate::auth::sessions::{Client, SessionError};
use crate::domain::{PasskeyId, UserId};
use crate::store::{Actor, EventType, PasskeyRecord, ProofUse, SecondStepUse, Store, StoreError, UserRecord};

/// How long a ceremony (and a second step's assertion) may take.
pub const CEREMONY_TTL: Duration = Duration::minutes(5);
/// Longest passkey name, in characters.
const MAX_NAME_CHARS: usize = 64;
const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";

/// A ceremony handed to the browser: its id, to send back with the answer, and the
/// options for `navigator.credentials.create` or `.get` (`{"publicKey": …}`).
pub struct Ceremony {
    pub id: String,
    pub options: serde_json::Value,
}

/// A registered passkey and, when it is the account's first factor, its new recovery
/// codes.
pub struct Registered {
    pub passkey: PasskeyRecord,
    pub recovery_codes: Option<Vec<String>>,
}

/// `hwk` for a passkey bound to its device, `swk` for one that syncs.
pub fn amr_of(backup_eligible: bool) -> &'static str {
    if backup_eligible { "swk" } else { "hwk" }
}

/// A name for a passkey: 1 to 64 characters, no control characters, trimmed.
pub fn passkey_name(name: Option<&str>) -> Result<String, FactorError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(FactorError::Invalid("name", "must be 1 to 64 characters, without control characters"));
    }
    Ok(name.to_owned())
}

impl Factors {
    fn webauthn(&self) -> Result<&Webauthn, FactorError> {
        self.sessions.settings.webauthn.as_deref().ok_or(FactorError::PasskeysUnavailable)
    }

    /// The passkeys of `user`.
    pub async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        self.sessions.store.passkeys(user).await
    }

    /// Starts registering a passkey for `user`, confirmed by the password or a factor
    /// (a passkey signs in on its own: a stolen session must not be able to add one):
    /// a discoverable credential where the authenticator can make one.
    pub async fn begin_passkey(
        &self,
        user: &UserRecord,
        confirmation: Confirmation<'_>,
        client: Client<'_>,
    ) -> Result<Ceremony, FactorError> {
        let webauthn = self.webauthn()?;
        self.confirm(user, confirmation, client).await?;
        let existing = self.sessions.store.passkeys(user.id).await?;
        let exclude = existing.iter().filter_map(|p| parse(&p.passkey).ok()).map(|p| p.cred_id().clone()).collect();
        let (options, state) = webauthn
            .start_passkey_registration(user.id.as_uuid(), &user.email, &user.username, Some(exclude))
            .map_err(|e| FactorError::Internal(anyhow::anyhow!("passkey registration options: {e}")))?;
        let mut options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = "preferred".into();
        }
        let state = serde_json::to_string(&state).map_err(anyhow::Error::from)?;
        let id = self.ceremony(Some(user.id), REGISTER, &state).await?;
        Ok(Ceremony { id, options })
    }

    /// Finishes registering a passkey named `name` with the browser's `credential`
    /// (JSON) for the ceremony `ceremony`.
    pub async fn finish_passkey(
        &self,
        user: &UserRecord,
        ceremony: &str,
        name: &str,
        credential: &serde_json::Value,
        client: Client<'_>,
    ) -> Result<Registered, FactorError> {
        let webauthn = self.webauthn()?;
        let store = &self.sessions.store;
        let now = self.sessions.clock.now();
        let taken = store.take_ceremony(&secret::digest(ceremony), REGISTER, now).await?;
        let Some((Some(owner), state)) = taken.filter(|(owner, _)| *owner == Some(user.id)) else {
            return Err(FactorError::Invalid("ceremony", "is unknown, used or expired: start again"));
        };
        let state: PasskeyRegistration = serde_json::from_str(&state).map_err(anyhow::Error::from)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|_| FactorError::Invalid("credential", "is not a WebAuthn registration response"))?;
        let passkey = webauthn.finish_passkey_registration(&credential, &state).map_err(|e| {
            tracing::info!(user = %owner, error = %e, "passkey registration refused");
            FactorError::Invalid("credential", "was refused: wrong origin, relying party, challenge or signature")
        })?;
        let json = serde_json::to_value(&passkey).map_err(anyhow::Error::from)?;
        let backup_eligible = json["cred"]["backup_eligible"].as_bool().unwrap_or(false);
        let record = PasskeyRecord {
            id: PasskeyId::generate(),
            user_id: user.id,
            credential_id: passkey.cred_id().to_vec(),
            name: name.to_owned(),
            passkey: json.to_string(),
            backup_eligible,
            created_at: now,
            last_used_at: None,
        };
        // The first factor of an account brings the recovery codes that stand in for it.
        let first = !self.summary(user.id).await?.any();
        let codes = first.then(recovery_codes);
        let event = self
            .sessions
            .audit
            .event_from(EventType::FactorAdded, Actor::User(Some(user.id)), client)
            .detail("factor", "passkey")
            .detail("name", name);
        let digests = codes.as_ref().map(|(_, d)| &d[..]);
        match store.add_passkey(&record, digests, &event).await {
            Err(StoreError::Conflict(_)) => {
                return Err(FactorError::Invalid("credential", "is registered already"));
            }
            other => other?,
        }
        tracing::info!(user = %user.id, "passkey registered");
        self.emails.send_factor_changed(user, &format!("a passkey named \"{name}\" was added")).await;
        debug_assert!(codes.as_ref().is_none_or(|(c, _)| c.len() == RECOVERY_CODES));
        Ok(Registered { passkey: record, recovery_codes: codes.map(|(c, _)| c) })
    }

    /// Renames a passkey of `user`; false when there is no such passkey.
    pub async fn rename_passkey(&self, user: &UserRecord, id: PasskeyId, name: &str) -> Result<bool, FactorError> {
        Ok(self.sessions.store.rename_passkey(user.id, id, name).await?)
    }

    /// Removes a passkey of `user`, confirmed by the password or a factor.
    pub async fn remove_passkey(
        &self,
        user: &UserRecord,
        id: PasskeyId,
        confirmation: Confirmation<'_>,
        client: Client<'_>,
    ) -> Result<(), FactorError> {
        let Some(passkey) = self.sessions.store.passkeys(user.id).await?.into_iter().find(|p| p.id == id) else {
            return Err(FactorError::NoFactor);
        };
        self.confirm(user, confirmation, client).await?;
        let event = self
            .sessions
            .audit
            .event_from(EventType::FactorRemoved, Actor::User(Some(user.id)), client)
            .detail("factor", "passkey")
            .detail("name", passkey.name.as_str());
        if !self.sessions.store.remove_passkey(user.id, id, &event).await? {
            return Err(FactorError::NoFactor);
        }
        tracing::info!(user = %user.id, "passkey removed");
        self.emails.send_factor_changed(user, &format!("the passkey named \"{}\" was removed", passkey.name)).await;
        Ok(())
    }

    /// Starts a sign-in with a passkey alone: options without a user, for the
    /// browser's passkey list or its autofill (conditional mediation).
    pub async fn begin_sign_in(&self) -> Result<Ceremony, FactorError> {
        let webauthn = self.webauthn()?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| FactorError::Internal(anyhow::anyhow!("passkey sign-in options: {e}")))?;
        let state = serde_json::to_string(&state).map_err(anyhow::Error::from)?;
        let id = self.ceremony(None, SIGN_IN, &state).await?;
        Ok(Ceremony { id, options: serde_json::to_value(&options).map_err(anyhow::Error::from)? })
    }

    /// Finishes a sign-in with a passkey alone and starts the session: a browser
    /// session, or a token session for `client_id` with `scope`. A refused assertion
    /// counts against the account's limits like a wrong code.
    #[allow(clippy::too_many_arguments)] // what the session is, and who asks
    pub async fn finish_sign_in(
        &self,
        ceremony: &str,
        credential: &serde_json::Value,
        start: Start,
        client_id: &str,
        scope: &str,
        client: Client<'_>,
    ) -> Result<Completed, SessionError> {
        let s = &self.sessions;
        let webauthn = s.settings.webauthn.as_deref().ok_or(SessionError::InvalidCredentials)?;
        let now = s.clock.now();
        let ceremony = secret::digest(ceremony);
        // Read here, used up with the session it starts (or burnt by a refusal).
        let Some((_, state)) = s.store.ceremony(&ceremony, SIGN_IN, now).await? else {
            return Err(SessionError::InvalidCredentials);
        };
        let burn = || async { s.store.take_ceremony(&ceremony, SIGN_IN, now).await.map(|_| ()) };
        let state: DiscoverableAuthentication = serde_json::from_str(&state).map_err(anyhow::Error::from)?;
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
            burn().await?;
            return Err(SessionError::InvalidCredentials);
        };
        let Ok((user_handle, credential_id)) = webauthn.identify_discoverable_authentication(&credential) else {
            burn().await?;
            return Err(SessionError::InvalidCredentials);
        };
        let record = match s.store.passkey_by_credential(credential_id).await? {
            Some(record) if record.user_id.as_uuid() == user_handle => record,
            _ => {
                burn().await?;
                return Err(SessionError::InvalidCredentials);
            }
        };
        let Some(user) = s.store.user_by_id(record.user_id).await? else {
            burn().await?;
            return Err(SessionError::InvalidCredentials);
        };
        let attempt = s.begin_code_check(&user, client).await?;
        let mut passkey = parse(&record.passkey).map_err(SessionError::Internal)?;
        let result = webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey);
        let result = match result {
            Ok(result) if counter_moves_on(&record.passkey, result.counter()) => result,
            Ok(_) | Err(_) => {
                tracing::info!(user = %user.id, "passkey sign-in refused");
                burn().await?;
                s.code_check_failed(&attempt, &user, client, "webauthn", "wrong_assertion").await?;
                return Err(SessionError::InvalidCredentials);
            }
        };
        // Only a verified answer learns the account's state.
        if user.disabled || (s.settings.require_verified_email && !user.email_verified) {
            burn().await?;
            s.limiter.password_check_abandoned(&attempt).await?;
            return Err(if user.disabled { SessionError::Disabled } else { SessionError::NotVerified });
        }
        passkey.update_credential(&result);
        let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let event = s
            .audit
            .event_from(EventType::SecondFactor, Actor::User(Some(user.id)), client)
            .user(user.id)
            .detail("method", "webauthn")
            .detail("passwordless", true);
        let used = SecondStepUse {
            challenge: None,
            ceremony: Some(&ceremony),
            proof: ProofUse::Passkey { id: record.id, before: &record.passkey, passkey: &json },
            event: &event,
        };
        let amr = format!("{} mfa", amr_of(result.backup_eligible()));
        let started = match start {
            Start::Token => s
                .start_token_session(&user, client_id, scope, &amr, None, Some(used), client)
                .await
                .map(Completed::Token),
            Start::Browser => s
                .start_browser_session(&user, &amr, Some(used), client)
                .await
                .map(|cookie| Completed::Browser { user: user.clone(), cookie, device: Some(secret::random_token()) }),
        };
        self.settle(started, &attempt, &user, "webauthn", client).await
    }

    /// Checks a second step's passkey assertion against the challenge's `state`: the
    /// passkey (of `user`), its credential as stored and as the assertion updated it,
    /// and whether it syncs; `None` for an assertion that does not verify.
    pub(crate) async fn check_assertion(
        &self,
        user: &UserRecord,
        state: Option<&str>,
        credential: &serde_json::Value,
    ) -> Result<Option<(PasskeyId, String, String, bool)>, SessionError> {
        let (Some(webauthn), Some(state)) = (self.sessions.settings.webauthn.as_deref(), state) else {
            return Ok(None);
        };
        let state: PasskeyAuthentication = serde_json::from_str(state).map_err(anyhow::Error::from)?;
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
            return Ok(None);
        };
        let result = match webauthn.finish_passkey_authentication(&credential, &state) {
            Ok(result) => result,
            Err(e) => {
                tracing::info!(user = %user.id, error = %e, "passkey assertion refused");
                return Ok(None);
            }
        };
        let Some(record) = self.sessions.store.passkey_by_credential(result.cred_id()).await? else {
            return Ok(None);
        };
        if record.user_id != user.id {
            return Ok(None);
        }
        // The state holds the counters as they were when the sign-in began: the stored
        // one, which later sign-ins moved, is the one to beat.
        if !counter_moves_on(&record.passkey, result.counter()) {
            tracing::warn!(user = %user.id, "passkey counter did not increase: a cloned authenticator?");
            return Ok(None);
        }
        let mut passkey = parse(&record.passkey).map_err(SessionError::Internal)?;
        passkey.update_credential(&result);
        let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        Ok(Some((record.id, record.passkey, json, result.backup_eligible())))
    }

    /// Records a ceremony for `user` (none for a sign-in) and returns its id.
    async fn ceremony(&self, user: Option<UserId>, kind: &str, state: &str) -> Result<String, StoreError> {
        let id = secret::random_token();
        let expires_at = self.sessions.clock.now() + CEREMONY_TTL;
        self.sessions.store.create_ceremony(&secret::digest(&id), user, kind, state, expires_at).await?;
        Ok(id)
    }
}

/// Whether an assertion's signature counter is past the stored credential's: a
/// counter that is not zero must grow (synced passkeys send zero).
fn counter_moves_on(stored: &str, counter: u32) -> bool {
    let before =
        serde_json::from_str::<serde_json::Value>(stored).ok().and_then(|v| v["cred"]["counter"].as_u64()).unwrap_or(0);
    (counter == 0 && before == 0) || u64::from(counter) > before
}

fn parse(json: &str) -> anyhow::Result<Passkey> {
    Ok(serde_json::from_str(json)?)
}

/// A second step's assertion options for `user`'s passkeys, and the state to check
/// the answer against; `None` when the account has none or passkeys are unavailable.
pub(crate) async fn assertion_options(
    store: &dyn Store,
    webauthn: Option<&Webauthn>,
    user: UserId,
) -> Result<Option<(serde_json::Value, String)>, SessionError> {
    let Some(webauthn) = webauthn else {
        return Ok(None);
    };
    let passkeys: Vec<Passkey> = store.passkeys(user).await?.iter().filter_map(|p| parse(&p.passkey).ok()).collect();
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (options, state) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| SessionError::Internal(anyhow::anyhow!("passkey options: {e}")))?;
    let options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
    Ok(Some((options, serde_json::to_string(&state).map_err(anyhow::Error::from)?)))
}
