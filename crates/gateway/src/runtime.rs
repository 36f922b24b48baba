//! The running gateway: the applied configuration generation, swapped whole
//! on reload, and the listeners that serve it.
//!
//! A reload compiles the new configuration, binds new listeners first (so
//! a failure leaves everything as it was), then swaps one pointer: every
//! listener serves the new generation from its next request on, and
//! requests in flight finish on the one they started with. Accepting and
//! serving connections is `accept`'s job; what happens to each request is
//! the `pipeline`'s.

use crate::generation::{Clients, Generation, Slot, State};
use crate::router::{self, Action, CompiledVService};
use crate::upstream;
use arc_swap::ArcSwap;
use corsgate_config::Loaded;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A bound listener.
struct Listener {
    slot: usize,
    listen: String,
    name: String,
    addr: SocketAddr,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// Why a reload was refused. The running configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The route compiler refused the configuration.
    #[error("{0}")]
    Routes(corsgate_config::ConfigErrors),
    /// A new listener could not be bound.
    #[error("vService {vservice}: cannot listen on {listen}: {source}")]
    Bind {
        /// vService.
        vservice: String,
        /// Address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error("vService {vservice}: {source}")]
    Tls {
        /// vService.
        vservice: String,
        /// Why.
        source: crate::tls::TlsError,
    },
}

impl From<ReloadError> for std::io::Error {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Bind { source, .. } => source,
            e @ (ReloadError::Tls { .. } | ReloadError::Routes(_)) => {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
            }
        }
    }
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// vServices on listeners that were already bound (served by the new
    /// configuration from the next request on).
    pub kept: Vec<String>,
    /// vServices on newly bound listeners.
    pub added: Vec<String>,
    /// vServices whose listeners were closed (in-flight requests drained).
    pub removed: Vec<String>,
}

/// A running gateway: its bound addresses, and handles to reload or stop it.
pub struct Running {
    /// `(vService name, bound address)` in configuration order.
    pub addrs: Vec<(String, SocketAddr)>,
    state: State,
    listeners: Vec<Listener>,
    next_slot: usize,
    metrics: Arc<crate::metrics::Metrics>,
    shadow: crate::shadow::ShadowHandle,
}

impl Running {
    /// The bound address of a vService by name.
    pub fn addr(&self, vservice: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(n, _)| n == vservice)
            .map(|(_, a)| *a)
    }

    /// Apply a new, already validated configuration atomically.
    ///
    /// Listeners whose `listen` address is unchanged stay bound (no
    /// connection is dropped); new addresses are bound *before* anything is
    /// swapped, so a failure (address in use, unreadable certificate)
    /// leaves the running configuration untouched. Then every listener
    /// switches to the new generation with one atomic pointer swap, and
    /// listeners no longer configured stop accepting and drain.
    pub async fn reload(&mut self, loaded: &Loaded) -> Result<ReloadReport, ReloadError> {
        let result = self.apply(loaded).await;
        self.metrics.reloaded(result.is_ok());
        result
    }

    /// Install, read and remove a shadow candidate.
    pub fn shadow(&self) -> crate::shadow::ShadowHandle {
        self.shadow.clone()
    }

    /// The process's metrics (Prometheus text with `render`).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    async fn apply(&mut self, loaded: &Loaded) -> Result<ReloadReport, ReloadError> {
        let compiled = router::compile(loaded).map_err(ReloadError::Routes)?;
        let old = self.state.load_full();
        let mut report = ReloadReport::default();
        let mut slots: Vec<Option<Slot>> = Vec::new();
        let mut fresh: Vec<(usize, TcpListener, String, String)> = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut next_slot = self.next_slot;
        for vs in compiled {
            let acceptor = tls_acceptor(&vs).map_err(|source| ReloadError::Tls {
                vservice: vs.name.clone(),
                source,
            })?;
            let slot = match self.listeners.iter().find(|l| l.listen == vs.listen) {
                Some(l) => {
                    keep.insert(l.slot);
                    report.kept.push(vs.name.clone());
                    l.slot
                }
                None => {
                    let listener = bind(&vs.listen).await.map_err(|source| ReloadError::Bind {
                        vservice: vs.name.clone(),
                        listen: vs.listen.clone(),
                        source,
                    })?;
                    let slot = next_slot;
                    next_slot += 1;
                    report.added.push(vs.name.clone());
                    fresh.push((slot, listener, vs.name.clone(), vs.listen.clone()));
                    slot
                }
            };
            if slots.len() <= slot {
                slots.resize_with(slot + 1, || None);
            }
            let stats = self.metrics.for_vservice(&vs, &loaded.policies);
            slots[slot] = Some(Slot {
                vservice: vs,
                acceptor,
                stats,
            });
        }
        let clients = clients_for(&slots, Some(&old.clients));
        // Nothing can fail from here on.
        self.next_slot = next_slot;
        self.state.store(Arc::new(Generation {
            slots,
            clients,
            shadow: self.shadow.clone(),
        }));
        let (stay, go): (Vec<_>, Vec<_>) = std::mem::take(&mut self.listeners)
            .into_iter()
            .partition(|l| keep.contains(&l.slot));
        self.listeners = stay;
        for l in go {
            report.removed.push(l.name.clone());
            let _ = l.stop.send(Some(Duration::from_secs(30)));
            // The listener drains on its own task; nothing waits for it here.
            drop(l.task);
        }
        for (slot, listener, name, listen) in fresh {
            self.spawn_listener(slot, listener, name, listen);
        }
        // Names of kept listeners follow the new configuration.
        let current = self.state.load();
        for l in &mut self.listeners {
            if let Some(Some(slot)) = current.slots.get(l.slot) {
                l.name = slot.vservice.name.clone();
            }
        }
        self.refresh_addrs();
        Ok(report)
    }

    fn spawn_listener(&mut self, slot: usize, listener: TcpListener, name: String, listen: String) {
        let addr = listener.local_addr().unwrap_or_else(|_| {
            // A bound TCP listener always has a local address.
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(crate::accept::accept_loop(
            listener,
            slot,
            self.state.clone(),
            stop_rx,
        ));
        self.listeners.push(Listener {
            slot,
            listen,
            name,
            addr,
            stop,
            task,
        });
    }

    fn refresh_addrs(&mut self) {
        self.listeners.sort_by_key(|l| l.slot);
        self.addrs = self
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.addr))
            .collect();
    }

    /// Stop accepting connections at once, let in-flight requests finish,
    /// and close idle connections; connections still busy after `drain`
    /// are dropped.
    pub async fn shutdown_within(self, drain: Duration) {
        for l in &self.listeners {
            let _ = l.stop.send(Some(drain));
        }
        for l in self.listeners {
            let _ = l.task.await;
        }
    }

    /// [`Running::shutdown_within`] with a 30 s drain deadline.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(30)).await;
    }

    /// Wait until every listener has stopped (they run until `shutdown`).
    pub async fn wait(self) {
        for l in self.listeners {
            let _ = l.task.await;
        }
    }
}

