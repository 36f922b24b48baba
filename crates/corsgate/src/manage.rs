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
    /// The store.
    pub store: Store,
    /// What to serve: the store's active version.
    pub loaded: Loaded,
}

/// Open the store in `data_dir` and decide what to serve.
pub fn open(data_dir: &Path, file: &str, text: &str, loaded: Loaded) -> Result<Managed, String> {
    let mut store = Store::open(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let active = store.active().map_err(|e| e.to_string())?;
    match active {
        None => {
            let v = store
                .apply(None, "file", &format!("bootstrap from {file}"), text)
                .map_err(|e| e.to_string())?;
            tracing::info!(
                version = v.id,
                file,
                "store bootstrapped from the configuration file"
            );
            Ok(Managed { store, loaded })
        }
        Some(v) if v.content == text => Ok(Managed { store, loaded }),
        Some(v) => {
            tracing::warn!(
                version = v.id,
                file,
                "the configuration file differs from the store's active version; serving the store's \
                 version (apply the file through the admin API to make it active)"
            );
            let loaded =
                corsgate_routes::load_str(&v.content, Some(&format!("store version {}", v.id)))
                    .map_err(|e| e.to_string())?;
            Ok(Managed { store, loaded })
        }
    }
}

/// A running admin API and what the gateway's main loop needs of it.
pub struct AdminRuntime {
    /// Configurations to make active, each with its reply.
    pub activations: mpsc::Receiver<Activation>,
    /// Stops the admin listener when dropped or set.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The store, for reloads from the file on SIGHUP.
    pub store: Arc<Mutex<Store>>,
    /// The same activation path the admin API uses.
    pub activate: corsgate_admin::Activate,
}

/// Start the admin API; activations arrive on the returned channel and
/// must be answered by whoever owns the running gateway.
pub async fn start_admin(
    managed: Managed,
    admin: &corsgate_config::Admin,
    metrics: Arc<corsgate_gateway::metrics::Metrics>,
    shadow: corsgate_gateway::shadow::ShadowHandle,
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
    if let Ok(Some(v)) = managed.store.active() {
        metrics.set_config_version(v.id);
    }
    let store = Arc::new(Mutex::new(managed.store));
    let state = Arc::new(AdminState {
        metrics: Some(Arc::new(GatewayMetrics(metrics))),
        shadow: Some(Arc::new(GatewayShadow(shadow))),
        used: Mutex::default(),
        store: store.clone(),
        tokens: admin.tokens.iter().filter_map(Token::from_config).collect(),
        max_body: admin.max_body_bytes,
        activate: activate.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&admin.listen)
        .await
        .map_err(|e| format!("admin API: cannot listen on {}: {e}", admin.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(corsgate_admin::serve(listener, state, stop_rx));
    Ok(AdminRuntime {
        activations: rx,
        stop,
        addr,
        store,
        activate,
    })
}

/// SIGHUP with the admin API on: apply the configuration file as a new
/// version through the store (audited as `config.reloaded_from_file`).
/// Runs on its own task: the activation it causes is answered by the main
/// loop, which must not be waiting for this.
pub fn reload_from_file(rt: &AdminRuntime, path: &Path) {
    let store = rt.store.clone();
    let activate = rt.activate.clone();
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
            Ok(Some(v)) => tracing::info!(
                version = v.id,
                file,
                "SIGHUP: configuration file applied as a new version"
            ),
            Ok(None) => tracing::info!(
                file,
                "SIGHUP: the file equals the active version; nothing to do"
            ),
            Err(e) => {
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
