//! Where the management store lives: the embedded SQLite file in the data
//! directory (the default, one box) or a shared etcd v3 cluster (a fleet of
//! instances with one policy and one audit trail; docs/fleet.md).

use serde::{Deserialize, Serialize};

/// `admin.store`: absent means the embedded SQLite store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreBackend {
    /// Keep versions, the active pointer and the audit chain in etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdStore>,
}

/// `admin.store.etcd`: the cluster and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdStore {
    /// Client URLs of the members (`http://127.0.0.1:2379`, or `https://…`
    /// with `tls`); any one reachable member is enough.
    pub endpoints: Vec<String>,
    /// Every key corsgate writes starts with this (default `/corsgate/`);
    /// two fleets share a cluster under two prefixes.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// TLS to the members, with a client certificate when the cluster
    /// asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EtcdTls>,
    /// etcd user/password authentication; the password is read from a
    /// file, never written in the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EtcdAuth>,
    /// Time to connect and for each request (default 5000 ms).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How long an instance's fleet status record outlives its last
    /// keep-alive (default 10 s): an instance that stopped answering
    /// leaves `GET /fleet` this long after.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
}

/// `admin.store.etcd.tls`: PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates.
    pub ca_file: String,
    /// This instance's client certificate (with `keyFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The client certificate's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// `admin.store.etcd.auth`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdAuth {
    /// The etcd user.
    pub user: String,
    /// A file holding the password (one line; a trailing newline is
    /// ignored).
    pub password_file: String,
}

fn default_prefix() -> String {
    "/corsgate/".into()
}
fn default_timeout() -> u64 {
    5000
}

fn default_lease() -> u64 {
    10
}

/// Errors in `admin.store`, each as (path, reason). A value that cannot be
/// honoured is refused, never replaced by a default: a typo in an endpoint
/// must not leave an instance writing to a store of its own.
pub(crate) fn store_checks(store: &StoreBackend) -> Vec<(String, String)> {
    let Some(etcd) = &store.etcd else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let at = "admin.store.etcd";
    if etcd.endpoints.is_empty() {
        errors.push((
            format!("{at}.endpoints"),
            "at least one client URL, like http://127.0.0.1:2379".into(),
        ));
    }
    for (i, e) in etcd.endpoints.iter().enumerate() {
        if let Err(why) = endpoint(e, etcd.tls.is_some()) {
            errors.push((format!("{at}.endpoints[{i}]"), why));
        }
    }
    if !etcd.prefix.starts_with('/') || !etcd.prefix.ends_with('/') || etcd.prefix.len() < 2 {
        errors.push((
            format!("{at}.prefix"),
            format!(
                "{:?}: a key prefix starting and ending with '/', like /corsgate/",
                etcd.prefix
            ),
        ));
    }
    if let Some(tls) = &etcd.tls {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            let missing = if tls.cert_file.is_some() {
                "keyFile"
            } else {
                "certFile"
            };
            errors.push((
                format!("{at}.tls.{missing}"),
                "a client certificate needs both certFile and keyFile".into(),
            ));
        }
    }
    if let Some(auth) = &etcd.auth {
        if auth.user.is_empty() {
            errors.push((format!("{at}.auth.user"), "must not be empty".into()));
        }
        if etcd.tls.is_none() {
            errors.push((
                format!("{at}.auth"),
                "a password is only sent to etcd over TLS; add admin.store.etcd.tls".into(),
            ));
        }
    }
    if !(2..=3600).contains(&etcd.lease_seconds) {
        errors.push((
            format!("{at}.leaseSeconds"),
            format!(
                "{}: between 2 (etcd's shortest lease) and 3600",
                etcd.lease_seconds
            ),
        ));
    }
    if etcd.timeout_ms == 0 {
        errors.push((format!("{at}.timeoutMs"), "must be at least 1".into()));
    }
    errors
}

/// One endpoint: `http://` or `https://`, host, port, nothing after.
fn endpoint(e: &str, tls: bool) -> Result<(), String> {
    let (scheme, rest) = e
        .split_once("://")
        .ok_or_else(|| format!("{e:?}: a URL like http://127.0.0.1:2379"))?;
    match (scheme, tls) {
        ("http", false) | ("https", true) => {}
        ("http", true) => return Err(format!("{e:?}: tls is configured, so use https://")),
        ("https", false) => {
            return Err(format!(
                "{e:?}: https:// needs admin.store.etcd.tls (caFile)"
            ))
        }
        _ => return Err(format!("{e:?}: the scheme is http or https")),
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{e:?}: the port is required, like :2379"))?;
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(format!("{e:?}: only scheme, host and port"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{e:?}: {port:?} is not a port")),
    }
}
