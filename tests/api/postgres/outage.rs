//! A PostgreSQL that cannot serve is an outage, answered 503 with `Retry-After` on
//! every path, never a 500; and Latch serves again as soon as the database does.

use std::time::{Duration, Instant};

use latch::config::DatabaseUrl;
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use sqlx::Connection as _;

use super::helpers::*;

/// The name of the test's own database.
fn database_name(app: &TestApp) -> String {
    let DatabaseUrl::Postgres(url) = &app.config.database_url else { panic!("a PostgreSQL test") };
    url::Url::parse(url.expose_secret()).unwrap().path().trim_start_matches('/').to_owned()
}

/// Lets the database accept connections or not, and ends the ones it has.
async fn allow_connections(name: &str, allow: bool) {
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url().unwrap()).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")).execute(&mut admin).await.unwrap();
    if !allow {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

async fn assert_unavailable(response: reqwest::Response) -> Value {
    assert!(response.headers().get("retry-after").is_some(), "no Retry-After: {response:?}");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_database_that_accepts_no_connections_is_a_503() {
    let app = spawn_app().await;
    app.create_user("before").await;
    let name = database_name(&app);
    allow_connections(&name, false).await;

    let r = app.register("during", "during@example.com", PASSWORD).await;
    let problem = assert_unavailable(r).await;
    assert_eq!(problem["code"], "service_unavailable", "{problem}");
    let r = app.token("before", PASSWORD).await;
    let error = assert_unavailable(r).await;
    assert_eq!(error["error"], "temporarily_unavailable", "{error}");
    let r = app.client.get(app.url("/users/00000000-0000-0000-0000-000000000000")).send().await.unwrap();
    assert_unavailable(r).await;
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_unavailable(r).await;

    allow_connections(&name, true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.register("after", "after@example.com", PASSWORD).await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "still {} after the database came back", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
