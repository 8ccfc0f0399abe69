//! Logging in and staying logged in: the password check shared by `/token`, browser
//! sessions and Basic authentication, the start of a token session, and the check that
//! a session behind a credential is still alive.

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::auth::cache::SessionEntry;
use crate::auth::limits::LimitError;
use crate::auth::password::{HashError, Verified};
use crate::auth::secret;
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::store::{self, NewSession, SessionRecord, StoreError, UserRecord};

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
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
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LimitError> for LoginError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LimitError::Store(e) => Self::Store(e),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::unavailable("too many logins at once; try again shortly", 1),
            HashError::Failed(e) => ApiError::internal(e),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => ApiError::invalid_credentials(),
            LoginError::Disabled => ApiError::account_disabled(),
            LoginError::NotVerified => ApiError::email_not_verified(),
            LoginError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            LoginError::Hash(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

/// Where a password check comes from: the client's address and the device cookie it
/// carries, if any (see [`crate::auth::limits`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub device: Option<&'a str>,
}

/// Longest login that can name an account (an email is at most 254 bytes); anything
/// longer is an unknown user without a database lookup.
const MAX_LOGIN_BYTES: usize = 320;

/// A successful login: the user, and the secret of a new device cookie when one was
/// asked for.
pub struct LoggedIn {
    pub user: UserRecord,
    pub device: Option<String>,
}

/// Checks a login (email or username) and password. Unknown users cost one dummy
/// verification, so that they take as long as a wrong password. A correct password of
/// a disabled account gets `Disabled`; a wrong one the generic failure. The check is
/// counted against the abuse limits before the password is verified. With
/// `issue_device`, a success also issues a device cookie secret that proves this
/// client to the account at later logins.
#[tracing::instrument(skip_all)]
pub async fn check_password(
    state: &AppState,
    login: &str,
    password: &str,
    client: Client<'_>,
    require_verified: bool,
    issue_device: bool,
) -> Result<LoggedIn, LoginError> {
    // No account name holds control characters (PostgreSQL would refuse a NUL).
    let plausible = !login.is_empty() && login.len() <= MAX_LOGIN_BYTES && !login.chars().any(char::is_control);
    let user = if plausible { state.store.user_by_login(login).await? } else { None };
    let device = client.device.map(secret::digest);
    let attempt = state
        .limiter
        .begin_password_check(&[login], user.as_ref().map(|u| u.id), client.ip, device.as_ref().map(|d| &d[..]))
        .await
        .inspect_err(|e| log_refusal(e, user.as_ref(), client.ip))?;
    let verified = match state.hasher.verify(user.as_ref().map(|u| u.password_hash.as_str()), password).await {
        Ok(verified) => verified,
        Err(e) => {
            state.limiter.password_check_abandoned(&attempt).await?;
            return Err(e.into());
        }
    };
    let (user, rehash) = match (user, verified) {
        (Some(user), Verified::Match { rehash }) => (user, rehash),
        (user, _) => {
            log_failure(user.as_ref(), client.ip);
            state.limiter.password_check_failed(&attempt).await?;
            return Err(LoginError::InvalidCredentials);
        }
    };
    let new_device = issue_device.then(secret::random_token);
    let new_digest = new_device.as_deref().map(secret::digest);
    state
        .limiter
        .password_check_succeeded(
            &attempt,
            user.id,
            &[&user.username, &user.email],
            new_digest.as_ref().map(|d| &d[..]),
        )
        .await?;
    if user.disabled {
        return Err(LoginError::Disabled);
    }
    if require_verified && !user.email_verified {
        return Err(LoginError::NotVerified);
    }
    if rehash {
        upgrade_hash(state, &user, password).await;
    }
    Ok(LoggedIn { user, device: new_device })
}

