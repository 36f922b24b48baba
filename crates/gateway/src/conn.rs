//! A connection served by hyper (HTTP/2, and HTTP/1.1 once the front has
//! handed it over) under the listener's limits.
//!
//! hyper enforces a header timeout on HTTP/1 only, and nothing between
//! HTTP/2 streams: a client that sends the 16-byte preface, or a SETTINGS
//! frame, and then nothing, would hold its connection forever. So each
//! connection here has a watchdog that knows how many requests are in
//! flight (a request counts from its head to the end of its response body)
//! and closes the connection, gracefully (`GOAWAY` on HTTP/2), when:
//! - no complete request arrived within `limits.headerTimeoutMs` (or
//!   `limits.idleTimeoutMs`, if shorter) of the connection's start (the
//!   preface, or the hand-over, included);
//! - no request was in flight for `limits.idleTimeoutMs`.
//!
//! A client that ignores the `GOAWAY` (or the PING hyper sends with it) is
//! cut off [`CLOSE_GRACE`] later. Stream caps and the rapid-reset limit are
//! hyper's own settings, set from the same limits in `accept`.

use crate::front::ClientLimits;
use crate::request::ClientRequest;
use crate::{Body, BoxError, RequestBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a connection told to close may take to finish closing.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The requests in flight on one connection, and when the last ended.
struct Activity {
    /// When the connection started; times below are nanoseconds after it.
    start: Instant,
    active: AtomicUsize,
    /// When the connection last had no request in flight.
    idle_since: AtomicU64,
    /// Whether a complete request head ever arrived.
    served: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            served: AtomicBool::new(false),
        })
    }

    /// A request head arrived; the guard ends the request when dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection is due to be closed if nothing changes; `None`
    /// while a request is in flight.
    fn due(&self, t: ClientLimits) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Relaxed) {
            // Before its first request a connection may be idle (no byte
            // yet) or sending a head; hyper does not tell which, so the
            // shorter of the two timeouts applies.
            return Some(self.start + t.header.min(t.idle));
        }
        let since = Duration::from_nanos(self.idle_since.load(Ordering::Acquire));
        Some(self.start + since + t.idle)
    }
}

/// One request in flight: from its head until its response body has been
/// sent (or the request was abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let nanos = u64::try_from(a.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        a.idle_since.store(nanos, Ordering::Release);
        a.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that ends its request when it is done or dropped.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve `io` with hyper until it closes, the gateway stops (`stop`), or
/// the watchdog closes it. `handler` answers each request.
pub(crate) async fn serve<I, F, Fut>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    handler: F,
    timeouts: ClientLimits,
    stop: &watch::Receiver<Option<Duration>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(ClientRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let in_flight = activity.begin();
            let handler = handler.clone();
            async move {
                let resp = handler(ClientRequest::from_map(req.map(RequestBody::Incoming))).await;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| {
                    http_body_util::BodyExt::boxed(Tracked {
                        inner,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut stop = stop.clone();
    let mut stopping = false;
    // Set once the connection was told to close by the watchdog.
    let mut cut_off: Option<Instant> = None;
    loop {
        let wake = cut_off
            .or_else(|| activity.due(timeouts))
            .unwrap_or_else(|| Instant::now() + timeouts.idle);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if cut_off.is_some() {
                    tracing::debug!("connection did not close after GOAWAY; dropped");
                    return;
                }
                if activity.due(timeouts).is_some_and(|d| d <= Instant::now()) {
                    let waited = if activity.served.load(Ordering::Relaxed) { "idle" } else { "header" };
                    tracing::debug!(timeout = waited, "client timed out; closing");
                    conn.as_mut().graceful_shutdown();
                    cut_off = Some(Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}
