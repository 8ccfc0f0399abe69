//! Driving wrk: finding it, starting it (pinned) with a generated Lua script, and
//! reading requests/s, p50/p99 latency and errors from its `--latency` report.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long wrk waits for one response before counting a timeout.
const TIMEOUT: &str = "10s";

/// Finds `wrk` on `PATH`, or explains how to install it.
pub fn locate() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("wrk")).find(|p| is_executable(p)).context(
        "wrk is not on PATH; install it (Debian/Ubuntu: `apt-get install -y wrk`, macOS: `brew install wrk`) \
         or build it from https://github.com/wg/wrk",
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first line of `wrk -v`, for the report.
pub fn version(wrk: &Path) -> String {
    // `wrk -v` prints its version and usage, and exits non-zero.
    Command::new(wrk)
        .arg("-v")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned))
        .map(|line| line.split(" Copyright").next().unwrap_or(&line).trim().to_owned())
        .unwrap_or_else(|| "wrk (unknown version)".to_owned())
}

/// One wrk load: `connections` connections on one thread for `duration`, requests
/// made by `script`.
pub struct Load<'a> {
    pub wrk: &'a Path,
    pub core: Option<usize>,
    pub url: &'a str,
    pub script: &'a Path,
    pub connections: u64,
    pub duration: Duration,
}

impl Load<'_> {
    /// Starts wrk; [`finish`] waits for it and reads its report.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        let mut cmd = crate::server::pinned(self.core, self.wrk);
        cmd.arg("-t1")
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--timeout")
            .arg(TIMEOUT)
            .arg("--latency")
            .arg("-s")
            .arg(self.script)
            .arg(self.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().with_context(|| format!("cannot start {}", self.wrk.display()))
    }

    /// Runs wrk to the end and reads its report.
    pub fn run(&self) -> anyhow::Result<Report> {
        finish(self.spawn()?)
    }
}

/// Waits for a wrk started by [`Load::spawn`] and reads its report.
pub fn finish(child: Child) -> anyhow::Result<Report> {
    let out = child.wait_with_output().context("waiting for wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed ({}): {}{}", out.status, stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
    }
    parse(&stdout).with_context(|| format!("cannot read wrk's report:\n{stdout}"))
}

/// What wrk measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses").
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
}

impl Report {
    /// Successful responses (status below 400) per second; wrk's own figure counts
    /// every response.
    pub fn ok_per_sec(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.requests_per_sec * self.requests.saturating_sub(self.non_2xx) as f64 / self.requests as f64
    }

    /// Failed requests of every kind.
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }

    /// The errors as a short phrase: `0`, or `12 non-2xx, 3 timeouts`.
    pub fn errors_text(&self) -> String {
        let parts: Vec<String> = [
            (self.non_2xx, "non-2xx"),
            (self.timeouts, "timeouts"),
            (self.connect_errors, "connect"),
            (self.read_errors, "read"),
            (self.write_errors, "write"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() { "0".to_owned() } else { parts.join(", ") }
    }
}

/// Reads wrk 4's `--latency` report.
pub fn parse(text: &str) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>().with_context(|| format!("requests/s in `{line}`"))?);
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = Some(parse_time(v.trim())?);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = Some(parse_time(v.trim())?);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = v.trim().parse().with_context(|| format!("count in `{line}`"))?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                let mut words = part.split_whitespace();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else { continue };
                let n: u64 = n.parse().with_context(|| format!("count in `{line}`"))?;
                match kind {
                    "connect" => report.connect_errors = n,
                    "read" => report.read_errors = n,
                    "write" => report.write_errors = n,
                    "timeout" => report.timeouts = n,
                    _ => {}
                }
            }
        } else if let Some((n, rest)) = line.split_once(" requests in ")
            && !rest.is_empty()
        {
            requests = n.trim().parse().ok();
        }
    }
    report.requests_per_sec = rps.context("no Requests/sec line")?;
    report.requests = requests.context("no `N requests in` line")?;
    // With no completed request wrk prints no distribution.
    report.p50 = p50.unwrap_or_default();
    report.p99 = p99.unwrap_or_default();
    if report.requests > 0 && (p50.is_none() || p99.is_none()) {
        bail!("no latency distribution (was wrk run with --latency?)");
    }
    Ok(report)
}

/// `250.00us`, `5.06ms`, `1.20s`, `2.00m`.
fn parse_time(v: &str) -> anyhow::Result<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).with_context(|| format!("no unit in `{v}`"))?;
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("not a number: `{v}`"))?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => bail!("unknown time unit in `{v}`"),
    };
    Ok(Duration::from_secs_f64(number * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 10s test @ http://127.0.0.1:40123/users/me
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    0.89ms  12.92ms   93.69%
    Req/Sec    56.20k     8.07k   62.00k    86.54%
  Latency Distribution
     50%  250.00us
     75%  491.00us
     90%    1.38ms
     99%    5.06ms
  1120162 requests in 10.01s, 140.82MB read
Requests/sec: 111909.00
Transfer/sec:     14.07MB
";

    #[test]
    fn reads_a_clean_report() {
        let r = parse(CLEAN).unwrap();
        assert_eq!(r.requests, 1_120_162);
        assert!((r.requests_per_sec - 111_909.0).abs() < 1e-6);
        assert_eq!(r.p50, Duration::from_micros(250));
        assert_eq!(r.p99, Duration::from_micros(5060));
        assert_eq!(r.errors(), 0);
        assert_eq!(r.errors_text(), "0");
    }

    #[test]
    fn reads_errors_and_long_latencies() {
        let text = "Running 2s test @ http://127.0.0.1:1/token
  1 threads and 1000 connections
  Latency Distribution
     50%    1.50s
     75%    2.00s
     90%    3.00s
     99%    1.05m
  301 requests in 2.10s, 90.00KB read
  Socket errors: connect 0, read 7, write 0, timeout 12
  Non-2xx or 3xx responses: 250
Requests/sec:    143.33
Transfer/sec:     42.86KB
";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 301);
        assert_eq!(r.p50, Duration::from_millis(1500));
        assert_eq!(r.p99, Duration::from_secs(63));
        assert_eq!((r.non_2xx, r.read_errors, r.timeouts), (250, 7, 12));
        assert_eq!(r.errors(), 269);
        assert_eq!(r.errors_text(), "250 non-2xx, 12 timeouts, 7 read");
        assert!((r.ok_per_sec() - 143.33 * 51.0 / 301.0).abs() < 1e-9);
    }

    #[test]
    fn no_completed_request_is_zero_not_an_error() {
        let text = "  Latency Distribution\n  0 requests in 2.00s, 0.00B read\nRequests/sec:      0.00\n";
        let r = parse(text).unwrap();
        assert_eq!((r.requests, r.p99), (0, Duration::ZERO));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
