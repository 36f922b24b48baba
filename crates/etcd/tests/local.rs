//! The last known good copy on local disk: saved atomically, read back
//! only when its content matches its hash.

use corsgate_etcd::local::{path, LastApplied, LocalError};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-local-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn saved_copies_read_back_and_replace_each_other() {
    let d = dir("roundtrip");
    assert_eq!(LastApplied::load(&d).unwrap(), None, "no copy yet");
    let one = LastApplied::new(1, 10, "vservices: []\n");
    one.save(&d).unwrap();
    assert_eq!(LastApplied::load(&d).unwrap(), Some(one));
    let two = LastApplied::new(2, 12, "vservices: []\n# two\n");
    two.save(&d).unwrap();
    assert_eq!(LastApplied::load(&d).unwrap(), Some(two));
    assert!(!d.join("last-applied.json.tmp").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_edited_or_broken_copy_is_not_used() {
    let d = dir("edited");
    LastApplied::new(1, 10, "vservices: []\n").save(&d).unwrap();
    let text = std::fs::read_to_string(path(&d)).unwrap();
    std::fs::write(path(&d), text.replace("vservices: []", "vservices: [x]")).unwrap();
    assert!(matches!(LastApplied::load(&d), Err(LocalError::Edited(_))));
    std::fs::write(path(&d), "{\"version\": 1").unwrap();
    assert!(matches!(
        LastApplied::load(&d),
        Err(LocalError::Malformed(..))
    ));
    let _ = std::fs::remove_dir_all(&d);
}
