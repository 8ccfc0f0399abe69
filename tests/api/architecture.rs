//! The rules of `docs/architecture.md`, checked on the source: what each part must not
//! use, and that only the clock reads the time.

use std::path::{Path, PathBuf};

/// The `.rs` files of `part`: a directory under `src`, or one file (`app.rs`).
fn sources(part: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part);
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path, text));
        }
    }
    assert!(!found.is_empty(), "no sources at src/{part}");
    found
}

/// Lines of code (not comments, not unit tests) in `part` that contain any of `needles`.
fn offending(part: &str, needles: &[&str]) -> Vec<String> {
    sources(part)
        .into_iter()
        .flat_map(|(path, text)| {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            code.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_start().starts_with("//"))
                .filter(|(_, line)| needles.iter().any(|n| line.contains(n)))
                .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_none(part: &str, what: &str, needles: &[&str]) {
    let found = offending(part, needles);
    assert!(found.is_empty(), "src/{part} uses {what}:\n{}", found.join("\n"));
}

const HTTP: &[&str] = &["crate::http", "axum::", "ApiError", "OAuthError", "StatusCode"];

#[test]
fn each_part_uses_only_what_the_architecture_allows() {
    for part in ["auth", "store", "domain", "mail", "commands", "config.rs", "settings.rs", "clock.rs"] {
        assert_none(part, "HTTP", HTTP);
    }
    assert_none("store", "a service or the mailer", &["crate::auth", "crate::mail", "crate::clock"]);
    assert_none("mail", "a service", &["crate::auth"]);
    assert_none(
        "domain",
        "another part",
        &["crate::auth", "crate::store", "crate::mail", "crate::config", "crate::clock", "crate::settings"],
    );
    // Handlers call services; SQL stays in the store.
    assert_none("http", "SQL", &["sqlx::", "SELECT ", "UPDATE ", "INSERT ", "DELETE FROM"]);
}

#[test]
fn only_the_clock_reads_the_time() {
    let reads = ["now_utc()", "SystemTime::now", "OffsetDateTime::now"];
    for part in ["auth", "store", "http", "domain", "mail", "app.rs", "server.rs"] {
        assert_none(part, "the system time", &reads);
    }
    // The server's parts take the clock they are given; only the command-line tools,
    // which run apart from any server, use the system's.
    for part in ["auth", "store", "http"] {
        assert_none(part, "the system clock", &["Clock::system()"]);
    }
}
