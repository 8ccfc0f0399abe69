//! Noticing commits that other processes make to a SQLite database (`latch user
//! disable` while a server runs), for the session cache, which asks before every
//! lookup and so must be told cheaply and never late.
//!
//! Every commit appends to the write-ahead log and every checkpoint writes the database
//! file. On Linux an inotify watch on their directory sees those writes: the kernel
//! queues the event inside the writer's `write` call, so one non-blocking `read`
//! tells, at a fraction of the cost of the path walks of `stat`. Elsewhere, when
//! inotify is unavailable (its instance or watch limits reached), or when the watch
//! ends (the directory was removed), the fingerprint is the files' sizes, times and
//! inodes.
//!
//! Either way a commit is seen from its first write to the log, slightly before
//! SQLite makes it visible (after its `fsync`). A lookup that falls in between reads
//! the old state and may keep it; the session cache holds an entry for one second at
//! most, so that is how late such a commit can be noticed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Fingerprint;

/// A value that changes whenever the database at `db` or its write-ahead log is
/// written, by any process.
pub fn fingerprint(db: &Path) -> Fingerprint {
    // SQLite follows a symbolic link and keeps its log beside the file it points to.
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let files = [db.clone(), sibling(&db, "-wal")];
    #[cfg(target_os = "linux")]
    match inotify_watch::Watch::new(&db) {
        Ok(watch) => {
            return Arc::new(move || match watch.changes() {
                Some(changes) => changes,
                None => stat_fingerprint(&files),
            });
        }
        Err(e) => tracing::info!(error = %e, "no inotify watch on the database; checking it with stat"),
    }
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

    use inotify::{EventMask, Inotify, WatchMask};

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
        /// The watch ended (its directory was removed or unmounted).
        ended: bool,
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
                state: Mutex::new(State {
                    inotify,
                    buffer: vec![0; 4096].into_boxed_slice(),
                    changes: 0,
                    ended: false,
                }),
            })
        }

        /// Drains the queued events; the count moves when one concerned the database.
        /// `None` once the watch has ended: the caller must look another way.
        pub fn changes(&self) -> Option<u64> {
            let mut guard = match self.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            let state = &mut *guard;
            if state.ended {
                return None;
            }
            loop {
                match state.inotify.read_events(&mut state.buffer) {
                    Ok(events) => {
                        let mut any = false;
                        let mut relevant = false;
                        let mut ended = false;
                        for event in events {
                            any = true;
                            ended |= event.mask.contains(EventMask::IGNORED);
                            // No name: the queue overflowed or the directory itself changed.
                            relevant |= event.name.is_none_or(|n| self.names.iter().any(|m| m == n));
                        }
                        if ended {
                            tracing::warn!("the database directory is no longer watched; checking it with stat");
                            state.ended = true;
                            return None;
                        }
                        if relevant {
                            state.changes += 1;
                        }
                        if !any {
                            return Some(state.changes);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(state.changes),
                    Err(_) => {
                        // Unreadable: assume the worst every time.
                        state.changes += 1;
                        return Some(state.changes);
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

    #[test]
    fn a_linked_database_is_watched_where_it_lives() {
        let (real, links) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = real.path().join("latch.db");
        std::fs::write(&db, b"a").unwrap();
        let link = links.path().join("latch.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let check = fingerprint(&link);
        let start = check();
        std::fs::write(sibling(&db, "-wal"), b"frame").unwrap();
        assert_ne!(check(), start, "the log beside the real file");
    }

    #[test]
    fn a_removed_directory_is_still_checked() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let db = dir.join("latch.db");
        std::fs::write(&db, b"a").unwrap();
        let check = fingerprint(&db);
        check();
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = check();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&db, b"again").unwrap();
        assert_ne!(check(), gone, "a database made anew in a new directory");
    }
}
