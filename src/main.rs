//! `latch`: parses the command line, sets up logging, runs the command and prints
//! the error chain on failure.

use std::process::ExitCode;

use clap::Parser as _;
use latch::cli::Cli;
use latch::config::{Config, LogFormat, RawConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match RawConfig::gather(cli.flags(), cli.config.clone()).and_then(|raw| raw.build()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    log_panics_without_payload();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(latch::auth::password::yield_to_hashing)
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(latch::commands::run(cli.command, config));
    // The server has already given its clients the shutdown timeout; work still queued
    // on blocking threads must not hold the exit up any longer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A panic is logged with where it happened, never with its message: the message of a
/// failed slice or parse can hold request data, which would then reach the log as is
/// (a newline in it forges a log line). The request itself is answered 500 by the
/// server's panic layer.
fn log_panics_without_payload() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current().name().map(str::to_owned);
        tracing::error!(location, thread, "panic (message withheld: it may hold request data)");
    }));
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // webauthn-rs logs what it could not parse, bytes and all, at ERROR: a caller's
    // data, at a caller's rate. Latch logs the refusal itself.
    let filter = filter
        .add_directive("webauthn_rs_core=off".parse().unwrap_or_default())
        .add_directive("webauthn_rs=off".parse().unwrap_or_default());
    // Colours only for a terminal: in a file or a log collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
