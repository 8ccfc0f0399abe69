//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with ES256 (the default, which
//! every mainstream JOSE library verifies with its default settings), EdDSA or RS256,
//! and the key set behind them. Verification pins the algorithm to the key named by `kid`,
//! checks `iss`, `aud` (a string, or an array that contains it), `exp`, `nbf` and
//! `iat` with at most 5 s of leeway, and refuses any `crit` header, since Latch
//! understands no JWS extension.
//!
//! Rotation is staged: every key in the store is published, but the one that signs is
//! chosen at signing time from the keys' schedules (`signs_from` .. `retired_at`), so
//! that a server switches to a rotated key when its time comes, without a reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::auth::kek::KeyEncryptionKey;
use crate::clock::Clock;
use crate::config::{Config, SigningAlgorithm};
use crate::domain::{SessionId, Timestamp, UserId};
use crate::store::{Actor, AuditEvent, EventType, KeyStore, SealedKey, Store, StoredKey, UserRecord};

/// Clock leeway accepted on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of a verified access token, with typed ids. What Latch signs is
/// [`latch_client::AccessClaims`], the type its clients read.
#[derive(Debug, Clone)]
pub struct AccessClaims {
    pub iss: String,
    /// Whose token it is.
    pub holder: Holder,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub client_id: String,
    /// The granted scopes, space-separated (RFC 9068 §2.2.3).
    pub scope: String,
    /// The user's roles when the token was issued.
    pub roles: Vec<String>,
    /// Set once the key that verified these claims has left the key set (`latch keys
    /// rotate --now`), so that a cache of verified tokens stops trusting them.
    key_withdrawn: Option<Arc<AtomicBool>>,
}

/// Whose access token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A user's, in a session (`sub` and `sid`).
    User { user: UserId, sid: SessionId },
    /// A client's own (client credentials grant): `sub` is the client, no `sid`.
    Client,
}

impl AccessClaims {
    /// False once the key these claims were verified with has been withdrawn.
    pub fn key_still_trusted(&self) -> bool {
        self.key_withdrawn.as_ref().is_none_or(|w| !w.load(Ordering::Acquire))
    }
}

/// The claims read from a presented token: those Latch signs, and `nbf`, which others
/// may set. `aud` is checked by the validation (a string, or an array that contains it).
#[derive(Deserialize)]
struct PresentedClaims {
    #[serde(flatten)]
    signed: latch_client::AccessClaims,
    /// A NumericDate may have a fraction (RFC 7519, section 2).
    nbf: Option<f64>,
}

/// Why an access token was refused. Clients only ever learn "invalid token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("critical header extension not understood")]
    Critical,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

struct Key {
    algorithm: Algorithm,
    signer: Signer,
    decoding: DecodingKey,
    validation: Validation,
    jwk: serde_json::Value,
    /// Set when the key leaves the set; shared with the claims it verified.
    withdrawn: Arc<AtomicBool>,
}

/// The private half of a key, parsed once: parsing a PKCS#8 P-256 key derives its public
/// point, a scalar multiplication as costly as the signature itself, which jsonwebtoken's
/// encoder would repeat for every token.
enum Signer {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
    /// AWS-LC's RSA: it signs about four times faster than the pure-Rust `rsa` crate
    /// (twice as fast as ring), and an ID token is signed on every code exchange.
    Rsa(aws_lc_rs::signature::RsaKeyPair),
}

/// A key and its schedule, in Unix seconds.
struct Entry {
    key: Arc<Key>,
    signs_from: i64,
    retired_at: Option<i64>,
    /// Signs ID tokens rather than access tokens; each kind has its own schedule.
    id_token: bool,
}

impl Entry {
    fn signs_at(&self, now: i64) -> bool {
        self.signs_from <= now && self.retired_at.is_none_or(|r| now < r)
    }
}

struct KeySet {
    keys: HashMap<String, Entry>,
}

impl KeySet {
    /// The key that signs access tokens (or ID tokens) at `now`. Schedules of one kind
    /// never overlap (adding a key retires the others of its kind at its start), so at
    /// most one key is due; when none is (the clock of whoever scheduled the newest key
    /// runs ahead of ours), the newest key signs.
    fn signing(&self, now: i64, id_token: bool) -> Option<(&str, &Entry)> {
        let kind = self.keys.iter().filter(|(_, e)| e.id_token == id_token);
        kind.clone()
            .find(|(_, e)| e.signs_at(now))
            .or_else(|| kind.max_by_key(|(kid, e)| (e.retired_at.is_none(), e.signs_from, *kid)))
            .map(|(kid, e)| (kid.as_str(), e))
    }
}

