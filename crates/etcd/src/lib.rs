//! # corsgate-etcd
//!
//! The management store on etcd v3, for a fleet of corsgate instances that
//! share one versioned policy and one tamper-evident audit trail
//! (docs/fleet.md). Same semantics as the embedded SQLite store
//! (crate corsgate-store), now across processes and hosts:
//!
//! - versions are immutable keys; the active version is one pointer key
//!   ([`layout`]);
//! - an apply or rollback is one etcd transaction that compares the
//!   pointer's and the audit head's `mod_revision` with what the change was
//!   computed from: of two editors applying from the same base, on any two
//!   instances, exactly one wins and the other is refused as stale (409),
//!   never a lost update;
//! - the audit entry and the head record are written in that same
//!   transaction, hash-chained and signed exactly as on SQLite, and checked
//!   by the same verifier ([`corsgate_store::verify::check_rows`]);
//! - every read of a version verifies its hash against the chain.

#![deny(missing_docs)]

pub mod connect;
pub mod follow;
pub mod layout;
pub mod local;
pub mod migrate;
pub mod nodes;
mod signing;
mod write;

use corsgate_store::verify::{self, Report};
use corsgate_store::{PublicKey, Signer, Tamper, Version};
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use layout::{EntryRecord, Head, Keys, Pointer, VersionRecord};

pub use write::ApplyError;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// What was read does not verify.
    #[error("store integrity: {0}")]
    Tamper(#[from] Tamper),
    /// etcd failed or was unreachable.
    #[error("etcd: {0}")]
    Etcd(Box<etcd_client::Error>),
}

impl From<etcd_client::Error> for ReadError {
    fn from(e: etcd_client::Error) -> Self {
        ReadError::Etcd(Box::new(e))
    }
}

/// The store, on one etcd client connection (it reconnects by itself).
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    signer: Option<Signer>,
    trusted: Vec<PublicKey>,
    /// The audit entries this handle has read and found intact, oldest
    /// first: a version read fetches only the entries after them, so its
    /// cost follows what changed, not the length of the history.
    chain: std::sync::Mutex<Vec<corsgate_store::Entry>>,
    /// How far signatures were checked already (as on SQLite).
    checked: verify::Checked,
}

/// A value as read, with the revision it was last modified at (0: absent).
pub(crate) struct Read<T> {
    pub value: Option<T>,
    pub mod_revision: i64,
}

impl EtcdStore {
    /// A store under `prefix` on `client`.
    pub fn new(client: Client, prefix: &str) -> EtcdStore {
        EtcdStore {
            client,
            keys: Keys::new(prefix),
            signer: None,
            trusted: Vec::new(),
            chain: std::sync::Mutex::default(),
            checked: verify::Checked::default(),
        }
    }

    /// Sign every entry from now on with `signer`, and trust signatures by
    /// it and by `previous`, without recording it (the migration, which
    /// must find its target empty); [`EtcdStore::start_signing`] records
    /// a new key as SQLite does.
    pub fn sign_with(&mut self, signer: Signer, previous: Vec<PublicKey>) {
        self.trusted = previous;
        self.trusted.push(signer.public().clone());
        self.signer = Some(signer);
    }

    /// The keys whose signatures this store trusts: the signer's and
    /// the earlier ones it was given (none when it does not sign).
    pub fn trusted(&self) -> &[PublicKey] {
        &self.trusted
    }

