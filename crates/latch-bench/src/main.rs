//! `latch-bench`: measures a release build of `latch serve` with wrk, and in the same
//! run the two ceilings it is judged against (Argon2id hashes per second on one core,
//! and a bare axum handler's throughput with the same pinning), then prints a markdown
//! table. The method is described in `docs/performance.md`.
//!
//! Without a subcommand it runs the whole benchmark. `hash-ceiling` and `bare-server`
//! are the pieces it starts as pinned child processes of itself.

mod ceiling;
mod http;
mod lua;
mod preload;
mod report;
mod run;
mod server;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Benchmark of Latch: register, login, me and refresh under wrk, against the
/// hash and bare-axum ceilings of this machine.
#[derive(Debug, Parser)]
#[command(name = "latch-bench", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The pieces the benchmark starts as children of itself.
#[derive(Debug, Subcommand)]
enum Command {
    /// Hash with Latch's Argon2id parameters on one thread and print hashes per second
    /// (started by the benchmark under `taskset`).
    HashCeiling {
        /// How long to hash.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Serve `GET /users/me` from a bare axum handler returning a small JSON document;
    /// prints `listening on http://<address>` (started by the benchmark under `taskset`).
    BareServer {
        /// Address to bind (port 0 = any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// Options of a benchmark run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Users preloaded through the store before the server starts (e.g. 1000 or 1000000).
    #[arg(long, default_value = "1000", value_parser = parse_count)]
    pub users: u64,
    /// After the scenarios, grow the database to this many users and measure login and
    /// me again, in the same run (e.g. 1000000).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub compare_users: Option<u64>,
    /// Measured time of each scenario (whole seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before each scenario (whole seconds; 0s for none).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Concurrent connections of each scenario.
    #[arg(long, default_value = "16", value_parser = parse_count)]
    pub connections: u64,
    /// Concurrent connections of the login run that measures peak memory.
    #[arg(long, default_value = "1000", value_parser = parse_count)]
    pub rss_connections: u64,
    /// A quick run of every scenario for CI: --duration 2s --warmup 0s.
    #[arg(long)]
    pub smoke: bool,
    /// Also write the markdown report to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The `latch` binary to benchmark [default: `latch` next to this executable,
    /// i.e. target/release/latch].
    #[arg(long, value_name = "PATH")]
    pub latch_bin: Option<PathBuf>,
    /// Directory in which the temporary data directory is made [default: the system
    /// temporary directory]. Use a directory on the disk you want measured.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Keep the temporary directory (database, server log, wrk scripts) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Core the servers (latch, bare axum, hash ceiling) are pinned to.
    #[arg(long, default_value = "0")]
    pub server_core: usize,
    /// Core wrk (and this program) is pinned to.
    #[arg(long, default_value = "1")]
    pub client_core: usize,
    /// Do not pin anything to cores (results are then not comparable between machines).
    #[arg(long)]
    pub no_pin: bool,
}

impl RunArgs {
    /// The measured duration, after `--smoke`.
    pub fn duration(&self) -> Duration {
        if self.smoke { Duration::from_secs(2) } else { self.duration }
    }

    /// The warm-up, after `--smoke`.
    pub fn warmup(&self) -> Duration {
        if self.smoke { Duration::ZERO } else { self.warmup }
    }

    /// `(server core, client core)`, or `None` with `--no-pin`.
    pub fn cores(&self) -> Option<(usize, usize)> {
        (!self.no_pin).then_some((self.server_core, self.client_core))
    }
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|_| format!("`{v}` is not a duration like 10s or 1m"))?,
    };
    if d.subsec_nanos() != 0 {
        return Err(format!("`{v}` must be whole seconds (wrk counts in seconds)"));
    }
    Ok(d)
}

fn parse_count(v: &str) -> Result<u64, String> {
    match v.replace('_', "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{v}` is not a positive whole number")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::HashCeiling { duration }) => ceiling::hash_ceiling_child(duration),
        Some(Command::BareServer { listen }) => ceiling::bare_server(listen),
        None => run::run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("1500ms").is_err());
        assert_eq!(parse_count("1_000_000").unwrap(), 1_000_000);
        assert!(parse_count("0").is_err());
    }

    #[test]
    fn smoke_shortens_everything() {
        let cli = Cli::parse_from(["latch-bench", "--smoke", "--duration", "30s"]);
        assert_eq!(cli.run.duration(), Duration::from_secs(2));
        assert_eq!(cli.run.warmup(), Duration::ZERO);
        let cli = Cli::parse_from(["latch-bench", "hash-ceiling", "--duration", "1s"]);
        assert!(matches!(cli.command, Some(Command::HashCeiling { .. })));
        let cli = Cli::parse_from(["latch-bench", "--compare-users", "1_000_000"]);
        assert_eq!(cli.run.compare_users, Some(1_000_000));
    }
}
