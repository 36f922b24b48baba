//! A fleet under load: real gateways on a real three-member etcd cluster,
//! each with clients sending CORS requests all along, while versions
//! change, etcd stops and comes back, or one instance is cut off while the
//! history is compacted. What must hold throughout: no failed request, and
//! no response that mixes two versions (each version's body and its
//! `Access-Control-Expose-Headers` name the same version).

use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../etcd/tests/common/mod.rs"]
mod etcd;
mod fleet_common;

use fleet_common::*;

const ORIGIN: &str = "https://app.example";

/// Version `n` of the configuration: its body is `v<n>` and it exposes
/// header `x-v<n>`, so a response carries its version twice.
fn versioned(n: u32, admin_port: u16, endpoints: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{ORIGIN}\"]\n    allowMethods: [GET]\n    exposeHeaders: [x-v{n}]\nvservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    cors: p\n    rules:\n      - direct: {{ status: 200, body: v{n} }}\nadmin:\n  listen: \"127.0.0.1:{admin_port}\"\n  tokens:\n    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}\n  store:\n    etcd: {{ endpoints: [{endpoints}], leaseSeconds: 2 }}\n"
    )
}

fn quoted(endpoints: &[String]) -> String {
    endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The version a response shows: `Some(n)` when body and CORS agree,
/// `Err` with the response when they do not or it failed.
fn version_of(response: &str) -> Result<u32, String> {
    let lower = response.to_ascii_lowercase();
    let (head, body) = lower.split_once("\r\n\r\n").ok_or(response)?;
    if !head.starts_with("http/1.1 200") {
        return Err(response.to_owned());
    }
    let body_v: u32 = body
        .trim()
        .strip_prefix('v')
        .and_then(|d| d.parse().ok())
        .ok_or(response)?;
    let expose = head
        .lines()
        .find_map(|l| l.strip_prefix("access-control-expose-headers: "))
        .ok_or(response)?;
    let cors_v: u32 = expose
        .trim()
        .strip_prefix("x-v")
        .and_then(|d| d.parse().ok())
        .ok_or(response)?;
    let allowed = head.contains(&format!("access-control-allow-origin: {ORIGIN}"));
    if body_v != cors_v || !allowed {
        return Err(response.to_owned());
    }
    Ok(body_v)
}

/// Clients sending one request after another (a pause of 2 ms between
/// them, so the load stays bounded on a small machine) to every port,
/// until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ports: &[u16]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = ports
            .iter()
            .flat_map(|&p| [p, p])
            .map(|port| {
                let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let r = exchange(port);
                        sent.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = r.and_then(|resp| version_of(&resp).map(|_| ())) {
                            failures.lock().unwrap().push(format!("port {port}: {e}"));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            failures,
            threads,
        }
    }

    /// Stop; the number of requests sent and every failure.
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

fn exchange(port: u16) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /x HTTP/1.1\r\nHost: api\r\nOrigin: {ORIGIN}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The version a gateway serves now.
fn serves(port: u16) -> Option<u32> {
    exchange(port).ok().and_then(|r| version_of(&r).ok())
}

/// Three gateways on `cluster`, gateway `i` reaching etcd through
/// `endpoints_of(i)`; each with its admin port and data directory.
fn gateways(
    dir: &std::path::Path,
    endpoints_of: impl Fn(usize) -> String,
) -> Vec<(Gateway, u16, PathBuf)> {
    (0..3)
        .map(|i| {
            let admin_port = etcd::free_port();
            let cfg = dir.join(format!("gw{i}.yaml"));
            std::fs::write(&cfg, versioned(1, admin_port, &endpoints_of(i))).unwrap();
            let data = dir.join(format!("node{i}"));
            (Gateway::start(&cfg, &data, 0, admin_port), admin_port, data)
        })
        .collect()
}

#[test]
fn twenty_applies_and_rollbacks_under_load_fail_no_request_and_never_mix_two_versions() {
    let cluster = etcd::Cluster::start(3, &[]);
    let endpoints = quoted(&cluster.endpoints());
    let dir = etcd::temp_dir("load-changes");
    let gws = gateways(&dir, |_| endpoints.clone());
    let ports: Vec<u16> = gws.iter().map(|(g, _, _)| g.data_port()).collect();
    for &p in &ports {
        assert_eq!(serves(p), Some(1), "port {p}");
    }
    let load = Load::start(&ports);
    let mut active = 1i64;
    // The number each version id was made with (a rollback repeats one).
    let mut made_with = vec![0u32, 1];
    let mut propagation = Vec::new();
    // Ten applies, each followed by a rollback to the version before it,
    // through the three admin APIs in turn.
    for change in 0..20u32 {
        let via = gws[change as usize % 3].1;
        let (status, v, want) = if change % 2 == 0 {
            let n = 2 + change / 2;
            let content = versioned(n, via, &endpoints);
            let (s, v) = admin(
                via,
                "POST",
                "/api/v1/versions",
                &json!({ "base": active, "comment": format!("v{n}"), "content": content }),
            );
            (s, v, n)
        } else {
            let (s, v) = admin(
                via,
                "POST",
                "/api/v1/rollback",
                &json!({ "base": active, "to": active - 1 }),
            );
            (s, v, made_with[active as usize - 1])
        };
        assert_eq!(status, 201, "change {change}: {v}");
        assert_eq!(v["id"].as_i64(), Some(active + 1), "{v}");
        active += 1;
        made_with.push(want);
        let t = Instant::now();
        for &p in &ports {
            eventually(&format!("port {p} serves v{want}"), || {
                serves(p) == Some(want)
            });
        }
        propagation.push(t.elapsed());
    }
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed or mixed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(sent > 200, "the load ran ({sent} requests)");
    assert_eq!(active, 21, "twenty changes made twenty versions");
    propagation.sort();
    eprintln!(
        "20 changes, 3 gateways: {sent} requests, 0 failed; every gateway serving a change after: median {:?}, max {:?}",
        propagation[10], propagation[19]
    );
    drop(gws);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_all_of_etcd_stopped_every_gateway_keeps_serving_reports_itself_cut_off_and_catches_up() {
    let mut cluster = etcd::Cluster::start(3, &[]);
    let endpoints = quoted(&cluster.endpoints());
    let dir = etcd::temp_dir("load-etcd-down");
    let gws = gateways(&dir, |_| endpoints.clone());
    let ports: Vec<u16> = gws.iter().map(|(g, _, _)| g.data_port()).collect();
    let load = Load::start(&ports);
    for m in &mut cluster.members {
        m.kill();
    }
    for (_, admin_port, _) in &gws {
        eventually("cut off", || {
            metric(*admin_port, "corsgate_store_connected") == Some(0.0)
        });
        let (s, v) = fleet(*admin_port);
        assert_eq!(s, 503, "{v}");
        assert_eq!(v["selfRecord"]["applied"], 1, "{v}");
    }
    std::thread::sleep(Duration::from_secs(2));
    for &p in &ports {
        assert_eq!(
            serves(p),
            Some(1),
            "port {p} serves its version with etcd down"
        );
    }
    for m in &mut cluster.members {
        m.restart();
    }
    let via = gws[1].1;
    let content = versioned(2, via, &endpoints);
    // The first apply after the cluster's return may meet an election.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = admin(
            via,
            "POST",
            "/api/v1/versions",
            &json!({ "base": 1, "comment": "after the outage", "content": content }),
        );
        if s == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no apply after etcd returned: {s} {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for &p in &ports {
        eventually(&format!("port {p} catches up"), || serves(p) == Some(2));
    }
    for (_, admin_port, _) in &gws {
        eventually("reconnected", || {
            metric(*admin_port, "corsgate_store_connected") == Some(1.0)
        });
    }
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!("etcd stopped and restarted under load: {sent} requests, 0 failed");
    drop(gws);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_instance_cut_off_while_etcd_compacts_past_its_revision_resynchronises() {
    let mut cluster = etcd::Cluster::start(3, &[]);
    let all = cluster.endpoints();
    let dir = etcd::temp_dir("load-compact");
    // Gateway 2 reaches etcd only through member 2; the others through
    // members 0 and 1.
    let gws = gateways(&dir, |i| {
        if i == 2 {
            quoted(&all[2..])
        } else {
            quoted(&all[..2])
        }
    });
    let ports: Vec<u16> = gws.iter().map(|(g, _, _)| g.data_port()).collect();
    // Gateway 2 has followed the pointer (and kept what it took) before
    // it is cut off.
    eventually("gateway 2 followed version 1", || {
        corsgate_etcd::local::LastApplied::load(&gws[2].2)
            .ok()
            .flatten()
            .is_some_and(|l| l.version == 1)
    });
    cluster.members[2].kill();
    let via = gws[0].1;
    for n in 2..=4u32 {
        let (s, v) = admin(
            via,
            "POST",
            "/api/v1/versions",
            &json!({ "base": n - 1, "content": versioned(n, via, &quoted(&all[..2])) }),
        );
        assert_eq!(s, 201, "{v}");
    }
    for &p in &ports[..2] {
        eventually("the connected gateways serve v4", || serves(p) == Some(4));
    }
    assert_eq!(
        serves(ports[2]),
        Some(1),
        "the cut-off gateway is still on v1: {}",
        gws[2].0.log()
    );
    // Compact the whole history so far: the revision gateway 2 followed
    // is gone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(5));
        let mut c = etcd_client::Client::connect(&all[..2], Some(opts))
            .await
            .unwrap();
        let rev = c
            .get("/corsgate/active", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    });
    cluster.members[2].restart();
    eventually("the cut-off gateway resynchronises to v4", || {
        serves(ports[2]) == Some(4)
    });
    let (s, v) = fleet(via);
    assert_eq!(s, 200, "{v}");
    eventually("every node in sync at version 4", || {
        let s = states(via);
        s.len() == 3 && s.iter().all(|(_, st, at)| st == "in-sync" && *at == 4)
    });
    let log = gws[2].0.log();
    assert!(
        log.contains("compacted away"),
        "the resync was a full re-read: {log}"
    );
    drop(gws);
    let _ = std::fs::remove_dir_all(&dir);
}
