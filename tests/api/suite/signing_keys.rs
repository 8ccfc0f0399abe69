//! Signing keys: staged rotation (`latch keys rotate` publishes a key at once and signs
//! with it after `LATCH_KEY_ROTATION_DELAY`), `--now` for a compromised key, retired
//! keys leaving JWKS once their tokens have expired, private keys encrypted with
//! `LATCH_KEY_ENCRYPTION_KEY_FILE`, and what Latch accepts in tokens presented to it
//! (`crit`, `iat` in the future, `aud` arrays). The rotations run the real binary
//! against the test server's database.

use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use latch::auth::kek::KeyEncryptionKey;
use latch::config::DatabaseUrl;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

/// A server whose tokens outlive a restart on another port: a fixed issuer.
async fn restartable_app() -> TestApp {
    spawn_app_with(|c| c.public_url = Some("http://latch.test".to_owned())).await
}

/// `latch keys rotate ARGS…` on the test server's database, with `env` added.
async fn run_rotate(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    use secrecy::ExposeSecret as _;
    let url = match &app.config.database_url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.expose_secret().to_owned(),
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_latch"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn").env("LATCH_DATABASE_URL", url).envs(env.iter().copied());
    cmd.args(["keys", "rotate"]).args(args).output().await.unwrap()
}

