//! `corsgate run` with an `admin:` section: the versioned store is the
//! source of truth and the admin API changes the running gateway.
//!
//! Start-up: an empty store is bootstrapped with the `--config` file as
//! version 1 (author `file`). A store that already has an active version
//! keeps it; if the file differs, the difference is logged loudly and the
//! store's version is served (nothing is overwritten either way; apply the
//! file through the admin API to make it active). While the admin API is
//! on, file changes and SIGHUP do not change the configuration.

use corsgate_admin::{AdminState, Token};
use corsgate_config::Loaded;
use corsgate_store::Store;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A configuration the admin API wants active, and where to say whether
/// the gateway took it.
pub type Activation = (Loaded, oneshot::Sender<Result<(), String>>);

/// The store opened and the configuration to serve.
pub struct Managed {
    /// The SQLite store; `None` with `admin.store.etcd`.
    pub store: Option<Store>,
    /// What to serve: the store's active version.
    pub loaded: Loaded,
    /// The version served.
    pub served: Option<i64>,
    /// Its content hash, where the fleet status needs it (etcd).
    pub served_hash: Option<String>,
    /// The admin listener, when it had to be bound before the store
    /// answered (etcd: it answers probes while the instance waits).
    pub listener: Option<std::net::TcpListener>,
    /// The first problem start-up found in the store, if any.
    pub integrity: Option<String>,
}

