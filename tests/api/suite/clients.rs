//! Registered clients and what resource servers and browsers on other origins get:
//! client authentication on `/token`, scopes, `LATCH_REQUIRE_REGISTERED_CLIENTS`,
//! introspection, userinfo, CORS and discovery (SPEC §6).

use reqwest::StatusCode;
use serde_json::Value;

use super::helpers::*;

async fn password_grant(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)];
    all.extend_from_slice(form);
    app.post_form("/token", &all).await
}

async fn oauth_error(r: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

fn secret_of(client: &Value) -> (&str, &str) {
    (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap())
}

async fn introspect(app: &TestApp, client: &Value, token: &str) -> Value {
    let (id, secret) = secret_of(client);
    let r = app.client.post(app.url("/introspect")).basic_auth(id, Some(secret)).form(&[("token", token)]);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_confidential_client_authenticates_by_basic_or_post_and_nothing_else() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = app.create_client(&["--name", "backend", "--confidential"]).await;
    let (id, secret) = secret_of(&client);
    assert!(uuid::Uuid::parse_str(id).is_ok() && secret.len() >= 43);

    // client_secret_basic.
    let form = [("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)];
    let r = app.client.post(app.url("/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(pair["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], id);
    // client_secret_post.
    let r = password_grant(&app, &[("client_id", id), ("client_secret", secret)]).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Wrong secret, no secret, a secret for an unknown client: one answer.
    let wrong = app.client.post(app.url("/token")).basic_auth(id, Some("nope")).form(&form).send().await.unwrap();
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"latch\", charset=\"UTF-8\"");
    let wrong = oauth_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let missing =
        oauth_error(password_grant(&app, &[("client_id", id)]).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let unknown = password_grant(&app, &[("client_id", "someone"), ("client_secret", secret)]).await;
    let unknown = oauth_error(unknown, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, missing);
    // Two methods at once, or two different clients named, is a malformed request.
    let r = app.client.post(app.url("/token")).basic_auth(id, Some(secret));
    let r = r.form(&[form.as_slice(), &[("client_secret", secret)]].concat()).send().await.unwrap();
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;

    // The secret is stored as a digest only.
    let shown = app.run_cli(&["client", "show", id, "--json"]);
    assert_eq!(shown["confidential"], true);
    assert!(!shown.to_string().contains(secret));

    // A new secret replaces the old one at once.
    let rotated = app.run_cli(&["client", "rotate-secret", id, "--json"]);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let old = password_grant(&app, &[("client_id", id), ("client_secret", secret)]).await.status();
        let new = password_grant(&app, &[("client_id", id), ("client_secret", new_secret)]).await.status();
        if (old, new) == (StatusCode::UNAUTHORIZED, StatusCode::OK) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new secret is not in use: {old} {new}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_public_client_names_itself_and_may_not_present_a_secret() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = app.create_client(&["--name", "spa"]).await;
    let id = client["client_id"].as_str().unwrap();
    assert!(client.get("client_secret").is_none());
    let r = password_grant(&app, &[("client_id", id)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // As client libraries send it: Basic with an empty secret.
    let form = [("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)];
    let r = app.client.post(app.url("/token")).basic_auth(id, Some("")).form(&form).send().await.unwrap();
    let pair: Value = r.json().await.unwrap();
    assert_eq!(jwt_parts(pair["access_token"].as_str().unwrap()).1["client_id"], id);
    let r = password_grant(&app, &[("client_id", id), ("client_secret", "guess")]).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn scopes_are_granted_within_the_clients_allowance_and_kept_by_refreshes() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    // Default: openid profile email, in the response and the token.
    let pair: Value = password_grant(&app, &[]).await.json().await.unwrap();
    assert_eq!(pair["scope"], "openid profile email");
    assert_eq!(jwt_parts(pair["access_token"].as_str().unwrap()).1["scope"], "openid profile email");
    // A label may ask for the standard scopes only.
    let pair: Value = password_grant(&app, &[("scope", "openid email")]).await.json().await.unwrap();
    assert_eq!(pair["scope"], "openid email");
    let r = password_grant(&app, &[("scope", "openid admin")]).await;
    let body = oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert!(body["error_description"].as_str().unwrap().contains("admin"), "{body}");
    oauth_error(password_grant(&app, &[("scope", "a\"b")]).await, StatusCode::BAD_REQUEST, "invalid_scope").await;

    // A registered client gets at most its own scopes.
    let client = app.create_client(&["--name", "api", "--scope", "api:read", "--scope", "email"]).await;
    let id = client["client_id"].as_str().unwrap();
    let pair: Value = password_grant(&app, &[("client_id", id)]).await.json().await.unwrap();
    assert_eq!(pair["scope"], "email", "the defaults it is allowed");
    let pair: Value =
        password_grant(&app, &[("client_id", id), ("scope", "api:read email")]).await.json().await.unwrap();
    assert_eq!(pair["scope"], "api:read email");
    let r = password_grant(&app, &[("client_id", id), ("scope", "openid")]).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;

    // A refresh keeps the session's scopes, may narrow them, never widen them; a
    // refused widening leaves the refresh token usable.
    let refresh = pair["refresh_token"].as_str().unwrap();
    let r = app
        .post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid")])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let r = app
        .post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "email")])
        .await;
    let narrowed: Value = r.json().await.unwrap();
    assert_eq!(narrowed["scope"], "email");
    assert_eq!(jwt_parts(narrowed["access_token"].as_str().unwrap()).1["scope"], "email");
    let again: Value = app.refresh(narrowed["refresh_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(again["scope"], "api:read email", "the session keeps what it was granted");
}

#[tokio::test]
async fn a_confidential_clients_refresh_tokens_need_its_secret() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = app.create_client(&["--name", "backend", "--confidential"]).await;
    let (id, secret) = secret_of(&client);
    let pair: Value = password_grant(&app, &[("client_id", id), ("client_secret", secret)]).await.json().await.unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    // A thief without the secret gets nothing, and the token is not used up.
    oauth_error(app.refresh(refresh).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let other = app.create_client(&["--name", "other", "--confidential"]).await;
    let (other_id, other_secret) = secret_of(&other);
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let r = app.client.post(app.url("/token")).basic_auth(other_id, Some(other_secret)).form(&form);
    oauth_error(r.send().await.unwrap(), StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = app.client.post(app.url("/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn registered_clients_can_be_required() {
    let app = spawn_app_with(|c| c.require_registered_clients = true).await;
    app.create_user("alice").await;
    oauth_error(password_grant(&app, &[]).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = password_grant(&app, &[("client_id", "made-up")]).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let client = app.create_client(&["--name", "spa"]).await;
    let r = password_grant(&app, &[("client_id", client["client_id"].as_str().unwrap())]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_client_ends_its_sessions() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = app.create_client(&["--name", "spa"]).await;
    let id = client["client_id"].as_str().unwrap();
    let pair: Value = password_grant(&app, &[("client_id", id)]).await.json().await.unwrap();
    let token = pair["access_token"].as_str().unwrap();
    let mine = app.login("alice").await;
    assert_eq!(app.me_status(token).await, StatusCode::OK);
    app.run_cli(&["client", "delete", id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.me_status(token).await != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "the client's session outlived it");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.me_status(&mine.access_token).await, StatusCode::OK, "other clients' sessions stay");
    let out = app.cli().args(["client", "show", id]).output().unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn introspection_tells_confidential_clients_whether_a_token_is_live() {
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let rs = app.create_client(&["--name", "resource server", "--confidential"]).await;
    let public = app.create_client(&["--name", "spa"]).await;
    let tokens = app.login("alice").await;

    // Only confidential clients, authenticated, may ask.
    let r = app.post_form("/introspect", &[("token", &tokens.access_token)]).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let form = [("token", tokens.access_token.as_str()), ("client_id", public["client_id"].as_str().unwrap())];
    let r = app.post_form("/introspect", &form).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let (id, _) = secret_of(&rs);
    let r = app.client.post(app.url("/introspect")).basic_auth(id, Some("wrong")).form(&[("token", "x")]);
    oauth_error(r.send().await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_client").await;

    let active = introspect(&app, &rs, &tokens.access_token).await;
    let (_, claims) = jwt_parts(&tokens.access_token);
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], user["id"]);
    assert_eq!(active["username"], "alice");
    assert_eq!(active["sid"], claims["sid"]);
    assert_eq!(active["client_id"], "latch");
    assert_eq!(active["scope"], "openid profile email");
    assert_eq!(active["token_type"], "access_token");
    assert_eq!(active["exp"], claims["exp"]);
    assert_eq!(active["iat"], claims["iat"]);
    assert_eq!(active["iss"], app.base);
    assert_eq!(active["aud"], app.base);
    let refresh = introspect(&app, &rs, &tokens.refresh_token).await;
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    assert_eq!(refresh["sid"], claims["sid"]);

    // Garbage of every kind is inactive, never an error.
    for garbage in ["", "x", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", &"A".repeat(10_000), "\u{1F512}"] {
        assert_eq!(introspect(&app, &rs, garbage).await, serde_json::json!({ "active": false }), "{garbage:.20}");
    }
    let r = app.client.post(app.url("/introspect")).basic_auth(id, Some(secret_of(&rs).1)).form(&[("x", "y")]);
    oauth_error(r.send().await.unwrap(), StatusCode::BAD_REQUEST, "invalid_request").await;

    // A used refresh token is inactive; a logout shows at once.
    let next: Tokens = app.refresh(&tokens.refresh_token).await.json().await.unwrap();
    assert_eq!(introspect(&app, &rs, &tokens.refresh_token).await["active"], false);
    assert_eq!(introspect(&app, &rs, &next.access_token).await["active"], true);
    let r = app.client.post(app.url("/logout")).bearer_auth(&next.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(&app, &rs, &next.access_token).await, serde_json::json!({ "active": false }));
    assert_eq!(introspect(&app, &rs, &next.refresh_token).await["active"], false);
    assert_eq!(introspect(&app, &rs, &tokens.access_token).await["active"], false, "the whole session ended");
}

#[tokio::test]
async fn userinfo_answers_by_scope_and_discovery_names_only_what_exists() {
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let tokens = app.login("alice").await;
    let r = app.client.get(app.url("/userinfo")).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({ "sub": user["id"], "preferred_username": "alice", "email": "alice@example.com",
                            "email_verified": false })
    );
    let pair: Value = password_grant(&app, &[("scope", "openid")]).await.json().await.unwrap();
    let r = app.client.post(app.url("/userinfo")).bearer_auth(pair["access_token"].as_str().unwrap()).send();
    assert_eq!(r.await.unwrap().json::<Value>().await.unwrap(), serde_json::json!({ "sub": user["id"] }));
    let r = app.client.get(app.url("/userinfo")).bearer_auth("garbage").send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app.client.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let meta: Value =
        app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["userinfo_endpoint"], app.url("/userinfo"));
    assert_eq!(meta["introspection_endpoint"], app.url("/introspect"));
    for (key, value) in meta.as_object().unwrap() {
        if !key.ends_with("_endpoint") && key != "jwks_uri" {
            continue;
        }
        let url = value.as_str().unwrap();
        let get = app.client.get(url).send().await.unwrap().status();
        let post = app.client.post(url).send().await.unwrap().status();
        assert!(get != StatusCode::NOT_FOUND || post != StatusCode::NOT_FOUND, "{key} {url} does not exist");
    }
}

#[tokio::test]
async fn cors_answers_allowed_origins_and_nobody_else() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["http://app.example".to_owned()]).await;
    app.create_user("alice").await;
    let preflight = |origin: &str, path: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let cors_headers = |r: &reqwest::Response| -> Vec<String> {
        r.headers().keys().filter(|k| k.as_str().starts_with("access-control-")).map(|k| k.to_string()).collect()
    };

    for path in ["/token", "/users/me", "/introspect"] {
        let r = preflight("http://app.example", path).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "http://app.example");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert_eq!(h["access-control-allow-headers"], "content-type,authorization");
        assert!(h["access-control-max-age"].to_str().unwrap().parse::<u32>().unwrap() > 0);
        assert!(h.get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));

        let refused = preflight("http://evil.example", path).await.unwrap();
        assert_ne!(refused.status(), StatusCode::NO_CONTENT);
        assert!(cors_headers(&refused).is_empty(), "{path}: {:?}", cors_headers(&refused));
    }
    // A near miss is another origin.
    for near in ["https://app.example", "http://app.example:8080", "http://app.example.evil", "null"] {
        let r = preflight(near, "/token").await.unwrap();
        assert!(cors_headers(&r).is_empty(), "{near}");
    }

    // Actual requests.
    let tokens = app.login("alice").await;
    let get = |origin: &str| {
        app.client.get(app.url("/users/me")).bearer_auth(&tokens.access_token).header("origin", origin).send()
    };
    let r = get("http://app.example").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://app.example");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers().get_all("vary").iter().any(|v| v == "Origin"));
    let r = get("http://evil.example").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cors_headers(&r).is_empty());
    assert!(r.headers().get_all("vary").iter().any(|v| v == "Origin"));

    // The discovery documents are public.
    for path in ["/.well-known/jwks.json", "/.well-known/openid-configuration"] {
        let r = app.client.get(app.url(path)).header("origin", "http://anyone.example").send().await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
        assert!(r.headers().get("access-control-allow-credentials").is_none());
        let r = preflight("http://anyone.example", path).await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    }

    // A cookie login from an allowed origin is not cross-site; from another it is.
    let login = |origin: &'static str| {
        app.client
            .post(app.url("/sessions"))
            .header("origin", origin)
            .header("sec-fetch-site", "cross-site")
            .json(&serde_json::json!({ "username": "alice", "password": PASSWORD }))
            .send()
    };
    assert_eq!(login("http://app.example").await.unwrap().status(), StatusCode::OK);
    assert_eq!(login("http://evil.example").await.unwrap().status(), StatusCode::FORBIDDEN);

    // A registered client's origins are allowed too.
    app.create_client(&["--name", "spa", "--origin", "https://spa.example"]).await;
    let r = preflight("https://spa.example", "/token").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://spa.example");
}

#[tokio::test]
async fn no_label_passes_for_a_registered_or_deleted_client() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let client = app.create_client(&["--name", "backend", "--confidential"]).await;
    let id = client["client_id"].as_str().unwrap();
    let spellings = [id.to_uppercase(), format!("urn:uuid:{id}"), id.replace('-', "")];
    for spelling in &spellings {
        let r = password_grant(&app, &[("client_id", spelling)]).await;
        oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    app.run_cli(&["client", "delete", id]);
    let r = password_grant(&app, &[("client_id", id)]).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Labels of any other form still work.
    assert_eq!(password_grant(&app, &[("client_id", "mobile-app")]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_the_client_it_was_issued_to() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let spa = app.create_client(&["--name", "spa"]).await;
    let id = spa["client_id"].as_str().unwrap();
    let pair: Value = password_grant(&app, &[("client_id", id)]).await.json().await.unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    for other in ["another-label", "latch"] {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", other)];
        oauth_error(app.post_form("/token", &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", id)];
    assert_eq!(app.post_form("/token", &form).await.status(), StatusCode::OK, "not used up by the refusals");
}

#[tokio::test]
async fn a_refresh_drops_the_scopes_its_client_has_lost() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let spa = app.create_client(&["--name", "spa"]).await;
    let id = spa["client_id"].as_str().unwrap();
    let pair: Value = password_grant(&app, &[("client_id", id)]).await.json().await.unwrap();
    assert_eq!(pair["scope"], "openid profile email");
    app.run_cli(&["client", "update", id, "--scope", "openid"]);
    let mut refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", id)];
        let next: Value = app.post_form("/token", &form).await.json().await.unwrap();
        refresh = next["refresh_token"].as_str().unwrap().to_owned();
        if next["scope"] == "openid" {
            assert_eq!(jwt_parts(next["access_token"].as_str().unwrap()).1["scope"], "openid");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the lost scopes survive the refresh: {next}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn introspecting_a_refresh_token_is_no_use_of_its_session() {
    let app = spawn_app_with(|c| c.session_idle_timeout = std::time::Duration::from_secs(60)).await;
    app.create_user("alice").await;
    let rs = app.create_client(&["--name", "rs", "--confidential"]).await;
    let tokens = app.login("alice").await;
    app.clock.advance(std::time::Duration::from_secs(40));
    assert_eq!(introspect(&app, &rs, &tokens.refresh_token).await["active"], true);
    app.clock.advance(std::time::Duration::from_secs(40));
    assert_eq!(introspect(&app, &rs, &tokens.refresh_token).await["active"], false, "idle for 80 s");
    oauth_error(app.refresh(&tokens.refresh_token).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
