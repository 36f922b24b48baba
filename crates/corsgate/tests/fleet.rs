//! `corsgate audit verify --config` against the etcd store.

use std::process::Command;

#[path = "../../etcd/tests/common/mod.rs"]
mod etcd;

/// Run `corsgate audit verify --config`: exit code and stdout.
fn verify(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .args(["audit", "verify", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_the_etcd_store_and_names_an_etcdctl_edit() {
    let cluster = etcd::Cluster::start(1, &[]);
    let client = etcd::client(&cluster).await;
    let mut store = corsgate_etcd::EtcdStore::new(client.clone(), "/corsgate/");
    let cfg_text = |origin: &str| {
        format!(
            "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\nadmin:\n  listen: \"127.0.0.1:0\"\n  store:\n    etcd: {{ endpoints: [\"{}\"] }}\n",
            cluster.endpoints()[0]
        )
    };
    store
        .apply(None, "alice", "one", &cfg_text("https://a.example"))
        .await
        .unwrap();
    store
        .record("bob", "token.used", None, &serde_json::json!({}))
        .await
        .unwrap();
    store
        .apply(Some(1), "alice", "two", &cfg_text("https://b.example"))
        .await
        .unwrap();
    let dir = etcd::temp_dir("verify-cli");
    let cfg = dir.join("gw.yaml");
    std::fs::write(&cfg, cfg_text("https://a.example")).unwrap();

    let blocking_verify =
        |cfg: std::path::PathBuf| tokio::task::spawn_blocking(move || verify(&cfg));
    let (code, out) = blocking_verify(cfg.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("audit log intact: 3 entries, hash chain verified"),
        "{out}"
    );
    assert!(out.contains("versions: 2, each matching"), "{out}");

    // Edit entry 2 as etcdctl would.
    let mut raw = client.clone();
    let key = store.keys().entry(2);
    let v = raw.get(key.clone(), None).await.unwrap().kvs()[0]
        .value_str()
        .unwrap()
        .to_owned();
    raw.put(key, v.replace("bob", "mallory"), None)
        .await
        .unwrap();
    let (code, out) = blocking_verify(cfg.clone()).await.unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("audit log TAMPERED: audit entry 2 was edited"),
        "{out}"
    );

    // No reachable cluster: unreadable (2), never "intact".
    drop(cluster);
    let (code, out) = blocking_verify(cfg).await.unwrap();
    assert_eq!(code, Some(2), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
