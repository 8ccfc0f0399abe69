//! Abuse limits (SPEC §2): failed password checks per login identifier and address, per
//! identifier and per address; registrations and username changes per address;
//! password-reset requests per address and per email; verification emails per account.
//! Over a limit the caller is refused with a wait, and a password is not checked.
//!
//! Password checks are counted *before* the password is verified (one atomic statement
//! for all counters), so that N simultaneous guesses never get more than the limit's
//! number of checks; a success takes its advance count back. Counters are kept per
//! identifier as typed (username or email), never per account, so that limit state
//! never reveals that a username and an email belong to the same account.
//!
//! The owner cannot be locked out by others' failures: a client that logged in to the
//! account before — a browser with a device cookie from an earlier login, or an address
//! with a successful login in the last 30 days — skips the per-identifier counter and is
//! judged by its own counters only (OWASP's device-cookie scheme).
//!
//! Counters live in the store so that every instance shares them.

use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use time::Duration;

use crate::clock::Clock;
use crate::config::{Limit, Limits};
use crate::domain::{Timestamp, UserId};
use crate::store::{Counter, Settle, Store, StoreError};

/// Wrong second-factor codes an account takes from clients it does not know, per hour,
/// until a right one: ten, so that guessing a 6-digit code (three in a million per
/// guess, with a step either side) takes centuries, not weeks.
pub const CODE_FAILURES: Limit = Limit { max: 10, window: std::time::Duration::from_secs(3600) };

/// How long a successful login makes its address (or device cookie) known to the account.
pub const KNOWN_CLIENT_TTL: Duration = Duration::days(30);

/// Why a request was refused before any work.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limited; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies the configured limits.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    limits: Arc<Limits>,
    clock: Clock,
}

/// The counters of one password check, counted in advance, to settle once its outcome
/// is known.
#[derive(Debug, Default)]
pub struct PasswordAttempt {
    /// Forgiven by a success (with those of the account's other identifiers).
    clear: Vec<String>,
    /// Taken back by a success.
    undo: Vec<String>,
    /// The client's address group, remembered for the account by a success.
    client: Option<String>,
    /// The address was remembered for the account within the last day.
    remembered_lately: bool,
}

impl PasswordAttempt {
    /// `op` for every counter the check was counted against.
    fn every_counter(&self, op: Settle) -> Vec<(String, Settle)> {
        self.undo.iter().chain(&self.clear).map(|k| (k.clone(), op)).collect()
    }
}

