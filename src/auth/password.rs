//! Password hashing and verification off the async executor: N dedicated threads
//! (at most N hashes at once) fed by a bounded queue; when it is full the caller learns
//! at once ([`HashError::Busy`]) instead of piling up memory.
//!
//! Each thread owns one Argon2 memory area (19 MiB), reused for every hash, so memory
//! stays at N areas however many logins arrive. The threads that answer requests run
//! slightly below the hashing threads ([`yield_to_hashing`]), so that a flood of cheap
//! requests cannot starve logins, while short scheduler turns keep cheap requests fast
//! when logins saturate the hashers. Jobs whose request was cancelled while they
//! waited are dropped unhashed.
//!
//! New hashes are Argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1) as PHC
//! strings. Hashes imported from other systems also verify, and are reported as
//! needing a rehash so that the login path replaces them with current Argon2id:
//! other Argon2 parameters, bcrypt (`$2a$`, `$2b$`, `$2y$`), passlib
//! `$pbkdf2-sha256$<rounds>$<salt>$<hash>` and Django `pbkdf2_sha256$<iterations>$<salt>$<hash>`.
//!
//! Every format has a ceiling on its work factor ([`MAX_BCRYPT_COST`] …): a stored hash
//! comes from an import file, and a hostile or mistaken one must not be able to tie up
//! a hashing thread for hours or allocate gigabytes.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use password_hash::PasswordHash;
use prometheus_client::metrics::counter::Counter;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;

/// Argon2id memory cost in KiB (OWASP).
pub const ARGON2_M_COST: u32 = 19_456;
/// Argon2id iterations (OWASP).
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes (OWASP).
pub const ARGON2_P_COST: u32 = 1;

/// Highest bcrypt cost accepted (cost 16 takes several seconds already).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Highest PBKDF2 iteration count accepted (Django 5.2 uses 1 000 000, passlib 29 000).
pub const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;
/// Highest Argon2 memory cost accepted, in KiB (1 GiB).
pub const MAX_ARGON2_M_COST: u32 = 1 << 20;
/// Highest Argon2 iteration count accepted.
pub const MAX_ARGON2_T_COST: u32 = 64;
/// Highest Argon2 parallelism accepted.
pub const MAX_ARGON2_P_COST: u32 = 64;

/// The formats of stored hashes that Latch verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashScheme {
    /// Argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`) PHC strings, any parameters
    /// within the ceilings.
    Argon2,
    /// bcrypt, `$2a$`, `$2b$` or `$2y$`.
    Bcrypt,
    /// passlib's `$pbkdf2-sha256$rounds$salt$hash` (adapted base64).
    PasslibPbkdf2Sha256,
    /// Django's `pbkdf2_sha256$iterations$salt$hash`.
    DjangoPbkdf2Sha256,
}

impl HashScheme {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Argon2 => "argon2",
            Self::Bcrypt => "bcrypt",
            Self::PasslibPbkdf2Sha256 => "passlib pbkdf2-sha256",
            Self::DjangoPbkdf2Sha256 => "django pbkdf2_sha256",
        }
    }
}

/// Recognises the format of a stored hash and checks that it is well formed and
/// within the work-factor ceilings, without verifying any password. `import` uses it
/// to refuse a line before anything is written.
pub fn recognise(hash: &str) -> Result<HashScheme, String> {
    if is_bcrypt(hash) {
        parse_bcrypt(hash)?;
        Ok(HashScheme::Bcrypt)
    } else if hash.starts_with(PASSLIB_PREFIX) {
        parse_passlib(hash)?;
        Ok(HashScheme::PasslibPbkdf2Sha256)
    } else if hash.starts_with(DJANGO_PREFIX) {
        parse_django(hash)?;
        Ok(HashScheme::DjangoPbkdf2Sha256)
    } else if hash.starts_with("$argon2") {
        parse_argon2(hash)?;
        Ok(HashScheme::Argon2)
    } else {
        Err("is not a recognised hash (expected $argon2…, bcrypt $2a$/$2b$/$2y$, passlib $pbkdf2-sha256$ or Django pbkdf2_sha256$)".to_owned())
    }
}

