//! `admin.store`: the etcd backend's settings, refused with a location when
//! they cannot be honoured.

use corsgate_config::load_str;

fn config(store: &str) -> String {
    format!("admin:\n  listen: \"127.0.0.1:0\"\n  store:\n{store}")
}

#[test]
fn no_store_means_sqlite_and_a_valid_etcd_store_loads() {
    let loaded = load_str("admin:\n  listen: \"127.0.0.1:0\"\n", None).unwrap();
    assert_eq!(loaded.config.admin.unwrap().store, None);
    let yaml = config(
        "    etcd:\n      endpoints: [\"https://127.0.0.1:2379\", \"https://[::1]:2479\"]\n      prefix: /edge/\n      tls: { caFile: ca.pem, certFile: c.pem, keyFile: k.pem }\n      auth: { user: gw, passwordFile: /run/pw }\n",
    );
    let loaded = load_str(&yaml, None).unwrap();
    let etcd = loaded.config.admin.unwrap().store.unwrap().etcd.unwrap();
    assert_eq!(etcd.endpoints.len(), 2);
    assert_eq!(etcd.prefix, "/edge/");
    assert_eq!(etcd.timeout_ms, 5000);
    assert_eq!(etcd.auth.unwrap().password_file, "/run/pw");
    let plain = load_str(
        &config("    etcd: { endpoints: [\"http://127.0.0.1:2379\"] }\n"),
        None,
    )
    .unwrap();
    let etcd = plain.config.admin.unwrap().store.unwrap().etcd.unwrap();
    assert_eq!(etcd.prefix, "/corsgate/");
}

#[test]
fn invalid_etcd_settings_are_refused_with_path_and_line() {
    // (store block, path of the error, words in the reason, line)
    let cases: &[(&str, &str, &str, usize)] = &[
        ("    etcd: { endpoints: [] }\n", "admin.store.etcd.endpoints", "at least one", 4),
        ("    etcd:\n      endpoints: [\"127.0.0.1:2379\"]\n", "admin.store.etcd.endpoints[0]", "a URL like", 5),
        ("    etcd:\n      endpoints: [\"ftp://h:21\"]\n", "admin.store.etcd.endpoints[0]", "scheme is http or https", 5),
        ("    etcd:\n      endpoints: [\"http://127.0.0.1\"]\n", "admin.store.etcd.endpoints[0]", "port is required", 5),
        ("    etcd:\n      endpoints: [\"http://h:99999\"]\n", "admin.store.etcd.endpoints[0]", "not a port", 5),
        ("    etcd:\n      endpoints: [\"http://h:2379/x\"]\n", "admin.store.etcd.endpoints[0]", "not a port", 5),
        ("    etcd:\n      endpoints: [\"https://h:2379\"]\n", "admin.store.etcd.endpoints[0]", "needs admin.store.etcd.tls", 5),
        ("    etcd:\n      endpoints: [\"http://h:2379\"]\n      tls: { caFile: ca.pem }\n", "admin.store.etcd.endpoints[0]", "use https", 5),
        ("    etcd:\n      endpoints: [\"http://h:2379\"]\n      prefix: corsgate\n", "admin.store.etcd.prefix", "starting and ending", 6),
        ("    etcd:\n      endpoints: [\"https://h:2379\"]\n      tls: { caFile: ca.pem, certFile: c.pem }\n", "admin.store.etcd.tls.keyFile", "both certFile and keyFile", 6),
        ("    etcd:\n      endpoints: [\"http://h:2379\"]\n      auth: { user: gw, passwordFile: pw }\n", "admin.store.etcd.auth", "over TLS", 6),
        ("    etcd:\n      endpoints: [\"http://h:2379\"]\n      timeoutMs: 0\n", "admin.store.etcd.timeoutMs", "at least 1", 6),
        ("    etcd:\n      endpoints: [\"http://h:2379\"]\n      leaseSeconds: 1\n", "admin.store.etcd.leaseSeconds", "etcd's shortest lease", 6),
    ];
    for (store, path, reason, line) in cases {
        let err = load_str(&config(store), Some("gw.yaml")).expect_err(store);
        let e = err
            .0
            .iter()
            .find(|e| e.path == *path)
            .unwrap_or_else(|| panic!("{store}: no error at {path}: {err:?}"));
        assert!(e.reason.contains(reason), "{store}: {e}");
        assert_eq!(e.file.as_deref(), Some("gw.yaml"));
        assert_eq!(e.location.map(|l| l.0), Some(*line), "{store}: {e}");
    }
}

#[test]
fn unknown_store_keys_are_refused() {
    let err = load_str(&config("    consul: {}\n"), None).unwrap_err();
    assert!(
        err.0[0].reason.contains("unknown field `consul`"),
        "{err:?}"
    );
    let err = load_str(
        &config("    etcd: { endpoints: [\"http://h:1\"], password: x }\n"),
        None,
    )
    .unwrap_err();
    assert!(
        err.0[0].reason.contains("unknown field `password`"),
        "{err:?}"
    );
}
