//! Preparing the database through Latch's own store, not over HTTP: preloaded users
//! (one real Argon2id hash of [`PASSWORD`] shared by all, so that verifying a login
//! costs exactly what it costs in production), sessions with refresh tokens for the
//! refresh scenario, and for the OpenID scenarios a client, a browser session and
//! authorization codes.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use latch::auth::password::{ARGON2_M_COST, ARGON2_P_COST, ARGON2_T_COST};
use latch::auth::secret;
use latch::clock::Clock;
use latch::domain::{SessionId, UserId};
use latch::store::{Actor, AuditEvent, EventType, ImportedUser, NewSession, Store};

/// The password of every preloaded user (and of registered ones).
pub const PASSWORD: &str = "bench-Passw0rd-7Kq2";

/// Users inserted per transaction; each transaction inserts
/// `latch::store::IMPORT_BATCH_ROWS` rows per statement.
const USERS_PER_TRANSACTION: u64 = 100_000;

/// How many users the login scenarios pick from.
pub const LOGIN_USERS: u64 = 100;

/// The name of preloaded user `i`.
pub fn username(i: u64) -> String {
    format!("user{i}")
}

/// Latch's Argon2id, with the parameters the server uses.
pub fn argon2() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| anyhow::anyhow!("Latch's Argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// One Argon2id hash of `password`, as Latch would store it.
pub fn hash(argon2: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(argon2.hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?.to_string())
}

/// The preloaded users the login scenarios use.
pub struct Preloaded {
    /// `(username, id)` of [`LOGIN_USERS`] users spread evenly over the whole set.
    pub login_users: Vec<(String, UserId)>,
    pub elapsed: Duration,
}

/// Inserts `count` users `user0`, `user1`, … with the password [`PASSWORD`].
pub async fn users(store: &dyn Store, count: u64) -> anyhow::Result<Preloaded> {
    grow(store, 0, count).await
}

/// Adds users `user{from}` … `user{count - 1}` to a store that holds the first `from`;
/// the login users are spread over all `count`.
pub async fn grow(store: &dyn Store, from: u64, count: u64) -> anyhow::Result<Preloaded> {
    let started = Instant::now();
    let password_hash = hash(&argon2()?, PASSWORD)?;
    if !latch::auth::password::is_current_hash(&password_hash) {
        bail!("the preload hash is not what Latch considers current; logins would rehash");
    }
    let picks = LOGIN_USERS.min(count);
    let login_index = |k: u64| k * count / picks;
    let mut login_users = Vec::with_capacity(picks as usize);
    for i in (0..picks).map(login_index).filter(|&i| i < from) {
        let name = username(i);
        let user = store.user_by_login(&name).await?.with_context(|| format!("{name} is not in the database"))?;
        login_users.push((name, user.id));
    }
    let now = Clock::system().now();
    let mut next = from;
    while next < count {
        let end = (next + USERS_PER_TRANSACTION).min(count);
        let batch: Vec<ImportedUser> = (next..end)
            .map(|i| {
                let username = username(i);
                ImportedUser {
                    id: UserId::generate(),
                    email: format!("{username}@bench.example"),
                    username,
                    email_verified: true,
                    password_hash: password_hash.clone(),
                }
            })
            .collect();
        for k in 0..picks {
            let i = login_index(k);
            if (next..end).contains(&i) {
                let user = &batch[(i - next) as usize];
                login_users.push((user.username.clone(), user.id));
            }
        }
        let event = AuditEvent::new(EventType::UsersImported, Actor::System, now).detail("via", "latch-bench");
        store.import_users(&batch, now, &|_| {}, &event).await.context("cannot insert the preloaded users")?;
        next = end;
    }
    Ok(Preloaded { login_users, elapsed: started.elapsed() })
}

/// Registers a confidential client with `secret`; returns its id.
pub async fn confidential_client(store: &dyn Store, secret: &str) -> anyhow::Result<String> {
    let now = Clock::system().now();
    let client = latch::store::ClientRecord {
        client_id: uuid::Uuid::new_v4().to_string(),
        name: "latch-bench".to_owned(),
        confidential: true,
        first_party: true,
        secret_hash: Some(secret::digest(secret).to_vec()),
        origins: "[]".to_owned(),
        redirect_uris: "[]".to_owned(),
        post_logout_redirect_uris: "[]".to_owned(),
        scopes: "openid profile email".to_owned(),
        created_at: now,
        updated_at: now,
    };
    let event =
        AuditEvent::new(EventType::ClientCreated, Actor::System, now).detail("client", client.client_id.as_str());
    store.create_client(&client, &event).await.context("cannot register the benchmark's client")?;
    Ok(client.client_id)
}

/// Starts `count` token sessions through the store, one per refresh token, spread
/// over `users`; returns the refresh tokens.
pub async fn refresh_tokens(
    store: &dyn Store,
    users: &[(String, UserId)],
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let now = Clock::system().now();
    // Latch's default refresh-token lifetime is 30 days; the sessions outlive the run.
    let expires_at = now + Duration::from_secs(30 * 86_400);
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        let (_, user_id) = users.get(i % users.len().max(1)).context("no users to start sessions for")?;
        let token = secret::random_token();
        let digest = secret::digest(&token);
        let session = NewSession {
            id: SessionId::generate(),
            user_id: *user_id,
            client_id: "latch",
            scope: "openid profile email",
            cookie_hash: None,
            refresh_hash: Some(&digest),
            user_agent: Some("latch-bench"),
            ip: None,
            now,
            expires_at,
            delegated: false,
            amr: "pwd",
            second_step: None,
            code_hash: None,
            code_browser_session: None,
        };
        let event =
            AuditEvent::new(EventType::Login, Actor::User(Some(*user_id)), now).user(*user_id).session(session.id);
        store.create_session(&session, &event).await.context("cannot start a session for the refresh scenario")?;
        tokens.push(token);
    }
    Ok(tokens)
}

