//! The hosted pages that the links of Latch's emails open (SPEC §7), over real HTTP as a
//! browser without JavaScript would use them: a GET shows a form and uses nothing up,
//! the form post does the work, and only a post that repeats the CSRF cookie counts.

use reqwest::StatusCode;
use serde_json::Value;

use super::helpers::*;

/// A page fetched like a browser: its status, HTML and the CSRF cookie it set.
struct Form {
    status: StatusCode,
    html: String,
    csrf: String,
    referrer_policy: String,
}

async fn open(app: &TestApp, path: &str) -> Form {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script may run: {csp}");
    let referrer_policy = r.headers()["referrer-policy"].to_str().unwrap().to_owned();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"), "{cookie}");
    let csrf = cookie.split(';').next().unwrap().strip_prefix("latch_csrf=").unwrap().to_owned();
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!(r#"name="csrf" value="{csrf}""#)) || !html.contains("<form"), "{html}");
    Form { status, html, csrf, referrer_policy }
}

async fn submit(app: &TestApp, path: &str, csrf_cookie: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = app
        .client
        .post(app.url(path))
        .header("cookie", format!("latch_csrf={csrf_cookie}"))
        .header("origin", app.base.as_str())
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_verification_link_opens_a_page_whose_button_confirms_the_address() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let mail = app.email_about("alice@example.com", "verify-email");
    let token = token_in(&mail);
    assert!(mail.contains(&format!("{}/verify-email?token={token}", app.base)));

    // Opening the link (twice, as a mail scanner and then the person) uses nothing up.
    for _ in 0..2 {
        let page = open(&app, &format!("/verify-email?token={token}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.html.contains(&format!(r#"name="token" value="{token}""#)));
    }
    let page = open(&app, &format!("/verify-email?token={token}")).await;
    // Without the cookie's value, or from another site, the post is refused.
    let (status, _) = submit(&app, "/verify-email", &page.csrf, &[("token", &token)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = submit(&app, "/verify-email", &page.csrf, &[("token", &token), ("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/verify-email"))
        .header("cookie", format!("latch_csrf={}", page.csrf))
        .header("origin", "https://evil.example")
        .form(&[("token", token.as_str()), ("csrf", page.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (status, html) = submit(&app, "/verify-email", &page.csrf, &[("token", &token), ("csrf", &page.csrf)]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Your email address is confirmed"), "{html}");
    let me: Value = app.me(&app.login("alice").await.access_token).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true);
    // Used up by the post.
    let (status, html) = submit(&app, "/verify-email", &page.csrf, &[("token", &token), ("csrf", &page.csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("invalid, used or expired"), "{html}");
    assert_eq!(open(&app, "/verify-email").await.status, StatusCode::BAD_REQUEST, "a link without a token");
}

#[tokio::test]
async fn the_reset_link_opens_a_form_that_sets_the_new_password() {
    let app = spawn_app().await;
    app.create_user("bob").await;
    let forgot = open(&app, "/forgot-password").await;
    assert_eq!(forgot.status, StatusCode::OK);
    // The same answer for an unknown address, at the API's fixed answer time (100 ms
    // after arrival, whatever happens behind it); a malformed one is shown beside the field.
    let started = std::time::Instant::now();
    let (status, unknown) =
        submit(&app, "/forgot-password", &forgot.csrf, &[("email", "nobody@example.com"), ("csrf", &forgot.csrf)])
            .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(100), "{:?}", started.elapsed());
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (_, known) =
        submit(&app, "/forgot-password", &forgot.csrf, &[("email", "bob@example.com"), ("csrf", &forgot.csrf)]).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(100), "{:?}", started.elapsed());
    assert_eq!(unknown, known);
    let (status, html) =
        submit(&app, "/forgot-password", &forgot.csrf, &[("email", "not an address"), ("csrf", &forgot.csrf)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="email-error""#) && html.contains(r#"value="not an address""#), "{html}");

    let mail = app.email_arriving("bob@example.com", "reset-password").await;
    let token = token_in(&mail);
    let page = open(&app, &format!("/reset-password?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(r#"<label for="new_password">"#) && page.html.contains(r#"type="password""#));

    // A refused password is shown beside its field, is not echoed, and keeps the link.
    let form = [("token", token.as_str()), ("new_password", "short"), ("csrf", page.csrf.as_str())];
    let (status, html) = submit(&app, "/reset-password", &page.csrf, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="new_password-error""#) && html.contains(r#"aria-invalid="true""#), "{html}");
    assert!(!html.contains(r#"value="short""#));

    let form = [("token", token.as_str()), ("new_password", "a brand new passphrase"), ("csrf", page.csrf.as_str())];
    let (status, html) = submit(&app, "/reset-password", &page.csrf, &form).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Your password is changed"));
    assert_eq!(app.token("bob", "a brand new passphrase").await.status(), StatusCode::OK);
    let (status, _) = submit(&app, "/reset-password", &page.csrf, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the link is used up");
}

#[tokio::test]
async fn pages_escape_what_they_show_and_can_be_turned_off() {
    let app = spawn_app_with(|c| c.ui_title = "Acme <Login>".to_owned()).await;
    let page = open(&app, "/reset-password?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert!(!page.html.contains("<script>"), "{}", page.html);
    assert!(page.html.contains("Acme &lt;Login&gt;"));
    let css = app.client.get(app.url("/ui/style.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let off = spawn_app_with(|c| c.ui = false).await;
    for path in ["/verify-email?token=x", "/reset-password?token=x", "/forgot-password", "/login", "/ui/style.css"] {
        assert_eq!(off.client.get(off.url(path)).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_form_counts_only_from_our_own_origin_with_a_token_we_issued() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["http://app.example".to_owned()]).await;
    app.create_user("carol").await;
    let token = token_in(&app.email_about("carol@example.com", "verify-email"));
    let page = open(&app, &format!("/verify-email?token={token}")).await;
    let post = |cookie: String, csrf: String, extra: Option<(&'static str, &'static str)>| {
        let mut r = app
            .client
            .post(app.url("/verify-email"))
            .header("cookie", format!("latch_csrf={cookie}"))
            .form(&[("token", token.clone()), ("csrf", csrf)]);
        if let Some((name, value)) = extra {
            r = r.header(name, value);
        }
        r.send()
    };
    // A planted cookie of any other form, another origin of the site, an origin allowed
    // for CORS: refused.
    assert_eq!(post("planted".into(), "planted".into(), None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let same_site = Some(("sec-fetch-site", "same-site"));
    assert_eq!(post(page.csrf.clone(), page.csrf.clone(), same_site).await.unwrap().status(), StatusCode::FORBIDDEN);
    let cors = Some(("origin", "http://app.example"));
    assert_eq!(post(page.csrf.clone(), page.csrf.clone(), cors).await.unwrap().status(), StatusCode::FORBIDDEN);
    // No origin may read a page, not even one allowed for the API.
    let r = app.client.get(app.url("/forgot-password")).header("origin", "http://app.example").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A link with its token twice is no valid link.
    let r = app.client.get(app.url("/verify-email?token=a&token=b")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("invalid, used or expired"));

    // Without Sec-Fetch-Site, `Origin: null` (a sandboxed frame's) is no origin of ours.
    let null = Some(("origin", "null"));
    assert_eq!(post(page.csrf.clone(), page.csrf.clone(), null).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A field twice is no form of ours: a page says so, not a JSON problem.
    let r = app
        .client
        .post(app.url("/verify-email"))
        .header("cookie", format!("latch_csrf={}", page.csrf))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&csrf={0}&csrf={0}", page.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.status().is_client_error());

    // Pages send their origin to themselves only: under the API's `no-referrer` a
    // browser posts a page's own form with `Origin: null`, which Chromium pairs with
    // `Sec-Fetch-Site: same-origin`.
    assert_eq!(open(&app, "/forgot-password").await.referrer_policy, "same-origin");
    let r = app
        .client
        .post(app.url("/verify-email"))
        .header("cookie", format!("latch_csrf={}", page.csrf))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", token.clone()), ("csrf", page.csrf.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_sign_in_page_starts_a_browser_session_and_sends_only_to_allowed_places() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["http://app.example".to_owned()]).await;
    app.create_user("dave").await;
    let page = open(&app, "/login?return_to=https://evil.example/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("evil.example"), "an outside return_to is dropped");
    // A browser holds the redirect after a form post to the page's form-action: an
    // allowed return_to's origin is named there, on that page only.
    let app = &app;
    let csp = |path: &'static str| async move {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        r.headers()["content-security-policy"].to_str().unwrap().to_owned()
    };
    assert!(csp("/login?return_to=http://app.example/after").await.contains("form-action 'self' http://app.example;"));
    assert!(csp("/signup?return_to=http://app.example/after").await.contains("form-action 'self' http://app.example;"));
    for path in ["/login", "/login?return_to=/account", "/login?return_to=https://evil.example/", "/signup"] {
        assert!(csp(path).await.contains("form-action 'self';"), "{path}");
    }
    assert!(page.html.contains(r#"<label for="username">"#) && page.html.contains(r#"<label for="password">"#));

    let sign_in = |login: &'static str, password: &'static str, return_to: &'static str| {
        let form =
            [("username", login), ("password", password), ("return_to", return_to), ("csrf", page.csrf.as_str())];
        app.client.post(app.url("/login")).header("cookie", format!("latch_csrf={}", page.csrf)).form(&form).send()
    };
    // One answer for a wrong password and an unknown user; the login is kept, the
    // password never shown.
    let wrong = sign_in("dave", "not the password", "").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    assert!(wrong.contains(r#"value="dave""#) && !wrong.contains("not the password"), "{wrong}");
    let unknown = sign_in("nobody", "not the password", "").await.unwrap().text().await.unwrap();
    assert_eq!(wrong.replace("dave", "X"), unknown.replace("nobody", "X"));

    // Open redirects are refused (the account page instead); own paths and allowed
    // origins are followed.
    for (target, expected) in [
        ("https://evil.example/", "/account"),
        ("//evil.example/", "/account"),
        ("/\\evil.example/", "/account"),
        ("", "/account"),
        ("http://app.example/a\r\nSet-Cookie:x=1", "/account"),
        ("http://app.example\\@evil.example/", "/account"),
        ("/\u{b}/evil.example", "/account"),
        ("/\u{7f}/evil.example", "/account"),
        ("/ui/style.css", "/ui/style.css"),
        ("http://app.example/after", "http://app.example/after"),
    ] {
        let r = sign_in("dave", PASSWORD, target).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{target}");
        assert_eq!(r.headers()["location"], expected, "{target}");
    }

    // The session cookie works on the API.
    let r = sign_in("dave@example.com", PASSWORD, "").await.unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("latch_session="))
        .unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    let r = app.client.get(app.url("/users/me")).header("cookie", session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = submit(app, "/login", &page.csrf, &[("username", "dave"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a sign-in without the form's token is refused");
}

/// A browser without JavaScript: it keeps its cookies, and posts a page's form with the
/// page's CSRF token and the headers Chromium sends with a form on a page of Latch's.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: std::collections::BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, cookies: Default::default() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) {
        for set in r.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.to_str().unwrap().contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let r = self.app.client.get(self.app.url(path)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.keep_cookies(&r);
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (r.status(), r.text().await.unwrap(), location)
    }

    /// Posts `form` plus the CSRF token, as a form navigation does.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, Option<String>) {
        let csrf = self.cookies.get("latch_csrf").cloned().unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &csrf));
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", "null")
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-dest", "document")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .form(&fields)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&r);
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (r.status(), r.text().await.unwrap(), location)
    }

    async fn sign_in(&mut self, login: &str, password: &str) {
        self.get("/login").await;
        let (status, html, location) = self.post("/login", &[("username", login), ("password", password)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(location.as_deref(), Some("/account"));
    }
}

/// The ids of the sessions the account page lists, in its order.
fn listed_sessions(html: &str) -> Vec<String> {
    html.split(r#"name="session" value=""#).skip(1).map(|rest| rest[..36].to_owned()).collect()
}

#[tokio::test]
async fn signing_up_on_the_page_follows_the_api_rules_and_signs_the_browser_in() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let (status, html, _) = browser.get("/signup?return_to=https://evil.example/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("evil.example"));
    for id in ["username", "email", "password"] {
        assert!(html.contains(&format!(r#"<label for="{id}">"#)), "{id}");
    }

    // Every field's error beside it, what was typed kept, never the password.
    let bad = [("username", "a!"), ("email", "not-an-address"), ("password", "hunter2")];
    let (status, html, _) = browser.post("/signup", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in ["username", "email", "password"] {
        assert!(html.contains(&format!(r#"id="{id}-error""#)), "{id}: {html}");
    }
    assert!(html.contains(r#"value="not-an-address""#) && !html.contains("hunter2"), "{html}");

    let good = [("username", "erin"), ("email", "erin@example.com"), ("password", PASSWORD)];
    let (status, _, location) = browser.post("/signup", &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
    let (status, html, _) = browser.get("/account").await;
    assert_eq!(status, StatusCode::OK, "signed in at once");
    let (status, _, location) = browser.get("/signup").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/account")), "no second sign-up");
    assert!(html.contains("erin@example.com") && html.contains("not confirmed yet"), "{html}");
    assert!(app.email_about("erin@example.com", "verify-email").contains("/verify-email?token="));

    // A taken name, as the API says it (409), beside its field.
    let mut other = Browser::new(&app);
    other.get("/signup").await;
    let taken = [("username", "ERIN"), ("email", "someone@example.com"), ("password", PASSWORD)];
    let (status, html, _) = other.post("/signup", &taken).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains(r#"id="username-error""#) && html.contains("This username is taken."), "{html}");
    assert!(html.contains(r#"value="someone@example.com""#) && !html.contains(PASSWORD));

    // When addresses must be confirmed first, the page says so and signs nobody in.
    let strict = spawn_app_with(|c| c.require_verified_email = true).await;
    let mut browser = Browser::new(&strict);
    browser.get("/signup").await;
    let (status, html, _) = browser.post("/signup", &good).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Check your email") && html.contains("erin@example.com"), "{html}");
    assert!(!browser.cookies.contains_key("latch_session"));
}

#[tokio::test]
async fn the_account_page_changes_what_the_api_changes_under_its_rules() {
    let app = spawn_app().await;
    app.create_user("frank").await;
    let mut browser = Browser::new(&app);
    let (status, _, location) = browser.get("/account").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/login?return_to=%2Faccount"));
    browser.sign_in("frank", PASSWORD).await;
    let phone = app.login("frank").await;

    let (status, html, _) = browser.get("/account").await;
    assert_eq!(status, StatusCode::OK);
    let sessions = listed_sessions(&html);
    assert_eq!(sessions.len(), 2, "{html}");
    assert!(html.contains("this browser"));

    // Rename, under the username rules.
    let (status, html, _) = browser.post("/account/profile", &[("username", "x")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="profile-username-error""#) && html.contains(r#"value="x""#), "{html}");
    let (status, _, location) = browser.post("/account/profile", &[("username", "franklin")]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/account?done=username")));
    let (_, html, _) = browser.get("/account?done=username").await;
    assert!(html.contains("Username saved."), "{html}");
    let (_, html, _) = browser.get("/account?done=%3Cscript%3E").await;
    assert!(!html.contains("script") && !html.contains(r#"class="notice""#), "only fixed notices: {html}");
    let me: Value = app.me(&phone.access_token).await.json().await.unwrap();
    assert_eq!(me["username"], "franklin");

    // A new address needs the password; a wrong one is a counted failure, shown beside it.
    let (status, html, _) =
        browser.post("/account/email", &[("email", "new@example.com"), ("current_password", "wrong password")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains(r#"id="email-password-error""#) && html.contains(r#"value="new@example.com""#));
    assert!(!html.contains("wrong password"));
    let (status, _, location) =
        browser.post("/account/email", &[("email", "new@example.com"), ("current_password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html, _) = browser.get(&location.unwrap()).await;
    assert!(html.contains("We sent a link to new@example.com"), "{html}");
    assert!(app.email_about("new@example.com", "verify-email").contains("token="));

    // A new password under the password rules; the other session ends, this one stays.
    let (status, html, _) =
        browser.post("/account/password", &[("current_password", PASSWORD), ("new_password", "franklin")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(r#"id="password-new-error""#), "{html}");
    let new_password = "a much longer passphrase";
    let (status, _, location) =
        browser.post("/account/password", &[("current_password", PASSWORD), ("new_password", new_password)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html, _) = browser.get(&location.unwrap()).await;
    assert!(html.contains("Password changed."), "{html}");
    assert_eq!(app.refresh(&phone.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(listed_sessions(&html).len(), 1);

    // Ending another session from the list.
    let laptop: Tokens = app.token("franklin", new_password).await.json().await.unwrap();
    let (_, html, _) = browser.get("/account").await;
    let sessions = listed_sessions(&html);
    assert_eq!(sessions.len(), 2);
    let (_, this_browser, _) = browser.get("/users/me/sessions").await;
    let listed: Value = serde_json::from_str(&this_browser).unwrap();
    let current = listed.as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"].clone();
    let other = sessions.iter().find(|id| **id != current.as_str().unwrap()).unwrap();
    let (status, _, location) = browser.post("/account/sessions/end", &[("session", other)]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/account?done=session")));
    assert_eq!(app.refresh(&laptop.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    let (status, _, _) = browser.post("/account/sessions/end", &[("session", other)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another site's form cannot delete the account, nor can a wrong password.
    let r = app
        .client
        .post(app.url("/account/delete"))
        .header("cookie", browser.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[("password", new_password), ("csrf", browser.cookies["latch_csrf"].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, html, _) = browser.post("/account/delete", &[("password", "wrong password")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains(r#"id="delete-password-error""#));
    assert_eq!(app.token("franklin", new_password).await.status(), StatusCode::OK);

    let (status, html, _) = browser.post("/account/delete", &[("password", new_password)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Account deleted"), "{html}");
    assert!(!browser.cookies.contains_key("latch_session"), "the cookie is cleared");
    assert_eq!(app.token("franklin", new_password).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_sign_out_page_ends_the_session_and_api_logout_keeps_its_answer() {
    let app = spawn_app().await;
    app.create_user("gina").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("gina", PASSWORD).await;
    let session = format!("latch_session={}", browser.cookies["latch_session"]);

    // A signed-in browser skips the sign-in form.
    let (status, _, location) = browser.get("/login?return_to=/ui/style.css").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/ui/style.css")));

    // Opening /logout asks; it signs nobody out (a link or a prefetch must not).
    let (status, html, _) = browser.get("/logout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"action="/logout""#) && html.contains("gina"), "{html}");
    let me = |cookie: String| app.client.get(app.url("/users/me")).header("cookie", cookie).send();
    assert_eq!(me(session.clone()).await.unwrap().status(), StatusCode::OK);

    // The form without its token is refused and changes nothing.
    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", session.clone())
        .header("accept", "text/html")
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(session.clone()).await.unwrap().status(), StatusCode::OK);

    let (status, html, _) = browser.post("/logout", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You are signed out."), "{html}");
    assert!(!browser.cookies.contains_key("latch_session"));
    assert_eq!(me(session).await.unwrap().status(), StatusCode::UNAUTHORIZED, "the session has ended");
    assert_eq!(browser.get("/login").await.0, StatusCode::OK);

    // The API's POST /logout is unchanged: 204, also for a form-encoded call.
    let tokens = app.login("gina").await;
    let r = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(&tokens.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&tokens.access_token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn branding_reaches_the_pages_their_stylesheet_and_the_emails() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("login.html"),
        r#"{% extends "base.html" %}{% block content %}<p>Acme's own sign-in</p>{% include "footer.html" %}{% endblock %}"#,
    )
    .unwrap();
    std::fs::write(templates.path().join("footer.html"), "<footer>Acme footer</footer>").unwrap();
    let dir = templates.path().to_path_buf();
    let app = spawn_app_with(move |c| {
        c.ui_title = "Acme".to_owned();
        c.ui_logo_url = Some("https://cdn.example/logo.png".to_owned());
        c.ui_accent_color = Some("#ffcc00".to_owned());
        c.ui_templates = Some(dir);
    })
    .await;

    let page = open(&app, "/login").await;
    assert!(page.html.contains("Acme's own sign-in") && page.html.contains("Acme footer"), "{}", page.html);
    // minijinja writes `/` as `&#x2f;` in HTML, which browsers read back as `/`.
    let logo = r#"<img src="https:&#x2f;&#x2f;cdn.example&#x2f;logo.png" alt="Acme">"#;
    assert!(page.html.contains(logo), "{}", page.html);
    let r = app.client.get(app.url("/signup")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("img-src 'self' https://cdn.example;"), "{csp}");
    assert!(r.text().await.unwrap().contains("Create account"), "the other templates stay built in");
    // A light accent gets dark button text, and links the text colour (contrast).
    let css = app.client.get(app.url("/ui/style.css")).send().await.unwrap().text().await.unwrap();
    assert!(css.contains("--accent: #ffcc00") && css.contains("--on-accent: #1b1f24"), "{css}");
    assert!(css.contains("--link: #1b1f24"), "{css}");

    // The email's HTML part wears the theme; its text part keeps the link verbatim.
    app.create_user("hana").await;
    let mail = app.email_about("hana@example.com", "verify-email");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");
    assert!(mail.contains(r#"<img src="https://cdn.example/logo.png" alt="Acme""#), "{mail}");
    assert!(mail.contains("background:#ffcc00;color:#1b1f24"), "{mail}");
    let token = token_in(&mail);
    assert!(mail.contains(&format!("\r\n{}/verify-email?token={token}\r\n", app.base)), "{mail}");

    // A template that does not compile stops the start, naming it.
    std::fs::write(templates.path().join("signup.html"), "{% block content %}unclosed").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.ui_templates = Some(templates.path().to_path_buf());
    let err = match latch::app::App::build(config).await {
        Ok(_) => panic!("a broken template must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("signup.html"), "{err}");
}
