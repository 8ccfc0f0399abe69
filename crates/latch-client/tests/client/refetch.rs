//! The key cache: an unknown `kid` refetches the key set at most once per interval,
//! however many requests carry made-up `kid`s, and concurrent callers share one fetch.

use std::time::{Duration, Instant};

use jsonwebtoken::Header;
use latch_client::{DEFAULT_MIN_REFETCH_INTERVAL, ErrorKind, Verifier};

use crate::support::*;

const INTERVAL: Duration = Duration::from_secs(1);

/// `n` tokens signed by `key` but naming made-up kids, verified concurrently.
async fn spray(verifier: &Verifier, key: &LocalKey, issuer: &str, n: usize) {
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut header: Header = key.header();
            header.kid = Some(format!("made-up-{i}-{}", uuid::Uuid::new_v4()));
            key.sign_with(&header, &claims(issuer))
        })
        .collect();
    let results = concurrently(tokens.into_iter().map(|t| {
        let v = verifier.clone();
        async move { v.verify(&t).await }
    }))
    .await;
    for r in results {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::UnknownKey);
    }
}

/// Runs `futures` as concurrent tasks and collects their outputs.
async fn concurrently<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn made_up_kids_cause_at_most_one_fetch_per_interval() {
    assert_eq!(DEFAULT_MIN_REFETCH_INTERVAL, Duration::from_secs(5));
    let key = LocalKey::generate();
    let local = LocalIssuer::start(&[&key]).await;
    let verifier = Verifier::builder(&local.issuer).min_refetch_interval(INTERVAL).build().await.unwrap();
    let built = Instant::now();
    assert_eq!(local.fetches(), 1, "the key set is read once at build");

    // Within the interval of the build: no fetch at all.
    spray(&verifier, &key, &local.issuer, 100).await;
    assert!(built.elapsed() < INTERVAL, "the test machine is too slow for this check");
    assert_eq!(local.fetches(), 1);

    // Once the interval has passed: one fetch for all of them, then none again.
    for round in 2..=3 {
        tokio::time::sleep(INTERVAL).await;
        spray(&verifier, &key, &local.issuer, 100).await;
        spray(&verifier, &key, &local.issuer, 100).await;
        assert_eq!(local.fetches(), round);
    }

    // The known key never causes a fetch.
    let token = key.sign(&claims(&local.issuer));
    tokio::time::sleep(INTERVAL).await;
    for _ in 0..100 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(local.fetches(), 3);
}

#[tokio::test]
async fn a_new_key_is_fetched_once_for_all_concurrent_callers() {
    let old = LocalKey::generate();
    let local = LocalIssuer::start(&[&old]).await;
    let verifier = Verifier::builder(&local.issuer).min_refetch_interval(INTERVAL).build().await.unwrap();
    tokio::time::sleep(INTERVAL).await;

    let new = LocalKey::generate();
    local.publish(&new);
    let tokens: Vec<String> = (0..50).map(|_| new.sign(&claims(&local.issuer))).collect();
    let results = concurrently(tokens.into_iter().map(|t| {
        let v = verifier.clone();
        async move { v.verify(&t).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert_eq!(local.fetches(), 2, "one fetch at build, one shared by the 50 callers");
    // Both keys are cached now.
    verifier.verify_cached(&old.sign(&claims(&local.issuer))).unwrap();
}

#[tokio::test]
async fn a_key_published_within_the_interval_waits_for_the_interval() {
    let old = LocalKey::generate();
    let local = LocalIssuer::start(&[&old]).await;
    let verifier = Verifier::builder(&local.issuer).min_refetch_interval(INTERVAL).build().await.unwrap();
    let built = Instant::now();

    let new = LocalKey::generate();
    local.publish(&new);
    let token = new.sign(&claims(&local.issuer));
    assert_eq!(verifier.verify(&token).await.unwrap_err().kind(), ErrorKind::UnknownKey);
    assert!(built.elapsed() < INTERVAL, "the test machine is too slow for this check");
    assert_eq!(local.fetches(), 1);

    tokio::time::sleep(INTERVAL.saturating_sub(built.elapsed())).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(local.fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_key_set_is_not_an_invalid_token() {
    let key = LocalKey::generate();
    let local = LocalIssuer::start(&[&key]).await;
    // A fresh connection per request, so that stopping the server is seen at once.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let verifier =
        Verifier::builder(&local.issuer).min_refetch_interval(INTERVAL).http_client(http).build().await.unwrap();
    local.stop();
    tokio::time::sleep(INTERVAL).await;

    let other = LocalKey::generate();
    let e = verifier.verify(&other.sign(&claims(&local.issuer))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Http, "{e:?}");
    assert!(!e.is_invalid_token());
    // A failed fetch counts against the interval too.
    let e = verifier.verify(&other.sign(&claims(&local.issuer))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    // Tokens of cached keys still verify.
    verifier.verify(&key.sign(&claims(&local.issuer))).await.unwrap();
}
