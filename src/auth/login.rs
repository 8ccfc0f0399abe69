//! Logging in and staying logged in: the password check shared by `/token`, browser
//! sessions and Basic authentication, the start of a token session, and the check that
//! a session behind a credential is still alive.

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::auth::cache::SessionEntry;
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
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Refused before the password was checked (rate limited).
    #[error("{}", .0.code())]
    Refused(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(e: ApiError) -> Self {
        Self::Refused(e)
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
            LoginError::Hash(e) => e.into(),
            LoginError::Store(e) => e.into(),
            LoginError::Refused(e) => e,
        }
    }
}

/// Checks a login (email or username) and password. Unknown users cost one dummy
/// verification, so that they take as long as a wrong password. A correct password of
/// a disabled account gets `Disabled`; a wrong one the generic failure. Failures count
/// against the abuse limits, which are checked before the password.
#[tracing::instrument(skip_all)]
pub async fn check_password(
    state: &AppState,
    login: &str,
    password: &str,
    client_ip: Option<IpAddr>,
    require_verified: bool,
) -> Result<UserRecord, LoginError> {
    let login = &login[..login.len().min(320)];
    // No account name holds control characters (PostgreSQL would refuse a NUL).
    let plausible = !login.is_empty() && !login.chars().any(char::is_control);
    let user = if plausible { state.store.user_by_login(login).await? } else { None };
    let account = match &user {
        Some(u) => u.id.to_string(),
        None if plausible => login.to_lowercase(),
        None => "-".to_owned(),
    };
    let attempt = state.limiter.check_login(&account, client_ip).await?;
    let verified = state.hasher.verify(user.as_ref().map(|u| u.password_hash.as_str()), password).await?;
    let (user, rehash) = match (user, verified) {
        (Some(user), Verified::Match { rehash }) => (user, rehash),
        _ => {
            state.limiter.login_failed(&attempt).await?;
            return Err(LoginError::InvalidCredentials);
        }
    };
    state.limiter.login_succeeded(&attempt).await?;
    if user.disabled {
        return Err(LoginError::Disabled);
    }
    if require_verified && !user.email_verified {
        return Err(LoginError::NotVerified);
    }
    if rehash {
        upgrade_hash(state, &user, password).await;
    }
    Ok(user)
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