/// Whether `hash` is Argon2id with the current parameters (no rehash needed).
pub fn is_current_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| is_current(&parsed))
}

const PASSLIB_PREFIX: &str = "$pbkdf2-sha256$";
const DJANGO_PREFIX: &str = "pbkdf2_sha256$";

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

fn parse_bcrypt(hash: &str) -> Result<(), String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e| format!("is not a valid bcrypt hash: {e}"))?;
    let cost = parts.get_cost();
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4–{MAX_BCRYPT_COST}"));
    }
    Ok(())
}

/// The parts of a PBKDF2-HMAC-SHA256 hash, whichever system wrote it.
struct Pbkdf2Sha256 {
    rounds: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Pbkdf2Sha256 {
    fn matches(&self, password: &str) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &self.salt, self.rounds, &mut out);
        out.ct_eq(&self.hash).into()
    }
}

fn parse_rounds(text: &str) -> Result<u32, String> {
    // Digits only: `u32::from_str` would also take a leading '+'.
    let rounds = text
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| format!("iteration count `{text}` is not a number"))?;
    if !(1..=MAX_PBKDF2_ROUNDS).contains(&rounds) {
        return Err(format!("iteration count {rounds} is outside 1–{MAX_PBKDF2_ROUNDS}"));
    }
    Ok(rounds)
}

fn check_digest_len(hash: &[u8]) -> Result<(), String> {
    // SHA-256 output is 32 bytes; passlib and Django never write other lengths, but a
    // derived key may legitimately be shorter or longer, so only nonsense is refused.
    if !(16..=64).contains(&hash.len()) {
        return Err(format!("hash of {} bytes; expected 16 to 64", hash.len()));
    }
    Ok(())
}

/// passlib's "adapted base64": the standard alphabet with '.' for '+', unpadded.
fn ab64_decode(text: &str) -> Result<Vec<u8>, String> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.contains('+') {
        return Err("uses '+', which passlib's base64 writes as '.'".to_owned());
    }
    LENIENT.decode(text.replace('.', "+")).map_err(|e| format!("not passlib base64: {e}"))
}

fn parse_passlib(hash: &str) -> Result<Pbkdf2Sha256, String> {
    let rest = hash.strip_prefix(PASSLIB_PREFIX).ok_or("not a passlib pbkdf2-sha256 hash")?;
    let fields: Vec<&str> = rest.split('$').collect();
    let [rounds, salt, digest] = fields.as_slice() else {
        return Err("passlib pbkdf2-sha256 hash must be $pbkdf2-sha256$<rounds>$<salt>$<hash>".to_owned());
    };
    let rounds = parse_rounds(rounds)?;
    let salt = ab64_decode(salt).map_err(|e| format!("salt {e}"))?;
    let digest = ab64_decode(digest).map_err(|e| format!("hash {e}"))?;
    if salt.is_empty() {
        return Err("empty salt".to_owned());
    }
    check_digest_len(&digest)?;
    Ok(Pbkdf2Sha256 { rounds, salt, hash: digest })
}

fn parse_django(hash: &str) -> Result<Pbkdf2Sha256, String> {
    let rest = hash.strip_prefix(DJANGO_PREFIX).ok_or("not a Django pbkdf2_sha256 hash")?;
    let fields: Vec<&str> = rest.split('$').collect();
    let [rounds, salt, digest] = fields.as_slice() else {
        return Err("Django hash must be pbkdf2_sha256$<iterations>$<salt>$<hash>".to_owned());
    };
    let rounds = parse_rounds(rounds)?;
    if salt.is_empty() {
        return Err("empty salt".to_owned());
    }
    // Django uses the salt text itself as the PBKDF2 salt, not its decoding.
    let digest = STANDARD.decode(digest).map_err(|e| format!("hash is not base64: {e}"))?;
    check_digest_len(&digest)?;
    Ok(Pbkdf2Sha256 { rounds, salt: salt.as_bytes().to_vec(), hash: digest })
}

