//! The suite against SQLite.

mod helpers {
    pub use crate::helpers::*;

    pub async fn spawn_app() -> TestApp {
        spawn_on(Backend::Sqlite, |_| {}).await
    }

    pub async fn spawn_app_with(adjust: impl FnOnce(&mut latch::config::Config)) -> TestApp {
        spawn_on(Backend::Sqlite, adjust).await
    }
}

#[path = "../suite/abuse.rs"]
mod abuse;
#[path = "../suite/admin.rs"]
mod admin;
#[path = "../suite/audit.rs"]
mod audit;
#[path = "../suite/clients.rs"]
mod clients;
#[path = "../suite/email.rs"]
mod email;
#[path = "../suite/errors.rs"]
mod errors;
#[path = "../suite/limits.rs"]
mod limits;
#[path = "../suite/mfa.rs"]
mod mfa;
#[path = "../suite/oidc.rs"]
mod oidc;
#[path = "../suite/ops.rs"]
mod ops;
#[path = "../suite/pages.rs"]
mod pages;
#[path = "../suite/passkeys.rs"]
mod passkeys;
#[path = "../suite/sessions.rs"]
mod sessions;
#[path = "../suite/signing_keys.rs"]
mod signing_keys;
#[path = "../suite/tokens.rs"]
mod tokens;
#[path = "../suite/users.rs"]
mod users;
