//! Password hashing and verification off the async executor, at most N at once, with a
//! bounded queue: when it is full the caller learns at once ([`HashError::Busy`])
//! instead of piling up memory.
//!
//! New hashes are Argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1) as PHC
//! strings. Any other Argon2 parameters verify and are reported as needing a rehash.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Algorithm, Argon2, Params, Version};
use password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Argon2id memory cost in KiB (OWASP).
pub const ARGON2_M_COST: u32 = 19_456;
/// Argon2id iterations (OWASP).
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes (OWASP).
pub const ARGON2_P_COST: u32 = 1;

/// Why hashing or verifying did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are waiting; try again shortly.
    #[error("password hasher busy")]
    Busy,
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `rehash` when the stored hash is not current Argon2id.
    Match {
        rehash: bool,
    },
    Mismatch,
}

/// A pool of blocking threads for password hashing.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    running: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// A hash of a random password, verified for unknown users so that they cost the
    /// same time as a wrong password.
    dummy_hash: String,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within Argon2's limits.
    #[allow(clippy::expect_used)]
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(hash: &str, password: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return Verified::Mismatch;
    };
    let ok = match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        _ => false,
    };
    if !ok {
        return Verified::Mismatch;
    }
    Verified::Match { rehash: !is_current(&parsed) }
}

fn is_current(hash: &PasswordHash<'_>) -> bool {
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(0x13)
        && Params::try_from(hash)
            .is_ok_and(|p| p.m_cost() == ARGON2_M_COST && p.t_cost() == ARGON2_T_COST && p.p_cost() == ARGON2_P_COST)
}

impl PasswordHasher {
    /// `concurrency` hashes run at once; `queue` more may wait.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let dummy_hash = hash_blocking(&crate::auth::secret::random_token())?;
        Ok(Self {
            inner: Arc::new(Inner {
                running: Semaphore::new(concurrency.max(1)),
                waiting: AtomicUsize::new(0),
                max_waiting: queue,
                dummy_hash,
            }),
        })
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let inner = &self.inner;
        let permit = match inner.running.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.max_waiting {
                    inner.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashError::Busy);
                }
                let permit = inner.running.acquire().await;
                inner.waiting.fetch_sub(1, Ordering::AcqRel);
                permit.map_err(|e| HashError::Failed(e.into()))?
            }
        };
        let result = tokio::task::spawn_blocking(job).await.map_err(|e| HashError::Failed(e.into()));
        drop(permit);
        result
    }

    /// Hashes a new password with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = SecretString::from(password.to_owned());
        self.run(move || hash_blocking(password.expose_secret())).await?.map_err(HashError::Failed)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no
    /// user, so that both cases take the same time. `None` always mismatches.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<Verified, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.inner.dummy_hash).to_owned();
        let password = SecretString::from(password.to_owned());
        let verified = self.run(move || verify_blocking(&hash, password.expose_secret())).await?;
        Ok(if known { verified } else { Verified::Mismatch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let hasher = PasswordHasher::new(1, 4).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(hasher.verify(Some(&hash), "correct horse").await.unwrap(), Verified::Match { rehash: false });
        assert_eq!(hasher.verify(Some(&hash), "Correct horse").await.unwrap(), Verified::Mismatch);
        assert_eq!(hasher.verify(None, "correct horse").await.unwrap(), Verified::Mismatch);
        assert_eq!(hasher.verify(Some("not a hash"), "x").await.unwrap(), Verified::Mismatch);
    }

    #[tokio::test]
    async fn other_argon2_parameters_verify_and_ask_for_a_rehash() {
        let params = Params::new(4096, 1, 1, None).unwrap();
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = weak.hash_password(b"pw", &salt).unwrap().to_string();
        let hasher = PasswordHasher::new(1, 4).unwrap();
        assert_eq!(hasher.verify(Some(&hash), "pw").await.unwrap(), Verified::Match { rehash: true });
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        let hash = hasher.hash("pw").await.unwrap();
        let jobs: Vec<_> = (0..6)
            .map(|_| {
                let (h, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move { h.verify(Some(&hash), "pw").await })
            })
            .collect();
        let mut busy = 0;
        for job in jobs {
            if matches!(job.await.unwrap(), Err(HashError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "some of six concurrent jobs must be refused with room for two");
    }
}