fn tls_acceptor(
    vs: &CompiledVService,
) -> Result<Option<tokio_rustls::TlsAcceptor>, crate::tls::TlsError> {
    vs.tls.as_ref().map(crate::tls::acceptor).transpose()
}

/// The upstream clients a generation needs, reusing the previous
/// generation's (and so their pooled connections) where the settings match.
fn clients_for(slots: &[Option<Slot>], previous: Option<&Clients>) -> Clients {
    let mut clients = Clients::default();
    for slot in slots.iter().flatten() {
        for rule in &slot.vservice.rules {
            if let Action::Forward {
                connect_timeout,
                http2,
                max_idle,
                ..
            } = &rule.action
            {
                let key = (*connect_timeout, *http2, *max_idle);
                clients.entry(key).or_insert_with(|| {
                    previous
                        .and_then(|p| p.get(&key).cloned())
                        .unwrap_or_else(|| {
                            Arc::new(upstream::client(*connect_timeout, *http2, *max_idle))
                        })
                });
            }
        }
    }
    clients
}

/// Bind every vService's listener and start serving.
pub async fn start(loaded: &Loaded) -> std::io::Result<Running> {
    let mut running = Running {
        addrs: Vec::new(),
        state: Arc::new(ArcSwap::from_pointee(Generation {
            slots: Vec::new(),
            clients: Clients::default(),
            shadow: crate::shadow::ShadowHandle::default(),
        })),
        listeners: Vec::new(),
        next_slot: 0,
        metrics: crate::metrics::Metrics::new(),
        shadow: crate::shadow::ShadowHandle::default(),
    };
    running.reload(loaded).await?;
    Ok(running)
}

/// The accept queue a listener asks the kernel for; Linux caps it at
/// `net.core.somaxconn` (4096 by default since 5.4). std's and tokio's
/// `bind` ask for 128: a burst of new connections then overflows the
/// queue and each connect that overflows waits for the SYN retransmission
/// (1 s), which nginx (511 or more) does not suffer.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Bind `listen` (`host:port`) with [`LISTEN_BACKLOG`] and `SO_REUSEADDR`
/// (as std's `bind` sets it on Unix: a restart does not wait for
/// connections in TIME_WAIT).
pub(crate) async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(listen).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{listen}: no address"),
        )
    }))
}
