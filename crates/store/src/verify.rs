//! Verifying the whole store: the audit chain, its signatures, and every
//! version against its content hash and its audit entry.
//!
//! The checks cross each other so that no single table can be cut or
//! rewritten alone: a version's content must produce its `content_hash`,
//! the audit entry that created it must record the same hash, the entry
//! must sit in the intact part of the chain, and that part must end in a
//! head signed by a key the verifier trusts. What the store cannot prove by
//! itself (that nothing was cut off its end, and the head moved back to an
//! older, validly signed entry) an outside copy of the head proves:
//! [`check`] takes the head hash recorded elsewhere and requires it to be
//! in the chain.

use crate::audit::{self, Entry, VERSION_ACTIONS};
use crate::signing::{head_message, PublicKey};
use crate::Version;
use rusqlite::Connection;
use std::collections::HashMap;

/// What is wrong, naming the entry or version concerned.
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
    /// A value of a type corsgate never writes.
    #[error("{} {row} was tampered with: its {column} is {found}, where corsgate writes {want}", if *.table == "audit" { "audit entry" } else { "version" })]
    Malformed {
        /// `audit` or `versions`.
        table: &'static str,
        /// The entry's `seq` or the version's `id`.
        row: i64,
        /// The column.
        column: &'static str,
        /// What it holds.
        found: &'static str,
        /// What it should hold.
        want: &'static str,
    },
    /// The hash chain is consistent but the signature is not: hashes were
    /// recomputed by someone without the signing key.
    #[error("audit entry {0} was forged: its signature does not verify (the chain was recomputed without the signing key)")]
    Forged(i64),
    /// An unsigned entry after signed ones: a signature was removed, or the
    /// entry was written without the key.
    #[error("audit entry {0} is not signed although earlier entries are: its signature was removed or it was written without the key")]
    Unsigned(i64),
    /// The head is not signed by any key the verifier trusts.
    #[error("audit entry {0}, the head, is not signed by a given key ({1})")]
    HeadNotSigned(i64, String),
    /// Signed by a key that is not trusted: a key rotated away without its
    /// public key given, or a key the attacker made.
    #[error("audit entry {0} is signed by key {1}, which is not a trusted key (give the public keys of earlier signing keys too)")]
    UnknownKey(i64, String),
    /// A version's content does not produce its hash.
    #[error("version {0} was edited: its content does not match its hash")]
    VersionEdited(i64),
    /// A version no audit entry created.
    #[error(
        "version {0} has no audit entry: it was added outside corsgate, or its entry was deleted"
    )]
    VersionWithoutEntry(i64),
    /// A version whose hash differs from the one its entry recorded.
    #[error("version {version} does not match audit entry {seq}: the content hash differs from the one recorded")]
    VersionMismatch {
        /// The version.
        version: i64,
        /// Its entry.
        seq: i64,
    },
    /// An entry that created a version no longer in the store.
    #[error("version {version}, created by audit entry {seq}, is missing")]
    VersionDeleted {
        /// The version.
        version: i64,
        /// Its entry.
        seq: i64,
    },
    /// A version whose entry lies after the part of the chain a valid
    /// signature covers.
    #[error("version {version}: its audit entry {seq} is not covered by a valid signature")]
    VersionUnsigned {
        /// The version.
        version: i64,
        /// Its entry.
        seq: i64,
    },
    /// The head recorded outside the store is not in the chain.
    #[error("the expected head {0} is not in the chain: entries were removed or rewritten since it was recorded")]
    HeadNotFound(String),
}

/// Why verification could not finish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The store was tampered with (the first problem).
    #[error(transparent)]
    Tamper(#[from] Tamper),
    /// The database file itself could not be read (not SQLite, locked).
    #[error("cannot read the store: {0}")]
    Db(#[from] rusqlite::Error),
}

/// How the chain is signed, as far as the verifier could tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signing {
    /// No public key was given: signatures were not checked.
    Unchecked,
    /// No entry is signed (a store written without a key).
    Unsigned,
    /// The head is signed by this trusted key.
    Head {
        /// Its key id.
        key_id: String,
        /// Entries written before signing began (covered by the head's
        /// signature through the chain).
        unsigned_before: usize,
        /// Signed entries whose key was not given (older keys; covered by
        /// the head's signature through the chain).
        other_keys: usize,
    },
}

/// The outcome of a verification.
#[derive(Clone, Debug)]
pub struct Report {
    /// Audit entries.
    pub entries: usize,
    /// Versions.
    pub versions: usize,
    /// The last entry's seq and hash (the head), when there is one.
    pub head: Option<(i64, String)>,
    /// Every problem found, the most telling first.
    pub problems: Vec<Tamper>,
    /// Entries `1..=trusted` are authenticated: the chain is intact up to
    /// there and, when keys were given, ends in a valid signature.
    pub trusted: i64,
    /// The signing state.
    pub signing: Signing,
    /// Where the expected head was found (its seq).
    pub expected_at: Option<i64>,
    entry_of_version: HashMap<i64, (i64, Option<String>)>,
}

