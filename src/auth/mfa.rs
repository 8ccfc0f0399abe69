//! Second factors (SPEC §9): TOTP authenticators (RFC 6238), recovery codes, and the
//! second step of a sign-in. [`Sessions::login`] decides that a second step is due and
//! hands out its `mfa_token`; [`Factors::complete`] checks the code against it. Codes
//! count against the same limits as passwords, and only a completed second step
//! clears the counters.

use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use time::Duration;
use totp_rs::{Algorithm, TOTP};

use crate::auth::emails::Emails;
use crate::auth::kek::KeyEncryptionKey;
use crate::auth::limits::LimitError;
use crate::auth::secret;
use crate::auth::sessions::{Client, SessionError, Sessions, TokenPair};
use crate::domain::{PasskeyId, Timestamp, UserId};
use crate::store::{Actor, EventType, FactorSummary, ProofUse, SecondStepUse, StoreError, UserRecord};

/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL: Duration = Duration::minutes(5);
/// Second steps an `mfa_token` allows.
pub const MFA_ATTEMPTS: i64 = 5;
/// Recovery codes issued at once.
pub const RECOVERY_CODES: usize = 10;
/// TOTP parameters: RFC 6238's defaults, which every authenticator app supports.
const DIGITS: usize = 6;
const STEP: u64 = 30;
/// Bytes of a TOTP key: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// What a sealed TOTP key is bound to, with the user's id.
const SEAL_CONTEXT: &str = "latch totp secret";
/// Recovery codes: 10 characters of Crockford's base32, which leaves out the
/// look-alikes i, l, o and u (50 bits).
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The second-step methods an account has, as `mfa_methods` names them.
pub fn methods(factors: &FactorSummary) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if factors.totp {
        methods.push("totp");
    }
    if factors.passkeys > 0 {
        methods.push("webauthn");
    }
    if factors.recovery_codes > 0 {
        methods.push("recovery_code");
    }
    methods
}

/// A sign-in that waits for its second step.
pub struct MfaChallenge {
    /// The `mfa_token`: opaque, single-use, five minutes.
    pub token: String,
    pub methods: Vec<&'static str>,
    /// The options for `navigator.credentials.get` (`{"publicKey": …}`), when the
    /// account has passkeys.
    pub webauthn: Option<serde_json::Value>,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge").field("token", &"[redacted]").field("methods", &self.methods).finish()
    }
}

/// What proves the second factor.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// A code of the authenticator app.
    Otp(&'a str),
    RecoveryCode(&'a str),
    /// A passkey's answer to the challenge's options (`PublicKeyCredential` as JSON).
    Passkey(&'a serde_json::Value),
}

impl Proof<'_> {
    pub(super) fn method(self) -> &'static str {
        match self {
            Self::Otp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
            Self::Passkey(_) => "webauthn",
        }
    }
}

/// What confirms a change of factors: the password, or a factor.
#[derive(Clone, Copy)]
pub enum Confirmation<'a> {
    Password(&'a str),
    Factor(Proof<'a>),
}

impl Confirmation<'_> {
    /// The request field that carries it.
    pub fn field(self) -> &'static str {
        match self {
            Self::Password(_) => "password",
            Self::Factor(Proof::Otp(_)) => "otp",
            Self::Factor(Proof::RecoveryCode(_)) => "recovery_code",
            Self::Factor(Proof::Passkey(_)) => "webauthn",
        }
    }
}

/// The kind of session a completed second step starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Token,
    Browser,
}

/// A completed second step: the session it started.
pub enum Completed {
    Token(TokenPair),
    Browser {
        user: UserRecord,
        /// The session cookie's secret.
        cookie: String,
        /// A new device cookie's secret (see [`crate::auth::limits`]).
        device: Option<String>,
    },
}

/// A good code, as the store spends it.
enum Spend {
    TotpStep(i64),
    RecoveryCode([u8; 32]),
    /// The passkey, its credential as stored and as the assertion updated it, and
    /// whether it syncs.
    Passkey(PasskeyId, String, String, bool),
}

