//! Tampering with a real `corsgate.db` the way an attacker with write
//! access to the data directory would (plain SQL, no corsgate code), and
//! what verification names. The signing key lives outside the data
//! directory, as it must in production.

use corsgate_store::audit::chain_hash;
use corsgate_store::{PublicKey, Signer, Store, Tamper};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-tamper-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(origin: &str) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

/// A signed store: entry 1 `audit.signing_key`, 2 version 1, 3 a token
/// use, 4 version 2. Returns the data directory and the public key.
fn signed_store(name: &str) -> (PathBuf, PublicKey) {
    let root = dir(name);
    let data = root.join("data");
    let signer = Signer::generate_files(&root.join("audit.key"), &root.join("audit.pub")).unwrap();
    let public = signer.public().clone();
    let mut s = Store::open(&data).unwrap();
    s.sign_with(signer, Vec::new()).unwrap();
    s.apply(None, "alice", "one", &config("https://a.example"))
        .unwrap();
    s.record("viewer", "token.used", None, &serde_json::json!({}))
        .unwrap();
    s.apply(Some(1), "alice", "two", &config("https://b.example"))
        .unwrap();
    assert_eq!(s.verify_audit().unwrap(), 4);
    (data, public)
}

/// The store as the gateway opens it: trusting the public key (reads need
/// no private key; signing is what `sign_with` adds).
fn trusting(data: &Path, public: &PublicKey) -> Store {
    let root = data.parent().unwrap();
    let signer = Signer::read(&root.join("audit.key")).unwrap();
    assert_eq!(signer.public(), public);
    let mut s = Store::open(data).unwrap();
    s.sign_with(signer, Vec::new()).unwrap();
    s
}

/// A plain SQLite connection, as `sqlite3` would open it (no foreign-key
/// enforcement: an attacker turns it off anyway).
fn sql(data: &Path) -> Connection {
    let c = Connection::open(data.join("corsgate.db")).unwrap();
    c.pragma_update(None, "foreign_keys", "OFF").unwrap();
    c
}

/// Rewrite entry `from` and every later one so the whole chain, and the
/// head, are consistent again: what someone without the key can do.
fn recompute_from(c: &Connection, from: i64) {
    let mut prev: String = if from == 1 {
        corsgate_store::audit::GENESIS.to_owned()
    } else {
        c.query_row("SELECT hash FROM audit WHERE seq = ?1", [from - 1], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let rows: Vec<(i64, String, String, String, Option<i64>, String)> = c
        .prepare("SELECT seq, at, actor, action, version, detail FROM audit WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([from], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (seq, at, actor, action, version, detail) in rows {
        let hash = chain_hash(&prev, &at, &actor, &action, version, &detail);
        c.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, seq],
        )
        .unwrap();
        c.execute(
            "UPDATE audit_head SET count = ?1, hash = ?2",
            rusqlite::params![seq, hash],
        )
        .unwrap();
        prev = hash;
    }
}

/// Version 2 opened to `https://evil.test`, its content hash and its audit
/// entry's recorded hash made to match, every later hash recomputed.
fn forge_version_2(c: &Connection) {
    let content = config("https://evil.test");
    let hash = hex_sha256(&content);
    c.execute(
        "UPDATE versions SET content = ?1, content_hash = ?2 WHERE id = 2",
        rusqlite::params![content, hash],
    )
    .unwrap();
    let detail: String = c
        .query_row("SELECT detail FROM audit WHERE seq = 4", [], |r| r.get(0))
        .unwrap();
    let mut d: serde_json::Value = serde_json::from_str(&detail).unwrap();
    d["content_hash"] = hash.into();
    c.execute(
        "UPDATE audit SET detail = ?1 WHERE seq = 4",
        [d.to_string()],
    )
    .unwrap();
    recompute_from(c, 4);
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

struct Case {
    name: &'static str,
    tamper: fn(&Connection),
    /// The first problem `verify` names.
    named: Tamper,
    /// The newest version that still verifies (what start-up serves).
    servable: Option<i64>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "content edit",
            tamper: |c| {
                c.execute_batch(
                    "UPDATE versions SET content = replace(content, 'https://b.example', 'https://evil.test') WHERE id = 2",
                )
                .unwrap()
            },
            named: Tamper::VersionEdited(2),
            servable: Some(1),
        },
        Case {
            name: "full truncation",
            tamper: |c| {
                c.execute_batch("DELETE FROM audit; DELETE FROM audit_head")
                    .unwrap()
            },
            named: Tamper::VersionWithoutEntry(1),
            servable: None,
        },
        Case {
            name: "tail truncation, head adjusted",
            tamper: |c| {
                c.execute_batch(
                    "DELETE FROM audit WHERE seq = 4;
                     UPDATE audit_head SET count = 3, hash = (SELECT hash FROM audit WHERE seq = 3)",
                )
                .unwrap()
            },
            named: Tamper::VersionWithoutEntry(2),
            servable: Some(1),
        },
        Case {
            name: "edit with recomputed hashes",
            tamper: forge_version_2,
            named: Tamper::Forged(4),
            servable: Some(1),
        },
        Case {
            name: "type change",
            tamper: |c| {
                c.execute_batch("UPDATE audit SET version = 'abc' WHERE seq = 3")
                    .unwrap()
            },
            named: Tamper::Malformed {
                table: "audit",
                row: 3,
                column: "version",
                found: "text",
                want: "an integer or null",
            },
            servable: Some(1),
        },
        Case {
            name: "version type change",
            tamper: |c| {
                c.execute_batch("UPDATE versions SET parent = 'x' WHERE id = 2")
                    .unwrap()
            },
            named: Tamper::Malformed {
                table: "versions",
                row: 2,
                column: "parent",
                found: "text",
                want: "an integer or null",
            },
            servable: Some(1),
        },
        Case {
            name: "a version without its entry",
            tamper: |c| {
                let content = config("https://evil.test");
                c.execute(
                    "INSERT INTO versions (parent, author, created_at, comment, content, content_hash, lints, policy_tests)
                     VALUES (2, 'alice', '2026-01-01T00:00:00Z', 'x', ?1, ?2, '[]', '{}')",
                    rusqlite::params![content, hex_sha256(&content)],
                )
                .unwrap();
                c.execute_batch("UPDATE active SET version = 3").unwrap();
            },
            named: Tamper::VersionWithoutEntry(3),
            servable: Some(2),
        },
        Case {
            name: "signature stripped",
            tamper: |c| {
                c.execute_batch("UPDATE audit SET sig = NULL, key_id = NULL WHERE seq = 4")
                    .unwrap()
            },
            named: Tamper::Unsigned(4),
            servable: Some(1),
        },
        Case {
            name: "entry edited, hash kept",
            tamper: |c| {
                c.execute_batch("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
                    .unwrap()
            },
            named: Tamper::Edited(2),
            servable: None,
        },
    ]
}

