//! The store's apply path runs the route compiler: a candidate it refuses
//! is never stored, and the active version stays.

use corsgate_store::{ApplyError, Store};

#[test]
fn a_candidate_the_route_compiler_refuses_is_not_stored() {
    let d = std::env::temp_dir().join(format!("corsgate-store-routes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let mut s = Store::open(&d).unwrap();
    let good = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - { match: { methods: [GET] }, direct: { status: 200 } }\n";
    s.apply(None, "alice", "first", good).unwrap();
    let bad = good.replace("[GET]", "[\"GET,POST\"]");
    match s.apply(Some(1), "bob", "widen", &bad) {
        Err(ApplyError::Rejected(errors)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("<candidate>:5:"), "{errors:?}");
            assert!(errors[0].contains("(invalid-method)"), "{errors:?}");
        }
        other => panic!("accepted or failed otherwise: {other:?}"),
    }
    assert_eq!(s.active().unwrap().unwrap().id, 1);
    assert_eq!(s.history().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}
