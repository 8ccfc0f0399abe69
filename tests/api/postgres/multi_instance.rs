//! Several `latch serve` processes on one PostgreSQL database behave as one: tokens
//! work everywhere, revocations reach every instance within a second, refresh races
//! have one winner, limits and keys are shared — also behind a real load balancer.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

/// One `latch serve` process.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn latch(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn").env("LATCH_DATABASE_URL", database_url).env("LATCH_PUBLIC_URL", "http://latch.test");
    cmd
}

fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Instance {
    let mut cmd = latch(database_url);
    cmd.envs(extra_env.iter().copied()).args(["serve", "--listen", "127.0.0.1:0"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Instance { child, base: base.to_owned() }
}

/// Three instances on a fresh database, started one after another (the first creates
/// the schema and the signing key).
async fn cluster(db: &TestDatabase, extra_env: &[(&str, &str)]) -> Vec<Instance> {
    (0..3).map(|_| start(&db.url, extra_env)).collect()
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        Self { http: reqwest::Client::new() }
    }

    async fn register(&self, base: &str, username: &str) {
        let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
        let r = self.http.post(format!("{base}/users")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    async fn login(&self, base: &str, username: &str) -> Tokens {
        let form = [("username", username), ("password", PASSWORD)];
        let r = self.http.post(format!("{base}/token")).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn me(&self, base: &str, token: &str) -> StatusCode {
        self.http.get(format!("{base}/users/me")).bearer_auth(token).send().await.unwrap().status()
    }

    async fn refresh(&self, base: &str, token: &str) -> StatusCode {
        let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
        self.http.post(format!("{base}/token")).form(&form).send().await.unwrap().status()
    }
}

/// How long until every instance refuses `token`; panics past 1 s.
async fn refused_everywhere_within_a_second(client: &Client, nodes: &[Instance], token: &str) -> Duration {
    let start = Instant::now();
    for node in nodes {
        loop {
            if client.me(&node.base, token).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(1), "{} still accepts the token", node.base);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    start.elapsed()
}

#[tokio::test]
async fn a_token_from_one_instance_works_on_all_and_revocations_reach_all() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "alice").await;

    // Issued by one, accepted by all.
    let t = client.login(&nodes[1].base, "alice").await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &t.access_token).await, StatusCode::OK);
    }

    // Logout on one.
    let r = client.http.post(format!("{}/logout", nodes[2].base)).bearer_auth(&t.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let delay = refused_everywhere_within_a_second(&client, &nodes, &t.access_token).await;
    eprintln!("cross-instance logout delay: {delay:?}");

    // /revoke on one.
    let t = client.login(&nodes[0].base, "alice").await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &t.access_token).await, StatusCode::OK);
    }
    client.http.post(format!("{}/revoke", nodes[1].base)).form(&[("token", &t.refresh_token)]).send().await.unwrap();
    refused_everywhere_within_a_second(&client, &nodes, &t.access_token).await;

    // A password change on one ends the other sessions everywhere.
    let keep = client.login(&nodes[0].base, "alice").await;
    let other = client.login(&nodes[1].base, "alice").await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &other.access_token).await, StatusCode::OK);
    }
    let r = client
        .http
        .post(format!("{}/users/me/password", nodes[2].base))
        .bearer_auth(&keep.access_token)
        .json(&json!({"current_password": PASSWORD, "new_password": "another good secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    refused_everywhere_within_a_second(&client, &nodes, &other.access_token).await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &keep.access_token).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_admin_disabling_a_user_ends_their_sessions_on_every_instance() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "root").await;
    client.register(&nodes[0].base, "victim").await;
    let out = latch(&db.url).args(["user", "roles", "root", "--add", "admin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin = client.login(&nodes[1].base, "root").await;
    let t = client.login(&nodes[2].base, "victim").await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &t.access_token).await, StatusCode::OK);
    }
    let r = client.http.get(format!("{}/admin/users?q=victim", nodes[0].base)).bearer_auth(&admin.access_token);
    let page: Value = r.send().await.unwrap().json().await.unwrap();
    let id = page["users"][0]["id"].as_str().unwrap();
    let r = client.http.patch(format!("{}/admin/users/{id}", nodes[0].base)).bearer_auth(&admin.access_token);
    let r = r.json(&json!({"disabled": true})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let delay = refused_everywhere_within_a_second(&client, &nodes, &t.access_token).await;
    eprintln!("cross-instance disable delay: {delay:?}");
    assert_eq!(client.refresh(&nodes[1].base, &t.refresh_token).await, StatusCode::BAD_REQUEST);

    // Taking the admin role away closes the admin API on every instance within a second.
    let out = latch(&db.url).args(["user", "roles", "root", "--remove", "admin"]).output().unwrap();
    assert!(out.status.success());
    let start = Instant::now();
    for node in &nodes {
        loop {
            let r = client.http.get(format!("{}/admin/users", node.base)).bearer_auth(&admin.access_token);
            if r.send().await.unwrap().status() == StatusCode::FORBIDDEN {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(1), "{} still lets the old admin in", node.base);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_password_reset_on_one_instance_ends_sessions_on_all() {
    let db = TestDatabase::create().await;
    let mail = tempfile::tempdir().unwrap();
    let mailer = format!("file:{}", mail.path().display());
    let nodes = cluster(&db, &[("LATCH_MAILER", mailer.as_str())]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "bob").await;
    let t = client.login(&nodes[1].base, "bob").await;
    for node in &nodes {
        assert_eq!(client.me(&node.base, &t.access_token).await, StatusCode::OK);
    }
    let r =
        client.http.post(format!("{}/password-reset", nodes[2].base)).json(&json!({"email": "bob@example.com"})).send();
    assert_eq!(r.await.unwrap().status(), StatusCode::ACCEPTED);
    let reset = std::fs::read_dir(mail.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains("reset-password?token="))
        .expect("a reset email");
    let body = json!({"token": token_in(&reset), "new_password": "a new start here"});
    let r = client.http.post(format!("{}/password-reset/confirm", nodes[0].base)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    refused_everywhere_within_a_second(&client, &nodes, &t.access_token).await;
}

#[tokio::test]
async fn simultaneous_refreshes_on_two_instances_issue_one_pair() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "carol").await;
    for _ in 0..5 {
        let t = client.login(&nodes[0].base, "carol").await;
        let (a, b) = tokio::join!(
            client.refresh(&nodes[1].base, &t.refresh_token),
            client.refresh(&nodes[2].base, &t.refresh_token)
        );
        let wins = [a, b].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(wins, 1, "{a} {b}");
    }
}

#[tokio::test]
async fn failure_limits_are_shared() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "dave").await;
    for i in 0..10 {
        let form = [("username", "dave"), ("password", "wrong password!")];
        let r = client.http.post(format!("{}/token", nodes[i % 3].base)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    for node in &nodes {
        let form = [("username", "dave"), ("password", PASSWORD)];
        let r = client.http.post(format!("{}/token", node.base)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn a_key_rotation_reaches_every_instance_within_a_second() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "erin").await;
    let before = client.login(&nodes[0].base, "erin").await;
    let old_kid = jwt_parts(&before.access_token).0["kid"].as_str().unwrap().to_owned();
    let kid = async |base: &str| -> String {
        jwt_parts(&client.login(base, "erin").await.access_token).0["kid"].as_str().unwrap().to_owned()
    };
    let jwks_kids = async |base: &str| -> Vec<String> {
        let jwks: Value =
            client.http.get(format!("{base}/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };

    // Staged: every instance publishes the new key within a second, keeps signing with
    // the old one, and switches when the delay is over.
    let started = Instant::now();
    let out = latch(&db.url).env("LATCH_KEY_ROTATION_DELAY", "5s").args(["keys", "rotate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated = Instant::now();
    let mut new_kid = String::new();
    for node in &nodes {
        loop {
            let kids = jwks_kids(&node.base).await;
            if kids.len() == 2 {
                new_kid = kids.into_iter().find(|k| *k != old_kid).unwrap();
                break;
            }
            assert!(rotated.elapsed() < Duration::from_secs(1), "{} does not publish the new key", node.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4), "too slow to observe the delay");
    for node in &nodes {
        assert_eq!(kid(&node.base).await, old_kid, "{} signs with the new key before its time", node.base);
    }
    for node in &nodes {
        while kid(&node.base).await != new_kid {
            assert!(started.elapsed() < Duration::from_secs(8), "{} never signs with the new key", node.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_secs(4));
        assert_eq!(jwks_kids(&node.base).await, [new_kid.clone(), old_kid.clone()]);
        assert_eq!(client.me(&node.base, &before.access_token).await, StatusCode::OK, "old tokens stay valid");
    }

    // At once: every instance signs with the newest key within a second, publishes only
    // it, and refuses tokens of the others.
    let out = latch(&db.url).args(["keys", "rotate", "--now"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated = Instant::now();
    for node in &nodes {
        loop {
            let k = kid(&node.base).await;
            if k != old_kid && k != new_kid {
                assert_eq!(jwks_kids(&node.base).await, [k]);
                break;
            }
            assert!(rotated.elapsed() < Duration::from_secs(1), "{} still signs with the old key", node.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(client.me(&node.base, &before.access_token).await, StatusCode::UNAUTHORIZED);
    }
}

/// The example of docs/deploy.md: nginx spreading requests over three instances.
#[tokio::test]
async fn behind_nginx_the_instances_act_as_one() {
    let Some(nginx) = which("nginx") else {
        assert!(std::env::var_os("CI").is_none(), "CI must have nginx (apt-get install nginx-light)");
        eprintln!("nginx test NOT run: install nginx (apt-get install nginx-light)");
        return;
    };
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[("LATCH_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let upstreams: String =
        nodes.iter().map(|n| format!("        server {};\n", n.base.trim_start_matches("http://"))).collect();
    let conf = include_str!("../../../docs/nginx.conf")
        .replace(
            "        server 127.0.0.1:8081;\n        server 127.0.0.1:8082;\n        server 127.0.0.1:8083;\n",
            &upstreams,
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let conf = format!(
        "daemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n\
         client_body_temp_path {dir}; proxy_temp_path {dir};\n{conf}\n}}\n",
        dir = dir.path().display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let _proxy = Nginx::start(&nginx, dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let mut up = false;
    for _ in 0..50 {
        if client.http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not start");

    client.register(&base, "fred").await;
    let t = client.login(&base, "fred").await;
    for _ in 0..6 {
        assert_eq!(client.me(&base, &t.access_token).await, StatusCode::OK);
    }
    let sessions: Vec<Value> = client
        .http
        .get(format!("{base}/users/me/sessions"))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    let r = client.http.post(format!("{base}/logout")).bearer_auth(&t.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Other instances learn of the logout through NOTIFY: within a second, six
    // requests in a row (over every instance) are refused.
    let logged_out = Instant::now();
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 6 {
        if client.me(&base, &t.access_token).await == StatusCode::UNAUTHORIZED {
            refused_in_a_row += 1;
        } else {
            refused_in_a_row = 0;
            assert!(logged_out.elapsed() < Duration::from_secs(1), "an instance still accepts the token");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// nginx with its own prefix directory, stopped (workers included) when dropped,
/// even by a failing assertion. Killing the master alone would leave its workers
/// serving, and holding the test's output open.
struct Nginx {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    master: Child,
}

impl Nginx {
    fn start(bin: &std::path::Path, dir: &std::path::Path) -> Nginx {
        let master = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Nginx { bin: bin.to_owned(), dir: dir.to_owned(), master }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let stopped = Command::new(&self.bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = self.master.kill();
        }
        let _ = self.master.wait();
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[tokio::test]
async fn introspection_on_every_instance_sees_a_logout_within_a_second() {
    let db = TestDatabase::create().await;
    let nodes = cluster(&db, &[]).await;
    let client = Client::new();
    client.register(&nodes[0].base, "alice").await;
    let out = latch(&db.url).args(["client", "create", "--json", "--name", "rs", "--confidential"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (rs["client_id"].as_str().unwrap(), rs["client_secret"].as_str().unwrap());
    let active = |base: String, token: String| {
        let http = client.http.clone();
        async move {
            let r = http.post(format!("{base}/introspect")).basic_auth(id, Some(secret)).form(&[("token", &token)]);
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.map(|v| v["active"] == true).unwrap_or(false))
        }
    };
    let t = client.login(&nodes[1].base, "alice").await;
    // The registration reaches every instance (NOTIFY), then the token is active on all.
    let deadline = Instant::now() + Duration::from_secs(1);
    for node in &nodes {
        while active(node.base.clone(), t.access_token.clone()).await != (StatusCode::OK, true) {
            assert!(Instant::now() < deadline, "{}: the client or token is unknown after 1 s", node.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let r = client.http.post(format!("{}/logout", nodes[2].base)).bearer_auth(&t.access_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let start = Instant::now();
    for node in &nodes {
        while active(node.base.clone(), t.access_token.clone()).await.1 {
            assert!(start.elapsed() < Duration::from_secs(1), "{} still says active after 1 s", node.base);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!("cross-instance introspection delay: {:?}", start.elapsed());
}
