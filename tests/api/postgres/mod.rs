//! The suite against PostgreSQL, plus what only several instances on one database can
//! show, and how a database that cannot serve is answered.

#[cfg(latch_postgres_tests)]
mod helpers {
    pub use crate::helpers::*;

    pub async fn spawn_app() -> TestApp {
        spawn_on(Backend::Postgres, |_| {}).await
    }

    pub async fn spawn_app_with(adjust: impl FnOnce(&mut latch::config::Config)) -> TestApp {
        spawn_on(Backend::Postgres, adjust).await
    }
}

#[cfg(latch_postgres_tests)]
#[path = "../suite/abuse.rs"]
mod abuse;
#[cfg(latch_postgres_tests)]
#[path = "../suite/admin.rs"]
mod admin;
#[cfg(latch_postgres_tests)]
#[path = "../suite/audit.rs"]
mod audit;
#[cfg(latch_postgres_tests)]
#[path = "../suite/clients.rs"]
mod clients;
#[cfg(latch_postgres_tests)]
#[path = "../suite/email.rs"]
mod email;
#[cfg(latch_postgres_tests)]
#[path = "../suite/errors.rs"]
mod errors;
#[cfg(latch_postgres_tests)]
#[path = "../suite/limits.rs"]
mod limits;
#[cfg(latch_postgres_tests)]
#[path = "../suite/mfa.rs"]
mod mfa;
#[cfg(latch_postgres_tests)]
mod multi_instance;
#[cfg(latch_postgres_tests)]
#[path = "../suite/oidc.rs"]
mod oidc;
#[cfg(latch_postgres_tests)]
#[path = "../suite/ops.rs"]
mod ops;
#[cfg(latch_postgres_tests)]
mod outage;
#[cfg(latch_postgres_tests)]
#[path = "../suite/pages.rs"]
mod pages;
#[cfg(latch_postgres_tests)]
#[path = "../suite/passkeys.rs"]
mod passkeys;
#[cfg(latch_postgres_tests)]
#[path = "../suite/sessions.rs"]
mod sessions;
#[cfg(latch_postgres_tests)]
#[path = "../suite/signing_keys.rs"]
mod signing_keys;
#[cfg(latch_postgres_tests)]
#[path = "../suite/tokens.rs"]
mod tokens;
#[cfg(latch_postgres_tests)]
#[path = "../suite/users.rs"]
mod users;

/// Stands in for the PostgreSQL suite when it was not compiled.
#[cfg(not(latch_postgres_tests))]
#[test]
fn not_run_set_latch_test_database_url() {
    eprintln!(
        "PostgreSQL tests were NOT run: set LATCH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
         (any database the user may CREATE DATABASE from) and run cargo test again"
    );
}
