//! The ecosystem (SPEC §6): the Python and Node libraries that applications verify and
//! obtain Latch tokens with, at the versions pinned in `tests/compat/`, run against a
//! real `latch serve`; the Python client package's own tests; and the guides of
//! `docs/integrate/`, whose snippets must be the example files that run here.
//!
//! The tools live under `target/ecosystem/`: a virtualenv built from the pinned
//! requirements (rebuilt when they change) and `npm ci` of `tests/compat/package.json`.
//! Without python3, node or the network these tests fail under CI (`CI` set) and
//! otherwise print `NOT RUN` loudly and pass, so that `cargo test` on a laptop without
//! node says what it skipped. The compatibility table is printed (shown with
//! `--nocapture` or on failure) and written to `target/ecosystem/compat-table.txt`.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::PASSWORD;

/// The origin of the single-page app in the checks: another port of the same host, as a
/// development server would be (same site, another origin).
const APP_ORIGIN: &str = "http://127.0.0.1:5173";
const USER: &str = "compat";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compat_dir() -> PathBuf {
    repo().join("tests/compat")
}

/// `target/ecosystem`, wherever the target directory is.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").join("ecosystem")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A tool is missing: fails under CI, says so loudly otherwise.
pub(crate) fn not_run(test: &str, reason: &str) {
    assert!(!in_ci(), "{test}: {reason} (CI must provide it)");
    eprintln!("\n==================== NOT RUN: {test} ====================\n{reason}\n");
}

// ---------------------------------------------------------------------------------
// Tools

/// Runs `cmd` to its end or for at most `limit`; `Err` when it cannot start at all.
fn run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = stderr.join().unwrap();
    if Instant::now() >= deadline && !status.success() {
        stderr.extend_from_slice(format!("\n{program} killed after {limit:?}\n").as_bytes());
    }
    Ok(Output { status, stdout: stdout.join().unwrap(), stderr })
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Like [`run`], `Err` unless it succeeds.
fn run_ok(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let out = run(cmd, limit)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{}\n{}", out.status, tail(&out.stdout), tail(&out.stderr)))
    }
}

/// Runs `install` unless `present` and `stamp` shows that exactly the files in
/// `stamped` were installed last time; the stamp is written only after success.
fn install_once(
    present: bool,
    stamp: &Path,
    stamped: &[PathBuf],
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let mut expected = String::new();
    for file in stamped {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        expected.push_str(&format!("== {}\n{text}\n", file.display()));
    }
    if present && std::fs::read_to_string(stamp).is_ok_and(|s| s == expected) {
        return Ok(());
    }
    install()?;
    std::fs::write(stamp, expected).map_err(|e| e.to_string())
}

/// The Python of `target/ecosystem/venv`, with the pinned requirements, the client
/// package's test requirements and the client package (editable) installed.
fn python() -> Result<PathBuf, String> {
    static PYTHON: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    let mut python = PYTHON.lock().unwrap_or_else(|e| e.into_inner());
    python.get_or_insert_with(prepare_python).clone()
}

fn prepare_python() -> Result<PathBuf, String> {
    let venv = work_dir().join("venv");
    let python = venv.join("bin/python");
    let client = repo().join("clients/python");
    let mut stamped = vec![compat_dir().join("requirements.txt")];
    let mut args = vec!["-r".into(), compat_dir().join("requirements.txt")];
    if client.join("requirements-test.txt").exists() {
        stamped.push(client.join("requirements-test.txt"));
        args.extend(["-r".into(), client.join("requirements-test.txt")]);
    }
    if client.join("pyproject.toml").exists() {
        stamped.push(client.join("pyproject.toml"));
        args.extend(["-e".into(), client]);
    }
    let stamp = venv.join("latch-stamp");
    let install = || {
        let _ = std::fs::remove_dir_all(&venv);
        std::fs::create_dir_all(work_dir()).map_err(|e| e.to_string())?;
        run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv), Duration::from_secs(120))?;
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(&args);
        run_ok(&mut pip, Duration::from_secs(900)).map(drop)
    };
    install_once(python.exists(), &stamp, &stamped, install)
        .map(|()| python.clone())
        .map_err(|e| format!("the Python tools could not be installed: {e}"))
}

