//! Liveness (`/health`: the process answers) and readiness (`/ready`: the database
//! answers too).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::openapi::Status;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    summary = "Liveness",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Status)),
)]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Longest wait for the database's answer to a readiness probe.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers too.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "ready",
    summary = "Readiness (the database is reachable)",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
        (status = 503, description = "The database is unreachable (`service_unavailable`)"),
    ),
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // Load balancers probe with short timeouts: a slow answer counts as not ready.
    let answered = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    let error = match answered {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {READY_TIMEOUT:?}")),
    };
    if let Some(error) = error {
        tracing::warn!(%error, "readiness check failed");
        return Err(ApiError::unavailable("the database is unreachable", 5));
    }
    Ok(Json(json!({ "status": "ready" })))
}