/// A public first-party client for the OpenID scenarios, with `redirect_uri`; returns
/// its id.
pub async fn oidc_client(store: &dyn Store, redirect_uri: &str) -> anyhow::Result<String> {
    let now = Clock::system().now();
    let client = latch::store::ClientRecord {
        client_id: uuid::Uuid::new_v4().to_string(),
        name: "latch-bench app".to_owned(),
        confidential: false,
        first_party: true,
        secret_hash: None,
        origins: "[]".to_owned(),
        redirect_uris: serde_json::json!([redirect_uri]).to_string(),
        post_logout_redirect_uris: "[]".to_owned(),
        scopes: "openid profile email offline_access".to_owned(),
        created_at: now,
        updated_at: now,
    };
    let event =
        AuditEvent::new(EventType::ClientCreated, Actor::System, now).detail("client", client.client_id.as_str());
    store.create_client(&client, &event).await.context("cannot register the benchmark's app")?;
    Ok(client.client_id)
}

/// Starts a browser session for `user`; returns it and the secret of its cookie.
pub async fn browser_session(store: &dyn Store, user: UserId) -> anyhow::Result<(SessionId, String)> {
    let now = Clock::system().now();
    let cookie = secret::random_token();
    let digest = secret::digest(&cookie);
    let session = NewSession {
        id: SessionId::generate(),
        user_id: user,
        client_id: "browser",
        scope: "openid profile email",
        cookie_hash: Some(&digest),
        refresh_hash: None,
        user_agent: Some("latch-bench"),
        ip: None,
        now,
        expires_at: now + Duration::from_secs(30 * 86_400),
        delegated: false,
        amr: "pwd",
        second_step: None,
        code_hash: None,
        code_browser_session: None,
    };
    let event = AuditEvent::new(EventType::Login, Actor::User(Some(user)), now).user(user).session(session.id);
    store.create_session(&session, &event).await.context("cannot start a browser session")?;
    Ok((session.id, cookie))
}

