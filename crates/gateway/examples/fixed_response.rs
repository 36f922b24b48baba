//! A fixed-response hyper server with no logic: the floor a proxy's CPU
//! cost per request is compared against in `bench/load.py`.
//!
//! `cargo run --release -p corsgate-gateway --example fixed_response -- 127.0.0.1:18090`

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        let mut r = http::Response::new(Full::new(Bytes::new()));
                        r.headers_mut()
                            .insert("vary", http::HeaderValue::from_static("Origin"));
                        Ok::<_, std::convert::Infallible>(r)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}
