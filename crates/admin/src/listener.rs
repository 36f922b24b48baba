//! The admin listener: the door to the store, so it gives nobody time or
//! connections for free.
//!
//! - a client has [`Limits::header_timeout`] from connecting, or from the
//!   end of the previous response, to send a request's headers (hyper's
//!   header read timer), so a silent or half-sent request is closed before
//!   any authentication is tried, and so is a kept-alive connection left
//!   silent;
//! - a request body must arrive within [`Limits::idle_timeout`] (else 408),
//!   and a connection that moves no bytes with no request in progress for
//!   that long (a client that stopped reading its response) is closed;
//! - at most [`Limits::max_connections`] connections are served at once;
//!   the next ones get an immediate `503` and are closed, so idle clients
//!   cannot starve the operator;
//! - with TLS, the handshake counts against the header timeout.

use crate::AdminState;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The listener's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to send a request's headers (and, with TLS, the handshake).
    pub header_timeout: Duration,
    /// Time for a request body to arrive, and for a connection to sit with
    /// no traffic and no request running.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

impl Limits {
    /// From the configuration.
    pub fn from_config(a: &corsgate_config::Admin) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(a.header_timeout_ms),
            idle_timeout: Duration::from_millis(a.idle_timeout_ms),
            max_connections: a.max_connections,
        }
    }
}

/// A TLS acceptor for the admin listener from PEM files (HTTP/1.1 only:
/// the admin API speaks nothing else).
pub fn tls_acceptor(tls: &corsgate_config::Tls) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("admin.tls certificate {}: {e}", tls.cert_file))?;
    if certs.is_empty() {
        return Err(format!(
            "admin.tls certificate {}: no certificate found",
            tls.cert_file
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("admin.tls key {}: {e}", tls.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("admin.tls: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// When a connection last moved bytes, and whether a request is running.
#[derive(Default)]
pub(crate) struct Activity {
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn touch(&self, epoch: Instant) {
        let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

/// A stream that notes its traffic in an [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch(self.epoch);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch(self.epoch);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves when the connection has been idle (no bytes, no request
/// running) for `idle`.
async fn idle_for(activity: &Activity, epoch: Instant, idle: Duration) {
    let tick = (idle / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(tick).await;
        let last = Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
        if activity.busy.load(Ordering::Relaxed) == 0
            && epoch.elapsed().saturating_sub(last) >= idle
        {
            return;
        }
    }
}

/// Serve the admin API on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(state.limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            state.denials.connection_refused(peer);
            let tls = state.tls.is_some();
            tokio::spawn(refuse(stream, tls));
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            connection(stream, state).await;
            drop(slot);
        });
    }
}

/// Over the cap: a plain-text listener answers 503 at once; a TLS one
/// closes (a plain answer would be garbage to a TLS client).
async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let body = "{\"error\": \"too many admin connections; try again later\"}\n";
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(head.as_bytes())).await;
    }
    let _ = stream.shutdown().await;
}

async fn connection(stream: TcpStream, state: Arc<AdminState>) {
    let limits = state.limits;
    let epoch = Instant::now();
    let activity = Arc::new(Activity::default());
    let watched = Watched {
        inner: stream,
        activity: activity.clone(),
        epoch,
    };
    match state.tls.clone() {
        None => http(watched, state, activity, epoch).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(watched)).await {
                Ok(Ok(tls)) => http(tls, state, activity, epoch).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "admin TLS handshake failed"),
                Err(_) => tracing::debug!("admin TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(io: S, state: Arc<AdminState>, activity: Arc<Activity>, epoch: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.limits;
    let busy = activity.clone();
    let svc = service_fn(move |req| {
        let state = state.clone();
        let busy = busy.clone();
        async move {
            busy.busy.fetch_add(1, Ordering::Relaxed);
            let r = crate::handle(state, req).await;
            busy.busy.fetch_sub(1, Ordering::Relaxed);
            busy.touch(epoch);
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(error = %e, "admin connection ended with an error");
        },
        () = idle_for(&activity, epoch, limits.idle_timeout) => {
            tracing::debug!("admin connection closed: idle");
        }
    }
}
