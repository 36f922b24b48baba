//! Changes: apply, rollback, record. Each is one etcd transaction guarded
//! by the revisions of the keys it was computed from.

use crate::layout::{EntryRecord, Head, Pointer, VersionRecord};
use crate::{now, EtcdStore, ReadError};
use corsgate_store::audit::{chain_hash, GENESIS};
use corsgate_store::{Entry, Tamper, Version};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use sha2::{Digest, Sha256};

/// Why a change was refused. Nothing was stored as a version and the
/// active version is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The candidate was based on a version that is no longer active.
    #[error("stale base: the change was based on version {based_on:?}, but version {active:?} is active now")]
    Stale {
        /// The base the caller named.
        based_on: Option<i64>,
        /// The active version.
        active: Option<i64>,
    },
    /// The candidate is invalid (each error with its location).
    #[error("configuration refused:\n{}", .0.join("\n"))]
    Rejected(Vec<String>),
    /// No such version (rollback).
    #[error("no version {0}")]
    NoSuchVersion(i64),
    /// A stored version failed verification.
    #[error("store integrity: {0}")]
    Tampered(Tamper),
    /// etcd failed or was unreachable; whether a transaction sent before
    /// the failure took effect is for the caller to read back.
    #[error("etcd: {0}")]
    Etcd(Box<etcd_client::Error>),
    /// Other writers kept moving the audit head; nothing was written.
    #[error("the audit log kept changing under this change; try again")]
    Busy,
}

impl From<ReadError> for ApplyError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Tamper(t) => ApplyError::Tampered(t),
            ReadError::Etcd(e) => ApplyError::Etcd(e),
        }
    }
}

impl From<etcd_client::Error> for ApplyError {
    fn from(e: etcd_client::Error) -> Self {
        ApplyError::Etcd(Box::new(e))
    }
}

/// How often a change is recomputed when only the audit head moved (a
/// `token.used` entry written by another instance in between).
pub(crate) const ATTEMPTS: usize = 32;