impl Report {
    /// Whether a signing-key entry may be added over the chain this report
    /// describes: never over one that does not verify, since the new
    /// signature would seem to vouch for what was changed. An unsigned
    /// chain's missing head signature is what the entry is about to fix,
    /// so it does not count; it is logged, since it may mean signatures
    /// were stripped. Both stores (SQLite, etcd) ask this.
    pub fn allows_signing_entry(&self) -> bool {
        let unsigned = self.signing == Signing::Unsigned;
        let problem = self
            .problems
            .iter()
            .find(|p| !(unsigned && matches!(p, Tamper::HeadNotSigned(..))));
        if let Some(problem) = problem {
            tracing::error!(problem = %problem, "the audit chain does not verify; no signing entry is added over it");
            return false;
        }
        if unsigned {
            tracing::warn!(
                entries = self.entries,
                "the audit log has no signatures yet; signing from now on, covering the earlier entries \
                 (if this store was signed before, its signatures were removed: check it with \
                 `corsgate audit verify --expect-head`)"
            );
        }
        true
    }

    /// Can `v` be served: its content matches its hash, and a trusted
    /// entry created it with that hash?
    pub fn version_problem(&self, v: &Version) -> Option<Tamper> {
        if crate::sha256_hex(&v.content) != v.content_hash {
            return Some(Tamper::VersionEdited(v.id));
        }
        let chain_problem = || self.problems.iter().find(|p| p.is_chain()).cloned();
        let Some((seq, recorded)) = self.entry_of_version.get(&v.id) else {
            // Its entry may lie beyond a break in the chain: that says more.
            return Some(chain_problem().unwrap_or(Tamper::VersionWithoutEntry(v.id)));
        };
        if recorded.as_deref() != Some(v.content_hash.as_str()) {
            return Some(Tamper::VersionMismatch {
                version: v.id,
                seq: *seq,
            });
        }
        if *seq > self.trusted {
            // The chain problem that untrusted it says more, when known.
            return Some(chain_problem().unwrap_or(Tamper::VersionUnsigned {
                version: v.id,
                seq: *seq,
            }));
        }
        None
    }
}

impl Tamper {
    fn is_chain(&self) -> bool {
        matches!(
            self,
            Tamper::Edited(_)
                | Tamper::Deleted(_)
                | Tamper::Inserted(_)
                | Tamper::Reordered(..)
                | Tamper::Forged(_)
                | Tamper::Unsigned(_)
                | Tamper::HeadNotSigned(..)
                | Tamper::UnknownKey(..)
                | Tamper::Malformed { table: "audit", .. }
        )
    }
}

/// Check the store in `conn` with the trusted `keys` (none: signatures are
/// not checked) and, when given, the head hash recorded outside the store.
/// `cache` remembers how far signatures were checked already. A read of
/// one version passes `whole: false`: the chain and the signatures are
/// checked, but not every other version (the caller checks its own with
/// [`Report::version_problem`]).
pub fn check(
    conn: &Connection,
    keys: &[PublicKey],
    expect_head: Option<&str>,
    cache: Option<&Checked>,
    whole: bool,
) -> rusqlite::Result<Report> {
    let rows = audit::entries(conn)?;
    let head = audit::head(conn)?;
    let versions = if whole {
        Some(crate::read_versions(conn, "")?)
    } else {
        None
    };
    Ok(check_rows(rows, head, versions, keys, expect_head, cache))
}

