//! The command line: `latch serve`, `latch migrate`, the operator tools (`user`,
//! `import`, `keys`, `backup`; implemented in `commands`), and the flags shared by all
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

/// What `latch` is asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create, inspect and manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Import users with existing password hashes from a JSON Lines file (all or nothing).
    Import {
        /// One JSON object per line: {"username", "email", "password_hash", "email_verified"?};
        /// `-` reads standard input.
        file: PathBuf,
    },
    /// Manage access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register and manage OAuth clients (applications that ask Latch for tokens).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Read the audit log, newest first.
    Audit(AuditArgs),
    /// Write a consistent snapshot of the SQLite database to a new file, while serving.
    Backup {
        /// The file to create; an existing file is refused.
        path: PathBuf,
    },
}

/// `latch user …`. A user is named by id, username or email (any case).
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; its email counts as verified, since an operator vouches for it.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List all users.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// Id, username or email.
        user: String,
        /// A JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: logins are refused (403 account_disabled) and all sessions end.
    Disable {
        /// Id, username or email.
        user: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Id, username or email.
        user: String,
    },
    /// Delete a user with all their sessions and tokens.
    Delete {
        /// Id, username or email.
        user: String,
    },
    /// Set a user's password; all their sessions end.
    SetPassword {
        /// Id, username or email.
        user: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show a user's roles, or change them (`admin` opens the admin API); new access
    /// tokens carry them in `roles`.
    Roles {
        /// Id, username or email.
        user: String,
        /// A role to give (repeatable).
        #[arg(long = "add", value_name = "ROLE")]
        add: Vec<String>,
        /// A role to take away (repeatable).
        #[arg(long = "remove", value_name = "ROLE")]
        remove: Vec<String>,
        /// Print the roles as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's second factors (authenticator app, recovery codes), for one who
    /// lost them: they sign in with the password alone until they enrol again.
    ResetMfa {
        /// Id, username or email.
        user: String,
    },
}

/// `latch audit`: filters of the audit log.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only events about this user (id, username or email; a deleted user by id).
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this type (repeatable, or comma-separated), e.g. login,password_change.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events since this time: RFC 3339 (2026-11-30T08:00:00Z) or a duration ago (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time, given like --since.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What a client may do; on `update`, a list given replaces the stored one.
#[derive(Debug, clap::Args)]
pub struct ClientSettings {
    /// A web origin (https://app.example.com) whose browsers may call the API (CORS).
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
    /// An exact redirect URI for the authorization-code flow.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// An exact URI to return to after logout.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A scope the client may be granted (default: openid profile email offline_access).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
}

/// `latch client …`. A client is named by its `client_id`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id (and, for a confidential client, its
    /// secret: shown once, stored hashed).
    Create {
        /// A name for people (shown on consent pages).
        #[arg(long)]
        name: String,
        /// The client keeps a secret (a server-side app) and must authenticate with it.
        #[arg(long)]
        confidential: bool,
        /// Trusted by the operator: users are not asked for consent.
        #[arg(long)]
        first_party: bool,
        #[command(flatten)]
        settings: ClientSettings,
        /// Print {client_id, client_secret?} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the registered clients.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        client_id: String,
        /// A JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a client's name, trust or lists (a list given replaces the stored one).
    Update {
        client_id: String,
        #[arg(long)]
        name: Option<String>,
        /// true or false.
        #[arg(long, value_name = "BOOL")]
        first_party: Option<bool>,
        #[command(flatten)]
        settings: ClientSettings,
        /// Remove every origin.
        #[arg(long, conflicts_with = "origins")]
        no_origins: bool,
    },
    /// Delete a client; the sessions it started end.
    Delete { client_id: String },
    /// Give a confidential client a new secret; the old one stops working at once.
    RotateSecret {
        client_id: String,
        /// Print {client_id, client_secret} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `latch keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key (LATCH_SIGNING_ALGORITHM): servers publish it in JWKS at
    /// once and sign with it after LATCH_KEY_ROTATION_DELAY; the current key then
    /// retires and stays published until its tokens expire.
    Rotate {
        /// The current key is compromised: sign with the new key at once and delete
        /// every other key, so that JWKS drops them and Latch refuses their tokens.
        #[arg(long)]
        now: bool,
    },
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
