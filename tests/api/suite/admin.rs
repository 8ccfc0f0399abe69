//! Roles and the admin API (SPEC §10): who may call it, users (search, pages, changes,
//! deletion), their sessions, and the client registry.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::*;

/// Registers `name` and gives it the `admin` role through the command line; its tokens.
async fn admin(app: &TestApp, name: &str) -> Tokens {
    app.create_user(name).await;
    app.run_cli(&["user", "roles", name, "--add", "admin"]);
    app.login(name).await
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn roles_reach_tokens_views_and_the_command_line() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let before = app.login("alice").await;
    assert!(jwt_parts(&before.access_token).1.get("roles").is_none(), "no roles, no claim");
    let me: Value = app.me(&before.access_token).await.json().await.unwrap();
    assert_eq!(me["roles"], json!([]));

    let shown = app.run_cli(&["user", "roles", "alice", "--add", "support", "--add", "admin", "--json"]);
    assert_eq!(shown, json!(["admin", "support"]));
    let after = app.login("alice").await;
    assert_eq!(jwt_parts(&after.access_token).1["roles"], json!(["admin", "support"]));
    let me: Value = app.me(&after.access_token).await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["admin", "support"]));
    // Introspection tells a resource server the roles the user holds now.
    let rs = app.create_client(&["--name", "rs", "--confidential"]).await;
    let (rs_id, rs_secret) = (rs["client_id"].as_str().unwrap(), rs["client_secret"].as_str().unwrap());
    let r = app.client.post(app.url("/introspect")).basic_auth(rs_id, Some(rs_secret));
    let seen: Value = r.form(&[("token", after.access_token.as_str())]).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["roles"], json!(["admin", "support"]));
    // A refreshed token carries the roles the user holds now.
    app.run_cli(&["user", "roles", "alice", "--remove", "support"]);
    let refreshed: Tokens = app.refresh(&after.refresh_token).await.json().await.unwrap();
    assert_eq!(jwt_parts(&refreshed.access_token).1["roles"], json!(["admin"]));

    let out = app.cli().args(["user", "roles", "alice", "--add", "bad role"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--add"));

    // `user create --admin` gives the role; `show` and `list` say so.
    let mut create = app.cli();
    create.args(["user", "create", "--username", "root", "--email", "root@example.com", "--admin", "--password-stdin"]);
    let mut child = create.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let root = app.run_cli(&["user", "show", "root", "--json"]);
    assert_eq!((root["roles"].clone(), root["admin"].clone()), (json!(["admin"]), json!(true)));
    let t = app.login("root").await;
    assert_eq!(jwt_parts(&t.access_token).1["roles"], json!(["admin"]));
}

/// Every route of the admin API, with ids that exist and ids that do not.
fn admin_routes(user: &str, client: &str) -> Vec<(Method, String)> {
    let missing = "0190b7a0-0000-7000-8000-000000000000";
    let mut routes = vec![
        (Method::GET, "/admin/users".to_owned()),
        (Method::GET, "/admin/clients".to_owned()),
        (Method::POST, "/admin/clients".to_owned()),
        (Method::GET, "/admin/audit".to_owned()),
    ];
    for id in [user, missing, "not-an-id"] {
        routes.push((Method::GET, format!("/admin/users/{id}")));
        routes.push((Method::PATCH, format!("/admin/users/{id}")));
        routes.push((Method::DELETE, format!("/admin/users/{id}")));
        routes.push((Method::GET, format!("/admin/users/{id}/sessions")));
        routes.push((Method::DELETE, format!("/admin/users/{id}/sessions")));
        routes.push((Method::DELETE, format!("/admin/users/{id}/sessions/{missing}")));
    }
    for id in [client, "no-such-client"] {
        routes.push((Method::GET, format!("/admin/clients/{id}")));
        routes.push((Method::PATCH, format!("/admin/clients/{id}")));
        routes.push((Method::DELETE, format!("/admin/clients/{id}")));
        routes.push((Method::POST, format!("/admin/clients/{id}/secret")));
    }
    routes
}

#[tokio::test]
async fn strangers_get_401_and_users_without_the_role_403_on_every_route() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let bob = app.create_user("bob").await;
    let bob_id = bob["id"].as_str().unwrap();
    let t = app.login("bob").await;
    let client = app.create_client(&["--name", "app", "--confidential"]).await;
    let client_id = client["client_id"].as_str().unwrap();

    let mut forbidden_bodies = std::collections::BTreeSet::new();
    for (method, path) in admin_routes(bob_id, client_id) {
        let body = json!({"disabled": true, "name": "x"});
        let r = app.client.request(method.clone(), app.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(r.headers().get("www-authenticate").is_some(), "{method} {path}");
        let r = call(&app, method.clone(), &path, &t.access_token, Some(body)).await;
        let problem = assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
        // The same answer whether or not the user or client exists.
        forbidden_bodies.insert(problem.to_string());
    }
    assert_eq!(forbidden_bodies.len(), 1, "{forbidden_bodies:?}");
    // Nothing changed.
    let bob_now =
        ok_json(call(&app, Method::GET, &format!("/admin/users/{bob_id}"), &boss.access_token, None).await).await;
    assert_eq!(bob_now["disabled"], false);

    // Taking the role away takes effect at once, even for a token that still claims it.
    let admin_get = || call(&app, Method::GET, "/admin/users", &boss.access_token, None);
    assert_eq!(admin_get().await.status(), StatusCode::OK);
    app.run_cli(&["user", "roles", "boss", "--remove", "admin"]);
    assert_eq!(admin_get().await.status(), StatusCode::FORBIDDEN);
    // A Basic password of an admin works like a token.
    app.run_cli(&["user", "roles", "boss", "--add", "admin"]);
    let r = app.client.get(app.url("/admin/users")).basic_auth("boss", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn users_are_searched_filtered_and_paged() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    for name in ["Anna", "anton", "bert", "carla", "dora"] {
        app.create_user(name).await;
    }
    // Found by email only: the username starts otherwise.
    let r = app.register("zed", "annabel@example.org", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.run_cli(&["user", "disable", "bert"]);
    app.run_cli(&["user", "roles", "dora", "--add", "support_team"]);
    let list = |query: &str| {
        let path = format!("/admin/users{query}");
        let token = boss.access_token.clone();
        let app = &app;
        async move { call(app, Method::GET, &path, &token, None).await }
    };
    let names = |page: &Value| -> Vec<String> {
        page["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
    };

    let all = ok_json(list("").await).await;
    assert_eq!(names(&all), ["Anna", "anton", "bert", "boss", "carla", "dora", "zed"], "by username, any case");
    assert!(all["next_cursor"].is_null());
    assert_eq!(all["users"][2]["disabled"], true);
    assert_eq!(all["users"][0]["email"], "anna@example.com");

    // Username prefix first (any case), then those found only by their email.
    assert_eq!(names(&ok_json(list("?q=AN").await).await), ["Anna", "anton", "zed"]);
    assert_eq!(names(&ok_json(list("?q=annabel%40").await).await), ["zed"]);
    assert_eq!(names(&ok_json(list("?q=carla%40example.com").await).await), ["carla"]);
    let anna = all["users"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(names(&ok_json(list(&format!("?q={anna}")).await).await), ["Anna"]);
    // A search string is data: no wildcard, no SQL.
    for q in ["%25", "_", "a%25", "'%20OR%201=1--", "%5C"] {
        assert_eq!(names(&ok_json(list(&format!("?q={q}")).await).await), Vec::<String>::new(), "{q}");
    }
    assert_eq!(names(&ok_json(list("?disabled=true").await).await), ["bert"]);
    assert_eq!(names(&ok_json(list("?role=support_team").await).await), ["dora"]);
    assert_eq!(names(&ok_json(list("?role=admin").await).await), ["boss"]);
    assert_eq!(names(&ok_json(list("?role=support").await).await), Vec::<String>::new(), "whole names only");
    let verify = json!({"email_verified": true});
    ok_json(call(&app, Method::PATCH, &format!("/admin/users/{anna}"), &boss.access_token, Some(verify)).await).await;
    assert_eq!(names(&ok_json(list("?email_verified=true").await).await), ["Anna"]);
    assert_eq!(names(&ok_json(list("?email_verified=false&q=b").await).await), ["bert", "boss"]);

    // Pages of two cover everything once, in order; also for a search that spans both phases.
    for (query, expected) in
        [("?limit=2", names(&all)), ("?limit=1&q=an", vec!["Anna".into(), "anton".into(), "zed".into()])]
    {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_owned();
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let page = ok_json(list(&q).await).await;
            seen.extend(names(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{query}");
    }

    // Bad input: a clear 4xx naming the parameter.
    let first = ok_json(list("?limit=1").await).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (query, status, field) in [
        (format!("?cursor={tampered}"), StatusCode::BAD_REQUEST, "cursor"),
        ("?cursor=%00%01".to_owned(), StatusCode::BAD_REQUEST, "cursor"),
        ("?limit=0".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("?limit=201".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("?limit=ten".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("?q=".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "q"),
        ("?q=a%00b".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "q"),
        (format!("?q={}", "a".repeat(255)), StatusCode::UNPROCESSABLE_ENTITY, "q"),
        ("?disabled=yes".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "disabled"),
        ("?role=no%20such".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "role"),
        ("?sort=name".to_owned(), StatusCode::BAD_REQUEST, "sort"),
        ("?limit=1&limit=2".to_owned(), StatusCode::BAD_REQUEST, "limit"),
    ] {
        let r = list(&query).await;
        assert_eq!(r.status(), status, "{query}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem_fields(&problem), [field], "{query}: {problem}");
    }
    // A cursor of another list is refused too.
    let events = ok_json(call(&app, Method::GET, "/admin/audit?limit=1", &boss.access_token, None).await).await;
    let other = events["next_cursor"].as_str().unwrap();
    assert_eq!(list(&format!("?cursor={other}")).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_admin_changes_a_user_as_the_user_could() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let boss_id = jwt_parts(&boss.access_token).1["sub"].as_str().unwrap().to_owned();
    let carol = app.create_user("carol").await;
    let id = carol["id"].as_str().unwrap();
    app.create_user("dave").await;
    let path = format!("/admin/users/{id}");
    let patch = |body: Value| call(&app, Method::PATCH, &path, &boss.access_token, Some(body));

    let updated = ok_json(patch(json!({"username": "Caroline", "email_verified": true})).await).await;
    assert_eq!((updated["username"].clone(), updated["email_verified"].clone()), (json!("Caroline"), json!(true)));
    // A new address becomes unverified, gets a verification email; the old one a notice.
    let updated = ok_json(patch(json!({"email": "Carol@New.example"})).await).await;
    assert_eq!(
        (updated["email"].clone(), updated["email_verified"].clone()),
        (json!("carol@new.example"), json!(false))
    );
    app.email_arriving("carol@new.example", "verify-email?token=").await;
    app.email_arriving("carol@example.com", "carol@new.example").await;
    let updated = ok_json(patch(json!({"roles": ["editor", "admin"], "remove_roles": ["admin"]})).await).await;
    assert_eq!(updated["roles"], json!(["editor"]));
    let updated = ok_json(patch(json!({"add_roles": ["viewer"]})).await).await;
    assert_eq!(updated["roles"], json!(["editor", "viewer"]));

    // Giving the current values is no change, and no event.
    let count = |events: Value| events["events"].as_array().unwrap().len();
    let before =
        count(ok_json(call(&app, Method::GET, "/admin/audit?limit=200", &boss.access_token, None).await).await);
    let same =
        json!({"email": "carol@new.example", "email_verified": false, "username": "Caroline", "add_roles": ["viewer"]});
    let unchanged = ok_json(patch(same).await).await;
    assert_eq!(unchanged["updated_at"], updated["updated_at"]);
    let after = count(ok_json(call(&app, Method::GET, "/admin/audit?limit=200", &boss.access_token, None).await).await);
    assert_eq!(after, before);

    // Conflicts and invalid fields.
    assert_problem(patch(json!({"username": "DAVE"})).await, StatusCode::CONFLICT, "conflict").await;
    assert_problem(patch(json!({"email": "dave@example.com"})).await, StatusCode::CONFLICT, "conflict").await;
    // Every bad field at once.
    let all = json!({"username": "x", "email": "nope", "roles": ["bad role"], "add_roles": [""]});
    let problem = assert_problem(patch(all).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["username", "email", "roles", "add_roles"]);
    assert!(problem.to_string().contains("`bad role`"), "the bad name is named: {problem}");
    for (body, field) in [
        (json!({"add_roles": ["x"], "remove_roles": ["x"]}), "remove_roles"),
        (json!({"username": "x"}), "username"),
        (json!({"email": "not an address"}), "email"),
        (json!({"add_roles": ["has space"]}), "add_roles"),
        (json!({"roles": (0..33).map(|i| format!("r{i}")).collect::<Vec<_>>()}), "roles"),
        (json!({"disabled": "yes"}), "disabled"),
        (json!({"is_admin": true}), "is_admin"),
    ] {
        let problem =
            assert_problem(patch(body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&problem), [field], "{body}");
    }

    // Disabling ends every session at once: its tokens are refused, refresh fails, and
    // a correct password gets 403 account_disabled.
    let t = app.login("Caroline").await;
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::OK);
    let updated = ok_json(patch(json!({"disabled": true})).await).await;
    assert_eq!(updated["disabled"], true);
    assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    let r = app.token("Caroline", PASSWORD).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "account_disabled");
    ok_json(patch(json!({"disabled": false})).await).await;
    app.login("Caroline").await;

    // No admin locks themself out here.
    let own = format!("/admin/users/{boss_id}");
    for (body, field) in [(json!({"disabled": true}), "disabled"), (json!({"remove_roles": ["admin"]}), "roles")] {
        let r = call(&app, Method::PATCH, &own, &boss.access_token, Some(body)).await;
        let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&problem), [field]);
    }
    let r = call(&app, Method::DELETE, &own, &boss.access_token, None).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // Unknown and malformed ids.
    for missing in ["0190b7a0-0000-7000-8000-000000000000", "nope", "%00"] {
        let r =
            call(&app, Method::PATCH, &format!("/admin/users/{missing}"), &boss.access_token, Some(json!({}))).await;
        assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn an_admin_ends_sessions_and_deletes_users() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let erin = app.create_user("erin").await;
    let id = erin["id"].as_str().unwrap();
    let (one, two) = (app.login("erin").await, app.login("erin").await);
    let sessions_path = format!("/admin/users/{id}/sessions");
    let sessions = ok_json(call(&app, Method::GET, &sessions_path, &boss.access_token, None).await).await;
    let listed = sessions["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["client_id"] == "latch" && s["ip"] == "127.0.0.1"));

    // One session.
    let sid = jwt_parts(&one.access_token).1["sid"].as_str().unwrap().to_owned();
    let r = call(&app, Method::DELETE, &format!("{sessions_path}/{sid}"), &boss.access_token, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&one.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&two.access_token).await, StatusCode::OK);
    let r = call(&app, Method::DELETE, &format!("{sessions_path}/{sid}"), &boss.access_token, None).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // A session of another user is not found under this one.
    let boss_sid = jwt_parts(&boss.access_token).1["sid"].as_str().unwrap().to_owned();
    let r = call(&app, Method::DELETE, &format!("{sessions_path}/{boss_sid}"), &boss.access_token, None).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.me_status(&boss.access_token).await, StatusCode::OK);

    // All of them.
    let r = call(&app, Method::DELETE, &sessions_path, &boss.access_token, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&two.access_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&two.refresh_token).await.status(), StatusCode::BAD_REQUEST);
    let sessions = ok_json(call(&app, Method::GET, &sessions_path, &boss.access_token, None).await).await;
    assert_eq!(sessions["sessions"], json!([]));

    // Deletion.
    let three = app.login("erin").await;
    let r = call(&app, Method::DELETE, &format!("/admin/users/{id}"), &boss.access_token, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&three.access_token).await, StatusCode::UNAUTHORIZED);
    for (method, path) in [
        (Method::GET, format!("/admin/users/{id}")),
        (Method::DELETE, format!("/admin/users/{id}")),
        (Method::GET, sessions_path.clone()),
        (Method::DELETE, sessions_path.clone()),
    ] {
        assert_problem(call(&app, method, &path, &boss.access_token, None).await, StatusCode::NOT_FOUND, "not_found")
            .await;
    }
    let r = app.token("erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn an_admin_manages_the_client_registry() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let t = app.login("boss").await;
    let r = call(
        &app,
        Method::POST,
        "/admin/clients",
        &boss.access_token,
        Some(json!({"name": "Backend", "confidential": true, "origins": ["https://App.example"], "scopes": ["openid", "email"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    assert_eq!(created["origins"], json!(["https://app.example"]));
    assert_eq!(created["scopes"], json!(["openid", "email"]));
    let introspect = |secret: String| {
        let request = app.client.post(app.url("/introspect")).basic_auth(id, Some(secret));
        let token = t.access_token.clone();
        async move { request.form(&[("token", token)]).send().await.unwrap().status() }
    };
    // The instance that registered it knows it from the answer on.
    assert_eq!(introspect(secret.to_owned()).await, StatusCode::OK);

    let list = ok_json(call(&app, Method::GET, "/admin/clients", &boss.access_token, None).await).await;
    assert!(
        list["clients"].as_array().unwrap().iter().any(|c| c["client_id"] == id && c.get("client_secret").is_none())
    );
    let path = format!("/admin/clients/{id}");
    let one = ok_json(call(&app, Method::GET, &path, &boss.access_token, None).await).await;
    assert_eq!((one["name"].clone(), one["confidential"].clone()), (json!("Backend"), json!(true)));
    let changed = ok_json(
        call(&app, Method::PATCH, &path, &boss.access_token, Some(json!({"name": "Backend 2", "first_party": true})))
            .await,
    )
    .await;
    assert_eq!((changed["name"].clone(), changed["first_party"].clone()), (json!("Backend 2"), json!(true)));
    for (body, field) in [
        (json!({"redirect_uris": ["http://app.example/cb"]}), "redirect_uris"),
        (json!({"origins": ["not an origin"]}), "origins"),
        (json!({"scopes": ["two words"]}), "scopes"),
        (json!({"scopes": ["latch:other"]}), "scopes"),
        (json!({"scopes": [" latch:admin"]}), "scopes"),
        (json!({"name": ""}), "name"),
        (json!({"confidential": false}), "confidential"),
    ] {
        let r = call(&app, Method::PATCH, &path, &boss.access_token, Some(body.clone())).await;
        let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&problem), [field], "{body}");
    }
    let r = call(&app, Method::POST, "/admin/clients", &boss.access_token, Some(json!({"confidential": true}))).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["name"]);

    // A new secret: the old one stops working.
    let rotated = ok_json(call(&app, Method::POST, &format!("{path}/secret"), &boss.access_token, None).await).await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(introspect(secret.to_owned()).await, StatusCode::UNAUTHORIZED, "the old secret dies with the answer");
    assert_eq!(introspect(new_secret).await, StatusCode::OK);

    // A public client has no secret.
    let r = call(&app, Method::POST, "/admin/clients", &boss.access_token, Some(json!({"name": "SPA"}))).await;
    let spa: Value = r.json().await.unwrap();
    assert!(spa.get("client_secret").is_none());
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{}/secret", spa["client_id"].as_str().unwrap()),
        &boss.access_token,
        None,
    )
    .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let r = call(&app, Method::DELETE, &path, &boss.access_token, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE, Method::PATCH] {
        let r = call(&app, method, &path, &boss.access_token, Some(json!({}))).await;
        assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn concurrent_changes_never_undo_each_other() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let kim = app.create_user("kim").await;
    let path = format!("/admin/users/{}", kim["id"].as_str().unwrap());
    app.run_cli(&["user", "roles", "kim", "--add", "admin"]);

    // Each change is decided on the roles as they are when it is written.
    let patches = [
        json!({"remove_roles": ["admin"]}),
        json!({"add_roles": ["ra"]}),
        json!({"add_roles": ["rb"]}),
        json!({"add_roles": ["rc"]}),
        json!({"disabled": true}),
        json!({"disabled": true}),
    ];
    let mut set = tokio::task::JoinSet::new();
    for patch in &patches {
        let request = app.client.patch(app.url(&path)).bearer_auth(&boss.access_token).json(patch);
        set.spawn(async move { request.send().await.unwrap() });
    }
    let answers = set.join_all().await;
    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    let kim = ok_json(call(&app, Method::GET, &path, &boss.access_token, None).await).await;
    assert_eq!(kim["roles"], json!(["ra", "rb", "rc"]));
    assert_eq!(kim["disabled"], true);
    let events = ok_json(
        call(&app, Method::GET, "/admin/audit?type=roles_changed,user_disabled", &boss.access_token, None).await,
    )
    .await;
    let by_admin: Vec<&Value> =
        events["events"].as_array().unwrap().iter().filter(|e| e["actor"]["type"] == "admin").collect();
    assert_eq!(by_admin.len(), 5, "one event per change that happened: {events}");

    // A new client secret is never undone by a change of settings.
    let r = call(
        &app,
        Method::POST,
        "/admin/clients",
        &boss.access_token,
        Some(json!({"name": "c", "confidential": true})),
    )
    .await;
    let created: Value = r.json().await.unwrap();
    let client_path = format!("/admin/clients/{}", created["client_id"].as_str().unwrap());
    let secret_path = format!("{client_path}/secret");
    let (rotated, renamed) = tokio::join!(
        call(&app, Method::POST, &secret_path, &boss.access_token, None),
        call(&app, Method::PATCH, &client_path, &boss.access_token, Some(json!({"name": "renamed"}))),
    );
    assert_eq!((rotated.status(), renamed.status()), (StatusCode::OK, StatusCode::OK));
    let secret = rotated.json::<Value>().await.unwrap()["client_secret"].as_str().unwrap().to_owned();
    let t = app.login("boss").await;
    let introspect = |secret: String| {
        let request =
            app.client.post(app.url("/introspect")).basic_auth(created["client_id"].as_str().unwrap(), Some(secret));
        let token = t.access_token.clone();
        async move { request.form(&[("token", token)]).send().await.unwrap().status() }
    };
    assert_eq!(introspect(secret.clone()).await, StatusCode::OK, "the new secret works from the answer on");
    // Changes of different settings at once both stay.
    let (one, two) = tokio::join!(
        call(&app, Method::PATCH, &client_path, &boss.access_token, Some(json!({"name": "both"}))),
        call(&app, Method::PATCH, &client_path, &boss.access_token, Some(json!({"first_party": true}))),
    );
    assert_eq!((one.status(), two.status()), (StatusCode::OK, StatusCode::OK));
    let now = ok_json(call(&app, Method::GET, &client_path, &boss.access_token, None).await).await;
    assert_eq!((now["name"].clone(), now["first_party"].clone()), (json!("both"), json!(true)));
    let old = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(introspect(old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn odd_names_ids_and_roles_are_found_exactly() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let hexname = "deadbeefdeadbeefdeadbeefdeadbeef";
    app.create_user(hexname).await;
    app.create_user("cara").await;
    app.run_cli(&["user", "roles", "cara", "--add", "Admin"]);
    let names = |page: Value| -> Vec<String> {
        page["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
    };
    let get = |q: String| {
        let request = app.client.get(app.url(&format!("/admin/users{q}"))).bearer_auth(&boss.access_token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(names(ok_json(get(format!("?q={hexname}")).await).await), [hexname], "32 hex digits are a name");
    assert_eq!(names(ok_json(get("?role=Admin".into()).await).await), ["cara"], "roles compare exactly");
    assert_eq!(names(ok_json(get("?role=admin".into()).await).await), ["boss"]);
    assert!(names(ok_json(get("?role=ADMIN".into()).await).await).is_empty());
    // A client id that is no client's (a NUL included) is not found.
    for id in ["%00", "a%00b", "no-such-client"] {
        let r = call(&app, Method::DELETE, &format!("/admin/clients/{id}"), &boss.access_token, None).await;
        assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn two_admins_demoting_or_disabling_each_other_leave_one() {
    let app = spawn_app().await;
    let (a, b) = (admin(&app, "ann").await, admin(&app, "ben").await);
    let id = |t: &Tokens| jwt_parts(&t.access_token).1["sub"].as_str().unwrap().to_owned();
    let (ann_id, ben_id) = (id(&a), id(&b));
    let enabled_admins = || {
        let out = app.cli().args(["user", "list", "--json"]).output().unwrap();
        let users: Vec<Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        users.iter().filter(|u| u["admin"] == true && u["disabled"] == false).count()
    };
    for body in [json!({"remove_roles": ["admin"]}), json!({"disabled": true}), json!({"roles": ["x"]})] {
        for _ in 0..3 {
            let (a, b) = (app.login("ann").await, app.login("ben").await);
            let change = |token: &str, target: &str| {
                let request = app.client.patch(app.url(&format!("/admin/users/{target}"))).bearer_auth(token);
                let request = request.json(&body);
                async move { request.send().await.unwrap().status() }
            };
            let (one, two) = tokio::join!(change(&a.access_token, &ben_id), change(&b.access_token, &ann_id));
            // One wins; the other is refused, or finds itself signed out (disabled) or no
            // longer an admin first.
            assert!([one, two].contains(&StatusCode::OK), "{body}: {one} {two}");
            assert!(
                [one, two].iter().any(|s| [
                    StatusCode::UNPROCESSABLE_ENTITY,
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN
                ]
                .contains(s)),
                "{body}: {one} {two}"
            );
            assert_eq!(enabled_admins(), 1, "{body}: one admin is left");
            for name in ["ann", "ben"] {
                app.run_cli(&["user", "enable", name]);
                app.run_cli(&["user", "roles", name, "--add", "admin"]);
            }
        }
    }
    let _ = (a, b);
}

#[tokio::test]
async fn an_admin_ends_sessions_while_their_user_refreshes() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let user = app.create_user("rita").await;
    let path = format!("/admin/users/{}", user["id"].as_str().unwrap());
    // Each admin change races a refresh of the user's token: neither may fail with a
    // 5xx (on PostgreSQL, locks taken in another order would deadlock), and the admin's
    // change always takes effect.
    for round in 0..6 {
        let t = app.login("rita").await;
        let admin_call = match round % 3 {
            0 => app.client.delete(app.url(&format!("{path}/sessions"))),
            _ => app.client.patch(app.url(&path)).json(&json!({"disabled": true})),
        }
        .bearer_auth(&boss.access_token);
        let (admin_answer, refreshed) = tokio::join!(admin_call.send(), app.refresh(&t.refresh_token));
        let admin_answer = admin_answer.unwrap();
        assert!(admin_answer.status().is_success(), "round {round}: {}", admin_answer.status());
        assert!(!refreshed.status().is_server_error(), "round {round}: {}", refreshed.status());
        assert_eq!(app.me_status(&t.access_token).await, StatusCode::UNAUTHORIZED, "round {round}");
        let sessions =
            ok_json(call(&app, Method::GET, &format!("{path}/sessions"), &boss.access_token, None).await).await;
        assert_eq!(sessions["sessions"], json!([]), "round {round}");
        app.run_cli(&["user", "enable", "rita"]);
    }
}