/// Signs and verifies access tokens with the keys kept in the store.
#[derive(Clone)]
pub struct TokenService {
    keys: Arc<RwLock<Arc<KeySet>>>,
    issuer: Arc<str>,
    audience: Arc<str>,
    ttl: Duration,
    kek: Option<KeyEncryptionKey>,
    clock: Clock,
    /// Held while the first ID-token key is made, so that one process makes one.
    id_key_made: Arc<tokio::sync::Mutex<()>>,
}

/// The `purpose` of access-token keys in the store.
pub const ACCESS_KEYS: &str = "access";
/// The `purpose` of ID-token keys in the store.
pub const ID_KEYS: &str = "id";

impl TokenService {
    /// Loads the keys from the store, first encrypting plaintext private keys when a
    /// key-encryption key is configured. Creates a key for the configured algorithm
    /// when there is none: the very first key signs at once, a key for a changed
    /// algorithm after `key_rotation_delay`, like a rotation.
    pub async fn load(
        store: &dyn Store,
        config: &Config,
        issuer: &str,
        audience: &str,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let service = Self {
            keys: Arc::new(RwLock::new(Arc::new(KeySet { keys: HashMap::new() }))),
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: config.access_token_ttl,
            kek: config.key_encryption_key.clone(),
            clock,
            id_key_made: Arc::new(tokio::sync::Mutex::new(())),
        };
        if let Some(kek) = &service.kek {
            encrypt_plaintext_keys(store, kek).await?;
        }
        let mut stored = store.signing_keys(published_since(service.clock.now(), service.ttl)).await?;
        let wanted = algorithm_name(config.signing_algorithm);
        // The newest access-token key is the only one not retired.
        let newest = stored.iter().find(|k| k.retired_at.is_none() && k.purpose == ACCESS_KEYS);
        if newest.is_none_or(|k| k.algorithm != wanted) {
            let now = service.clock.now();
            let signs_from = if newest.is_none() { now } else { now + whole_seconds(config.key_rotation_delay) };
            let key = generate_key(config.signing_algorithm, now, signs_from, service.kek.as_ref(), ACCESS_KEYS)?;
            let reason = if newest.is_none() { "first_key" } else { "algorithm_changed" };
            let event = AuditEvent::new(EventType::KeyRotation, Actor::System, now)
                .detail("kid", key.kid.as_str())
                .detail("algorithm", wanted)
                .detail("reason", reason);
            store.add_signing_key(&key, false, &event).await?;
            if newest.is_some() {
                tracing::info!(
                    kid = %key.kid,
                    algorithm = wanted,
                    signs_from = %signs_from,
                    "new signing key for the configured algorithm"
                );
            }
            stored = store.signing_keys(published_since(service.clock.now(), service.ttl)).await?;
        }
        service.install(&stored)?;
        Ok(service)
    }

    /// Rereads the keys from the store (after a rotation by another process, or to
    /// drop retired keys whose tokens have all expired). Keeps the current set when
    /// nothing changed or the store has no key.
    pub async fn reload(&self, store: &dyn Store) -> anyhow::Result<()> {
        let stored = store.signing_keys(published_since(self.clock.now(), self.ttl)).await?;
        let current = self.current();
        let unchanged = stored.len() == current.keys.len()
            && stored.iter().all(|k| {
                current.keys.get(&k.kid).is_some_and(|e| {
                    e.signs_from == k.signs_from.unix() && e.retired_at == k.retired_at.map(Timestamp::unix)
                })
            });
        if unchanged || stored.is_empty() {
            return Ok(());
        }
        self.install(&stored)?;
        let now = self.clock.now().unix();
        let set = self.current();
        let kids: Vec<&str> = set.keys.keys().map(String::as_str).collect();
        let signing = set.signing(now, false).map(|(kid, _)| kid);
        tracing::info!(signing, published = ?kids, "signing keys reloaded");
        Ok(())
    }

