//! Prometheus metrics (R30), rendered in the text format by
//! `prometheus-client`.
//!
//! The per-request path touches only pre-created counters: when a
//! configuration is applied, every (vService, rule, status class) and
//! (policy, decision, reason) counter is looked up once and kept beside the
//! compiled vService, so a request increments atomics and takes no lock and
//! builds no label. Counters live in one registry for the life of the
//! process, so they keep counting across reloads. The one exception is the
//! refused-origin counter, which needs the origin as a label: it is only
//! touched for refused requests and capped at [`REFUSED_ORIGINS_CAP`]
//! distinct origins (the rest count as `other`).

use crate::router::CompiledVService;
use corsgate_policy::{Policy, Refusal};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Distinct refused origins tracked by name; the rest count as `other`.
pub const REFUSED_ORIGINS_CAP: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    vservice: String,
    rule: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    decision: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VServiceLabels {
    vservice: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    vservice: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    refused_origins: Family<OriginLabels, Counter>,
    /// The refused-origin counters already created, by origin bytes (the
    /// overflow `other` under the empty key, which no origin can be), so
    /// that counting a refusal neither allocates nor hashes labels.
    refused_seen: Mutex<HashMap<Box<[u8]>, Counter, foldhash::fast::RandomState>>,
    upstream: Family<VServiceLabels, Histogram, fn() -> Histogram>,
    config_version: Gauge,
    reloads: Family<ResultLabels, Counter>,
    client_errors: Family<ReasonLabels, Counter>,
    accept_errors: Family<VServiceLabels, Counter>,
    connections_refused: Family<VServiceLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Statuses counted by their own code; any other counts by class (`4xx`).
const CODES: [u16; 25] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 409, 413, 429,
    431, 500, 501, 502, 503, 504,
];

/// A rule's request counters by status: created on first use (one label
/// set built once per status), then a plain atomic increment.
#[derive(Debug)]
struct StatusCounters {
    family: Family<RequestLabels, Counter>,
    vservice: Arc<str>,
    rule: Arc<str>,
    slots: Box<[std::sync::OnceLock<Counter>]>,
}

