//! One benchmark run, in order: preload users through the store, measure the two
//! ceilings, then for each scenario start `latch serve` pinned to the server core, run
//! wrk on the client core (warm-up, then the measured run) and stop the server; report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latch::config::DatabaseUrl;
use sha2::Digest as _;
use uuid::Uuid;

use crate::report::{Results, Scale};
use crate::server::{RssSampler, Server};
use crate::wrk::{self, Load, Report};
use crate::{RunArgs, ceiling, http, lua, preload, server};

/// The second-factor grant, form-encoded.
const MFA_GRANT: &str = "urn%3Alatch%3Agrant-type%3Amfa";
/// The passkey grant, form-encoded.
const PASSKEY_GRANT: &str = "urn%3Alatch%3Agrant-type%3Apasskey";
/// Accounts with a passkey in the passkey scenario: far more than requests in flight.
const PASSKEY_ACCOUNTS: usize = 2000;

/// About the length of a real access token, for the bare ceiling's requests.
const DUMMY_TOKEN_LEN: usize = 530;

/// Runs the whole benchmark and prints the report.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    // A smoke run only shows that every scenario works; CI does it on the dev build.
    if cfg!(debug_assertions) && !args.smoke {
        bail!(
            "this is a debug build of latch-bench; its numbers would mean nothing. \
             Run `cargo build --release && cargo run --release -p latch-bench -- …`"
        );
    }
    if let Some(count) = args.compare_users
        && count <= args.users
    {
        bail!("--compare-users {count} must exceed --users {}", args.users);
    }
    let wrk = wrk::locate()?;
    server::raise_fd_limit();
    let cores = args.cores();
    if let Some(cores) = cores {
        server::check_pinning(cores)?;
        // This program only waits and samples; keep it off the server's core.
        server::pin_self(cores.1)?;
    }
    let latch_bin = find_latch(args.latch_bin.as_deref())?;
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("latch-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot make a temporary directory in {}", parent.display()))?;
    let result = Bench::new(args, wrk, latch_bin, work.path()).and_then(|bench| bench.run());
    if args.keep {
        let path = work.keep();
        eprintln!("kept {}", path.display());
    }
    let results = result?;
    let markdown = results.markdown();
    print!("{markdown}");
    if let Some(path) = &args.output {
        std::fs::write(path, &markdown).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    let problems = problems(&results);
    if !problems.is_empty() {
        bail!("the run did not work as it should:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// The `latch` binary: `--latch-bin`, else the one next to this executable.
fn find_latch(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe().context("cannot find this executable")?.with_file_name("latch"),
    };
    if !path.is_file() {
        bail!(
            "no latch binary at {}; build it first with `cargo build --release` (or pass --latch-bin)",
            path.display()
        );
    }
    if given.is_none() {
        warn_if_stale(&path);
    }
    Ok(path)
}

/// Warns when the server's sources changed after the binary was built: `cargo run -p
/// latch-bench` rebuilds the library it links, not the `latch` binary.
fn warn_if_stale(binary: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = binary.metadata().and_then(|m| m.modified()).ok();
    let newest = ["src", "migrations"].iter().filter_map(|dir| newest_mtime(&root.join(dir))).max();
    if let (Some(built), Some(newest)) = (built, newest)
        && newest > built
    {
        eprintln!(
            "warning: {} is older than the server's sources; run `cargo build --release` to measure them",
            binary.display()
        );
    }
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(time);
    }
    newest
}

struct Bench<'a> {
    args: &'a RunArgs,
    wrk: PathBuf,
    latch_bin: PathBuf,
    dir: &'a Path,
    server_core: Option<usize>,
    client_core: Option<usize>,
    runtime: tokio::runtime::Runtime,
}

