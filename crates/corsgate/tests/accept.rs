//! The real binary out of file descriptors: connections past the process's
//! limit make `accept` fail, and the listener backs off instead of retrying
//! at once. Without the back-off the accept loop spins a core and writes
//! millions of "accept failed" lines until the clients leave.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name in parentheses; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn accept_errors_back_off_and_are_rate_limited() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("corsgate-accept-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gw.yaml");
    let log = dir.join("gw.log");
    std::fs::write(
        &file,
        format!(
            "vservices:\n  - name: api\n    listen: \"127.0.0.1:{port}\"\n    rules:\n      - direct: {{ status: 200, body: ok }}\n"
        ),
    )
    .unwrap();
    // 48 descriptors: enough to start and serve, not for the clients below.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg("ulimit -n 48 && exec \"$0\" run --no-watch --log-format json --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_corsgate"))
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port).is_none() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Hold more idle connections than the process has descriptors.
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(s) =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        {
            held.push(s);
        }
    }
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(child.id()) - before;
    let text = std::fs::read_to_string(&log).unwrap();
    let failures = text.lines().filter(|l| l.contains("accept failed")).count();

    drop(held);
    // Served again within the back-off's longest wait once they leave.
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = loop {
        if let Some(r) = get(port) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "not served after the clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        failures >= 1,
        "accept never failed: is the limit in force? {text}"
    );
    // One line at once, then at most one per 5 s.
    assert!(failures <= 2, "{failures} accept-failure lines in 3 s");
    // Idle, not spinning: well under a tenth of a core over 3 s (ticks are
    // 1/100 s on Linux).
    assert!(
        spent < 30,
        "{spent} CPU ticks in 3 s while out of descriptors"
    );
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    let _ = std::fs::remove_dir_all(&dir);
}
