//! The hosted pages (SPEC §7) in a real browser: Debian's Chromium, headless, driven
//! over WebDriver by `chromedriver` through the `fantoccini` client, against a real
//! Latch (SQLite, the `file:` mailer, the test clock).
//!
//! Three journeys, each with its own server, chromedriver and browsers:
//! - the main one: sign up at `/signup`, open the verification link of the mail and
//!   confirm, sign in at `/login`, on `/account` change the password (first with a wrong
//!   current one), see the two sessions and end the other one (its refresh token then
//!   fails), sign out at `/logout`, ask for a reset link at `/forgot-password`, set a new
//!   password with the link of the mail, sign in with it and delete the account;
//! - the refusals: a wrong password, a taken username, an expired verification link, a
//!   used reset link, form posts from another origin of the site (with a planted CSRF
//!   cookie) and from another site, an outside `return_to`, and `/account` without a
//!   session, which goes through `/login` and back;
//! - a 375-px phone (Chromium's mobile emulation) on `/login` and `/account`, where
//!   nothing may be wider than the screen, and a browser with JavaScript turned off
//!   (the content setting, checked first on a page whose script would change its text)
//!   that signs in, changes the username and the address on the account page and signs
//!   out (the phone asks for a new verification link). The pages have no script at
//!   all (their CSP forbids it, which `suite/pages.rs` checks); this run shows that
//!   nothing depends on one.
//!
//! Every step asserts what the person sees (heading, message, field values, the HTTP
//! status of the page, read from the browser's navigation timing) and, where it
//! matters, what the server did, over HTTP. Every page and state visited is
//! screenshotted once, whole, to `target/browser/screenshots/<name>.png` and checked
//! with axe-core, injected by WebDriver (which the pages' CSP does not stop, as a probe
//! on the sign-in page shows: an unlabelled input added there must be reported): a
//! `serious` or `critical` violation fails the journey, and the table of pages ×
//! violations by impact is written to `target/browser/axe-table.txt` (axe cannot run
//! where JavaScript is off: those pages are screenshotted only). The sign-in page's
//! keyboard order is checked too.
//!
//! Tools: `chromium` and `chromedriver` from Debian (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them), and axe-core at the version pinned in
//! `tests/browser/package-lock.json`, installed by `npm ci` into `target/browser` when
//! the lock has changed since the last install. Without one of them these tests fail
//! under CI (`CI` set) and otherwise print `NOT RUN` loudly and pass.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ecosystem::{not_run, npm_ci};
use crate::helpers::*;

