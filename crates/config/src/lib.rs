//! # corsgate-config
//!
//! The native configuration: named CORS policies, and vServices (a listener
//! with hostnames, CORS bindings and an ordered list of rules). Loading
//! parses YAML, rejects unknown fields, checks every reference and compiles
//! every policy with the engine, collecting *all* problems before refusing.

#![deny(missing_docs)]

mod diff;
pub mod gateway_api;
mod model;
mod spans;
mod tighten;

pub use diff::{diff, BindingChange, ConfigDiff, FieldChange, PolicyChange};
pub use gateway_api::NoteKind;
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
}

impl Report {
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
    let native_spans = if manifests_only {
        Spans::default()
    } else {
        Spans::of(text)
    };
    // A path under an imported vService, rule or policy is located in the
    // manifest it came from; anything else in the native file.
    let place = |path: &str| -> (Option<String>, Option<Location>, Option<String>) {
        let best = provenance
            .iter()
            .filter(|(p, _)| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(p, _)| p.len());
        match best {
            Some((p, src)) => {
                let m = &sources[src.manifest];
                let doc_path = format!("{}{}", src.path, &path[p.len()..]);
                let at = m.spans.get(src.doc).and_then(|s| s.locate(&doc_path));
                (
                    Some(m.file.clone()),
                    at,
                    at.and_then(|a| snippet(&m.text, a)),
                )
            }
            None => {
                let at = native_spans.locate(path);
                (
                    file.map(str::to_owned),
                    at,
                    at.and_then(|a| snippet(text, a)),
                )
            }
        }
    };
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
    if let Some(loaded) = &mut report.loaded {
        loaded.lints.clone_from(&report.lints);
    }
    if !import_errors.is_empty() {
        report.errors.splice(0..0, import_errors);
        report.loaded = None;
    }
    report.notes = notes;
    report
}

/// A manifest's text (after documentation snippets were expanded) and its
/// span index per document.
struct ManifestText {
    file: String,
    text: String,
    spans: Vec<Spans>,
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
    for (src, reason) in &imported.errors {
        let (f, at, snip) = locate(src);
        errors.push(ConfigError {
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
        for (field, ms) in [
            ("headerTimeoutMs", vs.limits.header_timeout_ms),
            ("idleTimeoutMs", vs.limits.idle_timeout_ms),
        ] {
            // A day is far beyond any client's patience; a larger value is
            // a typo, and would not fit the timer.
            if ms == 0 || ms > 86_400_000 {
                err(
                    &mut errors,
                    format!("{at}.limits.{field}"),
                    format!("{ms} is not a timeout between 1 ms and one day (86400000)"),
                );
            }
        }
        for (field, n, max) in [
            ("maxConnections", vs.limits.max_connections as u64, 1 << 24),
            (
                "http2MaxConcurrentStreams",
                u64::from(vs.limits.http2_max_concurrent_streams),
                1 << 16,
            ),
            (
                "http2MaxPendingResets",
                vs.limits.http2_max_pending_resets as u64,
                1 << 16,
            ),
        ] {
            // Zero would refuse every connection (or stream); the upper
            // bounds are far past what one process serves.
            if n == 0 || n > max {
                err(
                    &mut errors,
                    format!("{at}.limits.{field}"),
                    format!("{n} is not between 1 and {max}"),
                );
            }
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
                for (pi, p) in f.upgrades.iter().enumerate() {
                    let at = format!("{at}.forward.upgrades[{pi}]");
                    if p.eq_ignore_ascii_case("h2c") {
                        err(
                            &mut errors,
                            at,
                            "h2c is never tunnelled: an HTTP/2 connection through the gateway \
                             would carry requests that no rule sees"
                                .into(),
                        );
                    } else if !corsgate_policy::is_token(p.as_bytes()) {
                        err(
                            &mut errors,
                            at,
                            format!("{p:?} is not a protocol name (a token)"),
                        );
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
                    // Nothing replaced: the request's own URL.
                    (None, _) => {}
                    (Some(_), true) => err(
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
    let loaded = errors.is_empty().then(|| Loaded {
        config,
        policies,
        lints: lints.clone(),
    });
    Report {
        errors,
        lints,
        notes: Vec::new(),
        policy_tests,
        loaded,
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
    (errors, lints)
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
                file: None,
                location: None,
                snippet: None,
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