/// Load the audit signing key named by the configuration into `store`.
fn sign(store: &mut Store, admin: &corsgate_config::Admin, data_dir: &Path) -> Result<(), String> {
    let Some(key) = &admin.audit_key_file else {
        tracing::warn!(
            "admin.auditKeyFile is not set: audit entries are hash-chained but not signed, so \
             someone who can write the data directory can rewrite the chain undetected \
             (create a key with `corsgate audit keygen`)"
        );
        return Ok(());
    };
    let signer = corsgate_store::Signer::read(Path::new(key)).map_err(|e| e.to_string())?;
    let inside = |p: &Path| {
        let (Ok(k), Ok(d)) = (p.canonicalize(), data_dir.canonicalize()) else {
            return false;
        };
        k.starts_with(d)
    };
    if inside(Path::new(key)) {
        tracing::warn!(
            key,
            "the audit signing key is inside the data directory: whoever can write the store can \
             read the key and re-sign a rewritten chain; keep it elsewhere"
        );
    }
    let previous = admin
        .audit_previous_public_key_files
        .iter()
        .map(|p| corsgate_store::PublicKey::read(Path::new(p)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(key_id = signer.public().id(), "audit entries are signed");
    store
        .sign_with(signer, previous)
        .map_err(|e| format!("store: {e}"))?;
    Ok(())
}

/// Open the store in `data_dir` and decide what to serve.
pub fn open(
    data_dir: &Path,
    admin: &corsgate_config::Admin,
    file: &str,
    text: &str,
    loaded: Loaded,
) -> Result<Managed, String> {
    if admin.store.as_ref().is_some_and(|s| s.etcd.is_some()) {
        // The shared store decides; no SQLite store is made.
        let listener = std::net::TcpListener::bind(&admin.listen)
            .map_err(|e| format!("admin API: cannot listen on {}: {e}", admin.listen))?;
        let (loaded, served) =
            crate::fleet_store::open(admin, data_dir, file, text, loaded, &listener)?;
        return Ok(Managed {
            listener: Some(listener),
            store: None,
            loaded,
            served: served.as_ref().map(|s| s.0),
            served_hash: served.map(|s| s.1),
            integrity: None,
        });
    }
    let mut store = Store::open(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    sign(&mut store, admin, data_dir)?;
    let (newest, report) = store.newest_verified().map_err(|e| format!("store: {e}"))?;
    for p in &report.problems {
        tracing::error!(problem = %p, "STORE TAMPERED: the management store failed verification");
    }
    let integrity = report.problems.first().map(ToString::to_string);
    if report.versions == 0 && integrity.is_none() {
        let v = store
            .apply(None, "file", &format!("bootstrap from {file}"), text)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            version = v.id,
            file,
            "store bootstrapped from the configuration file"
        );
        return Ok(Managed {
            store: Some(store),
            loaded,
            served: Some(v.id),
            served_hash: None,
            listener: None,
            integrity,
        });
    }
    let Some(newest) = newest else {
        return Err(format!(
            "{}: no stored version verifies ({}); nothing stored is served. Keep the file for \
             investigation, move it aside and start again to bootstrap from {file}",
            store.path().display(),
            integrity.unwrap_or_default()
        ));
    };
    let active_id = store.active_id().map_err(|e| format!("store: {e}"))?;
    let active = match active_id {
        Some(id) if id != newest.id => {
            let v = store
                .history()
                .ok()
                .and_then(|h| h.into_iter().find(|v| v.id == id));
            match v.filter(|v| report.version_problem(v).is_none()) {
                Some(v) => v,
                None => {
                    tracing::error!(
                        active = id,
                        serving = newest.id,
                        "the active version failed verification; serving the newest version that verifies"
                    );
                    newest
                }
            }
        }
        _ => newest,
    };
    let mut m = managed_from(store, file, text, loaded, active)?;
    m.integrity = integrity;
    Ok(m)
}

fn managed_from(
    store: Store,
    file: &str,
    text: &str,
    loaded: Loaded,
    v: corsgate_store::Version,
) -> Result<Managed, String> {
    let served = Some(v.id);
    let loaded = if v.content == text {
        loaded
    } else {
        tracing::warn!(
            version = v.id,
            file,
            "the configuration file differs from the store's version; serving the store's \
             version (apply the file through the admin API to make it active)"
        );
        corsgate_routes::load_str(&v.content, Some(&format!("store version {}", v.id)))
            .map_err(|e| e.to_string())?
    };
    Ok(Managed {
        store: Some(store),
        loaded,
        served,
        served_hash: None,
        listener: None,
        integrity: None,
    })
}

/// A running admin API and what the gateway's main loop needs of it.
pub struct AdminRuntime {
    /// Configurations to make active, each with its reply.
    pub activations: mpsc::Receiver<Activation>,
    /// Stops the admin listener when dropped or set.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The SQLite store, for reloads from the file on SIGHUP (`None` on
    /// etcd).
    pub store: Option<Arc<Mutex<Store>>>,
    /// The same activation path the admin API uses.
    pub activate: corsgate_admin::Activate,
    /// The gateway's metrics (the version gauge follows SIGHUP applies).
    pub metrics: Arc<corsgate_gateway::metrics::Metrics>,
    /// The fleet status registration (etcd), which withdraws this
    /// instance's record when `stop` is sent.
    pub registration: Option<tokio::task::JoinHandle<()>>,
}

/// Start the admin API; activations arrive on the returned channel and
/// must be answered by whoever owns the running gateway.
pub async fn start_admin(
    managed: Managed,
    admin: &corsgate_config::Admin,
    metrics: Arc<corsgate_gateway::metrics::Metrics>,
    shadow: corsgate_gateway::shadow::ShadowHandle,
    data_dir: &Path,
    node: Option<String>,
) -> Result<AdminRuntime, String> {
    let (tx, rx) = mpsc::channel::<Activation>(1);
    let activate: corsgate_admin::Activate = Arc::new(move |loaded: &Loaded| {
        // Called on a blocking thread inside the store's transaction.
        let (reply, answer) = oneshot::channel();
        tx.blocking_send((loaded.clone(), reply))
            .map_err(|_| "the gateway is shutting down".to_owned())?;
        answer
            .blocking_recv()
            .map_err(|_| "the gateway is shutting down".to_owned())?
    });
    if let Some(v) = managed.served {
        metrics.set_config_version(v);
    }
    let tls = match &admin.tls {
        Some(t) => Some(corsgate_admin::tls_acceptor(t)?),
        None => None,
    };
    let listener = match managed.listener {
        Some(l) => l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(l))
            .map_err(|e| format!("admin API: {e}"))?,
        None => tokio::net::TcpListener::bind(&admin.listen)
            .await
            .map_err(|e| format!("admin API: cannot listen on {}: {e}", admin.listen))?,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sqlite = managed.store.map(|s| Arc::new(Mutex::new(s)));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (store, fleet, registration): (Arc<Mutex<dyn corsgate_admin::Backend>>, _, _) =
        match &sqlite {
            Some(s) => (s.clone(), None, None),
            None => {
                let served = managed.served.zip(managed.served_hash.clone());
                let node = node.unwrap_or_else(|| crate::fleet_status::default_node(addr));
                let status = crate::fleet_status::Status::new(node, addr.to_string(), served);
                let (backend, fleet, registration) = fleet_parts(
                    admin,
                    data_dir,
                    status,
                    &activate,
                    &metrics,
                    stop_rx.clone(),
                )
                .await?;
                (backend, Some(fleet), Some(registration))
            }
        };
    let state = Arc::new(AdminState {
        metrics: Some(Arc::new(GatewayMetrics(metrics.clone()))),
        shadow: Some(Arc::new(GatewayShadow(shadow))),
        used: Mutex::default(),
        store: store.clone(),
        tokens: admin.tokens.iter().filter_map(Token::from_config).collect(),
        max_body: admin.max_body_bytes,
        activate: activate.clone(),
        limits: corsgate_admin::Limits::from_config(admin),
        tls,
        denials: corsgate_admin::Denials::default(),
        integrity: Mutex::new(managed.integrity),
        console: corsgate_admin::Console {
            explain: Some(crate::console::explainer()),
            ..Default::default()
        },
        fleet,
        node_address: addr.to_string(),
    });
    tokio::spawn(corsgate_admin::serve(listener, state, stop_rx));
    Ok(AdminRuntime {
        activations: rx,
        stop,
        addr,
        store: sqlite,
        activate,
        metrics,
        registration,
    })
}

/// On the etcd store: the admin API's backend, the follower that applies
/// each new version here, and the fleet status (registered under a lease,
/// listed by `GET /fleet`).
async fn fleet_parts(
    admin: &corsgate_config::Admin,
    data_dir: &Path,
    status: crate::fleet_status::Shared,
    activate: &corsgate_admin::Activate,
    metrics: &Arc<corsgate_gateway::metrics::Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<FleetParts, String> {
    let settings = admin.store.as_ref().and_then(|s| s.etcd.as_ref());
    let ttl = settings.map_or(10, |e| e.lease_seconds as i64);
    // One connection to etcd for the whole instance, four handles on it.
    let first = crate::fleet_store::connect(admin).await?;
    let registration = crate::fleet_status::spawn_registration(&first, status.clone(), ttl, stop);
    crate::fleet_sync::spawn(
        crate::fleet_store::another(&first, admin)?,
        data_dir.to_path_buf(),
        activate.clone(),
        status.clone(),
        metrics.clone(),
    );
    let backend = Arc::new(Mutex::new(crate::fleet_store::EtcdBackend {
        store: crate::fleet_store::another(&first, admin)?,
        runtime: tokio::runtime::Handle::current(),
        applied: status.clone(),
    }));
    let fleet = Arc::new(crate::fleet_status::EtcdFleet {
        store: first,
        runtime: tokio::runtime::Handle::current(),
        status,
    });
    Ok((backend, fleet, registration))
}

/// The etcd store's backend for the admin API, its fleet listing, and
/// the registration task (awaited at shutdown, when it withdraws).
type FleetParts = (
    Arc<Mutex<dyn corsgate_admin::Backend>>,
    Arc<dyn corsgate_admin::FleetSource>,
    tokio::task::JoinHandle<()>,
);

/// SIGHUP with the admin API on: apply the configuration file as a new
/// version through the store (audited as `config.reloaded_from_file`).
/// Runs on its own task: the activation it causes is answered by the main
/// loop, which must not be waiting for this.
pub fn reload_from_file(rt: &AdminRuntime, path: &Path) {
    let Some(store) = rt.store.clone() else {
        tracing::warn!(
            "SIGHUP: the configuration is kept in etcd; apply the file through the admin API"
        );
        return;
    };
    let activate = rt.activate.clone();
    let metrics = rt.metrics.clone();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(file, error = %e, "SIGHUP: cannot read the configuration file");
                return;
            }
        };
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        match store.reload_from_file(&file, &text, &mut |l| activate(l)) {
            Ok(Some(v)) => {
                metrics.set_config_version(v.id);
                tracing::info!(
                    version = v.id,
                    file,
                    "SIGHUP: configuration file applied as a new version"
                );
            }
            Ok(None) => tracing::info!(
                file,
                "SIGHUP: the file equals the active version; nothing to do"
            ),
            Err(e) => {
                // A failure inside the gateway is counted by its reload.
                if !matches!(e, corsgate_store::ApplyError::NotApplied(_)) {
                    metrics.reloaded(false);
                }
                tracing::error!(file, error = %e, "SIGHUP: configuration file refused; the running configuration stays in force")
            }
        }
    });
}

