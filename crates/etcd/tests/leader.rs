//! The etcd leader killed during a stream of applies: no acknowledged
//! apply is lost, no audit entry is lost or duplicated, the chain verifies.

mod common;

use common::Cluster;
use corsgate_etcd::EtcdStore;
use std::time::{Duration, Instant};

fn config(n: usize) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"https://v{n}.example\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

/// The index of the member that is the leader now.
async fn leader(etcd: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, url) in etcd.endpoints().iter().enumerate() {
            if etcd.members[i].child.is_none() {
                continue;
            }
            let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
            if let Ok(mut c) = etcd_client::Client::connect([url], Some(opts)).await {
                if let Ok(s) = c.status().await {
                    let me = s.header().map(|h| h.member_id());
                    if s.leader() != 0 && me == Some(s.leader()) {
                        return i;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_apply_and_no_entry() {
    let mut etcd = Cluster::start(3, &[]);
    etcd.ready(None).await;
    let opts = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2));
    let client = etcd_client::Client::connect(etcd.endpoints(), Some(opts))
        .await
        .unwrap();
    let mut store = EtcdStore::new(client, "/corsgate/");
    let mut acked: Vec<(i64, String)> = Vec::new();
    let mut failed = 0;
    let mut killed = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while acked.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "30 applies not acknowledged in time ({failed} failed)"
        );
        if acked.len() == 10 && killed.is_none() {
            let l = leader(&etcd).await;
            etcd.members[l].kill();
            killed = Some(l);
        }
        // The base is what is active now: an apply whose answer was lost
        // may have been committed.
        let Ok(base) = store.active_id().await else {
            failed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        n += 1;
        let content = config(n);
        match store
            .apply(base, "t", &format!("apply {n}"), &content)
            .await
        {
            Ok(v) => acked.push((v.id, content)),
            Err(_) => failed += 1,
        }
    }
    assert!(killed.is_some());
    // A new leader was elected among the two left.
    let l = leader(&etcd).await;
    assert_ne!(Some(l), killed);

    for (id, content) in &acked {
        let v = store
            .get(*id)
            .await
            .unwrap()
            .expect("an acknowledged version");
        assert_eq!(&v.content, content, "version {id}");
    }
    let report = store.verify_with(None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let entries = store.audit().await.unwrap();
    let versions = store.history().await.unwrap();
    // One entry per version, in order, none twice, none missing.
    let created: Vec<i64> = entries.iter().filter_map(|e| e.version).collect();
    let ids: Vec<i64> = versions.iter().map(|v| v.id).collect();
    assert_eq!(created, ids);
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    assert!(ids.len() >= acked.len());
    eprintln!(
        "{} acknowledged, {} attempts failed while the leader changed, {} versions",
        acked.len(),
        failed,
        ids.len()
    );
}
