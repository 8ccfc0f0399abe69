//! The command line: `latch serve`, `latch migrate`, and the flags shared by all
//! commands. Flags are the highest layer of the configuration (see `config`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Latch: user registration and authentication server.
#[derive(Debug, Parser)]
#[command(name = "latch", version, about, after_help = after_help())]
pub struct Cli {
    /// TOML configuration file (also LATCH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to bind (LATCH_LISTEN).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for local state (LATCH_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// sqlite://… or postgres://… (LATCH_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Issuer and base of links in emails (LATCH_PUBLIC_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// log, file:<dir>, smtp://… or smtps://… (LATCH_MAILER).
    #[arg(long, global = true, value_name = "MAILER")]
    pub mailer: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

fn after_help() -> String {
    format!(
        "Configuration keys (environment variables; TOML keys are the lowercase names without LATCH_):\n{}",
        crate::config::keys_help()
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

impl Cli {
    /// The flags given, by configuration key.
    pub fn flags(&self) -> BTreeMap<&'static str, String> {
        let pairs = [
            ("listen", &self.listen),
            ("data_dir", &self.data_dir),
            ("database_url", &self.database_url),
            ("public_url", &self.public_url),
            ("mailer", &self.mailer),
        ];
        pairs.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
    }
}