/// `count` authorization codes for `client_id` and `redirect_uri`, of `user` signed in
/// with the browser session `browser`, each bound to the PKCE verifier `verifier`,
/// sealed under the installation's code key as `/authorize` seals them; they outlive
/// the run.
pub async fn codes(
    store: &dyn Store,
    (user, browser): (UserId, SessionId),
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let key: [u8; 32] = store
        .instance_secret(latch::auth::oidc::CODE_KEY, &rand_key())
        .await?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the stored code key is not 32 bytes"))?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let now = Clock::system().now().unix();
    (0..count)
        .map(|i| {
            let grant = latch::auth::oidc::CodeGrant {
                client_id: client_id.to_owned(),
                user_id: user.as_uuid(),
                redirect_uri: redirect_uri.to_owned(),
                scope: "openid profile email".to_owned(),
                nonce: Some(format!("n{i}")),
                code_challenge: Some(challenge.clone()),
                auth_time: now,
                browser_session: browser.as_uuid(),
                expires_at: now + 3600,
                amr: "pwd".to_owned(),
            };
            latch::auth::oidc::seal_code(&key, &grant)
        })
        .collect()
}

/// 32 random bytes, for a key the store keeps only when it has none yet.
fn rand_key() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret::random_token()).unwrap_or_default()
}

/// Sign-ins waiting for their second step at `/token` (client `latch`), `count` of them:
/// accounts `mfa{i}` with an authenticator app and ten recovery codes, each account
/// good for eleven second steps (its app's code once, each recovery code once).
/// Returns each step's form fields after the grant type (`mfa_token=…&otp=…`). The
/// app codes are of the coming time step, which the server accepts for the next
/// minute at least.
pub async fn mfa_steps(store: &dyn Store, count: usize) -> anyhow::Result<Vec<String>> {
    const CODES: usize = 10;
    let accounts = count.div_ceil(CODES + 1);
    let now = Clock::system().now();
    let password_hash = hash(&argon2()?, PASSWORD)?;
    let batch: Vec<ImportedUser> = (0..accounts)
        .map(|i| ImportedUser {
            id: UserId::generate(),
            username: format!("mfa{i}"),
            email: format!("mfa{i}@bench.example"),
            email_verified: true,
            password_hash: password_hash.clone(),
        })
        .collect();
    let event = AuditEvent::new(EventType::UsersImported, Actor::System, now).detail("via", "latch-bench");
    store.import_users(&batch, now, &|_| {}, &event).await.context("cannot insert the second-factor users")?;
    let step = u64::try_from(now.unix()).unwrap_or_default() / 30 + 1;
    let mut steps = Vec::with_capacity(accounts * (CODES + 1));
    for user in &batch {
        let key: Vec<u8> = secret::digest(&secret::random_token())[..20].to_vec();
        store.begin_totp(user.id, &key, None, now).await?;
        // Ten characters of Crockford's base32, as Latch makes them.
        let codes: Vec<String> = (0..CODES)
            .map(|_| {
                secret::random_token()
                    .bytes()
                    .take(10)
                    .map(|b| char::from(b"0123456789abcdefghjkmnpqrstvwxyz"[usize::from(b & 31)]))
                    .collect()
            })
            .collect();
        let digests: Vec<[u8; 32]> = codes.iter().map(|c| secret::digest(c)).collect();
        let event = AuditEvent::new(EventType::FactorAdded, Actor::User(Some(user.id)), now).user(user.id);
        if !store.confirm_totp(user.id, &key, 0, &digests, &event).await? {
            bail!("the authenticator app of {} was not confirmed", user.username);
        }
        let otp = totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &key, step * 30);
        let proofs = std::iter::once(format!("otp={otp}")).chain(codes.iter().map(|c| format!("recovery_code={c}")));
        for proof in proofs {
            let token = secret::random_token();
            let challenge = latch::store::ChallengeRecord {
                user_id: user.id,
                client_id: "latch".to_owned(),
                scope: "openid profile email".to_owned(),
                amr: "pwd".to_owned(),
                attempts: 0,
                expires_at: now + Duration::from_secs(3600),
                webauthn: None,
            };
            store.create_challenge(&secret::digest(&token), &challenge).await?;
            steps.push(format!("mfa_token={token}&{proof}"));
        }
    }
    // Apart, so that no two requests in flight are the same account's.
    steps.sort_by_key(|s| secret::digest(s));
    steps.truncate(count);
    Ok(steps)
}

