//! `Verifier::verify` with a cached key against a bare `jsonwebtoken::decode` of the
//! same ES256 token with a prebuilt key and validation making the same checks: the
//! verifier's own work (header, key lookup, `typ`, `alg` pin, `iat`) should cost at
//! most a few percent of the signature check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latch_client::{AccessClaims, Verifier};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use serde_json::json;

const ISSUER: &str = "https://auth.example";

/// Polls a future that completes without waiting (a cached key) to its output.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verify waited: the key was not cached"),
    }
}

fn verify(c: &mut Criterion) {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    let (x, y) = (URL_SAFE_NO_PAD.encode(point.x().unwrap()), URL_SAFE_NO_PAD.encode(point.y().unwrap()));
    let kid = "bench-key";
    let jwks =
        json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": x, "y": y}]});

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({
        "iss": ISSUER, "sub": uuid::Uuid::new_v4(), "aud": ISSUER, "exp": now + 3600, "iat": now,
        "jti": uuid::Uuid::new_v4(), "sid": uuid::Uuid::new_v4(), "client_id": "latch",
        "scope": "openid profile email",
    });
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    let encoding = EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes());
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();

    let verifier = Verifier::from_jwks(&jwks.to_string(), ISSUER, ISSUER).unwrap();
    let decoding = DecodingKey::from_ec_components(&x, &y).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 5;

    // Both accept the token and agree on its claims.
    let bare = jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &validation).unwrap().claims;
    assert_eq!(ready(verifier.verify(&token)).unwrap(), bare);

    if std::env::args().any(|a| a == "--bench") {
        interleaved(&token, &verifier, &decoding, &validation);
    }

    let mut group = c.benchmark_group("verify ES256 access token");
    group.bench_function("jsonwebtoken::decode", |b| {
        b.iter(|| jsonwebtoken::decode::<AccessClaims>(black_box(&token), &decoding, &validation).unwrap())
    });
    group.bench_function("Verifier::verify", |b| b.iter(|| ready(verifier.verify(black_box(&token))).unwrap()));
    group.bench_function("Verifier::verify_cached", |b| b.iter(|| verifier.verify_cached(black_box(&token)).unwrap()));
    group.finish();

    // The verifier's own work alone: a token refused after the header is read and the
    // key looked up, before any signature check.
    let (_, rest) = token.split_once('.').unwrap();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let relabelled = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
    c.bench_function("Verifier::verify up to the signature (header, typ, kid lookup, alg pin)", |b| {
        b.iter(|| ready(verifier.verify(black_box(&relabelled))).unwrap_err())
    });
}

/// Both contestants in alternating rounds, so that the load of a shared machine, which
/// drifts over the seconds criterion spends on each, weighs on both alike. Prints the
/// rates and their ratio.
fn interleaved(token: &str, verifier: &Verifier, decoding: &DecodingKey, validation: &Validation) {
    use std::time::{Duration, Instant};
    const ROUNDS: u32 = 40;
    const PER_ROUND: u32 = 100;
    let (mut bare, mut ours) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(jsonwebtoken::decode::<AccessClaims>(black_box(token), decoding, validation).unwrap());
        }
        bare += start.elapsed();
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(ready(verifier.verify(black_box(token))).unwrap());
        }
        ours += start.elapsed();
    }
    let n = f64::from(ROUNDS * PER_ROUND);
    let (bare_rate, our_rate) = (n / bare.as_secs_f64(), n / ours.as_secs_f64());
    println!(
        "interleaved, {n} each: jsonwebtoken::decode {bare_rate:.0}/s, Verifier::verify {our_rate:.0}/s, \
         ratio {:.3}",
        our_rate / bare_rate
    );
}

criterion_group!(benches, verify);
criterion_main!(benches);