/// The key of a client address: IPv4 (and IPv4-mapped IPv6) as the address, IPv6 as
/// its /64, since one subscriber usually holds a whole /64.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// A login identifier as a fixed-size key: the caller chooses the text, so it is never
/// stored or compared as given.
fn identifier_key(login: &str) -> String {
    let digest = Sha256::digest(login.to_lowercase().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn known_key(user: UserId, client: &str) -> String {
    format!("known:{user}|{client}")
}

fn device_key(user: UserId, device_digest: &[u8]) -> String {
    format!("device:{user}|{}", hex(device_digest))
}

impl RateLimiter {
    pub fn new(store: Arc<dyn Store>, limits: Limits, clock: Clock) -> Self {
        Self { store, limits: Arc::new(limits), clock }
    }

    /// Counts a password check for `identifiers` (what the caller typed, or a signed-in
    /// user's username and email) of `user` (`None` for an unknown login) from `ip`,
    /// carrying the device cookie digest `device`. Refused when any counter is over
    /// its limit; the password must then not be checked.
    pub async fn begin_password_check(
        &self,
        identifiers: &[&str],
        user: Option<UserId>,
        ip: Option<IpAddr>,
        device: Option<&[u8]>,
    ) -> Result<PasswordAttempt, LimitError> {
        self.begin_check(identifiers, user, ip, device, false).await
    }

    /// Counts a second factor's code of `user` like a password check, and also against
    /// the account's own limit of [`CODE_FAILURES`] (which a known client skips, as it
    /// skips the per-identifier counter): an attacker who has the password gets few
    /// guesses at a code from however many addresses.
    pub async fn begin_code_check(
        &self,
        identifiers: &[&str],
        user: UserId,
        ip: Option<IpAddr>,
        device: Option<&[u8]>,
    ) -> Result<PasswordAttempt, LimitError> {
        self.begin_check(identifiers, Some(user), ip, device, true).await
    }

    async fn begin_check(
        &self,
        identifiers: &[&str],
        user: Option<UserId>,
        ip: Option<IpAddr>,
        device: Option<&[u8]>,
        code: bool,
    ) -> Result<PasswordAttempt, LimitError> {
        let l = &self.limits;
        if !l.enabled {
            return Ok(PasswordAttempt::default());
        }
        let now = self.clock.now();
        let client = ip.map(address_key);
        // Unknown logins run the same lookup, so that it takes the same time.
        let owner = user.unwrap_or(UserId::from_uuid(uuid::Uuid::nil()));
        let known = client.as_deref().map(|c| known_key(owner, c));
        let device = device.map(|d| device_key(owner, d));
        let candidates: Vec<String> = known.iter().chain(device.iter()).cloned().collect();
        let proven = self.store.remembered(&candidates, now).await?;
        let until = |key: &String| proven.iter().find(|(k, _)| k == key).map(|(_, until)| *until);
        let known_until = known.as_ref().and_then(until);
        let by_address = known_until.is_some();
        let by_device = device.as_ref().filter(|d| until(d).is_some());

        let mut keys: Vec<(String, Limit)> = Vec::new();
        // Remembering the address again is due once a day at most.
        let remembered_lately = known_until.is_some_and(|u| u > now + KNOWN_CLIENT_TTL - Duration::days(1));
        let mut attempt = PasswordAttempt { client, remembered_lately, ..PasswordAttempt::default() };
        for id in identifiers.iter().map(|i| identifier_key(i)) {
            if !by_address && by_device.is_none() {
                attempt.undo.push(format!("login:id:{id}"));
                keys.push((format!("login:id:{id}"), l.login_account));
            }
            if by_device.is_none()
                && let Some(client) = &attempt.client
            {
                attempt.clear.push(format!("login:id-ip:{id}|{client}"));
                keys.push((format!("login:id-ip:{id}|{client}"), l.login_account_ip));
            }
        }
        if code && !by_address && by_device.is_none() {
            let key = format!("code:{owner}");
            attempt.clear.push(key.clone());
            keys.push((key, CODE_FAILURES));
        }
        if let Some(device) = by_device {
            let key = format!("login:{device}");
            attempt.clear.push(key.clone());
            keys.push((key, l.login_account_ip));
        }
        if let Some(client) = &attempt.client {
            attempt.undo.push(format!("login:ip:{client}"));
            keys.push((format!("login:ip:{client}"), l.login_ip));
        }
        let counters = self.store.hit_all(&windows(&keys), true, now).await?;
        if let Some((_, retry_after)) = refusal(&keys, &counters, now) {
            // A refused check never runs: it must not count, or refusals of checks in
            // flight would pile up into a limit of their own.
            self.password_check_abandoned(&attempt).await?;
            return Err(LimitError::RateLimited { retry_after });
        }
        Ok(attempt)
    }

    /// Settles a check whose password was wrong: its advance count stands as a failure.
    pub async fn password_check_failed(&self, attempt: &PasswordAttempt) -> Result<(), StoreError> {
        if !self.limits.enabled {
            return Ok(());
        }
        self.store.settle(&attempt.every_counter(Settle::Fail), self.clock.now()).await
    }

    /// Settles a successful check by `user`, whose identifiers are `identifiers`: the
    /// identifier-and-address counters of all of them are cleared (the right password
    /// was given, so linking them reveals nothing), the other counters take their
    /// advance count back, and the address (and `new_device`, the digest of a device
    /// cookie just issued) becomes known to the account.
    pub async fn password_check_succeeded(
        &self,
        attempt: &PasswordAttempt,
        user: UserId,
        identifiers: &[&str],
        new_device: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if !self.limits.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        // This check's own counters take back their advance count; the
        // identifier-and-address counters of all the account's identifiers then forget
        // their settled failures (checks still in flight stay counted).
        let mut ops = attempt.every_counter(Settle::Undo);
        ops.extend(attempt.clear.iter().map(|k| (k.clone(), Settle::Forgive)));
        if let Some(client) = &attempt.client {
            for id in identifiers.iter().map(|i| identifier_key(i)) {
                let key = format!("login:id-ip:{id}|{client}");
                if !attempt.clear.contains(&key) {
                    ops.push((key, Settle::Forgive));
                }
            }
        }
        let until = now + KNOWN_CLIENT_TTL;
        let address = attempt.client.iter().filter(|_| !attempt.remembered_lately).map(|c| known_key(user, c));
        let remembered = address.chain(new_device.map(|d| device_key(user, d)));
        ops.extend(remembered.map(|k| (k, Settle::Remember(until))));
        self.store.settle(&ops, now).await
    }

    /// Takes back the advance count of a check that never ran (refused, or the hasher
    /// was busy).
    pub async fn password_check_abandoned(&self, attempt: &PasswordAttempt) -> Result<(), StoreError> {
        if !self.limits.enabled {
            return Ok(());
        }
        self.store.settle(&attempt.every_counter(Settle::Undo), self.clock.now()).await
    }

    /// Counts a registration from `ip`.
    pub async fn register(&self, ip: Option<IpAddr>) -> Result<(), LimitError> {
        match ip {
            Some(ip) => self.count_one(format!("register:ip:{}", address_key(ip)), self.limits.register_ip).await,
            None => Ok(()),
        }
    }

    /// Counts a change of username from `ip` by `user`, limited like registration so
    /// that renaming is no free "is this name taken" oracle.
    pub async fn rename(&self, user: UserId, ip: Option<IpAddr>) -> Result<(), LimitError> {
        let limit = self.limits.register_ip;
        let mut keys = vec![(format!("rename:user:{user}"), limit)];
        if let Some(ip) = ip {
            keys.push((format!("rename:ip:{}", address_key(ip)), limit));
        }
        self.count(&keys, self.clock.now()).await
    }

    /// Counts a request for a verification email by `user`.
    pub async fn verification_email(&self, user: UserId) -> Result<(), LimitError> {
        self.count_one(format!("verify:user:{user}"), self.limits.verify_email).await
    }

    /// Counts a password-reset request from `ip` for `email` (known or not, so that a
    /// refusal reveals nothing).
    pub async fn password_reset(&self, ip: Option<IpAddr>, email: &str) -> Result<(), LimitError> {
        let mut keys = vec![(format!("reset:email:{}", identifier_key(email)), self.limits.reset_email)];
        if let Some(ip) = ip {
            keys.push((format!("reset:ip:{}", address_key(ip)), self.limits.reset_ip));
        }
        self.count(&keys, self.clock.now()).await
    }

    async fn count_one(&self, key: String, limit: Limit) -> Result<(), LimitError> {
        self.count(&[(key, limit)], self.clock.now()).await
    }

    /// Counts one event on every key at once; refused when any counter went past its
    /// limit, with the longest wait among them.
    async fn count(&self, keys: &[(String, Limit)], now: Timestamp) -> Result<(), LimitError> {
        if !self.limits.enabled || keys.is_empty() {
            return Ok(());
        }
        let counters = self.store.hit_all(&windows(keys), false, now).await?;
        match refusal(keys, &counters, now) {
            Some((limit, retry_after)) => {
                tracing::warn!(event = "rate_limited", limit, retry_after, "request refused: over a limit");
                Err(LimitError::RateLimited { retry_after })
            }
            None => Ok(()),
        }
    }
}

fn windows(keys: &[(String, Limit)]) -> Vec<(String, i64)> {
    keys.iter().map(|(k, limit)| (k.clone(), limit.window.as_secs() as i64)).collect()
}

/// The kind of limit a counter went past (never its subject: an address, a digest of
/// what was typed) and the wait before a retry. A limit reached by settled events lasts
/// until its window ends; one reached only because other checks are still running
/// clears as soon as they finish.
fn refusal<'k>(keys: &'k [(String, Limit)], counters: &[Counter], now: Timestamp) -> Option<(&'k str, u64)> {
    let (key, wait) = counters
        .iter()
        .filter_map(|c| {
            let (key, limit) = keys.iter().find(|(k, _)| *k == c.key)?;
            let max = i64::from(limit.max);
            if c.count <= max {
                return None;
            }
            let settled = c.count - c.pending;
            let wait = if settled >= max { (c.expires_at - now).whole_seconds().max(1) as u64 } else { 1 };
            Some((key, wait))
        })
        .max_by_key(|(_, wait)| *wait)?;
    let kind = key.rsplit_once(':').map_or(key.as_str(), |(kind, _)| kind);
    Some((kind, wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_group_mapped_ipv4_and_ipv6_by_64() {
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(address_key(mapped), "203.0.113.9");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
    }

    #[test]
    fn identifiers_fold_case_and_have_a_fixed_size() {
        assert_eq!(identifier_key("Alice"), identifier_key("alice"));
        assert_eq!(identifier_key(&"x".repeat(10_000)).len(), 32);
        assert_ne!(identifier_key("alice"), identifier_key("alice@example.com"));
    }
}
