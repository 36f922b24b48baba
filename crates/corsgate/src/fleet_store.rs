//! `corsgate run` on the fleet's etcd store: the admin API's backend, and
//! the start-up read of what to serve.

use corsgate_admin::{ActivateFn, Backend};
use corsgate_config::Loaded;
use corsgate_etcd::{ApplyError as EtcdError, EtcdStore, ReadError};
use corsgate_store::{ApplyError, Entry, Report, Version};
use std::path::Path;
use std::time::Duration;
use tokio::runtime::Handle;

/// Connect to the store `admin.store.etcd` names, signing as
/// `admin.auditKeyFile` says (as on SQLite).
pub async fn connect(admin: &corsgate_config::Admin) -> Result<EtcdStore, String> {
    let mut store = connect_unsigned(admin).await?;
    if let Some((signer, previous)) = signer(admin)? {
        store.sign_with(signer, previous);
        // A new key is recorded as on SQLite. When etcd cannot be reached
        // now, entries are still signed and the next start records it;
        // start-up does not wait longer than one request for it.
        let wait = Duration::from_millis(
            admin
                .store
                .as_ref()
                .and_then(|s| s.etcd.as_ref())
                .map_or(5000, |e| e.timeout_ms),
        );
        match tokio::time::timeout(wait, store.record_signing_key()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the audit.signing_key entry could not be written now")
            }
            Err(_) => tracing::warn!(
                "the audit.signing_key entry could not be written now: etcd did not answer in time"
            ),
        }
    }
    Ok(store)
}

/// Another handle on `store`'s connection (etcd's client multiplexes its
/// calls on one channel), signing as `admin` says. Each handle keeps its
/// own verified chain ([`EtcdStore::get`]), so the follower, the admin API
/// and the fleet listing share no lock, only the connection.
pub fn another(store: &EtcdStore, admin: &corsgate_config::Admin) -> Result<EtcdStore, String> {
    let prefix = admin
        .store
        .as_ref()
        .and_then(|s| s.etcd.as_ref())
        .map_or("/corsgate/", |e| e.prefix.as_str());
    let mut handle = EtcdStore::new(store.client().clone(), prefix);
    if let Some((signer, previous)) = signer(admin)? {
        handle.sign_with(signer, previous);
    }
    Ok(handle)
}

/// Connect to the store `admin.store.etcd` names, without a signing key.
pub async fn connect_unsigned(admin: &corsgate_config::Admin) -> Result<EtcdStore, String> {
    let settings = admin
        .store
        .as_ref()
        .and_then(|s| s.etcd.as_ref())
        .ok_or("no admin.store.etcd")?;
    let client = corsgate_etcd::connect::connect(settings)
        .await
        .map_err(|e| e.to_string())?;
    Ok(EtcdStore::new(client, &settings.prefix))
}

/// The signing key `admin.auditKeyFile` names and the public keys of
/// `admin.auditPreviousPublicKeyFiles`, when signing is configured.
pub fn signer(
    admin: &corsgate_config::Admin,
) -> Result<Option<(corsgate_store::Signer, Vec<corsgate_store::PublicKey>)>, String> {
    let Some(key) = &admin.audit_key_file else {
        return Ok(None);
    };
    let signer = corsgate_store::Signer::read(Path::new(key)).map_err(|e| e.to_string())?;
    let previous = admin
        .audit_previous_public_key_files
        .iter()
        .map(|p| corsgate_store::PublicKey::read(Path::new(p)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((signer, previous)))
}

/// What an instance starts with: the configuration and the version it
/// is (id and content hash), if it came from the store.
pub type Start = (Loaded, Option<(i64, String)>);

/// What to serve at start: the store's active version, or the file as
/// version 1 when the store is empty. When etcd cannot be reached, the
/// last version this instance applied (kept in `data_dir`) is served at
/// once and the follower catches up when etcd returns; with no such copy
/// the instance waits for etcd, its admin listener (`listener`, already
/// bound) answering `/live` 200 and `/ready` 503 meanwhile — it never
/// serves the file while the fleet may hold another policy. Runs on its
/// own short-lived runtime (start-up happens before the gateway's).
pub fn open(
    admin: &corsgate_config::Admin,
    data_dir: &Path,
    file: &str,
    text: &str,
    loaded: Loaded,
    listener: &std::net::TcpListener,
) -> Result<Start, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let v = match runtime.block_on(first_read(admin, file, text)) {
        Ok(v) => v,
        Err(Attempt::Refused(e)) => return Err(e),
        Err(Attempt::Unreached(why)) => match last_applied(data_dir, &why)? {
            Some(served) => return Ok(served),
            None => {
                runtime.block_on(wait_for_store(admin, listener, data_dir, file, text, &why))?
            }
        },
    };
    if v.content == text {
        return Ok((loaded, Some((v.id, v.content_hash))));
    }
    tracing::warn!(
        version = v.id,
        file,
        "the configuration file differs from the store's active version; serving the store's version"
    );
    let l = corsgate_routes::load_str(&v.content, Some(&format!("store version {}", v.id)))
        .map_err(|e| e.to_string())?;
    Ok((l, Some((v.id, v.content_hash))))
}

