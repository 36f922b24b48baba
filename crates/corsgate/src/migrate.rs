//! `corsgate store migrate`: copy a SQLite store into the etcd store a
//! configuration names (the copy itself is `corsgate_etcd::migrate`).
//!
//! Exit status: 0 copied and verified; 1 something was written but the
//! result does not verify or is incomplete; 2 refused or unreadable,
//! nothing written.

use corsgate_etcd::migrate::{Limits, Source};
use corsgate_store::{PublicKey, Store};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Run the migration from `data_dir` into `config`'s `admin.store.etcd`.
pub fn run(data_dir: &Path, config: &Path, public_keys: &[PathBuf]) -> ExitCode {
    match migrate(data_dir, config, public_keys) {
        Ok((text, intact)) => {
            print!("{text}");
            ExitCode::from(if intact { 0 } else { 1 })
        }
        Err((text, status)) => {
            eprintln!("{text}");
            ExitCode::from(status)
        }
    }
}

/// The summary, and whether the result verifies; or the error and the
/// exit status.
fn migrate(
    data_dir: &Path,
    config: &Path,
    public_keys: &[PathBuf],
) -> Result<(String, bool), (String, u8)> {
    let refused = |e: String| (e, 2);
    let mut keys = Vec::new();
    for p in public_keys {
        keys.push(PublicKey::read(p).map_err(|e| refused(e.to_string()))?);
    }
    let loaded = corsgate_routes::load_file(config).map_err(|e| refused(e.to_string()))?;
    let admin = loaded
        .config
        .admin
        .filter(|a| a.store.as_ref().is_some_and(|s| s.etcd.is_some()))
        .ok_or_else(|| refused(format!("{}: no admin.store.etcd here", config.display())))?;
    if !data_dir.join("corsgate.db").exists() {
        return Err(refused(format!(
            "{}: no corsgate.db here",
            data_dir.display()
        )));
    }
    let signer = crate::fleet_store::signer(&admin).map_err(refused)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (format!("cannot start the runtime: {e}"), 2))?;
    runtime.block_on(async {
        // Signing is set without an `audit.signing_key` entry: the target
        // must stay empty until the copy.
        let mut store = crate::fleet_store::connect_unsigned(&admin)
            .await
            .map_err(refused)?;
        if let Some((signer, previous)) = signer {
            store.sign_with(signer, previous);
        }
        // The source is checked with the keys given and those the etcd
        // store will trust: a chain its own readers could not
        // authenticate is not worth copying.
        keys.extend(store.trusted().iter().cloned());
        let source = Store::open(data_dir)
            .map_err(|e| format!("{}: {e}", data_dir.display()))
            .and_then(|s| Source::read(&s, &keys).map_err(|e| e.to_string()))
            .map_err(|e| refused(format!("{}: {e}; nothing written", data_dir.display())))?;
        let prefix = store.keys().prefix().to_owned();
        let done = store
            .migrate(&source, Limits::default())
            .await
            .map_err(|e| {
                let status = if e.nothing_written() { 2 } else { 1 };
                let tail = if e.nothing_written() {
                    "; nothing written"
                } else {
                    ""
                };
                (format!("migration into {prefix}: {e}{tail}"), status)
            })?;
        let report = store
            .verify_with(Some(&keys), Some(&done.source_head.1))
            .await
            .map_err(|e| (format!("migration into {prefix}: cannot read it back: {e}"), 1))?;
        let (verified, intact) = crate::audit::render(&report);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "migrated {} into etcd prefix {prefix}: {} versions, {} audit entries, active version {}, in {} transaction(s)",
            source.path,
            done.versions,
            done.entries,
            done.active.map_or_else(|| "none".to_owned(), |v| v.to_string()),
            done.transactions,
        );
        let _ = writeln!(
            out,
            "head before: entry {} {}",
            done.source_head.0, done.source_head.1
        );
        if let Some(e) = &done.signing_key {
            let _ = writeln!(out, "entry {}: audit.signing_key (the etcd store signs with another key)", e.seq);
        }
        let _ = writeln!(
            out,
            "head after: entry {} {} (store.migrated)",
            done.entry.seq, done.entry.hash
        );
        out.push_str(&verified);
        Ok((out, intact))
    })
}
