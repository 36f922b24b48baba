//! The route compiler: the loaded configuration's vServices, bindings and
//! rules, compiled for the router, or every refusal at once.
//!
//! This is the only place a rule's text becomes a matcher. `corsgate
//! check`, start-up, reload, the admin store's apply path, shadow rollout,
//! `explain` and the router all use it, so what `check` accepts is exactly
//! what the gateway serves. Nothing falls back: a value the router could
//! not use as written (a method list in one string, a header name with a
//! space, a path that cannot be sent) is refused with its location, never
//! dropped, because a dropped condition widens what a rule matches.

use crate::error::{Errors, RouteErrorId as E};
use crate::host::HostPattern;
use crate::index::RuleIndex;
use crate::path::{not_a_request_path, not_normal};
use crate::rule::CompiledRule;
use crate::vservice::CompiledVService;
use corsgate_config::{ConfigErrors, Loaded, VService};
use corsgate_policy::Policy;
use std::collections::HashSet;
use std::sync::Arc;

/// The longest header or idle timeout: a day is far beyond any client's
/// patience; a larger value is a typo, and would not fit the timer.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// Compile every vService of `loaded`, or refuse with every error found,
/// each located in the file (native or manifest) it was written in.
pub fn compile(loaded: &Loaded) -> Result<Vec<CompiledVService>, ConfigErrors> {
    let mut errors = Errors::new(&loaded.sources);
    let vservices = compile_all(loaded, &mut errors);
    if errors.out.is_empty() {
        Ok(vservices)
    } else {
        Err(ConfigErrors(errors.out))
    }
}

/// Policy references, resolved against the compiled policies.
pub(crate) struct Bindings<'a> {
    loaded: &'a Loaded,
}

impl Bindings<'_> {
    /// The policy `name` bound at `at`, or a refusal: a binding that
    /// resolved to nothing would leave its scope without CORS.
    pub(crate) fn get(
        &self,
        errors: &mut Errors<'_>,
        at: String,
        name: &str,
    ) -> Option<Arc<Policy>> {
        if let Some(p) = self.loaded.policies.get(name) {
            return Some(p.clone());
        }
        if self.loaded.config.policies.contains_key(name) {
            errors.push(
                at,
                E::RefusedPolicy,
                format!("policy {name:?} is refused (its errors are listed under policies.{name})"),
            );
        } else {
            errors.push(
                at,
                E::UnknownPolicy,
                format!("no policy named {name:?} under `policies`"),
            );
        }
        None
    }
}

fn compile_all(loaded: &Loaded, errors: &mut Errors<'_>) -> Vec<CompiledVService> {
    let config = &loaded.config;
    let b = Bindings { loaded };
    let global = config
        .cors
        .as_deref()
        .and_then(|n| b.get(errors, "cors".into(), n));
    if config.vservices.is_empty() {
        errors.push(
            "vservices",
            E::NoVServices,
            "at least one vService is needed",
        );
    }
    let mut names = HashSet::new();
    let mut listens = HashSet::new();
    let mut out = Vec::with_capacity(config.vservices.len());
    for (vi, vs) in config.vservices.iter().enumerate() {
        let at = format!("vservices[{vi}]");
        if !names.insert(vs.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                E::DuplicateVService,
                format!("duplicate vService name {:?}", vs.name),
            );
        }
        // Port 0 asks the system for a free port: never a clash.
        if !listens.insert(vs.listen.as_str()) && !vs.listen.ends_with(":0") {
            errors.push(
                format!("{at}.listen"),
                E::DuplicateListen,
                format!("{} is used by another vService", vs.listen),
            );
        }
        out.push(compile_vservice(&at, vs, &b, global.clone(), errors));
    }
    out
}

fn compile_vservice(
    at: &str,
    vs: &VService,
    b: &Bindings<'_>,
    global: Option<Arc<Policy>>,
    errors: &mut Errors<'_>,
) -> CompiledVService {
    if vs.listen.parse::<std::net::SocketAddr>().is_err() {
        errors.push(
            format!("{at}.listen"),
            E::InvalidListen,
            format!("{:?} is not an address like 127.0.0.1:8080", vs.listen),
        );
    }
    for (field, ms) in [
        ("headerTimeoutMs", vs.limits.header_timeout_ms),
        ("idleTimeoutMs", vs.limits.idle_timeout_ms),
    ] {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            errors.push(
                format!("{at}.limits.{field}"),
                E::InvalidTimeout,
                format!("{ms} is not a timeout between 1 ms and one day ({MAX_TIMEOUT_MS})"),
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
        // Zero would refuse every connection (or stream); the upper bounds
        // are far past what one process serves.
        if n == 0 || n > max {
            errors.push(
                format!("{at}.limits.{field}"),
                E::InvalidLimit,
                format!("{n} is not between 1 and {max}"),
            );
        }
    }
    let hostnames = hosts(errors, &format!("{at}.hostnames"), &vs.hostnames);
    let cors = vs
        .cors
        .as_deref()
        .and_then(|n| b.get(errors, format!("{at}.cors"), n));
    let mut host_cors = Vec::new();
    for (host, p) in &vs.host_cors {
        let hat = format!("{at}.hostCors.{host}");
        let pattern = host_pattern(errors, &hat, host);
        if let (Some(h), Some(p)) = (pattern, b.get(errors, hat, p)) {
            host_cors.push((h, p));
        }
    }
    let mut path_cors = Vec::new();
    for (pi, pc) in vs.path_cors.iter().enumerate() {
        if let Some(why) = not_a_request_path(&pc.prefix) {
            errors.push(format!("{at}.pathCors[{pi}].prefix"), E::InvalidPath, why);
        } else if let Some(why) = not_normal(&pc.prefix) {
            errors.push(format!("{at}.pathCors[{pi}].prefix"), E::InvalidPath, why);
        }
        if let Some(p) = b.get(errors, format!("{at}.pathCors[{pi}].cors"), &pc.cors) {
            path_cors.push((pc.prefix.clone(), p));
        }
    }
    let rules: Vec<CompiledRule> = vs
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            crate::compile_rule::compile_rule(&format!("{at}.rules[{i}]"), i, r, b, errors)
        })
        .collect();
    CompiledVService {
        index: RuleIndex::build(&rules),
        rules,
        name: vs.name.clone(),
        listen: vs.listen.clone(),
        hostnames,
        cors_is_global: vs.cors.is_none() && global.is_some(),
        cors: cors.or(global),
        host_cors,
        path_cors,
        limits: vs.limits.clone(),
        paths: vs.paths.clone(),
        tls: vs.tls.clone(),
    }
}

/// A host pattern, or a refusal at `at`.
pub(crate) fn host_pattern(errors: &mut Errors<'_>, at: &str, h: &str) -> Option<HostPattern> {
    let p = HostPattern::parse(h);
    if p.is_none() {
        errors.push(
            at,
            E::InvalidHost,
            format!("{h:?} is not a host name or `*.` and a host name (no port, path or spaces)"),
        );
    }
    p
}

/// The host patterns of the list at `at`.
pub(crate) fn hosts(errors: &mut Errors<'_>, at: &str, list: &[String]) -> Vec<HostPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, h)| host_pattern(errors, &format!("{at}[{i}]"), h))
        .collect()
}
