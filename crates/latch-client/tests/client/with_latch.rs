//! Tokens from a real `latch serve`: discovery, the claims Latch signs, audience and
//! issuer checks, tampering, and key rotation picked up through one refetch.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latch_client::{ErrorKind, Verifier};
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn a_latch_token_verifies_with_the_claims_latch_signed() {
    let latch = Latch::start();
    let user = latch.user("alice").await;

    let verifier = Verifier::discover(&latch.base).await.unwrap();
    let claims = verifier.verify(&user.access_token).await.unwrap();

    assert_eq!(verifier.issuer(), latch.base);
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.iss, latch.base);
    assert_eq!(claims.aud, latch.base);
    assert_eq!(claims.client_id, "latch");
    assert_eq!(claims.scopes().collect::<Vec<_>>(), ["openid", "profile", "email"]);
    assert!(claims.roles.is_empty());
    assert!(claims.exp > claims.iat && claims.iat <= now() && claims.iat > now() - 60, "{claims:?}");
    // The claims are exactly the token's payload: nothing lost, nothing added.
    let payload = user.access_token.split('.').nth(1).unwrap();
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&claims).unwrap(), raw);
    // Also without waiting, now that the key is cached.
    assert_eq!(verifier.verify_cached(&user.access_token).unwrap(), claims);
}

#[tokio::test]
async fn a_trailing_slash_on_the_issuer_url_is_ignored_as_latch_does() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let verifier = Verifier::discover(&format!("{}/", latch.base)).await.unwrap();
    assert_eq!(verifier.verify(&user.access_token).await.unwrap().sub, user.id);
}

#[tokio::test]
async fn another_audience_or_issuer_is_refused() {
    let latch = Latch::start();
    let user = latch.user("alice").await;

    let other_audience = Verifier::builder(&latch.base).audience("https://orders.example").build().await.unwrap();
    let e = other_audience.verify(&user.access_token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Audience, "{e}");
    assert!(e.is_invalid_token());

    // Latch's keys, but a verifier that expects another issuer.
    let other_issuer = Verifier::builder("https://auth.other.example")
        .jwks_uri(format!("{}/.well-known/jwks.json", latch.base))
        .audience(&latch.base)
        .build()
        .await
        .unwrap();
    assert_eq!(other_issuer.verify(&user.access_token).await.unwrap_err().kind(), ErrorKind::Issuer);

    // Discovery that names another issuer than the one asked for is refused outright.
    let e = Verifier::discover(&latch.base.replace("127.0.0.1", "localhost")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Discovery, "{e}");
}

#[tokio::test]
async fn a_configured_audience_is_checked() {
    let latch = Latch::start_with(&[("LATCH_TOKEN_AUDIENCE", "https://orders.example")]);
    let user = latch.user("alice").await;

    let by_default = Verifier::discover(&latch.base).await.unwrap();
    assert_eq!(by_default.verify(&user.access_token).await.unwrap_err().kind(), ErrorKind::Audience);

    let orders = Verifier::builder(&latch.base).audience("https://orders.example").build().await.unwrap();
    assert_eq!(orders.verify(&user.access_token).await.unwrap().aud, "https://orders.example");
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let verifier = Verifier::discover(&latch.base).await.unwrap();
    let [header, payload, signature]: [&str; 3] = user.access_token.split('.').collect::<Vec<_>>().try_into().unwrap();

    // Another signature (the last character flipped changes real bits only if it is
    // not padding, so flip the first one).
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[0] ^= 1;
    let forged = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(verifier.verify(&forged).await.unwrap_err().kind(), ErrorKind::Signature);

    // Another payload under the original signature: more scopes.
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["scope"] = "openid profile email admin".into();
    let forged = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    assert_eq!(verifier.verify(&forged).await.unwrap_err().kind(), ErrorKind::Signature);

    for junk in ["", "abc", "a.b.c", format!("{header}.{payload}").as_str()] {
        assert_eq!(verifier.verify(junk).await.unwrap_err().kind(), ErrorKind::Malformed, "{junk:?}");
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_one_refetch_and_the_withdrawn_key_stops_verifying() {
    let latch = Latch::start();
    let user = latch.user("alice").await;
    let interval = Duration::from_secs(1);
    let verifier = Verifier::builder(&latch.base).min_refetch_interval(interval).build().await.unwrap();
    let built = Instant::now();
    let old_token = user.access_token.clone();
    verifier.verify(&old_token).await.unwrap();

    latch.cli(&["keys", "rotate", "--now"]);
    // "signs with the new key within 1 s": poll for a token under another kid.
    let deadline = Instant::now() + Duration::from_secs(5);
    let new_token = loop {
        let token = latch.token(&user.username).await;
        if kid(&token) != kid(&old_token) {
            break token;
        }
        assert!(Instant::now() < deadline, "latch still signs with the old key 5 s after `keys rotate --now`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(verifier.verify_cached(&new_token).is_err(), "the new key cannot be cached yet");
    tokio::time::sleep(interval.saturating_sub(built.elapsed())).await;

    let claims = verifier.verify(&new_token).await.unwrap();
    assert_eq!(claims.sub, user.id);
    // The refetched set no longer has the withdrawn key, so its tokens are refused.
    assert_eq!(verifier.verify(&old_token).await.unwrap_err().kind(), ErrorKind::UnknownKey);
    assert_eq!(verifier.verify_cached(&new_token).unwrap().jti, claims.jti);
}
