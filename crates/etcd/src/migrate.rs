//! Moving a store from SQLite to etcd, for an installation that outgrows
//! one box: every version and the whole audit chain are copied verbatim
//! into an empty prefix, so that the chain still verifies and every
//! signature made on SQLite still holds, and the migration itself is then
//! audited as one more entry (`store.migrated`), after an
//! `audit.signing_key` entry when the etcd store signs with another key
//! than the one that signed the source's head.
//!
//! Two histories are never merged: a prefix that holds any corsgate key
//! (`versions/`, `active`, `audit/`, `audit-head`) is refused, and so is a
//! source that does not verify, since copying it would make its changes
//! look like the fleet's own.
//!
//! ## Writing it so that half a migration is never a store
//!
//! A store is complete when its `audit-head` and `active` keys exist:
//! every reader starts from them, and an apply on an empty prefix requires
//! both to be absent. The copy therefore writes them last.
//!
//! - When everything fits in one transaction (at most [`Limits::max_ops`]
//!   puts and [`Limits::max_bytes`] of keys and values: etcd refuses more
//!   than `--max-txn-ops`, 128 by default, and requests above
//!   `--max-request-bytes`, 1.5 MiB by default), it is one transaction:
//!   all of it or none of it.
//! - Otherwise versions and entries go first, in as many transactions as
//!   needed, and `audit-head` with `active` in the last one. Each
//!   transaction is guarded: the first by the prefix being empty, each
//!   later one by no key under `versions/` or `audit/` having changed
//!   since the previous one committed (`mod_revision` below its
//!   revision + 1) and by `audit-head` and `active` still being absent
//!   (`create_revision == 0`). A migration that stops half-way leaves no
//!   head and no pointer: the prefix verifies as tampered (entries beyond
//!   the head), a second migration refuses it, and it is removed with
//!   `etcdctl del --prefix P` before trying again.

use crate::layout::{EntryRecord, Head, Pointer, VersionRecord};
use crate::{ApplyError, EtcdStore, ReadError};
use corsgate_store::verify::{self, Report};
use corsgate_store::{Entry, PublicKey, Store, Tamper, VerifyError, Version};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

/// What a migration copies: read from the SQLite store once and verified
/// as read, so that what is written is exactly what was checked.
#[derive(Debug)]
pub struct Source {
    /// The database file.
    pub path: String,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// Every audit entry, oldest first.
    pub entries: Vec<Entry>,
    /// The head record: entry count and last hash.
    pub head: (i64, String),
    /// The active version, when there is one.
    pub active: Option<Pointer>,
    /// The verification of all of the above.
    pub report: Report,
}

/// Why a migration was refused or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The SQLite file could not be read.
    #[error("cannot read the source store: {0}")]
    SourceUnreadable(String),
    /// The source does not verify (every problem found).
    #[error("the source store does not verify: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    SourceTampered(Vec<Tamper>),
    /// The source has no audit entries.
    #[error("the source store holds no audit entries: nothing to migrate")]
    SourceEmpty,
    /// The source names an active version it does not hold.
    #[error("the source store's active version {0} is not among its versions")]
    ActiveMissing(i64),
    /// The source is signed and the target would not be: the first entry
    /// written on etcd would break the signatures' continuity.
    #[error("the source store is signed (head signed by key {0}) but the etcd store would not sign: set admin.auditKeyFile")]
    WouldNotSign(String),
    /// The target prefix already holds a store.
    #[error("{0} exists already: the target prefix holds a corsgate store, and two histories are never merged")]
    TargetOccupied(String),
    /// etcd could not be reached before anything was written.
    #[error("etcd: {0}")]
    Etcd(Box<etcd_client::Error>),
    /// Some transactions were written, not all: the target holds a partial
    /// copy without a head or an active version.
    #[error("the copy stopped after {written} of {total} transactions ({why}); the target prefix holds a partial copy without audit-head and active: remove it with `etcdctl del --prefix {prefix}` and migrate again")]
    Interrupted {
        /// Transactions known to be committed.
        written: usize,
        /// Transactions in the copy.
        total: usize,
        /// What stopped it.
        why: String,
        /// The target prefix.
        prefix: String,
    },
    /// The copy is complete, but the entries after it could not be
    /// appended.
    #[error("the copy is complete but the store.migrated entry was not written: {0}")]
    Unaudited(ApplyError),
}