/// `target/ecosystem/node`, holding `node_modules` from `npm ci` of `tests/compat`.
fn node_dir() -> Result<PathBuf, String> {
    static NODE: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    let mut node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    node.get_or_insert_with(prepare_node).clone()
}

fn prepare_node() -> Result<PathBuf, String> {
    let version = run_ok(Command::new("node").arg("--version"), Duration::from_secs(30))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major < 20 {
        return Err(format!("node {version} is too old: the checks need node 20 or later"));
    }
    let dir = work_dir().join("node");
    let stamped = [compat_dir().join("package.json"), compat_dir().join("package-lock.json")];
    let present = dir.join("node_modules").exists();
    npm_ci(&dir, &stamped, present)
        .map(|()| dir.clone())
        .map_err(|e| format!("the Node tools could not be installed: {e}"))
}

/// A directory of its own under [`node_dir`] (so that imports find `node_modules`)
/// holding `files`, each copied under its own name.
fn node_workspace(node: &Path, files: &[PathBuf]) -> TempDir {
    let dir = tempfile::Builder::new().prefix("run-").tempdir_in(node).unwrap();
    for file in files {
        std::fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    dir
}

// ---------------------------------------------------------------------------------
// Latch

/// `latch serve` as a process on a free port, with its own data directory.
struct Latch {
    child: Child,
    base: String,
    dir: TempDir,
}

impl Latch {
    fn start() -> Latch {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = latch_command(dir.path());
        cmd.arg("serve")
            .env("LATCH_LISTEN", "127.0.0.1:0")
            .env("LATCH_RATE_LIMIT", "off")
            .env("LATCH_CORS_ORIGINS", APP_ORIGIN)
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("latch serve printed {line:?}:\n{log}");
        };
        let base = base.to_owned();
        // Keep draining what it prints, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Latch { child, base, dir }
    }

    /// The `latch` command line on this server's data.
    fn cli(&self, args: &[&str]) -> Output {
        latch_command(self.dir.path()).args(args).output().unwrap()
    }

    /// Registers [`USER`] with [`PASSWORD`].
    async fn register(&self) {
        let body = json!({ "username": USER, "email": format!("{USER}@example.com"), "password": PASSWORD });
        let r = reqwest::Client::new().post(format!("{}/users", self.base)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }

    /// A confidential client from `latch client create`, as `(id, secret)`, once the
    /// running server knows it (it rereads the registry of a SQLite file every half
    /// second).
    async fn confidential_client(&self) -> Result<(String, String), String> {
        let (id, secret) = self.create_confidential_client()?;
        self.wait_for_client(&id, &secret).await;
        Ok((id, secret))
    }

    /// Waits until the running server knows the confidential client `id`.
    async fn wait_for_client(&self, id: &str, secret: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let http = reqwest::Client::new();
        loop {
            let r = http.post(format!("{}/introspect", self.base)).basic_auth(id, Some(secret)).form(&[("token", "x")]);
            if r.send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not learn of the new client within 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn create_confidential_client(&self) -> Result<(String, String), String> {
        let out = self.cli(&["client", "create", "--name", "compat", "--confidential", "--json"]);
        if !out.status.success() {
            return Err(format!("latch client create failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let client: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("latch client create: {e}"))?;
        match (client["client_id"].as_str(), client["client_secret"].as_str()) {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => Err(format!("latch client create printed {client}")),
        }
    }

    /// The environment of the check scripts: where Latch is, who logs in, which origin
    /// is allowed, and the confidential client when there is one.
    fn script_env(&self, client: &Result<(String, String), String>) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LATCH_URL", self.base.clone()),
            ("LATCH_USER", USER.to_owned()),
            ("LATCH_PASSWORD", PASSWORD.to_owned()),
            ("LATCH_CORS_ORIGIN", APP_ORIGIN.to_owned()),
        ];
        if let Ok((id, secret)) = client {
            env.extend([("LATCH_CLIENT_ID", id.clone()), ("LATCH_CLIENT_SECRET", secret.clone())]);
        }
        env
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Latch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `latch` binary on `data_dir`, without the caller's `LATCH_*` variables.
fn latch_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.env("LATCH_LOG", "warn").env("LATCH_DATA_DIR", data_dir);
    cmd
}

/// `cmd` with the given `LATCH_*` variables and none of the caller's.
fn with_env<'a>(cmd: &'a mut Command, env: &[(&str, String)]) -> &'a mut Command {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCH_")) {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
}

// ---------------------------------------------------------------------------------
// Tables

/// One check of a script: library, check, result.
type Row = [String; 3];

/// The rows of the table a script printed on stdout.
fn rows(stdout: &[u8]) -> Vec<Row> {
    String::from_utf8_lossy(stdout)
        .lines()
        .skip(2) // header and rule
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            (cells.len() == 3).then(|| [cells[0].to_owned(), cells[1].to_owned(), cells[2].to_owned()])
        })
        .collect()
}

fn table(rows: &[Row]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(7);
    let (a, b) = (width(0), width(1));
    let mut out =
        format!("{:a$} | {:b$} | result\n{}-|-{}-|-------\n", "library", "check", "-".repeat(a), "-".repeat(b));
    for [library, check, result] in rows {
        out.push_str(&format!("{library:a$} | {check:b$} | {result}\n"));
    }
    out
}

/// Prints `table` and writes it to `target/ecosystem/<file>`.
fn publish(file: &str, title: &str, table: &str) {
    eprintln!("\n{title}\n{table}");
    std::fs::create_dir_all(work_dir()).unwrap();
    std::fs::write(work_dir().join(file), format!("{title}\n{table}")).unwrap();
}

/// What went wrong in a script's run: its failed rows, or its exit and output when it
/// failed without saying why in a row.
fn failures(name: &str, out: &Output, rows: &[Row]) -> Vec<String> {
    let mut failed: Vec<String> = rows.iter().filter(|r| r[2] != "PASS").map(|r| r.join(" | ")).collect();
    if rows.is_empty() || (failed.is_empty() && !out.status.success()) {
        failed.push(format!("{name} exited with {}:\n{}\n{}", out.status, tail(&out.stdout), tail(&out.stderr)));
    }
    failed
}

// ---------------------------------------------------------------------------------
// The tests

/// PyJWT, python-jose, joserfc, authlib (RFC 9068 validator and OAuth2Session),
/// requests-oauthlib and node's jose, at the pinned versions, each with its default
/// settings; and CORS as a browser meets it.
#[tokio::test]
async fn the_pinned_ecosystem_verifies_and_uses_latch_tokens() {
    const TEST: &str = "compatibility table (tests/compat)";
    let (python, node) = match (python(), node_dir()) {
        (Ok(python), Ok(node)) => (python, node),
        (python, node) => {
            let reasons: Vec<String> = [python.err(), node.err()].into_iter().flatten().collect();
            return not_run(TEST, &reasons.join("\n"));
        }
    };
    let latch = Latch::start();
    latch.register().await;
    let client = latch.confidential_client().await;
    let env = latch.script_env(&client);

    let mut cmd = Command::new(&python);
    let py = run(with_env(cmd.arg(compat_dir().join("check_python.py")), &env), Duration::from_secs(300)).unwrap();
    let workspace = node_workspace(&node, &[compat_dir().join("check_node.mjs"), compat_dir().join("report.mjs")]);
    let mut cmd = Command::new("node");
    let js = run(with_env(cmd.arg(workspace.path().join("check_node.mjs")), &env), Duration::from_secs(120)).unwrap();

    let (py_rows, js_rows) = (rows(&py.stdout), rows(&js.stdout));
    let all: Vec<Row> = py_rows.iter().chain(&js_rows).cloned().collect();
    publish("compat-table.txt", "Latch compatibility (pinned in tests/compat):", &table(&all));
    let mut failed = failures("check_python.py", &py, &py_rows);
    failed.extend(failures("check_node.mjs", &js, &js_rows));
    if let Err(e) = &client {
        failed.push(e.clone());
    }
    assert!(failed.is_empty(), "compatibility checks failed:\n{}\n\nserver log:\n{}", failed.join("\n"), latch.log());
}

/// authlib's OAuth client (code + PKCE, ID token, userinfo, refresh, end-session) and
/// the FastAPI example of `docs/oidc.md` (authlib's Starlette integration) sign a person
/// in through a real Latch, at the pinned versions (`tests/compat/check_oidc.py`).
#[tokio::test]
async fn openid_relying_parties_sign_in_through_latch() {
    const TEST: &str = "OpenID relying parties (tests/compat/check_oidc.py)";
    let python = match python() {
        Ok(python) => python,
        Err(reason) => return not_run(TEST, &reason),
    };
    let latch = Latch::start();
    latch.register().await;
    let created = |args: &[&str]| -> Value {
        let out = latch.cli(&[&["client", "create", "--json"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let back = ["--post-logout-redirect-uri", "http://127.0.0.1:8000/"];
    let public =
        created(&[&["--name", "authlib", "--redirect-uri", "http://127.0.0.1:8000/callback"], &back[..]].concat());
    let scopes = ["openid", "profile", "email", "offline_access", "reports"].map(|s| ["--scope", s]).concat();
    let confidential = created(
        &[
            &["--name", "FastAPI example", "--confidential", "--redirect-uri", "http://127.0.0.1:8000/auth"],
            &back[..],
            &scopes,
        ]
        .concat(),
    );
    let (id, secret) = (confidential["client_id"].as_str().unwrap(), confidential["client_secret"].as_str().unwrap());
    latch.wait_for_client(id, secret).await;
    let mut env = latch.script_env(&Ok((id.to_owned(), secret.to_owned())));
    env.push(("LATCH_PUBLIC_CLIENT_ID", public["client_id"].as_str().unwrap().to_owned()));
    env.push(("LATCH_EXAMPLES", repo().join("docs/integrate/examples").display().to_string()));
    let mut cmd = Command::new(&python);
    let out = run(with_env(cmd.arg(compat_dir().join("check_oidc.py")), &env), Duration::from_secs(300)).unwrap();
    let rows = rows(&out.stdout);
    publish("oidc-table.txt", "OpenID relying parties (pinned in tests/compat):", &table(&rows));
    let failed = failures("check_oidc.py", &out, &rows);
    assert!(failed.is_empty(), "relying parties failed:\n{}\n\nserver log:\n{}", failed.join("\n"), latch.log());
}

/// The examples of express.md and spa.md, which check_examples.mjs runs.
const NODE_EXAMPLES: &[&str] =
    &["express_app.mjs", "express_auth.mjs", "express_introspect.mjs", "spa_auth.mjs", "spa_session.mjs"];

/// The Node examples of `docs/integrate` (Express, single-page app) against Latch.
#[tokio::test]
async fn the_node_examples_of_the_guides_run_against_latch() {
    const TEST: &str = "Node examples of docs/integrate";
    let node = match node_dir() {
        Ok(node) => node,
        Err(reason) => return not_run(TEST, &reason),
    };
    let latch = Latch::start();
    latch.register().await;
    let client = latch.confidential_client().await;
    let env = latch.script_env(&client);
    let examples = repo().join("docs/integrate/examples");
    let files: Vec<PathBuf> = NODE_EXAMPLES
        .iter()
        .map(|f| examples.join(f))
        .chain([compat_dir().join("check_examples.mjs"), compat_dir().join("report.mjs")])
        .collect();
    let workspace = node_workspace(&node, &files);
    let mut cmd = Command::new("node");
    let out =
        run(with_env(cmd.arg(workspace.path().join("check_examples.mjs")), &env), Duration::from_secs(120)).unwrap();
    let rows = rows(&out.stdout);
    publish("examples-table.txt", "Node examples of docs/integrate:", &table(&rows));
    let mut failed = failures("check_examples.mjs", &out, &rows);
    if let Err(e) = &client {
        failed.push(e.clone());
    }
    assert!(failed.is_empty(), "guide examples failed:\n{}\n\nserver log:\n{}", failed.join("\n"), latch.log());
}

/// `clients/python`'s pytest suite, which starts its own Latch from `LATCH_BIN`.
#[tokio::test]
async fn the_python_client_package_passes_its_tests() {
    const TEST: &str = "pytest clients/python";
    if !repo().join("clients/python").exists() {
        return not_run(TEST, "clients/python does not exist");
    }
    let python = match python() {
        Ok(python) => python,
        Err(reason) => return not_run(TEST, &reason),
    };
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "clients/python"]).current_dir(repo());
    let env = [("LATCH_BIN", env!("CARGO_BIN_EXE_latch").to_owned())];
    let out = run(with_env(&mut cmd, &env), Duration::from_secs(600)).unwrap();
    eprintln!("{}", tail(&out.stdout));
    assert!(out.status.success(), "pytest clients/python failed:\n{}\n{}", tail(&out.stdout), tail(&out.stderr));
}

/// Every snippet of a guide is an example file, shown verbatim, and every example file
/// is shown by a guide: what CI runs is what readers copy.
#[test]
fn the_guides_show_their_examples_verbatim() {
    let problems = guide_problems(&repo().join("docs/integrate"), &[repo().join("docs/oidc.md")]);
    assert!(problems.is_empty(), "docs/integrate drifted from its examples:\n{}", problems.join("\n"));
}

/// The libraries of the compatibility table in docs/integrate/README.md.
const TABLE_LIBRARIES: &[&str] = &["PyJWT", "python-jose", "joserfc", "authlib", "requests-oauthlib", "jose"];

/// The compatibility table names the versions that are checked, not older ones.
#[test]
fn the_compatibility_table_names_the_pinned_versions() {
    let mut pins: Vec<(String, String)> = std::fs::read_to_string(compat_dir().join("requirements.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, version) = line.split_once("==").unwrap_or_else(|| panic!("not pinned exactly: {line}"));
            (name.split('[').next().unwrap().to_owned(), version.to_owned())
        })
        .collect();
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(compat_dir().join("package.json")).unwrap()).unwrap();
    for (name, version) in package["dependencies"].as_object().unwrap() {
        let version = version.as_str().unwrap();
        assert!(version.chars().all(|c| c.is_ascii_digit() || c == '.'), "not pinned exactly: {name} {version}");
        pins.push((name.clone(), version.to_owned()));
    }
    let readme = std::fs::read_to_string(repo().join("docs/integrate/README.md")).unwrap();
    for library in TABLE_LIBRARIES {
        let (_, version) =
            pins.iter().find(|(name, _)| name == library).unwrap_or_else(|| panic!("{library} is not pinned"));
        let cell = format!("| {library} {version} |");
        assert!(readme.contains(&cell), "docs/integrate/README.md does not name {library} {version} (as `{cell}`)");
    }
}

/// Info strings of fenced blocks that are programs: such a block must be an example.
const PROGRAM_LANGUAGES: &[&str] =
    &["python", "py", "js", "javascript", "mjs", "ts", "typescript", "rust", "rs", "html", "jsx", "tsx"];

const MARKER_START: &str = "<!-- example:";

/// What is wrong between the pages of `dir` (and the pages `also`, whose markers name
/// files of `dir` too) and the files of `dir/examples`.
fn guide_problems(dir: &Path, also: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "no guides in {}", dir.display());
    pages.extend_from_slice(also);
    for page in &pages {
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(page).unwrap().replace("\r\n", "\n");
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim();
            let marker = line.strip_prefix(MARKER_START).and_then(|rest| rest.strip_suffix("-->")).map(str::trim);
            let Some((fence, info)) = fence(lines.get(i + usize::from(marker.is_some())).copied().unwrap_or("")) else {
                if let Some(file) = marker {
                    problems.push(format!("{name}:{}: the marker of {file} is not followed by a fenced block", i + 1));
                }
                i += 1;
                continue;
            };
            let open = i + usize::from(marker.is_some());
            let close = (open + 1..lines.len()).find(|&j| closes(lines[j], &fence));
            let Some(close) = close else {
                problems.push(format!("{name}:{}: unclosed fenced block", open + 1));
                break;
            };
            let body = lines[open + 1..close].join("\n");
            match marker {
                Some(file) => {
                    shown.insert(dir.join(file));
                    match std::fs::read_to_string(dir.join(file)) {
                        Ok(content) => {
                            if let Some(at) = first_difference(&body, &content.replace("\r\n", "\n")) {
                                problems.push(format!(
                                    "{name}:{}: the block differs from {file} (at its line {at})",
                                    open + 1
                                ));
                            }
                        }
                        Err(e) => problems.push(format!("{name}:{}: {file}: {e}", i + 1)),
                    }
                }
                None if PROGRAM_LANGUAGES.contains(&info.as_str()) => problems.push(format!(
                    "{name}:{}: a {info} block that is not an example file (precede it with {MARKER_START} examples/<file> -->)",
                    open + 1
                )),
                None => {}
            }
            i = close + 1;
        }
    }
    let mut files = Vec::new();
    example_files(&dir.join("examples"), &mut files);
    for file in files {
        if !shown.contains(&file) {
            problems.push(format!("{} is shown by no guide", file.strip_prefix(dir).unwrap().display()));
        }
    }
    problems
}