    /// Follows key changes announced by the store, and polls at the store's interval
    /// for what announcements cannot reach (another process on a SQLite file).
    pub async fn follow(self, store: std::sync::Arc<dyn Store>) {
        use crate::store::Change;
        let wants = |change| matches!(change, Change::Keys | Change::All);
        super::follow(store, wants, |store| {
            let tokens = self.clone();
            async move {
                if let Err(e) = tokens.reload(&*store).await {
                    tracing::warn!(error = format!("{e:#}"), "could not reload signing keys");
                }
            }
        })
        .await;
    }

    /// Makes `stored` the key set. Keys already known are kept as they are (their
    /// claims in caches stay trusted); keys that left are marked withdrawn.
    fn install(&self, stored: &[StoredKey]) -> anyhow::Result<()> {
        let current = self.current();
        let mut keys = HashMap::new();
        for k in stored {
            let key = match current.keys.get(&k.kid) {
                Some(e) => e.key.clone(),
                None => Arc::new(self.key_from_store(k)?),
            };
            let entry = Entry {
                key,
                signs_from: k.signs_from.unix(),
                retired_at: k.retired_at.map(Timestamp::unix),
                id_token: k.purpose == ID_KEYS,
            };
            keys.insert(k.kid.clone(), entry);
        }
        anyhow::ensure!(!keys.is_empty(), "no signing key");
        let set = Arc::new(KeySet { keys });
        match self.keys.write() {
            Ok(mut guard) => *guard = set.clone(),
            Err(poisoned) => *poisoned.into_inner() = set.clone(),
        }
        for (kid, e) in &current.keys {
            if !set.keys.contains_key(kid) {
                e.key.withdrawn.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    fn key_from_store(&self, k: &StoredKey) -> anyhow::Result<Key> {
        let jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).context("stored JWK")?;
        let field = |name: &str| jwk.get(name).and_then(|v| v.as_str()).with_context(|| format!("JWK without {name}"));
        let der = private_key(k, self.kek.as_ref())?;
        let (algorithm, signer, decoding) = match k.algorithm.as_str() {
            "EdDSA" => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).context("stored Ed25519 key")?;
                (Algorithm::EdDSA, Signer::EdDsa(key), DecodingKey::from_ed_components(field("x")?)?)
            }
            "ES256" => {
                use p256::pkcs8::DecodePrivateKey as _;
                let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der).context("stored P-256 key")?;
                (Algorithm::ES256, Signer::Es256(key), DecodingKey::from_ec_components(field("x")?, field("y")?)?)
            }
            "RS256" => (
                Algorithm::RS256,
                Signer::Rsa(
                    aws_lc_rs::signature::RsaKeyPair::from_der(&der)
                        .map_err(|e| anyhow::anyhow!("stored RSA key: {e}"))?,
                ),
                DecodingKey::from_rsa_components(field("n")?, field("e")?)?,
            ),
            other => anyhow::bail!("unknown key algorithm {other}"),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&*self.issuer]);
        if k.purpose == ID_KEYS {
            // An ID token's audience is the client it was issued to, checked by the caller.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&*self.audience]);
        }
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Times are checked against the service's clock, in `verify`; no leeway here,
        // should these checks ever be turned back on.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(Key { algorithm, signer, decoding, validation, jwk, withdrawn: Arc::new(AtomicBool::new(false)) })
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Access token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of the tokens signed here.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs a new access token of `user` (whose roles it carries) for the session `sid`.
    pub fn sign(
        &self,
        user: &UserRecord,
        sid: SessionId,
        client_id: &str,
        scope: &str,
        amr: &str,
    ) -> anyhow::Result<String> {
        let now = self.clock.now().unix();
        self.sign_claims(&latch_client::AccessClaims {
            iss: self.issuer.to_string(),
            sub: user.id.as_uuid(),
            aud: self.audience.to_string(),
            exp: now + self.ttl.as_secs() as i64,
            iat: now,
            jti: Uuid::new_v4(),
            sid: Some(sid.as_uuid()),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            roles: user.roles().map(str::to_owned).collect(),
            amr: amr.split_ascii_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Signs a client's own access token (client credentials grant): `sub` is the
    /// client, and there is no session.
    pub fn sign_for_client(&self, client_id: Uuid, scope: &str) -> anyhow::Result<String> {
        let now = self.clock.now().unix();
        self.sign_claims(&latch_client::AccessClaims {
            iss: self.issuer.to_string(),
            sub: client_id,
            aud: self.audience.to_string(),
            exp: now + self.ttl.as_secs() as i64,
            iat: now,
            jti: Uuid::new_v4(),
            sid: None,
            client_id: client_id.to_string(),
            scope: scope.to_owned(),
            roles: Vec::new(),
            amr: Vec::new(),
        })
    }

    fn sign_claims(&self, claims: &latch_client::AccessClaims) -> anyhow::Result<String> {
        let set = self.current();
        let (kid, entry) = set.signing(claims.iat, false).context("no signing key")?;
        let key = &entry.key;
        let mut header = Header::new(key.algorithm);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid.to_owned());
        sign_with(key, &header, claims)
    }

    /// Signs an ID token with the current ID-token key, making the first one (RS256)
    /// when there is none yet: only installations that use the OpenID flows pay for an
    /// RSA key.
    pub async fn sign_id_token(&self, store: &dyn Store, claims: &impl Serialize) -> anyhow::Result<String> {
        let now = self.clock.now();
        if self.current().signing(now.unix(), true).is_none() {
            let _made = self.id_key_made.lock().await;
            self.reload(store).await?;
            if self.current().signing(now.unix(), true).is_none() {
                // An RSA key takes a while to make: not on the executor's threads.
                let kek = self.kek.clone();
                let key = tokio::task::spawn_blocking(move || {
                    generate_key(SigningAlgorithm::Rs256, now, now, kek.as_ref(), ID_KEYS)
                })
                .await??;
                let event = AuditEvent::new(EventType::KeyRotation, Actor::System, now)
                    .detail("kid", key.kid.as_str())
                    .detail("algorithm", key.algorithm.as_str())
                    .detail("purpose", ID_KEYS)
                    .detail("reason", "first_key");
                store.add_signing_key(&key, false, &event).await?;
                self.reload(store).await?;
            }
        }
        let set = self.current();
        let (kid, entry) = set.signing(now.unix(), true).context("no ID-token key")?;
        let mut header = Header::new(entry.key.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(kid.to_owned());
        sign_with(&entry.key, &header, claims)
    }

    /// The claims of an ID token Latch signed, its signature and issuer checked but not
    /// its expiry (an `id_token_hint` names a past sign-in).
    pub fn id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.crit.is_some() {
            return None;
        }
        let set = self.current();
        let entry = set.keys.get(header.kid.as_deref()?)?;
        if !entry.id_token || header.alg != entry.key.algorithm {
            return None;
        }
        let mut validation = entry.key.validation.clone();
        validation.validate_exp = false;
        jsonwebtoken::decode::<IdTokenHint>(token, &entry.key.decoding, &validation).ok().map(|d| d.claims)
    }
}

/// What an `id_token_hint` says: whom, for which client, in which session.
#[derive(Debug, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    #[serde(deserialize_with = "audience")]
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

/// `aud` as Latch signs it (a string) or as an array whose first member is the client.
fn audience<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    match Aud::deserialize(d)? {
        Aud::One(a) => Ok(a),
        Aud::Many(list) => list.into_iter().next().ok_or_else(|| serde::de::Error::custom("empty aud")),
    }
}