impl MigrateError {
    /// True when nothing was written to the target.
    pub fn nothing_written(&self) -> bool {
        !matches!(
            self,
            MigrateError::Interrupted { .. } | MigrateError::Unaudited(_)
        )
    }
}

impl From<ReadError> for MigrateError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Etcd(e) => MigrateError::Etcd(e),
            // A tampered target is an occupied one.
            ReadError::Tamper(t) => MigrateError::TargetOccupied(t.to_string()),
        }
    }
}

fn unreadable(e: VerifyError) -> MigrateError {
    match e {
        VerifyError::Tamper(t) => MigrateError::SourceTampered(vec![t]),
        VerifyError::Db(e) => MigrateError::SourceUnreadable(e.to_string()),
    }
}

impl Source {
    /// Read everything in `store` and verify it with `keys` (none:
    /// signatures are not checked, the chain and the versions are).
    pub fn read(store: &Store, keys: &[PublicKey]) -> Result<Source, MigrateError> {
        let entries = store.audit().map_err(unreadable)?;
        let versions = store.history().map_err(unreadable)?;
        let head = store
            .head()
            .map_err(|e| MigrateError::SourceUnreadable(e.to_string()))?;
        let active = store
            .active_id()
            .map_err(|e| MigrateError::SourceUnreadable(e.to_string()))?;
        let report = verify::check_rows(
            entries.iter().cloned().map(Ok).collect(),
            head.clone(),
            Some(versions.iter().cloned().map(Ok).collect()),
            keys,
            None,
            None,
        );
        if !report.problems.is_empty() {
            return Err(MigrateError::SourceTampered(report.problems));
        }
        let Some(head) = head.filter(|_| !entries.is_empty()) else {
            return Err(MigrateError::SourceEmpty);
        };
        let active = match active {
            Some(id) => {
                let v = versions
                    .iter()
                    .find(|v| v.id == id)
                    .ok_or(MigrateError::ActiveMissing(id))?;
                Some(Pointer {
                    version: id,
                    content_hash: v.content_hash.clone(),
                })
            }
            None => None,
        };
        Ok(Source {
            path: store.path().display().to_string(),
            versions,
            entries,
            head,
            active,
            report,
        })
    }

    /// The key that signed the head, when the source is signed.
    fn head_key(&self) -> Option<&str> {
        self.entries.last().and_then(|e| e.key_id.as_deref())
    }
}

/// How much one transaction may carry.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Puts per transaction (etcd's `--max-txn-ops`, 128 by default).
    pub max_ops: usize,
    /// Bytes of keys and values per transaction: 1 MiB, leaving room
    /// under etcd's default `--max-request-bytes` (1.5 MiB) for the
    /// request's framing and compares.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_ops: 128,
            max_bytes: 1024 * 1024,
        }
    }
}

/// What a migration wrote.
#[derive(Clone, Debug)]
pub struct Migrated {
    /// Versions copied.
    pub versions: usize,
    /// Entries copied.
    pub entries: usize,
    /// The source's head: entry count and hash.
    pub source_head: (i64, String),
    /// The active version copied.
    pub active: Option<i64>,
    /// Transactions used for the copy.
    pub transactions: usize,
    /// The `audit.signing_key` entry appended after the copy, when the
    /// etcd store signs with another key than the source's head.
    pub signing_key: Option<Entry>,
    /// The `store.migrated` entry appended after the copy.
    pub entry: Entry,
}

/// One put.
type Put = (String, String);

