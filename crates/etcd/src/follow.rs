//! Following the active pointer: what every instance of a fleet runs to
//! serve each new version.
//!
//! A [`Follower`] remembers the revision of the pointer it last acted on.
//! A watch starts just after it, so after a disconnect nothing committed in
//! between is skipped; a revision etcd has compacted away means a full
//! re-read of the pointer instead; an error or a timeout never advances the
//! revision (a skipped event would be a silently stale gateway).

use crate::{EtcdStore, ReadError};
use corsgate_store::Version;
use etcd_client::{EventType, WatchOptions, WatchStream, Watcher};

/// What [`Follower::next`] found.
#[derive(Debug)]
pub enum Change {
    /// The active version, verified; `resynced` when it was found by a
    /// full re-read (the first call, or after a compaction).
    Active {
        /// The version.
        version: Version,
        /// Found by a full re-read.
        resynced: bool,
    },
    /// No version is active yet.
    Empty,
}

/// Follows one store's active pointer.
pub struct Follower {
    store: EtcdStore,
    /// The pointer's revision last acted on (0: nothing read yet).
    revision: i64,
    watch: Option<(Watcher, WatchStream)>,
    /// A pointer value received but not acted on yet (its revision and
    /// value): kept across a cancelled call, so an event taken from the
    /// stream is never dropped.
    pending: Option<(i64, Vec<u8>)>,
}

impl Follower {
    /// A follower that starts with a full read of the pointer.
    pub fn new(store: EtcdStore) -> Follower {
        Follower {
            store,
            revision: 0,
            watch: None,
            pending: None,
        }
    }

    /// A follower that resumes after `revision` (a revision a previous
    /// [`Follower::revision`] returned).
    pub fn resume(store: EtcdStore, revision: i64) -> Follower {
        Follower {
            store,
            revision,
            watch: None,
            pending: None,
        }
    }

    /// The revision acted on last.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The store followed.
    pub fn store(&self) -> &EtcdStore {
        &self.store
    }

    /// Read the pointer and the version it names, at one revision.
    async fn resync(&mut self) -> Result<Change, ReadError> {
        self.watch = None;
        self.pending = None;
        let resp = self.store.range(self.store.keys().active(), None).await?;
        let at = resp.header().map_or(0, |h| h.revision());
        let change = match resp.kvs().first() {
            None => Change::Empty,
            Some(kv) => Change::Active {
                version: Self::version_of(&self.store, kv.value()).await?,
                resynced: true,
            },
        };
        self.revision = at;
        Ok(change)
    }

    /// Borrows only the store, so that a follower can run on a spawned
    /// task (its watch stream is `Send` but not `Sync`).
    async fn version_of(store: &EtcdStore, pointer: &[u8]) -> Result<Version, ReadError> {
        let p: crate::layout::Pointer =
            serde_json::from_slice(pointer).map_err(|_| crate::malformed("versions", 0))?;
        match store.get(p.version).await? {
            Some(v) if v.content_hash == p.content_hash => Ok(v),
            _ => Err(corsgate_store::Tamper::VersionDeleted {
                version: p.version,
                seq: 0,
            }
            .into()),
        }
    }

    /// The next change of the active version: at once on the first call
    /// (the version active now), then each time the pointer moves. An
    /// error leaves the revision where it was; call again (after a pause)
    /// to resume from there. A version that fails verification is an
    /// error too, and the revision moves past it: it will never verify.
    pub async fn next(&mut self) -> Result<Change, ReadError> {
        if self.revision == 0 {
            return self.resync().await;
        }
        loop {
            if let Some((revision, value)) = self.pending.clone() {
                let version = Self::version_of(&self.store, &value).await;
                if let Err(ReadError::Etcd(_)) = &version {
                    // Not read: tried again on the next call.
                    return version.map(|_| Change::Empty);
                }
                self.pending = None;
                self.revision = revision;
                return version.map(|version| Change::Active {
                    version,
                    resynced: false,
                });
            }
            if self.watch.is_none() {
                let opts = WatchOptions::new().with_start_revision(self.revision + 1);
                let w = self
                    .store
                    .client()
                    .watch_client()
                    .watch(self.store.keys().active(), Some(opts))
                    .await?;
                self.watch = Some(w);
            }
            let Some((_, stream)) = self.watch.as_mut() else {
                continue;
            };
            let resp = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.watch = None;
                    return Err(ReadError::Etcd(Box::new(etcd_client::Error::WatchError(
                        "the watch stream ended".into(),
                    ))));
                }
                Err(e) => {
                    self.watch = None;
                    return Err(e.into());
                }
            };
            if resp.compact_revision() > 0 {
                tracing::warn!(
                    revision = self.revision,
                    compacted = resp.compact_revision(),
                    "the revision followed was compacted away; reading the active version again"
                );
                return self.resync().await;
            }
            if resp.canceled() {
                self.watch = None;
                continue;
            }
            let Some(kv) = resp
                .events()
                .iter()
                .rev()
                .find(|e| e.event_type() == EventType::Put)
                .and_then(|e| e.kv())
            else {
                continue;
            };
            self.pending = Some((kv.mod_revision(), kv.value().to_vec()));
        }
    }
}
