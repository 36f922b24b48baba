//! The audit log: append-only, every entry hash-chained to the one before,
//! and the head after each entry signed.
//!
//! `hash = SHA-256(previous hash ‖ canonical entry)`, where the canonical
//! entry is the JSON object of its fields (`at`, `actor`, `action`,
//! `version`, `detail`) with sorted keys and no whitespace. The sequence
//! number is not hashed: an entry's place is given by the chain itself, so
//! moving an entry (swapping sequence numbers) breaks the link to its
//! neighbour and is reported as a reordering rather than an edit. A head
//! record (count and last hash), written in the same transaction as each
//! entry, makes a deleted or appended last entry visible too.
//!
//! With a signing key ([`crate::signing`]), each entry also carries the
//! Ed25519 signature of the head it produced (`seq`, `hash`) and the id of
//! the key: recomputing hashes after an edit then no longer verifies,
//! because the key is not in the store. Rows are read column by column as
//! whatever SQLite holds, so a value of the wrong type is reported as a
//! tampered entry ([`crate::Tamper::Malformed`]) instead of a read error.

use crate::rows::{Cells, Malformed};
use crate::signing::Signer;
use crate::Tamper;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Actions that create a version; each version has exactly one of them.
pub const VERSION_ACTIONS: [&str; 3] = [
    "config.applied",
    "config.rolled_back",
    "config.reloaded_from_file",
];

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
    /// `config.reloaded_from_file`, `token.used`, `token.denied`,
    /// `audit.signing_key`).
    pub action: String,
    /// The configuration version concerned, if any.
    pub version: Option<i64>,
    /// Details, a JSON document.
    pub detail: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash: the chain head after it.
    pub hash: String,
    /// The id of the key that signed the head after this entry.
    pub key_id: Option<String>,
    /// That signature (hex); `None` for entries written without a key.
    pub sig: Option<String>,
}

impl Entry {
    /// Does the entry's content still produce its hash?
    pub fn hash_matches(&self) -> bool {
        chain_hash(
            &self.prev_hash,
            &self.at,
            &self.actor,
            &self.action,
            self.version,
            &self.detail,
        ) == self.hash
    }

    /// The content hash a version-creating entry recorded.
    pub fn recorded_content_hash(&self) -> Option<String> {
        let detail: serde_json::Value = serde_json::from_str(&self.detail).ok()?;
        detail["content_hash"].as_str().map(str::to_owned)
    }
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

/// Create the tables, and bring a store written before signing existed up
/// to date: the two signature columns are added (old entries keep theirs
/// empty, so their hashes and the chain are unchanged).
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
    )?;
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('audit')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for column in ["key_id", "sig"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE audit ADD COLUMN {column} TEXT"))?;
        }
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS audit_version ON audit(version)")
}

/// The head record: entry count and last hash.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row(
        "SELECT count, hash FROM audit_head WHERE singleton = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Append an entry inside `tx`, signed when `signer` is given; returns it.
pub(crate) fn append(
    tx: &Transaction<'_>,
    signer: Option<&Signer>,
    at: &str,
    actor: &str,
    action: &str,
    version: Option<i64>,
    detail: &str,
) -> rusqlite::Result<Entry> {
    let (count, prev) = head(tx)?.unwrap_or((0, GENESIS.to_owned()));
    let seq = count + 1;
    let hash = chain_hash(&prev, at, actor, action, version, detail);
    let key_id = signer.map(|s| s.public().id().to_owned());
    let sig = signer.map(|s| s.sign_head(seq, &hash));
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, version, detail, prev_hash, hash, key_id, sig)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![seq, at, actor, action, version, detail, prev, hash, key_id, sig],
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
        key_id,
        sig,
    };
    // Also a structured log line, for shipping to a SIEM: `head` is the
    // chain head after this entry, the value `audit verify --expect-head`
    // takes, so a copy kept outside this host anchors the chain.
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
    Ok(entry)
}

const ENTRY_COLUMNS: &str = "seq, at, actor, action, version, detail, prev_hash, hash, key_id, sig";

fn entry_of(c: &Cells) -> Result<Entry, Malformed> {
    Ok(Entry {
        seq: c.int(0)?,
        at: c.text(1)?,
        actor: c.text(2)?,
        action: c.text(3)?,
        version: c.opt_int(4)?,
        detail: c.text(5)?,
        prev_hash: c.text(6)?,
        hash: c.text(7)?,
        key_id: c.opt_text(8)?,
        sig: c.opt_text(9)?,
    })
}

/// Every entry in sequence order; a row whose columns do not have the
/// types corsgate writes is the tampering it names.
pub(crate) fn entries(conn: &Connection) -> rusqlite::Result<Vec<Result<Entry, Tamper>>> {
    crate::rows::read(
        conn,
        "audit",
        &format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"),
        &[
            "seq",
            "at",
            "actor",
            "action",
            "version",
            "detail",
            "prev_hash",
            "hash",
            "key_id",
            "sig",
        ],
        entry_of,
    )
}

/// The chain walk over `entries`: how many lead the chain intact from the
/// start, and the first problem after them.
pub fn walk(entries: &[Entry], head: Option<(i64, String)>) -> (usize, Option<Tamper>) {
    let (head_count, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let linked: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.prev_hash.as_str()).collect();
    let mut prev_hash = GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq > head_count {
            return (i, Some(Tamper::Inserted(e.seq)));
        }
        if e.seq != expected {
            return (i, Some(Tamper::Deleted(expected)));
        }
        if !e.hash_matches() {
            return (i, Some(Tamper::Edited(e.seq)));
        }
        if e.prev_hash != prev_hash {
            // Self-consistent but in the wrong place: moved, unless no
            // entry anywhere links to it (then it was made up).
            let moved = linked.contains(e.hash.as_str()) || e.hash == head_hash;
            return (
                i,
                Some(if moved {
                    Tamper::Reordered(e.seq, e.seq - 1)
                } else {
                    Tamper::Inserted(e.seq)
                }),
            );
        }
        prev_hash = &e.hash;
    }
    let n = entries.len();
    if (n as i64) < head_count {
        return (n, Some(Tamper::Deleted(n as i64 + 1)));
    }
    if prev_hash != head_hash {
        return (n.saturating_sub(1), Some(Tamper::Edited(n as i64)));
    }
    (n, None)
}
