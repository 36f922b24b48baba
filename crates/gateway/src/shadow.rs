//! Shadow rollout: a candidate configuration evaluated beside the active
//! one on live traffic, changing nothing (R29).
//!
//! While a candidate is installed, each CORS request is routed and decided
//! a second time with the candidate's vService on the same listen address;
//! when the two CORS verdicts differ, the difference is counted per
//! candidate policy, origin and direction (newly refused / newly allowed),
//! with one sample request. Responses always come from the active
//! configuration. Without a candidate the cost is one atomic load.

use crate::router::{CompiledVService, RequestFacts};
use arc_swap::ArcSwapOption;
use corsgate_config::Loaded;
use corsgate_policy::{ActualOutcome, Evaluation, PreflightOutcome};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Distinct (policy, origin, change) findings kept; more are counted in
/// `dropped`.
pub const MAX_FINDINGS: usize = 1000;

#[derive(Default)]
struct Findings {
    by_key: BTreeMap<(String, String, &'static str), (u64, String)>,
    dropped: u64,
}

/// A candidate configuration being shadowed.
pub struct Shadow {
    vservices: HashMap<String, CompiledVService>,
    names: HashMap<usize, String>,
    content: String,
    comment: String,
    compared: AtomicU64,
    findings: Mutex<Findings>,
}

/// One difference between the active and the candidate configuration.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The candidate's policy (or `(none)`).
    pub policy: String,
    /// The request origin.
    pub origin: String,
    /// `newly_refused` or `newly_allowed`.
    pub change: &'static str,
    /// How many requests.
    pub count: u64,
    /// One of them (`METHOD path`).
    pub sample: String,
}

/// What the shadow has seen so far.
#[derive(Clone, Debug, Serialize)]
pub struct ShadowReport {
    /// The candidate's comment.
    pub comment: String,
    /// CORS requests compared.
    pub compared: u64,
    /// Differences.
    pub findings: Vec<Finding>,
    /// Findings not kept because of [`MAX_FINDINGS`].
    pub dropped: u64,
}

/// Whether a policy's decision lets the browser through; `None` when the
/// request is not a CORS decision at all (no policy, shadow mode, no
/// Origin).
pub(crate) fn verdict(e: &Evaluation) -> Option<bool> {
    match e {
        Evaluation::Preflight(p) => Some(matches!(p.outcome, PreflightOutcome::Allowed(_))),
        Evaluation::Actual(c) => match c.outcome {
            ActualOutcome::NotCors => None,
            ActualOutcome::Allowed(_) => Some(true),
            ActualOutcome::Refused(_) => Some(false),
        },
        Evaluation::Shadow(_) => None,
    }
}

impl Shadow {
    /// Compile a candidate, refused as the route compiler refuses it.
    pub fn new(
        loaded: &Loaded,
        content: &str,
        comment: &str,
    ) -> Result<Shadow, corsgate_config::ConfigErrors> {
        let vservices = crate::router::compile(loaded)?
            .into_iter()
            .map(|vs| (vs.listen.clone(), vs))
            .collect();
        Ok(Shadow {
            vservices,
            names: loaded
                .policies
                .iter()
                .map(|(n, p)| (Arc::as_ptr(p) as usize, n.clone()))
                .collect(),
            content: content.to_owned(),
            comment: comment.to_owned(),
            compared: AtomicU64::new(0),
            findings: Mutex::new(Findings::default()),
        })
    }

    /// The candidate's configuration text.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Decide `facts` with the candidate and record a difference from the
    /// active verdict.
    pub(crate) fn compare<H: corsgate_policy::RequestFields + ?Sized>(
        &self,
        listen: &str,
        facts: &RequestFacts<'_, H>,
        active: Option<bool>,
        origin: &[u8],
    ) {
        let Some(vs) = self.vservices.get(listen) else {
            return;
        };
        let sel = vs.select(facts);
        let candidate = sel
            .policy
            .and_then(|p| verdict(&p.evaluate_classified(facts.preflight, facts.headers)));
        self.compared.fetch_add(1, Ordering::Relaxed);
        // A missing verdict (no policy) lets no cross-origin read through.
        let (a, c) = (active.unwrap_or(false), candidate.unwrap_or(false));
        if a == c {
            return;
        }
        let change = if a { "newly_refused" } else { "newly_allowed" };
        let policy = sel
            .policy
            .and_then(|p| self.names.get(&(Arc::as_ptr(p) as usize)).cloned())
            .unwrap_or_else(|| "(none)".into());
        let origin = String::from_utf8_lossy(origin).into_owned();
        let mut f = self.findings.lock().unwrap_or_else(|p| p.into_inner());
        let len = f.by_key.len();
        match f.by_key.get_mut(&(policy.clone(), origin.clone(), change)) {
            Some(entry) => entry.0 += 1,
            None if len < MAX_FINDINGS => {
                let sample = format!("{} {}", facts.method, facts.path);
                f.by_key.insert((policy, origin, change), (1, sample));
            }
            None => f.dropped += 1,
        }
    }

    /// The report so far.
    pub fn report(&self) -> ShadowReport {
        let f = self.findings.lock().unwrap_or_else(|p| p.into_inner());
        ShadowReport {
            comment: self.comment.clone(),
            compared: self.compared.load(Ordering::Relaxed),
            findings: f
                .by_key
                .iter()
                .map(|((policy, origin, change), (count, sample))| Finding {
                    policy: policy.clone(),
                    origin: origin.clone(),
                    change,
                    count: *count,
                    sample: sample.clone(),
                })
                .collect(),
            dropped: f.dropped,
        }
    }
}

/// Install, read and remove the candidate of a running gateway.
#[derive(Clone, Default)]
pub struct ShadowHandle(pub(crate) Arc<ArcSwapOption<Shadow>>);

impl ShadowHandle {
    /// Start shadowing `candidate` (replacing any previous one).
    pub fn install(&self, candidate: Shadow) {
        self.0.store(Some(Arc::new(candidate)));
    }
    /// Stop shadowing.
    pub fn clear(&self) {
        self.0.store(None);
    }
    /// The candidate being shadowed.
    pub fn current(&self) -> Option<Arc<Shadow>> {
        self.0.load_full()
    }
}
