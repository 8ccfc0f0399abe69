//! What each `latch` subcommand does, one file per command group; `main` only parses,
//! configures logging and calls [`run`]. The operator commands open the same store as
//! the server, so they work next to a running `latch serve` on the same database.

mod audit;
mod backup;
mod client;
mod import;
mod keys;
mod serve;
mod user;

use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::Command;
use crate::config::Config;
use crate::store::{Store, UserRecord};

/// Runs one command to completion.
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::serve(config).await,
        Command::Migrate => serve::migrate(config).await,
        Command::User(command) => user::run(command, config).await,
        Command::Import { file } => import::run(&file, config).await,
        Command::Keys(command) => keys::run(command, config).await,
        Command::Client(command) => client::run(command, config).await,
        Command::Audit(args) => audit::run(args, config).await,
        Command::Backup { path } => backup::run(&path, config).await,
    }
}

/// Writes `lines` to standard output; a reader that stops early (`| head`) ends the
/// output quietly, as with other Unix tools.
fn print_lines(mut lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = lines.try_for_each(|line| writeln!(out, "{line}")).and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Prints `rows` under `header` in left-aligned columns.
fn print_table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> anyhow::Result<()> {
    let header = header.map(str::to_owned);
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    print_lines(std::iter::once(&header).chain(&rows).map(|row| {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        cells.join("  ").trim_end().to_owned()
    }))
}

/// Opens (and migrates) the configured database.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    crate::store::open(&config.database_url).await
}

/// The user named by `who`: an id, a username or an email, in any case.
async fn find_user(store: &dyn Store, who: &str) -> anyhow::Result<UserRecord> {
    let found = crate::store::find_user(store, who).await?;
    found.with_context(|| format!("no user with id, username or email `{who}`"))
}