#[test]
fn each_tampering_is_named_and_the_tampered_version_is_never_served() {
    for case in cases() {
        let (data, public) = signed_store(&case.name.replace([' ', ','], "-"));
        (case.tamper)(&sql(&data));
        let s = Store::open(&data).unwrap();
        let report = s.verify_with(std::slice::from_ref(&public), None).unwrap();
        assert_eq!(
            report.problems.first(),
            Some(&case.named),
            "{}: {:?}",
            case.name,
            report.problems
        );
        // The message names the entry or version, never "cannot read".
        let message = case.named.to_string();
        assert!(!message.contains("cannot read"), "{message}");
        // What start-up serves: the newest version that verifies, never
        // the tampered one; and reading the tampered one fails.
        let (newest, _) = s.newest_verified().unwrap();
        let trusting = trusting(&data, &public);
        let (newest_signed, _) = trusting.newest_verified().unwrap();
        assert_eq!(newest_signed.map(|v| v.id), case.servable, "{}", case.name);
        let active = trusting.active_id().unwrap();
        if active != case.servable {
            assert!(trusting.active().is_err(), "{}: active read", case.name);
        }
        // Without the public key only the signature cases go unseen.
        if !matches!(case.named, Tamper::Forged(_) | Tamper::Unsigned(_)) {
            assert_ne!(newest.map(|v| v.id), active, "{}", case.name);
        }
        let _ = std::fs::remove_dir_all(data.parent().unwrap());
    }
}

