//! The key layout under the configured prefix `P`, and the records stored
//! there (JSON).
//!
//! | key | value | written |
//! |---|---|---|
//! | `P versions/<id, 20 digits>` | [`VersionRecord`] | once, never changed |
//! | `P active` | [`Pointer`]: the active version id and its hash | by each apply / rollback |
//! | `P audit/<seq, 20 digits>` | [`EntryRecord`] | once per audited event |
//! | `P audit-head` | [`Head`]: entry count and the last hash | with each entry |
//! | `P nodes/<node>` | [`crate::nodes::NodeRecord`] | by each instance, under its lease |
//!
//! Zero-padded ids keep etcd's byte order equal to numeric order. An
//! entry's sequence number is its key, not part of its value, as a row's
//! `seq` is on SQLite: swapping two values is then a reordering the chain
//! walk names, not an edit.

use corsgate_store::{Entry, Version};
use serde::{Deserialize, Serialize};

/// The keys of one store.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (`/corsgate/`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }
    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The prefix of every version key.
    pub fn versions(&self) -> String {
        format!("{}versions/", self.prefix)
    }
    /// One version.
    pub fn version(&self, id: i64) -> String {
        format!("{}versions/{id:020}", self.prefix)
    }
    /// The active pointer.
    pub fn active(&self) -> String {
        format!("{}active", self.prefix)
    }
    /// The prefix of every audit entry key.
    pub fn audit(&self) -> String {
        format!("{}audit/", self.prefix)
    }
    /// One audit entry.
    pub fn entry(&self, seq: i64) -> String {
        format!("{}audit/{seq:020}", self.prefix)
    }
    /// The audit head record.
    pub fn head(&self) -> String {
        format!("{}audit-head", self.prefix)
    }
    /// The prefix of every fleet status record.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }
    /// The number at the end of `key` under `under` (`versions/`,
    /// `audit/`), if it is one.
    pub fn number(key: &[u8], under: &str) -> Option<i64> {
        let key = std::str::from_utf8(key).ok()?;
        let digits = key.strip_prefix(under)?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }
}

/// A version as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionRecord {
    /// Id (also in the key).
    pub id: i64,
    /// The version it was based on.
    pub parent: Option<i64>,
    /// Who applied it.
    pub author: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Why.
    pub comment: String,
    /// The configuration text.
    pub content: String,
    /// SHA-256 of the content, hex.
    pub content_hash: String,
    /// Lints, JSON.
    pub lints: String,
    /// Policy tests run, JSON.
    pub policy_tests: String,
}

impl From<VersionRecord> for Version {
    fn from(r: VersionRecord) -> Version {
        Version {
            id: r.id,
            parent: r.parent,
            author: r.author,
            created_at: r.created_at,
            comment: r.comment,
            content: r.content,
            content_hash: r.content_hash,
            lints: r.lints,
            policy_tests: r.policy_tests,
        }
    }
}

impl From<&Version> for VersionRecord {
    fn from(v: &Version) -> VersionRecord {
        VersionRecord {
            id: v.id,
            parent: v.parent,
            author: v.author.clone(),
            created_at: v.created_at.clone(),
            comment: v.comment.clone(),
            content: v.content.clone(),
            content_hash: v.content_hash.clone(),
            lints: v.lints.clone(),
            policy_tests: v.policy_tests.clone(),
        }
    }
}

/// The active pointer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pointer {
    /// The active version.
    pub version: i64,
    /// Its content hash.
    pub content_hash: String,
}

/// The audit head record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Head {
    /// Entries in the chain.
    pub count: i64,
    /// The last entry's hash.
    pub hash: String,
}

/// An audit entry as stored (its `seq` is the key).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryRecord {
    /// RFC 3339 time.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The version concerned.
    pub version: Option<i64>,
    /// Details, JSON text.
    pub detail: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
    /// The signing key's id.
    pub key_id: Option<String>,
    /// The signature of the head after this entry.
    pub sig: Option<String>,
}

impl EntryRecord {
    /// The entry at `seq`.
    pub fn at_seq(self, seq: i64) -> Entry {
        Entry {
            seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            version: self.version,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
            key_id: self.key_id,
            sig: self.sig,
        }
    }
}

impl From<&Entry> for EntryRecord {
    fn from(e: &Entry) -> EntryRecord {
        EntryRecord {
            at: e.at.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            version: e.version,
            detail: e.detail.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
            key_id: e.key_id.clone(),
            sig: e.sig.clone(),
        }
    }
}
