//! `latch backup PATH`: a consistent snapshot of the SQLite database in one new file,
//! taken while the server keeps serving; `--database-url sqlite://PATH` serves it as
//! is. PostgreSQL has its own tools, so there it refuses and names `pg_dump`.

use std::path::Path;

use anyhow::Context as _;

use crate::config::{Config, DatabaseUrl};

/// Runs `latch backup PATH`.
pub(super) async fn run(path: &Path, config: Config) -> anyhow::Result<()> {
    let source = match &config.database_url {
        DatabaseUrl::Sqlite(source) => source,
        DatabaseUrl::Postgres(_) => {
            anyhow::bail!("latch backup works on SQLite only; back up PostgreSQL with pg_dump (e.g. `pg_dump -Fc`)")
        }
    };
    // Opening the store would create an empty database: a backup of nothing is a
    // mistake worth reporting.
    if !source.exists() {
        anyhow::bail!("there is no database at {}", source.display());
    }
    if path.exists() {
        anyhow::bail!("{} already exists; a backup is never written over a file", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!("directory {} does not exist", dir.display());
    }
    let store = super::open_store(&config).await?;
    store.backup(path).await?;
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    println!("backup written to {} ({size} bytes)", path.display());
    Ok(())
}
