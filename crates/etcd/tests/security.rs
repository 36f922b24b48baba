//! etcd over TLS with client certificates, and etcd user/password auth,
//! through `admin.store.etcd` settings, against real members; the
//! certificates are made here with rcgen.

mod common;

use common::{temp_dir, Cluster};
use corsgate_config::{EtcdAuth, EtcdStore as Settings, EtcdTls};
use corsgate_etcd::{connect, EtcdStore};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};

const CONFIG: &str = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n";

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// written to `dir`; and a second, unrelated CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

fn pki(dir: &Path) -> Pki {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca_params, ca_key, ca_pem) = ca("corsgate test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |cn: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        "etcd",
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf("corsgate", vec![], ExtendedKeyUsagePurpose::ClientAuth);
    let (_, _, other_pem) = ca("someone else's CA");
    Pki {
        ca: write("ca.pem", &ca_pem),
        other_ca: write("other-ca.pem", &other_pem),
        server: (
            write("server.pem", &server_cert),
            write("server.key", &server_key),
        ),
        client: (
            write("client.pem", &client_cert),
            write("client.key", &client_key),
        ),
    }
}

fn server_flags(pki: &Pki, client_certs: bool) -> Vec<String> {
    let mut f = vec![
        "--cert-file".into(),
        pki.server.0.display().to_string(),
        "--key-file".into(),
        pki.server.1.display().to_string(),
    ];
    if client_certs {
        f.push("--client-cert-auth".into());
        f.push("--trusted-ca-file".into());
        f.push(pki.ca.display().to_string());
    }
    f
}

fn settings(etcd: &Cluster, tls: Option<EtcdTls>, auth: Option<EtcdAuth>) -> Settings {
    Settings {
        endpoints: etcd.endpoints(),
        prefix: "/corsgate/".into(),
        tls,
        auth,
        timeout_ms: 3000,
        lease_seconds: 10,
    }
}

/// Connect with `s` and apply a version: the whole path a store uses.
async fn apply_with(s: &Settings) -> Result<i64, String> {
    let client = connect::connect(s).await.map_err(|e| e.to_string())?;
    let mut store = EtcdStore::new(client, &s.prefix);
    let base = store.active_id().await.map_err(|e| e.to_string())?;
    store
        .apply(base, "t", "tls", CONFIG)
        .await
        .map(|v| v.id)
        .map_err(|e| e.to_string())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented_and_the_server_is_checked() {
    let dir = temp_dir("mtls");
    let pki = pki(&dir);
    let etcd = Cluster::start(1, &server_flags(&pki, true));
    let good = EtcdTls {
        ca_file: path(&pki.ca),
        cert_file: Some(path(&pki.client.0)),
        key_file: Some(path(&pki.client.1)),
    };
    etcd.ready(Some(
        connect::options(&settings(&etcd, Some(good.clone()), None)).unwrap(),
    ))
    .await;
    assert_eq!(
        apply_with(&settings(&etcd, Some(good.clone()), None)).await,
        Ok(1)
    );

    // Without a client certificate the member refuses the connection.
    let anonymous = EtcdTls {
        cert_file: None,
        key_file: None,
        ..good.clone()
    };
    let refused = apply_with(&settings(&etcd, Some(anonymous), None)).await;
    assert!(refused.is_err(), "{refused:?}");
    // A member whose certificate another CA signed is not trusted.
    let wrong_ca = EtcdTls {
        ca_file: path(&pki.other_ca),
        ..good.clone()
    };
    let refused = apply_with(&settings(&etcd, Some(wrong_ca), None)).await;
    assert!(refused.is_err(), "{refused:?}");
    // A missing file is named.
    let missing = EtcdTls {
        key_file: Some(path(&dir.join("nope.key"))),
        ..good
    };
    let e = apply_with(&settings(&etcd, Some(missing), None))
        .await
        .unwrap_err();
    assert!(
        e.contains("admin.store.etcd.tls.keyFile") && e.contains("nope.key"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_auth_over_tls() {
    let dir = temp_dir("auth");
    let pki = pki(&dir);
    let etcd = Cluster::start(1, &server_flags(&pki, false));
    let tls = EtcdTls {
        ca_file: path(&pki.ca),
        cert_file: None,
        key_file: None,
    };
    let admin_opts = connect::options(&settings(&etcd, Some(tls.clone()), None)).unwrap();
    etcd.ready(Some(admin_opts.clone())).await;
    // An operator sets up auth: root, and a user limited to the prefix.
    let mut root = etcd_client::Client::connect(etcd.endpoints(), Some(admin_opts))
        .await
        .unwrap();
    root.user_add("root", "root-pw", None).await.unwrap();
    root.user_grant_role("root", "root").await.unwrap();
    root.role_add("corsgate").await.unwrap();
    root.role_grant_permission(
        "corsgate",
        etcd_client::Permission::read_write("/corsgate/").with_prefix(),
    )
    .await
    .unwrap();
    root.user_add("corsgate", "s3cret", None).await.unwrap();
    root.user_grant_role("corsgate", "corsgate").await.unwrap();
    root.auth_enable().await.unwrap();

    let pw = dir.join("password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let auth = EtcdAuth {
        user: "corsgate".into(),
        password_file: path(&pw),
    };
    assert_eq!(
        apply_with(&settings(&etcd, Some(tls.clone()), Some(auth.clone()))).await,
        Ok(1),
        "the trailing newline of the password file is not part of the password"
    );
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "guess").unwrap();
    let refused = apply_with(&settings(
        &etcd,
        Some(tls.clone()),
        Some(EtcdAuth {
            password_file: path(&wrong),
            ..auth.clone()
        }),
    ))
    .await;
    assert!(refused.is_err(), "{refused:?}");
    // Without credentials nothing is readable once auth is on.
    let anonymous = apply_with(&settings(&etcd, Some(tls.clone()), None)).await;
    assert!(anonymous.is_err(), "{anonymous:?}");
    // The user cannot write outside its prefix.
    let mut other = settings(&etcd, Some(tls), Some(auth));
    other.prefix = "/elsewhere/".into();
    let denied = apply_with(&other).await.unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    let _ = std::fs::remove_dir_all(&dir);
}