fn parse_argon2(hash: &str) -> Result<PasswordHash<'_>, String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("is not a valid PHC string: {e}"))?;
    if !matches!(parsed.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(format!("unknown algorithm {}", parsed.algorithm));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
    if params.m_cost() > MAX_ARGON2_M_COST || params.t_cost() > MAX_ARGON2_T_COST || params.p_cost() > MAX_ARGON2_P_COST
    {
        return Err(format!(
            "Argon2 parameters m={},t={},p={} exceed m={MAX_ARGON2_M_COST},t={MAX_ARGON2_T_COST},p={MAX_ARGON2_P_COST}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("Argon2 hash without salt or output".to_owned());
    }
    Ok(parsed)
}

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

/// A pool of hashing threads. Cheap to clone; the threads stop when the last clone
/// is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: SyncSender<Job>,
    /// Jobs dropped unhashed because their request was cancelled.
    abandoned: Counter,
    /// A hash of a random password, verified for unknown users so that they cost the
    /// same time as a wrong password.
    dummy_hash: String,
}

/// Work for a hashing thread; the answer goes back through `reply`.
enum Job {
    Hash { password: SecretString, reply: oneshot::Sender<anyhow::Result<String>> },
    Verify { hash: String, password: SecretString, reply: oneshot::Sender<Verified> },
}

fn current_params() -> Params {
    // The constants are within Argon2's limits, and they are the argon2 crate's own
    // defaults too, so the fallback is never different.
    Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default()
}

/// A new Argon2id PHC string, computed in `memory`.
fn hash_with(memory: &mut [Block], password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!(
        "$argon2id$v=19$m={ARGON2_M_COST},t={ARGON2_T_COST},p={ARGON2_P_COST}${}${}",
        b64.encode(salt),
        b64.encode(out)
    ))
}

/// Verifies an Argon2 PHC hash, in `memory` when it is large enough.
fn verify_argon2_with(memory: &mut [Block], parsed: &PasswordHash<'_>, password: &str) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let algorithm = match parsed.algorithm.as_str() {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return false,
    };
    let version = match parsed.version {
        Some(0x10) => Version::V0x10,
        _ => Version::V0x13,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = if params.block_count() <= memory.len() {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut *memory)
    } else {
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            vec![Block::default(); params.block_count()],
        )
    };
    computed.is_ok() && bool::from(out.ct_eq(expected))
}

fn verify_with(memory: &mut [Block], hash: &str, password: &str) -> Verified {
    // Malformed hashes and hashes beyond the work ceilings simply never match.
    let (ok, current) = if is_bcrypt(hash) {
        (parse_bcrypt(hash).is_ok() && bcrypt::verify(password, hash).unwrap_or(false), false)
    } else if hash.starts_with(PASSLIB_PREFIX) {
        (parse_passlib(hash).is_ok_and(|h| h.matches(password)), false)
    } else if hash.starts_with(DJANGO_PREFIX) {
        (parse_django(hash).is_ok_and(|h| h.matches(password)), false)
    } else {
        match parse_argon2(hash) {
            Ok(parsed) => (verify_argon2_with(memory, &parsed, password), is_current(&parsed)),
            Err(_) => (false, false),
        }
    };
    if ok {
        return Verified::Match { rehash: !current };
    }
    if !current {
        // A legacy or cheaper hash answers a wrong password faster than the dummy
        // Argon2id of an unknown user would; one current-cost computation makes the
        // wrong password take at least as long, so timing does not tell them apart.
        let _ = hash_with(memory, password);
    }
    Verified::Mismatch
}

fn is_current(hash: &PasswordHash<'_>) -> bool {
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(0x13)
        && Params::try_from(hash)
            .is_ok_and(|p| p.m_cost() == ARGON2_M_COST && p.t_cost() == ARGON2_T_COST && p.p_cost() == ARGON2_P_COST)
}

