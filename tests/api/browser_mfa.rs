//! Second factors on the hosted pages in a real browser: headless Chromium driven over
//! WebDriver with the tools and helpers of `browser.rs` (without them: `NOT RUN`, or a
//! failure under CI), against a real Latch (SQLite, the `file:` mailer, the test clock).
//!
//! Two journeys:
//! - enrolment: on `/account` a person sets up an authenticator app — the setup page
//!   shows a QR code and the key, refuses a wrong code and takes the app's current one —
//!   sees the ten recovery codes once, signs out, signs in with the password and lands
//!   on the second step, where a wrong code and the code that confirmed the app (used
//!   already) are refused and the next step's code signs in;
//! - the lost phone: an account enrolled through the API signs in with a recovery code
//!   from the second step's "Lost your phone?" panel, which does not work a second
//!   time; then, signed in with the app, the person removes the app on `/account`
//!   (a wrong password first) and sets up a new one, after which neither the old key
//!   nor the old recovery codes sign in.
//!
//! The "app" is `totp-lite` (independent of the server's implementation) fed with the
//! key the page shows and the server's clock; moving that clock a step on makes a new
//! code due, since each code works once. Screenshots go to
//! `target/browser/screenshots/` (`mfa-setup`, `recovery-codes` and `login-mfa` are
//! embedded by the docs), each page checked with axe-core like the other pages.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::{Browser, Chromedriver, Kind, tools};
use crate::helpers::*;

const SECOND_STEP: &str = "Two-step verification";
const MFA_GRANT: &str = "urn:latch:grant-type:mfa";

/// The 6-digit code of `key` at the server's time plus `offset` steps.
fn code_at(app: &TestApp, key: &[u8], offset: i64) -> String {
    let now = app.clock.clock().now().unix() + offset * 30;
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, key, u64::try_from(now).unwrap())
}

/// Moves the server's clock to the next time step, so that a code not used yet is due.
fn next_step(app: &TestApp) {
    app.clock.advance(Duration::from_secs(30));
}