/// [`check`] over rows already read, from whichever backend holds them:
/// the audit entries in `seq` order, the head record, and (for a whole
/// check) every version. Each row is either what was read or the
/// [`Tamper`] found reading it.
pub fn check_rows(
    rows: Vec<Result<Entry, Tamper>>,
    head: Option<(i64, String)>,
    versions: Option<Vec<Result<Version, Tamper>>>,
    keys: &[PublicKey],
    expect_head: Option<&str>,
    cache: Option<&Checked>,
) -> Report {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for row in rows {
        match row {
            Ok(e) => entries.push(e),
            Err(t) => {
                if problems.is_empty() {
                    problems.push(t);
                }
                break;
            }
        }
    }
    let malformed = !problems.is_empty();
    let (intact, chain_problem) = audit::walk(&entries, head);
    if !malformed {
        problems.extend(chain_problem);
    }
    let prefix = &entries[..intact];
    let (trusted, signing) = signatures(prefix, keys, cache, &mut problems);
    // In a complete, intact chain the head must be signed by a given key.
    if !keys.is_empty() && problems.is_empty() {
        if let Some(last) = entries.last() {
            if trusted < last.seq {
                let why = match &last.key_id {
                    None => "it is unsigned".to_owned(),
                    Some(k) => format!("signed by key {k}"),
                };
                problems.push(Tamper::HeadNotSigned(last.seq, why));
            }
        }
    }
    let mut entry_of_version = HashMap::new();
    for e in prefix {
        if let (Some(v), true) = (e.version, VERSION_ACTIONS.contains(&e.action.as_str())) {
            entry_of_version
                .entry(v)
                .or_insert((e.seq, e.recorded_content_hash()));
        }
    }
    let expected_at = match expect_head {
        Some(h) => {
            let at = prefix.iter().find(|e| e.hash == h).map(|e| e.seq);
            if at.is_none() {
                problems.push(Tamper::HeadNotFound(h.to_owned()));
            }
            at
        }
        None => None,
    };
    let mut report = Report {
        entries: entries.len(),
        versions: 0,
        head: entries.last().map(|e| (e.seq, e.hash.clone())),
        problems,
        trusted,
        signing,
        expected_at,
        entry_of_version,
    };
    if let Some(versions) = versions {
        cross_check(versions, &mut report, prefix);
    }
    report
}

/// The last entry whose signature this process has checked, by seq and
/// hash: the chain walk recomputes every hash on each read, so while that
/// entry keeps its hash the signatures up to it need no second check.
pub type Checked = std::sync::Mutex<Option<(i64, String)>>;

/// Which prefix of the intact chain the signatures authenticate. Entries
/// written before the first signed one are covered by it through the
/// chain; from there on every entry must carry a valid signature by a
/// trusted key, so that a signature added later cannot vouch for an entry
/// forged or stripped earlier.
fn signatures(
    prefix: &[Entry],
    keys: &[PublicKey],
    cache: Option<&Checked>,
    problems: &mut Vec<Tamper>,
) -> (i64, Signing) {
    let intact = prefix.last().map_or(0, |e| e.seq);
    if keys.is_empty() {
        return (intact, Signing::Unchecked);
    }
    let Some(first_signed) = prefix.iter().position(|e| e.sig.is_some()) else {
        let signing = if prefix.is_empty() {
            Signing::Unchecked
        } else {
            Signing::Unsigned
        };
        return (0, signing);
    };
    let known = cache
        .and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .filter(|(seq, hash)| {
            usize::try_from(*seq - 1)
                .ok()
                .and_then(|i| prefix.get(i))
                .is_some_and(|e| e.hash == *hash)
        })
        .map_or(0, |(seq, _)| seq);
    let mut trusted = 0;
    let mut head_key = String::new();
    let mut other_keys = 0;
    for e in &prefix[first_signed..] {
        let (Some(sig), Some(id)) = (&e.sig, &e.key_id) else {
            problems.push(Tamper::Unsigned(e.seq));
            break;
        };
        let Some(key) = keys.iter().find(|k| k.id() == id) else {
            problems.push(Tamper::UnknownKey(e.seq, id.clone()));
            break;
        };
        if e.seq > known && !key.verifies(&head_message(e.seq, &e.hash), sig) {
            problems.push(Tamper::Forged(e.seq));
            break;
        }
        if *id != head_key {
            other_keys += usize::from(!head_key.is_empty());
            head_key.clone_from(id);
        }
        trusted = e.seq;
    }
    if let (Some(c), Some(e)) = (
        cache,
        usize::try_from(trusted - 1)
            .ok()
            .and_then(|i| prefix.get(i)),
    ) {
        *c.lock().unwrap_or_else(|p| p.into_inner()) = Some((e.seq, e.hash.clone()));
    }
    if trusted == 0 {
        return (0, Signing::Unsigned);
    }
    (
        trusted,
        Signing::Head {
            key_id: head_key,
            unsigned_before: first_signed,
            other_keys,
        },
    )
}

/// Every version against its hash and its entry, and every version-creating
/// entry against its version.
fn cross_check(versions: Vec<Result<Version, Tamper>>, report: &mut Report, prefix: &[Entry]) {
    let mut present = std::collections::HashSet::new();
    for row in versions {
        report.versions += 1;
        match row {
            Ok(v) => {
                present.insert(v.id);
                if let Some(p) = report.version_problem(&v) {
                    if !report.problems.contains(&p) {
                        report.problems.push(p);
                    }
                }
            }
            Err(t) => {
                if let Tamper::Malformed { row, .. } = &t {
                    present.insert(*row);
                }
                report.problems.push(t);
            }
        }
    }
    for e in prefix {
        if let (Some(v), true) = (e.version, VERSION_ACTIONS.contains(&e.action.as_str())) {
            if !present.contains(&v) {
                report.problems.push(Tamper::VersionDeleted {
                    version: v,
                    seq: e.seq,
                });
            }
        }
    }
}