/// A hashing thread: one reusable memory area, jobs until the queue closes.
fn worker(jobs: Arc<Mutex<Receiver<Job>>>, abandoned: Counter) {
    let mut memory = vec![Block::default(); current_params().block_count()];
    loop {
        let job = match jobs.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        // A job whose request was cancelled meanwhile (the client gave up or closed its
        // connection) is dropped unhashed: under overload such jobs pile up, and
        // hashing them would only delay the requests still waiting.
        match job {
            Ok(Job::Hash { reply, .. }) if reply.is_closed() => {
                abandoned.inc();
            }
            Ok(Job::Verify { reply, .. }) if reply.is_closed() => {
                abandoned.inc();
            }
            Ok(Job::Hash { password, reply }) => {
                let _ = reply.send(hash_with(&mut memory, password.expose_secret()));
            }
            Ok(Job::Verify { hash, password, reply }) => {
                let _ = reply.send(verify_with(&mut memory, &hash, password.expose_secret()));
            }
            Err(_) => return,
        }
    }
}

/// How much lower than the hashing threads the threads that answer requests run, as a
/// nice increment. On a CPU saturated by cheap requests (a flood of `GET /users/me`),
/// the scheduler then gives hashing more than half of it (weights 1024 : 820), so logins
/// keep about two thirds of their pace (measured: 0.67 of the hash ceiling), while
/// cheap requests, in short turns, still wait at most a few milliseconds for the CPU
/// (p99 8.4 ms). A larger increment bought no more logins and cost latency. Hashing at a
/// lower priority instead (nice 10) let anyone with one valid token cut every other
/// user's logins tenfold.
pub const REQUEST_THREAD_NICE_INCREMENT: libc::c_int = 1;

