//! # corsgate-store
//!
//! The management store, in one embedded SQLite file under a data
//! directory:
//!
//! - **versions**: every applied configuration, with its parent, author,
//!   time, comment, full content, content hash, lint results and policy-test
//!   results; one of them is *active*;
//! - **audit**: an append-only log, each entry hash-chained to the previous
//!   one ([`audit`]), written in the same transaction as the change it
//!   records.
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

use corsgate_config::Loaded;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use audit::{Entry, Tamper, VerifyError};

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
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] rusqlite::Error),
}

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

const VERSION_COLUMNS: &str =
    "id, parent, author, created_at, comment, content, content_hash, lints, policy_tests";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    Ok(Version {
        id: r.get(0)?,
        parent: r.get(1)?,
        author: r.get(2)?,
        created_at: r.get(3)?,
        comment: r.get(4)?,
        content: r.get(5)?,
        content_hash: r.get(6)?,
        lints: r.get(7)?,
        policy_tests: r.get(8)?,
    })
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
        Ok(Store { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The active version, if any.
    pub fn active(&self) -> rusqlite::Result<Option<Version>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM versions WHERE id = (SELECT version FROM active WHERE singleton = 1)"
                ),
                [],
                version_row,
            )
            .optional()
    }

    /// One version.
    pub fn get(&self, id: i64) -> rusqlite::Result<Option<Version>> {
        self.conn
            .query_row(
                &format!("SELECT {VERSION_COLUMNS} FROM versions WHERE id = ?1"),
                [id],
                version_row,
            )
            .optional()
    }

    /// Every version, oldest first.
    pub fn history(&self) -> rusqlite::Result<Vec<Version>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions ORDER BY id"
        ))?;
        let rows = stmt.query_map([], version_row)?;
        rows.collect()
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
            audit::append(&tx, &at, author, "config.rejected", None, &detail)?;
            tx.commit()?;
            return Err(ApplyError::Rejected(errors));
        };
        if let Err(why) = activate(loaded) {
            // Nothing of the candidate is stored; the refusal is audited
            // in the same transaction instead.
            let detail =
                serde_json::json!({ "comment": comment, "errors": [why.clone()] }).to_string();
            audit::append(&tx, &at, author, "config.rejected", None, &detail)?;
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
        audit::append(&tx, &at, author, action, Some(id), &detail)?;
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let e = audit::append(&tx, &now(), actor, action, version, &detail.to_string())?;
        tx.commit()?;
        Ok(e)
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> rusqlite::Result<Vec<Entry>> {
        audit::entries(&self.conn)
    }

    /// Walk the audit chain; the number of intact entries, or the first
    /// edited, deleted, inserted or reordered one.
    pub fn verify_audit(&self) -> Result<usize, VerifyError> {
        audit::verify(&self.conn)
    }
}
