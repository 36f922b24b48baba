//! Data-plane sync: every instance on the etcd store follows the active
//! pointer and takes each new version through the same activation path
//! the admin API uses (validated, compiled, one atomic swap of every
//! listener). A version this instance cannot take leaves it on its last
//! good one, and it says so. Each version taken is kept on local disk
//! (`corsgate_etcd::local::LastApplied`).

use corsgate_etcd::follow::{Change, Follower};
use corsgate_etcd::local::LastApplied;
use corsgate_etcd::EtcdStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What this instance serves, shared by the admin API's applies and the
/// follower so that a version is taken once (and by the fleet status).
pub type Applied = crate::fleet_status::Shared;

/// A pause after an error before the follower resumes from the revision
/// it last acted on.
const RETRY: Duration = Duration::from_millis(500);

/// Follow the active pointer until the process ends.
pub fn spawn(
    store: EtcdStore,
    data_dir: PathBuf,
    activate: corsgate_admin::Activate,
    applied: Applied,
    metrics: Arc<corsgate_gateway::metrics::Metrics>,
) {
    tokio::spawn(async move {
        let mut follower = Follower::new(store);
        loop {
            let version = match follower.next().await {
                Ok(Change::Active { version, .. }) => version,
                Ok(Change::Empty) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, revision = follower.revision(), "etcd store: cannot follow the active version; trying again");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let id = version.id;
            if applied.applied_id() != id {
                let taken = take(&version, &activate).await;
                match taken {
                    Ok(()) => {
                        applied.applied(id, &version.content_hash);
                        metrics.set_config_version(id);
                        tracing::info!(version = id, "configuration applied from the etcd store");
                    }
                    Err(e) => {
                        tracing::error!(
                            version = id,
                            serving = applied.applied_id(),
                            error = %e,
                            "version {id} cannot be applied on this instance; it keeps serving its last good version"
                        );
                        applied.failed(id, &e);
                        continue;
                    }
                }
            }
            let copy = LastApplied::new(id, follower.revision(), &version.content);
            if let Err(e) = copy.save(&data_dir) {
                tracing::warn!(version = id, error = %e, "cannot keep the applied version on local disk");
            }
        }
    });
}

/// Load `version` and hand it to the gateway (a blocking call).
async fn take(
    version: &corsgate_store::Version,
    activate: &corsgate_admin::Activate,
) -> Result<(), String> {
    let loaded = corsgate_routes::load_str(
        &version.content,
        Some(&format!("store version {}", version.id)),
    )
    .map_err(|e| e.to_string())?;
    let activate = activate.clone();
    tokio::task::spawn_blocking(move || activate(&loaded))
        .await
        .map_err(|e| e.to_string())?
}
