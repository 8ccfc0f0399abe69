//! Child processes under test: starting them pinned to a core (`taskset -c N`),
//! learning their address from the `listening on http://…` line they print, sampling
//! their memory from `/proc`, and stopping them with SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `program`, run under `taskset -c <core>` when `core` is given. `taskset` execs the
/// program, so the child's pid is the program's.
pub fn pinned(core: Option<usize>, program: &Path) -> Command {
    match core {
        Some(core) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(core.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Checks that pinning to both cores can work here.
pub fn check_pinning(cores: (usize, usize)) -> anyhow::Result<()> {
    let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (server, client) = cores;
    if server == client {
        bail!("--server-core and --client-core must differ");
    }
    if server.max(client) >= available {
        bail!(
            "this machine offers {available} core(s); the benchmark pins the server to core {server} and wrk to \
             core {client} (choose others with --server-core/--client-core, or pass --no-pin)"
        );
    }
    let ok = Command::new("taskset")
        .arg("-c")
        .arg(server.to_string())
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("`taskset -c {server} true` failed; install util-linux (taskset) or pass --no-pin");
    }
    Ok(())
}

/// Pins this process (and so, by default, its children) to `core`.
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    // SAFETY: `set` is a properly sized, zero-initialised cpu_set_t that lives across
    // the calls; CPU_SET only writes inside it, and pid 0 means this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!("cannot pin this process to core {core}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's open-file limit to its hard limit, for it and its children:
/// a run with a thousand connections needs more than the common default of 1024.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A running server process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    name: &'static str,
}

impl Server {
    /// Starts `cmd`, its stderr going to `log`, and waits for its
    /// `listening on http://<address>` line on stdout.
    pub fn start(mut cmd: Command, name: &'static str, log: &Path) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file);
        let mut child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().map_err(|e| format!("`{addr}`: {e}")));
                    break;
                }
                line.clear();
            }
            drop(tx);
            // Keep draining so that the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink());
        });
        let mut server = Self { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log: log.to_owned(), name };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => server.addr = addr,
            Ok(Err(e)) => bail!("{name} printed an address it cannot have bound: {e}"),
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                let state = status.map_or("did not print its address".to_owned(), |s| format!("exited ({s})"));
                bail!("{name} {state}; the end of its log ({}):\n{}", log.display(), tail(log, 20));
            }
        }
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited (a crash during a scenario).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit; kills the process if it takes too long.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) with a pid of our own live child and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed", self.name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Samples a process's resident memory every few milliseconds until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        Self { stop, handle }
    }

    /// The highest `VmRSS` seen, in KiB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let pid = std::process::id();
        let rss = status_kib(pid, "VmRSS").unwrap();
        let hwm = status_kib(pid, "VmHWM").unwrap();
        assert!(rss > 0 && hwm >= rss);
        let sampler = RssSampler::start(pid);
        std::thread::sleep(Duration::from_millis(30));
        assert!(sampler.finish() > 0);
    }
}