/// Signs `claims` under `header` with `key`.
fn sign_with(key: &Key, header: &Header, claims: &impl Serialize) -> anyhow::Result<String> {
    Ok(match &key.signer {
        Signer::Es256(key) => compact(header, claims, |input| {
            use p256::ecdsa::signature::Signer as _;
            // RFC 7518 §3.4: R || S, 32 bytes each.
            let signature: p256::ecdsa::Signature = key.sign(input);
            signature.to_bytes().to_vec()
        })?,
        Signer::EdDsa(key) => compact(header, claims, |input| {
            use ed25519_dalek::Signer as _;
            key.sign(input).to_bytes().to_vec()
        })?,
        Signer::Rsa(key) => {
            let mut failed = false;
            let token = compact(header, claims, |input| {
                let mut signature = vec![0; key.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                failed = key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input, &mut signature).is_err();
                signature
            })?;
            anyhow::ensure!(!failed, "RSA signing failed");
            token
        }
    })
}

impl TokenService {
    /// Verifies signature, header and claims of an access token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: a recipient must refuse extensions it does not
            // understand, and Latch understands none.
            return Err(TokenError::Critical);
        }
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        if !typ_ok {
            return Err(TokenError::Malformed);
        }
        let set = self.current();
        let entry = header.kid.as_deref().and_then(|kid| set.keys.get(kid)).filter(|e| !e.id_token);
        let key = &entry.ok_or(TokenError::UnknownKey)?.key;
        if header.alg != key.algorithm {
            return Err(TokenError::Malformed);
        }
        let PresentedClaims { signed: c, nbf } =
            jsonwebtoken::decode::<PresentedClaims>(token, &key.decoding, &key.validation)?.claims;
        let now = self.clock.now().unix();
        let leeway = LEEWAY_SECS as i64;
        if c.exp.saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| !nbf.is_finite() || nbf > now.saturating_add(leeway) as f64) {
            return Err(TokenError::NotYetValid);
        }
        if c.iat > now.saturating_add(leeway) {
            return Err(TokenError::IssuedInFuture);
        }
        let holder = match c.sid {
            Some(sid) => Holder::User { user: UserId::from_uuid(c.sub), sid: SessionId::from_uuid(sid) },
            // A client's own token names the client twice.
            None if c.client_id == c.sub.to_string() => Holder::Client,
            None => return Err(TokenError::Malformed),
        };
        Ok(AccessClaims {
            iss: c.iss,
            holder,
            // The validation found the audience in the token (alone or in an array).
            aud: self.audience.to_string(),
            exp: c.exp,
            iat: c.iat,
            jti: c.jti,
            client_id: c.client_id,
            roles: c.roles,
            scope: c.scope,
            key_withdrawn: Some(key.withdrawn.clone()),
        })
    }

    /// The public keys as a JWK Set: the signing key first, then the keys scheduled to
    /// sign, then retired keys whose tokens may still be valid.
    pub fn jwks(&self) -> serde_json::Value {
        let set = self.current();
        let now = self.clock.now().unix();
        let signing = set.signing(now, false).map(|(kid, _)| kid);
        let cutoff = now - (self.ttl.as_secs() + LEEWAY_SECS) as i64;
        let mut keys: Vec<(&str, &Entry)> = set
            .keys
            .iter()
            .map(|(kid, e)| (kid.as_str(), e))
            .filter(|(_, e)| e.retired_at.is_none_or(|r| r > cutoff))
            .collect();
        keys.sort_by_key(|(kid, e)| (Some(*kid) != signing, e.id_token, std::cmp::Reverse(e.signs_from), *kid));
        serde_json::json!({ "keys": keys.iter().map(|(_, e)| &e.key.jwk).collect::<Vec<_>>() })
    }

    /// Algorithms the key set signs with, for discovery.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let set = self.current();
        let mut algs: Vec<&'static str> = set
            .keys
            .values()
            .filter(|e| !e.id_token)
            .map(|e| match e.key.algorithm {
                Algorithm::RS256 => "RS256",
                Algorithm::ES256 => "ES256",
                _ => "EdDSA",
            })
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

