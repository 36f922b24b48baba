//! # corsgate-config
//!
//! The native configuration: named CORS policies, and vServices (a listener
//! with hostnames, CORS bindings and an ordered list of rules). Loading
//! parses YAML, rejects unknown fields, checks every reference and compiles
//! every policy with the engine, collecting *all* problems before refusing.

#![deny(missing_docs)]

mod model;
mod spans;
mod tighten;

pub use model::*;
pub use spans::{snippet, Location, Spans};
pub use tighten::{tightenings, Tightening, BROWSER_MAX_AGE_CAP};

use corsgate_policy::{Lint, Policy};
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
}

/// A lint with its place in the configuration document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLint {
    /// Where (`policies.seed.maxAge`, `vservices[0].rules[2]`).
    pub path: String,
    /// 1-based line and column, when the configuration came from text.
    pub location: Option<Location>,
    /// The lint.
    pub lint: Lint,
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

/// Load and validate a configuration file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: Some(file.clone()),
            location: None,
            snippet: None,
            path: String::new(),
            reason: format!("cannot read: {e}"),
        }])
    })?;
    load_str(&text, Some(&file))
}

/// Load and validate a configuration given as YAML text.
pub fn load_str(text: &str, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    let report = check_str(text, file);
    match report.loaded {
        Some(loaded) if report.errors.is_empty() => Ok(loaded),
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Validate a parsed configuration and compile its policies.
pub fn validate(config: Config, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    let report = check_config(config, file);
    match report.loaded {
        Some(loaded) if report.errors.is_empty() => Ok(loaded),
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Everything known about a configuration: what `corsgate check` prints.
#[derive(Debug, Clone)]
pub struct Report {
    /// Problems that refuse the configuration.
    pub errors: Vec<ConfigError>,
    /// Lints that do not refuse it (also those of refused policies).
    pub lints: Vec<ConfigLint>,
    /// Policy tests run (`tests.allow` and `tests.deny` entries).
    pub policy_tests: usize,
    /// The configuration, when it has no errors.
    pub loaded: Option<Loaded>,
}

/// Check a configuration text completely, collecting every error and lint
/// with its location.
pub fn check_str(text: &str, file: Option<&str>) -> Report {
    let config: Config = match serde_yaml_ng::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            return Report {
                errors: vec![ConfigError {
                    file: file.map(str::to_owned),
                    location: e.location().map(|l| (l.line(), l.column())),
                    snippet: e
                        .location()
                        .and_then(|l| snippet(text, (l.line(), l.column()))),
                    path: String::new(),
                    reason: e.to_string(),
                }],
                lints: Vec::new(),
                policy_tests: 0,
                loaded: None,
            }
        }
    };
    let mut report = check_config(config, file);
    let spans = Spans::of(text);
    for lint in &mut report.lints {
        lint.location = spans.locate(&lint.path);
    }
    if let Some(loaded) = &mut report.loaded {
        loaded.lints.clone_from(&report.lints);
    }
    for e in &mut report.errors {
        e.location = spans.locate(&e.path);
        e.snippet = e.location.and_then(|at| snippet(text, at));
    }
    report
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
                    location: None,
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
                            location: None,
                            lint: l,
                        });
                    }
                }
            }
        }
    }
    let check_ref = |errors: &mut Vec<ConfigError>, path: String, name: &Option<String>| {
        if let Some(n) = name {
            if !config.policies.contains_key(n) {
                err(
                    errors,
                    path,
                    format!("no policy named {n:?} under `policies`"),
                );
            }
        }
    };
    check_ref(&mut errors, "cors".into(), &config.cors);
    let mut names = std::collections::HashSet::new();
    let mut listens = std::collections::HashSet::new();
    if config.vservices.is_empty() {
        err(
            &mut errors,
            "vservices".into(),
            "at least one vService is needed".into(),
        );
    }
    for (vi, vs) in config.vservices.iter().enumerate() {
        let at = format!("vservices[{vi}]");
        if !names.insert(vs.name.clone()) {
            err(
                &mut errors,
                format!("{at}.name"),
                format!("duplicate vService name {:?}", vs.name),
            );
        }
        if !listens.insert(vs.listen.clone()) && !vs.listen.ends_with(":0") {
            err(
                &mut errors,
                format!("{at}.listen"),
                format!("{} is used by another vService", vs.listen),
            );
        }
        if vs.listen.parse::<std::net::SocketAddr>().is_err() {
            err(
                &mut errors,
                format!("{at}.listen"),
                format!("{:?} is not an address like 127.0.0.1:8080", vs.listen),
            );
        }
        check_ref(&mut errors, format!("{at}.cors"), &vs.cors);
        for (host, p) in &vs.host_cors {
            check_ref(
                &mut errors,
                format!("{at}.hostCors.{host}"),
                &Some(p.clone()),
            );
        }
        for (pi, pc) in vs.path_cors.iter().enumerate() {
            check_ref(
                &mut errors,
                format!("{at}.pathCors[{pi}].cors"),
                &Some(pc.cors.clone()),
            );
            if !pc.prefix.starts_with('/') {
                err(
                    &mut errors,
                    format!("{at}.pathCors[{pi}].prefix"),
                    "a path prefix starts with /".into(),
                );
            }
        }
        for (ri, rule) in vs.rules.iter().enumerate() {
            let at = format!("{at}.rules[{ri}]");
            check_ref(&mut errors, format!("{at}.cors"), &rule.cors);
            let actions = usize::from(rule.forward.is_some())
                + usize::from(rule.direct.is_some())
                + usize::from(rule.redirect.is_some());
            if actions != 1 {
                err(
                    &mut errors,
                    at.clone(),
                    "a rule has exactly one action: forward, direct or redirect".into(),
                );
            }
            if let Some(f) = &rule.forward {
                if f.upstreams.is_empty() {
                    err(
                        &mut errors,
                        format!("{at}.forward.upstreams"),
                        "at least one upstream URL".into(),
                    );
                }
                for (ui, u) in f.upstreams.iter().enumerate() {
                    match u.parse::<http::Uri>() {
                        Ok(uri)
                            if uri.scheme_str() == Some("http") && uri.authority().is_some() => {}
                        _ => err(
                            &mut errors,
                            format!("{at}.forward.upstreams[{ui}]"),
                            format!("{u:?} is not an http://host:port URL"),
                        ),
                    }
                }
            }
            if let Some(d) = &rule.direct {
                if http::StatusCode::from_u16(d.status).is_err() {
                    err(
                        &mut errors,
                        format!("{at}.direct.status"),
                        format!("{} is not an HTTP status", d.status),
                    );
                }
            }
            let prefix_matched = rule
                .matches
                .path
                .as_ref()
                .is_some_and(|p| p.prefix.is_some());
            let path_rewrite = |errors: &mut Vec<ConfigError>, at: String, p: &PathRewrite| match (
                &p.full, &p.prefix,
            ) {
                (Some(_), None) => {}
                (None, Some(_)) if prefix_matched => {}
                (None, Some(_)) => err(
                    errors,
                    at,
                    "a prefix replacement needs a `match.path.prefix` condition to replace".into(),
                ),
                _ => err(errors, at, "give exactly one of full or prefix".into()),
            };
            if let Some(r) = &rule.redirect {
                if !(300..400).contains(&r.status) {
                    err(
                        &mut errors,
                        format!("{at}.redirect.status"),
                        "a redirect status is 3xx".into(),
                    );
                }
                let computed = r.scheme.is_some()
                    || r.hostname.is_some()
                    || r.port.is_some()
                    || r.path.is_some();
                match (&r.location, computed) {
                    (Some(l), false) => {
                        if http::HeaderValue::from_str(l).is_err() {
                            err(
                                &mut errors,
                                format!("{at}.redirect.location"),
                                "not a valid header value".into(),
                            );
                        }
                    }
                    (None, true) => {}
                    _ => err(
                        &mut errors,
                        format!("{at}.redirect"),
                        "give either a fixed location or any of scheme, hostname, port, path"
                            .into(),
                    ),
                }
                if let Some(sc) = &r.scheme {
                    if sc != "http" && sc != "https" {
                        err(
                            &mut errors,
                            format!("{at}.redirect.scheme"),
                            "http or https".into(),
                        );
                    }
                }
                if let Some(p) = &r.path {
                    path_rewrite(&mut errors, format!("{at}.redirect.path"), p);
                }
            }
            if let Some(p) = rule
                .forward
                .as_ref()
                .and_then(|f| f.rewrite.as_ref())
                .and_then(|r| r.path.as_ref())
            {
                path_rewrite(&mut errors, format!("{at}.forward.rewrite.path"), p);
            }
            for (which, edits) in [
                ("requestHeaders", &rule.request_headers),
                ("responseHeaders", &rule.response_headers),
            ] {
                let names = edits
                    .set
                    .iter()
                    .chain(&edits.add)
                    .map(|(k, v)| (k, Some(v)))
                    .chain(edits.remove.iter().map(|k| (k, None)));
                for (k, v) in names {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        err(
                            &mut errors,
                            format!("{at}.{which}"),
                            format!("{k:?} is not a header name"),
                        );
                    }
                    if v.is_some_and(|v| http::HeaderValue::from_str(v).is_err()) {
                        err(
                            &mut errors,
                            format!("{at}.{which}"),
                            format!("the value of {k:?} is not a valid header value"),
                        );
                    }
                }
            }
            for (qi, q) in rule.matches.query.iter().enumerate() {
                if let Some(re) = &q.regex {
                    if let Err(e) = regex::Regex::new(&format!("^(?:{re})$")) {
                        err(
                            &mut errors,
                            format!("{at}.match.query[{qi}].regex"),
                            e.to_string(),
                        );
                    }
                }
            }
            if let Some(pm) = &rule.matches.path {
                let kinds = [&pm.exact, &pm.prefix, &pm.regex]
                    .iter()
                    .filter(|k| k.is_some())
                    .count();
                if kinds != 1 {
                    err(
                        &mut errors,
                        format!("{at}.match.path"),
                        "give exactly one of exact, prefix or regex".into(),
                    );
                }
                if let Some(re) = &pm.regex {
                    if let Err(e) = regex::Regex::new(&format!("^(?:{re})$")) {
                        err(&mut errors, format!("{at}.match.path.regex"), e.to_string());
                    }
                }
                for p in [&pm.exact, &pm.prefix].into_iter().flatten() {
                    if !p.starts_with('/') {
                        err(
                            &mut errors,
                            format!("{at}.match.path"),
                            "a path starts with /".into(),
                        );
                    }
                }
            }
            for (hi, h) in rule.matches.headers.iter().enumerate() {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    err(
                        &mut errors,
                        format!("{at}.match.headers[{hi}].name"),
                        "not a header name".into(),
                    );
                }
                if let Some(re) = &h.regex {
                    if let Err(e) = regex::Regex::new(&format!("^(?:{re})$")) {
                        err(
                            &mut errors,
                            format!("{at}.match.headers[{hi}].regex"),
                            e.to_string(),
                        );
                    }
                }
            }
        }
    }
    for (vi, vs) in config.vservices.iter().enumerate() {
        lints.extend(preflight_ambiguity(vi, vs));
    }
    let loaded = errors.is_empty().then(|| Loaded {
        config,
        policies,
        lints: lints.clone(),
    });
    Report {
        errors,
        lints,
        policy_tests,
        loaded,
    }
}