/// A well-formed code that the server cannot accept: not the code of any step near
/// now (two either side, since the real time may cross a step before the post lands).
fn wrong_code(app: &TestApp, key: &[u8]) -> String {
    let near: Vec<String> = (-2..=2).map(|offset| code_at(app, key, offset)).collect();
    ["000000", "111111", "222222", "333333", "444444", "555555"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap()
        .to_owned()
}

/// The key on the setup page shown, decoded, after checking that it reads as apps
/// show keys: base32 in groups of four.
async fn shown_key(b: &Browser) -> Vec<u8> {
    let shown = b.find("#totp-secret").await.text().await.unwrap();
    let groups: Vec<&str> = shown.split(' ').collect();
    assert!(
        groups.iter().all(|g| (1..=4).contains(&g.len()) && g.bytes().all(|c| matches!(c, b'A'..=b'Z' | b'2'..=b'7'))),
        "the key is not spaced base32: {shown:?}"
    );
    assert!(groups[..groups.len() - 1].iter().all(|g| g.len() == 4), "not in groups of four: {shown:?}");
    let key = data_encoding::BASE32_NOPAD.decode(shown.replace(' ', "").as_bytes()).unwrap();
    assert_eq!(key.len(), 20, "not a 160-bit key: {shown:?}");
    key
}

/// The setup page's QR code: an inline SVG, drawn at the size the stylesheet gives it,
/// with dark modules in it, named for assistive technology.
async fn assert_qr_code_shown(b: &Browser) {
    let qr = b
        .script(
            "const svg = document.querySelector('.qr svg');
            if (!svg) return null;
            const r = svg.getBoundingClientRect();
            return { width: r.width, height: r.height, drawn: svg.querySelectorAll('path, rect').length,
                     label: svg.closest('.qr').getAttribute('aria-label') };",
        )
        .await;
    assert!(!qr.is_null(), "no QR code on the setup page:\n{}", b.text().await);
    assert_eq!((qr["width"].as_f64(), qr["height"].as_f64()), (Some(200.0), Some(200.0)), "{qr}");
    assert!(qr["drawn"].as_u64().unwrap() > 0, "an empty QR code: {qr}");
    assert!(!qr["label"].as_str().unwrap_or_default().is_empty(), "the QR code has no name: {qr}");
}

/// The recovery codes on the page shown: ten, distinct, as `xxxxx-xxxxx`.
async fn shown_recovery_codes(b: &Browser) -> Vec<String> {
    let mut codes = Vec::new();
    for code in b.client.find_all(Locator::Css("#recovery-codes li code")).await.unwrap() {
        codes.push(code.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10, "{}", b.text().await);
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10, "{codes:?}");
    for code in &codes {
        let (left, right) = code.split_once('-').unwrap_or_else(|| panic!("{code:?} has no dash"));
        assert!(left.len() == 5 && right.len() == 5, "{code:?}");
        assert!(code.bytes().all(|c| c == b'-' || c.is_ascii_digit() || c.is_ascii_lowercase()), "{code:?}");
    }
    codes
}

/// The error that the second step shows above its form.
async fn form_error(b: &Browser) -> String {
    b.find("p.error[role=alert]#form-error").await.text().await.unwrap()
}

/// Signs out through the `/logout` page's button.
async fn sign_out(b: &Browser) {
    b.goto("/logout").await;
    b.press("/logout", "Sign out").await;
    assert_eq!(b.heading().await, "Signed out", "{}", b.text().await);
    assert!(!b.cookie_names().await.contains("latch_session"));
}

/// Signs in with the password at `/login` and expects the second step, without a
/// session yet.
async fn sign_in_to_the_second_step(b: &Browser, login: &str) {
    b.goto("/login").await;
    b.sign_in(login, PASSWORD).await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    assert_eq!(b.heading().await, SECOND_STEP, "{}", b.text().await);
    assert!(!b.cookie_names().await.contains("latch_session"), "a session before the second step");
}

/// Opens the second step's "Lost your phone?" panel and types `code` there.
async fn use_recovery_code(b: &Browser, code: &str) {
    assert!(!b.find("#recovery_code").await.is_displayed().await.unwrap(), "the panel is open from the start");
    b.find("details summary").await.click().await.unwrap();
    assert_eq!(b.find("details").await.prop("open").await.unwrap().as_deref(), Some("true"));
    assert!(b.find("#recovery_code").await.is_displayed().await.unwrap(), "the panel did not open");
    b.fill("recovery_code", code).await;
}

/// The account page's two-step section.
async fn mfa_section(b: &Browser) -> String {
    b.find("section[aria-labelledby=mfa-heading]").await.text().await.unwrap()
}

/// An account with an authenticator app confirmed through the API: its key and its
/// recovery codes.
async fn enrolled_through_the_api(app: &TestApp, name: &str) -> (Vec<u8>, Vec<String>) {
    app.create_user(name).await;
    let access = app.login(name).await.access_token;
    let call = |path: &str, body: Option<Value>| {
        let mut request = app.client.request(Method::POST, app.url(path)).bearer_auth(&access);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let begun: Value = call("/users/me/mfa/totp", None).await.unwrap().json().await.unwrap();
    let key = data_encoding::BASE32_NOPAD.decode(begun["secret"].as_str().unwrap().as_bytes()).unwrap();
    let r = call("/users/me/mfa/totp/confirm", Some(json!({ "code": code_at(app, &key, 0) }))).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let confirmed: Value = r.json().await.unwrap();
    (key, serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap())
}

/// A password grant that must stop at the second step; its `mfa_token`.
async fn mfa_token(app: &TestApp, login: &str) -> String {
    let r = app.token(login, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the password alone signs {login} in");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required", "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn mfa_grant(app: &TestApp, token: &str, proof: (&str, &str)) -> StatusCode {
    app.post_form("/token", &[("grant_type", MFA_GRANT), ("mfa_token", token), proof]).await.status()
}

#[tokio::test]
async fn a_person_sets_up_an_authenticator_app_and_signs_in_with_its_code() {
    let Some(tools) = tools("browser: setting up an authenticator app") else { return };
    let started = Instant::now();
    let app = spawn_app().await;
    app.create_user("olivia").await;
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &app.base, Kind::Desktop).await;

    b.goto("/login").await;
    b.sign_in("olivia", PASSWORD).await;
    assert_eq!(b.path().await, "/account", "{}", b.text().await);
    let section = mfa_section(&b).await;
    assert!(section.contains("Protect your account"), "{section}");

    // The setup page: the QR code, the key to type instead, the form for the first code.
    b.press("/account/mfa/totp", "Set up an authenticator app").await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    assert_eq!(b.heading().await, "Set up an authenticator app");
    assert_qr_code_shown(&b).await;
    let key = shown_key(&b).await;
    b.check("mfa-setup").await;

    // A wrong code: the same key again, the error tied to the field.
    b.fill("mfa-code", &wrong_code(&app, &key)).await;
    b.press("/account/mfa/totp/confirm", "Turn on two-step verification").await;
    assert_eq!(b.status().await, 422, "{}", b.text().await);
    assert!(form_error(&b).await.contains("not the app's current code"), "{}", b.text().await);
    assert_eq!(b.find("#mfa-code").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(b.find("#mfa-code").await.attr("aria-describedby").await.unwrap().as_deref(), Some("form-error"));
    assert_eq!(shown_key(&b).await, key, "a refused code changed the key");
    assert_qr_code_shown(&b).await;
    b.check("mfa-setup-error").await;
    assert_eq!(app.token("olivia", PASSWORD).await.status(), StatusCode::OK, "on before a right code");

    // The app's current code turns it on and shows the recovery codes, once.
    let first = code_at(&app, &key, 0);
    b.fill("mfa-code", &first).await;
    b.press("/account/mfa/totp/confirm", "Turn on two-step verification").await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    assert_eq!(b.heading().await, "Your recovery codes", "{}", b.text().await);
    let on = b.find("p.ok").await.text().await.unwrap();
    assert!(on.contains("Two-step verification is on"), "{on}");
    let codes = shown_recovery_codes(&b).await;
    b.check("recovery-codes").await;
    mfa_token(&app, "olivia").await;
    app.email_arriving("olivia@example.com", "authenticator app was added").await;
    b.follow("Back to your account").await;
    assert_eq!(b.path().await, "/account");
    let section = mfa_section(&b).await;
    assert!(section.contains("Authenticator app — on"), "{section}");
    assert!(section.contains("Recovery codes left: 10."), "{section}");
    assert!(!b.text().await.contains(&codes[0]), "the account page shows a recovery code");
    b.check("account-mfa-on").await;

    // Signed out and in again: the password leads to the second step, not the account.
    sign_out(&b).await;
    sign_in_to_the_second_step(&b, "olivia").await;
    assert_eq!(b.path().await, "/login");
    assert!(b.find("label[for=otp]").await.text().await.unwrap().contains("authenticator app"));
    assert_eq!(b.script("return document.activeElement.id").await, "otp", "the code field has no focus");
    b.check("login-mfa").await;

    // A wrong code, then the code that confirmed the app (used already): refused.
    b.fill("otp", &wrong_code(&app, &key)).await;
    b.press("/login/mfa", "Verify").await;
    assert_eq!(b.status().await, 401, "{}", b.text().await);
    assert_eq!(b.heading().await, SECOND_STEP);
    assert!(form_error(&b).await.contains("not right"), "{}", b.text().await);
    assert!(!b.cookie_names().await.contains("latch_session"));
    b.check("login-mfa-error").await;
    b.fill("otp", &first).await;
    b.press("/login/mfa", "Verify").await;
    assert_eq!(b.status().await, 401, "a code worked twice: {}", b.text().await);
    assert!(form_error(&b).await.contains("used already"), "{}", b.text().await);

    // The next step's code signs in, to the account page.
    next_step(&app);
    b.fill("otp", &code_at(&app, &key, 0)).await;
    b.press("/login/mfa", "Verify").await;
    assert_eq!(b.path().await, "/account", "{}", b.text().await);
    assert_eq!(b.heading().await, "Your account");
    assert!(b.cookie_names().await.contains("latch_session"));
    assert_eq!(b.value("profile-username").await, "olivia");

    b.finish().await;
    eprintln!("browser: setting up an authenticator app took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_person_who_lost_the_phone_signs_in_with_a_recovery_code_and_sets_up_a_new_app() {
    let Some(tools) = tools("browser: a lost phone") else { return };
    let started = Instant::now();
    let app = spawn_app().await;
    let (old_key, old_codes) = enrolled_through_the_api(&app, "paula").await;
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &app.base, Kind::Desktop).await;

    // A recovery code instead of the app's code.
    sign_in_to_the_second_step(&b, "paula").await;
    use_recovery_code(&b, &old_codes[0]).await;
    b.check("login-mfa-recovery").await;
    b.press("/login/mfa", "Use recovery code").await;
    assert_eq!(b.path().await, "/account", "{}", b.text().await);
    assert!(b.cookie_names().await.contains("latch_session"));
    let section = mfa_section(&b).await;
    assert!(section.contains("Recovery codes left: 9."), "{section}");

    // The same code on a later sign-in: refused.
    sign_out(&b).await;
    sign_in_to_the_second_step(&b, "paula").await;
    use_recovery_code(&b, &old_codes[0]).await;
    b.press("/login/mfa", "Use recovery code").await;
    assert_eq!(b.status().await, 401, "a recovery code worked twice: {}", b.text().await);
    assert_eq!(b.heading().await, SECOND_STEP);
    assert!(form_error(&b).await.contains("used already"), "{}", b.text().await);
    assert!(!b.cookie_names().await.contains("latch_session"));

    // The app still signs in (its enrolment code is spent: the next step's).
    next_step(&app);
    b.fill("otp", &code_at(&app, &old_key, 0)).await;
    b.press("/login/mfa", "Verify").await;
    assert_eq!(b.path().await, "/account", "{}", b.text().await);

    // Remove the app: a wrong password is refused beside its field, the right one works.
    b.fill("mfa-remove-password", "not the password of paula").await;
    b.press("/account/mfa/totp/remove", "Remove the authenticator app").await;
    assert_eq!(b.status().await, 403, "{}", b.text().await);
    assert!(b.field_error("mfa-remove-password").await.contains("not right"), "{}", b.text().await);
    assert_eq!(b.value("mfa-remove-password").await, "", "a password is never shown again");
    assert!(mfa_section(&b).await.contains("Authenticator app — on"));
    b.check("account-mfa-remove-error").await;
    mfa_token(&app, "paula").await;
    b.fill("mfa-remove-password", PASSWORD).await;
    b.press("/account/mfa/totp/remove", "Remove the authenticator app").await;
    assert_eq!(b.path().await, "/account?done=mfa-removed", "{}", b.text().await);
    let notice = b.find("p.notice[role=status]").await.text().await.unwrap();
    assert!(notice.contains("authenticator app is removed"), "{notice}");
    let section = mfa_section(&b).await;
    assert!(section.contains("Protect your account") && !section.contains("Recovery codes left"), "{section}");
    b.check("account-mfa-removed").await;
    assert_eq!(app.token("paula", PASSWORD).await.status(), StatusCode::OK, "still asks for a code");
    app.email_arriving("paula@example.com", "authenticator app was removed").await;

    // A new app: a new key, new recovery codes.
    b.press("/account/mfa/totp", "Set up an authenticator app").await;
    assert_eq!(b.heading().await, "Set up an authenticator app", "{}", b.text().await);
    assert_qr_code_shown(&b).await;
    let key = shown_key(&b).await;
    assert_ne!(key, old_key, "the new app got the old key");
    b.fill("mfa-code", &code_at(&app, &key, 0)).await;
    b.press("/account/mfa/totp/confirm", "Turn on two-step verification").await;
    assert_eq!(b.heading().await, "Your recovery codes", "{}", b.text().await);
    let codes = shown_recovery_codes(&b).await;
    assert!(codes.iter().all(|c| !old_codes.contains(c)), "an old recovery code again: {codes:?}");
    b.follow("Back to your account").await;
    let section = mfa_section(&b).await;
    assert!(section.contains("Authenticator app — on"), "{section}");
    assert!(section.contains("Recovery codes left: 10."), "{section}");

    // Only the new app signs in now: not the old key, not an old unused recovery code.
    next_step(&app);
    let token = mfa_token(&app, "paula").await;
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &old_key, 0))).await, StatusCode::BAD_REQUEST);
    assert_eq!(mfa_grant(&app, &token, ("recovery_code", &old_codes[1])).await, StatusCode::BAD_REQUEST);
    assert_eq!(mfa_grant(&app, &token, ("otp", &code_at(&app, &key, 0))).await, StatusCode::OK);

    b.finish().await;
    eprintln!("browser: a lost phone took {:?}", started.elapsed());
}

