//! The etcd store against real etcd processes: applies, rollbacks,
//! verified reads, compare-and-swap between instances, and tampering done
//! the way `etcdctl` would (plain puts and deletes, no corsgate code).

mod common;

use common::{client, Cluster};
use corsgate_etcd::{ApplyError, EtcdStore, ReadError};
use corsgate_store::audit::chain_hash;
use corsgate_store::{Signer, Tamper};
use etcd_client::Client;

fn config(origin: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

/// A signed store under `prefix`: entry 1 version 1, 2 a token use, 3
/// version 2, 4 a rollback to version 1 (version 3).
async fn populated(c: &Client, prefix: &str) -> EtcdStore {
    let (signer, _) = Signer::generate().unwrap();
    let mut s = EtcdStore::new(c.clone(), prefix);
    s.sign_with(signer, Vec::new());
    let v1 = s
        .apply(None, "alice", "one", &config("https://a.example"))
        .await
        .unwrap();
    assert_eq!(v1.id, 1);
    s.record("viewer", "token.used", None, &serde_json::json!({}))
        .await
        .unwrap();
    let v2 = s
        .apply(Some(1), "alice", "two", &config("https://b.example"))
        .await
        .unwrap();
    assert_eq!((v2.id, v2.parent), (2, Some(1)));
    let v3 = s.rollback(Some(2), 1, "bob", "").await.unwrap();
    assert_eq!(
        (v3.id, v3.parent, v3.content.clone()),
        (3, Some(2), v1.content)
    );
    let report = s.verify_with(None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.entries, report.versions), (4, 3));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rollback_and_verified_reads() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let mut s = populated(&c, "/t/").await;
    assert_eq!(s.active_id().await.unwrap(), Some(3));
    let active = s.active().await.unwrap().unwrap();
    assert_eq!(active.comment, "rollback to version 1");
    assert_eq!(s.history().await.unwrap().len(), 3);
    let actions: Vec<String> = s
        .audit()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "config.applied",
            "token.used",
            "config.applied",
            "config.rolled_back"
        ]
    );

    // A stale base, an invalid candidate and a missing rollback target
    // change nothing but the audit log (the refusal is recorded).
    let stale = s
        .apply(Some(1), "carol", "late", &config("https://c.example"))
        .await;
    assert!(
        matches!(
            stale,
            Err(ApplyError::Stale {
                based_on: Some(1),
                active: Some(3)
            })
        ),
        "{stale:?}"
    );
    let bad = s.apply(Some(3), "carol", "bad", "vservices: [ {").await;
    assert!(matches!(bad, Err(ApplyError::Rejected(_))), "{bad:?}");
    assert!(matches!(
        s.rollback(Some(3), 9, "carol", "").await,
        Err(ApplyError::NoSuchVersion(9))
    ));
    assert_eq!(s.active_id().await.unwrap(), Some(3));
    let last = s.audit().await.unwrap().pop().unwrap();
    assert_eq!((last.seq, last.action.as_str()), (5, "config.rejected"));

    // Edit version 2's content as etcdctl would: reading it fails, named.
    let mut raw = c.clone();
    let key = s.keys().version(2);
    let v = raw.get(key.clone(), None).await.unwrap().kvs()[0]
        .value_str()
        .unwrap()
        .to_owned();
    let edited = v.replace("b.example", "evil.example");
    assert_ne!(v, edited);
    raw.put(key, edited, None).await.unwrap();
    match s.get(2).await {
        Err(ReadError::Tamper(Tamper::VersionEdited(2))) => {}
        other => panic!("{other:?}"),
    }
    assert!(s.get(1).await.unwrap().is_some(), "the others still read");
    // And a rollback to it is refused.
    assert!(matches!(
        s.rollback(Some(3), 2, "carol", "").await,
        Err(ApplyError::Tampered(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_applying_from_the_same_base_exactly_one_wins() {
    let etcd = Cluster::start(3, &[]);
    etcd.ready(None).await;
    let endpoints = etcd.endpoints();
    let mut stores = Vec::new();
    for e in &endpoints[..2] {
        // Each instance talks to its own member.
        let c = Client::connect([e], None).await.unwrap();
        stores.push(EtcdStore::new(c, "/fleet/"));
    }
    let base = stores[0]
        .apply(None, "a", "base", &config("https://base.example"))
        .await
        .unwrap();
    for round in 0..10 {
        let based_on = Some(base.id + round);
        let (x, y) = stores.split_at_mut(1);
        let (ca, cb) = (
            config(&format!("https://a{round}.example")),
            config(&format!("https://b{round}.example")),
        );
        let (ra, rb) = tokio::join!(
            x[0].apply(based_on, "a", "from a", &ca),
            y[0].apply(based_on, "b", "from b", &cb),
        );
        let wins = [ra.is_ok(), rb.is_ok()];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: {ra:?} {rb:?}"
        );
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(loser, Err(ApplyError::Stale { .. })), "{loser:?}");
    }
    let report = stores[1].verify_with(None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.entries, report.versions), (11, 11));
    let history = stores[0].history().await.unwrap();
    for (i, v) in history.iter().enumerate() {
        assert_eq!(v.id, i as i64 + 1);
        assert_eq!(v.parent, (i > 0).then_some(i as i64));
    }
}

/// What `audit verify` names after each edit an operator with `etcdctl`
/// could make, on a fresh populated store each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_etcdctl_is_named() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    type Edit = fn(&str, Vec<String>) -> Vec<(String, Option<String>)>;
    // (name, edit: key → new value or deletion, given the four entries'
    // JSON values; what verification names first)
    type Named = fn(&Tamper) -> bool;
    let cases: Vec<(&str, Edit, Named)> = vec![
        (
            "edited",
            |p, e| {
                vec![(
                    format!("{p}audit/{:020}", 2),
                    Some(e[1].replace("viewer", "nobody")),
                )]
            },
            |t| *t == Tamper::Edited(2),
        ),
        (
            "deleted",
            |p, _| vec![(format!("{p}audit/{:020}", 2), None)],
            |t| *t == Tamper::Deleted(2),
        ),
        (
            "reordered",
            |p, e| {
                vec![
                    (format!("{p}audit/{:020}", 2), Some(e[2].clone())),
                    (format!("{p}audit/{:020}", 3), Some(e[1].clone())),
                ]
            },
            |t| matches!(t, Tamper::Reordered(2, _)),
        ),
        (
            "inserted",
            |p, e| {
                let last: serde_json::Value = serde_json::from_str(&e[3]).unwrap();
                let prev = last["hash"].as_str().unwrap();
                let hash = chain_hash(
                    prev,
                    "2026-01-01T00:00:00Z",
                    "mallory",
                    "token.used",
                    None,
                    "{}",
                );
                let rec = serde_json::json!({"at": "2026-01-01T00:00:00Z", "actor": "mallory", "action": "token.used",
                "version": null, "detail": "{}", "prevHash": prev, "hash": hash, "keyId": null, "sig": null});
                vec![(format!("{p}audit/{:020}", 5), Some(rec.to_string()))]
            },
            |t| *t == Tamper::Inserted(5),
        ),
        (
            "truncated",
            |p, _| vec![(format!("{p}audit/{:020}", 4), None)],
            |t| *t == Tamper::Deleted(4),
        ),
        (
            "version deleted",
            |p, _| vec![(format!("{p}versions/{:020}", 2), None)],
            |t| matches!(t, Tamper::VersionDeleted { version: 2, .. }),
        ),
        (
            "not json",
            |p, _| vec![(format!("{p}audit/{:020}", 3), Some("{".into()))],
            |t| matches!(t, Tamper::Malformed { row: 3, .. }),
        ),
    ];
    for (i, (name, edit, named)) in cases.into_iter().enumerate() {
        let prefix = format!("/tamper{i}/");
        let s = populated(&c, &prefix).await;
        let mut raw = c.clone();
        let mut entries = Vec::new();
        for seq in 1..=4 {
            let r = raw.get(s.keys().entry(seq), None).await.unwrap();
            entries.push(r.kvs()[0].value_str().unwrap().to_owned());
        }
        for (key, value) in edit(&prefix, entries) {
            match value {
                Some(v) => raw.put(key, v, None).await.map(|_| ()).unwrap(),
                None => raw.delete(key, None).await.map(|_| ()).unwrap(),
            }
        }
        let report = s.verify_with(None, None).await.unwrap();
        let first = report
            .problems
            .first()
            .unwrap_or_else(|| panic!("{name}: nothing found"));
        assert!(named(first), "{name}: {first}");
    }

    // Truncation with the head rewritten to match: only the head recorded
    // outside the store shows it.
    let s = populated(&c, "/anchored/").await;
    let anchor = s.head().await.unwrap().unwrap().1;
    let mut raw = c.clone();
    let e3: serde_json::Value = serde_json::from_str(
        raw.get(s.keys().entry(3), None).await.unwrap().kvs()[0]
            .value_str()
            .unwrap(),
    )
    .unwrap();
    raw.delete(s.keys().entry(4), None).await.unwrap();
    let head = serde_json::json!({"count": 3, "hash": e3["hash"]});
    raw.put(s.keys().head(), head.to_string(), None)
        .await
        .unwrap();
    let report = s.verify_with(None, Some(&anchor)).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Tamper::HeadNotFound(_))),
        "{:?}",
        report.problems
    );
}