#[test]
fn cutting_entries_off_the_end_is_caught_by_the_head_kept_outside() {
    let (data, public) = signed_store("cut-tail");
    let known = {
        let mut s = trusting(&data, &public);
        s.record("viewer", "token.used", None, &serde_json::json!({}))
            .unwrap();
        s.head().unwrap().unwrap().1
    };
    // The last entry creates no version: delete it and move the head back
    // to the previous, validly signed one.
    sql(&data)
        .execute_batch(
            "DELETE FROM audit WHERE seq = 5;
             UPDATE audit_head SET count = 4, hash = (SELECT hash FROM audit WHERE seq = 4)",
        )
        .unwrap();
    let s = Store::open(&data).unwrap();
    let keys = std::slice::from_ref(&public);
    // The store alone cannot tell: every remaining entry is genuine.
    assert!(s.verify_with(keys, None).unwrap().problems.is_empty());
    // The head recorded outside proves the cut.
    let report = s.verify_with(keys, Some(&known)).unwrap();
    assert_eq!(report.problems, [Tamper::HeadNotFound(known.clone())]);
    // An older known head is still found: nothing before it was cut.
    let earlier: String = sql(&data)
        .query_row("SELECT hash FROM audit WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    let report = s.verify_with(keys, Some(&earlier)).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.expected_at, Some(3));
    let _ = std::fs::remove_dir_all(data.parent().unwrap());
}

#[test]
fn a_recomputed_chain_passes_without_the_key_and_fails_with_the_public_key() {
    let (data, public) = signed_store("forged");
    // Rewrite version 1's entry and every later hash.
    let c = sql(&data);
    c.execute_batch("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        .unwrap();
    recompute_from(&c, 2);
    drop(c);
    let s = Store::open(&data).unwrap();
    // The hashes alone are consistent again...
    assert!(s.verify_with(&[], None).unwrap().problems.is_empty());
    // ...but the signatures were made over the old hashes, with a key the
    // store does not hold.
    let report = s.verify_with(std::slice::from_ref(&public), None).unwrap();
    assert_eq!(report.problems.first(), Some(&Tamper::Forged(2)));
    assert_eq!(report.trusted, 1);
    // Another key pair cannot stand in for the right one.
    let (other, _) = Signer::generate().unwrap();
    let report = s
        .verify_with(std::slice::from_ref(other.public()), None)
        .unwrap();
    assert!(matches!(
        report.problems.first(),
        Some(Tamper::UnknownKey(1, _))
    ));
    let _ = std::fs::remove_dir_all(data.parent().unwrap());
}

#[test]
fn an_unsigned_store_is_migrated_by_one_signed_entry_keeping_its_history() {
    let root = dir("migrate");
    let data = root.join("data");
    {
        let mut s = Store::open(&data).unwrap();
        s.apply(None, "alice", "old", &config("https://a.example"))
            .unwrap();
        s.apply(Some(1), "alice", "older", &config("https://b.example"))
            .unwrap();
    }
    // Written before signing: as an old release would have left it.
    let before: Vec<String> = sql(&data)
        .prepare("SELECT hash FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let signer = Signer::generate_files(&root.join("k"), &root.join("k.pub")).unwrap();
    let public = signer.public().clone();
    let mut s = Store::open(&data).unwrap();
    // With a public key but before migration the head is not signed.
    let report = s.verify_with(std::slice::from_ref(&public), None).unwrap();
    assert!(matches!(
        report.problems.first(),
        Some(Tamper::HeadNotSigned(2, _))
    ));
    let e = s
        .sign_with(signer, Vec::new())
        .unwrap()
        .expect("a signing entry");
    assert_eq!((e.seq, e.action.as_str()), (3, "audit.signing_key"));
    // Opening again with the same key adds nothing.
    let signer = Signer::read(&root.join("k")).unwrap();
    let mut s2 = Store::open(&data).unwrap();
    assert!(s2.sign_with(signer, Vec::new()).unwrap().is_none());
    let report = s.verify_with(std::slice::from_ref(&public), None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.trusted, 3);
    assert!(matches!(
        report.signing,
        corsgate_store::Signing::Head {
            unsigned_before: 2,
            ..
        }
    ));
    // History intact: the old hashes are unchanged, the versions readable.
    let after: Vec<String> = sql(&data)
        .prepare("SELECT hash FROM audit WHERE seq <= 2 ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(s.get(1).unwrap().unwrap().comment, "old");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_rotated_key_covers_the_history_signed_by_the_old_one() {
    let (data, old_public) = signed_store("rotate");
    let root = data.parent().unwrap().to_path_buf();
    let new = Signer::generate_files(&root.join("new.key"), &root.join("new.pub")).unwrap();
    let new_public = new.public().clone();
    let mut s = Store::open(&data).unwrap();
    let e = s.sign_with(new, vec![old_public.clone()]).unwrap().unwrap();
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(detail["previousKeyId"], old_public.id());
    // Both public keys verify the whole chain.
    let both = [old_public.clone(), new_public.clone()];
    let report = s.verify_with(&both, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.signing,
        corsgate_store::Signing::Head {
            key_id: new_public.id().to_owned(),
            unsigned_before: 0,
            other_keys: 1
        }
    );
    // One alone does not: each names the first entry it cannot vouch for.
    let report = s
        .verify_with(std::slice::from_ref(&new_public), None)
        .unwrap();
    assert_eq!(
        report.problems.first(),
        Some(&Tamper::UnknownKey(1, old_public.id().to_owned()))
    );
    let report = s
        .verify_with(std::slice::from_ref(&old_public), None)
        .unwrap();
    assert_eq!(
        report.problems.first(),
        Some(&Tamper::UnknownKey(5, new_public.id().to_owned()))
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_edit_made_while_the_store_is_open_is_caught_at_the_next_read() {
    let (data, public) = signed_store("while-open");
    let s = trusting(&data, &public);
    // Read twice: the second read reuses the first walk.
    assert_eq!(s.get(2).unwrap().unwrap().id, 2);
    assert_eq!(s.get(1).unwrap().unwrap().id, 1);
    // Another connection rewrites version 2 and its chain meanwhile.
    forge_version_2(&sql(&data));
    let e = s.get(2).unwrap_err().to_string();
    assert!(e.contains("audit entry 4 was forged"), "{e}");
    assert!(s.active().is_err());
    assert_eq!(s.get(1).unwrap().unwrap().id, 1);
    // An edit that leaves the head as it was is caught too: the walk is
    // redone whenever another connection has written the file.
    sql(&data)
        .execute_batch("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        .unwrap();
    let e = s.get(1).unwrap_err().to_string();
    assert!(e.contains("audit entry 2 was edited"), "{e}");
    let _ = std::fs::remove_dir_all(data.parent().unwrap());
}
