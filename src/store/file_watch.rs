//! Noticing commits that other processes make to a SQLite database (`latch user
//! disable` while a server runs), for the session cache, which asks before every
//! lookup and so must be told cheaply and never late.
//!
//! Every commit appends to the write-ahead log and every checkpoint writes the database
//! file. On Linux an inotify watch on their directory sees those writes: the kernel
//! queues the event inside the writer's `write` call, so one non-blocking `read`
//! answers exactly, and costs a fraction of the path walks of `stat`. Elsewhere, or
//! when inotify is unavailable (its watch limit reached), the fingerprint is the
//! files' sizes, times and inodes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Fingerprint;

/// A value that changes whenever the database at `db` or its write-ahead log is
/// written, by any process.
pub fn fingerprint(db: &Path) -> Fingerprint {
    #[cfg(target_os = "linux")]
    match inotify_watch::Watch::new(db) {
        Ok(watch) => return Arc::new(move || watch.changes()),
        Err(e) => tracing::debug!(error = %e, "no inotify watch on the database; checking it with stat"),
    }
    let files = [db.to_path_buf(), sibling(db, "-wal")];
    Arc::new(move || stat_fingerprint(&files))
}

/// `db` with `suffix` appended to its file name (`latch.db-wal`).
pub fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn stat_fingerprint(files: &[PathBuf]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        if let Ok(meta) = std::fs::metadata(file) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
            std::os::unix::fs::MetadataExt::ino(&meta).hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(target_os = "linux")]
mod inotify_watch {
    use std::ffi::OsString;
    use std::io;
    use std::path::Path;
    use std::sync::Mutex;

    use inotify::{Inotify, WatchMask};

    pub struct Watch {
        state: Mutex<State>,
        /// The database's file names: the file, its log, and a rollback journal.
        names: [OsString; 3],
    }

    struct State {
        inotify: Inotify,
        buffer: Box<[u8]>,
        /// Writes seen so far.
        changes: u64,
    }

    impl Watch {
        pub fn new(db: &Path) -> io::Result<Self> {
            let name = db.file_name().ok_or_else(|| io::Error::other("the database path has no file name"))?;
            let dir = match db.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let inotify = Inotify::init()?;
            inotify.watches().add(
                dir,
                WatchMask::MODIFY | WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM,
            )?;
            let with = |suffix: &str| {
                let mut n = name.to_owned();
                n.push(suffix);
                n
            };
            Ok(Self {
                names: [name.to_owned(), with("-wal"), with("-journal")],
                state: Mutex::new(State { inotify, buffer: vec![0; 4096].into_boxed_slice(), changes: 0 }),
            })
        }

        /// Drains the queued events; the count moves when one concerned the database.
        pub fn changes(&self) -> u64 {
            let mut guard = match self.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            let state = &mut *guard;
            loop {
                match state.inotify.read_events(&mut state.buffer) {
                    Ok(events) => {
                        let mut any = false;
                        let mut relevant = false;
                        for event in events {
                            any = true;
                            // No name: the queue overflowed or the directory itself changed.
                            relevant |= event.name.is_none_or(|n| self.names.iter().any(|m| m == n));
                        }
                        if relevant {
                            state.changes += 1;
                        }
                        if !any {
                            return state.changes;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return state.changes,
                    Err(_) => {
                        // Unreadable: assume the worst every time.
                        state.changes += 1;
                        return state.changes;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_the_database_or_its_log_move_the_fingerprint_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("latch.db");
        std::fs::write(&db, b"a").unwrap();
        let check = fingerprint(&db);
        let start = check();
        assert_eq!(check(), start, "nothing was written");

        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(check(), start, "another file of the directory");
        }

        std::fs::write(sibling(&db, "-wal"), b"frame").unwrap();
        let after_log = check();
        assert_ne!(after_log, start, "the log was created and written");
        assert_eq!(check(), after_log, "and nothing since");

        std::fs::write(&db, b"checkpointed").unwrap();
        assert_ne!(check(), after_log, "the database file was written");
    }
}