impl Spend {
    fn as_use(&self) -> ProofUse<'_> {
        match self {
            Self::TotpStep(step) => ProofUse::TotpStep(*step),
            Self::RecoveryCode(hash) => ProofUse::RecoveryCode(hash),
            Self::Passkey(id, before, passkey, _) => ProofUse::Passkey { id: *id, before, passkey },
        }
    }

    /// How the second step is recorded in `amr` (RFC 8176).
    fn amr(&self) -> &'static str {
        match self {
            Self::TotpStep(_) | Self::RecoveryCode(_) => "otp",
            Self::Passkey(_, _, _, synced) => crate::auth::passkeys::amr_of(*synced),
        }
    }
}

/// A TOTP enrolment waiting for its first code.
pub struct Enrolment {
    /// The key, base32 (RFC 4648, no padding), for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, the QR code's content.
    pub otpauth_uri: String,
}

/// Why a change of factors was refused.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    /// An authenticator app is enrolled already: remove it first.
    #[error("an authenticator app is enrolled already")]
    AlreadyEnrolled,
    /// No enrolment waits for a code.
    #[error("no enrolment is pending")]
    NotPending,
    /// The code that should confirm the enrolment is wrong.
    #[error("wrong code")]
    WrongCode,
    /// The password or factor confirming the change is wrong; names its field.
    #[error("wrong confirmation")]
    WrongConfirmation(&'static str),
    /// There is no such factor (or none at all).
    #[error("no such factor")]
    NoFactor,
    /// A field that cannot be used: its name and what is wrong.
    #[error("invalid {0}")]
    Invalid(&'static str, &'static str),
    /// The public URL's host is an IP address: no passkey can name it.
    #[error("passkeys are unavailable")]
    PasskeysUnavailable,
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// The password hashing queue is full.
    #[error("too many password checks at once")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<LimitError> for FactorError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LimitError::Store(e) => Self::Store(e),
        }
    }
}

/// The factors service. Cheap to clone.
#[derive(Clone)]
pub struct Factors {
    pub(super) sessions: Sessions,
    pub(super) emails: Emails,
    kek: Option<KeyEncryptionKey>,
}

impl Factors {
    pub fn new(sessions: Sessions, emails: Emails, kek: Option<KeyEncryptionKey>) -> Self {
        Self { sessions, emails, kek }
    }

    /// The factors `user` has.
    pub async fn summary(&self, user: UserId) -> Result<FactorSummary, StoreError> {
        self.sessions.store.factors(user).await
    }

