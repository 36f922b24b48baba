//! A client from `admin.store.etcd`: endpoints, TLS with an optional
//! client certificate, user/password auth with the password read from its
//! file.

use corsgate_config::EtcdStore as Settings;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::time::Duration;

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A file named in the settings could not be read.
    #[error("{setting}: {path}: {error}")]
    File {
        /// The setting (`admin.store.etcd.tls.caFile`).
        setting: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// etcd refused or could not be reached.
    #[error("etcd at {endpoints}: {error}")]
    Etcd {
        /// The endpoints tried.
        endpoints: String,
        /// Why.
        error: Box<etcd_client::Error>,
    },
}

fn read(setting: &'static str, path: &str) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|error| ConnectError::File {
        setting,
        path: path.to_owned(),
        error,
    })
}

/// The connect options for `settings`.
pub fn options(settings: &Settings) -> Result<ConnectOptions, ConnectError> {
    let timeout = Duration::from_millis(settings.timeout_ms);
    let mut opts = ConnectOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(timeout)
        .with_keep_alive(Duration::from_secs(5), timeout);
    if let Some(tls) = &settings.tls {
        let ca = read("admin.store.etcd.tls.caFile", &tls.ca_file)?;
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
        if let (Some(c), Some(k)) = (&tls.cert_file, &tls.key_file) {
            let cert = read("admin.store.etcd.tls.certFile", c)?;
            let key = read("admin.store.etcd.tls.keyFile", k)?;
            t = t.identity(Identity::from_pem(cert, key));
        }
        opts = opts.with_tls(t);
    }
    if let Some(auth) = &settings.auth {
        let pw = read("admin.store.etcd.auth.passwordFile", &auth.password_file)?;
        let pw = String::from_utf8_lossy(&pw);
        opts = opts.with_user(auth.user.clone(), pw.trim_end_matches(['\r', '\n']));
    }
    Ok(opts)
}

/// Connect to the cluster.
pub async fn connect(settings: &Settings) -> Result<Client, ConnectError> {
    let opts = options(settings)?;
    Client::connect(&settings.endpoints, Some(opts))
        .await
        .map_err(|error| ConnectError::Etcd {
            endpoints: settings.endpoints.join(","),
            error: Box::new(error),
        })
}