/// A server whose public URL names a host (`localhost`), as passkeys need; the
/// browser is sent there.
async fn passkey_app() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    spawn_app_with(|c| {
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.public_url = Some(format!("http://localhost:{port}"));
    })
    .await
}

/// Gives the browser a platform authenticator that makes discoverable credentials and
/// verifies its user without asking (Chromium's virtual authenticator, through
/// DevTools); returns its id.
async fn with_virtual_authenticator(b: &Browser) -> String {
    b.cdp("WebAuthn.enable", json!({ "enableUI": false })).await;
    let options = json!({ "options": {
        "protocol": "ctap2", "ctap2Version": "ctap2_1", "transport": "internal",
        "hasResidentKey": true, "hasUserVerification": true, "isUserVerified": true,
        "automaticPresenceSimulation": true,
    }});
    let added = b.cdp("WebAuthn.addVirtualAuthenticator", options).await;
    let id = added["authenticatorId"].as_str().or(added["value"]["authenticatorId"].as_str());
    id.expect("a virtual authenticator").to_owned()
}

/// Whether the virtual authenticator answers by itself, as a person touching it would.
/// Off, a waiting request (the sign-in page's autofill) stays waiting.
async fn touches(b: &Browser, authenticator: &str, enabled: bool) {
    let params = json!({ "authenticatorId": authenticator, "enabled": enabled });
    b.cdp("WebAuthn.setAutomaticPresenceSimulation", params).await;
}

