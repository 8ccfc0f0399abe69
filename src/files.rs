//! Private files and directories: what Latch keeps at rest (the database, backups,
//! emails holding single-use links) is readable by its own user only, whatever the
//! umask — the umask can only take permissions away, so modes are set explicitly.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

/// Creates `dir` (and missing parents) when it does not exist; the directory itself is
/// then `0700`. An existing directory is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    Ok(())
}

/// Creates `path`, which must not exist, as an empty `0600` file.
pub fn create_private_file(path: &Path) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok(file)
}

/// Makes the SQLite database at `path` private: creates it empty with `0600` when it
/// does not exist yet, and tightens it and its `-wal` and `-shm` files to `0600` when
/// they are looser (files from before this rule, or copied in).
pub fn make_private_file(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        create_private_file(path)?;
        return Ok(());
    }
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(metadata) = std::fs::metadata(file) else { continue };
        if metadata.permissions().mode() & 0o077 != 0 {
            // Another user's file (a copy served read-only) may refuse: say so, serve on.
            match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::info!(file = %file.display(), "database file made private (0600)"),
                Err(e) => tracing::warn!(file = %file.display(), error = %e, "cannot make database file private"),
            }
        }
    }
    Ok(())
}

/// Writes `contents` to `dir/name` as a `0600` file. Readers never see it half
/// written: it is written under a temporary name and renamed.
pub fn write_private(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let written = create_private_file(&temporary).and_then(|mut file| {
        file.write_all(contents).and_then(|()| file.sync_all()).context("cannot write")?;
        std::fs::rename(&temporary, dir.join(name)).context("cannot rename")
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(|| format!("cannot write {}", dir.join(name).display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        create_private_dir(&made).unwrap();
        assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o700);
        let db = made.join("x.db");
        make_private_file(&db).unwrap();
        assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);
        let wal = made.join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private_file(&db).unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777, 0o600);
        write_private(&made, "m.eml", b"hello").unwrap();
        let mail = made.join("m.eml");
        assert_eq!(std::fs::read(&mail).unwrap(), b"hello");
        assert_eq!(std::fs::metadata(&mail).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(create_private_file(&mail).is_err(), "never over an existing file");
    }
}
