//! Sessions, the unit of being logged in: a token session (an access token and a
//! rotating refresh token under one `sid`) or a browser session (a cookie). Every way
//! in — `/token`, `POST /sessions`, Basic authentication, and later hosted pages, the
//! OpenID Connect provider and second factors — goes through [`Sessions`]: it checks
//! passwords under the abuse limits, starts, refreshes, looks up and ends sessions.
//! It knows nothing of HTTP: callers pass domain values and map [`SessionError`] to
//! their own answers.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::audit::Audit;
use crate::auth::cache::{AuthCache, SessionEntry};
use crate::auth::limits::{LimitError, RateLimiter};
use crate::auth::mfa::{MFA_TOKEN_TTL, MfaChallenge, methods};
use crate::auth::password::{HashError, PasswordHasher, Verified};
use crate::auth::secret;
use crate::auth::tokens::{AccessClaims, Holder, TokenService};
use crate::clock::Clock;
use crate::domain::{SessionId, UserId};
use crate::settings::Settings;
use crate::store::{
    Actor, ChallengeRecord, EventType, NewSession, RotateOutcome, SecondStepUse, SessionRecord, Store, StoreError,
    UserRecord,
};

/// Why a session could not be started, refreshed or found.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown user or wrong password: one answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account disabled")]
    Disabled,
    #[error("email not verified")]
    NotVerified,
    /// Over an abuse limit: the password was not checked.
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// A refresh token that is unknown, used, expired or of an ended session.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The session behind a credential has ended (or never was).
    #[error("session ended")]
    Ended,
    /// The password hashing queue is full.
    #[error("too many password checks at once")]
    Busy,
    /// The password was right and the account has a second factor: the sign-in
    /// continues with the challenge's `mfa_token`.
    #[error("a second factor is required")]
    MfaRequired(MfaChallenge),
    /// The password was right, but the account has a second factor and the caller
    /// can take no second step (Basic `user:password`).
    #[error("the password alone is not enough")]
    PasswordNotEnough,
    /// A second step that failed: a wrong or used code, or an unknown, expired or
    /// exhausted `mfa_token`.
    #[error("invalid second factor")]
    InvalidSecondFactor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<LimitError> for SessionError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LimitError::Store(e) => Self::Store(e),
        }
    }
}

impl From<HashError> for SessionError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy,
            HashError::Failed(e) => Self::Internal(e),
        }
    }
}

/// Where a request comes from: its address, user agent and the device cookie it
/// carries, if any (see [`crate::auth::limits`]). `Debug` leaves the cookie out.
#[derive(Clone, Copy, Default)]
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub device: Option<&'a str>,
}

impl std::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("ip", &self.ip)
            .field("user_agent", &self.user_agent)
            .field("device", &self.device.map(|_| "[redacted]"))
            .finish()
    }
}

/// What a login asks for beyond the password check.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginOptions<'a> {
    /// Refuse an unverified address when `LATCH_REQUIRE_VERIFIED_EMAIL` is on. Basic
    /// `user:password` does not: the account's own routes decide.
    pub require_verified: bool,
    /// Issue a device cookie secret that proves this client at later logins.
    pub issue_device: bool,
    /// The session a second step would start, for an account with a second factor;
    /// `None` where there can be no second step, and such an account is refused.
    pub second_step: Option<SecondStep<'a>>,
}

/// The session a sign-in starts once its second step is done.
#[derive(Debug, Clone, Copy)]
pub struct SecondStep<'a> {
    /// The client (`browser` for a cookie session).
    pub client_id: &'a str,
    pub scope: &'a str,
}

/// A successful login: the user, and the secret of a new device cookie when one was
/// asked for.
pub struct LoggedIn {
    pub user: UserRecord,
    pub device: Option<String>,
}

/// A new access token, with its refresh token (left out where the client may not have
/// one) and, for the OpenID flows, an ID token.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub expires_in: u64,
    /// The scopes the access token carries, space-separated.
    pub scope: String,
}

/// A token that introspection found active (RFC 7662), with its session and user.
pub struct Introspection {
    /// The session and its user; `None` for a client's own token.
    pub entry: Option<SessionEntry>,
    /// `access_token` or `refresh_token`.
    pub token_type: &'static str,
    pub client_id: String,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// The authorization code a token session is started for.
#[derive(Debug, Clone, Copy)]
pub struct FromCode<'a> {
    /// The code's digest.
    pub hash: &'a [u8],
    /// Whether a third-party application exchanges it (see [`SessionRecord::delegated`]).
    pub delegated: bool,
    /// The browser session it was issued in.
    pub browser_session: SessionId,
}