/// Called at the start of every thread of the async runtime that answers requests
/// (and, through inheritance, of the database threads it starts); see
/// [`REQUEST_THREAD_NICE_INCREMENT`]. Hashing threads keep the process's priority.
pub fn yield_to_hashing() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid, getpriority and setpriority take no pointers; on Linux,
    // PRIO_PROCESS with a thread id addresses that thread only.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if libc::setpriority(libc::PRIO_PROCESS, tid, current + REQUEST_THREAD_NICE_INCREMENT) != 0 {
            tracing::debug!("could not lower the priority of a request thread");
        }
    }
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads; `queue` more jobs may wait.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let (jobs, receiver) = std::sync::mpsc::sync_channel(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let abandoned = Counter::default();
        for i in 0..concurrency.max(1) {
            let (receiver, abandoned) = (receiver.clone(), abandoned.clone());
            std::thread::Builder::new().name(format!("latch-hasher-{i}")).spawn(move || worker(receiver, abandoned))?;
        }
        let mut memory = vec![Block::default(); current_params().block_count()];
        let dummy_hash = hash_with(&mut memory, &crate::auth::secret::random_token())?;
        Ok(Self { inner: Arc::new(Inner { jobs, abandoned, dummy_hash }) })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.inner.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => HashError::Busy,
            TrySendError::Disconnected(_) => HashError::Failed(anyhow::anyhow!("hashing threads stopped")),
        })
    }

    /// Counts the jobs dropped unhashed because their request had been cancelled
    /// (exported as `latch_password_jobs_abandoned_total`).
    pub fn abandoned(&self) -> Counter {
        self.inner.abandoned.clone()
    }

    /// Hashes a new password with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password: SecretString::from(password.to_owned()), reply })?;
        answer.await.map_err(|e| HashError::Failed(e.into()))?.map_err(HashError::Failed)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no
    /// user, so that both cases take the same time. `None` always mismatches.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<Verified, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.inner.dummy_hash).to_owned();
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { hash, password: SecretString::from(password.to_owned()), reply })?;
        let verified = answer.await.map_err(|e| HashError::Failed(e.into()))?;
        Ok(if known { verified } else { Verified::Mismatch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
    use std::time::Duration;

    fn memory() -> Vec<Block> {
        vec![Block::default(); current_params().block_count()]
    }

    fn hash_blocking(password: &str) -> anyhow::Result<String> {
        hash_with(&mut memory(), password)
    }

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
    async fn jobs_of_cancelled_requests_are_not_hashed() {
        use futures::FutureExt as _;
        let hasher = PasswordHasher::new(1, 16).unwrap();
        // Keeps the only thread busy (well over the microseconds the loop below takes)
        // while cancelled jobs queue up behind it.
        let slow = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(ARGON2_M_COST, 16, 1, None).unwrap());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let slow_hash = slow.hash_password(b"pw", &salt).unwrap().to_string();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.verify(Some(&slow_hash), "pw").await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let hash = hash_blocking("correct horse").unwrap();
        for _ in 0..5 {
            // Submitted by the first poll, then dropped: a client that went away.
            assert!(hasher.verify(Some(&hash), "correct horse").now_or_never().is_none());
        }
        assert_eq!(hasher.verify(Some(&hash), "correct horse").await.unwrap(), Verified::Match { rehash: false });
        assert!(matches!(busy.await.unwrap().unwrap(), Verified::Match { .. }));
        assert_eq!(hasher.abandoned().get(), 5);
    }

    /// Verifies as a hashing thread does.
    fn check(hash: &str, password: &str) -> Verified {
        verify_with(&mut memory(), hash, password)
    }

    #[test]
    fn the_parameters_are_the_crate_defaults() {
        assert_eq!(current_params(), Params::default());
    }

    #[test]
    fn our_phc_strings_are_standard_argon2id() {
        let hash = hash_blocking("interop").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"interop", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"Interop", &parsed).is_err());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::default().hash_password(b"interop", &salt).unwrap().to_string();
        assert_eq!(check(&theirs, "interop"), Verified::Match { rehash: false });
    }

    const PW: &str = "correct horse battery staple";
    const REHASH: Verified = Verified::Match { rehash: true };

    // Fixed vectors made by the reference implementations (Python `bcrypt`, passlib
    // 1.7 `pbkdf2_sha256.using(rounds=1000)`, Django 5.2 `PBKDF2PasswordHasher`).
    const BCRYPT_2B: &str = "$2b$04$nwMQ5ME6vgO3xgqzrsJyb.WaQ5sA7ofUyN6zbqPdQNKQ1f2CjSvtG";
    const BCRYPT_2Y_UNICODE: &str = "$2y$04$iW9952Yha6CBQ2zO.tNN8.PRUe9Eo6ESyZz97xKRoDBtHl24XxAku";
    const PASSLIB: &str = "$pbkdf2-sha256$1000$GwOgNEbIee/9v9f6f4/Rug$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k";
    const PASSLIB_UNICODE: &str =
        "$pbkdf2-sha256$1000$w5hTao1xbm1t7V0LISSEUA$KkELjpSKMMKvjwdJiFlJ64kRsT0DQZzaBxAHa3yqrio";
    const DJANGO: &str = "pbkdf2_sha256$1000$s0mes4lt$ALzVJX4GTsh7SIQ7SnLfRwOYuOuO/jT1CY73o7U4G3U=";
    const UNICODE_PW: &str = "pässwörd ünïcode";

    #[test]
    fn reference_bcrypt_hashes_verify_and_ask_for_a_rehash() {
        assert_eq!(check(BCRYPT_2B, PW), REHASH);
        assert_eq!(check(BCRYPT_2B, "correct horse battery stapler"), Verified::Mismatch);
        assert_eq!(check(BCRYPT_2Y_UNICODE, UNICODE_PW), REHASH);
        let as_2a = BCRYPT_2B.replacen("$2b$", "$2a$", 1);
        assert_eq!(check(&as_2a, PW), REHASH);
        assert_eq!(recognise(BCRYPT_2B), Ok(HashScheme::Bcrypt));
    }

    #[test]
    fn reference_passlib_hashes_verify_and_ask_for_a_rehash() {
        assert_eq!(check(PASSLIB, PW), REHASH);
        assert_eq!(check(PASSLIB, "Correct horse battery staple"), Verified::Mismatch);
        assert_eq!(check(PASSLIB_UNICODE, UNICODE_PW), REHASH);
        assert_eq!(recognise(PASSLIB), Ok(HashScheme::PasslibPbkdf2Sha256));
    }

    #[test]
    fn reference_django_hashes_verify_and_ask_for_a_rehash() {
        assert_eq!(check(DJANGO, PW), REHASH);
        assert_eq!(check(DJANGO, "wrong"), Verified::Mismatch);
        assert_eq!(recognise(DJANGO), Ok(HashScheme::DjangoPbkdf2Sha256));
    }

    #[test]
    fn hashes_made_here_with_the_same_algorithms_verify() {
        let bcrypt_hash = bcrypt::hash("s3cret pw", 4).unwrap();
        assert_eq!(check(&bcrypt_hash, "s3cret pw"), REHASH);
        assert_eq!(check(&bcrypt_hash, "s3cret pX"), Verified::Mismatch);

        let salt = b"\x01\x02\xfbsalty\xff";
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>("s3cret pw".as_bytes(), salt, 1200, &mut out);
        let ab64 = |b: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(b).replace('+', ".");
        let passlib = format!("$pbkdf2-sha256$1200${}${}", ab64(salt), ab64(&out));
        assert_eq!(check(&passlib, "s3cret pw"), REHASH);
        assert_eq!(check(&passlib, "s3cret pX"), Verified::Mismatch);

        pbkdf2::pbkdf2_hmac::<sha2::Sha256>("s3cret pw".as_bytes(), b"abcDEF123", 1200, &mut out);
        let django = format!("pbkdf2_sha256$1200$abcDEF123${}", STANDARD.encode(out));
        assert_eq!(check(&django, "s3cret pw"), REHASH);
        assert_eq!(check(&django, "s3cret pX"), Verified::Mismatch);
    }

    #[test]
    fn malformed_or_excessive_hashes_are_not_recognised_and_never_match() {
        let too_costly_bcrypt =
            bcrypt::hash_with_salt("pw", 4, [7; 16]).unwrap().format_for_version(bcrypt::Version::TwoB);
        let too_costly_bcrypt = too_costly_bcrypt.replacen("$04$", "$20$", 1);
        let bad = [
            "",
            "plain text",
            "$2b$04$short",
            &too_costly_bcrypt,
            "$pbkdf2-sha256$1000$c2FsdA$",
            "$pbkdf2-sha256$abc$c2FsdA$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k",
            "$pbkdf2-sha256$99999999999$c2FsdA$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k",
            "$pbkdf2-sha256$1000$c2FsdA$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41+ZWf4RA7cp5k",
            "pbkdf2_sha256$1000$$ALzVJX4GTsh7SIQ7SnLfRwOYuOuO/jT1CY73o7U4G3U=",
            "pbkdf2_sha256$+1000$salt$ALzVJX4GTsh7SIQ7SnLfRwOYuOuO/jT1CY73o7U4G3U=",
            "pbkdf2_sha256$1000$salt$not base64!",
            "pbkdf2_sha1$1000$salt$ALzVJX4GTsh7SIQ7SnLfRwOYuOuO/jT1CY73o7U4G3U=",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$ZQ4kqyJFpiN4IK5gweQCAvWFPVyUO41/ZWf4RA7cp5k",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ];
        for hash in bad {
            assert!(recognise(hash).is_err(), "{hash:?} recognised");
            assert_eq!(check(hash, "pw"), Verified::Mismatch, "{hash:?}");
        }
    }

    #[test]
    fn current_argon2id_is_recognised_and_current() {
        let hash = hash_blocking("pw").unwrap();
        assert_eq!(recognise(&hash), Ok(HashScheme::Argon2));
        assert!(is_current_hash(&hash));
        assert!(!is_current_hash(BCRYPT_2B));
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

    #[tokio::test]
    async fn cancelled_requests_do_not_keep_their_place_in_the_queue() {
        let hasher = PasswordHasher::new(1, 2).unwrap();
        let hash = hasher.hash("pw").await.unwrap();
        for _ in 0..5 {
            let cancelled: Vec<_> = (0..3).map(|_| hasher.verify(Some(&hash), "pw")).collect();
            drop(cancelled);
            let _ = tokio::time::timeout(Duration::from_millis(1), hasher.verify(Some(&hash), "pw")).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(hasher.verify(Some(&hash), "pw").await.unwrap(), Verified::Match { rehash: false });
    }
}
