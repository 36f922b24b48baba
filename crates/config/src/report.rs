//! What checking a configuration yields: the [`Report`] `corsgate check`
//! prints, the [`Loaded`] configuration the gateway runs, and the lints and
//! import notes located in the files they are about.

use crate::gateway_api::NoteKind;
use crate::spans::Location;
use crate::{Config, ConfigError, ConfigErrors, Sources};
use corsgate_policy::{Lint, Policy};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A configuration that passed every check, with its compiled policies.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration as written.
    pub config: Config,
    /// Every named policy, compiled.
    pub policies: BTreeMap<String, Arc<Policy>>,
    /// Non-refusing lints, each with its place in the document.
    pub lints: Vec<ConfigLint>,
    /// The texts it was read from, to locate what later stages refuse.
    pub sources: Sources,
}

/// A lint with its place in the configuration document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLint {
    /// Where (`policies.seed.maxAge`, `vservices[0].rules[2]`).
    pub path: String,
    /// The file it is in (a manifest, for imported policies and rules).
    pub file: Option<String>,
    /// 1-based line and column, when the configuration came from text.
    pub location: Option<Location>,
    /// The source line with a caret under the column.
    pub snippet: Option<String>,
    /// The lint.
    pub lint: Lint,
}

impl ConfigLint {
    /// The lint as data, for `check --json` and the store.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "id": self.lint.id.as_str(),
            "severity": self.lint.severity.as_str(),
            "line": self.location.map(|l| l.0),
            "column": self.location.map(|l| l.1),
            "path": self.path,
            "message": self.lint.message,
            "fix": self.lint.fix,
        })
    }
}

impl fmt::Display for ConfigLint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {} (fix: {})",
            self.lint.id, self.lint.severity, self.path, self.lint.message, self.lint.fix
        )
    }
}

/// Everything known about a configuration: what `corsgate check` prints.
#[derive(Debug, Clone)]
pub struct Report {
    /// Problems that refuse the configuration.
    pub errors: Vec<ConfigError>,
    /// Lints that do not refuse it (also those of refused policies).
    pub lints: Vec<ConfigLint>,
    /// Notes about imported Gateway API manifests: what is not
    /// implemented, where semantics differ.
    pub notes: Vec<ImportNote>,
    /// Policy tests run (`tests.allow` and `tests.deny` entries).
    pub policy_tests: usize,
    /// The configuration, when it has no errors.
    pub loaded: Option<Loaded>,
    /// The configuration as read, with the policies that compiled, even
    /// when refused: what the route compiler checks further, so that one
    /// report lists every error at once. `None` when the text did not parse.
    pub parsed: Option<Loaded>,
}

impl Report {
    /// Add refusals found by a later stage (the route compiler): the
    /// configuration is then refused.
    pub fn refuse(&mut self, errors: Vec<ConfigError>) {
        if !errors.is_empty() {
            self.errors.extend(errors);
            self.loaded = None;
        }
    }

    /// The loaded configuration if nothing refuses it, else every error.
    pub fn into_result(self) -> Result<Loaded, ConfigErrors> {
        match self.loaded {
            Some(loaded) if self.errors.is_empty() => Ok(loaded),
            _ => Err(ConfigErrors(self.errors)),
        }
    }
}

/// A note about imported manifests, located in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// The manifest file.
    pub file: String,
    /// 1-based line and column.
    pub location: Option<Location>,
    /// Path in the manifest document.
    pub path: String,
    /// Unsupported, compatibility difference, or information.
    pub kind: NoteKind,
    /// What.
    pub message: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((l, c)) => write!(f, "{}:{l}:{c}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}", self.kind.as_str())?;
        if !self.path.is_empty() {
            write!(f, " {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}
