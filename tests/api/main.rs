//! Integration tests: each test starts its own Latch on a free port with its own
//! database and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cli;
mod email;
mod errors;
mod limits;
mod server;
mod sessions;
mod smtp;
mod tokens;
mod users;
