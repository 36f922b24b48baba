//! # corsgate-config
//!
//! The native configuration: named CORS policies, and vServices (a listener
//! with hostnames, CORS bindings and an ordered list of rules). Loading
//! parses YAML, rejects unknown fields, checks every reference and compiles
//! every policy with the engine, collecting *all* problems before refusing.

#![deny(missing_docs)]

mod ambiguity;
mod diff;
pub mod gateway_api;
mod model;
mod sources;
mod spans;
mod store;
mod tighten;

pub use diff::{diff, BindingChange, ConfigDiff, FieldChange, PolicyChange};
pub use gateway_api::NoteKind;
pub use model::*;
pub use sources::{Place, Sources};
pub use spans::{snippet, Location, Spans};
pub use store::{EtcdAuth, EtcdStore, EtcdTls, StoreBackend};
pub use tighten::{tightenings, Tightening, BROWSER_MAX_AGE_CAP};

use corsgate_policy::{Lint, Policy};
use sources::ManifestText;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One reason a configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when loaded from one.
    pub file: Option<String>,
    /// 1-based line and column, when the configuration came from text.
    pub location: Option<Location>,
    /// The offending source line with a caret under the column.
    pub snippet: Option<String>,
    /// Where in the document (`policies.admin.allowOrigins[1]`).
    pub path: String,
    /// The stable ID of the refusal (`invalid-method`), for the errors
    /// that have one: every route compiler error and import error does.
    pub id: Option<&'static str>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<config>");
        match self.location {
            Some((l, c)) => write!(f, "{file}:{l}:{c}: ")?,
            None => write!(f, "{file}: ")?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)?;
        if let Some(id) = self.id {
            write!(f, " ({id})")?;
        }
        if let Some(snippet) = &self.snippet {
            for line in snippet.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// A refused configuration: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration refused:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

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

/// A YAML syntax or type error of `text`, with its location and snippet.
fn yaml_error(file: Option<&str>, text: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let location = e.location().map(|l| (l.line(), l.column()));
    ConfigError {
        id: None,
        file: file.map(str::to_owned),
        location,
        snippet: location.and_then(|at| snippet(text, at)),
        path: String::new(),
        reason: e.to_string(),
    }
}

/// Check a configuration text completely, collecting every error and lint
/// with its location.
pub fn check_str(text: &str, file: Option<&str>) -> Report {
    let manifests_only = gateway_api::looks_like_manifests(text);
    let config: Config = if manifests_only {
        Config {
            gateway_api: Some(GatewayApi {
                manifests: vec![file.unwrap_or("<manifests>").to_owned()],
                bind_address: "127.0.0.1".into(),
                ..GatewayApi::default()
            }),
            ..Config::default()
        }
    } else {
        match serde_yaml_ng::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                return Report {
                    errors: vec![yaml_error(file, text, &e)],
                    lints: Vec::new(),
                    notes: Vec::new(),
                    policy_tests: 0,
                    loaded: None,
                    parsed: None,
                }
            }
        }
    };
    let mut config = config;
    let import = config
        .gateway_api
        .clone()
        .map(|g| import_manifests(&g, file, manifests_only.then_some(text)));
    let native_vservices = config.vservices.len();
    let mut import_errors = Vec::new();
    let mut notes = Vec::new();
    let mut sources: Vec<ManifestText> = Vec::new();
    let mut provenance: Vec<(String, gateway_api::Source)> = Vec::new();
    if let Some(imp) = import {
        sources = imp.texts;
        import_errors = imp.errors;
        notes = imp.notes;
        for (name, spec) in imp.imported.policies {
            if config.policies.contains_key(&name) {
                import_errors.push(ConfigError {
                    id: None,
                    file: file.map(str::to_owned),
                    location: None,
                    snippet: None,
                    path: format!("policies.{name}"),
                    reason: "this name is also used by an imported Gateway API policy".into(),
                });
            }
            config.policies.insert(name, spec);
        }
        config.vservices.extend(imp.imported.vservices);
        for (path, src) in imp.imported.provenance {
            let path = match path.strip_prefix("vservices[") {
                Some(rest) => {
                    let (n, tail) = rest.split_once(']').unwrap_or((rest, ""));
                    let n: usize = n.parse().unwrap_or(0);
                    format!("vservices[{}]{tail}", n + native_vservices)
                }
                None => path,
            };
            provenance.push((path, src));
        }
    }
    let mut report = check_config(config, file);
    let sources = Sources::new(file, (!manifests_only).then_some(text), sources, provenance);
    let place = |path: &str| sources.place(path);
    for lint in &mut report.lints {
        let (f, at, snip) = place(&lint.path);
        lint.file = f;
        lint.location = at;
        lint.snippet = snip;
    }
    for e in &mut report.errors {
        let (f, at, snip) = place(&e.path);
        e.file = f;
        e.location = at;
        e.snippet = snip;
    }
    for loaded in report.loaded.iter_mut().chain(report.parsed.iter_mut()) {
        loaded.lints.clone_from(&report.lints);
        loaded.sources = sources.clone();
    }
    if !import_errors.is_empty() {
        report.errors.splice(0..0, import_errors);
        report.loaded = None;
    }
    report.notes = notes;
    report
}

