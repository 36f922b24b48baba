//! What `corsgate run` logs about its configuration, read from the real
//! binary's JSON log lines: each lint at its own severity, at start-up and
//! on reload.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Policy `p` raises `L-NOOP-OPTIONS` (info) and `L-MAXAGE-CHROMIUM`
/// (warn); policy `any` raises `L-CRED-ANY` (error, recorded, not
/// refusing). With `regex_case`, `p` also has `(?i)` in a regex:
/// `L-REGEX-CASE` (info).
fn config(port: u16, regex_case: bool) -> String {
    let regexes = if regex_case {
        r#"    allowOriginRegexes: ['(?i)https://api\.example\.com']
"#
    } else {
        ""
    };
    format!(
        r#"policies:
  p:
    allowOrigins: ["https://app.example"]
{regexes}    allowMethods: [GET, OPTIONS]
    allowHeaders: [x-a]
    exposeHeaders: [x-b]
    maxAge: 86400
  any:
    allowOrigins: ["*"]
    allowMethods: [GET]
    allowHeaders: [x-a]
    exposeHeaders: [x-b]
    allowCredentials: true
    unsafeAllowAnyOriginWithCredentials: true
vservices:
  - name: api
    listen: "127.0.0.1:{port}"
    cors: p
    rules:
      - match: {{ path: {{ prefix: /open }} }}
        cors: any
        direct: {{ status: 200 }}
      - direct: {{ status: 200 }}
"#
    )
}

struct Gateway {
    child: Child,
    file: PathBuf,
    log: PathBuf,
}

impl Gateway {
    fn start(port: u16, config: &str) -> Gateway {
        let dir = std::env::temp_dir().join(format!("corsgate-logs-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.yaml");
        let log = dir.join("gw.log");
        std::fs::write(&file, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_corsgate"))
            .args(["run", "--no-watch", "--log-format", "json", "--config"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Gateway { child, file, log }
    }

    /// The JSON log lines written so far (complete lines only).
    fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Wait until a line's message is `message`, `count` times.
    fn wait_for(&self, message: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if lines
                .iter()
                .filter(|l| l["fields"]["message"] == message)
                .count()
                >= count
            {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} × {message:?} in {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The level of every `configuration lint` line naming `id`.
fn levels(lines: &[Value], id: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == "configuration lint")
        .filter(|l| {
            l["fields"]["lint"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{id} ")))
        })
        .map(|l| l["level"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn each_lint_is_logged_at_its_own_severity_at_start_up_and_on_reload() {
    let port = free_port();
    let gw = Gateway::start(port, &config(port, false));
    let lines = gw.wait_for("configuration lint", 3);
    assert_eq!(levels(&lines, "L-NOOP-OPTIONS"), ["INFO"], "{lines:#?}");
    assert_eq!(levels(&lines, "L-MAXAGE-CHROMIUM"), ["WARN"], "{lines:#?}");
    assert_eq!(levels(&lines, "L-CRED-ANY"), ["ERROR"], "{lines:#?}");
    // Every lint line carries its severity in the text too, and it agrees
    // with the line's level.
    for l in lines
        .iter()
        .filter(|l| l["fields"]["message"] == "configuration lint")
    {
        let text = l["fields"]["lint"].as_str().unwrap();
        let level = l["level"].as_str().unwrap().to_lowercase();
        assert!(text.contains(&format!("[{level}]")), "{l}");
    }

    // A reload logs the new configuration's lints the same way.
    std::fs::write(&gw.file, config(port, true)).unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
    let lines = gw.wait_for("configuration reloaded", 1);
    // The new configuration's lints follow the "reloaded" line.
    let start = lines
        .iter()
        .position(|l| l["fields"]["message"] == "configuration reloaded")
        .unwrap();
    let ids = [
        "L-REGEX-CASE",
        "L-NOOP-OPTIONS",
        "L-MAXAGE-CHROMIUM",
        "L-CRED-ANY",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let after = gw.lines().split_off(start);
        if ids.iter().all(|id| !levels(&after, id).is_empty()) {
            break after;
        }
        assert!(Instant::now() < deadline, "no reload lints: {after:#?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(levels(&lines, "L-REGEX-CASE"), ["INFO"], "{lines:#?}");
    assert_eq!(levels(&lines, "L-NOOP-OPTIONS"), ["INFO"], "{lines:#?}");
    assert_eq!(levels(&lines, "L-MAXAGE-CHROMIUM"), ["WARN"], "{lines:#?}");
    assert_eq!(levels(&lines, "L-CRED-ANY"), ["ERROR"], "{lines:#?}");
}
