//! Tests of the `corsgate` binary as users run it: a separate process on
//! loopback, configured by a file.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const MIB: usize = 1024 * 1024;

/// A backend that streams `total` bytes in 64 KiB chunks without holding
/// them: every chunk is the same shared buffer.
async fn streaming_backend(total: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    let frames = (0..total / chunk.len()).map(move |_| {
                        Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))
                    });
                    let body = StreamBody::new(futures_util::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_gateway(config: &str, port: u16) -> Gateway {
    let dir = std::env::temp_dir().join(format!("corsgate-bin-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gw.yaml");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .args(["run", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Gateway(child)
}

/// Peak resident set size (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_200_mib_response_streams_through_with_bounded_memory() {
    let total = 200 * MIB;
    let backend = streaming_backend(total).await;
    let port = free_port();
    let config = format!(
        r#"
policies:
  p: {{ allowOrigins: ["https://app.example.com"] }}
vservices:
  - name: s
    listen: "127.0.0.1:{port}"
    cors: p
    rules:
      - forward: {{ upstreams: ["http://{backend}"] }}
"#
    );
    let gw = start_gateway(&config, port);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .uri(format!("http://127.0.0.1:{port}/big"))
        .header("origin", "https://app.example.com")
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let mut body = resp.into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len();
        }
    }
    assert_eq!(received, total);
    let peak = peak_rss(gw.0.id());
    eprintln!(
        "gateway peak RSS while streaming {} MiB: {:.1} MiB",
        total / MIB,
        peak as f64 / MIB as f64
    );
    assert!(peak < 50 * MIB, "peak RSS {peak} bytes");
}

#[test]
fn an_invalid_config_is_refused_with_file_and_reason() {
    let dir = std::env::temp_dir().join(format!("corsgate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "policies:\n  p:\n    allowOrigins: [\"*\"]\n    allowCredentials: true\nvservices: []\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert!(stderr.contains("credentials-with-any-origin"), "{stderr}");
    assert!(stderr.contains("at least one vService"), "{stderr}");
}
