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
    let mut body = serde_json::json!({
        "issuer": state.tokens.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "grant_types_supported": [
            "refresh_token", "client_credentials", "password", crate::http::tokens::MFA_GRANT,
            crate::http::tokens::PASSKEY_GRANT
        ],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "azp", "at_hash",
            "preferred_username", "email", "email_verified", "roles"
        ],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": crate::auth::oidc::ACR_VALUES,
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // ID tokens are RS256, the OpenID baseline, whatever signs access tokens.
        "id_token_signing_alg_values_supported": ["RS256"],
        "access_token_signing_alg_values_supported": state.tokens.algorithms(),
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "service_documentation": format!("{base}/openapi.json"),
    });
    // The browser endpoints are pages: with LATCH_UI=off there is no authorization
    // code flow to describe.
    if state.settings.ui
        && let Some(map) = body.as_object_mut()
    {
        map.insert("authorization_endpoint".into(), format!("{base}/authorize").into());
        map.insert("end_session_endpoint".into(), format!("{base}/end_session").into());
        map.insert("response_types_supported".into(), serde_json::json!(["code"]));
        map.insert("response_modes_supported".into(), serde_json::json!(["query"]));
        map.insert(
            "grant_types_supported".into(),
            serde_json::json!([
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "password",
                crate::http::tokens::MFA_GRANT,
                crate::http::tokens::PASSKEY_GRANT
            ]),
        );
    }
    ([CACHE], Json(body))
}
