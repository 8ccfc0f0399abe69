//! Operations: the OpenAPI document and the Prometheus metrics.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

/// Every route the server serves, with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/users", &["post"]),
    ("/users/me", &["get", "patch", "delete"]),
    ("/users/me/password", &["post"]),
    ("/users/{id}", &["get"]),
    ("/token", &["post"]),
    ("/revoke", &["post"]),
    ("/logout", &["get", "post"]),
    ("/introspect", &["post"]),
    ("/userinfo", &["get", "post"]),
    ("/sessions", &["post", "delete"]),
    ("/users/me/sessions", &["get"]),
    ("/users/me/sessions/{id}", &["delete"]),
    ("/sessions/mfa", &["post"]),
    ("/users/me/mfa", &["get"]),
    ("/users/me/mfa/totp", &["post", "delete"]),
    ("/users/me/mfa/totp/confirm", &["post"]),
    ("/users/me/mfa/recovery-codes", &["post"]),
    ("/users/me/mfa/passkeys/options", &["post"]),
    ("/users/me/mfa/passkeys", &["post"]),
    ("/users/me/mfa/passkeys/{id}", &["patch", "delete"]),
    ("/passkeys/options", &["post"]),
    ("/sessions/passkey", &["post"]),
    ("/users/me/events", &["get"]),
    ("/admin/users", &["get"]),
    ("/admin/users/{id}", &["get", "patch", "delete"]),
    ("/admin/users/{id}/sessions", &["get", "delete"]),
    ("/admin/users/{id}/sessions/{sid}", &["delete"]),
    ("/admin/users/{id}/mfa", &["get", "delete"]),
    ("/admin/clients", &["get", "post"]),
    ("/admin/clients/{client_id}", &["get", "patch", "delete"]),
    ("/admin/clients/{client_id}/secret", &["post"]),
    ("/admin/audit", &["get"]),
    ("/email-verification", &["post"]),
    ("/email-verification/confirm", &["post"]),
    ("/password-reset", &["post"]),
    ("/password-reset/confirm", &["post"]),
    ("/.well-known/jwks.json", &["get"]),
    ("/.well-known/openid-configuration", &["get"]),
    ("/.well-known/oauth-authorization-server", &["get"]),
    ("/health", &["get"]),
    ("/ready", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn openapi(app: &TestApp) -> Value {
    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    r.json().await.unwrap()
}

async fn metrics(app: &TestApp) -> String {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    r.text().await.unwrap()
}

/// The value of one series (name with its labels, exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn openapi_json_is_openapi_3_1_and_describes_every_route() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "Latch");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"][0]["url"], app.base.as_str());
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is missing from the document"));
        for method in METHODS {
            assert_eq!(item.get(method).is_some(), methods.contains(&method), "{method} {path}");
        }
    }
    assert_eq!(paths.len(), ROUTES.len(), "documented paths: {:?}", paths.keys().collect::<Vec<_>>());
    // The audit log's types are listed, from the server's own list.
    let params = doc["paths"]["/admin/audit"]["get"]["parameters"].as_array().unwrap();
    let types = &params.iter().find(|p| p["name"] == "type").unwrap()["schema"]["items"]["enum"];
    assert!(types.as_array().is_some_and(|t| t.len() >= 22 && t.contains(&"access_denied".into())), "{types}");
}

