//! `latch import FILE`: users with existing password hashes, from JSON Lines
//! (`{"username", "email", "password_hash", "email_verified"?}` per line). Every line
//! is checked first — field rules, a recognised hash format, no duplicate within the
//! file or against the database, case-insensitively — and any bad line refuses the
//! whole file, each reported as `line N: reason`. Otherwise all users go in one
//! transaction, in batches, so that a crash or a conflict leaves nothing half-imported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::auth::password::{self, HashScheme};
use crate::config::Config;
use crate::domain::{Email, Username};
use crate::store::{ImportedUser, StoreError};

/// Longest password hash accepted; real ones are well under 200 bytes.
const MAX_HASH_BYTES: usize = 1024;

/// One line of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    username: String,
    email: String,
    password_hash: String,
    email_verified: Option<bool>,
}

/// A line that passed its own checks, before the duplicate checks.
struct Checked {
    number: usize,
    user: ImportedUser,
    scheme: HashScheme,
}

/// Runs `latch import FILE` (`-` for standard input).
pub(super) async fn run(file: &Path, config: Config) -> anyhow::Result<()> {
    let bytes = read_input(file)?;
    let store = super::open_store(&config).await?;
    let taken = store.taken_names().await?;
    let (users, schemes, problems) =
        check_lines(&bytes, &taken.usernames.into_iter().collect(), &taken.emails.into_iter().collect());
    if !problems.is_empty() {
        for (number, reasons) in &problems {
            eprintln!("line {number}: {}", reasons.join("; "));
        }
        anyhow::bail!("{} bad line(s) in {}; nothing was imported", problems.len(), file.display());
    }

    let bar = progress_bar(users.len() as u64);
    let now = crate::clock::Clock::system().now();
    let event = crate::store::AuditEvent::new(crate::store::EventType::UsersImported, crate::store::Actor::System, now)
        .detail("via", "cli");
    let inserted =
        store.import_users(&users, now, &|done| bar.set_position(done), &event).await.map_err(|e| match e {
            StoreError::Conflict(field) => {
                anyhow::anyhow!("a {field} in the file was taken while importing; nothing was imported")
            }
            e => anyhow::Error::from(e).context("import failed; nothing was imported"),
        })?;
    bar.finish_and_clear();

    let by_scheme: Vec<String> = schemes.iter().map(|(scheme, n)| format!("{}: {n}", scheme.name())).collect();
    if by_scheme.is_empty() {
        println!("imported {inserted} users");
    } else {
        println!("imported {inserted} users ({})", by_scheme.join(", "));
    }
    if inserted > 0 {
        println!("hashes other than current Argon2id are replaced at each user's first successful login");
    }
    Ok(())
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes).context("cannot read standard input")?;
        return Ok(bytes);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Checks every line: the users to insert, the count per hash format, and the
/// reasons each bad line (by number) was refused.
#[allow(clippy::type_complexity)]
fn check_lines(
    bytes: &[u8],
    taken_usernames: &HashSet<String>,
    taken_emails: &HashSet<String>,
) -> (Vec<ImportedUser>, BTreeMap<HashScheme, usize>, BTreeMap<usize, Vec<String>>) {
    let mut problems: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut checked = Vec::new();
    // First line holding each lowercased username and email, for duplicate reports.
    let mut usernames: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Blank lines (a trailing newline, spacing) carry no user.
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut reasons = Vec::new();
        match check_line(raw) {
            Err(reason) => reasons.push(reason),
            Ok((line, found)) => {
                reasons.extend(found);
                if let Some(username) = &line.username {
                    let key = username.as_str().to_ascii_lowercase();
                    if taken_usernames.contains(&key) {
                        reasons.push(format!("username `{username}` is already taken"));
                    } else if let Some(first) = usernames.get(&key) {
                        reasons.push(format!("username `{username}` is also on line {first}"));
                    } else {
                        usernames.insert(key, number);
                    }
                }
                if let Some(email) = &line.email {
                    let key = email.as_str().to_owned();
                    if taken_emails.contains(&key) {
                        reasons.push(format!("email `{email}` is already taken"));
                    } else if let Some(first) = emails.get(&key) {
                        reasons.push(format!("email `{email}` is also on line {first}"));
                    } else {
                        emails.insert(key, number);
                    }
                }
                if let (true, Some(username), Some(email), Some(scheme)) =
                    (reasons.is_empty(), line.username, line.email, line.scheme)
                {
                    let user = ImportedUser {
                        id: crate::domain::UserId::generate(),
                        username: username.as_str().to_owned(),
                        email: email.as_str().to_owned(),
                        email_verified: line.email_verified,
                        password_hash: line.password_hash,
                    };
                    checked.push(Checked { number, user, scheme });
                }
            }
        }
        if !reasons.is_empty() {
            problems.insert(number, reasons);
        }
    }
    let mut schemes = BTreeMap::new();
    let users = checked
        .into_iter()
        .filter(|c| !problems.contains_key(&c.number))
        .map(|c| {
            *schemes.entry(c.scheme).or_insert(0) += 1;
            c.user
        })
        .collect();
    (users, schemes, problems)
}