struct ImportResult {
    texts: Vec<ManifestText>,
    imported: gateway_api::Imported,
    errors: Vec<ConfigError>,
    notes: Vec<ImportNote>,
}

/// Read, parse and import the manifests a configuration names. `inline` is
/// the text when the configuration file is itself the manifest.
fn import_manifests(g: &GatewayApi, file: Option<&str>, inline: Option<&str>) -> ImportResult {
    let base = file
        .and_then(|f| Path::new(f).parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut docs = Vec::new();
    for (i, m) in g.manifests.iter().enumerate() {
        let (name, raw) = match inline {
            Some(t) => (m.clone(), Ok(t.to_owned())),
            None => {
                let p = base.join(m);
                (p.display().to_string(), std::fs::read_to_string(&p))
            }
        };
        let raw = match raw {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError {
                    id: None,
                    file: file.map(str::to_owned),
                    location: None,
                    snippet: None,
                    path: format!("gatewayApi.manifests[{i}]"),
                    reason: format!("cannot read {name}: {e}"),
                });
                texts.push(ManifestText {
                    file: name,
                    text: String::new(),
                    spans: Vec::new(),
                });
                continue;
            }
        };
        let (text, snippet_notes, snippet_errors) = gateway_api::expand_snippets(&raw);
        for (line, message) in snippet_notes {
            notes.push(ImportNote {
                file: name.clone(),
                location: Some((line, 1)),
                path: String::new(),
                kind: NoteKind::Info,
                message,
            });
        }
        for (line, reason) in snippet_errors {
            errors.push(ConfigError {
                id: None,
                file: Some(name.clone()),
                location: Some((line, 1)),
                snippet: snippet(&text, (line, 1)),
                path: String::new(),
                reason,
            });
        }
        match gateway_api::documents(&text) {
            Ok(d) => docs.extend(d.into_iter().enumerate().map(|(di, v)| (i, di, v))),
            Err(e) => errors.push(yaml_error(Some(&name), &text, &e)),
        }
        let spans = Spans::of_documents(&text);
        texts.push(ManifestText {
            file: name,
            text,
            spans,
        });
    }
    let imported = gateway_api::import(&docs, g);
    let locate = |src: &gateway_api::Source| {
        let m = &texts[src.manifest];
        let at = m.spans.get(src.doc).and_then(|s| s.locate(&src.path));
        (m.file.clone(), at, at.and_then(|a| snippet(&m.text, a)))
    };
    for (src, id, reason) in &imported.errors {
        let (f, at, snip) = locate(src);
        errors.push(ConfigError {
            id: *id,
            file: Some(f),
            location: at,
            snippet: snip,
            path: src.path.clone(),
            reason: reason.clone(),
        });
    }
    for n in &imported.notes {
        let (f, at, _) = locate(&n.source);
        notes.push(ImportNote {
            file: f,
            location: at,
            path: n.source.path.clone(),
            kind: n.kind,
            message: n.message.clone(),
        });
    }
    ImportResult {
        texts,
        imported,
        errors,
        notes,
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

fn check_config(config: Config, file: Option<&str>) -> Report {
    let policy_tests = config
        .policies
        .values()
        .map(|p| p.tests.allow.len() + p.tests.deny.len())
        .sum();
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<ConfigError>, path: String, reason: String| {
        errors.push(ConfigError {
            id: None,
            file: file.map(str::to_owned),
            location: None,
            snippet: None,
            path,
            reason,
        })
    };
    let mut policies = BTreeMap::new();
    let mut lints = Vec::new();
    for (name, spec) in &config.policies {
        match Policy::compile(spec) {
            Ok(c) => {
                for t in c.policy.run_tests() {
                    err(
                        &mut errors,
                        format!("policies.{name}.{}", t.at),
                        t.to_string(),
                    );
                }
                lints.extend(c.lints.into_iter().map(|lint| ConfigLint {
                    path: format!("policies.{name}.{}", lint.at),
                    file: None,
                    location: None,
                    snippet: None,
                    lint,
                }));
                policies.insert(name.clone(), Arc::new(c.policy));
            }
            Err(rejected) => {
                for e in rejected.errors {
                    err(
                        &mut errors,
                        format!("policies.{name}.{}", e.at),
                        format!("{} ({}): {:?}", e.reason, e.id, e.value),
                    );
                }
                for l in rejected.lints {
                    if l.refuses() {
                        err(
                            &mut errors,
                            format!("policies.{name}.{}", l.at),
                            format!("{} ({}); fix: {}", l.message, l.id, l.fix),
                        );
                    } else {
                        lints.push(ConfigLint {
                            path: format!("policies.{name}.{}", l.at),
                            file: None,
                            location: None,
                            snippet: None,
                            lint: l,
                        });
                    }
                }
            }
        }
    }
    // vServices, bindings and rules are checked by the route compiler
    // (crate corsgate-routes), which reports through [`Report::refuse`].
    for (vi, vs) in config.vservices.iter().enumerate() {
        lints.extend(ambiguity::preflight_ambiguity(vi, vs));
    }
    if let Some(admin) = &config.admin {
        let (admin_errors, admin_lints) = admin_checks(admin);
        for (path, reason) in admin_errors {
            err(&mut errors, path, reason);
        }
        lints.extend(admin_lints);
        if admin.listen.parse::<std::net::SocketAddr>().is_err() {
            err(
                &mut errors,
                "admin.listen".into(),
                format!("{:?} is not an address like 127.0.0.1:9901", admin.listen),
            );
        }
        if config
            .vservices
            .iter()
            .any(|v| v.listen == admin.listen && !admin.listen.ends_with(":0"))
        {
            err(
                &mut errors,
                "admin.listen".into(),
                "the admin API is never served on a data-plane port; choose another address".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in admin.tokens.iter().enumerate() {
            if !names.insert(&t.name) {
                err(
                    &mut errors,
                    format!("admin.tokens[{i}].name"),
                    format!("duplicate token name {:?}", t.name),
                );
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                err(
                    &mut errors,
                    format!("admin.tokens[{i}].sha256"),
                    "the SHA-256 of the token as 64 hex digits (printf %s TOKEN | sha256sum)"
                        .into(),
                );
            }
        }
    }
    let parsed = Loaded {
        config,
        policies,
        lints: lints.clone(),
        sources: Sources::file_only(file),
    };
    Report {
        loaded: errors.is_empty().then(|| parsed.clone()),
        parsed: Some(parsed),
        errors,
        lints,
        notes: Vec::new(),
        policy_tests,
    }
}

/// The admin listener's exposure: beyond loopback, tokens are required
/// (an error) and TLS expected (`L-ADMIN-PLAINTEXT`); limits must be
/// positive.
fn admin_checks(admin: &Admin) -> (Vec<(String, String)>, Vec<ConfigLint>) {
    let mut errors = Vec::new();
    let mut lints = Vec::new();
    let exposed = admin
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if exposed && admin.tokens.is_empty() {
        errors.push((
            "admin.listen".into(),
            format!(
                "{} is reachable beyond this host but admin.tokens is empty; add tokens or listen on 127.0.0.1",
                admin.listen
            ),
        ));
    }
    if exposed && admin.tls.is_none() {
        lints.push(ConfigLint {
            path: "admin.listen".into(),
            file: None,
            location: None,
            snippet: None,
            lint: Lint {
                id: corsgate_policy::LintId::AdminPlaintext,
                severity: corsgate_policy::Severity::Warn,
                at: corsgate_policy::FieldPath {
                    field: "listen",
                    index: None,
                },
                message: format!(
                    "the admin API on {} is reachable beyond this host without TLS: bearer tokens cross the network in clear",
                    admin.listen
                ),
                fix: "add admin.tls (certFile, keyFile), or listen on 127.0.0.1".into(),
            },
        });
    }
    for (field, value) in [
        ("headerTimeoutMs", admin.header_timeout_ms),
        ("idleTimeoutMs", admin.idle_timeout_ms),
        ("maxConnections", admin.max_connections as u64),
    ] {
        if value == 0 {
            errors.push((format!("admin.{field}"), "must be at least 1".into()));
        }
    }
    if let Some(store) = &admin.store {
        errors.extend(store::store_checks(store));
    }
    (errors, lints)
}