    /// Starts (or restarts) the enrolment of an authenticator app.
    pub async fn begin_totp(&self, user: &UserRecord) -> Result<Enrolment, FactorError> {
        let mut key = zeroize::Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut key);
        let (stored, kek_id) = match &self.kek {
            Some(kek) => (kek.seal(&key, &seal_aad(user.id))?, Some(kek.id())),
            None => (key.to_vec(), None),
        };
        if !self.sessions.store.begin_totp(user.id, &stored, kek_id, self.sessions.clock.now()).await? {
            return Err(FactorError::AlreadyEnrolled);
        }
        let totp = totp(key.to_vec(), Some(self.issuer()), user.email.clone());
        Ok(Enrolment { secret: totp.get_secret_base32(), otpauth_uri: totp.get_url() })
    }

    /// The enrolment waiting for its first code, to show again.
    pub async fn pending_totp(&self, user: &UserRecord) -> Result<Option<Enrolment>, FactorError> {
        let Some(stored) = self.sessions.store.totp(user.id).await?.filter(|t| !t.confirmed) else {
            return Ok(None);
        };
        let key = self.open(user.id, &stored)?;
        let totp = totp(key.to_vec(), Some(self.issuer()), user.email.clone());
        Ok(Some(Enrolment { secret: totp.get_secret_base32(), otpauth_uri: totp.get_url() }))
    }

    /// Activates the pending enrolment with a first `code` and returns new recovery
    /// codes (which replace any earlier ones).
    pub async fn confirm_totp(
        &self,
        user: &UserRecord,
        code: &str,
        client: Client<'_>,
    ) -> Result<Vec<String>, FactorError> {
        let stored = match self.sessions.store.totp(user.id).await? {
            Some(stored) if stored.confirmed => return Err(FactorError::AlreadyEnrolled),
            Some(stored) => stored,
            None => return Err(FactorError::NotPending),
        };
        let attempt = self.sessions.begin_code_check(user, client).await?;
        let key = self.open(user.id, &stored)?;
        let Some(step) = matching_step(&key, code, self.sessions.clock.now()) else {
            self.sessions.code_check_failed(&attempt, user, client, "totp", "wrong_enrolment_code").await?;
            return Err(FactorError::WrongCode);
        };
        self.sessions.limiter.password_check_abandoned(&attempt).await?;
        let (codes, digests) = recovery_codes();
        let event = self.factor_event(EventType::FactorAdded, user.id, client).detail("factor", "totp");
        if !self.sessions.store.confirm_totp(user.id, &stored.secret, step as i64, &digests, &event).await? {
            return Err(FactorError::NotPending);
        }
        tracing::info!(user = %user.id, "authenticator app enrolled");
        self.emails.send_factor_changed(user, "an authenticator app was added as a second factor").await;
        Ok(codes)
    }

    /// Replaces the recovery codes, confirmed by the password or a factor.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &UserRecord,
        confirmation: Confirmation<'_>,
        client: Client<'_>,
    ) -> Result<Vec<String>, FactorError> {
        if !self.summary(user.id).await?.any() {
            return Err(FactorError::NoFactor);
        }
        self.confirm(user, confirmation, client).await?;
        let (codes, digests) = recovery_codes();
        let event = self.factor_event(EventType::RecoveryCodesRegenerated, user.id, client);
        if !self.sessions.store.replace_recovery_codes(user.id, &digests, &event).await? {
            return Err(FactorError::NoFactor);
        }
        tracing::info!(user = %user.id, "recovery codes regenerated");
        self.emails.send_factor_changed(user, "new recovery codes were made, and the old ones no longer work").await;
        Ok(codes)
    }

    /// Removes the authenticator app (and, with the last factor, the recovery codes),
    /// confirmed by the password or a factor.
    pub async fn remove_totp(
        &self,
        user: &UserRecord,
        confirmation: Confirmation<'_>,
        client: Client<'_>,
    ) -> Result<(), FactorError> {
        if !self.summary(user.id).await?.totp {
            return Err(FactorError::NoFactor);
        }
        self.confirm(user, confirmation, client).await?;
        let event = self.factor_event(EventType::FactorRemoved, user.id, client).detail("factor", "totp");
        if !self.sessions.store.remove_totp(user.id, &event).await? {
            return Err(FactorError::NoFactor);
        }
        tracing::info!(user = %user.id, "authenticator app removed");
        self.emails.send_factor_changed(user, "the authenticator app was removed").await;
        Ok(())
    }

    /// Removes every factor of `user`: an operator's or an admin's reset (`actor`).
    /// False when there was none.
    pub async fn reset(&self, user: &UserRecord, actor: Actor, client: Client<'_>) -> Result<bool, StoreError> {
        let event = self
            .sessions
            .audit
            .event_from(EventType::FactorRemoved, actor, client)
            .user(user.id)
            .detail("factor", "all");
        let removed = self.sessions.store.reset_factors(user.id, &event).await?;
        if removed {
            tracing::info!(user = %user.id, "second factors reset");
            self.emails
                .send_factor_changed(user, "an administrator removed your second factors; sign in with your password")
                .await;
        }
        Ok(removed)
    }

    /// The second step of the sign-in `mfa_token` for the client `client_id` (`browser`
    /// for a cookie session), and the session it starts. A wrong code counts like a
    /// wrong password; a completed step clears the counters, and uses up the token and
    /// the code in the session's own transaction.
    pub async fn complete(
        &self,
        mfa_token: &str,
        client_id: &str,
        proof: Proof<'_>,
        start: Start,
        client: Client<'_>,
    ) -> Result<Completed, SessionError> {
        let s = &self.sessions;
        let hash = secret::digest(mfa_token);
        let now = s.clock.now();
        let challenge = s.store.attempt_challenge(&hash, now, MFA_ATTEMPTS).await?;
        let Some(challenge) = challenge.filter(|c| c.client_id == client_id) else {
            return Err(SessionError::InvalidSecondFactor);
        };
        let user = match s.store.user_by_id(challenge.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => return Err(SessionError::InvalidSecondFactor),
        };
        let attempt = s.begin_code_check(&user, client).await?;
        let spend = match self.spendable(&user, proof, challenge.webauthn.as_deref(), now).await {
            Ok(Some(spend)) => spend,
            Ok(None) => {
                s.code_check_failed(&attempt, &user, client, proof.method(), "wrong_code").await?;
                return Err(SessionError::InvalidSecondFactor);
            }
            Err(e) => {
                s.limiter.password_check_abandoned(&attempt).await?;
                return Err(e);
            }
        };
        let event = s
            .audit
            .event_from(EventType::SecondFactor, Actor::User(Some(user.id)), client)
            .user(user.id)
            .detail("method", proof.method());
        let used = SecondStepUse { challenge: Some(&hash), ceremony: None, proof: spend.as_use(), event: &event };
        let amr = format!("{} {} mfa", challenge.amr, spend.amr());
        let started = match start {
            Start::Token => s
                .start_token_session(&user, &challenge.client_id, &challenge.scope, &amr, None, Some(used), client)
                .await
                .map(Completed::Token),
            Start::Browser => s
                .start_browser_session(&user, &amr, Some(used), client)
                .await
                .map(|cookie| Completed::Browser { user: user.clone(), cookie, device: Some(secret::random_token()) }),
        };
        self.settle(started, &attempt, &user, proof.method(), client).await
    }

    /// Settles the limits of a second step by the session it started, or did not.
    pub(super) async fn settle(
        &self,
        started: Result<Completed, SessionError>,
        attempt: &crate::auth::limits::PasswordAttempt,
        user: &UserRecord,
        method: &str,
        client: Client<'_>,
    ) -> Result<Completed, SessionError> {
        let s = &self.sessions;
        match started {
            Ok(completed) => {
                let device = match &completed {
                    Completed::Browser { device, .. } => device.as_deref().map(secret::digest),
                    Completed::Token(_) => None,
                };
                let ids = [user.username.as_str(), user.email.as_str()];
                s.limiter.password_check_succeeded(attempt, user.id, &ids, device.as_ref().map(|d| &d[..])).await?;
                Ok(completed)
            }
            // A code spent by a racing request, or one of a step already used.
            Err(SessionError::Store(StoreError::Conflict("mfa_code"))) => {
                s.code_check_failed(attempt, user, client, method, "used_code").await?;
                Err(SessionError::InvalidSecondFactor)
            }
            Err(e) => {
                s.limiter.password_check_abandoned(attempt).await?;
                match e {
                    SessionError::Store(StoreError::Conflict("mfa_token")) => Err(SessionError::InvalidSecondFactor),
                    e => Err(e),
                }
            }
        }
    }

    /// What `proof` would spend, when it is a good code of `user` (a passkey's answer
    /// to the assertion `webauthn` waits for); the store decides, when it is spent,
    /// whether it was spent before.
    async fn spendable(
        &self,
        user: &UserRecord,
        proof: Proof<'_>,
        webauthn: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Spend>, SessionError> {
        match proof {
            Proof::Otp(code) => {
                let Some(stored) = self.sessions.store.totp(user.id).await?.filter(|t| t.confirmed) else {
                    return Ok(None);
                };
                let key = self.open(user.id, &stored).map_err(SessionError::Internal)?;
                Ok(matching_step(&key, code, now).map(|step| Spend::TotpStep(step as i64)))
            }
            Proof::RecoveryCode(code) => {
                Ok(normalize_recovery_code(code).map(|normal| Spend::RecoveryCode(secret::digest(&normal))))
            }
            Proof::Passkey(credential) => Ok(self
                .check_assertion(user, webauthn, credential)
                .await?
                .map(|(id, before, passkey, synced)| Spend::Passkey(id, before, passkey, synced))),
        }
    }

    /// Whether `proof` is a good, unused code of `user`; a good one is used up.
    async fn check_proof(&self, user: &UserRecord, proof: Proof<'_>, now: Timestamp) -> Result<bool, SessionError> {
        let store = &self.sessions.store;
        Ok(match self.spendable(user, proof, None, now).await? {
            Some(Spend::TotpStep(step)) => store.use_totp_step(user.id, step).await?,
            Some(Spend::RecoveryCode(hash)) => store.use_recovery_code(user.id, &hash).await?,
            // A passkey confirms nothing without a challenge of its own.
            Some(Spend::Passkey(..)) | None => false,
        })
    }

    /// Checks what confirms a change of factors, under the login limits.
    pub(super) async fn confirm(
        &self,
        user: &UserRecord,
        confirmation: Confirmation<'_>,
        client: Client<'_>,
    ) -> Result<(), FactorError> {
        let field = confirmation.field();
        let s = &self.sessions;
        match confirmation {
            Confirmation::Password(password) => match s.confirm_password(user, password, client).await {
                Ok(()) => Ok(()),
                Err(SessionError::InvalidCredentials) => Err(FactorError::WrongConfirmation(field)),
                Err(SessionError::RateLimited { retry_after }) => Err(FactorError::RateLimited { retry_after }),
                Err(SessionError::Busy) => Err(FactorError::Busy),
                Err(SessionError::Store(e)) => Err(e.into()),
                Err(e) => Err(FactorError::Internal(e.into())),
            },
            Confirmation::Factor(proof) => {
                let attempt = s.begin_code_check(user, client).await?;
                let accepted = match self.check_proof(user, proof, s.clock.now()).await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        s.limiter.password_check_abandoned(&attempt).await?;
                        return Err(FactorError::Internal(e.into()));
                    }
                };
                if !accepted {
                    s.code_check_failed(&attempt, user, client, proof.method(), "wrong_confirming_code").await?;
                    return Err(FactorError::WrongConfirmation(field));
                }
                s.limiter.password_check_succeeded(&attempt, user.id, &[&user.username, &user.email], None).await?;
                Ok(())
            }
        }
    }

    /// The stored TOTP key, opened with the key-encryption key when it was sealed.
    fn open(&self, user: UserId, stored: &crate::store::TotpRecord) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        match (&stored.kek_id, &self.kek) {
            (None, _) => Ok(zeroize::Zeroizing::new(stored.secret.clone())),
            (Some(_), Some(kek)) => kek
                .open(&stored.secret, &seal_aad(user))
                .map_err(|_| anyhow::anyhow!("the TOTP key of {user} does not open with the key-encryption key")),
            (Some(id), None) => {
                anyhow::bail!("the TOTP key of {user} is sealed with key-encryption key {id}, which is not configured")
            }
        }
    }

    fn factor_event(&self, kind: EventType, user: UserId, client: Client<'_>) -> crate::store::AuditEvent {
        self.sessions.audit.event_from(kind, Actor::User(Some(user)), client)
    }

    /// The issuer an authenticator app shows: the pages' title, without the colon
    /// that separates issuer and account in an `otpauth` label.
    fn issuer(&self) -> String {
        self.sessions.settings.theme.title.replace(':', "")
    }
}