/// `mod_revision == rev`, or absent when `rev` is 0.
pub(crate) fn unchanged(key: String, rev: i64) -> Compare {
    if rev == 0 {
        Compare::version(key, CompareOp::Equal, 0)
    } else {
        Compare::mod_revision(key, CompareOp::Equal, rev)
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl EtcdStore {
    /// The next entry after the head read at `head`, and the puts that
    /// write it and the new head.
    pub(crate) fn entry_ops(
        &self,
        head: &Option<Head>,
        at: &str,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &str,
    ) -> (Entry, Vec<TxnOp>) {
        let (count, prev) = head
            .as_ref()
            .map_or((0, GENESIS.to_owned()), |h| (h.count, h.hash.clone()));
        let seq = count + 1;
        let hash = chain_hash(&prev, at, actor, action, version, detail);
        let entry = Entry {
            seq,
            at: at.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            version,
            detail: detail.to_owned(),
            prev_hash: prev,
            key_id: self.signer.as_ref().map(|s| s.public().id().to_owned()),
            sig: self.signer.as_ref().map(|s| s.sign_head(seq, &hash)),
            hash,
        };
        let record = serde_json::to_string(&EntryRecord::from(&entry)).unwrap_or_default();
        let head = serde_json::to_string(&Head {
            count: seq,
            hash: entry.hash.clone(),
        })
        .unwrap_or_default();
        let ops = vec![
            TxnOp::put(self.keys.entry(seq), record, None),
            TxnOp::put(self.keys.head(), head, None),
        ];
        (entry, ops)
    }

    /// Record an event that changes no version (`token.used`).
    pub async fn record(
        &mut self,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &serde_json::Value,
    ) -> Result<Entry, ApplyError> {
        let detail = detail.to_string();
        let at = now();
        for _ in 0..ATTEMPTS {
            let head = self
                .read_json::<Head>(&self.keys.head(), "audit", 0)
                .await?;
            let (entry, ops) = self.entry_ops(&head.value, &at, actor, action, version, &detail);
            let txn = Txn::new()
                .when([
                    unchanged(self.keys.head(), head.mod_revision),
                    unchanged(self.keys.entry(entry.seq), 0),
                ])
                .and_then(ops);
            if self.client.kv_client().txn(txn).await?.succeeded() {
                audit_log(&entry);
                return Ok(entry);
            }
        }
        Err(ApplyError::Busy)
    }

    /// Validate `content` and, if it is valid and `based_on` is still the
    /// active version, store it as a new active version and audit it, in
    /// one transaction. A refused candidate is audited as
    /// `config.rejected` and changes nothing else.
    pub async fn apply(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
    ) -> Result<Version, ApplyError> {
        self.apply_as(based_on, author, comment, content, "config.applied")
            .await
    }

    /// Make a new version equal to version `to`, based on the active one.
    pub async fn rollback(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
    ) -> Result<Version, ApplyError> {
        let target = self.get(to).await?.ok_or(ApplyError::NoSuchVersion(to))?;
        let comment = if comment.is_empty() {
            format!("rollback to version {to}")
        } else {
            comment.to_owned()
        };
        self.apply_as(
            based_on,
            author,
            &comment,
            &target.content,
            "config.rolled_back",
        )
        .await
    }

    async fn apply_as(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        action: &str,
    ) -> Result<Version, ApplyError> {
        // Validation first: nothing is written for an invalid candidate
        // but its refusal.
        let report = corsgate_routes::check_str(content, Some("<candidate>"));
        let at = now();
        for _ in 0..ATTEMPTS {
            let pointer = self.pointer().await?;
            let active = pointer.value.as_ref().map(|p| p.version);
            if active != based_on {
                return Err(ApplyError::Stale { based_on, active });
            }
            let head = self
                .read_json::<Head>(&self.keys.head(), "audit", 0)
                .await?;
            let mut when = vec![
                unchanged(self.keys.active(), pointer.mod_revision),
                unchanged(self.keys.head(), head.mod_revision),
            ];
            let Some(_) = report.loaded.as_ref().filter(|_| report.errors.is_empty()) else {
                let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
                let detail =
                    serde_json::json!({ "comment": comment, "errors": errors }).to_string();
                let (entry, ops) =
                    self.entry_ops(&head.value, &at, author, "config.rejected", None, &detail);
                let txn = Txn::new().when(when).and_then(ops);
                if self.client.kv_client().txn(txn).await?.succeeded() {
                    audit_log(&entry);
                    return Err(ApplyError::Rejected(errors));
                }
                continue;
            };
            let id = self.last_version_id().await? + 1;
            when.push(unchanged(self.keys.version(id), 0));
            let hash = sha256_hex(content);
            let lints: Vec<_> = report
                .lints
                .iter()
                .map(corsgate_config::ConfigLint::to_json)
                .collect();
            let record = VersionRecord {
                id,
                parent: active,
                author: author.to_owned(),
                created_at: at.clone(),
                comment: comment.to_owned(),
                content: content.to_owned(),
                content_hash: hash.clone(),
                lints: serde_json::Value::Array(lints).to_string(),
                policy_tests: serde_json::json!({ "run": report.policy_tests, "failed": 0 })
                    .to_string(),
            };
            let detail = serde_json::json!({
                "comment": comment,
                "parent": active,
                "content_hash": hash,
            })
            .to_string();
            let (entry, mut ops) =
                self.entry_ops(&head.value, &at, author, action, Some(id), &detail);
            let pointer_value = serde_json::to_string(&Pointer {
                version: id,
                content_hash: hash,
            })
            .unwrap_or_default();
            ops.push(TxnOp::put(
                self.keys.version(id),
                serde_json::to_string(&record).unwrap_or_default(),
                None,
            ));
            ops.push(TxnOp::put(self.keys.active(), pointer_value, None));
            let txn = Txn::new().when(when).and_then(ops);
            if self.client.kv_client().txn(txn).await?.succeeded() {
                audit_log(&entry);
                return Ok(Version::from(record));
            }
            // Lost the race: the pointer moved (stale, reported on the
            // next pass) or only the audit head did (recomputed).
        }
        Err(ApplyError::Busy)
    }
}

/// The structured log line every entry also gets, as on SQLite.
pub(crate) fn audit_log(entry: &Entry) {
    tracing::info!(
        target: "corsgate::audit",
        seq = entry.seq,
        at = %entry.at,
        actor = %entry.actor,
        action = %entry.action,
        version = entry.version,
        detail = %entry.detail,
        head = %entry.hash,
        key_id = entry.key_id.as_deref().unwrap_or(""),
        "audit"
    );
}
