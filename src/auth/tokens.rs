//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with Ed25519 or RS256, and the
//! key set behind them. Verification pins the algorithm to the key named by `kid` and
//! checks `iss`, `aud`, `exp` and `nbf` with at most 5 s of leeway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::SigningAlgorithm;
use crate::store::{Store, StoredKey};

/// Clock leeway accepted on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of a Latch access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub sid: Uuid,
    pub client_id: String,
}

/// Why an access token was refused. Clients only ever learn "invalid token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

struct Key {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    jwk: serde_json::Value,
}

struct KeySet {
    signing_kid: String,
    keys: HashMap<String, Key>,
}

/// Signs and verifies access tokens with the keys kept in the store.
#[derive(Clone)]
pub struct TokenService {
    keys: Arc<RwLock<Arc<KeySet>>>,
    issuer: Arc<str>,
    audience: Arc<str>,
    ttl: Duration,
}

impl TokenService {
    /// Loads the keys from the store, creating a signing key for `algorithm` when
    /// there is none yet.
    pub async fn load(
        store: &dyn Store,
        algorithm: SigningAlgorithm,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let service = Self {
            keys: Arc::new(RwLock::new(Arc::new(KeySet { signing_kid: String::new(), keys: HashMap::new() }))),
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        };
        let mut stored = store.signing_keys(service.published_since()).await?;
        let wanted = algorithm_name(algorithm);
        let current = stored.iter().find(|k| k.retired_at.is_none()).filter(|k| k.algorithm == wanted);
        if current.is_none() {
            let key = generate_key(algorithm)?;
            store.add_signing_key(&key).await?;
            stored = store.signing_keys(service.published_since()).await?;
        }
        service.install(&stored)?;
        Ok(service)
    }

    /// Rereads the keys from the store (after a rotation by another process, or to
    /// drop retired keys whose tokens have all expired). Keeps the current set when
    /// nothing changed or the store has no active key.
    pub async fn reload(&self, store: &dyn Store) -> anyhow::Result<()> {
        let stored = store.signing_keys(self.published_since()).await?;
        let current = self.current();
        let unchanged = stored.len() == current.keys.len()
            && stored.iter().all(|k| current.keys.contains_key(&k.kid))
            && stored.iter().find(|k| k.retired_at.is_none()).is_some_and(|k| k.kid == current.signing_kid);
        if unchanged || !stored.iter().any(|k| k.retired_at.is_none()) {
            return Ok(());
        }
        self.install(&stored)?;
        tracing::info!(kid = %self.current().signing_kid, "signing keys reloaded");
        Ok(())
    }

    /// Follows key changes announced by the store, and polls at the store's interval
    /// for what announcements cannot reach (another process on a SQLite file).
    pub async fn follow(self, store: std::sync::Arc<dyn Store>) {
        use crate::store::Change;
        use tokio::sync::broadcast::error::RecvError;
        let mut changes = store.subscribe();
        let mut tick = tokio::time::interval(store.poll_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reload = tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::Keys | Change::All) | Err(RecvError::Lagged(_)) => true,
                    Ok(_) => false,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => true,
            };
            if reload && let Err(e) = self.reload(&*store).await {
                tracing::warn!(error = format!("{e:#}"), "could not reload signing keys");
            }
        }
    }

    /// Old keys stay published while tokens they signed may still be valid.
    fn published_since(&self) -> OffsetDateTime {
        crate::store::now() - self.ttl - Duration::from_secs(LEEWAY_SECS)
    }

    fn install(&self, stored: &[StoredKey]) -> anyhow::Result<()> {
        let mut keys = HashMap::new();
        for k in stored {
            keys.insert(k.kid.clone(), self.key_from_store(k)?);
        }
        let signing_kid =
            stored.iter().find(|k| k.retired_at.is_none()).map(|k| k.kid.clone()).context("no active signing key")?;
        let set = Arc::new(KeySet { signing_kid, keys });
        match self.keys.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    fn key_from_store(&self, k: &StoredKey) -> anyhow::Result<Key> {
        let jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).context("stored JWK")?;
        let field = |name: &str| jwk.get(name).and_then(|v| v.as_str()).with_context(|| format!("JWK without {name}"));
        let (algorithm, encoding, decoding) = match k.algorithm.as_str() {
            "EdDSA" => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_der(&k.private_der),
                DecodingKey::from_ed_components(field("x")?)?,
            ),
            "RS256" => (
                Algorithm::RS256,
                EncodingKey::from_rsa_der(&k.private_der),
                DecodingKey::from_rsa_components(field("n")?, field("e")?)?,
            ),
            other => anyhow::bail!("unknown key algorithm {other}"),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&*self.issuer]);
        validation.set_audience(&[&*self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Ok(Key { algorithm, encoding, decoding, validation, jwk })
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

    /// Signs a new access token for `user` in session `sid`.
    pub fn sign(&self, user: Uuid, sid: Uuid, client_id: &str) -> anyhow::Result<String> {
        let set = self.current();
        let key = set.keys.get(&set.signing_kid).context("signing key missing")?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            sub: user,
            aud: self.audience.to_string(),
            exp: now + self.ttl.as_secs() as i64,
            iat: now,
            jti: Uuid::new_v4(),
            sid,
            client_id: client_id.to_owned(),
        };
        let mut header = Header::new(key.algorithm);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(set.signing_kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
    }

    /// Verifies signature, header and claims of an access token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        if !typ_ok {
            return Err(TokenError::Malformed);
        }
        let set = self.current();
        let key = header.kid.as_deref().and_then(|kid| set.keys.get(kid)).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.algorithm {
            return Err(TokenError::Malformed);
        }
        Ok(jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &key.validation)?.claims)
    }

    /// The public keys as a JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        let set = self.current();
        let mut keys: Vec<&Key> = Vec::with_capacity(set.keys.len());
        if let Some(k) = set.keys.get(&set.signing_kid) {
            keys.push(k);
        }
        keys.extend(set.keys.iter().filter(|(kid, _)| **kid != set.signing_kid).map(|(_, k)| k));
        serde_json::json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() })
    }

    /// Algorithms the key set signs with, for discovery.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let set = self.current();
        let mut algs: Vec<&'static str> =
            set.keys.values().map(|k| if k.algorithm == Algorithm::RS256 { "RS256" } else { "EdDSA" }).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

fn algorithm_name(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm {
        SigningAlgorithm::EdDsa => "EdDSA",
        SigningAlgorithm::Rs256 => "RS256",
    }
}

/// A fresh key pair, its public half as a JWK whose `kid` is its RFC 7638 thumbprint.
pub fn generate_key(algorithm: SigningAlgorithm) -> anyhow::Result<StoredKey> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (private_der, mut jwk, thumb_input) = match algorithm {
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let der = key.to_pkcs8_der().context("encode Ed25519 key")?.as_bytes().to_vec();
            let x = b64(key.verifying_key().as_bytes());
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (der, serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x }), thumb)
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("generate RSA key")?;
            let der = key.to_pkcs1_der().context("encode RSA key")?.as_bytes().to_vec();
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
    Ok(StoredKey {
        kid,
        algorithm: alg.to_owned(),
        private_der,
        public_jwk: jwk.to_string(),
        created_at: crate::store::now(),
        retired_at: None,
    })
}