impl Sessions {
    /// Counts a code check of `user` against the login limits, like a password check.
    pub(super) async fn begin_code_check(
        &self,
        user: &UserRecord,
        client: Client<'_>,
    ) -> Result<crate::auth::limits::PasswordAttempt, LimitError> {
        let device = client.device.map(secret::digest);
        let ids = [user.username.as_str(), user.email.as_str()];
        self.limiter.begin_code_check(&ids, user.id, client.ip, device.as_ref().map(|d| &d[..])).await
    }

    /// Settles a wrong code like a wrong password, and records it.
    pub(super) async fn code_check_failed(
        &self,
        attempt: &crate::auth::limits::PasswordAttempt,
        user: &UserRecord,
        client: Client<'_>,
        method: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(event = "second_factor_failed", account = %user.id, ip = client.ip.map(|ip| ip.to_string()), "second factor refused");
        self.limiter.password_check_failed(attempt).await?;
        let event = self
            .audit
            .event_from(EventType::SecondFactor, Actor::User(Some(user.id)), client)
            .failed()
            .detail("method", method)
            .detail("reason", reason);
        self.audit.record(event).await;
        Ok(())
    }
}

fn seal_aad(user: UserId) -> Vec<u8> {
    format!("{SEAL_CONTEXT} {user}").into_bytes()
}