/// RFC 7515 compact serialization: BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature
/// over the first two parts).
fn compact(header: &Header, claims: &impl Serialize, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> anyhow::Result<String> {
    let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
    let signature = sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

fn algorithm_name(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm {
        SigningAlgorithm::Es256 => "ES256",
        SigningAlgorithm::EdDsa => "EdDSA",
        SigningAlgorithm::Rs256 => "RS256",
    }
}

/// A fresh key pair that signs from `signs_from`, its public half as a JWK whose `kid`
/// is its RFC 7638 thumbprint, its private half sealed with `kek` when there is one.
pub fn generate_key(
    algorithm: SigningAlgorithm,
    now: Timestamp,
    signs_from: Timestamp,
    kek: Option<&KeyEncryptionKey>,
    purpose: &str,
) -> anyhow::Result<StoredKey> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (der, mut jwk, thumb_input) = match algorithm {
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let der = zeroize::Zeroizing::new(key.to_pkcs8_der().context("encode Ed25519 key")?.as_bytes().to_vec());
            let x = b64(key.verifying_key().as_bytes());
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (der, serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x }), thumb)
        }
        SigningAlgorithm::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            use p256::pkcs8::EncodePrivateKey as _;
            let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let der = zeroize::Zeroizing::new(key.to_pkcs8_der().context("encode P-256 key")?.as_bytes().to_vec());
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                anyhow::bail!("P-256 public key without coordinates");
            };
            let (x, y) = (b64(x), b64(y));
            let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (der, serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }), thumb)
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("generate RSA key")?;
            let der = zeroize::Zeroizing::new(key.to_pkcs1_der().context("encode RSA key")?.as_bytes().to_vec());
            let (n, e) = (b64(&key.n().to_bytes_be()), b64(&key.e().to_bytes_be()));
            let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (der, serde_json::json!({ "kty": "RSA", "n": n, "e": e }), thumb)
        }
    };
    let kid = b64(&Sha256::digest(thumb_input.as_bytes()));
    let alg = algorithm_name(algorithm);
    if let Some(map) = jwk.as_object_mut() {
        map.insert("kid".into(), kid.clone().into());
        map.insert("alg".into(), alg.into());
        map.insert("use".into(), "sig".into());
    }
    let (private_der, encrypted_with) = match kek {
        Some(kek) => (kek.seal(&der, &private_key_aad(&kid))?, Some(kek.id().to_owned())),
        None => (der.to_vec(), None),
    };
    Ok(StoredKey {
        kid,
        algorithm: alg.to_owned(),
        private_der,
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
        signs_from,
        encrypted_with,
        purpose: purpose.to_owned(),
    })
}