/// Puts grouped into transactions within `limits`, `last` (the keys that
/// make the store complete) in the final one.
fn batches(items: Vec<Put>, last: Vec<Put>, limits: Limits) -> Vec<Vec<Put>> {
    let size = |p: &Put| p.0.len() + p.1.len();
    let mut out: Vec<Vec<Put>> = Vec::new();
    let mut current: Vec<Put> = Vec::new();
    let mut bytes = 0;
    for item in items {
        if !current.is_empty()
            && (current.len() + 1 > limits.max_ops || bytes + size(&item) > limits.max_bytes)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size(&item);
        current.push(item);
    }
    let last_bytes: usize = last.iter().map(size).sum();
    if !current.is_empty()
        && (current.len() + last.len() > limits.max_ops || bytes + last_bytes > limits.max_bytes)
    {
        out.push(std::mem::take(&mut current));
    }
    current.extend(last);
    out.push(current);
    out
}

impl EtcdStore {
    /// The first corsgate store key under the prefix, if any: a version,
    /// the active pointer, an entry or the audit head.
    pub async fn occupied(&self) -> Result<Option<String>, ReadError> {
        let probes = [
            (self.keys.versions(), true),
            (self.keys.active(), false),
            (self.keys.audit(), true),
            (self.keys.head(), false),
        ];
        for (key, prefix) in probes {
            let mut opts = GetOptions::new().with_keys_only().with_limit(1);
            if prefix {
                opts = opts.with_prefix();
            }
            let resp = self.range(key, Some(opts)).await?;
            if let Some(kv) = resp.kvs().first() {
                return Ok(Some(String::from_utf8_lossy(kv.key()).into_owned()));
            }
        }
        Ok(None)
    }

    /// The guard of the copy's first transaction: nothing of a store
    /// under the prefix.
    fn empty_guard(&self) -> Vec<Compare> {
        vec![
            Compare::create_revision(self.keys.versions(), CompareOp::Equal, 0).with_prefix(),
            Compare::create_revision(self.keys.audit(), CompareOp::Equal, 0).with_prefix(),
            Compare::create_revision(self.keys.active(), CompareOp::Equal, 0),
            Compare::create_revision(self.keys.head(), CompareOp::Equal, 0),
        ]
    }

    /// The guard of every later transaction: nothing under `versions/`
    /// or `audit/` changed after `revision` (the previous transaction's),
    /// and the store is still incomplete.
    fn unchanged_since(&self, revision: i64) -> Vec<Compare> {
        vec![
            Compare::mod_revision(self.keys.versions(), CompareOp::Less, revision + 1)
                .with_prefix(),
            Compare::mod_revision(self.keys.audit(), CompareOp::Less, revision + 1).with_prefix(),
            Compare::create_revision(self.keys.active(), CompareOp::Equal, 0),
            Compare::create_revision(self.keys.head(), CompareOp::Equal, 0),
        ]
    }