/// Why the first read gave no version.
enum Attempt {
    /// etcd could not be reached or did not answer: try again later.
    Unreached(String),
    /// The store answered with something that cannot be served (a version
    /// that fails verification, a bootstrap refused): do not start.
    Refused(String),
}

/// The store's active version, read once, or the file stored as version
/// 1 when the store is empty. Of several instances bootstrapping the same
/// empty store at once, one writes version 1 and the others read it. A
/// bootstrap that failed on an etcd error may still have been committed:
/// it is never retried blindly, the next attempt reads first.
async fn first_read(
    admin: &corsgate_config::Admin,
    file: &str,
    text: &str,
) -> Result<Version, Attempt> {
    let wait = admin
        .store
        .as_ref()
        .and_then(|s| s.etcd.as_ref())
        .map_or(5000, |e| e.timeout_ms.max(1000));
    let wait = Duration::from_millis(wait);
    let late = || Attempt::Unreached(format!("no answer within {} ms", wait.as_millis()));
    let mut store = connect(admin).await.map_err(Attempt::Unreached)?;
    for _ in 0..3 {
        match tokio::time::timeout(wait, store.active())
            .await
            .map_err(|_| late())?
        {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(ReadError::Etcd(e)) => return Err(Attempt::Unreached(e.to_string())),
            Err(e) => return Err(Attempt::Refused(format!("etcd store: {e}"))),
        }
        let comment = format!("bootstrap from {file}");
        let bootstrap = store.apply(None, "file", &comment, text);
        match tokio::time::timeout(wait, bootstrap)
            .await
            .map_err(|_| late())?
        {
            Ok(v) => {
                tracing::info!(
                    version = v.id,
                    file,
                    "etcd store bootstrapped from the configuration file"
                );
                return Ok(v);
            }
            // Another instance bootstrapped first: read what it wrote.
            Err(EtcdError::Stale { .. }) => continue,
            Err(e @ (EtcdError::Etcd(_) | EtcdError::Busy)) => {
                return Err(Attempt::Unreached(format!("bootstrap: {e}")))
            }
            Err(e) => return Err(Attempt::Refused(format!("etcd store: bootstrap: {e}"))),
        }
    }
    Err(Attempt::Unreached(
        "the active version kept changing during start-up".into(),
    ))
}

/// Nothing to serve yet: answer probes on the admin listener and try etcd
/// again, backing off to every 5 s, until it answers.
async fn wait_for_store(
    admin: &corsgate_config::Admin,
    listener: &std::net::TcpListener,
    data_dir: &Path,
    file: &str,
    text: &str,
    why: &str,
) -> Result<Version, String> {
    let probes = listener
        .try_clone()
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        })
        .map_err(|e| format!("admin API: {e}"))?;
    let tls = match &admin.tls {
        Some(t) => Some(corsgate_admin::tls_acceptor(t)?),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        corsgate_admin::serve_starting(
            &probes,
            tls,
            "the etcd store is unreachable and no version was applied here before".into(),
            stopped,
        )
        .await;
    });
    tracing::warn!(
        error = why,
        data_dir = %data_dir.display(),
        "etcd is unreachable and no version was applied here before: nothing is served until etcd answers \
         (the admin listener answers /live 200, /ready 503)"
    );
    let mut delay = Duration::from_millis(250);
    let mut tries = 0u32;
    let found = loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        tries += 1;
        match first_read(admin, file, text).await {
            Ok(v) => break Ok(v),
            Err(Attempt::Refused(e)) => break Err(e),
            Err(Attempt::Unreached(why)) if tries % 12 == 0 => {
                tracing::warn!(error = why, tries, "still waiting for the etcd store")
            }
            Err(Attempt::Unreached(_)) => {}
        }
    };
    let _ = stop.send(true);
    let _ = server.await;
    tracing::info!(tries, "the etcd store answered");
    found
}

