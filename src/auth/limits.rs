//! Abuse limits: failed logins per account and address, per account and per address;
//! registrations per address; password-reset requests per address and per email.
//! Over a limit the caller gets 429 with `Retry-After`, and a login's password is not
//! checked. Counters live in the store so that every instance shares them.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Limit, Limits};
use crate::error::ApiError;
use crate::store::{self, Counter, Store, StoreError};

/// Applies the configured limits.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    limits: Arc<Limits>,
}

/// The counters of one login attempt, to update once its outcome is known.
pub struct LoginAttempt {
    keys: Vec<(String, Limit)>,
    /// The account-and-address counter had events, so a success must clear it.
    account_ip_dirty: bool,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn Store>, limits: Limits) -> Self {
        Self { store, limits: Arc::new(limits) }
    }

    /// Refuses (429) a login for `account` (a user id, or the lowercased login of an
    /// unknown user) from `ip` when a failure limit is reached.
    pub async fn check_login(&self, account: &str, ip: Option<IpAddr>) -> Result<LoginAttempt, ApiError> {
        let l = &self.limits;
        let mut keys = vec![(format!("login:account:{account}"), l.login_account)];
        if let Some(ip) = ip {
            keys.push((format!("login:account-ip:{account}|{ip}"), l.login_account_ip));
            keys.push((format!("login:ip:{ip}"), l.login_ip));
        }
        if !l.enabled {
            return Ok(LoginAttempt { keys: Vec::new(), account_ip_dirty: false });
        }
        let now = store::now();
        let longest = keys.iter().map(|(_, limit)| limit.window).max().unwrap_or_default();
        let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let counters = self.store.counters(&names, now - longest).await?;
        let mut account_ip_dirty = false;
        for counter in &counters {
            let Some((_, limit)) = keys.iter().find(|(k, _)| *k == counter.key) else { continue };
            if counter.key.starts_with("login:account-ip:") {
                account_ip_dirty = true;
            }
            if let Some(wait) = over(counter, limit, now) {
                return Err(ApiError::rate_limited(wait));
            }
        }
        Ok(LoginAttempt { keys, account_ip_dirty })
    }

    /// Counts a failed login against every counter of the attempt.
    pub async fn login_failed(&self, attempt: &LoginAttempt) -> Result<(), StoreError> {
        let now = store::now();
        for (key, limit) in &attempt.keys {
            self.store.hit(key, limit.window.as_secs() as i64, now).await?;
        }
        Ok(())
    }

    /// A successful login clears the account-and-address counter.
    pub async fn login_succeeded(&self, attempt: &LoginAttempt) -> Result<(), StoreError> {
        if attempt.account_ip_dirty {
            for (key, _) in attempt.keys.iter().filter(|(k, _)| k.starts_with("login:account-ip:")) {
                self.store.clear(key).await?;
            }
        }
        Ok(())
    }

    /// Counts a registration from `ip`; 429 past the limit.
    pub async fn register(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        match ip {
            Some(ip) => self.count(&format!("register:ip:{ip}"), self.limits.register_ip).await,
            None => Ok(()),
        }
    }

    /// Counts a password-reset request from `ip` for `email` (known or not, so that a
    /// 429 reveals nothing); 429 past either limit.
    pub async fn password_reset(&self, ip: Option<IpAddr>, email: &str) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            self.count(&format!("reset:ip:{ip}"), self.limits.reset_ip).await?;
        }
        self.count(&format!("reset:email:{email}"), self.limits.reset_email).await
    }

    async fn count(&self, key: &str, limit: Limit) -> Result<(), ApiError> {
        if !self.limits.enabled {
            return Ok(());
        }
        let now = store::now();
        let counter = self.store.hit(key, limit.window.as_secs() as i64, now).await?;
        if counter.count > i64::from(limit.max) {
            let wait = (counter.window_start + limit.window - now).whole_seconds().max(1) as u64;
            return Err(ApiError::rate_limited(wait));
        }
        Ok(())
    }
}

/// Seconds to wait when `counter` has reached `limit`.
fn over(counter: &Counter, limit: &Limit, now: time::OffsetDateTime) -> Option<u64> {
    let ends = counter.window_start + limit.window;
    (counter.count >= i64::from(limit.max) && ends > now).then(|| (ends - now).whole_seconds().max(1) as u64)
}
