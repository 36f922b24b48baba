//! Migrating a SQLite store into etcd when it does not fit in one
//! transaction: by count of keys, and by size against etcd's default
//! request limit (1.5 MiB).

mod common;

use common::{client, temp_dir, Cluster};
use corsgate_etcd::migrate::{Limits, MigrateError, Source};
use corsgate_etcd::EtcdStore;
use corsgate_store::Store;

/// A valid configuration padded with a comment of `pad` bytes.
fn config(origin: &str, pad: usize) -> String {
    format!(
        "# {}\npolicies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n",
        "x".repeat(pad)
    )
}

/// A SQLite store with `n` versions of `pad` bytes each.
fn sqlite(name: &str, n: usize, pad: usize) -> Store {
    let mut s = Store::open(&temp_dir(name)).unwrap();
    for i in 0..n {
        let base = (i > 0).then_some(i as i64);
        s.apply(
            base,
            "alice",
            &format!("v{}", i + 1),
            &config(&format!("https://{i}.example"), pad),
        )
        .unwrap();
    }
    s
}

/// The copy equals the source, plus one `store.migrated` entry, and
/// verifies.
async fn assert_copied(store: &EtcdStore, source: &Store) {
    assert_eq!(store.history().await.unwrap(), source.history().unwrap());
    let log = store.audit().await.unwrap();
    let src = source.audit().unwrap();
    assert_eq!(log[..src.len()], src[..]);
    assert_eq!(log.len(), src.len() + 1);
    assert_eq!(log[src.len()].action, "store.migrated");
    assert_eq!(
        store.active_id().await.unwrap(),
        source.active_id().unwrap()
    );
    let report = store.verify_with(None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_larger_than_one_transaction_is_copied_in_several_head_last() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let source = sqlite("many", 9, 0);
    let read = Source::read(&source, &[]).unwrap();
    let mut store = EtcdStore::new(c.clone(), "/many/");
    let limits = Limits {
        max_ops: 4,
        max_bytes: 1024 * 1024,
    };
    let done = store.migrate(&read, limits).await.unwrap();
    // 9 versions + 9 entries + head + active, 4 a transaction.
    assert_eq!(done.transactions, 5);
    assert_copied(&store, &source).await;
    // The head and the pointer were the last keys written.
    let mut kv = c.clone();
    let all = kv
        .get("/many/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let revision = |key: &str| {
        all.kvs()
            .iter()
            .find(|k| k.key_str().unwrap() == key)
            .map(|k| k.create_revision())
            .unwrap()
    };
    let mut revisions: Vec<i64> = all
        .kvs()
        .iter()
        .filter(|k| k.key_str().unwrap() != store.keys().entry(10))
        .map(|k| k.create_revision())
        .collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 5, "one revision per transaction");
    assert_eq!(Some(&revision("/many/audit-head")), revisions.last());
    assert_eq!(Some(&revision("/many/active")), revisions.last());

    // Into the same prefix again: refused before anything is written.
    let before = kv
        .get("/many/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let again = store.migrate(&read, limits).await;
    assert!(
        matches!(again, Err(MigrateError::TargetOccupied(_))),
        "{again:?}"
    );
    let after = kv
        .get("/many/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_too_large_for_one_request_are_split_by_size() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    // 4 versions of 400 KB: 1.6 MB, above etcd's default 1.5 MiB request.
    let source = sqlite("large", 4, 400 * 1024);
    let read = Source::read(&source, &[]).unwrap();

    // All of it in one transaction is what etcd refuses ("request is too
    // large"), before writing anything.
    let mut one = EtcdStore::new(c.clone(), "/one/");
    let unlimited = Limits {
        max_ops: 128,
        max_bytes: usize::MAX,
    };
    let refused = one.migrate(&read, unlimited).await;
    assert!(
        matches!(&refused, Err(e @ MigrateError::Etcd(_)) if e.nothing_written() && e.to_string().contains("request is too large")),
        "{refused:?}"
    );
    let mut kv = c.clone();
    let left = kv
        .get(
            "/one/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap()
        .count();
    assert_eq!(left, 0);

    let mut store = EtcdStore::new(c.clone(), "/large/");
    let done = store.migrate(&read, Limits::default()).await.unwrap();
    assert!(done.transactions >= 2, "{}", done.transactions);
    assert_copied(&store, &source).await;
}