/// The gateway's metrics, as the admin API serves them.
struct GatewayMetrics(Arc<corsgate_gateway::metrics::Metrics>);

impl corsgate_admin::MetricsSource for GatewayMetrics {
    fn render(&self) -> String {
        self.0.render()
    }
    fn set_version(&self, version: i64) {
        self.0.set_config_version(version);
    }
    fn refused(&self) {
        self.0.reloaded(false);
    }
}

/// The gateway's shadow candidate, as the admin API drives it.
struct GatewayShadow(corsgate_gateway::shadow::ShadowHandle);

impl corsgate_admin::ShadowControl for GatewayShadow {
    fn install(&self, loaded: &Loaded, content: &str, comment: &str) {
        // The admin API checked the candidate with the same route compiler,
        // so a refusal here is not expected; it is logged, and nothing is
        // installed.
        match corsgate_gateway::shadow::Shadow::new(loaded, content, comment) {
            Ok(shadow) => self.0.install(shadow),
            Err(e) => tracing::error!(error = %e, "shadow candidate refused"),
        }
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn report(&self) -> Option<serde_json::Value> {
        self.0
            .current()
            .and_then(|s| serde_json::to_value(s.report()).ok())
    }
    fn content(&self) -> Option<String> {
        self.0.current().map(|s| s.content().to_owned())
    }
}
