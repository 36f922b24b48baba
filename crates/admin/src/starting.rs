//! The admin listener before the instance has a configuration to serve
//! (a fleet member started while etcd is unreachable and with no local
//! copy): it is already bound, so a load balancer's or an orchestrator's
//! probes get an answer — `/live` 200, `/ready` 503 — instead of a refused
//! connection that would look like a dead process. Everything else is 503
//! with `Retry-After`. The full admin API takes the same socket over once
//! the first configuration is applied.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Answer probes on `listener` until `stop` turns true; `waiting` says
/// what the instance waits for (shown by `/ready`).
pub async fn serve_starting(
    listener: &TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    waiting: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed while starting");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let tls = tls.clone();
        let waiting = waiting.clone();
        connections.spawn(async move {
            match tls {
                None => answer(stream, waiting).await,
                Some(acceptor) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await
                    {
                        answer(s, waiting).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

async fn answer<S>(io: S, waiting: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let r = probe(req.uri().path(), &waiting);
        async move { Ok::<_, std::convert::Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), svc);
    let _ = tokio::time::timeout(HEAD_TIMEOUT * 2, conn).await;
}

fn probe(path: &str, waiting: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/live" => (StatusCode::OK, json!({ "live": true })),
        "/ready" => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "waiting": waiting }),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": format!("starting: {waiting}") }),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(format!("{body:#}\n"))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}