/// A line's fields, each parsed when valid.
struct Parsed {
    username: Option<Username>,
    email: Option<Email>,
    scheme: Option<HashScheme>,
    password_hash: String,
    email_verified: bool,
}

/// Parses one line; `Err` when it is not the expected JSON object at all, else the
/// fields with the rules each broke.
fn check_line(raw: &[u8]) -> Result<(Parsed, Vec<String>), String> {
    let text = std::str::from_utf8(raw).map_err(|_| "is not valid UTF-8".to_owned())?;
    let line: Line = serde_json::from_str(text).map_err(|e| {
        // The position is within this one line, which the report names already.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        format!("invalid JSON object: {message}")
    })?;
    let mut reasons = Vec::new();
    let username = Username::parse(&line.username).map_err(|m| reasons.push(format!("username {m}"))).ok();
    let email = Email::parse(&line.email).map_err(|m| reasons.push(format!("email {m}"))).ok();
    let scheme = if line.password_hash.len() > MAX_HASH_BYTES {
        reasons.push(format!("password_hash is longer than {MAX_HASH_BYTES} bytes"));
        None
    } else {
        password::recognise(&line.password_hash).map_err(|m| reasons.push(format!("password_hash {m}"))).ok()
    };
    let parsed = Parsed {
        username,
        email,
        scheme,
        password_hash: line.password_hash,
        email_verified: line.email_verified.unwrap_or(false),
    };
    Ok((parsed, reasons))
}

/// A bar on stderr when a person is watching; nothing otherwise (logs, pipes, CI).
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("importing {bar:40} {pos}/{len} users ({eta} left)") {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2b$04$nwMQ5ME6vgO3xgqzrsJyb.WaQ5sA7ofUyN6zbqPdQNKQ1f2CjSvtG";

    fn line(username: &str, email: &str) -> String {
        serde_json::json!({"username": username, "email": email, "password_hash": BCRYPT}).to_string()
    }

    #[test]
    fn good_lines_become_users_and_blank_lines_are_skipped() {
        let file = format!("{}\n\n{}\r\n", line("ann", "Ann@Example.com"), line("bob", "bob@example.com"));
        let (users, schemes, problems) = check_lines(file.as_bytes(), &HashSet::new(), &HashSet::new());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].email, "ann@example.com");
        assert!(!users[0].email_verified);
        assert_eq!(schemes.get(&HashScheme::Bcrypt), Some(&2));
    }

    #[test]
    fn every_bad_line_is_reported_by_number() {
        let file = [
            line("ann", "ann@example.com"),
            line("x", "not-an-email"),
            "{not json".to_owned(),
            line("ANN", "other@example.com"),
            line("carl", "ANN@example.com"),
            serde_json::json!({"username": "dora", "email": "d@example.com", "password_hash": "md5$x"}).to_string(),
            serde_json::json!({"username": "eve", "email": "e@example.com", "password_hash": BCRYPT, "extra": 1})
                .to_string(),
            line("taken", "fresh@example.com"),
        ]
        .join("\n");
        let taken: HashSet<String> = ["taken".to_owned()].into();
        let (_, _, problems) = check_lines(file.as_bytes(), &taken, &HashSet::new());
        let numbers: Vec<usize> = problems.keys().copied().collect();
        assert_eq!(numbers, [2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(problems[&2].len(), 2, "both fields of line 2: {:?}", problems[&2]);
        assert!(problems[&4][0].contains("also on line 1"), "{:?}", problems[&4]);
        assert!(problems[&5][0].contains("also on line 1"), "{:?}", problems[&5]);
        assert!(problems[&6][0].starts_with("password_hash"), "{:?}", problems[&6]);
        assert!(problems[&7][0].contains("unknown field"), "{:?}", problems[&7]);
        assert!(problems[&8][0].contains("already taken"), "{:?}", problems[&8]);
    }
}