/// Old keys stay published while tokens they signed may still be valid: keys retired
/// after this time.
pub fn published_since(now: Timestamp, ttl: Duration) -> Timestamp {
    now - ttl - Duration::from_secs(LEEWAY_SECS)
}

/// `d` rounded up to whole seconds, the resolution of stored times.
pub fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// Binds a sealed private key to its row.
fn private_key_aad(kid: &str) -> Vec<u8> {
    format!("latch signing key {kid}").into_bytes()
}

/// The private key of `k` as DER, decrypted with `kek` when it is sealed. The errors
/// say which configuration would open it.
pub fn private_key(k: &StoredKey, kek: Option<&KeyEncryptionKey>) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let kid = &k.kid;
    match (&k.encrypted_with, kek) {
        (None, _) => Ok(zeroize::Zeroizing::new(k.private_der.clone())),
        (Some(id), None) => anyhow::bail!(
            "signing key {kid} is encrypted (key-encryption key {id}): set LATCH_KEY_ENCRYPTION_KEY_FILE \
             to the file holding that key"
        ),
        (Some(id), Some(kek)) if id != kek.id() => anyhow::bail!(
            "signing key {kid} is encrypted with key-encryption key {id}, but LATCH_KEY_ENCRYPTION_KEY_FILE \
             holds key {}",
            kek.id()
        ),
        (Some(_), Some(kek)) => kek
            .open(&k.private_der, &private_key_aad(kid))
            .with_context(|| format!("signing key {kid} cannot be decrypted with LATCH_KEY_ENCRYPTION_KEY_FILE")),
    }
}

