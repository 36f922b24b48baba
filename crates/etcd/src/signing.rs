//! Starting to sign, as on SQLite (`corsgate_store::Store::sign_with`):
//! when the head is not signed by the configured key yet (a store written
//! before signing, or a key rotation), an `audit.signing_key` entry is
//! appended first. Its signed head covers the whole history before it
//! through the chain, so nothing is rewritten, and the log says when and
//! to which key signing changed.

use crate::layout::{EntryRecord, Head};
use crate::write::{audit_log, unchanged, ATTEMPTS};
use crate::{now, ApplyError, EtcdStore};
use corsgate_store::{Entry, PublicKey, Signer};
use etcd_client::Txn;

impl EtcdStore {
    /// [`EtcdStore::sign_with`], then the `audit.signing_key` entry when
    /// the last entry is not signed by `signer` (`None` when it is, or
    /// when the chain does not verify: a new signature would seem to
    /// vouch for what was changed). Several instances starting with the
    /// same new key write one entry: the check and the write are one
    /// transaction on the audit head.
    pub async fn start_signing(
        &mut self,
        signer: Signer,
        previous: Vec<PublicKey>,
    ) -> Result<Option<Entry>, ApplyError> {
        self.sign_with(signer, previous);
        self.record_signing_key().await
    }

    /// The `audit.signing_key` entry for the signer set with
    /// [`EtcdStore::sign_with`], when the last entry is not signed by it
    /// (see [`EtcdStore::start_signing`]).
    pub async fn record_signing_key(&mut self) -> Result<Option<Entry>, ApplyError> {
        let Some(id) = self.signer.as_ref().map(|s| s.public().id().to_owned()) else {
            return Ok(None);
        };
        let at = now();
        for _ in 0..ATTEMPTS {
            let head = self
                .read_json::<Head>(&self.keys.head(), "audit", 0)
                .await?;
            let last_key = match &head.value {
                Some(h) => self
                    .read_json::<EntryRecord>(&self.keys.entry(h.count), "audit", h.count)
                    .await?
                    .value
                    .and_then(|e| e.key_id),
                None => None,
            };
            if last_key.as_deref() == Some(id.as_str()) {
                return Ok(None);
            }
            if !self.verify_with(None, None).await?.allows_signing_entry() {
                return Ok(None);
            }
            let detail = serde_json::json!({
                "keyId": id,
                "previousKeyId": last_key,
                "entriesBefore": head.value.as_ref().map_or(0, |h| h.count),
            })
            .to_string();
            let (entry, ops) = self.entry_ops(
                &head.value,
                &at,
                "system",
                "audit.signing_key",
                None,
                &detail,
            );
            let txn = Txn::new()
                .when([
                    unchanged(self.keys.head(), head.mod_revision),
                    unchanged(self.keys.entry(entry.seq), 0),
                ])
                .and_then(ops);
            if self.client.kv_client().txn(txn).await?.succeeded() {
                audit_log(&entry);
                return Ok(Some(entry));
            }
            // The head moved: another instance may have recorded the key.
        }
        Err(ApplyError::Busy)
    }
}
