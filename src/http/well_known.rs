//! Discovery: the JWK Set of the access-token keys and the OpenID/OAuth metadata that
//! standard libraries read to find it.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::clients::STANDARD_SCOPES;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(configuration))
        .route("/.well-known/oauth-authorization-server", get(configuration))
}

/// Short caching: after a key rotation clients see the new key within minutes, and a
/// verifier that meets an unknown `kid` refetches anyway.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=300");

/// The public keys that sign access tokens: the current one and older ones whose tokens
/// may still be valid.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    operation_id = "jwks",
    summary = "JSON Web Key Set (RFC 7517) of the access-token keys",
    responses((status = 200, description = "`{keys: [JWK]}`; `Cache-Control: public, max-age=300`", body = Object)),
)]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    ([CACHE], Json(state.tokens.jwks()))
}

/// Issuer and endpoint URLs, for libraries that discover them.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "discovery",
    operation_id = "openid_configuration",
    summary = "OpenID Connect discovery metadata",
    responses((status = 200, description = "`issuer`, `jwks_uri`, `token_endpoint`, `revocation_endpoint`, …; \
                                            `Cache-Control: public, max-age=300`", body = Object)),
)]
async fn configuration(State(state): State<AppState>) -> impl IntoResponse {
    let base = &state.settings.public_url;
    let body = serde_json::json!({
        "issuer": state.tokens.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "preferred_username", "email", "email_verified", "roles"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": state.tokens.algorithms(),
        "access_token_signing_alg_values_supported": state.tokens.algorithms(),
        "service_documentation": format!("{base}/openapi.json"),
    });
    ([CACHE], Json(body))
}