/// How long a page may take to load, or a mail to arrive: generous, since the whole
/// test binary runs in parallel on two cores.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
const DESKTOP: (u32, u32) = (1000, 1100);
const PHONE: (u32, u32) = (375, 812);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/browser`, wherever the target directory is.
pub(crate) fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").join("browser")
}

// ---------------------------------------------------------------------------------
// Tools

#[derive(Clone)]
pub(crate) struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    /// The source of `axe.min.js`.
    axe: Arc<String>,
}

/// The tools, found or installed once per test binary; `None` (after saying so) when
/// one is missing outside CI.
pub(crate) fn tools(test: &str) -> Option<Tools> {
    static TOOLS: Mutex<Option<Result<Tools, String>>> = Mutex::new(None);
    let found = TOOLS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(prepare_tools).clone();
    match found {
        Ok(tools) => Some(tools),
        Err(reason) => {
            not_run(test, &reason);
            None
        }
    }
}

fn prepare_tools() -> Result<Tools, String> {
    match (program("chromium"), program("chromedriver"), axe()) {
        (Ok(chromium), Ok(chromedriver), Ok(axe)) => Ok(Tools { chromium, chromedriver, axe: Arc::new(axe) }),
        (chromium, chromedriver, axe) => {
            Err([chromium.err(), chromedriver.err(), axe.err()].into_iter().flatten().collect::<Vec<_>>().join("\n"))
        }
    }
}

/// `name` on the `PATH` (or in `/usr/bin`).
fn program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed (apt-get install chromium chromium-driver)"))
}

/// `npm ci` of `tests/browser` into `target/browser` (when the lock changed), then the
/// source of `axe.min.js`.
fn axe() -> Result<String, String> {
    let dir = work_dir();
    let stamped = [repo().join("tests/browser/package.json"), repo().join("tests/browser/package-lock.json")];
    let script = dir.join("node_modules/axe-core/axe.min.js");
    npm_ci(&dir, &stamped, script.exists()).map_err(|e| format!("axe-core could not be installed: {e}"))?;
    std::fs::read_to_string(&script).map_err(|e| format!("{}: {e}", script.display()))
}

/// A `chromedriver` on a free port, in a process group of its own so that the browsers
/// it started end with it.
pub(crate) struct Chromedriver {
    child: Child,
    url: String,
    exited: bool,
}

impl Chromedriver {
    pub(crate) async fn start(tools: &Tools) -> Chromedriver {
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap();
            let mut driver = Chromedriver { child, url: format!("http://127.0.0.1:{port}"), exited: false };
            let deadline = Instant::now() + WAIT;
            while !driver.exited {
                let status = http.get(format!("{}/status", driver.url)).send().await;
                if let Ok(status) = status
                    && status.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
                {
                    return driver;
                }
                assert!(Instant::now() < deadline, "chromedriver did not get ready on port {port}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Exited: the port was taken in the meantime, so another one.
                driver.exited = driver.child.try_wait().unwrap().is_some();
            }
        }
        panic!("chromedriver did not start");
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals the process group that `start` made for this chromedriver.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("/session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

// ---------------------------------------------------------------------------------
// The browser

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Desktop,
    /// A 375-px-wide phone screen.
    Phone,
    /// JavaScript turned off.
    NoScript,
}

/// One Chromium session, on one Latch.
pub(crate) struct Browser {
    pub(crate) client: Client,
    base: String,
    axe: Arc<String>,
    kind: Kind,
    /// The serious and critical axe violations met so far.
    violations: Mutex<Vec<String>>,
}

impl Browser {
    pub(crate) async fn open(driver: &Chromedriver, tools: &Tools, base: &str, kind: Kind) -> Browser {
        let (width, height) = DESKTOP;
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-extensions".to_owned(),
            "--no-first-run".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={width},{height}"),
        ];
        let mut options = json!({ "binary": tools.chromium, "args": args });
        match kind {
            Kind::Desktop => {}
            Kind::Phone => {
                let (width, height) = PHONE;
                options["mobileEmulation"] =
                    json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2 } });
            }
            Kind::NoScript => {
                options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
            }
        }
        let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await.unwrap();
        Browser { client, base: base.to_owned(), axe: tools.axe.clone(), kind, violations: Mutex::new(Vec::new()) }
    }

    /// Opens a path of Latch, or any absolute URL.
    pub(crate) async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        self.client.goto(&url).await.unwrap();
    }

    /// The path and query of the page shown.
    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub(crate) async fn origin(&self) -> String {
        self.client.current_url().await.unwrap().origin().ascii_serialization()
    }

    /// The HTTP status of the page shown.
    pub(crate) async fn status(&self) -> u16 {
        let status = self.script("return performance.getEntriesByType('navigation')[0].responseStatus").await;
        u16::try_from(status.as_u64().expect("a status")).unwrap()
    }

    pub(crate) async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("{css} on {}: {e}\n{}", self.path().await, self.text().await),
        }
    }

    pub(crate) async fn heading(&self) -> String {
        self.find("h1").await.text().await.unwrap()
    }

    /// The text of the page's `<main>`.
    pub(crate) async fn text(&self) -> String {
        match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap(),
            Err(_) => self.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap(),
        }
    }

    pub(crate) async fn fill(&self, id: &str, text: &str) {
        let input = self.find(&format!("#{id}")).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// The value of the input with this id.
    pub(crate) async fn value(&self, id: &str) -> String {
        self.find(&format!("#{id}")).await.prop("value").await.unwrap().unwrap_or_default()
    }

    /// The error shown beside the input with this id: the `p.field-error` that its
    /// `aria-describedby` names, with `aria-invalid="true"` on the input.
    pub(crate) async fn field_error(&self, id: &str) -> String {
        let input = format!("#{id}");
        assert_eq!(self.attr(&input, "aria-invalid").await.as_deref(), Some("true"), "{id} is not marked invalid");
        let described = self.attr(&input, "aria-describedby").await.unwrap_or_default();
        let error = described.split_whitespace().find(|d| d.ends_with("-error"));
        let error = error.unwrap_or_else(|| panic!("{id} is described by no error: {described:?}"));
        let error = self.client.find(Locator::Id(error)).await.unwrap();
        assert_eq!(error.attr("class").await.unwrap().as_deref(), Some("field-error"));
        let text = error.text().await.unwrap();
        assert!(!text.is_empty(), "the error of {id} is empty");
        text
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    /// Presses the button labelled `label` of the form posting to `action`, and waits
    /// for the page that answers.
    pub(crate) async fn press(&self, action: &str, label: &str) {
        let xpath = format!("//form[@action='{action}']//button[normalize-space(.)='{label}']");
        let button = match self.client.find(Locator::XPath(&xpath)).await {
            Ok(button) => button,
            Err(e) => {
                panic!("no button {label:?} in a form to {action} on {}: {e}\n{}", self.path().await, self.text().await)
            }
        };
        self.click_and_wait(&button).await;
    }

    /// Clicks `element` (a button or link) and waits until the next page has loaded: a
    /// mark left on the old page's window is gone and the new document is complete.
    pub(crate) async fn click_and_wait(&self, element: &Element) {
        self.script("window.latchOldPage = true; return null").await;
        element.click().await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            // Between two documents a script may fail: then it is not loaded yet.
            let loaded = "return window.latchOldPage === undefined && document.readyState === 'complete'";
            if self.client.execute(loaded, vec![]).await.is_ok_and(|loaded| loaded == true) {
                return;
            }
            assert!(Instant::now() < deadline, "no new page after the click on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Follows the link with this text.
    pub(crate) async fn follow(&self, text: &str) {
        let link = self.client.find(Locator::LinkText(text)).await.unwrap();
        self.click_and_wait(&link).await;
    }

    pub(crate) async fn cookie_names(&self) -> BTreeSet<String> {
        self.client.get_all_cookies().await.unwrap().iter().map(|c| c.name().to_owned()).collect()
    }

    /// Screenshots the whole page to `screenshots/<name>.png` and checks it with axe
    /// (not where JavaScript is off: axe's own promises and timers then never run).
    pub(crate) async fn check(&self, name: &str) {
        self.screenshot(name).await;
        if self.kind != Kind::NoScript {
            self.axe(name).await;
        }
    }

    /// Runs a DevTools command in this browser and returns its result.
    pub(crate) async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        self.client.issue_cmd(Cdp { cmd, params }).await.unwrap()
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let cmd =
            Cdp { cmd: "Page.captureScreenshot", params: json!({ "format": "png", "captureBeyondViewport": true }) };
        let shot = self.client.issue_cmd(cmd).await.unwrap();
        let data = shot["data"].as_str().or(shot["value"]["data"].as_str()).expect("a screenshot");
        let png = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        let dir = work_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs axe-core on the page; records its violations in the table and keeps the
    /// serious and critical ones.
    async fn axe(&self, name: &str) {
        let violations = self.axe_violations(name).await;
        let mut row = AxeRow::default();
        for v in &violations {
            let impact = v["impact"].as_str().unwrap_or("minor");
            let i = IMPACTS.iter().position(|x| *x == impact).unwrap_or(0);
            row.counts[i] += 1;
            row.rules.insert(format!("{} ({impact})", v["id"].as_str().unwrap()));
            if impact == "serious" || impact == "critical" {
                let mut report = format!("{name}: {} ({impact}): {}", v["id"], v["help"]);
                for node in v["nodes"].as_array().unwrap() {
                    report.push_str(&format!("\n    {} {}\n      {}", node["target"], node["html"], node["summary"]));
                }
                eprintln!("axe violation on {report}");
                self.violations.lock().unwrap().push(report);
            }
        }
        record_axe(name, row);
    }

    /// What axe-core finds on the page: its violations (`id`, `impact`, `help`, `nodes`).
    async fn axe_violations(&self, name: &str) -> Vec<Value> {
        if self.script("return typeof window.axe").await != "object" {
            let injected = self.client.execute(&format!("{}\n;return typeof window.axe;", self.axe), vec![]).await;
            assert_eq!(injected.unwrap(), "object", "axe-core did not load on {name}");
        }
        const RUN: &str = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(
              (r) => done(JSON.stringify(r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html, summary: n.failureSummary })),
              })))),
              (e) => done('axe failed: ' + e));";
        let result = self.client.execute_async(RUN, vec![]).await.unwrap();
        let result = result.as_str().expect("axe answers a string");
        serde_json::from_str(result).unwrap_or_else(|_| panic!("axe on {name}: {result}"))
    }

    /// The ids (or texts) of the elements that Tab visits, in order, from the top of the
    /// page until it leaves the page.
    async fn tab_order(&self) -> Vec<String> {
        self.script("document.activeElement && document.activeElement.blur(); return null").await;
        let mut order = Vec::new();
        for _ in 0..20 {
            let tab = char::from(Key::Tab);
            let press = KeyActions::new("keyboard".to_owned())
                .then(KeyAction::Down { value: tab })
                .then(KeyAction::Up { value: tab });
            self.client.perform_actions(press).await.unwrap();
            let at = self
                .script(
                    "const e = document.activeElement;
                return !e || e === document.body ? '' : e.id || e.textContent.trim();",
                )
                .await;
            let at = at.as_str().unwrap_or_default().to_owned();
            if at.is_empty() || order.contains(&at) {
                break;
            }
            order.push(at);
        }
        order
    }

    /// Nothing on the page is wider than the screen, and the screen is the phone's.
    async fn fits_the_screen(&self, name: &str) {
        const FIT: &str = "const w = window.innerWidth;
            const wide = [...document.querySelectorAll('main, main *')]
              .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < 0 || r.right > w + 0.5); })
              .map((e) => e.outerHTML.slice(0, 80));
            return { width: w, scroll: document.documentElement.scrollWidth, wide };";
        let fit = self.script(FIT).await;
        assert_eq!(fit["width"], PHONE.0, "{name}: the page is laid out for {} px", fit["width"]);
        assert!(fit["scroll"].as_u64().unwrap() <= u64::from(PHONE.0), "{name} scrolls sideways: {fit}");
        assert_eq!(fit["wide"], json!([]), "{name}: wider than the screen");
    }

    /// Signs in on the `/login` page shown.
    pub(crate) async fn sign_in(&self, login: &str, password: &str) {
        self.fill("username", login).await;
        self.fill("password", password).await;
        self.press("/login", "Sign in").await;
    }

    /// Fails on the serious and critical violations met, then ends the session.
    pub(crate) async fn finish(self) {
        let violations = self.violations.lock().unwrap().clone();
        let _ = self.client.close().await;
        assert!(violations.is_empty(), "serious or critical axe violations:\n{}", violations.join("\n"));
    }
}

// ---------------------------------------------------------------------------------
// The axe table

const IMPACTS: [&str; 4] = ["minor", "moderate", "serious", "critical"];

#[derive(Default, Clone)]
struct AxeRow {
    counts: [usize; 4],
    rules: BTreeSet<String>,
}

/// Adds a page's row and rewrites `target/browser/axe-table.txt` with every page checked
/// by this run so far.
fn record_axe(page: &str, row: AxeRow) {
    static TABLE: Mutex<BTreeMap<String, AxeRow>> = Mutex::new(BTreeMap::new());
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    table.insert(page.to_owned(), row);
    let width = table.keys().map(|k| k.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "axe-core violations (rules) by impact, per page\n{:width$} | critical | serious | moderate | minor | rules\n{}-|----------|---------|----------|-------|------\n",
        "page",
        "-".repeat(width)
    );
    for (page, row) in table.iter() {
        let [minor, moderate, serious, critical] = row.counts;
        let rules = row.rules.iter().cloned().collect::<Vec<_>>().join(", ");
        out.push_str(&format!("{page:width$} | {critical:8} | {serious:7} | {moderate:8} | {minor:5} | {rules}\n"));
    }
    std::fs::create_dir_all(work_dir()).unwrap();
    std::fs::write(work_dir().join("axe-table.txt"), out).unwrap();
}

// ---------------------------------------------------------------------------------
// Another site

/// A CSRF token of the form Latch issues, planted by another origin of the site.
const PLANTED: &str = "PLANTEDplantedPLANTEDplantedPLANTEDplanted0";

/// A tiny HTTP server on another port: `/` holds forms that post to Latch, and
/// `/script` a page whose script replaces its text.
struct OtherSite {
    port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl OtherSite {
    async fn start(latch: &str) -> OtherSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forms = format!(
            r#"<!doctype html><html lang="en"><head><title>Prizes</title></head><body><main><h1>You won</h1>
<form method="post" action="{latch}/account/delete"><input type="hidden" name="csrf" value="{PLANTED}">
<input type="hidden" name="password" value="{PASSWORD}"><button type="submit">Claim the prize</button></form>
<form method="post" action="{latch}/login"><input type="hidden" name="csrf" value="{PLANTED}">
<input type="hidden" name="username" value="mallory"><input type="hidden" name="password" value="{PASSWORD}">
<button type="submit">Claim another prize</button></form></main></body></html>"#
        );
        let script = r#"<!doctype html><html lang="en"><head><title>Probe</title></head><body><main>
<p id="probe">script off</p><script>document.getElementById('probe').textContent = 'script on';</script></main></body></html>"#;
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let (forms, script) = (forms.clone(), script.to_owned());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (body, cookie) = if request.starts_with(b"GET /script ") {
                        (script, String::new())
                    } else {
                        (forms, format!("set-cookie: latch_csrf={PLANTED}; Path=/\r\n"))
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n{cookie}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        OtherSite { port, server }
    }

    /// The page at `path` of this site under `host`: `127.0.0.1` is another origin of
    /// Latch's site, `localhost` another site.
    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for OtherSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ---------------------------------------------------------------------------------
// Helpers

/// The link of an email that starts with `prefix`, as written in its plain text.
fn link_in(mail: &str, prefix: &str) -> String {
    let start = mail.find(prefix).unwrap_or_else(|| panic!("no link {prefix}… in\n{mail}"));
    mail[start..].chars().take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>')).collect()
}

async fn assert_login_fails(app: &TestApp, login: &str, password: &str) {
    let status = app.token(login, password).await.status();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{login} signs in with {password:?}");
}

// ---------------------------------------------------------------------------------
// The journeys

const FIRST: &str = "first passphrase of erin";
const SECOND: &str = "second passphrase of erin";
const THIRD: &str = "third passphrase of erin";

#[tokio::test]
async fn a_person_signs_up_confirms_signs_in_manages_the_account_and_deletes_it() {
    let Some(tools) = tools("browser: the main journey") else { return };
    let started = Instant::now();
    let app = spawn_app_with(|c| c.require_verified_email = true).await;
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &app.base, Kind::Desktop).await;

    // Sign up: the form, then "check your email".
    b.goto("/signup").await;
    assert_eq!(b.status().await, 200);
    b.check("signup").await;
    b.fill("username", "erin").await;
    b.fill("email", "erin@example.com").await;
    b.fill("password", FIRST).await;
    b.press("/signup", "Create account").await;
    assert_eq!(b.heading().await, "Check your email", "{}", b.text().await);
    b.check("signup-check-email").await;
    let r = app.token("erin", FIRST).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the account exists, not confirmed yet");
    assert!(r.text().await.unwrap().contains("email_not_verified"));

    // The link of the mail, verbatim: opening it shows a button, the button confirms.
    let mail = app.email_about("erin@example.com", "verify-email");
    b.goto(&link_in(&mail, &app.url("/verify-email?token="))).await;
    assert_eq!(b.status().await, 200);
    b.check("verify-email").await;
    b.press("/verify-email", "Confirm my address").await;
    assert!(b.text().await.contains("Your email address is confirmed"), "{}", b.text().await);
    b.check("verify-email-done").await;

    // Sign in: straight to the account page.
    b.goto("/login").await;
    b.check("login").await;
    // The checker itself finds what it should under the pages' CSP: an unlabelled input
    // added to the page is a critical violation.
    b.script("const i = document.createElement('input'); i.id = 'probe'; document.querySelector('form').append(i)")
        .await;
    let found = b.axe_violations("login with a probe").await;
    assert!(found.iter().any(|v| v["id"] == "label" && v["impact"] == "critical"), "axe missed it: {found:?}");
    b.script("document.getElementById('probe').remove()").await;
    // The keyboard goes through the form in reading order.
    let order = b.tab_order().await;
    assert_eq!(order, ["username", "password", "Sign in", "Forgot your password?", "Create an account"]);
    b.sign_in("erin", FIRST).await;
    assert_eq!(b.path().await, "/account");
    assert_eq!(b.heading().await, "Your account");
    assert!(b.cookie_names().await.contains("latch_session"));
    assert_eq!(b.value("profile-username").await, "erin");
    let email_section = b.text().await;
    assert!(email_section.contains("erin@example.com"), "{email_section}");
    assert!(
        b.client.find(Locator::XPath("//form[@action='/account/verification']")).await.is_err(),
        "a confirmed address offers no new link"
    );
    b.check("account").await;

    // Change the password: a wrong current one is refused beside its field.
    b.fill("password-current", "not the passphrase").await;
    b.fill("password-new", SECOND).await;
    b.press("/account/password", "Change password").await;
    assert!((400..500).contains(&b.status().await), "status {}", b.status().await);
    assert!(b.field_error("password-current").await.contains("not right"));
    assert_eq!(b.value("password-current").await, "", "a password is never shown again");
    assert_eq!(b.value("password-new").await, "");
    b.check("account-error").await;
    b.fill("password-current", FIRST).await;
    b.fill("password-new", SECOND).await;
    b.press("/account/password", "Change password").await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    let notice = b.find("p.notice[role=status]").await.text().await.unwrap();
    assert!(!notice.is_empty());
    b.check("account-password-changed").await;
    assert_login_fails(&app, "erin", FIRST).await;
    // Signing in elsewhere (the API's password grant) starts a second session.
    let other: Tokens = app.token("erin", SECOND).await.json().await.unwrap();

    // The sessions: two, this browser's marked; end the other one.
    b.goto("/account").await;
    let sessions = b.client.find_all(Locator::Css("ul.sessions > li")).await.unwrap();
    assert_eq!(sessions.len(), 2, "{}", b.text().await);
    let mut marked = 0;
    for session in &sessions {
        marked += usize::from(session.text().await.unwrap().contains("this browser"));
    }
    assert_eq!(marked, 1, "{}", b.text().await);
    let end_other = "//ul[@class='sessions']/li[not(contains(., 'this browser'))]\
                     //form[@action='/account/sessions/end']//button[normalize-space(.)='Sign out']";
    let button = b.client.find(Locator::XPath(end_other)).await.unwrap();
    b.click_and_wait(&button).await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    // Back on the page after the change, so that a reload posts nothing again.
    assert_eq!(b.path().await, "/account?done=session");
    assert!(!b.find("p.notice[role=status]").await.text().await.unwrap().is_empty());
    let sessions = b.client.find_all(Locator::Css("ul.sessions > li")).await.unwrap();
    assert_eq!(sessions.len(), 1, "{}", b.text().await);
    assert!(sessions[0].text().await.unwrap().contains("this browser"));
    b.check("account-session-ended").await;
    let r = app.refresh(&other.refresh_token).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the ended session's refresh token still works");

    // Sign out: GET asks, the button signs out.
    b.goto("/logout").await;
    assert_eq!(b.heading().await, "Sign out");
    b.check("logout").await;
    b.press("/logout", "Sign out").await;
    assert_eq!(b.heading().await, "Signed out");
    assert!(!b.cookie_names().await.contains("latch_session"));
    b.check("logout-done").await;
    b.goto("/account").await;
    assert_eq!(b.path().await, "/login?return_to=%2Faccount", "signed out, the account page asks to sign in");

    // Forgot the password: the page behind the sign-in form's link, then the mail's.
    b.goto("/login").await;
    b.follow("Forgot your password?").await;
    assert_eq!(b.path().await, "/forgot-password");
    b.check("forgot-password").await;
    b.fill("email", "erin@example.com").await;
    b.press("/forgot-password", "Email me a link").await;
    assert!(b.text().await.contains("If an account uses this address"), "{}", b.text().await);
    b.check("forgot-password-done").await;
    let mail = tokio::time::timeout(WAIT, app.email_arriving("erin@example.com", "reset-password")).await.unwrap();
    b.goto(&link_in(&mail, &app.url("/reset-password?token="))).await;
    b.check("reset-password").await;
    b.fill("new_password", THIRD).await;
    b.press("/reset-password", "Set the new password").await;
    assert!(b.text().await.contains("Your password is changed"), "{}", b.text().await);
    b.check("reset-password-done").await;
    assert_login_fails(&app, "erin", SECOND).await;

    // Sign in with it, then delete the account.
    b.goto("/login").await;
    b.sign_in("erin@example.com", THIRD).await;
    assert_eq!(b.path().await, "/account");
    b.fill("delete-password", THIRD).await;
    b.press("/account/delete", "Delete my account").await;
    assert_eq!(b.heading().await, "Account deleted", "{}", b.text().await);
    assert!(!b.cookie_names().await.contains("latch_session"));
    b.check("account-deleted").await;
    assert_login_fails(&app, "erin", THIRD).await;

    b.finish().await;
    eprintln!("browser: the main journey took {:?}", started.elapsed());
}

#[tokio::test]
async fn wrong_input_old_links_other_sites_and_outside_return_to_are_refused() {
    let Some(tools) = tools("browser: the refusals") else { return };
    let started = Instant::now();
    let app = spawn_app().await;
    app.create_user("frank").await;
    app.create_user("mallory").await;
    let other = OtherSite::start(&app.base).await;
    let driver = Chromedriver::start(&tools).await;
    let b = Browser::open(&driver, &tools, &app.base, Kind::Desktop).await;

    // A taken username: the error beside that field, the email kept, no password.
    b.goto("/signup").await;
    b.fill("username", "mallory").await;
    b.fill("email", "new@example.com").await;
    b.fill("password", PASSWORD).await;
    b.press("/signup", "Create account").await;
    assert_eq!(b.status().await, 409, "{}", b.text().await);
    assert!(b.field_error("username").await.contains("taken"), "{}", b.text().await);
    assert_eq!(b.value("username").await, "mallory");
    assert_eq!(b.value("email").await, "new@example.com");
    assert_eq!(b.value("password").await, "");
    b.check("signup-error").await;
    assert_login_fails(&app, "new@example.com", PASSWORD).await;

    // The account page without a session: through the sign-in page and back.
    b.goto("/account").await;
    assert_eq!(b.path().await, "/login?return_to=%2Faccount");
    assert_eq!(b.attr("input[name=return_to]", "value").await.as_deref(), Some("/account"));

    // A wrong password: the error beside the form, the username kept, no password.
    b.sign_in("frank", "not the password").await;
    assert_eq!(b.status().await, 401, "{}", b.text().await);
    let error = b.find("p.error[role=alert]#form-error").await.text().await.unwrap();
    assert!(error.contains("not right"), "{error}");
    assert_eq!(b.value("username").await, "frank");
    assert_eq!(b.value("password").await, "");
    b.check("login-error").await;
    b.fill("password", PASSWORD).await;
    b.press("/login", "Sign in").await;
    assert_eq!(b.path().await, "/account", "back where the person wanted to go");
    assert_eq!(b.value("profile-username").await, "frank");

    // Signed in, /login goes straight on, but never to an outside return_to.
    b.goto("/login?return_to=https://evil.example/").await;
    assert_eq!(b.origin().await, app.base);
    assert_eq!(b.path().await, "/account");

    // Forms of another origin of the site (which also planted a CSRF cookie of the
    // right form) and of another site: refused, nothing changes.
    b.goto(&other.url("127.0.0.1", "/")).await;
    let csrf = b.client.get_named_cookie("latch_csrf").await.unwrap();
    assert_eq!(csrf.value(), PLANTED, "the other origin replaced the CSRF cookie");
    b.press(&app.url("/account/delete"), "Claim the prize").await;
    assert_eq!(b.status().await, 403, "{}", b.text().await);
    b.check("form-refused").await;
    assert_eq!(app.token("frank", PASSWORD).await.status(), StatusCode::OK, "the account was deleted");
    b.goto(&other.url("localhost", "/")).await;
    b.press(&app.url("/login"), "Claim another prize").await;
    assert_eq!(b.status().await, 403, "{}", b.text().await);
    b.goto("/account").await;
    assert_eq!(b.value("profile-username").await, "frank", "still frank's browser");

    // Signed out (a browser without cookies), an outside return_to is dropped from the
    // form, and after signing in the browser stays on Latch.
    b.client.delete_all_cookies().await.unwrap();
    b.goto("/login?return_to=https://evil.example/").await;
    assert!(!b.client.source().await.unwrap().contains("evil.example"));
    b.sign_in("frank", PASSWORD).await;
    assert_eq!(b.origin().await, app.base);
    assert_eq!(b.path().await, "/account");

    // An expired verification link: a day later the button says the link is invalid.
    // (Before the reset below, whose link confirms the address too.)
    let mail = app.email_about("frank@example.com", "verify-email");
    app.clock.advance(Duration::from_secs(25 * 3600));
    b.goto(&link_in(&mail, &app.url("/verify-email?token="))).await;
    b.press("/verify-email", "Confirm my address").await;
    assert_eq!(b.status().await, 400);
    assert!(b.text().await.contains("invalid, used or expired"), "{}", b.text().await);
    b.check("verify-email-invalid").await;
    let me: Value = app.me(&app.login("frank").await.access_token).await.json().await.unwrap();
    assert_eq!(me["email_verified"], false);

    // A used reset link.
    let r = app.post_json("/password-reset", &json!({ "email": "frank@example.com" })).await;
    assert!(r.status().is_success(), "{}", r.status());
    let mail = tokio::time::timeout(WAIT, app.email_arriving("frank@example.com", "reset-password")).await.unwrap();
    let link = link_in(&mail, &app.url("/reset-password?token="));
    b.goto(&link).await;
    b.fill("new_password", "a new passphrase of frank").await;
    b.press("/reset-password", "Set the new password").await;
    assert!(b.text().await.contains("Your password is changed"), "{}", b.text().await);
    b.goto(&link).await;
    b.fill("new_password", "another passphrase of frank").await;
    b.press("/reset-password", "Set the new password").await;
    assert_eq!(b.status().await, 400);
    assert!(b.text().await.contains("invalid, used or expired"), "{}", b.text().await);
    b.check("reset-password-invalid").await;
    assert_login_fails(&app, "frank", "another passphrase of frank").await;

    b.finish().await;
    eprintln!("browser: the refusals took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_pages_fit_a_phone_and_work_without_javascript() {
    let Some(tools) = tools("browser: phone and no JavaScript") else { return };
    let started = Instant::now();
    // The other site is the application here: an origin allowed for CORS, where
    // return_to may lead.
    let other = OtherSite::start("http://127.0.0.1:9").await;
    let app_origin = other.url("127.0.0.1", "");
    let app = spawn_app_with(|c| c.cors_origins = vec![app_origin.clone()]).await;
    app.create_user("grace").await;
    let driver = Chromedriver::start(&tools).await;

    let phone = Browser::open(&driver, &tools, &app.base, Kind::Phone).await;
    phone.goto("/login").await;
    phone.fits_the_screen("login").await;
    phone.check("login-phone").await;
    phone.sign_in("grace", PASSWORD).await;
    assert_eq!(phone.path().await, "/account");
    phone.fits_the_screen("account").await;
    phone.check("account-phone").await;
    // The address is not confirmed yet: a new link on request.
    assert!(phone.text().await.contains("not confirmed"), "{}", phone.text().await);
    phone.press("/account/verification", "Send the link again").await;
    let notice = phone.find("p.notice[role=status]").await.text().await.unwrap();
    assert!(notice.contains("grace@example.com"), "{notice}");
    phone.fits_the_screen("account with a notice").await;
    phone.check("account-link-sent-phone").await;
    let mails = app.emails_arriving("grace@example.com", 2).await;
    assert_eq!(mails.iter().filter(|m| m.contains("verify-email")).count(), 2, "no second link");
    phone.finish().await;

    let b = Browser::open(&driver, &tools, &app.base, Kind::NoScript).await;
    b.goto(&other.url("127.0.0.1", "/script")).await;
    assert_eq!(b.find("#probe").await.text().await.unwrap(), "script off", "JavaScript is on");
    b.goto("/login").await;
    b.sign_in("grace", PASSWORD).await;
    assert_eq!(b.path().await, "/account");
    assert_eq!(b.heading().await, "Your account");
    // The account's forms: a new username, a new address.
    b.fill("profile-username", "grace.h").await;
    b.press("/account/profile", "Save username").await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    assert!(!b.find("p.notice[role=status]").await.text().await.unwrap().is_empty());
    assert_eq!(b.value("profile-username").await, "grace.h");
    b.check("account-username-saved").await;
    assert_eq!(app.token("grace.h", PASSWORD).await.status(), StatusCode::OK);
    b.fill("email-new", "grace@example.org").await;
    b.fill("email-password", PASSWORD).await;
    b.press("/account/email", "Change email").await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    let notice = b.find("p.notice[role=status]").await.text().await.unwrap();
    assert!(notice.contains("grace@example.org"), "{notice}");
    assert_eq!(b.value("email-password").await, "");
    b.check("account-email-changed").await;
    tokio::time::timeout(WAIT, app.email_arriving("grace@example.org", "verify-email")).await.unwrap();
    b.goto("/logout").await;
    b.press("/logout", "Sign out").await;
    assert_eq!(b.heading().await, "Signed out");

    // An application sends people to sign in, or up, and gets them back.
    let back = other.url("127.0.0.1", "/script");
    b.goto(&format!("/login?return_to={back}")).await;
    b.sign_in("grace.h", PASSWORD).await;
    assert_eq!((b.origin().await, b.path().await), (app_origin.clone(), "/script".to_owned()));
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&format!("/signup?return_to={back}")).await;
    b.fill("username", "heidi").await;
    b.fill("email", "heidi@example.com").await;
    b.fill("password", PASSWORD).await;
    b.press("/signup", "Create account").await;
    assert_eq!((b.origin().await, b.path().await), (app_origin, "/script".to_owned()));
    assert_eq!(app.token("heidi", PASSWORD).await.status(), StatusCode::OK);
    b.finish().await;
    eprintln!("browser: phone and no JavaScript took {:?}", started.elapsed());
}