    /// Whether new entries are signed.
    pub fn signing(&self) -> bool {
        self.signer.is_some()
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The etcd client (for watches and fleet status).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A read, tried again on other members while the one it reached is
    /// unavailable (a member that died stays in the client's rotation for
    /// a moment): reads change nothing, so a retry is always safe.
    pub(crate) async fn range(
        &self,
        key: impl Into<Vec<u8>>,
        opts: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse, etcd_client::Error> {
        let key = key.into();
        let mut attempt = 0;
        loop {
            match self.client.kv_client().get(key.clone(), opts.clone()).await {
                Err(e) if attempt < READ_ATTEMPTS && unavailable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                r => return r,
            }
        }
    }

    pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        table: &'static str,
        row: i64,
    ) -> Result<Read<T>, ReadError> {
        let resp = self.range(key, None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(Read {
                value: None,
                mod_revision: 0,
            });
        };
        let value = serde_json::from_slice(kv.value()).map_err(|_| malformed(table, row))?;
        Ok(Read {
            value: Some(value),
            mod_revision: kv.mod_revision(),
        })
    }

    /// The active pointer, unverified, with its revision.
    pub(crate) async fn pointer(&self) -> Result<Read<Pointer>, ReadError> {
        self.read_json(&self.keys.active(), "versions", 0).await
    }

    /// The id the pointer names, unverified.
    pub async fn active_id(&self) -> Result<Option<i64>, ReadError> {
        Ok(self.pointer().await?.value.map(|p| p.version))
    }

    /// The head record (`None` for an empty log).
    pub async fn head(&self) -> Result<Option<(i64, String)>, ReadError> {
        let head: Read<Head> = self.read_json(&self.keys.head(), "audit", 0).await?;
        Ok(head.value.map(|h| (h.count, h.hash)))
    }

    /// The highest version id stored (0 when none).
    pub(crate) async fn last_version_id(&self) -> Result<i64, ReadError> {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(1)
            .with_keys_only();
        let resp = self.range(self.keys.versions(), Some(opts)).await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| Keys::number(kv.key(), &self.keys.versions()))
            .unwrap_or(0))
    }

    /// Every audit entry, oldest first, each as read or the [`Tamper`]
    /// found reading it.
    async fn entry_rows(&self) -> Result<Vec<Result<corsgate_store::Entry, Tamper>>, ReadError> {
        self.entry_rows_from(1).await
    }

    /// The audit entries from `seq` on, oldest first.
    async fn entry_rows_from(
        &self,
        seq: i64,
    ) -> Result<Vec<Result<corsgate_store::Entry, Tamper>>, ReadError> {
        let under = self.keys.audit();
        // Every key after `P audit/` and before `P audit0` ('0' follows '/').
        let end = format!("{}0", under.trim_end_matches('/'));
        let resp = self
            .range(
                self.keys.entry(seq.max(1)),
                Some(GetOptions::new().with_range(end)),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                let seq = Keys::number(kv.key(), &under).ok_or(malformed("audit", 0))?;
                let r: EntryRecord =
                    serde_json::from_slice(kv.value()).map_err(|_| malformed("audit", seq))?;
                Ok(r.at_seq(seq))
            })
            .collect())
    }

    /// Every version, oldest first, each as read or the [`Tamper`] found.
    async fn version_rows(&self) -> Result<Vec<Result<Version, Tamper>>, ReadError> {
        let under = self.keys.versions();
        let resp = self
            .range(under.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                let id = Keys::number(kv.key(), &under).ok_or(malformed("versions", 0))?;
                let r: VersionRecord =
                    serde_json::from_slice(kv.value()).map_err(|_| malformed("versions", id))?;
                if r.id != id {
                    return Err(Tamper::VersionEdited(id));
                }
                Ok(Version::from(r))
            })
            .collect())
    }

    /// Verify everything with `keys` (the store's own when `None`) and
    /// `expect_head`, the head hash recorded outside the store: the same
    /// checks as `corsgate audit verify` on SQLite.
    pub async fn verify_with(
        &self,
        keys: Option<&[PublicKey]>,
        expect_head: Option<&str>,
    ) -> Result<Report, ReadError> {
        let entries = self.entry_rows().await?;
        let head = self.head().await?;
        let versions = self.version_rows().await?;
        let keys = keys.unwrap_or(&self.trusted);
        Ok(verify::check_rows(
            entries,
            head,
            Some(versions),
            keys,
            expect_head,
            None,
        ))
    }

    /// One version, verified: its content matches its hash and an
    /// authenticated audit entry recorded that hash. The entries this
    /// handle verified before are not fetched again (a later edit of one
    /// of them is found by [`EtcdStore::verify_with`], which reads
    /// everything); the new ones must chain onto them up to the head.
    pub async fn get(&self, id: i64) -> Result<Option<Version>, ReadError> {
        let read: Read<VersionRecord> = self
            .read_json(&self.keys.version(id), "versions", id)
            .await?;
        let Some(v) = read.value else {
            return Ok(None);
        };
        if v.id != id {
            return Err(Tamper::VersionEdited(id).into());
        }
        let v = Version::from(v);
        let known = self.chain.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let next = known.last().map_or(1, |e| e.seq + 1);
        let fresh = self.entry_rows_from(next).await?;
        let head = self.head().await?;
        let mut rows: Vec<Result<corsgate_store::Entry, Tamper>> =
            known.into_iter().map(Ok).collect();
        rows.extend(fresh);
        let entries: Vec<corsgate_store::Entry> = rows
            .iter()
            .map_while(|r| r.as_ref().ok().cloned())
            .collect();
        let report = verify::check_rows(rows, head, None, &self.trusted, None, Some(&self.checked));
        match report.version_problem(&v) {
            Some(t) => {
                tracing::error!(version = id, problem = %t, "a stored version failed verification and is not used");
                // Start from nothing next time: what was known may be
                // what is wrong.
                self.chain.lock().unwrap_or_else(|p| p.into_inner()).clear();
                Err(t.into())
            }
            None => {
                if report.problems.is_empty() {
                    *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = entries;
                }
                Ok(Some(v))
            }
        }
    }

    /// The active version, verified.
    pub async fn active(&self) -> Result<Option<Version>, ReadError> {
        match self.active_id().await? {
            Some(id) => self.get(id).await,
            None => Ok(None),
        }
    }

    /// Every version, oldest first (listing; content is verified by
    /// [`EtcdStore::get`]).
    pub async fn history(&self) -> Result<Vec<Version>, ReadError> {
        self.version_rows()
            .await?
            .into_iter()
            .map(|r| r.map_err(ReadError::from))
            .collect()
    }

    /// The audit log, oldest first.
    pub async fn audit(&self) -> Result<Vec<corsgate_store::Entry>, ReadError> {
        self.entry_rows()
            .await?
            .into_iter()
            .map(|r| r.map_err(ReadError::from))
            .collect()
    }
}

/// How often a read is tried again on an unavailable member.
const READ_ATTEMPTS: u64 = 5;

/// The member could not be reached (as opposed to a refusal).
fn unavailable(e: &etcd_client::Error) -> bool {
    match e {
        // gRPC status 14, UNAVAILABLE.
        etcd_client::Error::GRpcStatus(s) => s.code() as i32 == 14,
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

pub(crate) fn malformed(table: &'static str, row: i64) -> Tamper {
    Tamper::Malformed {
        table,
        row,
        column: "value",
        found: "not a record corsgate writes",
        want: "its JSON record",
    }
}

pub(crate) use corsgate_store::now;