    /// Copy `source` verbatim into this (empty) prefix, within `limits`
    /// per transaction (see the module documentation for the order), then
    /// append a `store.migrated` entry through the normal write path,
    /// signed when this store signs.
    pub async fn migrate(
        &mut self,
        source: &Source,
        limits: Limits,
    ) -> Result<Migrated, MigrateError> {
        if let (Some(key), false) = (source.head_key(), self.signing()) {
            return Err(MigrateError::WouldNotSign(key.to_owned()));
        }
        debug_assert!(source.report.problems.is_empty());
        if let Some(key) = self.occupied().await? {
            return Err(MigrateError::TargetOccupied(key));
        }
        let mut items: Vec<Put> = source
            .versions
            .iter()
            .map(|v| (self.keys.version(v.id), json(&VersionRecord::from(v))))
            .collect();
        items.extend(
            source
                .entries
                .iter()
                .map(|e| (self.keys.entry(e.seq), json(&EntryRecord::from(e)))),
        );
        let mut last = vec![(
            self.keys.head(),
            json(&Head {
                count: source.head.0,
                hash: source.head.1.clone(),
            }),
        )];
        if let Some(p) = &source.active {
            last.push((self.keys.active(), json(p)));
        }
        let batches = batches(items, last, limits);
        let total = batches.len();
        let prefix = self.keys.prefix().to_owned();
        let mut revision = 0;
        for (i, batch) in batches.into_iter().enumerate() {
            let guard = if i == 0 {
                self.empty_guard()
            } else {
                self.unchanged_since(revision)
            };
            let ops: Vec<TxnOp> = batch
                .into_iter()
                .map(|(k, v)| TxnOp::put(k, v, None))
                .collect();
            let interrupted = |why: String| MigrateError::Interrupted {
                written: i,
                total,
                why,
                prefix: prefix.clone(),
            };
            let resp = match self
                .client
                .kv_client()
                .txn(Txn::new().when(guard).and_then(ops))
                .await
            {
                Ok(r) => r,
                // Refused before it reached the log (too large, not
                // permitted): nothing of it was written.
                Err(e) if refusal(&e) && i == 0 => return Err(MigrateError::Etcd(Box::new(e))),
                Err(e) if refusal(&e) => {
                    return Err(interrupted(format!(
                        "etcd refused transaction {}: {e}",
                        i + 1
                    )))
                }
                Err(e) => {
                    return Err(interrupted(format!(
                        "etcd: {e}; whether transaction {} took effect is unknown",
                        i + 1
                    )))
                }
            };
            if !resp.succeeded() {
                return Err(if i == 0 {
                    MigrateError::TargetOccupied(
                        "a key written under the prefix during the migration".into(),
                    )
                } else {
                    interrupted("another writer changed the prefix during the migration".into())
                });
            }
            revision = resp.header().map_or(revision, |h| h.revision());
        }
        // A key other than the one that signed the source's head is
        // recorded before it signs anything, as at any start.
        let signing_key = self
            .record_signing_key()
            .await
            .map_err(MigrateError::Unaudited)?;
        let detail = serde_json::json!({
            "source": source.path,
            "versions": source.versions.len(),
            "entries": source.entries.len(),
            "sourceHead": source.head.1,
        });
        let entry = self
            .record("system", "store.migrated", None, &detail)
            .await
            .map_err(MigrateError::Unaudited)?;
        Ok(Migrated {
            versions: source.versions.len(),
            entries: source.entries.len(),
            source_head: source.head.clone(),
            active: source.active.as_ref().map(|p| p.version),
            transactions: total,
            signing_key,
            entry,
        })
    }
}

/// An answer that says etcd did not take the request (as opposed to a
/// lost connection, after which it may have).
fn refusal(e: &etcd_client::Error) -> bool {
    // gRPC INVALID_ARGUMENT ("request is too large"), PERMISSION_DENIED,
    // RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNAUTHENTICATED.
    matches!(e, etcd_client::Error::GRpcStatus(s) if [3, 7, 8, 9, 16].contains(&(s.code() as i32)))
}

/// The JSON text of a record (records always serialise).
fn json<T: serde::Serialize>(record: &T) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn puts(n: usize, size: usize) -> Vec<Put> {
        (0..n)
            .map(|i| (format!("k{i}"), "x".repeat(size)))
            .collect()
    }

    #[test]
    fn one_transaction_when_everything_fits() {
        let b = batches(puts(126, 10), puts(2, 10), Limits::default());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 128);
    }

    #[test]
    fn the_head_and_the_pointer_come_last_and_every_batch_keeps_the_limits() {
        let limits = Limits {
            max_ops: 4,
            max_bytes: 100,
        };
        let b = batches(puts(9, 10), vec![("head".into(), "h".into())], limits);
        assert!(b.iter().all(|t| t.len() <= 4));
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(b.last().unwrap().last().unwrap().0, "head");
        let b = batches(puts(3, 60), Vec::new(), limits);
        assert_eq!(b.len(), 3, "60 + 60 bytes exceed 100");
    }
}
