//! The versioned store and the audit chain, on a real SQLite file.

use corsgate_store::{ApplyError, Store, Tamper, VerifyError};
use rusqlite::Connection;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(origin: &str, credentials: bool) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\n    allowCredentials: {credentials}\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

#[test]
fn versions_chain_and_survive_a_restart() {
    let d = dir("restart");
    {
        let mut s = Store::open(&d).unwrap();
        assert!(s.active().unwrap().is_none());
        let v1 = s
            .apply(None, "alice", "first", &config("https://a.example", false))
            .unwrap();
        assert_eq!((v1.id, v1.parent, v1.author.as_str()), (1, None, "alice"));
        assert_eq!(v1.content_hash.len(), 64);
        let v2 = s
            .apply(Some(1), "bob", "second", &config("https://b.example", true))
            .unwrap();
        assert_eq!((v2.id, v2.parent), (2, Some(1)));
        assert!(v2.lints.contains("L-EMPTY-LIST"), "{}", v2.lints);
    }
    // Restart: same active version and history.
    let s = Store::open(&d).unwrap();
    assert_eq!(s.active().unwrap().unwrap().id, 2);
    let h = s.history().unwrap();
    assert_eq!(
        h.iter().map(|v| v.comment.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(s.verify_audit().unwrap(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_stale_base_is_refused_never_a_lost_update() {
    let d = dir("stale");
    let mut s = Store::open(&d).unwrap();
    s.apply(None, "alice", "base", &config("https://a.example", false))
        .unwrap();
    // Two editors start from version 1; the second to apply loses.
    let mut other = Store::open(&d).unwrap();
    s.apply(
        Some(1),
        "alice",
        "mine",
        &config("https://b.example", false),
    )
    .unwrap();
    match other.apply(
        Some(1),
        "bob",
        "theirs",
        &config("https://c.example", false),
    ) {
        Err(ApplyError::Stale {
            based_on: Some(1),
            active: Some(2),
        }) => {}
        other => panic!("expected a stale-base refusal, got {other:?}"),
    }
    assert_eq!(s.active().unwrap().unwrap().comment, "mine");
    assert_eq!(s.history().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn concurrent_applies_from_one_base_exactly_one_wins() {
    let d = dir("race");
    Store::open(&d)
        .unwrap()
        .apply(None, "root", "base", &config("https://a.example", false))
        .unwrap();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut s = Store::open(&d).unwrap();
                match s.apply(
                    Some(1),
                    &format!("editor{i}"),
                    "race",
                    &config(&format!("https://e{i}.example"), false),
                ) {
                    Ok(_) => "won",
                    Err(ApplyError::Stale { .. }) => "stale",
                    Err(e) => panic!("neither a win nor a stale base: {e}"),
                }
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "won").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "stale").count(),
        7,
        "{outcomes:?}"
    );
    let s = Store::open(&d).unwrap();
    assert_eq!(s.history().unwrap().len(), 2);
    assert_eq!(s.verify_audit().unwrap(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_rejected_change_is_audited_but_never_active() {
    let d = dir("rejected");
    let mut s = Store::open(&d).unwrap();
    s.apply(None, "alice", "ok", &config("https://a.example", false))
        .unwrap();
    let err = s
        .apply(Some(1), "mallory", "open it all", &config("*", true))
        .unwrap_err();
    let ApplyError::Rejected(errors) = err else {
        panic!("{err:?}")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unsafeAllowAnyOriginWithCredentials")),
        "{errors:?}"
    );
    assert_eq!(s.active().unwrap().unwrap().id, 1);
    assert_eq!(s.history().unwrap().len(), 1);
    let audit = s.audit().unwrap();
    assert_eq!(audit.last().unwrap().action, "config.rejected");
    assert_eq!(audit.last().unwrap().actor, "mallory");
    assert_eq!(s.verify_audit().unwrap(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rollback_is_a_new_version_equal_to_the_old_one() {
    let d = dir("rollback");
    let mut s = Store::open(&d).unwrap();
    let v1 = s
        .apply(None, "alice", "one", &config("https://a.example", false))
        .unwrap();
    s.apply(Some(1), "alice", "two", &config("https://b.example", false))
        .unwrap();
    let v3 = s.rollback(Some(2), 1, "carol", "").unwrap();
    assert_eq!((v3.id, v3.parent), (3, Some(2)));
    assert_eq!(v3.content, v1.content);
    assert_eq!(v3.content_hash, v1.content_hash);
    assert_eq!(v3.comment, "rollback to version 1");
    assert_eq!(s.history().unwrap().len(), 3);
    assert_eq!(
        s.audit().unwrap().last().unwrap().action,
        "config.rolled_back"
    );
    assert!(matches!(
        s.rollback(Some(3), 99, "carol", ""),
        Err(ApplyError::NoSuchVersion(99))
    ));
    let _ = std::fs::remove_dir_all(&d);
}

/// A store with five audit entries; returns its directory.
fn five_entries(name: &str) -> PathBuf {
    let d = dir(name);
    let mut s = Store::open(&d).unwrap();
    s.apply(None, "alice", "one", &config("https://a.example", false))
        .unwrap();
    s.apply(Some(1), "bob", "two", &config("https://b.example", false))
        .unwrap();
    s.record(
        "bob",
        "token.used",
        None,
        &serde_json::json!({ "route": "/versions" }),
    )
    .unwrap();
    s.apply(
        Some(2),
        "carol",
        "three",
        &config("https://c.example", false),
    )
    .unwrap();
    s.record(
        "file",
        "config.reloaded_from_file",
        Some(3),
        &serde_json::json!({}),
    )
    .unwrap();
    assert_eq!(s.verify_audit().unwrap(), 5);
    d
}

fn tamper(d: &PathBuf, sql: &str) -> Result<usize, VerifyError> {
    let c = Connection::open(d.join("corsgate.db")).unwrap();
    c.execute_batch(sql).unwrap();
    drop(c);
    let r = Store::open(d).unwrap().verify_audit();
    let _ = std::fs::remove_dir_all(d);
    r
}

#[test]
fn audit_verify_names_the_first_edited_deleted_inserted_or_reordered_entry() {
    type Case<'a> = (&'a str, &'a str, Tamper);
    let cases: &[Case] = &[
        ("edit", "UPDATE audit SET actor = 'eve' WHERE seq = 2;", Tamper::Edited(2)),
        ("edit-detail", "UPDATE audit SET detail = '{}' WHERE seq = 4;", Tamper::Edited(4)),
        ("delete-middle", "DELETE FROM audit WHERE seq = 3;", Tamper::Deleted(3)),
        ("delete-last", "DELETE FROM audit WHERE seq = 5;", Tamper::Deleted(5)),
        (
            "reorder",
            "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 100;",
            Tamper::Reordered(2, 1),
        ),
        (
            "insert",
            "INSERT INTO audit (seq, at, actor, action, version, detail, prev_hash, hash) SELECT 6, at, 'eve', action, version, detail, hash, hash FROM audit WHERE seq = 5;",
            Tamper::Inserted(6),
        ),
    ];
    for (name, sql, want) in cases {
        let d = five_entries(name);
        match tamper(&d, sql) {
            Err(VerifyError::Tamper(t)) => assert_eq!(&t, want, "{name}"),
            other => panic!("{name}: expected {want:?}, got {other:?}"),
        }
    }
}
