//! Integration tests: each test starts its own Latch on a free port with its own
//! database and talks to it over HTTP.
//!
//! The suite in `suite/` runs twice: against SQLite (`sqlite::…`) and against
//! PostgreSQL (`postgres::…`, each test in a database of its own, dropped afterwards).
//! The PostgreSQL half is compiled only when `LATCH_TEST_DATABASE_URL` points at a
//! server (`postgres://postgres@127.0.0.1:5432/test` in CI); without it the test
//! `postgres::not_run_set_latch_test_database_url` stands in and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The suite is compiled once per backend on purpose.
#![allow(clippy::duplicate_mod)]

mod helpers;

mod architecture;
mod browser;
mod browser_mfa;
mod browser_oidc;
mod cli;
mod ecosystem;
mod fuzz;
mod postgres;
mod server;
mod smtp;
mod sqlite;
mod transport;