/// The fence (``` or ~~~, three or more) and lower-case language of an opening fence line.
fn fence(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let fence: String = line.chars().take_while(|c| *c == ch).collect();
    (fence.len() >= 3).then(|| {
        let info = line[fence.len()..].split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        (fence, info)
    })
}

fn closes(line: &str, fence: &str) -> bool {
    let line = line.trim();
    line.starts_with(fence) && line.chars().all(|c| fence.starts_with(c))
}

/// The first line (1-based) where `block` and `file` differ, ignoring trailing newlines.
fn first_difference(block: &str, file: &str) -> Option<usize> {
    let (a, b) = (block.trim_end_matches('\n'), file.trim_end_matches('\n'));
    if a == b {
        return None;
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
    Some((0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)).unwrap_or(0) + 1)
}

/// The example files under `dir`, leaving out what tools leave behind.
fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" || name.ends_with(".pyc") {
            continue;
        }
        if path.is_dir() {
            example_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The drift check itself catches drift, a block without its example, and an example
/// without its page.
#[test]
fn the_guide_check_catches_drift() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::write(dir.path().join("examples/a.mjs"), "one\ntwo\n").unwrap();
    std::fs::write(dir.path().join("examples/b.py"), "print()\n").unwrap();
    let page = "# Guide\n\n<!-- example: examples/a.mjs -->\n```js\none\ntwo\n```\n\n```sh\nnpm i jose\n```\n";
    std::fs::write(dir.path().join("guide.md"), page).unwrap();
    assert_eq!(guide_problems(dir.path(), &[]), ["examples/b.py is shown by no guide"]);

    std::fs::write(dir.path().join("guide.md"), page.replace("two\n```", "2\n```") + "\n```python\nprint()\n```\n")
        .unwrap();
    let problems = guide_problems(dir.path(), &[]);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("guide.md:4: the block differs from examples/a.mjs (at its line 2)"),
        "{problems:?}"
    );
    assert!(problems[1].starts_with("guide.md:13: a python block that is not an example file"), "{problems:?}");
    assert_eq!(problems[2], "examples/b.py is shown by no guide");
}

/// `npm ci` of the `package.json` and lock in `stamped` into `dir`, unless `present` and
/// the stamp says they have not changed since the last install.
pub(crate) fn npm_ci(dir: &Path, stamped: &[PathBuf], present: bool) -> Result<(), String> {
    let install = || {
        let _ = std::fs::remove_dir_all(dir.join("node_modules"));
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for file in stamped {
            std::fs::copy(file, dir.join(file.file_name().unwrap())).map_err(|e| e.to_string())?;
        }
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir);
        run_ok(&mut npm, Duration::from_secs(600)).map(drop)
    };
    install_once(present, &dir.join("latch-stamp"), stamped, install)
}
