//! One applied configuration: what every listener serves until the next
//! reload swaps it whole. The runtime builds and swaps it; connections and
//! the pipeline only read it.

use crate::router::CompiledVService;
use crate::upstream::UpstreamClient;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Upstream clients by (connect timeout, HTTP/2, connections kept per
/// upstream). Looked up on every forwarded request, so hashed with
/// foldhash rather than SipHash.
pub(crate) type Clients = HashMap<ClientKey, Arc<UpstreamClient>, foldhash::fast::RandomState>;

/// What distinguishes one upstream client from another: connect timeout,
/// HTTP/2, `maxIdleConnections`.
pub(crate) type ClientKey = (Duration, bool, usize);

/// What one listener serves in one configuration generation.
pub(crate) struct Slot {
    pub(crate) vservice: CompiledVService,
    pub(crate) acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) stats: crate::metrics::VServiceMetrics,
}

/// One applied configuration, swapped whole on reload. A request loads the
/// generation once when it arrives and uses it until its response head is
/// ready, so it never mixes two configurations; requests in flight during a
/// reload finish on the generation they started with.
pub(crate) struct Generation {
    /// Indexed by listener slot; `None` for listeners being retired.
    pub(crate) slots: Vec<Option<Slot>>,
    /// Upstream clients by (connect timeout, HTTP/2), shared by every
    /// vService and carried over between generations so that reloads keep
    /// the pooled connections.
    pub(crate) clients: Clients,
    /// A candidate configuration evaluated beside this one (shared by
    /// every generation: installing one does not reload).
    pub(crate) shadow: crate::shadow::ShadowHandle,
}

pub(crate) type State = Arc<ArcSwap<Generation>>;
