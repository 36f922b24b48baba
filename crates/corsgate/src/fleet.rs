//! The fleet store (etcd) from the command line: `audit verify --config`.

use corsgate_store::PublicKey;
use std::path::Path;

/// Verify the etcd store that `config`'s `admin.store.etcd` names, with the
/// same checks and the same report as on SQLite.
pub fn verify(
    config: &Path,
    keys: &[PublicKey],
    expect_head: Option<&str>,
) -> Result<(String, bool), String> {
    let loaded = corsgate_routes::load_file(config).map_err(|e| e.to_string())?;
    let settings = loaded
        .config
        .admin
        .and_then(|a| a.store)
        .and_then(|s| s.etcd)
        .ok_or_else(|| format!("{}: no admin.store.etcd here", config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let client = corsgate_etcd::connect::connect(&settings)
            .await
            .map_err(|e| e.to_string())?;
        let store = corsgate_etcd::EtcdStore::new(client, &settings.prefix);
        let report = store
            .verify_with(Some(keys), expect_head)
            .await
            .map_err(|e| {
                format!(
                    "{}: cannot read the store: {e}",
                    settings.endpoints.join(",")
                )
            })?;
        Ok(crate::audit::render(&report))
    })
}
