//! A fixed-response hyper server with no logic: the floor a proxy's CPU
//! cost per request is compared against in `bench/load.py`.
//!
//! `cargo run --release -p corsgate-gateway --example fixed_response -- 127.0.0.1:18090 [preflight]`
//!
//! With `preflight` it answers with the same status and header lines as
//! corsgate's answer to the benchmark's preflight (W1), as constants: the
//! cost of writing those bytes through hyper and the kernel without any
//! decision, so that the decision's own cost can be read off the
//! difference.

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// corsgate's answer to W1's preflight, minus `content-length` and `date`,
/// which hyper writes itself.
const PREFLIGHT: [(&str, &str); 6] = [
    (
        "vary",
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    ),
    ("access-control-allow-origin", "https://app7.example.com"),
    ("access-control-allow-credentials", "true"),
    ("access-control-allow-methods", "GET, POST, PUT, DELETE"),
    (
        "access-control-allow-headers",
        "authorization, content-type, x-request-id",
    ),
    ("access-control-max-age", "600"),
];

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let preflight = args.next().as_deref() == Some("preflight");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| async move {
                        let mut r = http::Response::new(Full::new(Bytes::new()));
                        if preflight {
                            for (name, value) in PREFLIGHT {
                                r.headers_mut()
                                    .insert(name, HeaderValue::from_static(value));
                            }
                        } else {
                            r.headers_mut()
                                .insert("vary", HeaderValue::from_static("Origin"));
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}
