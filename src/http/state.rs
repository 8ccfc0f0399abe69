//! What every handler can reach: the services, the store for what is no service's
//! business, and the settings that shape responses. Cheap to clone.

use std::sync::Arc;

use crate::auth::emails::Emails;
use crate::auth::limits::RateLimiter;
use crate::auth::password::PasswordHasher;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
use crate::domain::PasswordPolicy;
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
    pub sessions: Sessions,
    pub emails: Emails,
    pub store: Arc<dyn Store>,
    pub hasher: PasswordHasher,
    pub tokens: TokenService,
    pub policy: PasswordPolicy,
    pub limiter: RateLimiter,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub metrics: crate::http::metrics::Metrics,
}
