//! The audit log: append-only, every entry hash-chained to the one before.
//!
//! `hash = SHA-256(previous hash ‖ canonical entry)`, where the canonical
//! entry is the JSON object of its fields (`at`, `actor`, `action`,
//! `version`, `detail`) with sorted keys and no whitespace. The sequence
//! number is not hashed: an entry's place is given by the chain itself, so
//! moving an entry (swapping sequence numbers) breaks the link to its
//! neighbour and is reported as a reordering rather than an edit. A head
//! record (count and last hash), written in the same transaction as each
//! entry, makes a deleted or appended last entry visible too.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Position, from 1.
    pub seq: i64,
    /// RFC 3339 time.
    pub at: String,
    /// Who (a token name, `file`, `system`).
    pub actor: String,
    /// What (`config.applied`, `config.rejected`, `config.rolled_back`,
    /// `config.reloaded_from_file`, `token.used`).
    pub action: String,
    /// The configuration version concerned, if any.
    pub version: Option<i64>,
    /// Details, a JSON document.
    pub detail: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: &'a str,
    at: &'a str,
    detail: &'a str,
    version: Option<i64>,
}

/// The chained hash of an entry's content after `prev_hash`.
pub fn chain_hash(
    prev_hash: &str,
    at: &str,
    actor: &str,
    action: &str,
    version: Option<i64>,
    detail: &str,
) -> String {
    // Field order in `Canonical` is alphabetical, so serde_json's output
    // is the canonical encoding.
    let canonical = serde_json::to_string(&Canonical {
        action,
        actor,
        at,
        detail,
        version,
    })
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
             seq INTEGER PRIMARY KEY,
             at TEXT NOT NULL,
             actor TEXT NOT NULL,
             action TEXT NOT NULL,
             version INTEGER,
             detail TEXT NOT NULL,
             prev_hash TEXT NOT NULL,
             hash TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS audit_head (
             singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
             count INTEGER NOT NULL,
             hash TEXT NOT NULL
         );",
    )
}

/// Append an entry inside `tx`; returns it.
pub(crate) fn append(
    tx: &Transaction<'_>,
    at: &str,
    actor: &str,
    action: &str,
    version: Option<i64>,
    detail: &str,
) -> rusqlite::Result<Entry> {
    let (count, prev): (i64, String) = tx
        .query_row(
            "SELECT count, hash FROM audit_head WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, GENESIS.to_owned()));
    let seq = count + 1;
    let hash = chain_hash(&prev, at, actor, action, version, detail);
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, version, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, at, actor, action, version, detail, prev, hash],
    )?;
    tx.execute(
        "INSERT INTO audit_head (singleton, count, hash) VALUES (1, ?1, ?2)
         ON CONFLICT(singleton) DO UPDATE SET count = excluded.count, hash = excluded.hash",
        params![seq, hash],
    )?;
    let entry = Entry {
        seq,
        at: at.to_owned(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        version,
        detail: detail.to_owned(),
        prev_hash: prev,
        hash,
    };
    // Also a structured log line, for shipping to a SIEM.
    tracing::info!(
        target: "corsgate::audit",
        seq = entry.seq,
        at = %entry.at,
        actor = %entry.actor,
        action = %entry.action,
        version = entry.version,
        detail = %entry.detail,
        hash = %entry.hash,
        "audit"
    );
    Ok(entry)
}

/// Every entry, in sequence order.
pub(crate) fn entries(conn: &Connection) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, version, detail, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Entry {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            version: r.get(4)?,
            detail: r.get(5)?,
            prev_hash: r.get(6)?,
            hash: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// What `verify` found wrong, naming the first affected entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    /// The entry's content no longer matches its hash.
    #[error("audit entry {0} was edited: its content does not match its hash")]
    Edited(i64),
    /// An entry is missing before this position (or at the end).
    #[error("audit entry {0} was deleted")]
    Deleted(i64),
    /// An entry that the chain does not account for.
    #[error("audit entry {0} was inserted: it is not part of the chain")]
    Inserted(i64),
    /// Entries were moved: this one does not follow the one before it.
    #[error("audit entry {0} was reordered: it does not follow entry {1} in the chain")]
    Reordered(i64, i64),
}

/// Walk the chain; `Ok(n)` when all `n` entries are intact.
pub(crate) fn verify(conn: &Connection) -> Result<usize, VerifyError> {
    let entries = entries(conn)?;
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT count, hash FROM audit_head WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (head_count, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let hashes: std::collections::HashMap<&str, i64> = entries
        .iter()
        .map(|e| (e.prev_hash.as_str(), e.seq))
        .collect();
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1;
    for e in &entries {
        let recomputed = chain_hash(
            &e.prev_hash,
            &e.at,
            &e.actor,
            &e.action,
            e.version,
            &e.detail,
        );
        if e.seq > head_count {
            return Err(Tamper::Inserted(e.seq).into());
        }
        if e.seq != expected {
            return Err(Tamper::Deleted(expected).into());
        }
        if recomputed != e.hash {
            return Err(Tamper::Edited(e.seq).into());
        }
        if e.prev_hash != prev_hash {
            // Self-consistent but in the wrong place: moved, unless no
            // entry anywhere links to it (then it was made up).
            let linked = hashes.contains_key(e.hash.as_str()) || e.hash == head_hash;
            return Err(if linked {
                Tamper::Reordered(e.seq, e.seq - 1)
            } else {
                Tamper::Inserted(e.seq)
            }
            .into());
        }
        prev_hash.clone_from(&e.hash);
        expected += 1;
    }
    if expected - 1 < head_count {
        return Err(Tamper::Deleted(expected).into());
    }
    if prev_hash != head_hash {
        return Err(Tamper::Edited(expected - 1).into());
    }
    Ok(entries.len())
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error(transparent)]
    Tamper(#[from] Tamper),
    /// The database could not be read.
    #[error("cannot read the audit log: {0}")]
    Db(#[from] rusqlite::Error),
}
