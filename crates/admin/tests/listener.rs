//! The admin listener under hostile clients: real sockets on loopback, a
//! real SQLite store, real TLS with a certificate made here.

use corsgate_admin::{serve, AdminState, Denials, Limits, Token};
use corsgate_config::Role;
use corsgate_store::Store;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);
const IDLE_TIMEOUT: Duration = Duration::from_millis(600);
/// Scheduling slack on a loaded machine; without the limits these clients
/// would be held for 30 s or more, so the bounds still tell.
const SLACK: Duration = Duration::from_millis(1500);

fn token(name: &str, secret: &str, role: Role) -> Token {
    Token {
        name: name.into(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        role,
    }
}

struct Admin {
    addr: SocketAddr,
    state: Arc<AdminState>,
    dir: std::path::PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(
    name: &str,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Admin {
    let dir = std::env::temp_dir().join(format!("corsgate-listener-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = Arc::new(AdminState {
        store: Arc::new(Mutex::new(Store::open(&dir).unwrap())),
        tokens: vec![
            token("viewer", "v-secret", Role::Viewer),
            token("ops", "o-secret", Role::Editor),
        ],
        max_body: 64 * 1024,
        activate: Arc::new(|_| Ok(())),
        metrics: None,
        shadow: None,
        used: Mutex::default(),
        limits: Limits {
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections,
        },
        tls,
        denials: Denials::default(),
        integrity: Mutex::default(),
        console: Default::default(),
        fleet: None,
        node_address: "127.0.0.1".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(listener, state.clone(), rx));
    Admin {
        addr,
        state,
        dir,
        _stop: stop,
    }
}

/// Read until the peer closes; how long that took and what was read.
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> (Duration, String) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
    (t.elapsed(), String::from_utf8_lossy(&out).into_owned())
}

/// One request on a fresh connection, answered and closed.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, head: &str) -> String {
    s.write_all(format!("{head}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    until_closed(s, Duration::from_secs(5)).await.1
}

#[tokio::test]
async fn slow_and_idle_clients_are_closed_within_the_timeouts() {
    let a = start("timeouts", 16, None).await;
    // Idle: connects and sends nothing.
    let mut idle = TcpStream::connect(a.addr).await.unwrap();
    // Slow: half a request, then one byte every 100 ms, never finishing.
    let mut slow = TcpStream::connect(a.addr).await.unwrap();
    slow.write_all(b"GET /api/v1/versions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        let t = Instant::now();
        while slow.write_all(b"X").await.is_ok() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        t.elapsed()
    });
    // Kept alive after one request, then silent.
    let mut kept = TcpStream::connect(a.addr).await.unwrap();
    kept.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let ((idle_closed, _), (kept_closed, answer)) = tokio::join!(
        until_closed(&mut idle, Duration::from_secs(5)),
        until_closed(&mut kept, Duration::from_secs(5))
    );
    let slow_closed = drip.await.unwrap();
    // A body promised and not sent: 408 within the idle timeout.
    let mut stalled = TcpStream::connect(a.addr).await.unwrap();
    stalled
        .write_all(b"POST /api/v1/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer o-secret\r\nContent-Length: 100\r\n\r\n{\"ba")
        .await
        .unwrap();
    let (stalled_closed, stalled_answer) = until_closed(&mut stalled, Duration::from_secs(5)).await;
    println!("stalled body answered after {stalled_closed:?}");
    assert!(
        stalled_answer.starts_with("HTTP/1.1 408"),
        "{stalled_answer}"
    );
    assert!(stalled_closed >= IDLE_TIMEOUT && stalled_closed < IDLE_TIMEOUT + SLACK);
    println!(
        "silent closed after {idle_closed:?}, kept-alive idle after {kept_closed:?}, slow after {slow_closed:?}"
    );
    // Nothing sent: the header timeout closes it, before any authentication.
    let margin = SLACK;
    assert!(idle_closed >= HEADER_TIMEOUT && idle_closed < HEADER_TIMEOUT + margin);
    // Served, then idle: closed within the idle timeout.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(kept_closed < IDLE_TIMEOUT + margin, "{kept_closed:?}");
    // The write fails once the server has closed: at most a drip later.
    assert!(slow_closed < HEADER_TIMEOUT + SLACK, "{slow_closed:?}");
    // A client with something to say is served meanwhile.
    let mut ok = TcpStream::connect(a.addr).await.unwrap();
    let resp = request(
        &mut ok,
        "GET /api/v1/versions HTTP/1.1\r\nAuthorization: Bearer v-secret",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let a = start("cap", 3, None).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(a.addr).await.unwrap());
    }
    // Let the server accept those three.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut excess = TcpStream::connect(a.addr).await.unwrap();
    let (took, resp) = until_closed(&mut excess, Duration::from_secs(2)).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A slot freed is usable again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(a.addr).await.unwrap();
    let resp = request(&mut next, "GET /openapi.json HTTP/1.1").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let text = a.state.denials.render();
    assert!(
        text.contains("corsgate_admin_connections_refused_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_flood_of_forbidden_requests_adds_one_audit_entry_and_is_counted() {
    let a = start("flood", 16, None).await;
    const FLOOD: usize = 2000;
    let t = Instant::now();
    let mut s = TcpStream::connect(a.addr).await.unwrap();
    let body = r#"{"base": null, "to": 1}"#;
    let one = format!(
        "POST /api/v1/rollback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer v-secret\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut reader = s.split();
    let writer = async {
        for _ in 0..FLOOD {
            reader.1.write_all(one.as_bytes()).await.unwrap();
        }
    };
    let counter = async {
        let mut seen = 0;
        let mut buf = vec![0u8; 65536];
        let mut text = String::new();
        while seen < FLOOD {
            let n = reader.0.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {seen}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen = text.matches("HTTP/1.1 403").count();
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, counter);
    println!("{FLOOD} forbidden requests answered in {:?}", t.elapsed());
    assert_eq!(seen, FLOOD);
    // Ten 401s too.
    for _ in 0..10 {
        let mut c = TcpStream::connect(a.addr).await.unwrap();
        let resp = request(
            &mut c,
            "GET /api/v1/audit HTTP/1.1\r\nAuthorization: Bearer wrong",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    }
    let entries = a.state.store.lock().unwrap().audit().unwrap();
    let denied = entries
        .iter()
        .filter(|e| e.action == "token.denied")
        .count();
    println!(
        "audit entries after the flood: {} ({denied} token.denied)",
        entries.len()
    );
    assert_eq!(denied, 1, "{entries:?}");
    // token.used (first use) and the one aggregated denial: nothing else.
    assert_eq!(entries.len(), 2, "{entries:?}");
    let text = a.state.denials.render();
    assert!(
        text.contains(&format!(
            "corsgate_admin_denied_total{{status=\"403\",token=\"viewer\"}} {FLOOD}"
        )),
        "{text}"
    );
    assert!(
        text.contains("corsgate_admin_denied_total{status=\"401\",token=\"-\"} 10"),
        "{text}"
    );
    let report = a.state.store.lock().unwrap().verify(None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.entries, 2);
}

#[tokio::test]
async fn a_declared_oversized_body_gets_413_before_it_is_sent() {
    let a = start("413", 16, None).await;
    let mut s = TcpStream::connect(a.addr).await.unwrap();
    let t = Instant::now();
    s.write_all(b"POST /api/v1/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer o-secret\r\nContent-Length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let (_, resp) = until_closed(&mut s, Duration::from_secs(2)).await;
    println!("413 after {:?}", t.elapsed());
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn the_admin_listener_speaks_tls_with_a_generated_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["admin.test".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("corsgate-admin-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let acceptor = corsgate_admin::tls_acceptor(&corsgate_config::Tls {
        cert_file: cert_file.display().to_string(),
        key_file: key_file.display().to_string(),
    })
    .unwrap();
    let a = start("tls", 16, Some(acceptor)).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("admin.test").unwrap();
    let tcp = TcpStream::connect(a.addr).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let resp = request(
        &mut tls,
        "GET /api/v1/versions HTTP/1.1\r\nAuthorization: Bearer v-secret",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The console's sign-in over TLS: the cookie is Secure, and only an
    // https:// Origin is the listener's own.
    for (origin, want) in [("https://x", "HTTP/1.1 200"), ("http://x", "HTTP/1.1 403")] {
        let tcp = TcpStream::connect(a.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("admin.test").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let body = r#"{"token": "v-secret"}"#;
        let head = format!(
            "POST /ui/login HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let resp = until_closed(&mut tls, Duration::from_secs(5)).await.1;
        assert!(resp.starts_with(want), "{origin}: {resp}");
        if want.ends_with("200") {
            let cookie = resp
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
                .unwrap_or_default();
            assert!(
                cookie.contains("HttpOnly")
                    && cookie.contains("SameSite=Strict")
                    && cookie.ends_with("; Secure"),
                "{cookie}"
            );
        } else {
            assert!(!resp.to_ascii_lowercase().contains("set-cookie"), "{resp}");
        }
    }
    // Plain HTTP to the TLS listener gets no answer.
    let mut plain = TcpStream::connect(a.addr).await.unwrap();
    let resp = request(&mut plain, "GET /openapi.json HTTP/1.1").await;
    assert!(!resp.contains("HTTP/1.1 200"), "{resp}");
    // A client that never starts the handshake is closed too.
    let mut silent = TcpStream::connect(a.addr).await.unwrap();
    let (took, _) = until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(took < HEADER_TIMEOUT + SLACK, "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
