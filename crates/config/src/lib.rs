//! # corsgate-config
//!
//! The native configuration: named CORS policies, and vServices (a listener
//! with hostnames, CORS bindings and an ordered list of rules). Loading
//! parses YAML, rejects unknown fields, checks every reference and compiles
//! every policy with the engine, collecting *all* problems before refusing.

#![deny(missing_docs)]

mod admin;
mod ambiguity;
mod check;
mod diff;
mod error;
pub mod gateway_api;
mod import;
mod model;
mod report;
mod sources;
mod spans;
mod store;
mod tighten;

pub use check::check_str;
pub use diff::{diff, BindingChange, ConfigDiff, FieldChange, PolicyChange};
pub use error::{ConfigError, ConfigErrors};
pub use gateway_api::NoteKind;
pub use model::*;
pub use report::{ConfigLint, ImportNote, Loaded, Report};
pub use sources::{Place, Sources};
pub use spans::{snippet, Location, Spans};
pub use store::{EtcdAuth, EtcdStore, EtcdTls, StoreBackend};
pub use tighten::{tightenings, Tightening, BROWSER_MAX_AGE_CAP};

use check::check_config;
use std::path::Path;

/// Every file a configuration reads: itself and, when it imports Gateway
/// API manifests, each manifest (resolved relative to it). Hot reload
/// watches and fingerprints these.
pub fn input_files(config: &Config, file: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![file.to_path_buf()];
    if let Some(g) = &config.gateway_api {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        out.extend(g.manifests.iter().map(|m| base.join(m)));
    }
    out
}

/// Load and validate a configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    check_file(path).into_result()
}

/// Check a configuration file completely ([`check_str`] of its text); an
/// unreadable file is a report with that one error.
pub fn check_file(path: &Path) -> Report {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_str(&text, Some(&file)),
        Err(e) => Report {
            errors: vec![ConfigError {
                id: None,
                file: Some(file),
                location: None,
                snippet: None,
                path: String::new(),
                reason: format!("cannot read: {e}"),
            }],
            lints: Vec::new(),
            notes: Vec::new(),
            policy_tests: 0,
            loaded: None,
            parsed: None,
        },
    }
}

/// Load and validate a configuration given as YAML text.
pub fn load_str(text: &str, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    check_str(text, file).into_result()
}

/// Validate a parsed configuration and compile its policies.
pub fn validate(config: Config, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    check_config(config, file).into_result()
}