impl<'a> Bench<'a> {
    fn new(args: &'a RunArgs, wrk: PathBuf, latch_bin: PathBuf, dir: &'a Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("scripts"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let cores = args.cores();
        Ok(Self {
            args,
            wrk,
            latch_bin,
            dir,
            server_core: cores.map(|c| c.0),
            client_core: cores.map(|c| c.1),
            runtime,
        })
    }

    fn run(self) -> anyhow::Result<Results> {
        let args = self.args;
        let (duration, warmup) = (args.duration(), args.warmup());
        let date = time::OffsetDateTime::now_utc();
        let data_dir = self.dir.join("data");

        // Preload, before the server starts, into the file it will serve.
        eprintln!("preloading {} users…", args.users);
        let store = self.runtime.block_on(latch::store::open(&DatabaseUrl::Sqlite(data_dir.join("latch.db"))))?;
        let preloaded = self.runtime.block_on(preload::users(&*store, args.users))?;
        eprintln!("  done in {:.1} s", preloaded.elapsed.as_secs_f64());

        eprintln!("ceiling: Argon2id hashes on one core ({} s)…", duration.as_secs());
        let hash_ceiling = ceiling::measure_hash_ceiling(self.server_core, duration)?;
        eprintln!("  {hash_ceiling:.1} hashes/s");

        eprintln!("ceiling: bare axum handler…");
        let bare = {
            let (cmd, log) = ceiling::bare_server_command(self.server_core, self.dir)?;
            let mut bare = Server::start(cmd, "bare-server", &log)?;
            let script = lua::bearer_get("/users/me", &"x".repeat(DUMMY_TOKEN_LEN));
            let report = self.scenario(&mut bare, "bare", &script, &script, self.args.connections)?;
            bare.stop()?;
            report
        };

        // A fresh server for each scenario: what one scenario leaves behind (queued
        // work of the connections wrk closed, memory, caches) does not weigh on the next.
        let usernames: Vec<String> = preloaded.login_users.iter().map(|(name, _)| name.clone()).collect();
        let login_script = lua::login(&usernames, preload::PASSWORD);

        eprintln!("register…");
        let nonce = &Uuid::new_v4().simple().to_string()[..6];
        let register = self.with_latch(&data_dir, "register", |latch| {
            self.scenario(
                latch,
                "register",
                &lua::register(&format!("r{nonce}w"), preload::PASSWORD),
                &lua::register(&format!("r{nonce}m"), preload::PASSWORD),
                args.connections,
            )
        })?;

        let (login, me) = self.login_and_me(&data_dir, "", &usernames)?;

        eprintln!("login with the abuse limits on…");
        // The same load as `login`, with every password check counted before the hash
        // and settled after it, as in a default deployment.
        let login_limits = self.with_latch_configured(&data_dir, "login-limits", "on", |latch| {
            self.scenario(latch, "login-limits", &login_script, &login_script, args.connections)
        })?;

        eprintln!("refresh…");
        // The scripts feed on the tokens the server hands back, so each needs only a
        // few more than it has connections (wrk also builds one request it never sends).
        let seed = (args.connections * 4 + 64) as usize;
        let tokens = self.runtime.block_on(preload::refresh_tokens(&*store, &preloaded.login_users, 2 * seed + 1))?;
        let (probe, tokens) = tokens.split_first().context("no refresh tokens")?;
        let (warm_tokens, main_tokens) = tokens.split_at(seed);
        let refresh = self.with_latch(&data_dir, "refresh", |latch| {
            let rotated =
                http::refresh(latch.addr(), probe).context("a refresh token made through the store does not work")?;
            if rotated.refresh_token == *probe {
                bail!("the refresh grant answered with the token it was given");
            }
            self.scenario(
                latch,
                "refresh",
                &lua::refresh(warm_tokens, 1),
                &lua::refresh(main_tokens, 1),
                args.connections,
            )
        })?;

        eprintln!("authorize…");
        // A first-party app (no consent page) and a signed-in browser: `GET /authorize`
        // answers with a redirect that carries a new code.
        let redirect_uri = "http://127.0.0.1:9/callback";
        let app_client = self.runtime.block_on(preload::oidc_client(&*store, redirect_uri))?;
        let (_, first_user) = preloaded.login_users.first().context("no users")?;
        let (browser, cookie) = self.runtime.block_on(preload::browser_session(&*store, *first_user))?;
        let cookie = format!("latch_session={cookie}");
        let verifier = "latch-bench-verifier-0123456789-0123456789-abcdef";
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let authorize_path = format!(
            "/authorize?response_type=code&client_id={app_client}&redirect_uri={}&scope=openid%20profile%20email\
             &state=bench&nonce=bench&code_challenge={challenge}&code_challenge_method=S256",
            redirect_uri.replace(':', "%3A").replace('/', "%2F")
        );
        let authorize = self.with_latch(&data_dir, "authorize", |latch| {
            let res = http::request(latch.addr(), "GET", &authorize_path, &[("Cookie", &cookie)], "", "")?;
            if res.status != 302 {
                bail!("GET /authorize answered {}: {}", res.status, res.body);
            }
            let script = lua::cookie_get(&authorize_path, &cookie);
            self.scenario(latch, "authorize", &script, &script, args.connections)
        })?;

        eprintln!("code exchange…");
        // Codes sealed ahead of the run, as `/authorize` seals them, each presented once:
        // enough for twice the refresh grant's rate, which does less.
        let per_sec = refresh.ok_per_sec().max(200.0) * 2.0;
        let warm_count = (per_sec * warmup.as_secs_f64()) as usize + 64;
        let main_count = (per_sec * duration.as_secs_f64()) as usize + 64;
        let codes = self.runtime.block_on(preload::codes(
            &*store,
            (*first_user, browser),
            &app_client,
            redirect_uri,
            verifier,
            1 + warm_count + main_count,
        ))?;
        let (probe, codes) = codes.split_first().context("no codes")?;
        let (warm_codes, main_codes) = codes.split_at(warm_count);
        let code_exchange = self.with_latch(&data_dir, "code-exchange", |latch| {
            let script = |codes: &[String]| lua::code_exchange(codes, 1, &app_client, redirect_uri, verifier);
            let rest = format!(
                "&redirect_uri={}&client_id={app_client}&code_verifier={verifier}",
                redirect_uri.replace(':', "%3A").replace('/', "%2F")
            );
            let body = format!("grant_type=authorization_code&code={probe}{rest}");
            let form = "application/x-www-form-urlencoded";
            let res = http::request(latch.addr(), "POST", "/token", &[], form, &body)?;
            if res.status != 200 || !res.body.contains("\"id_token\"") {
                bail!("the code exchange answered {}: {}", res.status, res.body);
            }
            self.scenario(latch, "code-exchange", &script(warm_codes), &script(main_codes), args.connections)
        })?;

        eprintln!("second factor…");
        // Sign-ins waiting for their second step, prepared through the store, each
        // finished once: enough for twice the refresh grant's rate.
        let warm_count = (per_sec * warmup.as_secs_f64()) as usize + 64;
        let main_count = (per_sec * duration.as_secs_f64()) as usize + 64;
        let steps = self.runtime.block_on(preload::mfa_steps(&*store, 1 + warm_count + main_count))?;
        let (probe, steps) = steps.split_first().context("no second steps")?;
        let (warm_steps, main_steps) = steps.split_at(warm_count.min(steps.len()));
        let mfa_grant = self.with_latch(&data_dir, "mfa-grant", |latch| {
            let body = format!("grant_type={MFA_GRANT}&{probe}");
            let form = "application/x-www-form-urlencoded";
            let res = http::request(latch.addr(), "POST", "/token", &[], form, &body)?;
            if res.status != 200 || !res.body.contains("\"refresh_token\"") {
                bail!("the mfa grant answered {}: {}", res.status, res.body);
            }
            self.scenario(
                latch,
                "mfa-grant",
                &lua::single_use_grant(warm_steps, 1, MFA_GRANT),
                &lua::single_use_grant(main_steps, 1, MFA_GRANT),
                args.connections,
            )
        })?;

        eprintln!("passkey sign-in…");
        // Passkeys need a public URL that names a host. Accounts with a passkey each
        // (a software authenticator's), and sign-ins prepared through the store with
        // the authenticator's answers, each presented once; an account's answers are
        // far apart in the order, so that its counter only grows as they arrive.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let public_url = format!("http://localhost:{port}");
        let sign_ins = self.runtime.block_on(preload::passkey_sign_ins(
            &*store,
            &public_url,
            PASSKEY_ACCOUNTS,
            1 + warm_count + main_count,
        ))?;
        let (probe, sign_ins) = sign_ins.split_first().context("no passkey sign-ins")?;
        let (warm_sign_ins, main_sign_ins) = sign_ins.split_at(warm_count.min(sign_ins.len()));
        let listen = format!("127.0.0.1:{port}");
        let env = [("LATCH_LISTEN", listen.as_str()), ("LATCH_PUBLIC_URL", public_url.as_str())];
        let passkey_sign_in = self.with_latch_env(&data_dir, "passkey-sign-in", &env, |latch| {
            let body = format!("grant_type={PASSKEY_GRANT}&{probe}");
            let form = "application/x-www-form-urlencoded";
            let res = http::request(latch.addr(), "POST", "/token", &[], form, &body)?;
            if res.status != 200 || !res.body.contains("\"refresh_token\"") {
                bail!("the passkey grant answered {}: {}", res.status, res.body);
            }
            self.scenario(
                latch,
                "passkey-sign-in",
                &lua::single_use_grant(warm_sign_ins, 1, PASSKEY_GRANT),
                &lua::single_use_grant(main_sign_ins, 1, PASSKEY_GRANT),
                args.connections,
            )
        })?;

        eprintln!("introspect…");
        // A confidential client, registered before the server starts, asks about a
        // live access token.
        let secret = "bench-client-secret-0123456789abcdefghijklmnop";
        let client_id = self.runtime.block_on(preload::confidential_client(&*store, secret))?;
        let basic = format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")));
        let introspect = self.with_latch(&data_dir, "introspect", |latch| {
            let user = usernames.first().context("no users")?;
            let tokens = http::login(latch.addr(), user, preload::PASSWORD)?;
            let body = format!("token={}", tokens.access_token);
            let form = "application/x-www-form-urlencoded";
            let res = http::request(latch.addr(), "POST", "/introspect", &[("Authorization", &basic)], form, &body)?;
            if res.status != 200 || !res.body.contains("\"active\":true") {
                bail!("introspection answered {}: {}", res.status, res.body);
            }
            let script = lua::form_post("/introspect", &basic, &body);
            self.scenario(latch, "introspect", &script, &script, args.connections)
        })?;

        eprintln!("login page…");
        let login_page = self.with_latch(&data_dir, "login-page", |latch| {
            let res = http::request(latch.addr(), "GET", "/login", &[], "", "")?;
            if res.status != 200 || !res.body.contains("name=\"csrf\"") {
                bail!("GET /login answered {}: {}", res.status, res.body);
            }
            let script = lua::page_get("/login");
            self.scenario(latch, "login-page", &script, &script, args.connections)
        })?;

        eprintln!("admin search…");
        let admin_search = self.admin_search(&*store, &data_dir, "", &preloaded.login_users)?;

        eprintln!("me during a login flood…");
        let (flood_login, flood_me) = self.with_latch(&data_dir, "flood", |latch| {
            let me_script = self.me_script(latch.addr(), &usernames)?;
            let login_path = self.write_script("flood-login", &login_script)?;
            let me_path = self.write_script("flood-me", &me_script)?;
            // The flood starts first and ends after me, so that me runs inside it.
            let lead = warmup.max(Duration::from_secs(1));
            let url = latch.url();
            let flood =
                self.load(&url, &login_path, args.connections, lead + duration + Duration::from_secs(1)).spawn()?;
            std::thread::sleep(lead);
            let me = self.load(&url, &me_path, args.connections, duration).run();
            let flood = wrk::finish(flood);
            latch.check_alive()?;
            let (flood, me) = (flood?, me?);
            eprintln!(
                "  me {:.1} req/s, p99 {:?}; login {:.1} req/s",
                me.requests_per_sec, me.p99, flood.requests_per_sec
            );
            Ok((flood, me))
        })?;

        eprintln!("login at {} connections, sampling memory…", args.rss_connections);
        let (crowd_login, rss_before_kib, peak_rss_kib, hwm_kib) = self.with_latch(&data_dir, "crowd", |latch| {
            let rss_before_kib = server::status_kib(latch.pid(), "VmRSS").unwrap_or(0);
            let sampler = RssSampler::start(latch.pid());
            let crowd_login = self.scenario(latch, "crowd", &login_script, &login_script, args.rss_connections);
            let peak_rss_kib = sampler.finish();
            // Read while the process lives: /proc forgets it at exit.
            let hwm_kib = server::status_kib(latch.pid(), "VmHWM").unwrap_or(0);
            Ok((crowd_login?, rss_before_kib, peak_rss_kib, hwm_kib))
        })?;
        let scale = match args.compare_users {
            Some(count) => {
                eprintln!("growing the database to {count} users…");
                let grown = self.runtime.block_on(preload::grow(&*store, args.users, count))?;
                eprintln!("  done in {:.1} s", grown.elapsed.as_secs_f64());
                let usernames: Vec<String> = grown.login_users.iter().map(|(name, _)| name.clone()).collect();
                let (login, me) = self.login_and_me(&data_dir, "scale-", &usernames)?;
                eprintln!("scale-admin search…");
                let admin_search = self.admin_search(&*store, &data_dir, "scale-", &grown.login_users)?;
                Some(Scale { users: count, preload: grown.elapsed, login, me, admin_search })
            }
            None => None,
        };
        drop(store);

        Ok(Results {
            date: date
                .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
                .unwrap_or_default(),
            command: command_line(),
            machine: machine(),
            filesystem: filesystem_of(self.dir),
            wrk_version: wrk::version(&self.wrk),
            cores: args.cores(),
            users: args.users,
            preload: preloaded.elapsed,
            duration,
            warmup,
            connections: args.connections,
            rss_connections: args.rss_connections,
            hash_ceiling,
            bare,
            register,
            login,
            login_limits,
            me,
            refresh,
            authorize,
            code_exchange,
            mfa_grant,
            passkey_sign_in,
            introspect,
            login_page,
            admin_search,
            flood_login,
            flood_me,
            crowd_login,
            peak_rss_kib,
            hwm_kib,
            rss_before_kib,
            scale,
        })
    }

    /// The login and me scenarios, each on a fresh server, over `usernames`.
    fn login_and_me(&self, data_dir: &Path, prefix: &str, usernames: &[String]) -> anyhow::Result<(Report, Report)> {
        let connections = self.args.connections;
        let login_script = lua::login(usernames, preload::PASSWORD);
        let name = format!("{prefix}login");
        eprintln!("{name}…");
        let login = self.with_latch(data_dir, &name, |latch| {
            self.scenario(latch, &name, &login_script, &login_script, connections)
        })?;
        let name = format!("{prefix}me");
        eprintln!("{name}…");
        let me = self.with_latch(data_dir, &name, |latch| {
            let me_script = self.me_script(latch.addr(), usernames)?;
            self.scenario(latch, &name, &me_script, &me_script, connections)
        })?;
        Ok((login, me))
    }

    /// `GET /admin/users?q=…` by the first of `users`, made an admin through the store,
    /// for the first characters of each user's name (a prefix that many names share).
    fn admin_search(
        &self,
        store: &dyn latch::store::Store,
        data_dir: &Path,
        prefix: &str,
        users: &[(String, latch::domain::UserId)],
    ) -> anyhow::Result<Report> {
        let (admin, admin_id) = users.first().context("no users")?;
        let now = latch::clock::Clock::system().now();
        let plan = |_: &latch::store::UserRecord, _: u64| {
            let change = latch::store::AdminChange { roles: Some("admin".to_owned()), ..Default::default() };
            let event =
                latch::store::AuditEvent::new(latch::store::EventType::RolesChanged, latch::store::Actor::System, now)
                    .user(*admin_id)
                    .detail("via", "latch-bench");
            Ok(Some((change, vec![event])))
        };
        match self.runtime.block_on(store.admin_update(*admin_id, now, &plan))? {
            latch::store::AdminUpdate::Updated { .. } | latch::store::AdminUpdate::Unchanged(_) => {}
            other => bail!("cannot make {admin} an admin: {other:?}"),
        }
        // `user123456` → `user1234`: the users whose names start so, a page of 50 of them.
        let paths: Vec<String> = users
            .iter()
            .map(|(name, _)| format!("/admin/users?q={}", &name[..name.len().saturating_sub(2).max(5)]))
            .collect();
        let name = format!("{prefix}admin-search");
        self.with_latch(data_dir, &name, |latch| {
            let tokens = http::login(latch.addr(), admin, preload::PASSWORD)?;
            let body = http::get_with_bearer(latch.addr(), &paths[0], &tokens.access_token)?;
            if !body.contains("\"users\"") {
                bail!("the admin search answered {body}");
            }
            let script = lua::bearer_get_any(&paths, &tokens.access_token);
            self.scenario(latch, &name, &script, &script, self.args.connections)
        })
    }

    /// Runs `f` against a fresh `latch serve` with the abuse limits off, then stops the
    /// server (SIGTERM).
    fn with_latch<T>(
        &self,
        data_dir: &Path,
        name: &str,
        f: impl FnOnce(&mut Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.with_latch_configured(data_dir, name, "off", f)
    }

    /// [`Self::with_latch`] with `LATCH_RATE_LIMIT=rate_limit`.
    fn with_latch_configured<T>(
        &self,
        data_dir: &Path,
        name: &str,
        rate_limit: &str,
        f: impl FnOnce(&mut Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.with_latch_run(data_dir, name, rate_limit, &[], f)
    }

    /// [`Self::with_latch`] with more configuration (`LATCH_…` variables).
    fn with_latch_env<T>(
        &self,
        data_dir: &Path,
        name: &str,
        env: &[(&str, &str)],
        f: impl FnOnce(&mut Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.with_latch_run(data_dir, name, "off", env, f)
    }

    fn with_latch_run<T>(
        &self,
        data_dir: &Path,
        name: &str,
        rate_limit: &str,
        env: &[(&str, &str)],
        f: impl FnOnce(&mut Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut latch = self.start_latch(data_dir, name, rate_limit, env)?;
        let result = f(&mut latch);
        let stopped = latch.stop();
        let value = result?;
        stopped?;
        Ok(value)
    }

    /// `latch serve` on a free port, pinned, with `LATCH_RATE_LIMIT=rate_limit`; its log
    /// is `latch-<name>.log`.
    fn start_latch(
        &self,
        data_dir: &Path,
        name: &str,
        rate_limit: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let mut cmd = server::pinned(self.server_core, &self.latch_bin);
        cmd.arg("serve");
        // Only the configuration chosen here: nothing from the caller's LATCH_*.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LATCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LATCH_LISTEN", "127.0.0.1:0").env("LATCH_DATA_DIR", data_dir).env("LATCH_RATE_LIMIT", rate_limit);
        cmd.envs(env.iter().copied());
        Server::start(cmd, "latch serve", &self.dir.join(format!("latch-{name}.log")))
    }

    /// The `me` script with a fresh access token of the first login user, after
    /// checking that the token works.
    fn me_script(&self, addr: std::net::SocketAddr, usernames: &[String]) -> anyhow::Result<String> {
        let user = usernames.first().context("no users")?;
        let tokens = http::login(addr, user, preload::PASSWORD)?;
        http::get_with_bearer(addr, "/users/me", &tokens.access_token)?;
        Ok(lua::bearer_get("/users/me", &tokens.access_token))
    }

    fn write_script(&self, name: &str, script: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("scripts").join(format!("{name}.lua"));
        std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    fn load<'b>(&'b self, url: &'b str, script: &'b Path, connections: u64, duration: Duration) -> Load<'b> {
        Load { wrk: &self.wrk, core: self.client_core, url, script, connections, duration }
    }

    /// Warm-up with `warm_script` (unless `--warmup 0s`), then the measured run.
    fn scenario(
        &self,
        server: &mut Server,
        name: &str,
        warm_script: &str,
        script: &str,
        connections: u64,
    ) -> anyhow::Result<Report> {
        let url = server.url();
        let warmup = self.args.warmup();
        if !warmup.is_zero() {
            let path = self.write_script(&format!("{name}-warmup"), warm_script)?;
            self.load(&url, &path, connections, warmup).run().with_context(|| format!("{name} warm-up"))?;
            server.check_alive()?;
        }
        let path = self.write_script(name, script)?;
        let started = Instant::now();
        let report =
            self.load(&url, &path, connections, self.args.duration()).run().with_context(|| name.to_owned())?;
        server.check_alive()?;
        eprintln!(
            "  {:.1} req/s, p50 {:?}, p99 {:?}, errors {} ({:.1} s)",
            report.requests_per_sec,
            report.p50,
            report.p99,
            report.errors_text(),
            started.elapsed().as_secs_f64()
        );
        Ok(report)
    }
}

/// Scenarios that did not work at all: nothing completed, or most requests failed.
/// (At many connections the server may refuse logins with 503 by design; that run
/// only needs some successes.)
fn problems(r: &Results) -> Vec<String> {
    let mut problems = Vec::new();
    let checks: [(&str, &Report); 14] = [
        ("bare ceiling", &r.bare),
        ("register", &r.register),
        ("login", &r.login),
        ("login with limits on", &r.login_limits),
        ("me", &r.me),
        ("refresh", &r.refresh),
        ("authorize", &r.authorize),
        ("code exchange", &r.code_exchange),
        ("mfa grant", &r.mfa_grant),
        ("passkey sign-in", &r.passkey_sign_in),
        ("introspect", &r.introspect),
        ("login page", &r.login_page),
        ("login flood", &r.flood_login),
        ("me during the login flood", &r.flood_me),
    ];
    for (name, report) in checks {
        if report.requests == 0 {
            problems.push(format!("{name}: no request completed"));
        } else if report.errors() * 2 > report.requests {
            problems.push(format!("{name}: most requests failed ({})", report.errors_text()));
        }
    }
    if r.crowd_login.requests <= r.crowd_login.non_2xx {
        problems.push(format!("login at {} connections: no login succeeded", r.rss_connections));
    }
    if let Some(scale) = &r.scale {
        for (name, report) in
            [("login at the larger user count", &scale.login), ("me at the larger user count", &scale.me)]
        {
            if report.requests == 0 || report.errors() * 2 > report.requests {
                problems.push(format!("{name}: {} of {} requests failed", report.errors_text(), report.requests));
            }
        }
    }
    if r.hash_ceiling <= 0.0 {
        problems.push("hash ceiling: no hash measured".to_owned());
    }
    problems
}

/// How this program was invoked, for the report.
fn command_line() -> String {
    let mut args = std::env::args();
    let program =
        args.next().map(|p| Path::new(&p).file_name().map_or(p.clone(), |name| name.to_string_lossy().into_owned()));
    program.into_iter().chain(args).collect::<Vec<_>>().join(" ")
}

/// CPU model and number of cores.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    format!("{model}, {cores} cores")
}

/// The type of the filesystem holding `path` (from `/proc/mounts`).
fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount).then(|| (mount.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "an unknown filesystem".to_owned(), |(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_on_some_filesystem() {
        assert_ne!(filesystem_of(Path::new("/")), "an unknown filesystem");
    }
}
