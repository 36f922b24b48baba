//! `corsgate run` with `admin.store.etcd`: the real binary against a real
//! etcd member. The admin API lists, applies (409 on a stale base), rolls
//! back, audits and verifies on etcd, and the data plane serves each
//! change; no SQLite store is made.

use serde_json::{json, Value};
use std::path::PathBuf;

#[path = "../../etcd/tests/common/mod.rs"]
mod etcd;
mod fleet_common;

use fleet_common::*;

#[test]
fn the_admin_api_applies_rolls_back_and_verifies_on_etcd_and_the_gateway_serves_it() {
    let cluster = etcd::Cluster::start(1, &[]);
    let endpoint = cluster.endpoints()[0].clone();
    let dir = etcd::temp_dir("run-admin");
    let (port, admin_port) = (etcd::free_port(), etcd::free_port());
    let a = "https://a.example";
    let b = "https://b.example";
    let cfg = dir.join("gw.yaml");
    std::fs::write(&cfg, config(port, admin_port, a, &endpoint)).unwrap();
    let data = dir.join("data");
    let gw = Gateway::start(&cfg, &data, port, admin_port);

    // Bootstrapped from the file as version 1, in etcd.
    let (s, v) = admin(admin_port, "GET", "/api/v1/versions", &Value::Null);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(allows(port, a) && !allows(port, b));

    // Apply on base 1: served at once.
    let next = config(port, admin_port, b, &endpoint);
    let body = json!({ "base": 1, "comment": "to b", "content": next });
    let (s, v) = admin(admin_port, "POST", "/api/v1/versions", &body);
    assert_eq!(s, 201, "{v}\n{}", gw.log());
    assert_eq!(v["id"], 2, "{v}");
    assert!(allows(port, b) && !allows(port, a), "{}", gw.log());

    // The same base again is stale: 409, nothing changes.
    let (s, v) = admin(admin_port, "POST", "/api/v1/versions", &body);
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["active"], 2, "{v}");

    // An invalid candidate: 400, audited, never active.
    let bad = json!({ "base": 2, "content": "vservices: [ {" });
    let (s, v) = admin(admin_port, "POST", "/api/v1/versions", &bad);
    assert_eq!(s, 400, "{v}");

    // Rollback to 1: served.
    let (s, v) = admin(
        admin_port,
        "POST",
        "/api/v1/rollback",
        &json!({ "base": 2, "to": 1 }),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["id"], 3, "{v}");
    assert!(allows(port, a) && !allows(port, b));
    let (s, v) = admin(admin_port, "GET", "/api/v1/versions/active", &Value::Null);
    assert_eq!((s, v["id"].clone()), (200, json!(3)), "{v}");

    // The audit trail is in etcd and verifies.
    let (s, v) = admin(admin_port, "GET", "/api/v1/audit", &Value::Null);
    assert_eq!(s, 200, "{v}");
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in ["config.applied", "config.rejected", "config.rolled_back"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let (s, v) = admin(admin_port, "GET", "/api/v1/audit/verify", &Value::Null);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["versions"], 3, "{v}");

    // The same history is what etcd holds, read by a second client.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let active = rt.block_on(async {
        let client = etcd::client(&cluster).await;
        corsgate_etcd::EtcdStore::new(client, "/corsgate/")
            .active_id()
            .await
            .unwrap()
    });
    assert_eq!(active, Some(3));
    assert!(
        !data.join("corsgate.db").exists(),
        "no SQLite store was made"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_gateways_on_a_three_member_cluster_serve_an_apply_and_a_rollback_made_through_one() {
    let cluster = etcd::Cluster::start(3, &[]);
    let endpoints = cluster
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = etcd::temp_dir("run-three");
    let (a, b) = ("https://a.example", "https://b.example");
    // Every data-plane listener is 127.0.0.1:0, so the one stored
    // configuration fits three processes on this host; each takes its own
    // admin port from its own file.
    let gateways: Vec<(Gateway, u16, PathBuf)> = (0..3)
        .map(|i| {
            let admin_port = etcd::free_port();
            let cfg = dir.join(format!("gw{i}.yaml"));
            std::fs::write(&cfg, config_on("0", admin_port, a, &endpoints)).unwrap();
            let data = dir.join(format!("data{i}"));
            (Gateway::start(&cfg, &data, 0, admin_port), admin_port, data)
        })
        .collect();
    let ports: Vec<u16> = gateways.iter().map(|(g, _, _)| g.data_port()).collect();
    for &p in &ports {
        assert!(allows(p, a) && !allows(p, b), "port {p}");
    }
    let admin_a = gateways[0].1;

    let next = config_on("0", admin_a, b, &endpoints);
    let (s, v) = admin(
        admin_a,
        "POST",
        "/api/v1/versions",
        &json!({ "base": 1, "comment": "to b", "content": next }),
    );
    assert_eq!(s, 201, "{v}");
    for (i, &p) in ports.iter().enumerate() {
        eventually(&format!("gateway {i} serves version 2"), || {
            allows(p, b) && !allows(p, a)
        });
    }

    let (s, v) = admin(
        admin_a,
        "POST",
        "/api/v1/rollback",
        &json!({ "base": 2, "to": 1 }),
    );
    assert_eq!(s, 201, "{v}");
    for (i, &p) in ports.iter().enumerate() {
        eventually(&format!("gateway {i} serves version 3"), || {
            allows(p, a) && !allows(p, b)
        });
    }
    // Each follower keeps what it applied on its own disk.
    for (i, (g, _, data)) in gateways.iter().enumerate().skip(1) {
        eventually(&format!("gateway {i} keeps version 3 on disk"), || {
            corsgate_etcd::local::LastApplied::load(data)
                .ok()
                .flatten()
                .is_some_and(|l| l.version == 3)
        });
        assert!(
            g.log()
                .contains("configuration applied from the etcd store"),
            "{}",
            g.log()
        );
    }
    // Any member lists the whole fleet, each node in sync at version 3.
    let all_at = |port: u16, n: usize, version: i64| {
        let s = states(port);
        s.len() == n
            && s.iter()
                .all(|(_, st, at)| st == "in-sync" && *at == version)
    };
    eventually("three nodes in sync at version 3", || {
        all_at(gateways[1].1, 3, 3)
    });
    let (code, table) = admin_fleet(gateways[2].1);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("store etcd, active version 3"), "{table}");
    for name in ["data0", "data1", "data2 (this)"] {
        assert!(table.contains(name), "{name} in {table}");
    }
    assert_eq!(metric(gateways[0].1, "corsgate_store_connected"), Some(1.0));
    // A node killed without a goodbye leaves the listing when its lease
    // (2 s here) expires.
    let mut gateways = gateways;
    let (mut gone, _, _) = gateways.pop().unwrap();
    let _ = gone.child.kill();
    let _ = gone.child.wait();
    assert_eq!(
        states(gateways[0].1).len(),
        3,
        "still listed before the lease ends"
    );
    eventually("the killed node leaves the listing", || {
        all_at(gateways[0].1, 2, 3)
    });
    // A node stopped cleanly withdraws its record on the way out: gone by
    // the time the process has exited, not a lease later.
    let (mut stopped, _, _) = gateways.pop().unwrap();
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(stopped.child.id() as i32, libc::SIGTERM) };
    let status = stopped.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", stopped.log());
    let left = states(gateways[0].1);
    assert_eq!(left.len(), 1, "withdrawn at shutdown: {left:?}");
    drop(gateways);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_instance_that_cannot_take_a_version_keeps_its_last_good_one_and_catches_up_after() {
    let cluster = etcd::Cluster::start(1, &[]);
    let endpoints = format!("\"{}\"", cluster.endpoints()[0]);
    let dir = etcd::temp_dir("run-cannot");
    let (a, b) = ("https://a.example", "https://b.example");
    let gateways: Vec<(Gateway, u16, PathBuf)> = (0..2)
        .map(|i| {
            let admin_port = etcd::free_port();
            let cfg = dir.join(format!("gw{i}.yaml"));
            std::fs::write(&cfg, config_on("0", admin_port, a, &endpoints)).unwrap();
            let data = dir.join(format!("data{i}"));
            (Gateway::start(&cfg, &data, 0, admin_port), admin_port, data)
        })
        .collect();
    let ports: Vec<u16> = gateways.iter().map(|(g, _, _)| g.data_port()).collect();
    let admin_a = gateways[0].1;
    eventually("gateway 1 keeps version 1 on disk", || {
        corsgate_etcd::local::LastApplied::load(&gateways[1].2)
            .ok()
            .flatten()
            .is_some_and(|l| l.version == 1)
    });

    // Version 2 adds a listener on an address this host has taken: it
    // is valid and committed for the fleet, but no instance here can bind
    // it, so each stays on version 1 and says so.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fixed = held.local_addr().unwrap().port();
    let extra = format!(
        "  - name: extra\n    listen: \"127.0.0.1:{fixed}\"\n    rules:\n      - direct: {{ status: 200, body: ok }}\nadmin:"
    );
    let two = config_on("0", admin_a, b, &endpoints).replacen("admin:", &extra, 1);
    let (s, v) = admin(
        admin_a,
        "POST",
        "/api/v1/versions",
        &json!({ "base": 1, "content": two }),
    );
    assert_eq!(s, 201, "{v}");
    eventually("gateway 1 reports version 2 it cannot take", || {
        gateways[1]
            .0
            .log()
            .contains("cannot be applied on this instance")
    });
    assert!(gateways[0]
        .0
        .log()
        .contains("is active in the store but this instance could not apply it"));
    for &p in &ports {
        assert!(allows(p, a) && !allows(p, b), "port {p}");
    }
    let kept = corsgate_etcd::local::LastApplied::load(&gateways[1].2)
        .unwrap()
        .unwrap();
    assert_eq!(kept.version, 1, "the local copy stays the last good one");
    // Both show as failing version 2, serving 1, with the reason.
    eventually("both nodes failing version 2", || {
        let s = states(admin_a);
        s.len() == 2 && s.iter().all(|(_, st, at)| st == "failing" && *at == 1)
    });
    let (_, v) = fleet(gateways[1].1);
    let failed = &v["nodes"][0]["failed"];
    assert_eq!(failed["version"], 2, "{v}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains(&fixed.to_string())),
        "the error names the address: {v}"
    );
    let (code, table) = admin_fleet(admin_a);
    assert_eq!(code, 1, "a failing node makes the command fail: {table}");
    assert!(
        table.contains("failing") && table.contains("version 2:"),
        "{table}"
    );

    // Version 3 drops the fixed listener: both take it.
    let three = config_on("0", admin_a, b, &endpoints);
    let (s, v) = admin(
        admin_a,
        "POST",
        "/api/v1/versions",
        &json!({ "base": 2, "content": three }),
    );
    assert_eq!(s, 201, "{v}");
    for (i, &p) in ports.iter().enumerate() {
        eventually(&format!("gateway {i} serves version 3"), || {
            allows(p, b) && !allows(p, a)
        });
    }
    eventually("both nodes in sync at version 3", || {
        let s = states(admin_a);
        s.len() == 2 && s.iter().all(|(_, st, at)| st == "in-sync" && *at == 3)
    });
    drop(held);
    drop(gateways);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gateway_restarted_while_etcd_is_down_serves_its_local_copy_and_catches_up() {
    let mut cluster = etcd::Cluster::start(1, &[]);
    let endpoint = cluster.endpoints()[0].clone();
    let dir = etcd::temp_dir("run-offline");
    let (a, b, c) = (
        "https://a.example",
        "https://b.example",
        "https://c.example",
    );
    let admin_port = etcd::free_port();
    let cfg = dir.join("gw.yaml");
    std::fs::write(
        &cfg,
        config_on("0", admin_port, a, &format!("\"{endpoint}\"")),
    )
    .unwrap();
    let data = dir.join("data");
    let gw = Gateway::start(&cfg, &data, 0, admin_port);
    let two = config_on("0", admin_port, b, &format!("\"{endpoint}\""));
    let (s, v) = admin(
        admin_port,
        "POST",
        "/api/v1/versions",
        &json!({ "base": 1, "content": two }),
    );
    assert_eq!(s, 201, "{v}");
    eventually("version 2 kept on disk", || {
        corsgate_etcd::local::LastApplied::load(&data)
            .ok()
            .flatten()
            .is_some_and(|l| l.version == 2)
    });
    drop(gw);

    // etcd down: the restarted gateway serves version 2 from its copy.
    cluster.members[0].kill();
    let gw = Gateway::start(&cfg, &data, 0, admin_port);
    let port = gw.data_port();
    assert!(allows(port, b) && !allows(port, a), "{}", gw.log());
    assert!(gw.log().contains("etcd is unreachable"), "{}", gw.log());
    // It says it is cut off: the link gauges, and /fleet answers 503 with
    // what this node knows of itself.
    assert_eq!(metric(admin_port, "corsgate_store_connected"), Some(0.0));
    let (s, v) = fleet(admin_port);
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["selfRecord"]["applied"], 2, "{v}");
    let (s, _) = http(admin_port, "GET /live HTTP/1.1", "");
    assert_eq!(s, 200);
    let (s, _) = http(admin_port, "GET /ready HTTP/1.1", "");
    assert_eq!(s, 200, "serving its local copy is ready");

    // etcd back, and a change made elsewhere: the gateway catches up.
    cluster.members[0].restart();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = etcd::client(&cluster).await;
        let mut store = corsgate_etcd::EtcdStore::new(client, "/corsgate/");
        let three = config_on("0", admin_port, c, &format!("\"{endpoint}\""));
        store.apply(Some(2), "other", "", &three).await.unwrap();
    });
    eventually("version 3 served after etcd returned", || allows(port, c));
    eventually("connected again", || {
        metric(admin_port, "corsgate_store_connected") == Some(1.0)
    });
    assert!(metric(admin_port, "corsgate_store_seconds_since_reached").is_some_and(|s| s < 5.0));
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gateway_with_nothing_to_serve_waits_for_etcd_answering_probes_and_then_serves() {
    let mut cluster = etcd::Cluster::start(1, &[]);
    let endpoint = format!("\"{}\"", cluster.endpoints()[0]);
    // Up once (so that it restarts on its data), then down.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(cluster.ready(None));
    cluster.members[0].kill();
    let dir = etcd::temp_dir("run-waits");
    let a = "https://a.example";
    let admin_port = etcd::free_port();
    let cfg = dir.join("gw.yaml");
    std::fs::write(&cfg, config_on("0", admin_port, a, &endpoint)).unwrap();
    // No local copy and no etcd: the process stays up, serves no policy
    // (not the file: the fleet may hold another), and says so to probes.
    let gw = Gateway::start_unready(&cfg, &dir.join("data"), admin_port);
    let (s, out) = http(admin_port, "GET /live HTTP/1.1", "");
    assert_eq!(s, 200, "{out}");
    let (s, out) = http(admin_port, "GET /ready HTTP/1.1", "");
    assert_eq!(s, 503, "{out}");
    assert!(out.contains("unreachable"), "{out}");
    let (s, _) = admin(admin_port, "GET", "/api/v1/versions", &Value::Null);
    assert_eq!(s, 503, "the API is not served while starting");
    assert!(
        !gw.log().contains("vservice"),
        "no data-plane listener: {}",
        gw.log()
    );

    // etcd comes back (empty): the file becomes version 1 and is served.
    cluster.members[0].restart();
    eventually("ready once etcd answered", || {
        http(admin_port, "GET /ready HTTP/1.1", "").0 == 200
    });
    let port = gw.data_port();
    assert!(allows(port, a), "{}", gw.log());
    let (s, v) = admin(admin_port, "GET", "/api/v1/versions/active", &Value::Null);
    assert_eq!((s, v["id"].as_i64()), (200, Some(1)), "{v}");
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateways_started_together_on_a_fresh_cluster_bootstrap_one_version_one_of_them_wrote() {
    // Not waited for: the members are still electing a leader when the
    // gateways first reach them.
    let cluster = etcd::Cluster::start(3, &[]);
    let endpoints = cluster
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = etcd::temp_dir("run-bootstrap");
    let a = "https://a.example";
    let gateways: Vec<(Gateway, u16)> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..3)
            .map(|i| {
                let (dir, endpoints) = (&dir, &endpoints);
                s.spawn(move || {
                    let admin_port = etcd::free_port();
                    let cfg = dir.join(format!("gw{i}.yaml"));
                    std::fs::write(&cfg, config_on("0", admin_port, a, endpoints)).unwrap();
                    let data = dir.join(format!("data{i}"));
                    (Gateway::start(&cfg, &data, 0, admin_port), admin_port)
                })
            })
            .collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (g, admin_port) in &gateways {
        assert!(allows(g.data_port(), a));
        let (s, v) = admin(*admin_port, "GET", "/api/v1/versions", &Value::Null);
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["versions"].as_array().map(Vec::len),
            Some(1),
            "one bootstrap: {v}"
        );
    }
    let logs: usize = gateways
        .iter()
        .filter(|(g, _)| g.log().contains("bootstrapped from the configuration file"))
        .count();
    assert_eq!(logs, 1, "exactly one gateway wrote version 1");
    let (s, v) = admin(gateways[0].1, "GET", "/api/v1/audit/verify", &Value::Null);
    assert_eq!((s, &v["intact"]), (200, &Value::Bool(true)), "{v}");
    drop(gateways);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_gateways_applying_from_the_same_base_at_once_one_wins_and_the_other_gets_409() {
    let cluster = etcd::Cluster::start(3, &[]);
    let endpoints = cluster
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = etcd::temp_dir("run-race");
    let gateways: Vec<(Gateway, u16)> = (0..2)
        .map(|i| {
            let admin_port = etcd::free_port();
            let cfg = dir.join(format!("gw{i}.yaml"));
            std::fs::write(
                &cfg,
                config_on("0", admin_port, "https://a.example", &endpoints),
            )
            .unwrap();
            (
                Gateway::start(&cfg, &dir.join(format!("data{i}")), 0, admin_port),
                admin_port,
            )
        })
        .collect();
    for (base, round) in (1..).zip(0..5) {
        let origins = [
            format!("https://r{round}-0.example"),
            format!("https://r{round}-1.example"),
        ];
        let barrier = std::sync::Barrier::new(2);
        let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
            let calls: Vec<_> = gateways
                .iter()
                .zip(&origins)
                .map(|((_, port), origin)| {
                    let (barrier, endpoints) = (&barrier, &endpoints);
                    s.spawn(move || {
                        let content = config_on("0", *port, origin, endpoints);
                        barrier.wait();
                        admin(
                            *port,
                            "POST",
                            "/api/v1/versions",
                            &json!({ "base": base, "content": content }),
                        )
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}: {answers:?}");
        let (winner, _) = answers
            .iter()
            .enumerate()
            .find(|(_, (s, _))| *s == 201)
            .unwrap();
        // Both gateways serve the winner's origin, and the history is linear.
        for (g, _) in &gateways {
            let port = g.data_port();
            eventually("both serve the winner", || allows(port, &origins[winner]));
        }
    }
    let (_, v) = admin(gateways[1].1, "GET", "/api/v1/versions", &Value::Null);
    let parents: Vec<Option<i64>> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["parent"].as_i64())
        .collect();
    assert_eq!(
        parents,
        [None, Some(1), Some(2), Some(3), Some(4), Some(5)],
        "{v}"
    );
    let (_, v) = admin(gateways[0].1, "GET", "/api/v1/audit/verify", &Value::Null);
    assert_eq!(v["intact"], true, "{v}");
    drop(gateways);
    let _ = std::fs::remove_dir_all(&dir);
}
