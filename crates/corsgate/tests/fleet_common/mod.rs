//! What the fleet tests share: a configuration for `corsgate run` on
//! etcd, blocking HTTP/1.1 and admin API calls, and a gateway process.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_corsgate");
/// SHA-256 of "editor-secret".
pub const EDITOR_HASH: &str = "2ab2be1f6eca11ec9aeb4cda517586091446724556c17637fadb27d0cee08173";

pub fn config(port: u16, admin_port: u16, origin: &str, endpoint: &str) -> String {
    let endpoint = format!("\"{endpoint}\"");
    config_on(&port.to_string(), admin_port, origin, &endpoint)
}

/// `endpoints`: the YAML list's items, quoted.
pub fn config_on(port: &str, admin_port: u16, origin: &str, endpoints: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: api\n    listen: \"127.0.0.1:{port}\"\n    cors: p\n    rules:\n      - direct: {{ status: 200, body: ok }}\nadmin:\n  listen: \"127.0.0.1:{admin_port}\"\n  tokens:\n    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}\n  store:\n    etcd: {{ endpoints: [{endpoints}], leaseSeconds: 2 }}\n"
    )
}

/// One blocking HTTP/1.1 exchange: status and the whole response.
pub fn http(port: u16, head: &str, body: &str) -> (u16, String) {
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

/// An admin API call: status and the JSON body.
pub fn admin(port: u16, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, out) = http(
        port,
        &format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer editor-secret"),
        &body,
    );
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// `GET /fleet` on one admin API.
pub fn fleet(port: u16) -> (u16, Value) {
    admin(port, "GET", "/fleet", &Value::Null)
}

/// The fleet as one admin API lists it: node name → (state, applied).
pub fn states(port: u16) -> Vec<(String, String, i64)> {
    let (_, v) = fleet(port);
    v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or("").to_owned(),
                n["state"].as_str().unwrap_or("").to_owned(),
                n["applied"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// `corsgate admin fleet` against one admin API: exit status and output.
pub fn admin_fleet(port: u16) -> (i32, String) {
    let out = Command::new(BIN)
        .args([
            "admin",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "fleet",
        ])
        .env("CORSGATE_ADMIN_TOKEN", "editor-secret")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A Prometheus sample's value from one admin API's `/metrics`.
pub fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, out) = http(
        port,
        "GET /metrics HTTP/1.1\r\nAuthorization: Bearer editor-secret",
        "",
    );
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Does the gateway let `origin` read a response?
pub fn allows(port: u16, origin: &str) -> bool {
    let (_, out) = http(port, &format!("GET /x HTTP/1.1\r\nOrigin: {origin}"), "");
    out.to_ascii_lowercase()
        .contains(&format!("access-control-allow-origin: {origin}"))
}

pub struct Gateway {
    pub child: Child,
    pub log: PathBuf,
}

impl Gateway {
    /// Start one and wait until it serves: its admin API answers `/ready`
    /// with 200 (and `port`, unless 0, accepts).
    pub fn start(cfg: &Path, data: &Path, port: u16, admin_port: u16) -> Gateway {
        Gateway::launch(cfg, data, port, admin_port, true)
    }

    /// Start one and wait only until its admin listener accepts.
    pub fn start_unready(cfg: &Path, data: &Path, admin_port: u16) -> Gateway {
        Gateway::launch(cfg, data, 0, admin_port, false)
    }

    fn launch(cfg: &Path, data: &Path, port: u16, admin_port: u16, ready: bool) -> Gateway {
        let log = data.with_extension("log");
        let mut child = Command::new(BIN)
            .args(["run", "--no-watch", "--node"])
            .arg(data.file_name().unwrap())
            .arg("--config")
            .arg(cfg)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "exited {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let admin_up = if ready {
                std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
                    && http(admin_port, "GET /ready HTTP/1.1", "").0 == 200
            } else {
                std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
            };
            if admin_up && (port == 0 || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            {
                return Gateway { child, log };
            }
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data-plane port a `127.0.0.1:0` listener got, from the log.
    pub fn data_port(&self) -> u16 {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("vservice") && l.contains("listening"))
            .unwrap_or_else(|| panic!("no listening line in {log}"));
        let at = line.find("127.0.0.1:").expect("an address") + "127.0.0.1:".len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }
}

/// Wait until `check` holds, for at most ten seconds.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