/// Start from the local copy of the last version applied, if there is
/// one. A copy that is there but unusable (edited, unreadable) is an
/// error: an instance does not silently forget what it served.
fn last_applied(data_dir: &Path, why: &str) -> Result<Option<Start>, String> {
    let Some(copy) = corsgate_etcd::local::LastApplied::load(data_dir)
        .map_err(|e| format!("etcd is unreachable ({why}) and the local copy is unusable: {e}"))?
    else {
        return Ok(None);
    };
    tracing::warn!(
        version = copy.version,
        error = why,
        "etcd is unreachable: serving the last version applied here, from local disk, until it returns"
    );
    let loaded = corsgate_routes::load_str(
        &copy.content,
        Some(&format!("local copy of version {}", copy.version)),
    )
    .map_err(|e| e.to_string())?;
    Ok(Some((loaded, Some((copy.version, copy.content_hash)))))
}

/// The etcd store behind the admin API. Its methods run on blocking
/// threads and wait for etcd on the gateway's runtime.
pub struct EtcdBackend {
    /// The store.
    pub store: EtcdStore,
    /// The gateway's runtime, where the etcd client lives.
    pub runtime: Handle,
    /// The version this instance serves (shared with the follower).
    pub applied: crate::fleet_sync::Applied,
}

fn text<E: ToString>(e: E) -> String {
    e.to_string()
}

fn change_error(e: EtcdError) -> ApplyError {
    match e {
        EtcdError::Stale { based_on, active } => ApplyError::Stale { based_on, active },
        EtcdError::Rejected(errors) => ApplyError::Rejected(errors),
        EtcdError::NoSuchVersion(id) => ApplyError::NoSuchVersion(id),
        EtcdError::Tampered(t) => ApplyError::Tampered(t),
        e @ (EtcdError::Etcd(_) | EtcdError::Busy) => ApplyError::Unavailable(e.to_string()),
    }
}

impl EtcdBackend {
    fn wait<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// The change is committed for the whole fleet; this instance takes it
    /// at once (its follower then finds it already in force). When this
    /// instance cannot, it stays on its running version and says so.
    fn activate(&self, v: Version, activate: ActivateFn<'_>) -> Result<Version, ApplyError> {
        let loaded =
            corsgate_routes::load_str(&v.content, Some(&format!("store version {}", v.id)))
                .map_err(|e| ApplyError::NotApplied(e.to_string()))?;
        match activate(&loaded) {
            Ok(()) => self.applied.applied(v.id, &v.content_hash),
            Err(e) => {
                tracing::error!(version = v.id, error = %e, "version {} is active in the store but this instance could not apply it; it keeps its running version", v.id);
                self.applied.failed(v.id, &e);
            }
        }
        Ok(v)
    }
}

impl Backend for EtcdBackend {
    fn active_id(&self) -> Result<Option<i64>, String> {
        self.wait(self.store.active_id()).map_err(text)
    }
    fn head(&self) -> Result<Option<(i64, String)>, String> {
        self.wait(self.store.head()).map_err(text)
    }
    fn active(&self) -> Result<Option<Version>, String> {
        self.wait(self.store.active()).map_err(text)
    }
    fn get(&self, id: i64) -> Result<Option<Version>, String> {
        self.wait(self.store.get(id)).map_err(text)
    }
    fn history(&self) -> Result<Vec<Version>, String> {
        self.wait(self.store.history()).map_err(text)
    }
    fn apply_with(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError> {
        let runtime = self.runtime.clone();
        let v = runtime
            .block_on(self.store.apply(based_on, author, comment, content))
            .map_err(change_error)?;
        self.activate(v, activate)
    }
    fn rollback_with(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError> {
        let runtime = self.runtime.clone();
        let v = runtime
            .block_on(self.store.rollback(based_on, to, author, comment))
            .map_err(change_error)?;
        self.activate(v, activate)
    }
    fn record(
        &mut self,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &serde_json::Value,
    ) -> Result<(), String> {
        let runtime = self.runtime.clone();
        runtime
            .block_on(self.store.record(actor, action, version, detail))
            .map(|_| ())
            .map_err(text)
    }
    fn audit(&self) -> Result<Vec<Entry>, String> {
        self.wait(self.store.audit()).map_err(text)
    }
    fn verify(&self, expect_head: Option<&str>) -> Result<Report, String> {
        self.wait(self.store.verify_with(None, expect_head))
            .map_err(|e: ReadError| e.to_string())
    }
}
