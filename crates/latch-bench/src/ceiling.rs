//! The two ceilings Latch is compared with, each run as a child process pinned to the
//! server's core: Argon2id hashes per second of one core with Latch's parameters
//! (`hash-ceiling`), and a bare axum handler (`bare-server`) that wrk loads exactly as
//! it loads `GET /users/me`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::preload;

/// `latch-bench hash-ceiling`: hashes on this thread for `duration` (at least three
/// hashes) and prints hashes per second.
pub fn hash_ceiling_child(duration: Duration) -> anyhow::Result<()> {
    let argon2 = preload::argon2()?;
    // One unmeasured hash: page in the memory, warm the caches.
    preload::hash(&argon2, preload::PASSWORD)?;
    let started = Instant::now();
    let mut hashes = 0u64;
    while hashes < 3 || started.elapsed() < duration {
        preload::hash(&argon2, preload::PASSWORD)?;
        hashes += 1;
    }
    println!("{:.3}", hashes as f64 / started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `hash-ceiling` pinned to `core` and reads its answer.
pub fn measure_hash_ceiling(core: Option<usize>, duration: Duration) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = crate::server::pinned(core, &exe)
        .arg("hash-ceiling")
        .arg("--duration")
        .arg(format!("{}s", duration.as_secs().max(1)))
        .stdin(Stdio::null())
        .output()
        .context("cannot run the hash ceiling")?;
    if !out.status.success() {
        bail!("hash ceiling failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().with_context(|| format!("hash ceiling printed `{}`", text.trim()))
}

/// About the size of Latch's private user view.
#[derive(Serialize)]
struct User {
    id: &'static str,
    username: &'static str,
    email: &'static str,
    email_verified: bool,
    created_at: &'static str,
    updated_at: &'static str,
}

async fn me() -> Json<User> {
    Json(User {
        id: "0196a4b2-7c1e-7d3a-9f10-3b2c4d5e6f70",
        username: "user0",
        email: "user0@bench.example",
        email_verified: true,
        created_at: "2026-01-01T00:00:00Z",
        updated_at: "2026-01-01T00:00:00Z",
    })
}

/// `latch-bench bare-server`: serves `GET /users/me` on the same runtime Latch uses
/// (tokio's default multi-threaded one, one worker per core it may run on) until
/// killed.
pub fn bare_server(listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        println!("listening on http://{}", listener.local_addr()?);
        let router = Router::new().route("/users/me", get(me));
        axum::serve(listener, router).await.context("bare server failed")
    })
}

/// Where the bare server's log goes (it prints nothing but its address).
pub fn bare_server_command(
    core: Option<usize>,
    log_dir: &Path,
) -> anyhow::Result<(std::process::Command, std::path::PathBuf)> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut cmd = crate::server::pinned(core, &exe);
    cmd.arg("bare-server").arg("--listen").arg("127.0.0.1:0");
    Ok((cmd, log_dir.join("bare-server.log")))
}