/// Sign-ins with a passkey alone for the server at `public_url`, `count` of them:
/// `accounts` accounts `pk{i}`, each with a passkey of a software authenticator,
/// registered as Latch registers them; for each sign-in a ceremony stored as
/// `POST /passkeys/options` stores it and the authenticator's answer. Returns each
/// sign-in's form fields (`ceremony=…&credential=…`), the accounts in turn.
pub async fn passkey_sign_ins(
    store: &dyn Store,
    public_url: &str,
    accounts: usize,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    use base64::Engine as _;
    use webauthn_authenticator_rs::WebauthnAuthenticator as _;
    use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};
    let origin = url::Url::parse(public_url)?;
    let webauthn = latch::settings::webauthn(public_url, None, "latch-bench")?.context("passkeys need a host name")?;
    let mut authenticator = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let now = Clock::system().now();
    let password_hash = hash(&argon2()?, PASSWORD)?;
    let batch: Vec<ImportedUser> = (0..accounts.min(count))
        .map(|i| ImportedUser {
            id: UserId::generate(),
            username: format!("pk{i}"),
            email: format!("pk{i}@bench.example"),
            email_verified: true,
            password_hash: password_hash.clone(),
        })
        .collect();
    let event = AuditEvent::new(EventType::UsersImported, Actor::System, now).detail("via", "latch-bench");
    store.import_users(&batch, now, &|_| {}, &event).await.context("cannot insert the passkey users")?;
    let mut credentials = Vec::with_capacity(batch.len());
    for user in &batch {
        let (options, state) =
            webauthn.start_passkey_registration(user.id.as_uuid(), &user.username, &user.username, None)?;
        // Through JSON, as between the server and a browser.
        let options: CreationChallengeResponse = serde_json::from_value(serde_json::to_value(&options)?)?;
        let answer = authenticator
            .do_registration(origin.clone(), options)
            .map_err(|e| anyhow::anyhow!("the software authenticator: {e:?}"))?;
        let answer = serde_json::from_value(serde_json::to_value(&answer)?)?;
        let passkey = webauthn.finish_passkey_registration(&answer, &state)?;
        let record = latch::store::PasskeyRecord {
            id: latch::domain::PasskeyId::generate(),
            user_id: user.id,
            credential_id: passkey.cred_id().to_vec(),
            name: "bench".to_owned(),
            passkey: serde_json::to_string(&passkey)?,
            backup_eligible: false,
            created_at: now,
            last_used_at: None,
        };
        let event = AuditEvent::new(EventType::FactorAdded, Actor::User(Some(user.id)), now).user(user.id);
        store.add_passkey(&record, None, &event).await?;
        credentials.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(passkey.cred_id()));
    }
    let mut sign_ins = Vec::with_capacity(count);
    for i in 0..count {
        let k = i % batch.len();
        let (options, state) = webauthn.start_discoverable_authentication()?;
        let ceremony = secret::random_token();
        let state = serde_json::to_string(&state)?;
        let expires_at = now + Duration::from_secs(3600);
        store.create_ceremony(&secret::digest(&ceremony), None, "sign_in", &state, expires_at).await?;
        // The software authenticator keeps no discoverable credentials: it is told which
        // one to use, and its answer names the account, as a discoverable one's does.
        let mut options = serde_json::to_value(&options)?;
        options["publicKey"]["allowCredentials"] = serde_json::json!([{ "type": "public-key", "id": credentials[k] }]);
        let options: RequestChallengeResponse = serde_json::from_value(options)?;
        let answer = authenticator
            .do_authentication(origin.clone(), options)
            .map_err(|e| anyhow::anyhow!("the software authenticator: {e:?}"))?;
        let mut answer = serde_json::to_value(&answer)?;
        let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(batch[k].id.as_uuid().as_bytes());
        answer["response"]["userHandle"] = handle.into();
        let credential: String = url::form_urlencoded::byte_serialize(answer.to_string().as_bytes()).collect();
        sign_ins.push(format!("ceremony={ceremony}&credential={credential}"));
    }
    Ok(sign_ins)
}
