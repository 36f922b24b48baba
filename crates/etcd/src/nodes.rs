//! Fleet status: every instance writes a record of itself under a lease,
//! so the fleet can be listed from any member and an instance that is
//! gone (crashed, partitioned, shut down) disappears once its lease
//! expires instead of showing as in sync for ever.
//!
//! | key | value | written |
//! |---|---|---|
//! | `P nodes/<node>` | [`NodeRecord`] | by the instance itself, under its lease, each time its state changes |
//!
//! A record says what the instance *serves*; whether that is the fleet's
//! active version is decided by the reader ([`classify`]), against the
//! active pointer read at the same time, so a listing never trusts a
//! node's own opinion of whether it is current.

use crate::{EtcdStore, ReadError};
use etcd_client::{GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use serde::{Deserialize, Serialize};

/// One instance, as it describes itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRecord {
    /// Its name in the fleet (unique; `corsgate run --node`).
    pub node: String,
    /// Where its admin API listens.
    pub address: String,
    /// The corsgate release it runs.
    pub corsgate: String,
    /// The version it serves (`None`: none yet).
    pub applied: Option<i64>,
    /// That version's content hash.
    pub applied_hash: Option<String>,
    /// A version it could not take, and why; cleared when it takes one.
    pub failed: Option<Failure>,
    /// Since when (RFC 3339) it has been in this state.
    pub since: String,
}

/// A version an instance could not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    /// The version.
    pub version: i64,
    /// Why (the load or bind error).
    pub error: String,
}

/// Where a node stands against the fleet's active version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SyncState {
    /// It serves the active version (same id and hash).
    InSync,
    /// It serves an older version and has not reported failing to take
    /// the active one: it is on its way, or cannot hear the store.
    Behind {
        /// How many versions behind the active one.
        by: i64,
    },
    /// It could not take the active version and keeps serving another.
    Failing {
        /// The version it could not take.
        version: i64,
        /// Why.
        error: String,
    },
    /// It serves a version whose hash is not the active one's under the
    /// same id, or a newer id than the active one: a store that was
    /// rewritten or restored under it. Never shown as in sync.
    Diverged,
    /// No version is active in the store yet.
    NoActiveVersion,
}

/// Classify `node` against the active version `(id, hash)`.
pub fn classify(node: &NodeRecord, active: Option<(i64, &str)>) -> SyncState {
    let Some((id, hash)) = active else {
        return SyncState::NoActiveVersion;
    };
    if let Some(f) = &node.failed {
        if f.version == id {
            return SyncState::Failing {
                version: f.version,
                error: f.error.clone(),
            };
        }
    }
    match node.applied {
        Some(a) if a == id && node.applied_hash.as_deref() == Some(hash) => SyncState::InSync,
        Some(a) if a < id => SyncState::Behind { by: id - a },
        None => SyncState::Behind { by: id },
        Some(_) => SyncState::Diverged,
    }
}

impl EtcdStore {
    /// Every registered node, ordered by name. A record that is not one
    /// corsgate writes is skipped with a warning (the listing must not
    /// fail because one key was damaged).
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, ReadError> {
        let under = self.keys().nodes();
        let resp = self
            .range(under.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| match serde_json::from_slice::<NodeRecord>(kv.value()) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "a fleet status key is not a node record; skipped");
                    None
                }
            })
            .collect())
    }

    /// The active pointer's version and hash, unverified (for status).
    pub async fn active_pointer(&self) -> Result<Option<(i64, String)>, ReadError> {
        Ok(self
            .pointer()
            .await?
            .value
            .map(|p| (p.version, p.content_hash)))
    }
}

/// One instance's registration: a lease of `ttl` seconds that it keeps
/// alive, and its record written under it.
pub struct Registration {
    client: etcd_client::Client,
    /// `P nodes/`.
    under: String,
    ttl: i64,
    lease: Option<Lease>,
}

struct Lease {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

impl Registration {
    /// A registration on `store` with leases of `ttl` seconds (at least
    /// 2, etcd's minimum).
    pub fn new(store: &EtcdStore, ttl: i64) -> Registration {
        Registration {
            client: store.client().clone(),
            under: store.keys().nodes(),
            ttl: ttl.max(2),
            lease: None,
        }
    }

