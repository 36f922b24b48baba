//! Fleet status on the etcd store: what this instance serves, kept in one
//! place that the follower, the admin API's applies and the registration
//! task share; its record in etcd under a lease
//! ([`corsgate_etcd::nodes`]); `GET /fleet` and the store-link metrics.

use corsgate_admin::{FleetSource, StoreLink};
use corsgate_etcd::nodes::{classify, Failure, NodeRecord, Registration};
use corsgate_etcd::EtcdStore;
use corsgate_store::now;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What this instance serves and how its link to the store is.
pub struct Status {
    record: Mutex<NodeRecord>,
    link: Mutex<Link>,
    /// Woken when the record changed, so it is published at once.
    changed: Notify,
}

struct Link {
    connected: bool,
    last_reached: Option<Instant>,
}

/// Shared by everything that changes or reads the status.
pub type Shared = Arc<Status>;

impl Status {
    /// An instance named `node`, reachable at `address`, serving
    /// `applied` (id and content hash) at start.
    pub fn new(node: String, address: String, applied: Option<(i64, String)>) -> Shared {
        Arc::new(Status {
            record: Mutex::new(NodeRecord {
                node,
                address,
                corsgate: env!("CARGO_PKG_VERSION").to_owned(),
                applied: applied.as_ref().map(|a| a.0),
                applied_hash: applied.map(|a| a.1),
                failed: None,
                since: now(),
            }),
            link: Mutex::new(Link {
                connected: false,
                last_reached: None,
            }),
            changed: Notify::new(),
        })
    }

    fn update(&self, f: impl FnOnce(&mut NodeRecord)) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let before = r.clone();
        f(&mut r);
        if *r != before {
            r.since = now();
            drop(r);
            self.changed.notify_one();
        }
    }

    /// The version served now (0: none).
    pub fn applied_id(&self) -> i64 {
        self.record().applied.unwrap_or(0)
    }

    /// `id` (with `hash`) is now served; any failure is over.
    pub fn applied(&self, id: i64, hash: &str) {
        self.update(|r| {
            r.applied = Some(id);
            r.applied_hash = Some(hash.to_owned());
            r.failed = None;
        });
    }

    /// `version` could not be taken; the served one stays.
    pub fn failed(&self, version: i64, error: &str) {
        self.update(|r| {
            r.failed = Some(Failure {
                version,
                error: error.to_owned(),
            });
        });
    }

    /// A copy of the record.
    pub fn record(&self) -> NodeRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn reached(&self, ok: bool) {
        let mut l = self.link.lock().unwrap_or_else(|p| p.into_inner());
        l.connected = ok;
        if ok {
            l.last_reached = Some(Instant::now());
        }
    }

    /// The link to the store.
    pub fn link(&self) -> StoreLink {
        let l = self.link.lock().unwrap_or_else(|p| p.into_inner());
        StoreLink {
            connected: l.connected,
            since_reached: l.last_reached.map(|t| t.elapsed()),
        }
    }
}

/// Register this instance and keep its record current until the process
/// ends: the lease is kept alive three times per ttl, and a change of
/// state is written at once. Each round trip tells whether the store is
/// reachable. When `stop` turns true (shutdown) the record is withdrawn
/// at once, so the node leaves `GET /fleet` without waiting for its lease.
pub fn spawn_registration(
    store: &EtcdStore,
    status: Shared,
    ttl_secs: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut registration = Registration::new(store, ttl_secs);
    let tick = Duration::from_millis((registration.ttl() as u64 * 1000 / 3).max(500));
    tokio::spawn(async move {
        let mut logged_down = false;
        // What the store holds of this instance (None: unknown).
        let mut published: Option<NodeRecord> = None;
        loop {
            let record = status.record();
            let r = tokio::time::timeout(tick, async {
                if registration.refresh(&record).await? || published.as_ref() == Some(&record) {
                    return Ok(());
                }
                registration.publish(&record).await
            })
            .await;
            let r = match r {
                Ok(Ok(())) => {
                    published = Some(record.clone());
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", tick.as_millis())),
            };
            if r.is_err() {
                published = None;
                registration.reset();
            }
            match r {
                Ok(()) => {
                    if logged_down {
                        tracing::info!("etcd store reachable again");
                    }
                    logged_down = false;
                    status.reached(true);
                }
                Err(e) => {
                    if !logged_down {
                        tracing::warn!(error = %e, "etcd store unreachable: serving version {} until it returns", record.applied.unwrap_or(0));
                    }
                    logged_down = true;
                    status.reached(false);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = status.changed.notified() => {}
                _ = stop.changed() => {
                    let _ = tokio::time::timeout(tick, registration.withdraw()).await;
                    return;
                }
            }
        }
    })
}

/// `GET /fleet` from the etcd store.
pub struct EtcdFleet {
    /// The store (its own client).
    pub store: EtcdStore,
    /// The gateway's runtime, where the client lives.
    pub runtime: tokio::runtime::Handle,
    /// This instance.
    pub status: Shared,
}

impl FleetSource for EtcdFleet {
    fn fleet(&self) -> Result<Value, Value> {
        let me = self.status.record();
        let link = self.status.link();
        let read = self.runtime.block_on(async {
            let active = self.store.active_pointer().await?;
            let nodes = self.store.nodes().await?;
            Ok::<_, corsgate_etcd::ReadError>((active, nodes))
        });
        match read {
            Ok((active, nodes)) => {
                let a = active.as_ref().map(|(id, h)| (*id, h.as_str()));
                Ok(json!({
                    "store": "etcd",
                    "self": me.node,
                    "active": active.as_ref().map(|(id, h)| json!({ "version": id, "contentHash": h })),
                    "nodes": nodes.iter().map(|n| node_json(n, &classify(n, a))).collect::<Vec<_>>(),
                }))
            }
            Err(e) => Err(json!({
                "error": format!("the store cannot be read: {e}"),
                "store": "etcd",
                "self": me.node,
                "selfRecord": me,
                "secondsSinceStoreReached": link.since_reached.map(|d| d.as_secs()),
            })),
        }
    }

    fn link(&self) -> Option<StoreLink> {
        Some(self.status.link())
    }

    fn serving(&self) -> Option<i64> {
        self.status.record().applied
    }
}

fn node_json(n: &NodeRecord, state: &corsgate_etcd::nodes::SyncState) -> Value {
    let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
    if let (Value::Object(m), Ok(Value::Object(s))) = (&mut v, serde_json::to_value(state)) {
        for (k, val) in s {
            let k = if k == "by" { "behindBy".to_owned() } else { k };
            if k == "version" || k == "error" {
                continue;
            }
            m.insert(k, val);
        }
    }
    v
}

/// This instance's name in the fleet: `--node`, else the host name and
/// the admin listener's port (unique on one host).
pub fn default_node(admin: std::net::SocketAddr) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes a
    // NUL-terminated name into it or fails.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    let host = if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    format!("{host}:{}", admin.port())
}
