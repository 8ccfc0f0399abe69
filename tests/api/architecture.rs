//! The import rules of `docs/architecture.md`, checked on the source: `auth`, `store`,
//! `domain` and `mail` know no HTTP, and only the clock reads the system time.

use std::path::{Path, PathBuf};

fn sources(part: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part);
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path, text));
            }
        }
    }
    assert!(!found.is_empty(), "no sources under src/{part}");
    found
}

/// Lines of code (not comments) in `part` that contain any of `needles`.
fn offending(part: &str, needles: &[&str]) -> Vec<String> {
    sources(part)
        .into_iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_start().starts_with("//"))
                .filter(|(_, line)| needles.iter().any(|n| line.contains(n)))
                .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn services_and_the_store_know_no_http() {
    let http = ["crate::http", "axum::", "ApiError", "OAuthError", "StatusCode"];
    for part in ["auth", "store", "domain", "mail"] {
        let found = offending(part, &http);
        assert!(found.is_empty(), "src/{part} uses HTTP:\n{}", found.join("\n"));
    }
}

#[test]
fn only_the_clock_reads_the_time() {
    let reads = ["now_utc()", "SystemTime::now", "OffsetDateTime::now"];
    for part in ["auth", "store", "http", "domain", "mail"] {
        let found = offending(part, &reads);
        assert!(found.is_empty(), "src/{part} reads the system time:\n{}", found.join("\n"));
    }
}
