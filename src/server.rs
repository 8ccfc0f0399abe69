//! Serving connections, so that no client can exhaust the server: at most
//! `max_connections` are open at once (beyond that new ones wait in the listen backlog
//! until a slot frees), request headers must arrive within the header timeout and an
//! idle kept-alive connection is closed after it, and after the shutdown signal the
//! listener closes, open connections finish their requests, and whatever is still
//! open when the shutdown timeout has passed is dropped.
//!
//! HTTP/1.1 only, as `axum::serve` did with our features; a proxy in front speaks
//! HTTP/2 to browsers if wanted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// File descriptors kept for everything but client connections: database
/// connections (SQLite opens three files per connection, PostgreSQL up to 17
/// sockets), SMTP deliveries, `.eml` files, the runtime's own.
const FD_RESERVE: u64 = 128;

/// The default `max_connections`: what the file-descriptor limit allows, less
/// [`FD_RESERVE`], after raising the soft limit to the hard one (as servers commonly
/// do; the soft limit is often 1024 while the hard one is far higher).
pub fn default_max_connections() -> usize {
    let limit = raise_fd_limit();
    let connections = if limit > 2 * FD_RESERVE { limit - FD_RESERVE } else { limit / 2 };
    usize::try_from(connections.max(1)).unwrap_or(usize::MAX)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
#[cfg(unix)]
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            // Refused on some systems (macOS caps it below an infinite hard limit):
            // the current soft limit then stands.
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let soft: u64 = limit.rlim_cur;
    // RLIM_INFINITY and other huge values: a limit nothing else will reach.
    soft.min(1 << 20)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> u64 {
    1024
}

/// Serves `router` on `listener` until `shutdown` completes, then stops as described in
/// the module documentation. Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting: a connection beyond the limit stays in the
        // kernel's backlog, costing no file descriptor and no memory here.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // Responses are small and written whole: no reason to wait for more.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts, resets and malformed requests: the client's business.
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    // New connections are refused from here on, instead of waiting in a backlog that
    // nobody will accept from.
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            open,
            timeout = ?limits.shutdown_timeout,
            "connections still open at the shutdown timeout are closed"
        );
    }
    connections.shutdown().await;
}

/// An accept that failed. Errors of one connection (reset before it was accepted) are
/// nothing; running out of descriptors or memory is logged and waited out briefly
/// rather than spun on.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
