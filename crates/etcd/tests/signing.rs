//! Signing on etcd records each new key as SQLite does: an
//! `audit.signing_key` entry when the head is not signed by the key yet,
//! none when it is, and one for several instances starting together.

mod common;

use common::{client, temp_dir, Cluster};
use corsgate_etcd::EtcdStore;
use corsgate_store::{Signer, Signing};

fn config(origin: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

fn detail(e: &corsgate_store::Entry) -> serde_json::Value {
    serde_json::from_str(&e.detail).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_is_recorded_once() {
    let etcd = Cluster::start(1, &[]);
    let c = client(&etcd).await;
    // Written before signing began: two unsigned entries.
    let mut unsigned = EtcdStore::new(c.clone(), "/s/");
    unsigned
        .apply(None, "alice", "one", &config("https://a.example"))
        .await
        .unwrap();
    unsigned
        .record("viewer", "token.used", None, &serde_json::json!({}))
        .await
        .unwrap();

    let dir = temp_dir("signing");
    let key = |name: &str| {
        let private = dir.join(format!("{name}.key"));
        Signer::generate_files(&private, &dir.join(format!("{name}.pub"))).unwrap();
        move || Signer::read(&private).unwrap()
    };
    let a = key("a");
    let a_public = a().public().clone();
    let mut s = EtcdStore::new(c.clone(), "/s/");
    let entry = s.start_signing(a(), Vec::new()).await.unwrap().unwrap();
    assert_eq!((entry.seq, entry.action.as_str()), (3, "audit.signing_key"));
    assert_eq!(entry.key_id.as_deref(), Some(a_public.id()));
    assert_eq!(
        detail(&entry),
        serde_json::json!({ "keyId": a_public.id(), "previousKeyId": null, "entriesBefore": 2 })
    );
    let report = s
        .verify_with(Some(std::slice::from_ref(&a_public)), None)
        .await
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(matches!(
        report.signing,
        Signing::Head {
            unsigned_before: 2,
            ..
        }
    ));

    // The same key again (a restart): nothing appended.
    let mut again = EtcdStore::new(c.clone(), "/s/");
    assert_eq!(again.start_signing(a(), Vec::new()).await.unwrap(), None);
    assert_eq!(again.audit().await.unwrap().len(), 3);

    // A rotation, started by two instances at once: one entry, naming the
    // key before it.
    let b = key("b");
    let b_public = b().public().clone();
    let mut one = EtcdStore::new(c.clone(), "/s/");
    let mut two = EtcdStore::new(c.clone(), "/s/");
    let (x, y) = tokio::join!(
        one.start_signing(b(), vec![a_public.clone()]),
        two.start_signing(b(), vec![a_public.clone()])
    );
    let written: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].seq, 4);
    assert_eq!(
        detail(&written[0]),
        serde_json::json!({ "keyId": b_public.id(), "previousKeyId": a_public.id(), "entriesBefore": 3 })
    );
    let log = one.audit().await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        [
            "config.applied",
            "token.used",
            "audit.signing_key",
            "audit.signing_key"
        ]
    );
    let report = one
        .verify_with(Some(&[a_public, b_public]), None)
        .await
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let _ = std::fs::remove_dir_all(&dir);
}
