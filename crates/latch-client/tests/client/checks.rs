//! The checks a verifier makes, on tokens signed with a key the test holds: times with
//! leeway, the header (`typ`, `crit`, `alg` pinned to the key), and the claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latch_client::{ErrorKind, Verifier};
use serde_json::{Value, json};

use crate::support::*;

const ISSUER: &str = "https://auth.example";

fn setup() -> (LocalKey, Verifier) {
    let key = LocalKey::generate();
    let verifier = Verifier::from_jwks(&key.jwks(), ISSUER, ISSUER).unwrap();
    (key, verifier)
}

fn with(changes: Value) -> Value {
    let mut claims = claims(ISSUER);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn refused(verifier: &Verifier, token: &str) -> ErrorKind {
    let e = verifier.verify(token).await.expect_err("the token was accepted");
    assert!(e.is_invalid_token(), "{e:?}");
    e.kind()
}

#[tokio::test]
async fn times_are_checked_with_five_seconds_of_leeway() {
    let (key, verifier) = setup();
    let now = now();

    assert!(verifier.verify(&key.sign(&with(json!({"exp": now - 2})))).await.is_ok(), "within the leeway");
    assert_eq!(refused(&verifier, &key.sign(&with(json!({"exp": now - 10})))).await, ErrorKind::Expired);

    assert!(verifier.verify(&key.sign(&with(json!({"nbf": now + 2})))).await.is_ok());
    assert_eq!(refused(&verifier, &key.sign(&with(json!({"nbf": now + 60})))).await, ErrorKind::NotYetValid);

    assert!(verifier.verify(&key.sign(&with(json!({"iat": now + 2})))).await.is_ok());
    assert_eq!(refused(&verifier, &key.sign(&with(json!({"iat": now + 60})))).await, ErrorKind::IssuedInFuture);
}

#[tokio::test]
async fn the_leeway_is_configurable() {
    let key = LocalKey::generate();
    let strict = Verifier::builder(ISSUER).leeway(std::time::Duration::ZERO).build_from_jwks(&key.jwks()).unwrap();
    let lenient =
        Verifier::builder(ISSUER).leeway(std::time::Duration::from_secs(120)).build_from_jwks(&key.jwks()).unwrap();
    let token = key.sign(&with(json!({"exp": now() - 30})));
    assert_eq!(refused(&strict, &token).await, ErrorKind::Expired);
    assert!(lenient.verify(&token).await.is_ok());
}

#[tokio::test]
async fn issuer_and_audience_are_checked() {
    let (key, verifier) = setup();
    let e = refused(&verifier, &key.sign(&with(json!({"iss": "https://evil.example"})))).await;
    assert_eq!(e, ErrorKind::Issuer);
    let e = refused(&verifier, &key.sign(&with(json!({"aud": "https://orders.example"})))).await;
    assert_eq!(e, ErrorKind::Audience);
    let e = refused(&verifier, &key.sign(&with(json!({"aud": ["https://orders.example", "x"]})))).await;
    assert_eq!(e, ErrorKind::Audience);

    // An array that names us is accepted, and the claims carry the audience checked.
    let claims = verifier.verify(&key.sign(&with(json!({"aud": ["https://orders.example", ISSUER]})))).await.unwrap();
    assert_eq!(claims.aud, ISSUER);
}

#[tokio::test]
async fn missing_or_mistyped_claims_are_refused() {
    let (key, verifier) = setup();
    for changes in [
        json!({"sub": null}),
        json!({"exp": null}),
        json!({"iss": null}),
        json!({"aud": null}),
        json!({"sid": 7}),
        json!({"sid": "not-a-uuid"}),
        json!({"sub": "not-a-uuid"}),
        json!({"exp": "soon"}),
    ] {
        assert_eq!(refused(&verifier, &key.sign(&with(changes.clone()))).await, ErrorKind::Claims, "{changes}");
    }
    // A client's own token (client credentials) has no session.
    let claims = verifier.verify(&key.sign(&with(json!({"sid": null})))).await.unwrap();
    assert!(claims.is_client_token() && claims.sid.is_none());
    // Claims Latch may add later are ignored; roles are read.
    let claims = verifier.verify(&key.sign(&with(json!({"roles": ["admin"], "future": 1})))).await.unwrap();
    assert!(claims.has_role("admin"));
}

#[tokio::test]
async fn only_access_tokens_are_accepted() {
    let (key, verifier) = setup();
    let claims = claims(ISSUER);
    for typ in [None, Some("JWT"), Some("at+jwt+x")] {
        let mut header = key.header();
        header.typ = typ.map(Into::into);
        assert_eq!(refused(&verifier, &key.sign_with(&header, &claims)).await, ErrorKind::Type, "{typ:?}");
    }
    let mut header = key.header();
    header.typ = Some("application/at+JWT".into());
    assert!(verifier.verify(&key.sign_with(&header, &claims)).await.is_ok());
}

#[tokio::test]
async fn critical_extensions_are_refused() {
    let (key, verifier) = setup();
    let mut header = key.header();
    header.crit = Some(vec!["exp".into()]);
    assert_eq!(refused(&verifier, &key.sign_with(&header, &claims(ISSUER))).await, ErrorKind::Critical);
}

#[tokio::test]
async fn the_algorithm_is_the_keys_not_the_tokens() {
    let (key, verifier) = setup();
    let claims = claims(ISSUER);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());

    // alg none, no signature.
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
    let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
    assert_eq!(refused(&verifier, &unsigned).await, ErrorKind::Algorithm);

    // HS256 keyed with the public key: the classic key-confusion forgery.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    for secret in [key.public_sec1.clone(), key.jwk.to_string().into_bytes()] {
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(refused(&verifier, &forged).await, ErrorKind::Algorithm);
    }

    // A valid ES256 signature whose header claims another algorithm.
    let token = key.sign(&claims);
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!("{}.{rest}", b64(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid})));
    assert_eq!(refused(&verifier, &relabelled).await, ErrorKind::Algorithm);

    // Without a kid there is no key to pin to.
    let mut header = key.header();
    header.kid = None;
    assert_eq!(refused(&verifier, &key.sign_with(&header, &claims)).await, ErrorKind::UnknownKey);
}

#[tokio::test]
async fn a_verifier_from_a_fixed_key_set_never_learns_new_keys() {
    let (key, verifier) = setup();
    let other = LocalKey::generate();
    assert_eq!(refused(&verifier, &other.sign(&claims(ISSUER))).await, ErrorKind::UnknownKey);
    // Another key presenting the known kid does not verify either.
    let mut header = other.header();
    header.kid = Some(key.kid.clone());
    assert_eq!(refused(&verifier, &other.sign_with(&header, &claims(ISSUER))).await, ErrorKind::Signature);
}
