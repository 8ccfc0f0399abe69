//! Latch: a self-hosted user registration and authentication server.
//!
//! The binary (`src/main.rs`) parses the command line and hands over to [`app::App`];
//! the integration tests build the same `App` on a free port.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod domain;
pub mod files;
pub mod http;
pub mod mail;
pub mod server;
pub mod settings;
pub mod store;