#[tokio::test]
async fn openapi_json_names_bodies_errors_and_credentials() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(
        schemes["cookie"],
        json!({"type": "apiKey", "in": "cookie", "name": "latch_session",
        "description": schemes["cookie"]["description"]})
    );
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    // Form bodies where the contract allows them, JSON only elsewhere.
    for (path, method) in [("/users", "post"), ("/token", "post"), ("/revoke", "post"), ("/sessions", "post")] {
        let content = op(path, method)["requestBody"]["content"].as_object().unwrap().clone();
        let mut types: Vec<&String> = content.keys().collect();
        types.sort();
        assert_eq!(types, ["application/json", "application/x-www-form-urlencoded"], "{method} {path}");
    }
    let content = op("/users/me", "patch")["requestBody"]["content"].as_object().unwrap().clone();
    assert_eq!(content.keys().collect::<Vec<_>>(), ["application/json"]);
    // Success and error bodies: problem details, OAuth errors on the token endpoints.
    let created = &op("/users", "post")["responses"]["201"];
    assert_eq!(created["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/PrivateUser");
    assert!(created["headers"]["Location"].is_object());
    for status in ["400", "409", "413", "415", "422", "429", "503"] {
        let schema = &op("/users", "post")["responses"][status]["content"]["application/problem+json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/Problem", "POST /users {status}");
    }
    for status in ["400", "403", "429", "503"] {
        let schema = &op("/token", "post")["responses"][status]["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/OAuthError", "POST /token {status}");
    }
    let unauthorized = &op("/users/me", "get")["responses"]["401"];
    assert_eq!(unauthorized["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        op("/users/{id}", "get")["responses"]["404"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    // Authenticated operations accept every kind of credential; anonymous ones none.
    let security = op("/users/me", "get")["security"].clone();
    assert_eq!(security, json!([{"bearer": []}, {"basic": []}, {"cookie": []}]));
    assert!(op("/users", "post").get("security").is_none());
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in ["type", "title", "status", "detail", "code", "errors"] {
        assert!(problem.get(field).is_some(), "Problem.{field}");
    }
}

#[tokio::test]
async fn openapi_json_names_the_secure_cookie_behind_https() {
    let app = spawn_app_with(|c| c.public_url = Some("https://auth.example.com".into())).await;
    let doc = openapi(&app).await;
    assert_eq!(doc["servers"][0]["url"], "https://auth.example.com");
    assert_eq!(doc["components"]["securitySchemes"]["cookie"]["name"], "__Host-latch_session");
}

/// Each documented operation is served: no 405, and no 404 from the fallback (which
/// the metrics would show as the `unmatched` route).
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let id = "0190a8c6-3f0e-7000-8000-000000000000";
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            let url = app.url(&path.replace("{id}", id));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.client.request(method.clone(), url).send().await.unwrap();
            assert_ne!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(r.status().as_u16() < 500, "{method} {path}: {}", r.status());
        }
    }
    let text = metrics(&app).await;
    assert!(!text.contains(r#"route="unmatched""#), "{text}");
}

/// Runs `openapi-spec-validator` on the document when it is installed
/// (`pip install openapi-spec-validator`); says so and passes when it is not.
#[tokio::test]
async fn openapi_json_passes_a_validator_when_one_is_installed() {
    let probe = std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI must have openapi-spec-validator (.ci/run installs it)");
        eprintln!("openapi-spec-validator is not installed; the document was not validated");
        return;
    }
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_logins_registrations_and_tokens() {
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let id = user["id"].as_str().unwrap();
    let tokens = app.login("alice").await;
    assert_eq!(app.token("alice", "wrong password!").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.refresh(&tokens.refresh_token).await.status(), StatusCode::OK);
    let r = app.post_json("/sessions", &json!({ "username": "alice", "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let text = metrics(&app).await;

    let expected = [
        (r#"latch_http_requests_total{method="POST",route="/users",status="201"}"#, 1.0),
        (r#"latch_http_requests_total{method="GET",route="/users/{id}",status="200"}"#, 1.0),
        (r#"latch_http_requests_total{method="POST",route="/token",status="200"}"#, 2.0),
        (r#"latch_http_requests_total{method="POST",route="/token",status="400"}"#, 1.0),
        (r#"latch_http_requests_total{method="POST",route="/sessions",status="200"}"#, 1.0),
        (r#"latch_http_requests_total{method="GET",route="unmatched",status="404"}"#, 1.0),
        (r#"latch_http_request_duration_seconds_count{route="/users/{id}"}"#, 1.0),
        (r#"latch_http_request_duration_seconds_bucket{route="/users/{id}",le="+Inf"}"#, 1.0),
        ("latch_registrations_total", 1.0),
        (r#"latch_logins_total{result="success"}"#, 2.0),
        (r#"latch_logins_total{result="failure"}"#, 1.0),
        (r#"latch_logins_total{result="rate_limited"}"#, 0.0),
        (r#"latch_tokens_issued_total{grant="password"}"#, 1.0),
        (r#"latch_tokens_issued_total{grant="refresh_token"}"#, 1.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE latch_http_request_duration_seconds histogram"), "{text}");
    assert!(!text.contains(id), "raw paths never become labels:\n{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
}

#[tokio::test]
async fn metrics_are_counted_per_app() {
    let (one, two) = (spawn_app().await, spawn_app().await);
    one.create_user("alice").await;
    assert_eq!(sample(&metrics(&one).await, "latch_registrations_total"), Some(1.0));
    assert_eq!(sample(&metrics(&two).await, "latch_registrations_total"), Some(0.0));
}

#[tokio::test]
async fn metrics_speak_openmetrics_when_asked() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE latch_registrations counter"), "{text}");
}