    /// The lease's time to live, seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Keep the lease alive, granting a new one (and writing `record`
    /// under it) when there is none or etcd says it expired. Call it more
    /// often than the ttl (a third of it). True when a lease was granted
    /// and `record` written. An error leaves no lease held: the next call
    /// starts over.
    pub async fn refresh(&mut self, record: &NodeRecord) -> Result<bool, ReadError> {
        let r = self.try_refresh(record).await;
        if r.is_err() {
            self.lease = None;
        }
        r
    }

    async fn try_refresh(&mut self, record: &NodeRecord) -> Result<bool, ReadError> {
        if let Some(lease) = self.lease.as_mut() {
            lease.keeper.keep_alive().await?;
            let alive = lease.stream.message().await?.is_some_and(|r| r.ttl() > 0);
            if alive {
                return Ok(false);
            }
            tracing::warn!(
                lease = lease.id,
                "the fleet status lease expired; registering again"
            );
            self.lease = None;
        }
        let mut leases = self.client.lease_client();
        let granted = leases.grant(self.ttl, None).await?;
        let (keeper, stream) = leases.keep_alive(granted.id()).await?;
        self.lease = Some(Lease {
            id: granted.id(),
            keeper,
            stream,
        });
        self.publish(record).await.map(|()| true)
    }

    /// Write `record` under the lease (after a change of state). Without a
    /// lease it waits for the next [`Registration::refresh`], which writes it.
    pub async fn publish(&mut self, record: &NodeRecord) -> Result<(), ReadError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let value = serde_json::to_vec(record).expect("a node record serialises");
        let r = self
            .client
            .kv_client()
            .put(
                format!("{}{}", self.under, record.node),
                value,
                Some(PutOptions::new().with_lease(lease.id)),
            )
            .await;
        if let Err(e) = r {
            self.lease = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Forget the lease (after a call that was cut off by a timeout): the
    /// next [`Registration::refresh`] grants a new one, and the old one
    /// expires by itself.
    pub fn reset(&mut self) {
        self.lease = None;
    }

    /// Remove the record at once (a clean shutdown), instead of waiting
    /// for the lease to expire.
    pub async fn withdraw(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.client.lease_client().revoke(lease.id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(applied: Option<(i64, &str)>, failed: Option<i64>) -> NodeRecord {
        NodeRecord {
            node: "a".into(),
            address: "127.0.0.1:1".into(),
            corsgate: "0".into(),
            applied: applied.map(|a| a.0),
            applied_hash: applied.map(|a| a.1.to_owned()),
            failed: failed.map(|version| Failure {
                version,
                error: "certificate file missing".into(),
            }),
            since: "2026-12-03T00:00:00Z".into(),
        }
    }

    /// A node, the active version it is read against, the state wanted.
    type Case<'a> = (NodeRecord, Option<(i64, &'a str)>, SyncState);

    #[test]
    fn each_state_is_decided_against_the_active_pointer() {
        let failing = SyncState::Failing {
            version: 5,
            error: "certificate file missing".into(),
        };
        let table: &[Case] = &[
            (
                node(Some((5, "h5")), None),
                Some((5, "h5")),
                SyncState::InSync,
            ),
            (
                node(Some((3, "h3")), None),
                Some((5, "h5")),
                SyncState::Behind { by: 2 },
            ),
            (
                node(None, None),
                Some((5, "h5")),
                SyncState::Behind { by: 5 },
            ),
            (node(Some((4, "h4")), Some(5)), Some((5, "h5")), failing),
            // A failure with an older version no longer matters once the
            // store moved on: the node is behind the new active version.
            (
                node(Some((3, "h3")), Some(4)),
                Some((5, "h5")),
                SyncState::Behind { by: 2 },
            ),
            // Same id, other content: never in sync.
            (
                node(Some((5, "hX")), None),
                Some((5, "h5")),
                SyncState::Diverged,
            ),
            (
                node(Some((6, "h6")), None),
                Some((5, "h5")),
                SyncState::Diverged,
            ),
            (
                node(Some((5, "h5")), None),
                None,
                SyncState::NoActiveVersion,
            ),
        ];
        for (n, active, want) in table {
            assert_eq!(&classify(n, *active), want, "{n:?} against {active:?}");
        }
    }

    #[test]
    fn the_state_serialises_with_its_name_and_details() {
        let v = serde_json::to_value(SyncState::Behind { by: 2 }).unwrap();
        assert_eq!(v, serde_json::json!({ "state": "behind", "by": 2 }));
        let v = serde_json::to_value(SyncState::InSync).unwrap();
        assert_eq!(v, serde_json::json!({ "state": "in-sync" }));
    }
}
