//! # corsgate-store
//!
//! The management store, in one embedded SQLite file under a data
//! directory:
//!
//! - **versions**: every applied configuration, with its parent, author,
//!   time, comment, full content, content hash, lint results and policy-test
//!   results; one of them is *active*;
//! - **audit**: an append-only log, each entry hash-chained to the previous
//!   one and the head after it signed ([`audit`], [`signing`]), written in
//!   the same transaction as the change it records.
//!
//! Nothing read back is taken on trust: a version is returned only if its
//! content matches its hash and an authenticated audit entry recorded that
//! hash ([`verify`]); otherwise the read fails with the [`Tamper`] found.
//!
//! A candidate is validated completely (syntax, references, policy
//! compilation, lints, policy tests) *before* anything is written; a
//! rejected candidate is audited but never stored as a version. Applies are
//! optimistic: each names the version it was based on, and a stale base is
//! refused ([`ApplyError::Stale`]) instead of overwriting someone else's
//! change. History is never rewritten: a rollback is a new version equal to
//! an old one.

#![deny(missing_docs)]

pub mod audit;
mod rows;
pub mod signing;
pub mod verify;

use corsgate_config::Loaded;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use audit::Entry;
pub use signing::{KeyError, PublicKey, Signer};
pub use verify::{Report, Signing, Tamper, VerifyError};

/// One stored configuration version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    /// Id, from 1.
    pub id: i64,
    /// The version it was based on.
    pub parent: Option<i64>,
    /// Who applied it.
    pub author: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Why.
    pub comment: String,
    /// The configuration text.
    pub content: String,
    /// SHA-256 of the content, hex.
    pub content_hash: String,
    /// Lints, as JSON (`[{id, severity, path, line, column, message}]`).
    pub lints: String,
    /// Policy tests run, as JSON (`{"run": n}`).
    pub policy_tests: String,
}

/// Why an apply was refused. Nothing was stored as a version and the
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
    /// Valid, but the running gateway could not take it (an address in
    /// use, an unreadable certificate); not stored.
    #[error("the gateway could not apply it: {0}")]
    NotApplied(String),
    /// A stored version failed verification (rollback to it, or the
    /// active one); nothing was changed.
    #[error("store integrity: {0}")]
    Tampered(Tamper),
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] rusqlite::Error),
    /// A shared store (etcd) could not be reached; whether a change sent
    /// before the failure took effect is known only by reading it back.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<VerifyError> for ApplyError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Tamper(t) => ApplyError::Tampered(t),
            VerifyError::Db(e) => ApplyError::Db(e),
        }
    }
}

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Signs each new entry's head, when configured.
    signer: Option<Signer>,
    /// Keys whose signatures are trusted (the signer's own among them).
    keys: Vec<PublicKey>,
    /// How far signatures were checked already.
    checked: verify::Checked,
    /// The last chain walk, with SQLite's `data_version` and the head it
    /// saw: while neither changed, no other connection wrote the file and
    /// this one appended nothing, so the walk still holds.
    walked: std::sync::Mutex<Option<Walked>>,
}

/// A chain walk and what it was made against: `data_version`, the head.
type Walked = (i64, Option<(i64, String)>, Report);