impl StatusCounters {
    fn new(m: &Metrics, vservice: &str, rule: &str) -> Self {
        StatusCounters {
            family: m.requests.clone(),
            vservice: vservice.into(),
            rule: rule.into(),
            slots: (0..CODES.len() + CLASSES.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }
    fn inc(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let i = CODES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(CODES.len() + class);
        self.slots[i]
            .get_or_init(|| {
                let label = match CODES.get(i) {
                    Some(code) => code.to_string(),
                    None => CLASSES[class].to_owned(),
                };
                self.family
                    .get_or_create(&RequestLabels {
                        vservice: self.vservice.to_string(),
                        rule: self.rule.to_string(),
                        status: label,
                    })
                    .clone()
            })
            .inc();
    }
}

/// A policy's decision counters.
#[derive(Debug)]
struct DecisionCounters {
    allowed: Counter,
    preflight_allowed: Counter,
    refused: [Counter; Refusal::LABELS.len()],
    preflight_refused: [Counter; Refusal::LABELS.len()],
    preflight_blocked: [Counter; Refusal::LABELS.len()],
}

impl DecisionCounters {
    fn new(m: &Metrics, policy: &str) -> Self {
        let c = |decision: &str, reason: &str| {
            m.decisions
                .get_or_create(&DecisionLabels {
                    policy: policy.to_owned(),
                    decision: decision.to_owned(),
                    reason: reason.to_owned(),
                })
                .clone()
        };
        DecisionCounters {
            allowed: c("allowed", ""),
            preflight_allowed: c("preflight_allowed", ""),
            refused: Refusal::LABELS.map(|r| c("refused", r)),
            preflight_refused: Refusal::LABELS.map(|r| c("preflight_refused", r)),
            preflight_blocked: Refusal::LABELS.map(|r| c("preflight_blocked", r)),
        }
    }
}

/// What a request's CORS handling came to, for counting.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// No policy, not a CORS request, or shadow mode.
    Uncounted,
    /// An actual request from an allowed origin.
    Allowed,
    /// An actual request refused.
    Refused(Refusal),
    /// A preflight answered and allowed.
    PreflightAllowed,
    /// A preflight answered and refused.
    PreflightRefused(Refusal),
    /// A preflight answered with the policy's headers that the browser
    /// will still refuse (`preflightValidation: browser`), and why.
    PreflightBlocked(Refusal),
}

/// The counters of one compiled vService.
#[derive(Debug)]
pub struct VServiceMetrics {
    metrics: Arc<Metrics>,
    rules: Vec<StatusCounters>,
    no_rule: StatusCounters,
    /// By the policy's address; looked up on every CORS request, so a
    /// fast hash (the keys come from configuration, not from requests).
    policies: foldhash::HashMap<usize, DecisionCounters>,
    upstream: Histogram,
    /// By [`BadRequest::index`](crate::client_error::BadRequest).
    client_errors: Vec<Counter>,
    accept_errors: Counter,
    connections_refused: Counter,
}

impl VServiceMetrics {
    /// Count one finished request.
    pub fn record(
        &self,
        rule: Option<usize>,
        status: u16,
        policy: Option<&Arc<Policy>>,
        outcome: Outcome,
        origin: Option<&[u8]>,
        upstream: Option<Duration>,
    ) {
        match rule.and_then(|i| self.rules.get(i)) {
            Some(c) => c.inc(status),
            None => self.no_rule.inc(status),
        }
        if let Some(d) = upstream {
            self.upstream.observe(d.as_secs_f64());
        }
        let Some(counters) = policy.and_then(|p| self.policies.get(&(Arc::as_ptr(p) as usize)))
        else {
            return;
        };
        match outcome {
            Outcome::Uncounted => {}
            Outcome::Allowed => {
                counters.allowed.inc();
            }
            Outcome::PreflightAllowed => {
                counters.preflight_allowed.inc();
            }
            Outcome::Refused(r) => {
                counters.refused[r.index()].inc();
                self.metrics.refused_origin(origin);
            }
            Outcome::PreflightRefused(r) => {
                counters.preflight_refused[r.index()].inc();
                self.metrics.refused_origin(origin);
            }
            Outcome::PreflightBlocked(r) => {
                counters.preflight_blocked[r.index()].inc();
            }
        }
    }

    /// Count a request refused as a client error before routing.
    pub(crate) fn client_error(&self, bad: crate::client_error::BadRequest) {
        self.client_errors[bad.index()].inc();
    }

    /// Count a failed `accept`.
    pub(crate) fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Count a connection closed at once because the listener was full.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }
}

