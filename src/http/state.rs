//! What every handler can reach: the services, the store for plain reads (a public
//! profile, readiness), and the settings that shape responses. Cheap to clone.

use std::sync::Arc;

use crate::auth::accounts::Accounts;
use crate::auth::admin::Admin;
use crate::auth::clients::Clients;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::TokenService;
use crate::settings::Settings;
use crate::store::Store;

/// Shared application state. Cloned for every request, hence one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
    /// The OpenID provider.
    pub oidc: crate::auth::oidc::Oidc,
    pub sessions: Sessions,
    /// Second factors: enrolment and the second step of a sign-in.
    pub factors: crate::auth::mfa::Factors,
    pub accounts: Accounts,
    /// What the admin API does.
    pub admin: Admin,
    /// The registered clients and the CORS origins.
    pub clients: Clients,
    /// The hosted pages' templates, compiled once.
    pub templates: crate::http::pages::Templates,
    /// Seals the admin API's page cursors; the same on every instance.
    pub cursor_key: [u8; 32],
    pub store: Arc<dyn Store>,
    /// Signs and publishes: JWKS and discovery read it.
    pub tokens: TokenService,
    pub settings: Arc<Settings>,
    pub metrics: crate::http::metrics::Metrics,
}