/// Checks the password of a signed-in user who confirms a change with it. It counts
/// against the same limits as a login, under both the username and the email.
pub async fn confirm_password(
    state: &AppState,
    user: &UserRecord,
    password: &str,
    client: Client<'_>,
) -> Result<(), LoginError> {
    let device = client.device.map(secret::digest);
    let attempt = state
        .limiter
        .begin_password_check(&[&user.username, &user.email], Some(user.id), client.ip, device.as_ref().map(|d| &d[..]))
        .await
        .inspect_err(|e| log_refusal(e, Some(user), client.ip))?;
    let verified = match state.hasher.verify(Some(&user.password_hash), password).await {
        Ok(verified) => verified,
        Err(e) => {
            state.limiter.password_check_abandoned(&attempt).await?;
            return Err(e.into());
        }
    };
    if password.is_empty() || verified == Verified::Mismatch {
        log_failure(Some(user), client.ip);
        state.limiter.password_check_failed(&attempt).await?;
        return Err(LoginError::InvalidCredentials);
    }
    state.limiter.password_check_succeeded(&attempt, user.id, &[&user.username, &user.email], None).await?;
    Ok(())
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

/// Replaces an old-format hash with current Argon2id before the login is answered, so
/// that the stored hash is current as soon as the first login succeeds. A failure (the
/// hasher busy, the database unreachable) does not fail the login: the old hash stays
/// and the next login tries again.
async fn upgrade_hash(state: &AppState, user: &UserRecord, password: &str) {
    let result = match state.hasher.hash(password).await {
        Ok(new) => {
            state.store.replace_password_hash(user.id, &user.password_hash, &new).await.map_err(anyhow::Error::from)
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

/// The live session `sid` and its user, or `None` when the session has ended, expired,
/// idled out, or its user is disabled. Records the use at most once a minute (see
/// [`Settings::touch_interval`](crate::http::state::Settings::touch_interval)).
pub async fn live_session(state: &AppState, sid: Uuid) -> Result<Option<(SessionRecord, UserRecord)>, ApiError> {
    let now = store::now();
    let alive = |entry: &SessionEntry| entry.0.is_alive(now, state.settings.idle_cutoff(now)) && !entry.1.disabled;
    let entry = match state.cache.session(sid) {
        // Another instance may have recorded a later use than the cached one (uses are
        // not announced), so only the database can say that a session idled out.
        Some(entry) if alive(&entry) => entry,
        _ => {
            let generation = state.cache.generation();
            let Some(found) = state.store.session_with_user(sid).await? else {
                return Ok(None);
            };
            let entry = Arc::new(found);
            state.cache.insert_session(generation, entry.clone());
            entry
        }
    };
    if !alive(&entry) {
        return Ok(None);
    }
    let (session, user) = &*entry;
    let mut session = session.clone();
    if now - session.last_seen_at >= state.settings.touch_interval() {
        let (store, id) = (state.store.clone(), session.id);
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(id, now).await {
                tracing::warn!(session = %id, error = %e, "could not record session use");
            }
        });
        session.last_seen_at = now;
        state.cache.update_session(Arc::new((session.clone(), user.clone())));
    }
    Ok(Some((session, user.clone())))
}

/// A new access and refresh token pair.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Starts a token session for `user` and returns its first pair.
pub async fn start_token_session(
    state: &AppState,
    user: &UserRecord,
    client_id: &str,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<TokenPair, ApiError> {
    let now = store::now();
    let sid = Uuid::new_v4();
    let refresh_token = secret::random_token();
    let refresh_hash = secret::digest(&refresh_token);
    let ip = ip.map(|ip| ip.to_string());
    state
        .store
        .create_session(&NewSession {
            id: sid,
            user_id: user.id,
            client_id,
            cookie_hash: None,
            refresh_hash: Some(&refresh_hash),
            user_agent,
            ip: ip.as_deref(),
            now,
            expires_at: now + state.settings.refresh_token_ttl,
        })
        .await?;
    let access_token = state.tokens.sign(user.id, sid, client_id)?;
    Ok(TokenPair { access_token, refresh_token, expires_in: state.tokens.ttl().as_secs() })
}

/// Starts a browser session for `user`; returns the cookie secret.
pub async fn start_browser_session(
    state: &AppState,
    user: &UserRecord,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<String, ApiError> {
    let now = store::now();
    let secret = secret::random_token();
    let cookie_hash = secret::digest(&secret);
    let ip = ip.map(|ip| ip.to_string());
    state
        .store
        .create_session(&NewSession {
            id: Uuid::new_v4(),
            user_id: user.id,
            client_id: BROWSER_CLIENT_ID,
            cookie_hash: Some(&cookie_hash),
            refresh_hash: None,
            user_agent,
            ip: ip.as_deref(),
            now,
            expires_at: now + state.settings.refresh_token_ttl,
        })
        .await?;
    Ok(secret)
}

/// The `client_id` recorded for browser (cookie) sessions.
pub const BROWSER_CLIENT_ID: &str = "browser";