/// The `client_id` recorded for browser (cookie) sessions.
pub const BROWSER_CLIENT_ID: &str = "browser";

/// Longest login that can name an account (an email is at most 254 bytes); anything
/// longer is an unknown user without a database lookup.
const MAX_LOGIN_BYTES: usize = 320;

/// The session service. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    // Shared with `Accounts`, which works on the same store, hasher, limits and clock.
    pub(super) store: Arc<dyn Store>,
    pub(super) hasher: PasswordHasher,
    tokens: TokenService,
    pub(super) limiter: RateLimiter,
    cache: Arc<AuthCache>,
    pub(super) clock: Clock,
    pub(super) settings: Arc<Settings>,
    pub(super) audit: Audit,
}

/// How a password-only sign-in is recorded (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";

impl Sessions {
    #[allow(clippy::too_many_arguments)] // the services a session coordinates, each shared
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        tokens: TokenService,
        limiter: RateLimiter,
        cache: Arc<AuthCache>,
        clock: Clock,
        settings: Arc<Settings>,
        audit: Audit,
    ) -> Self {
        Self { store, hasher, tokens, limiter, cache, clock, settings, audit }
    }

    /// The audit log.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Checks a login (email or username) and password. Unknown users cost one dummy
    /// verification, so that they take as long as a wrong password. A correct password
    /// of a disabled account gets `Disabled`; a wrong one the generic failure. The
    /// check is counted against the abuse limits before the password is verified.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: Client<'_>,
        options: LoginOptions<'_>,
    ) -> Result<LoggedIn, SessionError> {
        // No account name holds control characters (PostgreSQL would refuse a NUL).
        let plausible = !login.is_empty() && login.len() <= MAX_LOGIN_BYTES && !login.chars().any(char::is_control);
        let user = if plausible { self.store.user_by_login(login).await? } else { None };
        let device = client.device.map(secret::digest);
        let attempt = self
            .limiter
            .begin_password_check(&[login], user.as_ref().map(|u| u.id), client.ip, device.as_ref().map(|d| &d[..]))
            .await;
        let attempt = match attempt {
            Ok(attempt) => attempt,
            Err(e) => {
                self.refused(&e, user.as_ref(), client).await;
                return Err(e.into());
            }
        };
        let verified = match self.hasher.verify(user.as_ref().map(|u| u.password_hash.as_str()), password).await {
            Ok(verified) => verified,
            Err(e) => {
                self.limiter.password_check_abandoned(&attempt).await?;
                return Err(e.into());
            }
        };
        let (user, rehash) = match (user, verified) {
            (Some(user), Verified::Match { rehash }) => (user, rehash),
            (user, _) => {
                log_failure(user.as_ref(), client.ip);
                self.limiter.password_check_failed(&attempt).await?;
                self.login_failed(user.as_ref(), client, "invalid_credentials").await;
                return Err(SessionError::InvalidCredentials);
            }
        };
        let factors = match self.store.factors(user.id).await {
            Ok(factors) => factors,
            Err(e) => {
                self.limiter.password_check_abandoned(&attempt).await?;
                return Err(e.into());
            }
        };
        // With a second factor the right password is only half a sign-in: its check
        // neither fails nor clears the counters; the second step settles them.
        let new_device = (options.issue_device && !factors.any()).then(secret::random_token);
        if factors.any() {
            self.limiter.password_check_abandoned(&attempt).await?;
        } else {
            let new_digest = new_device.as_deref().map(secret::digest);
            self.limiter
                .password_check_succeeded(
                    &attempt,
                    user.id,
                    &[&user.username, &user.email],
                    new_digest.as_ref().map(|d| &d[..]),
                )
                .await?;
        }
        if user.disabled {
            // The right password, which the limits do not count: recorded quietly.
            let event = self
                .audit
                .event_from(EventType::Login, Actor::User(Some(user.id)), client)
                .failed()
                .detail("reason", "account_disabled");
            self.audit.record_quietly(event).await;
            return Err(SessionError::Disabled);
        }
        if options.require_verified && self.settings.require_verified_email && !user.email_verified {
            self.login_failed(Some(&user), client, "email_not_verified").await;
            return Err(SessionError::NotVerified);
        }
        if rehash {
            self.upgrade_hash(&user, password).await;
        }
        if factors.any() {
            let Some(next) = options.second_step else {
                return Err(SessionError::PasswordNotEnough);
            };
            let token = secret::random_token();
            let assertion = if factors.passkeys > 0 {
                let webauthn = self.settings.webauthn.as_deref();
                crate::auth::passkeys::assertion_options(&*self.store, webauthn, user.id).await?
            } else {
                None
            };
            let (webauthn, state) = assertion.unzip();
            let challenge = ChallengeRecord {
                user_id: user.id,
                client_id: next.client_id.to_owned(),
                scope: next.scope.to_owned(),
                amr: AMR_PASSWORD.to_owned(),
                attempts: 0,
                expires_at: self.clock.now() + MFA_TOKEN_TTL,
                webauthn: state,
            };
            self.store.create_challenge(&secret::digest(&token), &challenge).await?;
            tracing::info!(user = %user.id, "password accepted; a second factor is due");
            let methods = methods(&factors);
            return Err(SessionError::MfaRequired(MfaChallenge { token, methods, webauthn }));
        }
        Ok(LoggedIn { user, device: new_device })
    }

    /// Checks the password of a signed-in user who confirms a change with it. It counts
    /// against the same limits as a login, under both the username and the email.
    pub async fn confirm_password(
        &self,
        user: &UserRecord,
        password: &str,
        client: Client<'_>,
    ) -> Result<(), SessionError> {
        let device = client.device.map(secret::digest);
        let attempt = self
            .limiter
            .begin_password_check(
                &[&user.username, &user.email],
                Some(user.id),
                client.ip,
                device.as_ref().map(|d| &d[..]),
            )
            .await;
        let attempt = match attempt {
            Ok(attempt) => attempt,
            Err(e) => {
                self.refused(&e, Some(user), client).await;
                return Err(e.into());
            }
        };
        let verified = match self.hasher.verify(Some(&user.password_hash), password).await {
            Ok(verified) => verified,
            Err(e) => {
                self.limiter.password_check_abandoned(&attempt).await?;
                return Err(e.into());
            }
        };
        if password.is_empty() || verified == Verified::Mismatch {
            log_failure(Some(user), client.ip);
            self.limiter.password_check_failed(&attempt).await?;
            self.login_failed(Some(user), client, "wrong_confirming_password").await;
            return Err(SessionError::InvalidCredentials);
        }
        self.limiter.password_check_succeeded(&attempt, user.id, &[&user.username, &user.email], None).await?;
        Ok(())
    }

    /// Records a failed login or password check.
    async fn login_failed(&self, user: Option<&UserRecord>, client: Client<'_>, reason: &str) {
        let id = user.map(|u| u.id);
        let event = self.audit.event_from(EventType::Login, Actor::User(id), client).failed().detail("reason", reason);
        self.audit.record(event).await;
    }

    /// Logs and records a password check refused over a limit.
    async fn refused(&self, e: &LimitError, user: Option<&UserRecord>, client: Client<'_>) {
        log_refusal(e, user, client.ip);
        if let LimitError::RateLimited { retry_after } = e {
            let id = user.map(|u| u.id);
            let event = self
                .audit
                .event_from(EventType::RateLimited, Actor::User(id), client)
                .failed()
                .detail("limit", "password_check")
                .detail("retry_after", *retry_after);
            self.audit.record_quietly(event).await;
        }
    }

    /// Replaces an old-format hash with current Argon2id before the login is answered,
    /// so that the stored hash is current as soon as the first login succeeds. A
    /// failure (the hasher busy, the database unreachable) does not fail the login: the
    /// old hash stays and the next login tries again.
    async fn upgrade_hash(&self, user: &UserRecord, password: &str) {
        let result = match self.hasher.hash(password).await {
            Ok(new) => {
                self.store.replace_password_hash(user.id, &user.password_hash, &new).await.map_err(anyhow::Error::from)
            }
            Err(HashError::Busy) => {
                // Expected under load; not worth a warning per login.
                tracing::debug!(user = %user.id, "password hash upgrade deferred: the hasher is busy");
                return;
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(user = %user.id, error = format!("{e:#}"), "password hash upgrade failed");
        }
    }

    /// Starts a token session for `user` with the granted `scope` and returns its
    /// first pair.
    pub async fn start_token(
        &self,
        user: &UserRecord,
        client_id: &str,
        scope: &str,
        amr: &str,
        client: Client<'_>,
    ) -> Result<TokenPair, SessionError> {
        self.start_token_session(user, client_id, scope, amr, None, None, client).await
    }

    /// [`Self::start_token`] for the exchange of an authorization code, when `code`
    /// says which (see [`NewSession::code_hash`]; a used code is `Conflict("code")`),
    /// or at the end of a second step (see [`NewSession::second_step`]).
    #[allow(clippy::too_many_arguments)] // each says what the session starts from
    pub async fn start_token_session(
        &self,
        user: &UserRecord,
        client_id: &str,
        scope: &str,
        amr: &str,
        code: Option<FromCode<'_>>,
        second_step: Option<SecondStepUse<'_>>,
        client: Client<'_>,
    ) -> Result<TokenPair, SessionError> {
        let sid = SessionId::generate();
        let refresh_token = secret::random_token();
        let new = NewSession {
            id: sid,
            user_id: user.id,
            client_id,
            scope,
            cookie_hash: None,
            refresh_hash: Some(&secret::digest(&refresh_token)),
            user_agent: client.user_agent,
            ip: None,
            now: self.clock.now(),
            expires_at: self.clock.now(),
            delegated: code.is_some_and(|c| c.delegated),
            code_hash: code.map(|c| c.hash),
            code_browser_session: code.map(|c| c.browser_session),
            amr,
            second_step,
        };
        self.create(new, client).await?;
        let access_token = self.tokens.sign(user, sid, client_id, scope, amr)?;
        tracing::info!(user = %user.id, client_id, "tokens issued");
        Ok(TokenPair {
            access_token,
            refresh_token: Some(refresh_token),
            id_token: None,
            expires_in: self.tokens.ttl().as_secs(),
            scope: scope.to_owned(),
        })
    }

    /// Starts a browser session for `user`, who signed in as `amr` says; returns the
    /// cookie secret.
    pub async fn start_browser(
        &self,
        user: &UserRecord,
        amr: &str,
        client: Client<'_>,
    ) -> Result<String, SessionError> {
        self.start_browser_session(user, amr, None, client).await
    }

    /// [`Self::start_browser`] at the end of a second step.
    pub(super) async fn start_browser_session(
        &self,
        user: &UserRecord,
        amr: &str,
        second_step: Option<SecondStepUse<'_>>,
        client: Client<'_>,
    ) -> Result<String, SessionError> {
        let secret = secret::random_token();
        let new = NewSession {
            id: SessionId::generate(),
            user_id: user.id,
            client_id: BROWSER_CLIENT_ID,
            scope: &crate::auth::clients::DEFAULT_SCOPES.join(" "),
            cookie_hash: Some(&secret::digest(&secret)),
            refresh_hash: None,
            user_agent: client.user_agent,
            ip: None,
            now: self.clock.now(),
            expires_at: self.clock.now(),
            delegated: false,
            code_hash: None,
            code_browser_session: None,
            amr,
            second_step,
        };
        self.create(new, client).await?;
        tracing::info!(user = %user.id, "browser session started");
        Ok(secret)
    }

    /// Stores `new`, with the client's address, `now` and the expiry filled in, and
    /// records the login.
    async fn create(&self, new: NewSession<'_>, client: Client<'_>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let ip = client.ip.map(|ip| ip.to_string());
        let new = NewSession { ip: ip.as_deref(), now, expires_at: now + self.settings.refresh_token_ttl, ..new };
        let kind = if new.cookie_hash.is_some() { "browser" } else { "token" };
        let event = self
            .audit
            .event_from(EventType::Login, Actor::User(Some(new.user_id)), client)
            .session(new.id)
            .client_id(new.client_id)
            .detail("session", kind);
        self.store.create_session(&new, &event).await
    }

    /// Exchanges a refresh token for a new pair in the same session. A token used
    /// before ends its whole session (reuse detection); a disabled user's session ends.
    /// `accept` decides whether the caller may use the session (its client's rules);
    /// `scope` gives the scopes of the new access token from the session's scopes and
    /// client.
    pub async fn refresh(
        &self,
        presented: &str,
        client: Client<'_>,
        accept: &(dyn Fn(&SessionRecord) -> bool + Sync),
        scope: impl FnOnce(&str, &str) -> Result<String, SessionError>,
    ) -> Result<TokenPair, SessionError> {
        // Checked before the rotation, so that the refused client keeps a refresh token
        // that works once the address is verified.
        if self.settings.require_verified_email
            && let Some(sid) = self.store.session_of_refresh_token(&secret::digest(presented)).await?
            && let Some((_, user)) = self.store.session_with_user(sid).await?
            && !user.email_verified
        {
            return Err(SessionError::NotVerified);
        }
        let new_token = secret::random_token();
        let now = self.clock.now();
        let outcome = self
            .store
            .rotate_refresh_token(
                &secret::digest(presented),
                &secret::digest(&new_token),
                now,
                self.settings.idle_cutoff(now),
                accept,
                &self.audit.event_from(EventType::RefreshTokenReuse, Actor::User(None), client).failed(),
            )
            .await?;
        let session = match outcome {
            RotateOutcome::Rotated(session) => session,
            RotateOutcome::Reused { session, user } => {
                let user = user.map(|u| u.to_string());
                tracing::warn!(event = "refresh_token_reused", user, session = %session, "refresh token reused; its session has been ended");
                return Err(SessionError::InvalidGrant);
            }
            RotateOutcome::Invalid | RotateOutcome::Refused => return Err(SessionError::InvalidGrant),
        };
        let user = match self.store.user_by_id(session.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => {
                let event =
                    self.audit.event(EventType::SessionEnded, Actor::System).detail("reason", "account_disabled");
                self.store.delete_session(session.id, &event).await?;
                return Err(SessionError::InvalidGrant);
            }
        };
        let scope = scope(&session.scope, &session.client_id)?;
        let access_token = self.tokens.sign(&user, session.id, &session.client_id, &scope, &session.amr)?;
        Ok(TokenPair {
            access_token,
            refresh_token: Some(new_token),
            id_token: None,
            expires_in: self.tokens.ttl().as_secs(),
            scope,
        })
    }

    /// The live session `sid` and its user, or `None` when the session has ended,
    /// expired, idled out, or its user is disabled. Records the use at most once per
    /// [`Settings::touch_interval`].
    pub async fn live(&self, sid: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        Ok(self.live_touching(sid, true).await?.map(|entry| (entry.0.clone(), entry.1.clone())))
    }

    /// [`Self::live`]; `touch` says whether this lookup is a use of the session (a
    /// client asking about its refresh token is not).
    async fn live_touching(&self, sid: SessionId, touch: bool) -> Result<Option<SessionEntry>, StoreError> {
        let now = self.clock.now();
        let alive = |entry: &SessionEntry| entry.0.is_alive(now, self.settings.idle_cutoff(now)) && !entry.1.disabled;
        let entry = match self.cache.session(sid) {
            // Another instance may have recorded a later use than the cached one (uses
            // are not announced), so only the database can say that a session idled out.
            Some(entry) if alive(&entry) => entry,
            _ => {
                let generation = self.cache.generation();
                let Some(found) = self.store.session_with_user(sid).await? else {
                    return Ok(None);
                };
                let entry = Arc::new(found);
                self.cache.insert_session(generation, entry.clone());
                entry
            }
        };
        if !alive(&entry) {
            return Ok(None);
        }
        if touch && now - entry.0.last_seen_at >= self.settings.touch_interval() {
            let (store, id) = (self.store.clone(), entry.0.id);
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(id, now).await {
                    tracing::warn!(session = %id, error = %e, "could not record session use");
                }
            });
            let (session, user) = &*entry;
            let touched = Arc::new((SessionRecord { last_seen_at: now, ..session.clone() }, user.clone()));
            self.cache.update_session(touched.clone());
            return Ok(Some(touched));
        }
        Ok(Some(entry))
    }

    /// The live session behind an access token. `Ended` for a token that does not
    /// verify, or whose session is over.
    pub async fn by_access_token(&self, token: &str) -> Result<(SessionRecord, UserRecord), SessionError> {
        self.access_token_claims(token).await.map(|(entry, _)| (entry.0.clone(), entry.1.clone()))
    }

    /// [`Self::by_access_token`], with the token's claims.
    pub async fn access_token_claims(&self, token: &str) -> Result<(SessionEntry, Arc<AccessClaims>), SessionError> {
        let claims = match self.cache.token(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.tokens.verify(token).map_err(|e| {
                    tracing::debug!(error = %e, "access token refused");
                    SessionError::Ended
                })?);
                self.cache.insert_token(token, claims.clone());
                claims
            }
        };
        // A client's own token (client credentials) is no user's session.
        let Holder::User { user, sid } = claims.holder else {
            return Err(SessionError::Ended);
        };
        let entry = self.live_touching(sid, true).await?.ok_or(SessionError::Ended)?;
        if entry.0.user_id != user {
            return Err(SessionError::Ended);
        }
        Ok((entry, claims))
    }

    /// What introspection says of `token` (RFC 7662): an access token that verifies
    /// and whose session is live, or an unused refresh token of a live session. `None`
    /// for anything else, malformed input included.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, StoreError> {
        if let Ok((entry, claims)) = self.access_token_claims(token).await {
            return Ok(Some(Introspection {
                entry: Some(entry),
                token_type: "access_token",
                client_id: claims.client_id.clone(),
                scope: claims.scope.clone(),
                issued_at: claims.iat,
                expires_at: claims.exp,
            }));
        }
        let Some((sid, issued)) = self.store.live_refresh_token(&secret::digest(token)).await? else {
            return Ok(None);
        };
        let Some(entry) = self.live_touching(sid, false).await? else {
            return Ok(None);
        };
        let session = &entry.0;
        // The session idles out before its absolute end when it is not used.
        let idle_end = session.last_seen_at + self.settings.session_idle_timeout;
        let expires_at = session.expires_at.unix().min(idle_end.unix());
        Ok(Some(Introspection {
            client_id: session.client_id.clone(),
            scope: session.scope.clone(),
            token_type: "refresh_token",
            issued_at: issued.unix(),
            expires_at,
            entry: Some(entry),
        }))
    }

    /// The live browser session of a cookie secret.
    pub async fn by_cookie(&self, secret: &str) -> Result<(SessionRecord, UserRecord), SessionError> {
        let sid = match self.cache.cookie(secret) {
            Some(sid) => sid,
            None => {
                let session =
                    self.store.session_by_cookie(&secret::digest(secret)).await?.ok_or(SessionError::Ended)?;
                self.cache.insert_cookie(secret, session.id);
                session.id
            }
        };
        self.live(sid).await?.ok_or(SessionError::Ended)
    }

    /// The user's live sessions of every kind, newest first.
    pub async fn list(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.clock.now();
        self.store.list_sessions(user, now, self.settings.idle_cutoff(now)).await
    }

    /// Signs `user` out of the session `sid`; false when there was none.
    pub async fn logout(&self, user: UserId, sid: SessionId, client: Client<'_>) -> Result<bool, StoreError> {
        let event = self.audit.event_from(EventType::Logout, Actor::User(Some(user)), client);
        self.store.delete_session(sid, &event).await
    }

    /// Ends one of `user`'s sessions; false when it is not theirs or not live.
    pub async fn end_own(&self, user: UserId, sid: SessionId, client: Client<'_>) -> Result<bool, StoreError> {
        let event = self
            .audit
            .event_from(EventType::SessionEnded, Actor::User(Some(user)), client)
            .detail("reason", "ended_by_user");
        let ended = self.store.delete_user_session(user, sid, &event).await?;
        if ended {
            tracing::info!(user = %user, session = %sid, "session ended by its user");
        }
        Ok(ended)
    }

    /// RFC 7009: ends the session of an access or refresh token. Unknown tokens are no
    /// error, so that revocation tells nothing about which tokens exist.
    pub async fn revoke(&self, token: &str, client: Client<'_>) -> Result<(), StoreError> {
        let session = match self.tokens.verify(token) {
            Ok(AccessClaims { holder: Holder::User { sid, .. }, .. }) => Some(sid),
            // A client's own token has no session to end; it lives out its minutes.
            Ok(_) => None,
            Err(_) => self.store.session_of_refresh_token(&secret::digest(token)).await?,
        };
        let event =
            self.audit.event_from(EventType::SessionEnded, Actor::User(None), client).detail("reason", "token_revoked");
        if let Some(sid) = session
            && self.store.delete_session(sid, &event).await?
        {
            tracing::info!(session = %sid, "session revoked");
        }
        Ok(())
    }
}

fn log_failure(user: Option<&UserRecord>, ip: Option<IpAddr>) {
    let account = user.map_or_else(|| "unknown".to_owned(), |u| u.id.to_string());
    let ip = ip.map(|ip| ip.to_string());
    tracing::warn!(event = "login_failed", account, ip, "password check failed");
}

fn log_refusal(e: &LimitError, user: Option<&UserRecord>, ip: Option<IpAddr>) {
    if let LimitError::RateLimited { retry_after } = e {
        let account = user.map_or_else(|| "unknown".to_owned(), |u| u.id.to_string());
        let ip = ip.map(|ip| ip.to_string());
        tracing::warn!(event = "rate_limited", account, ip, retry_after, "password check refused: over a limit");
    }
}
