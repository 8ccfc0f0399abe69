//! Serving connections, so that no client can exhaust the server: at most
//! `max_connections` are open at once (beyond that new ones wait in the listen backlog
//! until a slot frees), request headers must arrive within the header timeout and an
//! idle kept-alive connection is closed after it, a client that stops reading its
//! responses for as long is dropped too, and after the shutdown signal the listener
//! closes, open connections finish their requests, and whatever is still open when
//! the shutdown timeout has passed is dropped.
//!
//! HTTP/1.1 only, as `axum::serve` did with our features; a proxy in front speaks
//! HTTP/2 to browsers if wanted.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::http::Api;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;

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
    api: Api,
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
        let api = api.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = api.clone().handle(request.map(axum::body::Body::new));
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let io = TokioIo::new(WriteDeadline::new(stream, limits.header_timeout));
        let connection = graceful.watch(http.serve_connection(io, service));
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

/// A socket whose writes may wait for the client to read for at most `limit`: hyper
/// bounds how long a client may take to send, not to receive, and a client that
/// pipelines requests and never reads the answers would otherwise hold its slot for
/// good once the socket buffers are full.
struct WriteDeadline<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(io: T, limit: Duration) -> Self {
        Self { io, limit, stalled: None }
    }

    /// Passes on a write's result, turning a wait longer than `limit` into an error.
    fn bound<R>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.bound(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.bound(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.bound(cx, polled)
    }
}