/// `L-PREFLIGHT-AMBIGUOUS` (R17): a preflight cannot carry header *values*,
/// so a rule with a header value or regex condition "could match" every
/// preflight for its host, path, methods and query. A later rule with the
/// same host, path, method and query conditions but another policy then
/// never answers preflights: the earlier rule's policy does.
fn preflight_ambiguity(vi: usize, vs: &VService) -> Vec<ConfigLint> {
    let mut out = Vec::new();
    for (j, later) in vs.rules.iter().enumerate() {
        let shadowed_by = vs.rules[..j].iter().position(|earlier| {
            earlier.cors != later.cors
                && earlier
                    .matches
                    .headers
                    .iter()
                    .any(|h| h.value.is_some() || h.regex.is_some())
                && earlier.matches.hosts == later.matches.hosts
                && earlier.matches.path == later.matches.path
                && earlier.matches.methods == later.matches.methods
                && earlier.matches.query == later.matches.query
        });
        if let Some(i) = shadowed_by {
            let name = |r: &Rule| r.cors.clone().unwrap_or_else(|| "(inherited)".into());
            out.push(ConfigLint {
                path: format!("vservices[{vi}].rules[{j}]"),
                location: None,
                lint: Lint {
                    id: corsgate_policy::LintId::PreflightAmbiguous,
                    severity: corsgate_policy::Severity::Warn,
                    at: corsgate_policy::FieldPath {
                        field: "rules",
                        index: Some(j),
                    },
                    message: format!(
                        "preflights for this rule's requests are matched by rules[{i}] first \
                         (its header value conditions cannot be checked on a preflight), so \
                         policy {:?} answers them instead of {:?}",
                        name(&vs.rules[i]),
                        name(later)
                    ),
                    fix: "distinguish the rules by path, method or a header-presence condition, \
                          or give them the same policy"
                        .into(),
                },
            });
        }
    }
    out
}
