//! JWK Set parsing: each usable public key becomes a decoding key with its algorithm
//! pinned, so that the algorithm a token may use is decided by the key set and never
//! by the token.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{Error, ErrorKind};

/// A verification key and the validation that goes with it.
pub(crate) struct Key {
    /// The algorithm name as it must appear in a token's `alg`.
    pub(crate) alg: &'static str,
    pub(crate) decoding: DecodingKey,
    pub(crate) validation: Validation,
}

/// Keys by `kid`.
pub(crate) type KeySet = HashMap<String, Key>;

/// What the verifier checks besides the signature, copied into every key's validation.
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) leeway_secs: u64,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK this verifier reads; anything else is ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Parses a JWK Set document. Keys this verifier cannot use (another type or curve,
/// an encryption key, no `kid`) are skipped, so that a key set may hold keys for other
/// consumers; a set with no usable key at all is an error.
pub(crate) fn parse(document: &[u8], expect: &Expectations<'_>) -> Result<KeySet, Error> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| Error::with(ErrorKind::Jwks, e))?;
    let keys: KeySet = set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let (kid, alg, decoding) = usable(jwk)?;
            Some((kid, Key { alg: alg_name(alg), decoding, validation: validation(alg, expect) }))
        })
        .collect();
    if keys.is_empty() {
        return Err(Error::with(ErrorKind::Jwks, "no ES256, EdDSA or RS256 signing key with a kid"));
    }
    Ok(keys)
}

/// The key's id, pinned algorithm and decoding key, or `None` when it is not for us.
fn usable(jwk: Jwk) -> Option<(String, Algorithm, DecodingKey)> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.kid?;
    let (alg, decoding) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => (Algorithm::ES256, DecodingKey::from_ec_components(&jwk.x?, &jwk.y?).ok()?),
        ("OKP", Some("Ed25519")) => (Algorithm::EdDSA, DecodingKey::from_ed_components(&jwk.x?).ok()?),
        ("RSA", _) => (Algorithm::RS256, DecodingKey::from_rsa_components(&jwk.n?, &jwk.e?).ok()?),
        _ => return None,
    };
    // A key that names another algorithm (PS256 on an RSA key, say) is not used at
    // all rather than used with an algorithm its owner did not intend.
    if jwk.alg.as_deref().is_some_and(|a| a != alg_name(alg)) {
        return None;
    }
    Some((kid, alg, decoding))
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "RS256",
    }
}

/// The checks of RFC 9068 §4 that jsonwebtoken performs: the one algorithm, `iss`,
/// `aud` (a string, or an array containing it), `exp` and `nbf` with leeway. `iat` is
/// checked by the verifier.
pub(crate) fn validation(alg: Algorithm, expect: &Expectations<'_>) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[expect.issuer]);
    v.set_audience(&[expect.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = expect.leeway_secs;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: Expectations<'static> = Expectations { issuer: "https://a", audience: "https://a", leeway_secs: 5 };

    #[test]
    fn keys_for_other_uses_or_algorithms_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse(doc.to_string().as_bytes(), &EXPECT).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ed"]);
        assert_eq!(keys["ed"].alg, "EdDSA");
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        for doc in [r#"{"keys": []}"#, r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#, "<html>", "{}"] {
            assert_eq!(parse(doc.as_bytes(), &EXPECT).err().map(|e| e.kind()), Some(ErrorKind::Jwks), "{doc}");
        }
    }
}