impl Metrics {
    /// A fresh registry with every metric family registered.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("corsgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by vService, rule (`-` when none matched) and status (the code for common statuses, else the class)",
            requests.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "cors_decisions",
            "CORS decisions by policy, decision and refusal reason (R30)",
            decisions.clone(),
        );
        let refused_origins = Family::<OriginLabels, Counter>::default();
        registry.register(
            "cors_refused_origins",
            "Refused requests by origin (at most 100 distinct origins; the rest are `other`)",
            refused_origins.clone(),
        );
        let upstream = Family::<VServiceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "upstream_response_seconds",
            "Time from forwarding to the upstream's response headers",
            upstream.clone(),
        );
        let config_version = Gauge::default();
        registry.register(
            "config_version",
            "The configuration version in force (0: not from the store)",
            config_version.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        let client_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "client_errors",
            "Requests refused before routing, by vService and reason (bad path, host, framing or size)",
            client_errors.clone(),
        );
        let accept_errors = Family::<VServiceLabels, Counter>::default();
        registry.register(
            "accept_errors",
            "Failed accepts (out of file descriptors, …), by vService; the listener backs off",
            accept_errors.clone(),
        );
        let connections_refused = Family::<VServiceLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed on accept because the listener had limits.maxConnections open",
            connections_refused.clone(),
        );
        Arc::new(Metrics {
            registry,
            client_errors,
            accept_errors,
            connections_refused,
            requests,
            decisions,
            refused_origins,
            refused_seen: Mutex::default(),
            upstream,
            config_version,
            reloads,
        })
    }

    fn refused_origin(&self, origin: Option<&[u8]>) {
        let Some(o) = origin else { return };
        let mut seen = self.refused_seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = seen.get(o) {
            counter.inc();
            return;
        }
        // A new origin gets its own series until the cap; later ones count
        // as `other` (the empty key).
        let origins = seen.len() - usize::from(seen.contains_key(&[][..]));
        let (key, label) = if origins < REFUSED_ORIGINS_CAP && !o.is_empty() {
            (o, String::from_utf8_lossy(o).into_owned())
        } else {
            (&[][..], "other".to_owned())
        };
        let counter = seen
            .entry(key.into())
            .or_insert_with(|| {
                self.refused_origins
                    .get_or_create(&OriginLabels { origin: label })
                    .clone()
            })
            .clone();
        counter.inc();
    }

    /// The counters for a compiled vService (looked up once per apply).
    pub fn for_vservice(
        self: &Arc<Self>,
        vs: &CompiledVService,
        policies: &BTreeMap<String, Arc<Policy>>,
    ) -> VServiceMetrics {
        VServiceMetrics {
            metrics: self.clone(),
            rules: vs
                .rules
                .iter()
                .map(|r| StatusCounters::new(self, &vs.name, &r.name))
                .collect(),
            no_rule: StatusCounters::new(self, &vs.name, "-"),
            policies: policies
                .iter()
                .map(|(name, p)| (Arc::as_ptr(p) as usize, DecisionCounters::new(self, name)))
                .collect(),
            upstream: self
                .upstream
                .get_or_create(&VServiceLabels {
                    vservice: vs.name.clone(),
                })
                .clone(),
            client_errors: crate::client_error::BadRequest::ALL
                .iter()
                .map(|b| {
                    self.client_errors
                        .get_or_create(&ReasonLabels {
                            vservice: vs.name.clone(),
                            reason: b.label().to_owned(),
                        })
                        .clone()
                })
                .collect(),
            accept_errors: self
                .accept_errors
                .get_or_create(&VServiceLabels {
                    vservice: vs.name.clone(),
                })
                .clone(),
            connections_refused: self
                .connections_refused
                .get_or_create(&VServiceLabels {
                    vservice: vs.name.clone(),
                })
                .clone(),
        }
    }

    /// Count a reload.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Set the configuration version in force.
    pub fn set_config_version(&self, v: i64) {
        self.config_version.set(v);
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refused origin gets its own series up to the cap; every later
    /// new origin counts as `other`; repeats keep counting on their series.
    #[test]
    fn refused_origins_are_capped_into_other() {
        let m = Metrics::new();
        let origins: Vec<String> = (0..REFUSED_ORIGINS_CAP + 5)
            .map(|i| format!("https://o{i}.example"))
            .collect();
        for o in &origins {
            m.refused_origin(Some(o.as_bytes()));
        }
        // Repeats: one that has a series, one that went to `other`.
        m.refused_origin(Some(origins[0].as_bytes()));
        m.refused_origin(Some(origins[REFUSED_ORIGINS_CAP + 1].as_bytes()));
        let text = m.render();
        let series = |label: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("corsgate_cors_refused_origins_total{")
                        && l.contains(&format!("origin=\"{label}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(series("https://o0.example").as_deref(), Some("2"), "{text}");
        let last_own = format!("https://o{}.example", REFUSED_ORIGINS_CAP - 1);
        assert_eq!(series(&last_own).as_deref(), Some("1"), "{text}");
        let first_over = format!("https://o{}.example", REFUSED_ORIGINS_CAP);
        assert_eq!(series(&first_over), None, "{text}");
        assert_eq!(series("other").as_deref(), Some("6"), "{text}");
        let count = text
            .lines()
            .filter(|l| l.starts_with("corsgate_cors_refused_origins_total{"))
            .count();
        assert_eq!(count, REFUSED_ORIGINS_CAP + 1, "{text}");
    }
}