/// Waits for the page at `path`, which a script navigates to.
async fn wait_for_path(b: &Browser, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.path().await != path {
        assert!(Instant::now() < deadline, "still at {} with {}", b.path().await, b.text().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_person_adds_a_passkey_and_signs_in_with_it_without_a_password() {
    let Some(tools) = tools("browser: passkeys") else { return };
    let app = passkey_app().await;
    app.create_user("pia").await;
    let base = app.config.public_url.clone().unwrap();
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &base, Kind::Desktop).await;
    let authenticator = with_virtual_authenticator(&b).await;

    b.goto("/login").await;
    b.sign_in("pia", PASSWORD).await;
    assert_eq!(b.path().await, "/account", "{}", b.text().await);

    // Adding a passkey: the browser makes it, and as the first factor it brings the
    // recovery codes, shown once.
    b.fill("passkey-name", "This laptop").await;
    b.fill("passkey-password", PASSWORD).await;
    b.find("#passkey-add button[type=submit]").await.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.find("#passkey-codes").await.is_displayed().await.unwrap() {
        let error = b.client.find(Locator::Id("passkey-add-error")).await.unwrap().text().await.unwrap();
        assert!(Instant::now() < deadline, "no passkey was added: {error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let codes = b.client.find_all(Locator::Css("#passkey-codes-list li code")).await.unwrap();
    assert_eq!(codes.len(), 10);
    b.check("account-passkey-added").await;
    app.email_arriving("pia@example.com", "passkey named").await;
    b.goto("/account").await;
    let section = mfa_section(&b).await;
    assert!(section.contains("This laptop"), "{section}");
    b.check("account-passkeys").await;

    // Signed out, the sign-in page offers the passkey: the button, and the browser's
    // autofill, which with the authenticator answering by itself signs in at once.
    sign_out(&b).await;
    touches(&b, &authenticator, false).await;
    b.goto("/login").await;
    assert!(b.find("#passkey-sign-in").await.is_displayed().await.unwrap());
    assert_eq!(b.find("#username").await.attr("autocomplete").await.unwrap().as_deref(), Some("username webauthn"));
    b.check("login-passkey").await;
    touches(&b, &authenticator, true).await;
    b.find("#passkey-sign-in").await.click().await.unwrap();
    wait_for_path(&b, "/account").await;
    assert!(mfa_section(&b).await.contains("last used"), "{}", b.text().await);
    let store = latch::store::open(&app.config.database_url).await.unwrap();
    let pia = latch::store::find_user(&*store, "pia").await.unwrap().unwrap();
    let now = app.clock.clock().now();
    let sessions = store.list_sessions(pia.id, now, now - Duration::from_secs(3600)).await.unwrap();
    let amrs: Vec<&str> = sessions.iter().map(|s| s.amr.as_str()).collect();
    assert!(amrs.contains(&"hwk mfa"), "a passwordless session: {amrs:?}");

    sign_out(&b).await;
    b.goto("/login").await;
    wait_for_path(&b, "/account").await;

    // With the password, the passkey is the second step.
    sign_out(&b).await;
    touches(&b, &authenticator, false).await;
    b.goto("/login").await;
    b.sign_in("pia", PASSWORD).await;
    assert_eq!(b.heading().await, SECOND_STEP, "{}", b.text().await);
    b.check("login-mfa-passkey").await;
    touches(&b, &authenticator, true).await;
    b.find("#passkey-step").await.click().await.unwrap();
    wait_for_path(&b, "/account").await;

    // Removing it, with the password, takes the recovery codes with the last factor.
    assert_eq!(store.factors(pia.id).await.unwrap().recovery_codes, 10);
    b.fill("passkey-remove-1", PASSWORD).await;
    b.press("/account/passkeys/remove", "Remove").await;
    assert_eq!(b.path().await, "/account?done=passkey-removed", "{}", b.text().await);
    assert_eq!(store.factors(pia.id).await.unwrap().passkeys, 0);
    assert_eq!(store.factors(pia.id).await.unwrap().recovery_codes, 0);
    assert_eq!(app.token("pia", PASSWORD).await.status(), StatusCode::OK);
    b.finish().await;
}