/// A handle keeps the entries it verified and fetches only newer ones;
/// what it keeps never makes it serve an edited version, and a whole
/// verification still reads (and finds) everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_handle_that_read_before_still_refuses_an_edited_version_and_verify_reads_everything() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    let mut s = populated(&c, "/cached/").await;
    assert!(
        s.get(2).await.unwrap().is_some(),
        "read once: the chain is now known"
    );
    let mut raw = c.clone();

    // Newer entries are still fetched: a version applied after the first
    // read (the write path does not touch what reads keep) reads.
    let v4 = s
        .apply(Some(3), "carol", "four", &config("https://d.example"))
        .await
        .unwrap();
    let read = s
        .get(v4.id)
        .await
        .unwrap()
        .expect("version 4 seen by the first handle");
    assert_eq!(read.content_hash, v4.content_hash);

    // An edited version is refused by the handle that knew the chain.
    let key = s.keys().version(2);
    let value = raw.get(key.clone(), None).await.unwrap().kvs()[0]
        .value_str()
        .unwrap()
        .replace("b.example", "evil.example");
    raw.put(key, value, None).await.unwrap();
    let err = s
        .get(2)
        .await
        .expect_err("an edited version is never returned");
    assert!(matches!(err, ReadError::Tamper(_)), "{err}");

    // An entry it had verified, edited afterwards: a version read does not
    // fetch it again, a whole verification does and names it.
    let key = s.keys().entry(2);
    let value = raw.get(key.clone(), None).await.unwrap().kvs()[0]
        .value_str()
        .unwrap()
        .replace("viewer", "nobody");
    raw.put(key, value, None).await.unwrap();
    let report = s.verify_with(None, None).await.unwrap();
    assert_eq!(
        report.problems.first(),
        Some(&Tamper::Edited(2)),
        "{:?}",
        report.problems
    );
}