/// Like [`run_rotate`], asserting success; returns stdout.
async fn rotate(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_rotate(app, args, env).await;
    assert!(out.status.success(), "keys rotate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

/// The kids in the JWK Set, in its order.
async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Waits until the JWK Set holds a key other than `old` and returns it.
async fn published_besides(app: &TestApp, old: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let kids = jwks_kids(app).await;
        if let Some(kid) = kids.iter().find(|k| *k != old) {
            return kid.clone();
        }
        assert!(start.elapsed() < within, "no new key published after {:?}: {kids:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a login gets a token that is not signed by `old` (the servers learn of
/// keys through announcements or the poll); returns its kid and when that was,
/// measured from `since`.
async fn signing_besides(app: &TestApp, user: &str, old: &str, since: Instant, within: Duration) -> (String, Duration) {
    loop {
        let kid = kid_of(&app.login(user).await.access_token);
        if kid != old {
            return (kid, since.elapsed());
        }
        assert!(since.elapsed() < within, "still signing with the old key after {:?}", since.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rotation_is_published_at_once_and_signs_after_the_delay() {
    let app = restartable_app().await;
    app.create_user("rita").await;
    let before = app.login("rita").await;
    let old_kid = kid_of(&before.access_token);

    let out = rotate(&app, &[], &[("LATCH_KEY_ROTATION_DELAY", "10m")]).await;
    let new_kid = published_besides(&app, &old_kid, Duration::from_millis(1500)).await;
    assert!(out.contains(&new_kid) && out.contains("LATCH_KEY_ROTATION_DELAY"), "{out}");
    assert_eq!(kid_of(&app.login("rita").await.access_token), old_kid, "published, but not signing yet");
    assert_eq!(jwks_kids(&app).await, [old_kid.clone(), new_kid.clone()], "the signing key comes first");
    app.clock.advance(Duration::from_secs(590));
    assert_eq!(kid_of(&app.login("rita").await.access_token), old_kid, "nor 10 s before the delay is over");

    // The server switches on its own when the time comes.
    app.clock.advance(Duration::from_secs(12));
    assert_eq!(kid_of(&app.login("rita").await.access_token), new_kid);
    assert_eq!(jwks_kids(&app).await, [new_kid.clone(), old_kid.clone()], "the retired key stays published");
    assert_eq!(app.me_status(&before.access_token).await, StatusCode::OK, "tokens of the retired key stay valid");

    let app = app.restart().await;
    assert_eq!(kid_of(&app.login("rita").await.access_token), new_kid, "and after a restart");
}

#[tokio::test]
async fn a_retired_key_leaves_jwks_once_its_tokens_have_expired() {
    let app = spawn_app_with(|c| c.access_token_ttl = Duration::from_secs(60)).await;
    app.create_user("rex").await;
    let old_kid = kid_of(&app.login("rex").await.access_token);
    rotate(&app, &[], &[("LATCH_KEY_ROTATION_DELAY", "1m")]).await;
    let new_kid = published_besides(&app, &old_kid, Duration::from_millis(1500)).await;
    // Retired when the new key starts to sign; its last tokens are good for the 60 s
    // lifetime plus 5 s of leeway. Times from the store, so that the command's own
    // clock and the polling above cannot shift the expectations.
    let keys = stored_keys(&app).await;
    let retired = keys.iter().find(|k| k.kid == old_kid).and_then(|k| k.retired_at).unwrap();
    let advance_to = |t: latch::domain::Timestamp| {
        let now = app.clock.clock().now();
        if t > now {
            app.clock.advance((t - now).unsigned_abs());
        }
    };
    advance_to(retired + Duration::from_secs(1));
    assert_eq!(kid_of(&app.login("rex").await.access_token), new_kid);
    advance_to(retired + Duration::from_secs(63));
    assert!(jwks_kids(&app).await.contains(&old_kid), "dropped while its tokens may still be valid");
    advance_to(retired + Duration::from_secs(67));
    assert_eq!(jwks_kids(&app).await, [new_kid], "still published after its tokens have expired");
}

#[tokio::test]
async fn rotate_now_signs_at_once_and_drops_every_other_key() {
    let app = spawn_app().await;
    app.create_user("nina").await;
    let before = app.login("nina").await;
    let old_kid = kid_of(&before.access_token);
    assert_eq!(app.me_status(&before.access_token).await, StatusCode::OK, "known, and cached, before");
    // A staged key, scheduled for the default 10 minutes from now.
    rotate(&app, &[], &[]).await;
    let staged = published_besides(&app, &old_kid, Duration::from_millis(1500)).await;

    let out = rotate(&app, &["--now"], &[]).await;
    let rotated = Instant::now();
    let (new_kid, _) = signing_besides(&app, "nina", &old_kid, rotated, Duration::from_millis(1500)).await;
    assert_ne!(new_kid, staged);
    assert!(out.contains(&new_kid), "{out}");
    assert_eq!(jwks_kids(&app).await, [new_kid.as_str()], "the old and the staged key are gone");
    assert_eq!(app.me_status(&before.access_token).await, StatusCode::UNAUTHORIZED, "tokens of the old key");
    let after = app.login("nina").await;
    assert_eq!(app.me_status(&after.access_token).await, StatusCode::OK);
    assert_eq!(app.refresh(&before.refresh_token).await.status(), StatusCode::OK, "sessions go on");
}

#[tokio::test]
async fn a_changed_algorithm_gets_a_key_that_signs_after_the_delay() {
    let mut app = restartable_app().await;
    app.create_user("alma").await;
    let before = app.login("alma").await;
    assert_eq!(jwt_parts(&before.access_token).0["alg"], "ES256");
    app.config.signing_algorithm = latch::config::SigningAlgorithm::Rs256;
    app.config.key_rotation_delay = Duration::from_secs(600);
    let app = app.restart().await;
    assert_eq!(jwks_kids(&app).await.len(), 2, "the RS256 key is published at once");
    assert_eq!(jwt_parts(&app.login("alma").await.access_token).0["alg"], "ES256", "not signing yet");
    app.clock.advance(Duration::from_secs(590));
    assert_eq!(jwt_parts(&app.login("alma").await.access_token).0["alg"], "ES256", "nor 10 s before the delay");
    app.clock.advance(Duration::from_secs(12));
    let old_kid = kid_of(&before.access_token);
    let t = app.login("alma").await;
    assert_eq!(jwt_parts(&t.access_token).0["alg"], "RS256");
    let kid = kid_of(&t.access_token);
    assert_eq!(jwks_kids(&app).await, [kid, old_kid]);
    assert_eq!(app.me_status(&before.access_token).await, StatusCode::OK);
}

/// 32 bytes in base64, as `openssl rand -base64 32` writes them.
fn write_key_file(dir: &std::path::Path, name: &str, byte: u8) -> std::path::PathBuf {
    use base64::Engine as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", base64::engine::general_purpose::STANDARD.encode([byte; 32]))).unwrap();
    path
}

async fn stored_keys(app: &TestApp) -> Vec<latch::store::StoredKey> {
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    store.signing_keys(latch::domain::Timestamp::new(time::OffsetDateTime::UNIX_EPOCH)).await.unwrap()
}

/// A server whose configuration differs only in the key-encryption key fails to start;
/// returns the error.
async fn start_error(app: &TestApp, kek: Option<KeyEncryptionKey>) -> String {
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.key_encryption_key = kek;
    match latch::app::App::build(config).await {
        Ok(_) => panic!("started without the right key-encryption key"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn private_keys_are_encrypted_with_the_key_file_which_is_then_needed_to_start() {
    let mut app = restartable_app().await;
    app.create_user("kate").await;
    let before = app.login("kate").await;
    let plaintext = stored_keys(&app).await.remove(0);
    assert_eq!(plaintext.encrypted_with, None);

    // The first start with the file encrypts the existing key.
    let file = write_key_file(app.dir.path(), "latch.kek", 7);
    let kek = KeyEncryptionKey::from_file(&file).unwrap();
    app.config.key_encryption_key = Some(kek.clone());
    let app = app.restart().await;
    let sealed = stored_keys(&app).await.remove(0);
    assert_eq!(sealed.kid, plaintext.kid);
    assert_eq!(sealed.encrypted_with.as_deref(), Some(kek.id()));
    assert!(
        !sealed.private_der.windows(16).any(|w| plaintext.private_der.windows(16).any(|p| p == w)),
        "no piece of the private key is stored in the clear"
    );
    assert_eq!(app.me_status(&before.access_token).await, StatusCode::OK, "the same key");
    assert_eq!(kid_of(&app.login("kate").await.access_token), plaintext.kid);

    // Without the file, or with another key, the server refuses to start.
    let err = start_error(&app, None).await;
    assert!(err.contains("is encrypted") && err.contains("LATCH_KEY_ENCRYPTION_KEY_FILE"), "{err}");
    let other = KeyEncryptionKey::from_file(&write_key_file(app.dir.path(), "other.kek", 8)).unwrap();
    let err = start_error(&app, Some(other)).await;
    assert!(err.contains("LATCH_KEY_ENCRYPTION_KEY_FILE holds key"), "{err}");

    // `keys rotate` needs the file too, and stores the new key encrypted.
    let out = run_rotate(&app, &[], &[]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LATCH_KEY_ENCRYPTION_KEY_FILE"), "{err}");
    rotate(&app, &["--now"], &[("LATCH_KEY_ENCRYPTION_KEY_FILE", file.to_str().unwrap())]).await;
    let keys = stored_keys(&app).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].encrypted_with.as_deref(), Some(kek.id()));
    let (kid, _) = signing_besides(&app, "kate", &plaintext.kid, Instant::now(), Duration::from_millis(1500)).await;
    assert_eq!(kid, keys[0].kid, "the server decrypts a key added by the command");
}

/// The private signing key, read from the test's own (unencrypted) database.
async fn signing_key(app: &TestApp) -> EncodingKey {
    let keys = stored_keys(app).await;
    assert_eq!(keys.len(), 1);
    EncodingKey::from_ec_der(&keys[0].private_der)
}

#[tokio::test]
async fn presented_tokens_with_crit_or_a_future_iat_are_refused_and_aud_arrays_are_accepted() {
    let app = spawn_app().await;
    app.create_user("lena").await;
    let t = app.login("lena").await;
    let (header, claims) = jwt_parts(&t.access_token);
    let key = signing_key(&app).await;
    let header: Header = serde_json::from_value(header).unwrap();
    let sign = |header: &Header, claims: &Value| jsonwebtoken::encode(header, claims, &key).unwrap();
    assert_eq!(app.me_status(&sign(&header, &claims)).await, StatusCode::OK, "re-signed as is");

    for crit in [vec!["exp".to_owned()], vec!["urn:example:unknown".to_owned()]] {
        let mut h = header.clone();
        h.crit = Some(crit.clone());
        assert_eq!(app.me_status(&sign(&h, &claims)).await, StatusCode::UNAUTHORIZED, "crit {crit:?}");
    }

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        sign(&header, &c)
    };
    assert_eq!(app.me_status(&with("iat", json!(now + 60))).await, StatusCode::UNAUTHORIZED, "iat in a minute");
    assert_eq!(app.me_status(&with("iat", json!(now + 3))).await, StatusCode::OK, "iat within the leeway");

    let aud = app.base.clone();
    let cases = [
        (json!(["https://api.example", aud]), StatusCode::OK),
        (json!([aud]), StatusCode::OK),
        (json!(["https://api.example"]), StatusCode::UNAUTHORIZED),
        (json!([]), StatusCode::UNAUTHORIZED),
    ];
    for (value, status) in cases {
        assert_eq!(app.me_status(&with("aud", value.clone())).await, status, "aud {value}");
    }
}
