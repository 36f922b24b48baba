//! The real binary against a real `corsgate.db` tampered with plain SQL:
//! `corsgate audit verify` names each change, and the restarted gateway
//! never serves the edited content.

use corsgate_store::audit::chain_hash;
use rusqlite::Connection;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_corsgate");
/// SHA-256 of "editor-secret".
const EDITOR_HASH: &str = "2ab2be1f6eca11ec9aeb4cda517586091446724556c17637fadb27d0cee08173";
const EVIL: &str = "https://evil.test";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-integrity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(port: u16, admin_port: u16, origin: &str, key: &Path) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: api\n    listen: \"127.0.0.1:{port}\"\n    cors: p\n    rules:\n      - direct: {{ status: 200, body: ok }}\nadmin:\n  listen: \"127.0.0.1:{admin_port}\"\n  auditKeyFile: \"{}\"\n  tokens:\n    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}\n",
        key.display()
    )
}

/// One blocking HTTP/1.1 exchange; the status line and headers, and body.
fn http(port: u16, head: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn admin(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http(
        port,
        &format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer editor-secret"),
        body,
    )
}

/// Does the gateway let `origin` read a response?
fn allows(port: u16, origin: &str) -> bool {
    let (_, out) = http(port, &format!("GET /x HTTP/1.1\r\nOrigin: {origin}"), "");
    out.to_ascii_lowercase()
        .contains(&format!("access-control-allow-origin: {origin}"))
}

struct Gateway {
    child: Child,
    log: PathBuf,
}

impl Gateway {
    fn start(root: &Path, port: u16, admin_port: u16) -> Result<Gateway, String> {
        let log = root.join(format!("gw-{}.log", admin_port));
        let mut child = Command::new(BIN)
            .args(["run", "--no-watch", "--config"])
            .arg(root.join("gw.yaml"))
            .arg("--data-dir")
            .arg(root.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "exited {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            let up = std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up {
                return Ok(Gateway { child, log });
            }
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sql(root: &Path) -> Connection {
    let c = Connection::open(root.join("data/corsgate.db")).unwrap();
    c.pragma_update(None, "foreign_keys", "OFF").unwrap();
    c
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Version 2 opened to evil.test with every hash after it recomputed.
fn forge(c: &Connection, content: &str) {
    let hash = sha256_hex(content);
    c.execute(
        "UPDATE versions SET content = ?1, content_hash = ?2 WHERE id = 2",
        rusqlite::params![content, hash],
    )
    .unwrap();
    let detail: String = c
        .query_row("SELECT detail FROM audit WHERE version = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut d: serde_json::Value = serde_json::from_str(&detail).unwrap();
    d["content_hash"] = hash.into();
    c.execute(
        "UPDATE audit SET detail = ?1 WHERE version = 2",
        [d.to_string()],
    )
    .unwrap();
    let rows: Vec<(i64, String, String, String, Option<i64>, String)> = c
        .prepare("SELECT seq, at, actor, action, version, detail FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = corsgate_store::audit::GENESIS.to_owned();
    for (seq, at, actor, action, version, detail) in rows {
        let hash = chain_hash(&prev, &at, &actor, &action, version, &detail);
        c.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, seq],
        )
        .unwrap();
        c.execute(
            "UPDATE audit_head SET count = ?1, hash = ?2",
            rusqlite::params![seq, hash],
        )
        .unwrap();
        prev = hash;
    }
}

struct Case {
    name: &'static str,
    tamper: fn(&Connection, &str),
    /// What `audit verify` prints first.
    named: &'static str,
    /// The origin the restarted gateway allows (`None`: it refuses to start).
    serves: Option<&'static str>,
}

const A: &str = "https://a.example";
const B: &str = "https://b.example";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "content-edit",
            tamper: |c, _| {
                c.execute_batch(&format!(
                    "UPDATE versions SET content = replace(content, '{B}', '{EVIL}') WHERE id = 2"
                ))
                .unwrap()
            },
            named: "version 2 was edited: its content does not match its hash",
            serves: Some(A),
        },
        Case {
            name: "full-truncation",
            tamper: |c, _| {
                c.execute_batch("DELETE FROM audit; DELETE FROM audit_head")
                    .unwrap()
            },
            named: "version 1 has no audit entry",
            serves: None,
        },
        Case {
            name: "tail-truncation",
            tamper: |c, _| {
                c.execute_batch(
                    "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit);
                     UPDATE audit_head SET count = count - 1,
                       hash = (SELECT hash FROM audit WHERE seq = (SELECT max(seq) FROM audit))",
                )
                .unwrap()
            },
            named: "version 2 has no audit entry",
            serves: Some(A),
        },
        Case {
            name: "recomputed",
            tamper: forge,
            named: "was forged: its signature does not verify",
            serves: Some(A),
        },
        Case {
            name: "type-change",
            tamper: |c, _| {
                c.execute_batch("UPDATE audit SET version = 'abc' WHERE action = 'token.used'")
                    .unwrap()
            },
            named:
                "was tampered with: its version is text, where corsgate writes an integer or null",
            serves: Some(A),
        },
        Case {
            name: "version-without-entry",
            tamper: |c, evil| {
                c.execute(
                    "INSERT INTO versions (parent, author, created_at, comment, content, content_hash, lints, policy_tests)
                     VALUES (2, 'ops', '2026-01-01T00:00:00Z', 'x', ?1, ?2, '[]', '{}')",
                    rusqlite::params![evil, sha256_hex(evil)],
                )
                .unwrap();
                c.execute_batch("UPDATE active SET version = 3").unwrap();
            },
            named: "version 3 has no audit entry",
            serves: Some(B),
        },
    ]
}

#[test]
fn each_tampering_is_named_by_audit_verify_and_never_served() {
    for case in cases() {
        let root = dir(case.name);
        let (key, public) = (root.join("audit.key"), root.join("audit.pub"));
        let out = Command::new(BIN)
            .args(["audit", "keygen", "--private-key"])
            .arg(&key)
            .arg("--public-key")
            .arg(&public)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (port, admin_port) = (free_port(), free_port());
        std::fs::write(root.join("gw.yaml"), config(port, admin_port, A, &key)).unwrap();
        {
            let gw = Gateway::start(&root, port, admin_port).unwrap();
            let v2 = config(port, admin_port, B, &key);
            let body = serde_json::json!({ "base": 1, "comment": "b", "content": v2 }).to_string();
            let (status, out) = admin(admin_port, "POST", "/api/v1/versions", &body);
            assert_eq!(status, 201, "{out}\n{}", gw.log());
            assert!(allows(port, B) && !allows(port, EVIL));
        }
        let verify = || {
            Command::new(BIN)
                .args(["audit", "verify", "--data-dir"])
                .arg(root.join("data"))
                .arg("--public-key")
                .arg(&public)
                .output()
                .unwrap()
        };
        let clean = verify();
        assert_eq!(clean.status.code(), Some(0), "{}: {clean:?}", case.name);
        let evil = config(port, admin_port, EVIL, &key);
        (case.tamper)(&sql(&root), &evil);
        let out = verify();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {out:?}", case.name);
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("audit log TAMPERED: ") && first.contains(case.named),
            "{}: {stdout}",
            case.name
        );
        match (case.serves, Gateway::start(&root, port, admin_port)) {
            (Some(origin), Ok(gw)) => {
                assert!(allows(port, origin), "{}: {}", case.name, gw.log());
                assert!(
                    !allows(port, EVIL),
                    "{}: served the edited content",
                    case.name
                );
                let (status, ready) = http(admin_port, "GET /ready HTTP/1.1", "");
                assert_eq!(status, 503, "{}: {ready}", case.name);
                let (_, metrics) = admin(admin_port, "GET", "/metrics", "");
                assert!(metrics.contains("corsgate_store_intact 0"), "{metrics}");
                assert!(gw.log().contains("STORE TAMPERED"), "{}", gw.log());
            }
            (None, Err(why)) => {
                assert!(why.contains("no stored version verifies"), "{why}");
            }
            (want, got) => panic!("{}: wanted {want:?}, got {:?}", case.name, got.err()),
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn the_version_gauge_follows_the_store_and_refusals_are_counted() {
    let root = dir("metrics");
    let key = root.join("audit.key");
    let out = Command::new(BIN)
        .args(["audit", "keygen", "--private-key"])
        .arg(&key)
        .arg("--public-key")
        .arg(root.join("audit.pub"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let (port, admin_port) = (free_port(), free_port());
    std::fs::write(root.join("gw.yaml"), config(port, admin_port, A, &key)).unwrap();
    let gw = Gateway::start(&root, port, admin_port).unwrap();
    let gauge = |name: &str| {
        let (_, m) = admin(admin_port, "GET", "/metrics", "");
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(gauge("corsgate_config_version ").as_deref(), Some("1"));
    // SIGHUP applies the file as version 2: the gauge follows.
    std::fs::write(root.join("gw.yaml"), config(port, admin_port, B, &key)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allows(port, B) {
        assert!(Instant::now() < deadline, "{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gauge("corsgate_config_version ").as_deref(), Some("2"));
    // A refused apply and a refused SIGHUP are counted as failed.
    let body = serde_json::json!({ "base": 2, "content": "policies: [" }).to_string();
    assert_eq!(admin(admin_port, "POST", "/api/v1/versions", &body).0, 400);
    std::fs::write(root.join("gw.yaml"), "vservices: [").unwrap();
    Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    let failed = "corsgate_config_reloads_total{result=\"failed\"} ";
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(failed).as_deref() != Some("2") {
        assert!(Instant::now() < deadline, "{:?}", gauge(failed));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The head is exported beside them.
    let (_, m) = admin(admin_port, "GET", "/metrics", "");
    let head = m
        .lines()
        .find(|l| l.starts_with("corsgate_audit_head_info{"))
        .unwrap_or_default();
    let stored: String = sql(&root)
        .query_row("SELECT hash FROM audit_head", [], |r| r.get(0))
        .unwrap();
    assert!(head.contains(&stored), "{head} vs {stored}");
    drop(gw);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_exposed_admin_listener_without_tokens_is_refused_with_its_location() {
    let root = dir("exposed");
    let file = root.join("gw.yaml");
    std::fs::write(
        &file,
        "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\nadmin:\n  listen: \"0.0.0.0:9901\"\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let at = format!("{}:5:11: admin.listen: 0.0.0.0:9901 is reachable beyond this host but admin.tokens is empty", file.display());
    assert!(text.contains(&at), "{text}");
    // With a token it is valid, but warned about without TLS.
    std::fs::write(
        &file,
        format!("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\nadmin:\n  listen: \"0.0.0.0:9901\"\n  tokens:\n    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}\n"),
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("L-ADMIN-PLAINTEXT"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}
