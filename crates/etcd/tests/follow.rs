//! Following the active pointer against a real etcd: each change once, a
//! full re-read after compaction, a resume without loss after etcd was
//! down.

mod common;

use common::{client, Cluster};
use corsgate_etcd::follow::{Change, Follower};
use corsgate_etcd::EtcdStore;
use std::time::{Duration, Instant};

fn config(n: usize) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"https://v{n}.example\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

fn active(c: Change) -> (i64, bool) {
    match c {
        Change::Active { version, resynced } => (version.id, resynced),
        Change::Empty => (0, true),
    }
}

async fn next(f: &mut Follower) -> (i64, bool) {
    let c = tokio::time::timeout(Duration::from_secs(20), f.next())
        .await
        .expect("a change within 20 s")
        .unwrap();
    active(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_seen_once_in_order() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let mut writer = EtcdStore::new(c.clone(), "/corsgate/");
    let mut f = Follower::new(EtcdStore::new(c.clone(), "/corsgate/"));
    assert_eq!(next(&mut f).await, (0, true), "empty store");
    writer.apply(None, "a", "1", &config(1)).await.unwrap();
    assert_eq!(next(&mut f).await, (1, false));
    // Several changes while the follower is not looking: it reaches the
    // newest, never going back to an older one on the way (changes that
    // arrive together are superseded by the last of them).
    for n in 2..=4 {
        writer
            .apply(Some(n - 1), "a", "n", &config(n as usize))
            .await
            .unwrap();
    }
    let mut last = 1;
    while last < 4 {
        let (id, resynced) = next(&mut f).await;
        assert!(id > last && !resynced, "{id} after {last}");
        last = id;
    }
    // Records that change no version do not wake it.
    writer
        .record("b", "token.used", None, &serde_json::json!({}))
        .await
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), f.next())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_means_a_full_re_read() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let mut writer = EtcdStore::new(c.clone(), "/corsgate/");
    let mut f = Follower::new(EtcdStore::new(c.clone(), "/corsgate/"));
    next(&mut f).await;
    writer.apply(None, "a", "1", &config(1)).await.unwrap();
    assert_eq!(next(&mut f).await, (1, false));
    let seen = f.revision();
    // The follower is away while three more versions are applied and the
    // history is compacted past what it saw.
    for n in 2..=4 {
        writer
            .apply(Some(n - 1), "a", "n", &config(n as usize))
            .await
            .unwrap();
    }
    let now = c
        .clone()
        .get("/corsgate/active", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.clone().compact(now, None).await.unwrap();
    let mut back = Follower::resume(EtcdStore::new(c.clone(), "/corsgate/"), seen);
    assert_eq!(
        next(&mut back).await,
        (4, true),
        "resynchronised to the newest version"
    );
    assert!(back.revision() >= now);
    writer.apply(Some(4), "a", "5", &config(5)).await.unwrap();
    assert_eq!(next(&mut back).await, (5, false), "and follows from there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resumes_without_loss_after_etcd_was_down() {
    let mut etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let mut writer = EtcdStore::new(c.clone(), "/corsgate/");
    writer.apply(None, "a", "1", &config(1)).await.unwrap();
    let opts = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_millis(500), Duration::from_secs(1));
    let fc = etcd_client::Client::connect(etcd.endpoints(), Some(opts))
        .await
        .unwrap();
    let mut f = Follower::new(EtcdStore::new(fc, "/corsgate/"));
    assert_eq!(next(&mut f).await, (1, true));
    let seen = f.revision();

    etcd.members[0].kill();
    // While etcd is down: errors (or nothing), never a change, and the
    // revision stays where it was.
    let down_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < down_until {
        match tokio::time::timeout(Duration::from_millis(500), f.next()).await {
            Err(_) | Ok(Err(_)) => {}
            Ok(Ok(c)) => panic!("a change while etcd is down: {c:?}"),
        }
        assert_eq!(f.revision(), seen);
    }
    etcd.members[0].restart();
    etcd.ready(None).await;
    let c2 = client(&etcd).await;
    let mut writer = EtcdStore::new(c2, "/corsgate/");
    writer.apply(Some(1), "a", "2", &config(2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the follower did not catch up");
        match tokio::time::timeout(Duration::from_secs(2), f.next()).await {
            Ok(Ok(c)) => {
                assert_eq!(active(c), (2, false), "resumed from its revision");
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
