//! Keeps the client's connection usable when a request is answered before its body was
//! read (401, 403, 413, 415, a timeout). Left alone, hyper reads what of such a body
//! has already arrived and closes the connection if that was not all of it, without
//! telling the client, whose next request on the connection then fails. So a declared
//! body of at most 64 KiB is drained in the background (within the header timeout),
//! and anything else is answered `Connection: close`, which clients honour.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::MAX_BODY_BYTES;

/// The part of a request body its handler dropped before the end.
type Leftover = Arc<Mutex<Option<Body>>>;

/// Runs `inner` on `request` under the guard (see the module documentation).
/// `drain_within` bounds how long a client may take to send the rest of a body nobody
/// reads.
pub async fn guard<F>(drain_within: Duration, request: Request, inner: impl FnOnce(Request) -> F) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let declared = declared_length(request.headers());
    if declared.is_none_or(|n| n == 0) && !request.headers().contains_key(header::TRANSFER_ENCODING) {
        // No body (a GET, most of all): nothing can be left unread.
        return inner(request).await;
    }
    // A client waiting for `100 Continue` gets a final answer instead and may never
    // send the body: draining would only wait for it.
    let awaits_continue = request.headers().contains_key(header::EXPECT);
    let leftover = Leftover::default();
    let request =
        request.map(|body| Body::new(Tracked { body: Some(body), finished: false, leftover: leftover.clone() }));
    let mut response = inner(request).await;
    let rest = leftover.lock().ok().and_then(|mut slot| slot.take());
    if let Some(rest) = rest {
        match declared {
            Some(length) if length <= MAX_BODY_BYTES as u64 && !awaits_continue => {
                tokio::spawn(drain(rest, drain_within));
            }
            _ => {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
    }
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads and discards the rest of a body, so that hyper reaches the next request on
/// the connection. Past `within` it gives up and hyper closes the connection.
async fn drain(mut body: Body, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {}
    })
    .await;
}

/// A request body that hands itself to the guard when dropped before its end.
struct Tracked {
    body: Option<Body>,
    finished: bool,
    leftover: Leftover,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            // An error (a client that went away, a malformed chunk) ends the
            // connection anyway: nothing is left to drain.
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.is_end_stream() {
            return;
        }
        if let (Some(body), Ok(mut slot)) = (self.body.take(), self.leftover.lock()) {
            *slot = Some(body);
        }
    }
}
