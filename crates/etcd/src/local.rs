//! The last known good version on local disk: what an instance applied
//! last, kept in its data directory, so that it starts serving at once
//! when etcd is unreachable, and catches up when it returns.
//!
//! One file, `last-applied.json` (`{version, contentHash, revision,
//! content}`), replaced atomically (written beside it, synced, renamed):
//! a crash leaves the old copy or the new one, never half of one. Read
//! back, its content must match its hash, or it is not used.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastApplied {
    /// The version id in the store.
    pub version: i64,
    /// SHA-256 of the content, hex.
    pub content_hash: String,
    /// The pointer revision it was applied at (where a follower resumes).
    pub revision: i64,
    /// The configuration text.
    pub content: String,
}

/// Why the copy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Reading or writing the file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Not a copy corsgate wrote.
    #[error("{0}: not a last-applied record: {1}")]
    Malformed(PathBuf, String),
    /// Its content does not match its hash.
    #[error("{0}: the content does not match its hash; it is not used")]
    Edited(PathBuf),
}

/// The file in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("last-applied.json")
}

impl LastApplied {
    /// A copy of `content` as version `version`, applied at `revision`.
    pub fn new(version: i64, revision: i64, content: &str) -> LastApplied {
        LastApplied {
            version,
            content_hash: hex::encode(Sha256::digest(content.as_bytes())),
            revision,
            content: content.to_owned(),
        }
    }

    /// Replace the copy in `data_dir` atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), LocalError> {
        let io = |e| LocalError::Io(path(data_dir), e);
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let tmp = data_dir.join("last-applied.json.tmp");
        let text = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path(data_dir)).map_err(io)?;
        if let Ok(d) = std::fs::File::open(data_dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The copy in `data_dir`, verified; `Ok(None)` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<LastApplied>, LocalError> {
        let p = path(data_dir);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::Io(p, e)),
        };
        let copy: LastApplied = serde_json::from_slice(&text)
            .map_err(|e| LocalError::Malformed(p.clone(), e.to_string()))?;
        if hex::encode(Sha256::digest(copy.content.as_bytes())) != copy.content_hash {
            return Err(LocalError::Edited(p));
        }
        Ok(Some(copy))
    }
}
