//! `admin.store.etcd` is refused by `corsgate run` until the instance
//! serves from etcd: never a silent fallback to a private SQLite store.

use std::process::Command;

#[test]
fn run_refuses_an_etcd_store_it_cannot_serve_and_creates_no_sqlite_store() {
    let dir = std::env::temp_dir().join(format!("corsgate-fleet-refuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("gw.yaml");
    std::fs::write(
        &cfg,
        "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\nadmin:\n  listen: \"127.0.0.1:0\"\n  store:\n    etcd: { endpoints: [\"http://127.0.0.1:2379\"] }\n",
    )
    .unwrap();
    let data = dir.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("admin.store.etcd"), "{stderr}");
    assert!(
        !data.join("corsgate.db").exists(),
        "no SQLite store was made"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