fn totp(key: Vec<u8>, issuer: Option<String>, account: String) -> TOTP {
    // Unchecked: the key is always 160 bits, and an account name may hold a colon,
    // which the label's percent-encoding carries.
    TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP, key, issuer, account)
}

/// The time step whose code `code` is, within one step of `now`'s; `None` for a wrong
/// code. Every candidate is compared, in constant time.
fn matching_step(key: &[u8], code: &str, now: Timestamp) -> Option<u64> {
    // Apps show codes as "123 456"; a pasted one keeps the space.
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let code = code.as_str();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(key.to_vec(), None, String::new());
    let current = u64::try_from(now.unix()).ok()? / STEP;
    let mut found = None;
    for step in current.saturating_sub(1)..=current + 1 {
        if bool::from(totp.generate(step * STEP).as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// New recovery codes (`xxxxx-xxxxx`) and their digests.
pub(crate) fn recovery_codes() -> (Vec<String>, Vec<[u8; 32]>) {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut digests = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut bytes = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let chars: String = bytes.iter().map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)])).collect();
        digests.push(secret::digest(&chars));
        codes.push(format!("{}-{}", &chars[..5], &chars[5..]));
    }
    (codes, digests)
}

/// A recovery code as typed (any case, with or without the dash and spaces) in its
/// stored form; `None` when it cannot be one.
fn normalize_recovery_code(code: &str) -> Option<String> {
    let normal: String = code.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_lowercase()).collect();
    (normal.len() == 10 && normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, Appendix B: the SHA-1 rows (8 digits, the 20-byte ASCII key).
    #[test]
    fn rfc_6238_test_vectors() {
        let key = b"12345678901234567890".to_vec();
        let totp = TOTP::new_unchecked(Algorithm::SHA1, 8, 1, 30, key, None, String::new());
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time), code, "T = {time}");
        }
    }

    #[test]
    fn codes_match_within_one_step() {
        let key = b"12345678901234567890";
        let six = |time: u64| {
            TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, key.to_vec(), None, String::new()).generate(time)
        };
        let at = |unix: i64| Timestamp::from_unix(unix).expect("a valid time");
        let now = 1_111_111_111;
        assert_eq!(matching_step(key, &six(now), at(now as i64)), Some(now / 30));
        assert_eq!(matching_step(key, &six(now - 30), at(now as i64)), Some(now / 30 - 1));
        assert_eq!(matching_step(key, &six(now + 30), at(now as i64)), Some(now / 30 + 1));
        assert_eq!(matching_step(key, &six(now - 60), at(now as i64)), None);
        assert_eq!(matching_step(key, &six(now + 60), at(now as i64)), None);
        assert_eq!(matching_step(key, "12345", at(now as i64)), None);
        assert_eq!(matching_step(key, "abcdef", at(now as i64)), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_as_typed() {
        let (codes, digests) = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = digests.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (code, digest) in codes.iter().zip(&digests) {
            assert_eq!(code.len(), 11);
            let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
            assert_eq!(secret::digest(&normalize_recovery_code(&typed).expect("a code")), *digest);
        }
        assert!(normalize_recovery_code("short").is_none());
        assert!(normalize_recovery_code("aaaaa-aaaai").is_none());
    }
}
