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
}

async fn open(app: &TestApp, path: &str) -> Form {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script may run: {csp}");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"), "{cookie}");
    let csrf = cookie.split(';').next().unwrap().strip_prefix("latch_csrf=").unwrap().to_owned();
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!(r#"name="csrf" value="{csrf}""#)) || !html.contains("<form"), "{html}");
    Form { status, html, csrf }
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
    // The same answer for an unknown address; a malformed one is shown beside the field.
    let (status, unknown) =
        submit(&app, "/forgot-password", &forgot.csrf, &[("email", "nobody@example.com"), ("csrf", &forgot.csrf)])
            .await;
    assert_eq!(status, StatusCode::OK);
    let (_, known) =
        submit(&app, "/forgot-password", &forgot.csrf, &[("email", "bob@example.com"), ("csrf", &forgot.csrf)]).await;
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

    let same_origin = Some(("sec-fetch-site", "same-origin"));
    assert_eq!(post(page.csrf.clone(), page.csrf.clone(), same_origin).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_sign_in_page_starts_a_browser_session_and_sends_only_to_allowed_places() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["http://app.example".to_owned()]).await;
    app.create_user("dave").await;
    let page = open(&app, "/login?return_to=https://evil.example/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("evil.example"), "an outside return_to is dropped");
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

    // Open redirects are refused; own paths and allowed origins are followed.
    for (target, expected) in [
        ("https://evil.example/", None),
        ("//evil.example/", None),
        ("/\\evil.example/", None),
        ("/ui/style.css", Some("/ui/style.css")),
        ("http://app.example/after", Some("http://app.example/after")),
    ] {
        let r = sign_in("dave", PASSWORD, target).await.unwrap();
        match expected {
            Some(location) => {
                assert_eq!(r.status(), StatusCode::SEE_OTHER, "{target}");
                assert_eq!(r.headers()["location"], location);
            }
            None => {
                assert_eq!(r.status(), StatusCode::OK, "{target}");
                assert!(r.headers().get("location").is_none());
            }
        }
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
    let (status, _) = submit(&app, "/login", &page.csrf, &[("username", "dave"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a sign-in without the form's token is refused");
}
