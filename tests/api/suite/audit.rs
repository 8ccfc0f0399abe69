//! The audit log (SPEC §10): every event type with its actor, subject and context, no
//! secret in any event, an event only with its change (and no change without its
//! event), the user's own history, `latch audit`, and retention.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::*;

async fn admin(app: &TestApp, name: &str) -> Tokens {
    app.create_user(name).await;
    app.run_cli(&["user", "roles", name, "--add", "admin"]);
    app.login(name).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    let r = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every event of the log, newest first, through the admin API's pages.
async fn all_events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/audit?limit=200{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get(app, &path, token).await;
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return events,
        }
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Drives every kind of event through the API, the pages' services and the command
/// line, then checks each one's record.
#[tokio::test]
async fn every_event_type_is_recorded_with_its_context_and_no_secret() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    let boss_id = jwt_parts(&boss.access_token).1["sub"].as_str().unwrap().to_owned();
    let ua = "audit-test/1.0";
    let client = reqwest::Client::builder().user_agent(ua).build().unwrap();

    // registration, login (success and failure), logout.
    let body = json!({"username": "frank", "email": "frank@example.com", "password": PASSWORD});
    let frank: Value = client.post(app.url("/users")).json(&body).send().await.unwrap().json().await.unwrap();
    let frank_id = frank["id"].as_str().unwrap().to_owned();
    let form = |login: &str, password: &str| {
        [("grant_type", "password".to_owned()), ("username", login.to_owned()), ("password", password.to_owned())]
    };
    let pair: Tokens =
        client.post(app.url("/token")).form(&form("frank", PASSWORD)).send().await.unwrap().json().await.unwrap();
    for (login, password) in [("frank", "wrong password!"), ("nobody-at-all", "wrong password!")] {
        let r = client.post(app.url("/token")).form(&form(login, password)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = client.post(app.url("/logout")).bearer_auth(&pair.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // refresh-token reuse.
    let pair = app.login("frank").await;
    let refreshed = app.refresh(&pair.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(app.refresh(&pair.refresh_token).await.status(), StatusCode::BAD_REQUEST);

    // session ended by its user, password change, email change and verification.
    let keep = app.login("frank").await;
    let other = app.login("frank").await;
    let other_sid = jwt_parts(&other.access_token).1["sid"].as_str().unwrap().to_owned();
    let r = app.client.delete(app.url(&format!("/users/me/sessions/{other_sid}"))).bearer_auth(&keep.access_token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let new_password = "a much better secret";
    let r = app.client.post(app.url("/users/me/password")).bearer_auth(&keep.access_token);
    let r = r.json(&json!({"current_password": PASSWORD, "new_password": new_password})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.client.patch(app.url("/users/me")).bearer_auth(&keep.access_token);
    let r = r.json(&json!({"email": "frank@new.example", "current_password": new_password})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let verification = app.email_arriving("frank@new.example", "verify-email?token=").await;
    let verify_token = token_in(&verification);
    let r = app.post_json("/email-verification/confirm", &json!({"token": verify_token})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // password reset.
    let r = app.post_json("/password-reset", &json!({"email": "frank@new.example"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let reset = app.email_arriving("frank@new.example", "reset-password?token=").await;
    let reset_token = token_in(&reset);
    let r = app.post_json("/password-reset/confirm", &json!({"token": reset_token, "new_password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // over a limit: many refusals, recorded once.
    for _ in 0..14 {
        app.token("frank", "wrong password!").await;
    }

    // admin actions.
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/admin/users/{frank_id}")))
            .bearer_auth(&boss.access_token)
            .json(&body)
            .send()
    };
    assert_eq!(patch(json!({"add_roles": ["editor"]})).await.unwrap().status(), StatusCode::OK);
    assert_eq!(patch(json!({"disabled": true})).await.unwrap().status(), StatusCode::OK);
    assert_eq!(patch(json!({"disabled": false})).await.unwrap().status(), StatusCode::OK);
    assert_eq!(patch(json!({"username": "franky"})).await.unwrap().status(), StatusCode::OK);
    let r = app.client.post(app.url("/admin/clients")).bearer_auth(&boss.access_token);
    let created: Value =
        r.json(&json!({"name": "App", "confidential": true})).send().await.unwrap().json().await.unwrap();
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let client_secret = created["client_secret"].as_str().unwrap().to_owned();
    let client_path = format!("/admin/clients/{client_id}");
    let r = app.client.patch(app.url(&client_path)).bearer_auth(&boss.access_token).json(&json!({"name": "App 2"}));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);
    let r = app.client.post(app.url(&format!("{client_path}/secret"))).bearer_auth(&boss.access_token);
    let rotated: Value = r.send().await.unwrap().json().await.unwrap();
    let r = app.client.delete(app.url(&client_path)).bearer_auth(&boss.access_token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let r = app.client.delete(app.url(&format!("/admin/users/{frank_id}"))).bearer_auth(&boss.access_token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NO_CONTENT);

    // A user without the admin role knocking on the admin API, twice: recorded once.
    let intruder = app.login("boss").await;
    app.run_cli(&["user", "roles", "boss", "--remove", "admin"]);
    for _ in 0..2 {
        let r = app.client.get(app.url("/admin/users")).bearer_auth(&intruder.access_token);
        assert_eq!(r.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    app.run_cli(&["user", "roles", "boss", "--add", "admin"]);

    // The command line: key rotation and an import.
    app.run_cli(&["keys", "rotate"]);
    let import = app.dir.path().join("import.jsonl");
    let hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    std::fs::write(
        &import,
        format!("{}\n", json!({"username": "imp", "email": "imp@example.com", "password_hash": hash})),
    )
    .unwrap();
    app.run_cli(&["import", import.to_str().unwrap()]);

    let events = all_events(&app, &boss.access_token, "").await;
    let types: BTreeMap<&str, usize> = events.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e["type"].as_str().unwrap()).or_default() += 1;
        m
    });
    for kind in [
        "registration",
        "login",
        "logout",
        "refresh_token_reuse",
        "password_change",
        "password_reset",
        "email_change",
        "email_verification",
        "session_ended",
        "rate_limited",
        "user_updated",
        "roles_changed",
        "user_disabled",
        "user_enabled",
        "user_deleted",
        "users_imported",
        "client_created",
        "client_updated",
        "client_deleted",
        "client_secret_rotated",
        "key_rotation",
        "access_denied",
    ] {
        assert!(types.contains_key(kind), "no {kind} event: {types:?}");
    }
    assert_eq!(types["access_denied"], 1, "{types:?}");

    // Newest first, times in order.
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    let registration =
        of_type(&events, "registration").into_iter().find(|e| e["user_id"] == frank_id.as_str()).unwrap();
    assert_eq!(registration["actor"], json!({"type": "user", "id": frank_id}));
    assert_eq!((registration["ip"].clone(), registration["user_agent"].clone()), (json!("127.0.0.1"), json!(ua)));
    assert_eq!(registration["outcome"], "success");

    let logins = of_type(&events, "login");
    let failed: Vec<&&Value> = logins.iter().filter(|e| e["outcome"] == "failure").collect();
    assert!(
        failed.iter().any(|e| e["user_id"] == frank_id.as_str() && e["details"]["reason"] == "invalid_credentials")
    );
    assert!(failed.iter().any(|e| e["user_id"].is_null() && e["actor"] == json!({"type": "user", "id": null})));
    let success = logins.iter().find(|e| e["outcome"] == "success" && e["user_id"] == frank_id.as_str()).unwrap();
    assert!(
        success["session_id"].is_string()
            && success["client_id"] == "latch"
            && success["details"]["session"] == "token"
    );

    let reuse = of_type(&events, "refresh_token_reuse");
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0]["session_id"], jwt_parts(&pair.access_token).1["sid"]);
    assert_eq!(reuse[0]["outcome"], "failure");
    let ended = of_type(&events, "session_ended");
    assert!(ended.iter().any(|e| e["session_id"] == other_sid.as_str() && e["details"]["reason"] == "ended_by_user"));
    assert_eq!(of_type(&events, "rate_limited").len(), 1, "one record per account, address and minute");
    let email_change = of_type(&events, "email_change")[0];
    assert_eq!(email_change["details"]["email"], "frank@new.example");
    assert_eq!(of_type(&events, "email_verification")[0]["actor"]["id"], frank_id.as_str());
    assert_eq!(of_type(&events, "password_reset")[0]["details"]["sessions_ended"], 1);

    for kind in ["roles_changed", "user_disabled", "user_enabled", "user_updated", "user_deleted", "client_created"] {
        let e = of_type(&events, kind).into_iter().find(|e| e["actor"]["type"] == "admin").unwrap();
        assert_eq!(e["actor"], json!({"type": "admin", "id": boss_id}), "{kind}");
    }
    let granted = of_type(&events, "roles_changed").into_iter().find(|e| e["actor"]["type"] == "admin").unwrap();
    assert_eq!(granted["details"]["roles_added"], json!(["editor"]));
    assert_eq!(of_type(&events, "user_updated")[0]["details"]["username"], "franky");
    let rotation = of_type(&events, "key_rotation");
    assert!(rotation.iter().any(|e| e["details"]["reason"] == "first_key" && e["actor"]["type"] == "system"));
    assert!(rotation.iter().any(|e| e["details"]["reason"] == "rotate" && e["details"]["via"] == "cli"));
    assert_eq!(of_type(&events, "users_imported")[0]["details"]["users"], 1);

    // Filters by actor (an id or a name) and outcome; pages of a filtered list.
    let by_boss = all_events(&app, &boss.access_token, "&actor=boss").await;
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/admin/audit?limit=2&actor=boss".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get(&app, &path, &boss.access_token).await;
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, by_boss);
    assert!(by_boss.len() >= 9 && by_boss.iter().all(|e| e["actor"]["id"] == boss_id.as_str()), "{by_boss:?}");
    let failures = all_events(&app, &boss.access_token, "&outcome=failure").await;
    assert!(failures.len() >= 4 && failures.iter().all(|e| e["outcome"] == "failure"));
    assert_eq!(of_type(&events, "user_deleted")[0]["details"]["username"], "franky");
    assert_eq!(of_type(&events, "client_updated")[0]["details"]["fields"], json!(["name"]));

    // The events of a deleted account stay, readable by its id.
    let franks = all_events(&app, &boss.access_token, &format!("&user={frank_id}")).await;
    assert!(franks.len() > 10 && franks.iter().all(|e| e["user_id"] == frank_id.as_str()));
    let only = all_events(&app, &boss.access_token, "&type=logout,password_change&type=registration").await;
    assert!(only.iter().all(|e| ["logout", "password_change", "registration"].contains(&e["type"].as_str().unwrap())));
    assert!(only.len() >= 4);

    // No secret anywhere: passwords, tokens, hashes, links.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        PASSWORD,
        new_password,
        "wrong password!",
        &pair.refresh_token,
        &pair.access_token,
        &keep.access_token,
        &verify_token,
        &reset_token,
        &client_secret,
        rotated["client_secret"].as_str().unwrap(),
        hash,
        "$argon2",
        "token=",
    ] {
        assert!(!text.contains(secret), "{secret} is in the audit log");
    }
}

#[tokio::test]
async fn no_event_without_its_change_and_no_change_without_its_event() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    app.create_user("gina").await;
    let t = app.login("gina").await;
    let other = app.login("gina").await;
    let db = Db::connect(&app).await;

    // The event cannot be written: the change rolls back with it.
    db.refuse_inserts_of("password_change").await;
    let r = app.client.post(app.url("/users/me/password")).bearer_auth(&t.access_token);
    let r = r.json(&json!({"current_password": PASSWORD, "new_password": "never stored here"})).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    app.login("gina").await;
    assert_eq!(app.me_status(&other.access_token).await, StatusCode::OK, "no session ended either");
    db.allow_inserts().await;

    // The change cannot be made: no event of it.
    db.refuse_role_changes().await;
    let gina = get(&app, "/users/me", &t.access_token).await;
    let r = app.client.patch(app.url(&format!("/admin/users/{}", gina["id"].as_str().unwrap())));
    let r = r.bearer_auth(&boss.access_token).json(&json!({"add_roles": ["editor"]})).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    db.allow_role_changes().await;

    let events = all_events(&app, &boss.access_token, "").await;
    assert!(of_type(&events, "password_change").is_empty(), "{events:?}");
    assert!(of_type(&events, "roles_changed").iter().all(|e| e["actor"]["type"] == "system"), "only the CLI's");
    assert_eq!(get(&app, "/users/me", &t.access_token).await["roles"], json!([]));
}

/// A direct connection to the test server's database, to make a write fail on purpose.
struct Db {
    postgres: bool,
    url: String,
}

impl Db {
    async fn connect(app: &TestApp) -> Db {
        match &app.config.database_url {
            latch::config::DatabaseUrl::Sqlite(path) => {
                Db { postgres: false, url: format!("sqlite://{}", path.display()) }
            }
            latch::config::DatabaseUrl::Postgres(url) => {
                use secrecy::ExposeSecret as _;
                Db { postgres: true, url: url.expose_secret().to_owned() }
            }
        }
    }

    async fn run(&self, statements: &[&str]) {
        use sqlx::Connection as _;
        if self.postgres {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(s).execute(&mut c).await.unwrap();
            }
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(s).execute(&mut c).await.unwrap();
            }
        }
    }

    async fn refuse_inserts_of(&self, kind: &str) {
        if self.postgres {
            let function = format!(
                "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN
                   IF NEW.type = '{kind}' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW;
                 END $$ LANGUAGE plpgsql"
            );
            self.run(&[
                &function,
                "CREATE TRIGGER refuse_event BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_event()",
            ])
            .await;
        } else {
            let trigger = format!(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON audit_events WHEN NEW.type = '{kind}'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            );
            self.run(&[&trigger]).await;
        }
    }

    async fn allow_inserts(&self) {
        if self.postgres {
            self.run(&["DROP TRIGGER refuse_event ON audit_events", "DROP FUNCTION refuse_event"]).await;
        } else {
            self.run(&["DROP TRIGGER refuse_event"]).await;
        }
    }

    async fn refuse_role_changes(&self) {
        if self.postgres {
            self.run(&[
                "CREATE FUNCTION refuse_roles() RETURNS trigger AS $$ BEGIN
                   IF NEW.roles <> OLD.roles THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW;
                 END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_roles BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse_roles()",
            ])
            .await;
        } else {
            self.run(&["CREATE TRIGGER refuse_roles BEFORE UPDATE ON users WHEN NEW.roles <> OLD.roles
                        BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"])
                .await;
        }
    }

    async fn allow_role_changes(&self) {
        if self.postgres {
            self.run(&["DROP TRIGGER refuse_roles ON users", "DROP FUNCTION refuse_roles"]).await;
        } else {
            self.run(&["DROP TRIGGER refuse_roles"]).await;
        }
    }
}

#[tokio::test]
async fn a_user_reads_their_own_history_only() {
    let app = spawn_app().await;
    app.create_user("hana").await;
    app.create_user("ivan").await;
    let hana = app.login("hana").await;
    app.token("hana", "wrong password!").await;
    app.login("ivan").await;
    let hana_id = jwt_parts(&hana.access_token).1["sub"].as_str().unwrap().to_owned();

    let page = get(&app, "/users/me/events", &hana.access_token).await;
    let events = page["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["user_id"] == hana_id.as_str()), "{page}");
    let kinds: Vec<(&str, &str)> =
        events.iter().map(|e| (e["type"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("login", "failure"), ("login", "success"), ("registration", "success")]);

    let first = get(&app, "/users/me/events?limit=1", &hana.access_token).await;
    assert_eq!(first["events"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(&app, &format!("/users/me/events?limit=1&cursor={cursor}"), &hana.access_token).await;
    assert_eq!(second["events"][0]["outcome"], "success");
    let logins = get(&app, "/users/me/events?type=login&since=2000-01-01T00:00:00Z", &hana.access_token).await;
    assert_eq!(logins["events"].as_array().unwrap().len(), 2);

    let r = app.client.get(app.url("/users/me/events")).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for (query, status) in [
        ("?type=nope", StatusCode::UNPROCESSABLE_ENTITY),
        ("?since=yesterday", StatusCode::UNPROCESSABLE_ENTITY),
        ("?cursor=abc", StatusCode::BAD_REQUEST),
        ("?user=someone", StatusCode::BAD_REQUEST),
    ] {
        let r = app.client.get(app.url(&format!("/users/me/events{query}"))).bearer_auth(&hana.access_token);
        assert_eq!(r.send().await.unwrap().status(), status, "{query}");
    }
}

#[tokio::test]
async fn latch_audit_prints_a_table_or_json_lines() {
    let app = spawn_app().await;
    app.create_user("jane").await;
    app.login("jane").await;
    app.token("jane", "wrong password!").await;

    let out = app.cli().args(["audit", "--user", "jane", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["login", "login", "registration"]);

    let out = app.cli().args(["audit", "--type", "login", "--since", "1h", "--json"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let out = app.cli().args(["audit", "--since", "2099-01-01T00:00:00Z", "--json"]).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty());

    let out = app.cli().args(["audit", "--limit", "2"]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME", "TYPE", "OUTCOME", "ACTOR", "USER", "IP", "DETAILS"]);
    assert_eq!(table.lines().count(), 3, "{table}");

    for args in [&["audit", "--type", "nope"][..], &["audit", "--since", "yesterday"], &["audit", "--user", "nobody"]] {
        let out = app.cli().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

#[tokio::test]
async fn events_older_than_the_retention_are_deleted() {
    let app = spawn_app_with(|c| c.audit_retention = std::time::Duration::from_secs(2)).await;
    let boss = admin(&app, "boss").await;
    let before = all_events(&app, &boss.access_token, "").await;
    assert!(!before.is_empty());
    app.clock.advance(std::time::Duration::from_secs(3));
    // Pruning runs at start and then every few minutes.
    let app = app.restart().await;
    let boss = app.login("boss").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let after = all_events(&app, &boss.access_token, "").await;
        if after.iter().all(|e| !before.iter().any(|b| b["id"] == e["id"])) {
            assert_eq!(of_type(&after, "login").len(), 1, "the new login stays: {after:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "old events are still there: {after:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn admin_reads_of_the_log_are_bounded_and_checked() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss").await;
    for (query, status, field) in [
        ("?limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("?limit=500", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("?user=nobody", StatusCode::UNPROCESSABLE_ENTITY, "user"),
        ("?type=login,nope", StatusCode::UNPROCESSABLE_ENTITY, "type"),
        ("?until=tomorrow", StatusCode::UNPROCESSABLE_ENTITY, "until"),
        ("?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", StatusCode::BAD_REQUEST, "cursor"),
        ("?since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z", StatusCode::BAD_REQUEST, "since"),
        ("?q=x", StatusCode::BAD_REQUEST, "q"),
    ] {
        let r =
            app.client.request(Method::GET, app.url(&format!("/admin/audit{query}"))).bearer_auth(&boss.access_token);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), status, "{query}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem_fields(&problem), [field], "{query}");
    }
    let page = get(&app, "/admin/audit?until=2000-01-01T00:00:00Z", &boss.access_token).await;
    assert_eq!(page["events"], json!([]));
}

#[tokio::test]
async fn what_an_attacker_repeats_is_recorded_once_and_a_user_sees_no_admins_details() {
    let app = spawn_app_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let boss = admin(&app, "boss").await;
    let lena = app.create_user("lena").await;
    let lena_id = lena["id"].as_str().unwrap().to_owned();
    // Refusals from one IPv6 /64 count as one address, for the limits and the log.
    for i in 0..25 {
        let ip = format!("2001:db8:1:2::{:x}", i + 1);
        let r = app.client.post(app.url("/token")).header("x-forwarded-for", ip);
        r.form(&[("username", "lena"), ("password", "wrong password!")]).send().await.unwrap();
    }
    let events = all_events(&app, &boss.access_token, "&type=rate_limited").await;
    assert_eq!(events.len(), 1, "{events:?}");

    // The right password of a disabled account, again and again: one record.
    let path = format!("/admin/users/{lena_id}");
    let r = app.client.patch(app.url(&path)).bearer_auth(&boss.access_token);
    assert_eq!(r.json(&json!({"disabled": true})).send().await.unwrap().status(), StatusCode::OK);
    for _ in 0..5 {
        let r = app.token("lena", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let disabled = all_events(&app, &boss.access_token, "&type=login").await;
    let disabled: Vec<&Value> = disabled.iter().filter(|e| e["details"]["reason"] == "account_disabled").collect();
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    // Ending no session is still an admin action on the record.
    let r = app.client.delete(app.url(&format!("{path}/sessions"))).bearer_auth(&boss.access_token);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let ended = all_events(&app, &boss.access_token, "&type=session_ended").await;
    assert_eq!(ended[0]["details"]["sessions_ended"], 0);
    let r = app.client.patch(app.url(&path)).bearer_auth(&boss.access_token);
    assert_eq!(r.json(&json!({"disabled": false})).send().await.unwrap().status(), StatusCode::OK);

    // Lena's own history says an admin acted, not which one nor from where.
    let t = app.login("lena").await;
    let own = get(&app, "/users/me/events?type=user_disabled,user_enabled,session_ended", &t.access_token).await;
    let own = own["events"].as_array().unwrap();
    assert_eq!(own.len(), 3, "{own:?}");
    assert!(own.iter().all(|e| e["actor"] == json!({"type": "admin", "id": null}) && e["ip"].is_null()), "{own:?}");

    // A reused refresh token is recorded with the address that presented it.
    let pair = app.login("lena").await;
    assert_eq!(app.refresh(&pair.refresh_token).await.status(), StatusCode::OK);
    let r = app.client.post(app.url("/token")).header("x-forwarded-for", "203.0.113.9");
    r.form(&[("grant_type", "refresh_token"), ("refresh_token", pair.refresh_token.as_str())]).send().await.unwrap();
    let reuse = all_events(&app, &boss.access_token, "&type=refresh_token_reuse").await;
    assert_eq!(reuse[0]["ip"], "203.0.113.9");

    // Times no database stores are refused, not a 5xx.
    for query in ["?until=9999-12-31T23:59:59-01:00", "?since=0000-01-01T00:00:00%2B01:00"] {
        let r = app.client.get(app.url(&format!("/users/me/events{query}"))).bearer_auth(&t.access_token);
        let problem =
            assert_problem(r.send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&problem).len(), 1, "{query}");
    }
    let out = app.cli().args(["audit", "--since", "9999-12-31T23:59:59-23:59"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--since"));
}
