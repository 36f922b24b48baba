//! The store the admin API serves from, behind one seam: the embedded
//! SQLite [`Store`] of one box, or a shared store (etcd) implemented by the
//! binary. Every method runs on a blocking thread (see `with_store`).

use corsgate_config::Loaded;
use corsgate_store::{ApplyError, Entry, Report, Store, Version};

/// How an apply hands a validated configuration to the running gateway.
pub type ActivateFn<'a> = &'a mut dyn FnMut(&Loaded) -> Result<(), String>;

/// What the admin API needs of a versioned, audited store. Errors other
/// than a refused change are reported as text (the API answers 500).
pub trait Backend: Send {
    /// The active version's id, unverified.
    fn active_id(&self) -> Result<Option<i64>, String>;
    /// The audit head: number of entries and last hash.
    fn head(&self) -> Result<Option<(i64, String)>, String>;
    /// The active version, verified.
    fn active(&self) -> Result<Option<Version>, String>;
    /// One version, verified.
    fn get(&self, id: i64) -> Result<Option<Version>, String>;
    /// Every version, oldest first.
    fn history(&self) -> Result<Vec<Version>, String>;
    /// Validate, check the base (stale: 409), activate, store and audit.
    fn apply_with(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError>;
    /// A new version equal to version `to`.
    fn rollback_with(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError>;
    /// Record an event that changes no version.
    fn record(
        &mut self,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &serde_json::Value,
    ) -> Result<(), String>;
    /// The audit log, oldest first.
    fn audit(&self) -> Result<Vec<Entry>, String>;
    /// Verify everything with the store's trusted keys.
    fn verify(&self, expect_head: Option<&str>) -> Result<Report, String>;
}

fn text<E: ToString>(e: E) -> String {
    e.to_string()
}

impl Backend for Store {
    fn active_id(&self) -> Result<Option<i64>, String> {
        Store::active_id(self).map_err(text)
    }
    fn head(&self) -> Result<Option<(i64, String)>, String> {
        Store::head(self).map_err(text)
    }
    fn active(&self) -> Result<Option<Version>, String> {
        Store::active(self).map_err(text)
    }
    fn get(&self, id: i64) -> Result<Option<Version>, String> {
        Store::get(self, id).map_err(text)
    }
    fn history(&self) -> Result<Vec<Version>, String> {
        Store::history(self).map_err(text)
    }
    fn apply_with(
        &mut self,
        based_on: Option<i64>,
        author: &str,
        comment: &str,
        content: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError> {
        Store::apply_with(self, based_on, author, comment, content, activate)
    }
    fn rollback_with(
        &mut self,
        based_on: Option<i64>,
        to: i64,
        author: &str,
        comment: &str,
        activate: ActivateFn<'_>,
    ) -> Result<Version, ApplyError> {
        Store::rollback_with(self, based_on, to, author, comment, activate)
    }
    fn record(
        &mut self,
        actor: &str,
        action: &str,
        version: Option<i64>,
        detail: &serde_json::Value,
    ) -> Result<(), String> {
        Store::record(self, actor, action, version, detail)
            .map(|_| ())
            .map_err(text)
    }
    fn audit(&self) -> Result<Vec<Entry>, String> {
        Store::audit(self).map_err(text)
    }
    fn verify(&self, expect_head: Option<&str>) -> Result<Report, String> {
        Store::verify(self, expect_head).map_err(text)
    }
}
