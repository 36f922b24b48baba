//! Checking a configuration completely: parse (or import manifests),
//! compile every policy and run its tests, lint, check the admin listener,
//! and locate every error and lint in the text it came from. Nothing stops
//! at the first problem: the report lists all of them at once.

use crate::admin::check_admin;
use crate::error::yaml_error;
use crate::import::{import_manifests, merge};
use crate::sources::ManifestText;
use crate::{ambiguity, gateway_api};
use crate::{Config, ConfigError, ConfigLint, GatewayApi, Loaded, Report, Sources};
use corsgate_policy::Policy;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    let mut import_errors = Vec::new();
    let mut notes = Vec::new();
    let mut sources: Vec<ManifestText> = Vec::new();
    let mut provenance: Vec<(String, gateway_api::Source)> = Vec::new();
    if let Some(imp) = import {
        sources = imp.texts;
        import_errors = imp.errors;
        notes = imp.notes;
        provenance = merge(&mut config, imp.imported, file, &mut import_errors);
    }
    let mut report = check_config(config, file);
    let sources = Sources::new(file, (!manifests_only).then_some(text), sources, provenance);
    locate(&mut report, &sources);
    if !import_errors.is_empty() {
        report.errors.splice(0..0, import_errors);
        report.loaded = None;
    }
    report.notes = notes;
    report
}

/// Every lint and error of `report` located in the text (configuration or
/// manifest) its path came from.
fn locate(report: &mut Report, sources: &Sources) {
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
}

/// An unlocated refusal at `path` (located later from the path).
pub(crate) fn refusal(file: Option<&str>, path: String, reason: String) -> ConfigError {
    ConfigError {
        id: None,
        file: file.map(str::to_owned),
        location: None,
        snippet: None,
        path,
        reason,
    }
}

/// An unlocated lint at `path`.
fn config_lint(path: String, lint: corsgate_policy::Lint) -> ConfigLint {
    ConfigLint {
        path,
        file: None,
        location: None,
        snippet: None,
        lint,
    }
}

/// Check a parsed configuration: policies, preflight ambiguity, the admin
/// listener. vServices, bindings and rules are checked by the route
/// compiler (crate corsgate-routes), which reports through
/// [`Report::refuse`].
pub(crate) fn check_config(config: Config, file: Option<&str>) -> Report {
    let policy_tests = config
        .policies
        .values()
        .map(|p| p.tests.allow.len() + p.tests.deny.len())
        .sum();
    let mut errors = Vec::new();
    let mut lints = Vec::new();
    let policies = compile_policies(&config, file, &mut errors, &mut lints);
    for (vi, vs) in config.vservices.iter().enumerate() {
        lints.extend(ambiguity::preflight_ambiguity(vi, vs));
    }
    if let Some(admin) = &config.admin {
        check_admin(admin, &config.vservices, file, &mut errors, &mut lints);
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

/// Compile every named policy and run its tests. A refused policy's
/// errors, and its lints that refuse, are errors; its other lints are
/// still reported, so one run shows everything.
fn compile_policies(
    config: &Config,
    file: Option<&str>,
    errors: &mut Vec<ConfigError>,
    lints: &mut Vec<ConfigLint>,
) -> BTreeMap<String, Arc<Policy>> {
    let mut policies = BTreeMap::new();
    for (name, spec) in &config.policies {
        match Policy::compile(spec) {
            Ok(c) => {
                for t in c.policy.run_tests() {
                    errors.push(refusal(
                        file,
                        format!("policies.{name}.{}", t.at),
                        t.to_string(),
                    ));
                }
                lints.extend(
                    c.lints
                        .into_iter()
                        .map(|lint| config_lint(format!("policies.{name}.{}", lint.at), lint)),
                );
                policies.insert(name.clone(), Arc::new(c.policy));
            }
            Err(rejected) => {
                for e in rejected.errors {
                    errors.push(refusal(
                        file,
                        format!("policies.{name}.{}", e.at),
                        format!("{} ({}): {:?}", e.reason, e.id, e.value),
                    ));
                }
                for l in rejected.lints {
                    if l.refuses() {
                        errors.push(refusal(
                            file,
                            format!("policies.{name}.{}", l.at),
                            format!("{} ({}); fix: {}", l.message, l.id, l.fix),
                        ));
                    } else {
                        lints.push(config_lint(format!("policies.{name}.{}", l.at), l));
                    }
                }
            }
        }
    }
    policies
}
