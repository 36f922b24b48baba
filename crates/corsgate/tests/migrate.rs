//! `corsgate store migrate`: a real SQLite store, signed, copied into a
//! real etcd member by the real binary.

use corsgate_store::{Signer, Store};
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../etcd/tests/common/mod.rs"]
mod etcd;

fn policy(origin: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

/// A gateway configuration on the etcd store at `endpoint`, `prefix`,
/// signing with `key` when given.
fn gateway(endpoint: &str, prefix: &str, key: Option<&Path>) -> String {
    let key = key.map_or_else(String::new, |k| {
        format!("  auditKeyFile: \"{}\"\n", k.display())
    });
    format!(
        "{}admin:\n  listen: \"127.0.0.1:0\"\n{key}  store:\n    etcd: {{ endpoints: [\"{endpoint}\"], prefix: \"{prefix}\" }}\n",
        policy("https://a.example")
    )
}

/// A SQLite store in `dir`: version 1 before signing began, the signing
/// key entry, a token use, version 2, a refused candidate, and a rollback
/// to version 1 (version 3). Six entries, the last five signed.
fn source(dir: &Path, private: &Path) -> Store {
    let mut s = Store::open(dir).unwrap();
    s.apply(None, "alice", "one", &policy("https://a.example"))
        .unwrap();
    let signing = s
        .sign_with(Signer::read(private).unwrap(), Vec::new())
        .unwrap();
    assert!(signing.is_some());
    s.record("viewer", "token.used", None, &serde_json::json!({}))
        .unwrap();
    s.apply(Some(1), "alice", "two", &policy("https://b.example"))
        .unwrap();
    assert!(s.apply(Some(2), "mallory", "bad", "policies: [").is_err());
    s.rollback(Some(2), 1, "bob", "").unwrap();
    assert_eq!(s.verify_audit().unwrap(), 6);
    s
}

/// Run the binary: exit code and everything it printed.
async fn corsgate(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    })
    .await
    .unwrap()
}

fn migrate_args(data: &Path, cfg: &Path, public: &Path) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        "store".into(),
        "migrate".into(),
        "--data-dir".into(),
        p(data),
        "--config".into(),
        p(cfg),
        "--public-key".into(),
        p(public),
    ]
}

/// Every key under `prefix` with its value and revisions.
async fn dump(client: &etcd_client::Client, prefix: &str) -> Vec<(String, String, i64, i64)> {
    let resp = client
        .clone()
        .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_owned(),
                kv.value_str().unwrap().to_owned(),
                kv.create_revision(),
                kv.mod_revision(),
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_sqlite_store_moves_to_etcd_whole_and_audited() {
    let cluster = etcd::Cluster::start(1, &[]);
    let client = etcd::client(&cluster).await;
    let endpoint = cluster.endpoints()[0].clone();
    let dir = etcd::temp_dir("migrate");
    let (private, public) = (dir.join("audit.key"), dir.join("audit.pub"));
    let key_id = Signer::generate_files(&private, &public)
        .unwrap()
        .public()
        .id()
        .to_owned();
    let data = dir.join("data");
    let sqlite = source(&data, &private);
    let (_, sqlite_head) = sqlite.head().unwrap().unwrap();
    let cfg = write(
        &dir,
        "gw.yaml",
        &gateway(&endpoint, "/corsgate/", Some(&private)),
    );

    let (code, out) = corsgate(migrate_args(&data, &cfg, &public)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("3 versions, 6 audit entries, active version 3, in 1 transaction(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("head before: entry 6 {sqlite_head}")),
        "{out}"
    );
    assert!(out.contains("audit log intact: 7 entries"), "{out}");

    // The fleet's own verification, from the outside.
    let p = |p: &Path| p.display().to_string();
    let (code, out) = corsgate(vec![
        "audit".into(),
        "verify".into(),
        "--config".into(),
        p(&cfg),
        "--public-key".into(),
        p(&public),
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("audit log intact: 7 entries, hash chain verified"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "every entry from 2 on verified; head signed by key {key_id}"
        )),
        "{out}"
    );
    assert!(out.contains("versions: 3, each matching"), "{out}");

    // Verbatim: versions field by field, entries field by field, plus one.
    let store = corsgate_etcd::EtcdStore::new(client.clone(), "/corsgate/");
    assert_eq!(store.history().await.unwrap(), sqlite.history().unwrap());
    let sqlite_log = sqlite.audit().unwrap();
    let etcd_log = store.audit().await.unwrap();
    assert_eq!(etcd_log.len(), sqlite_log.len() + 1);
    assert_eq!(etcd_log[..sqlite_log.len()], sqlite_log[..]);
    let migrated = &etcd_log[sqlite_log.len()];
    assert_eq!(
        (
            migrated.seq,
            migrated.actor.as_str(),
            migrated.action.as_str()
        ),
        (7, "system", "store.migrated")
    );
    assert_eq!(migrated.prev_hash, sqlite_head);
    assert_eq!(migrated.key_id.as_deref(), Some(key_id.as_str()));
    assert!(migrated.sig.is_some());
    let detail: serde_json::Value = serde_json::from_str(&migrated.detail).unwrap();
    assert_eq!(
        detail["source"].as_str(),
        Some(sqlite.path().display().to_string().as_str())
    );
    assert_eq!(
        (&detail["versions"], &detail["entries"]),
        (&serde_json::json!(3), &serde_json::json!(6))
    );
    assert_eq!(detail["sourceHead"].as_str(), Some(sqlite_head.as_str()));
    assert_eq!(
        store.head().await.unwrap(),
        Some((7, migrated.hash.clone()))
    );

    // The active version, verified on read.
    assert_eq!(
        store.active_id().await.unwrap(),
        sqlite.active_id().unwrap()
    );
    assert_eq!(store.active_id().await.unwrap(), Some(3));
    assert_eq!(
        store.active().await.unwrap(),
        sqlite.active().unwrap(),
        "the active version reads back verified and equal"
    );

    // A second migration into the same prefix: refused, nothing changed.
    let before = dump(&client, "/corsgate/").await;
    let (code, out) = corsgate(migrate_args(&data, &cfg, &public)).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("exists already: the target prefix holds a corsgate store"),
        "{out}"
    );
    assert!(out.contains("nothing written"), "{out}");
    assert_eq!(dump(&client, "/corsgate/").await, before);

    // A tampered source (one entry's detail edited): refused, nothing
    // written under a fresh prefix.
    let tampered = dir.join("tampered");
    drop(source(&tampered, &private));
    let db = rusqlite::Connection::open(tampered.join("corsgate.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE audit SET detail = '{\"by\":\"someone else\"}' WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let other = write(
        &dir,
        "other.yaml",
        &gateway(&endpoint, "/other/", Some(&private)),
    );
    let (code, out) = corsgate(migrate_args(&tampered, &other, &public)).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("the source store does not verify: audit entry 3 was edited"),
        "{out}"
    );
    assert!(dump(&client, "/other/").await.is_empty());

    // A signed source into a store that would not sign: refused.
    let unsigned = write(&dir, "unsigned.yaml", &gateway(&endpoint, "/other/", None));
    let (code, out) = corsgate(migrate_args(&data, &unsigned, &public)).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("but the etcd store would not sign"), "{out}");
    assert!(dump(&client, "/other/").await.is_empty());

    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);
}