/// The time now, RFC 3339 (UTC), as every store writes it.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The content hash of a configuration text, as every store records it
/// (SHA-256, hex).
pub fn content_hash(content: &str) -> String {
    sha256_hex(content)
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

const VERSION_COLUMNS: &str =
    "id, parent, author, created_at, comment, content, content_hash, lints, policy_tests";

/// Versions matching `filter` (an SQL tail: `WHERE …`), oldest first, each
/// read leniently ([`rows`]).
pub(crate) fn read_versions(
    conn: &Connection,
    filter: &str,
) -> rusqlite::Result<Vec<Result<Version, Tamper>>> {
    rows::read(
        conn,
        "versions",
        &format!("SELECT {VERSION_COLUMNS} FROM versions {filter} ORDER BY id"),
        &[
            "id",
            "parent",
            "author",
            "created_at",
            "comment",
            "content",
            "content_hash",
            "lints",
            "policy_tests",
        ],
        |c| {
            Ok(Version {
                id: c.int(0)?,
                parent: c.opt_int(1)?,
                author: c.text(2)?,
                created_at: c.text(3)?,
                comment: c.text(4)?,
                content: c.text(5)?,
                content_hash: c.text(6)?,
                lints: c.text(7)?,
                policy_tests: c.text(8)?,
            })
        },
    )
}

impl Store {
    /// Open (or create) the store in `data_dir` (`corsgate.db`).
    pub fn open(data_dir: &Path) -> Result<Store, rusqlite::Error> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("{}: {e}", data_dir.display())),
            )
        })?;
        let path = data_dir.join("corsgate.db");
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS versions (
                 id INTEGER PRIMARY KEY,
                 parent INTEGER REFERENCES versions(id),
                 author TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 comment TEXT NOT NULL,
                 content TEXT NOT NULL,
                 content_hash TEXT NOT NULL,
                 lints TEXT NOT NULL,
                 policy_tests TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS active (
                 singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                 version INTEGER NOT NULL REFERENCES versions(id)
             );",
        )?;
        audit::create(&conn)?;
        Ok(Store {
            conn,
            path,
            signer: None,
            keys: Vec::new(),
            checked: verify::Checked::default(),
            walked: std::sync::Mutex::default(),
        })
    }

    /// Sign every entry from now on with `signer`, and trust signatures by
    /// it and by `previous` (public keys of earlier signing keys). When the
    /// head is not signed by this key yet (a store written before signing,
    /// or after a key rotation), an `audit.signing_key` entry is appended
    /// first: its signed head covers the whole history before it through
    /// the chain, so nothing has to be rewritten.
    pub fn sign_with(
        &mut self,
        signer: Signer,
        previous: Vec<PublicKey>,
    ) -> rusqlite::Result<Option<Entry>> {
        self.keys = previous;
        self.keys.push(signer.public().clone());
        let last: Option<(i64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT seq, key_id FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1).ok().flatten())),
            )
            .optional()?;
        let id = signer.public().id().to_owned();
        self.signer = Some(signer);
        let previous_key = match &last {
            Some((_, Some(k))) if *k == id => return Ok(None),
            Some((_, k)) => k.clone(),
            None => None,
        };
        // Never sign over a chain that does not verify: the new signature
        // would seem to vouch for what was changed.
        if !self.verify(None)?.allows_signing_entry() {
            return Ok(None);
        }
        let detail = serde_json::json!({
            "keyId": id,
            "previousKeyId": previous_key,
            "entriesBefore": last.as_ref().map_or(0, |l| l.0),
        });
        self.record("system", "audit.signing_key", None, &detail)
            .map(Some)
    }

    /// The keys whose signatures this store trusts.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verify everything (every signature), with the store's trusted keys
    /// and `expect_head`, the head hash recorded outside the store.
    pub fn verify(&self, expect_head: Option<&str>) -> rusqlite::Result<Report> {
        verify::check(&self.conn, &self.keys, expect_head, None, true)
    }

    /// [`Store::verify`] with other keys (the `audit verify` command).
    pub fn verify_with(
        &self,
        keys: &[PublicKey],
        expect_head: Option<&str>,
    ) -> rusqlite::Result<Report> {
        verify::check(&self.conn, keys, expect_head, None, true)
    }

    fn checked(&self, v: Option<Result<Version, Tamper>>) -> Result<Option<Version>, VerifyError> {
        let Some(v) = v.transpose()? else {
            return Ok(None);
        };
        let data_version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let head = audit::head(&self.conn)?;
        let mut walked = self.walked.lock().unwrap_or_else(|p| p.into_inner());
        let report = match &*walked {
            Some((dv, h, r)) if *dv == data_version && *h == head => r.clone(),
            _ => {
                let r = verify::check(&self.conn, &self.keys, None, Some(&self.checked), false)?;
                *walked = Some((data_version, head, r.clone()));
                r
            }
        };
        drop(walked);
        match report.version_problem(&v) {
            Some(t) => {
                tracing::error!(version = v.id, problem = %t, "a stored version failed verification and is not used");
                Err(t.into())
            }
            None => Ok(Some(v)),
        }
    }

    /// The newest version that verifies, with the report that says so;
    /// what start-up serves when the active version does not verify.
    pub fn newest_verified(&self) -> rusqlite::Result<(Option<Version>, Report)> {
        let report = self.verify(None)?;
        let newest = read_versions(&self.conn, "")?
            .into_iter()
            .filter_map(Result::ok)
            .rfind(|v| report.version_problem(v).is_none());
        Ok((newest, report))
    }

    /// The id the `active` table names, unverified.
    pub fn active_id(&self) -> rusqlite::Result<Option<i64>> {
        self.conn
            .query_row("SELECT version FROM active WHERE singleton = 1", [], |r| {
                r.get(0)
            })
            .optional()
    }

    /// The head hash (`None` for an empty log).
    pub fn head(&self) -> rusqlite::Result<Option<(i64, String)>> {
        audit::head(&self.conn)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The active version, if any, verified.
    pub fn active(&self) -> Result<Option<Version>, VerifyError> {
        match self.active_id()? {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    /// One version, verified: its content matches its hash and an
    /// authenticated audit entry recorded that hash.
    pub fn get(&self, id: i64) -> Result<Option<Version>, VerifyError> {
        let row = read_versions(&self.conn, &format!("WHERE id = {id}"))?;
        self.checked(row.into_iter().next())
    }

    /// Every version, oldest first (listing only: content is verified when
    /// a version is read with [`Store::get`]); a malformed row fails.
    pub fn history(&self) -> Result<Vec<Version>, VerifyError> {
        read_versions(&self.conn, "")?
            .into_iter()
            .map(|r| r.map_err(VerifyError::from))
            .collect()
    }

    /// Validate `content` and, if it is valid and `based_on` is still the
    /// active version, store it as a new active version and audit it. A
    /// refused candidate is audited as `config.rejected` and changes
    /// nothing else.
    pub fn apply(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
    ) -> Result<Version, ApplyError> {
        self.apply_with(based_on, author, comment, content, &mut |_| Ok(()))
    }

    /// [`Store::apply`], with `activate` run inside the transaction once the
    /// candidate is valid and its base current: the running gateway swaps
    /// to it there. If `activate` fails nothing is stored, so the store and
    /// the gateway never disagree about what is active.
    pub fn apply_with(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        activate: &mut dyn FnMut(&Loaded) -> Result<(), String>,
    ) -> Result<Version, ApplyError> {
        self.apply_as(
            based_on,
            author,
            comment,
            content,
            "config.applied",
            activate,
        )
    }

    fn apply_as(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        action: &str,
        activate: &mut dyn FnMut(&Loaded) -> Result<(), String>,
    ) -> Result<Version, ApplyError> {
        // Validation first, outside the transaction: it can take a while
        // (regex compilation, canaries) and needs no lock.
        let report = corsgate_routes::check_str(content, Some("<candidate>"));
        let at = now();
        // IMMEDIATE: the base check and the write are one atomic step even
        // with several processes on the same file.
        let signer = self.signer.as_ref();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let active: Option<i64> = tx
            .query_row("SELECT version FROM active WHERE singleton = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        if active != based_on {
            return Err(ApplyError::Stale { based_on, active });
        }
        let Some(loaded) = report.loaded.as_ref().filter(|_| report.errors.is_empty()) else {
            let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            let detail = serde_json::json!({ "comment": comment, "errors": errors }).to_string();
            audit::append(&tx, signer, &at, author, "config.rejected", None, &detail)?;
            tx.commit()?;
            return Err(ApplyError::Rejected(errors));
        };
        if let Err(why) = activate(loaded) {
            // Nothing of the candidate is stored; the refusal is audited
            // in the same transaction instead.
            let detail =
                serde_json::json!({ "comment": comment, "errors": [why.clone()] }).to_string();
            audit::append(&tx, signer, &at, author, "config.rejected", None, &detail)?;
            tx.commit()?;
            return Err(ApplyError::NotApplied(why));
        }
        let lints: Vec<_> = report
            .lints
            .iter()
            .map(corsgate_config::ConfigLint::to_json)
            .collect();
        let lints = serde_json::Value::Array(lints).to_string();
        let tests = serde_json::json!({ "run": report.policy_tests, "failed": 0 }).to_string();
        let hash = sha256_hex(content);
        tx.execute(
            "INSERT INTO versions (parent, author, created_at, comment, content, content_hash, lints, policy_tests)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![active, author, at, comment, content, hash, lints, tests],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO active (singleton, version) VALUES (1, ?1)
             ON CONFLICT(singleton) DO UPDATE SET version = excluded.version",
            [id],
        )?;
        let detail = serde_json::json!({
            "comment": comment,
            "parent": active,
            "content_hash": hash,
        })
        .to_string();
        audit::append(&tx, signer, &at, author, action, Some(id), &detail)?;
        tx.commit()?;
        self.get(id)?.ok_or(ApplyError::NoSuchVersion(id))
    }

    /// Apply the configuration file's content as a new version (author
    /// `file`, audited as `config.reloaded_from_file`), based on the active
    /// version; `Ok(None)` when it equals the active version already.
    pub fn reload_from_file(
        &mut self,
        file: &str,
        content: &str,
        activate: &mut dyn FnMut(&Loaded) -> Result<(), String>,
    ) -> Result<Option<Version>, ApplyError> {
        let active = self.active()?;
        if active.as_ref().is_some_and(|v| v.content == content) {
            return Ok(None);
        }
        self.apply_as(
            active.map(|v| v.id),
            "file",
            &format!("reloaded from {file}"),
            content,
            "config.reloaded_from_file",
            activate,
        )
        .map(Some)
    }

    /// Make a new version equal to version `to` (history is never
    /// rewritten), based on the active one.
    pub fn rollback(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
    ) -> Result<Version, ApplyError> {
        self.rollback_with(based_on, to, author, comment, &mut |_| Ok(()))
    }

    /// [`Store::rollback`] through the same activation path as
    /// [`Store::apply_with`].
    pub fn rollback_with(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
        activate: &mut dyn FnMut(&Loaded) -> Result<(), String>,
    ) -> Result<Version, ApplyError> {
        let target = self.get(to)?.ok_or(ApplyError::NoSuchVersion(to))?;
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
            activate,
        )
    }

    /// Record an event that changes no version (`token.used`,
    /// `config.reloaded_from_file`).
    pub fn record(
        &mut self,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &serde_json::Value,
    ) -> rusqlite::Result<Entry> {
        let signer = self.signer.as_ref();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let e = audit::append(
            &tx,
            signer,
            &now(),
            actor,
            action,
            version,
            &detail.to_string(),
        )?;
        tx.commit()?;
        Ok(e)
    }

    /// The audit log, oldest first; a malformed row fails, named.
    pub fn audit(&self) -> Result<Vec<Entry>, VerifyError> {
        audit::entries(&self.conn)?
            .into_iter()
            .map(|r| r.map_err(VerifyError::from))
            .collect()
    }

    /// Verify the store with its trusted keys; the number of entries, or
    /// the first problem (an edited, deleted, inserted, reordered, forged
    /// or malformed entry; a version that does not match).
    pub fn verify_audit(&self) -> Result<usize, VerifyError> {
        let report = self.verify(None)?;
        match report.problems.into_iter().next() {
            Some(t) => Err(t.into()),
            None => Ok(report.entries),
        }
    }
}