/// Encrypts every private key still stored in plaintext, of any age (the first start
/// with `LATCH_KEY_ENCRYPTION_KEY_FILE`).
pub async fn encrypt_plaintext_keys(store: &(impl KeyStore + ?Sized), kek: &KeyEncryptionKey) -> anyhow::Result<()> {
    let mut done = 0;
    for k in store.plaintext_signing_keys().await? {
        let sealed = kek.seal(&k.private_der, &private_key_aad(&k.kid))?;
        let key = SealedKey { kid: &k.kid, private_der: &sealed, encrypted_with: kek.id() };
        if store.encrypt_signing_key(&key).await? {
            done += 1;
        }
    }
    if done > 0 {
        tracing::info!(keys = done, kek = kek.id(), "private signing keys encrypted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    /// A user with `id` and the roles `admin` and `support`.
    fn user(id: UserId) -> UserRecord {
        let now = Clock::system().now();
        UserRecord {
            id,
            username: "u".into(),
            email: "u@example.com".into(),
            email_verified: true,
            password_hash: String::new(),
            roles: "admin support".into(),
            disabled: false,
            created_at: now,
            updated_at: now,
        }
    }

    use super::*;

    fn service(kek: Option<KeyEncryptionKey>) -> TokenService {
        TokenService {
            keys: Arc::new(RwLock::new(Arc::new(KeySet { keys: HashMap::new() }))),
            issuer: "https://issuer.example".into(),
            audience: "https://issuer.example".into(),
            ttl: Duration::from_secs(900),
            kek,
            clock: Clock::system(),
            id_key_made: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    #[test]
    fn the_signing_key_follows_the_schedule_and_withdrawn_keys_lose_trust() {
        let t0 = Clock::system().now();
        let mut old =
            generate_key(SigningAlgorithm::EdDsa, t0, t0 - Duration::from_secs(100), None, ACCESS_KEYS).unwrap();
        old.retired_at = Some(t0 + Duration::from_secs(10));
        let new = generate_key(SigningAlgorithm::EdDsa, t0, t0 + Duration::from_secs(10), None, ACCESS_KEYS).unwrap();
        let tokens = service(None);
        tokens.install(&[new.clone(), old.clone()]).unwrap();
        let set = tokens.current();
        let at = |secs: i64| set.signing(t0.unix() + secs, false).unwrap().0.to_owned();
        assert_eq!(at(0), old.kid);
        assert_eq!(at(9), old.kid);
        assert_eq!(at(10), new.kid);
        assert_eq!(at(-1000), new.kid, "before every schedule, the newest key");
        let jwks = tokens.jwks();
        let published: Vec<&str> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(published, [old.kid.as_str(), new.kid.as_str()], "the signing key first");

        let claims = tokens
            .verify(&tokens.sign(&user(UserId::generate()), SessionId::generate(), "latch", "openid", "pwd").unwrap())
            .unwrap();
        assert!(claims.key_still_trusted());
        let mut replacement = generate_key(SigningAlgorithm::EdDsa, t0, t0, None, ACCESS_KEYS).unwrap();
        replacement.retired_at = None;
        tokens.install(&[replacement]).unwrap();
        assert!(!claims.key_still_trusted(), "the key that verified them is gone");
    }

    #[test]
    fn every_algorithm_signs_tokens_that_jsonwebtoken_verifies() {
        for algorithm in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256] {
            let now = Clock::system().now();
            let tokens = service(None);
            tokens.install(&[generate_key(algorithm, now, now, None, ACCESS_KEYS).unwrap()]).unwrap();
            let (user, sid) = (UserId::generate(), SessionId::generate());
            let token = tokens.sign(&self::user(user), sid, "app", "openid email", "pwd").unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, Algorithm::from_str(algorithm_name(algorithm)).unwrap());
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let claims = tokens.verify(&token).unwrap();
            assert_eq!((claims.holder, claims.client_id.as_str()), (Holder::User { user, sid }, "app"));
            assert_eq!(claims.roles, ["admin", "support"]);
            // A flipped signature bit is refused.
            let mut bytes = token.into_bytes();
            let last = bytes.len() - 2;
            bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
            assert!(tokens.verify(std::str::from_utf8(&bytes).unwrap()).is_err(), "{algorithm:?}");
        }
    }

    #[test]
    fn encrypted_private_keys_open_only_with_their_key() {
        let kek = KeyEncryptionKey::parse(&"11".repeat(32)).unwrap();
        let other = KeyEncryptionKey::parse(&"22".repeat(32)).unwrap();
        let key = generate_key(
            SigningAlgorithm::EdDsa,
            Clock::system().now(),
            Clock::system().now(),
            Some(&kek),
            ACCESS_KEYS,
        )
        .unwrap();
        assert_eq!(key.encrypted_with.as_deref(), Some(kek.id()));
        let der = private_key(&key, Some(&kek)).unwrap();
        assert!(
            ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_der(&der).map(|_: ed25519_dalek::SigningKey| ()).is_ok()
        );
        let missing = private_key(&key, None).unwrap_err().to_string();
        assert!(missing.contains("LATCH_KEY_ENCRYPTION_KEY_FILE"), "{missing}");
        let wrong = private_key(&key, Some(&other)).unwrap_err().to_string();
        assert!(wrong.contains(other.id()) && wrong.contains(kek.id()), "{wrong}");
        // A sealed key moved to another row does not open.
        let mut moved = key.clone();
        moved.kid = "another".to_owned();
        assert!(private_key(&moved, Some(&kek)).is_err());

        let tokens = service(Some(kek));
        tokens.install(&[key]).unwrap();
        assert!(tokens.sign(&user(UserId::generate()), SessionId::generate(), "latch", "openid", "pwd").is_ok());
        assert!(
            service(None)
                .install(&[generate_key(
                    SigningAlgorithm::EdDsa,
                    Clock::system().now(),
                    Clock::system().now(),
                    Some(&other),
                    ACCESS_KEYS
                )
                .unwrap()])
                .is_err()
        );
    }
}
