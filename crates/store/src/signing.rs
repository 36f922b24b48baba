//! Ed25519 keys for the audit chain.
//!
//! The hash chain alone proves that the log is consistent, not that it is
//! the log corsgate wrote: anyone who can write `corsgate.db` can edit an
//! entry and recompute every later hash. So after each entry, corsgate signs
//! the new head (`seq` and `hash`) with a private key that lives in a file
//! named by the configuration, never in the store. Whoever holds only the
//! public key can check every signature, but cannot make one.
//!
//! Files are PEM: the private key PKCS#8 (`PRIVATE KEY`, as `openssl genpkey
//! -algorithm ed25519` writes it), the public key SubjectPublicKeyInfo
//! (`PUBLIC KEY`). A key is named by its *key id*, the first 16 hex digits of
//! the SHA-256 of the raw public key, which each signed entry records.

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key
/// follows it (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The file is not a key of the expected kind.
    #[error("{file}: not an Ed25519 {kind} in PEM ({reason})")]
    Format {
        /// The file.
        file: String,
        /// `private key` or `public key`.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The key pair already exists; it is never overwritten.
    #[error("{0} exists already; a key is never overwritten (move it away to make a new one)")]
    Exists(String),
}

/// What is signed after an entry: a domain tag, the entry's position and
/// its chained hash (which covers every earlier entry).
pub fn head_message(seq: i64, hash: &str) -> Vec<u8> {
    format!("corsgate audit head v1\n{seq}\n{hash}").into_bytes()
}

fn key_id_of(public: &[u8]) -> String {
    hex::encode(Sha256::digest(public))[..16].to_owned()
}

/// A public key that verifies audit signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    id: String,
}

impl PublicKey {
    /// From the raw 32 bytes.
    pub fn from_raw(raw: [u8; 32]) -> PublicKey {
        PublicKey {
            id: key_id_of(&raw),
            raw,
        }
    }

    /// Read a `PUBLIC KEY` PEM file.
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let file = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| KeyError::Io {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| KeyError::Format {
            file: file.clone(),
            kind: "public key",
            reason,
        };
        let pem = pem::parse(&text).map_err(|e| bad(e.to_string()))?;
        if pem.tag() != "PUBLIC KEY" {
            return Err(bad(format!("found {:?}", pem.tag())));
        }
        let der = pem.contents();
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| bad("not an Ed25519 SubjectPublicKeyInfo".into()))?;
        Ok(PublicKey::from_raw(raw))
    }

    /// The PEM text.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    /// Its key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Does `sig` (hex) sign `msg` under this key?
    pub fn verifies(&self, msg: &[u8], sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(msg, &sig)
            .is_ok()
    }
}

/// The private key that signs the audit chain.
pub struct Signer {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        write!(f, "Signer({})", self.public.id)
    }
}

impl Signer {
    fn from_pkcs8(der: &[u8]) -> Result<Signer, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
        let raw: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "the public key is not 32 bytes".to_owned())?;
        Ok(Signer {
            pair,
            public: PublicKey::from_raw(raw),
        })
    }

    /// Read a `PRIVATE KEY` (PKCS#8) PEM file. On Unix a file that others
    /// can read is refused: the key is what makes the audit trail trustworthy.
    pub fn read(path: &Path) -> Result<Signer, KeyError> {
        let file = path.display().to_string();
        let io = |e: std::io::Error| KeyError::Io {
            file: file.clone(),
            reason: e.to_string(),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Io {
                    file: file.clone(),
                    reason: format!("readable by others (mode {:o}); chmod 600 it", mode & 0o777),
                });
            }
        }
        let text = std::fs::read(path).map_err(io)?;
        let bad = |reason: String| KeyError::Format {
            file: file.clone(),
            kind: "private key",
            reason,
        };
        let pem = pem::parse(&text).map_err(|e| bad(e.to_string()))?;
        if pem.tag() != "PRIVATE KEY" {
            return Err(bad(format!("found {:?}", pem.tag())));
        }
        Signer::from_pkcs8(pem.contents()).map_err(bad)
    }

    /// A new random key pair.
    pub fn generate() -> Result<(Signer, String), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let fail = |reason: String| KeyError::Format {
            file: "<generated>".into(),
            kind: "private key",
            reason,
        };
        let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| fail(e.to_string()))?;
        let signer = Signer::from_pkcs8(der.as_ref()).map_err(fail)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        Ok((signer, pem))
    }

    /// Generate a key pair into `private` (mode 0600) and `public`; refuses
    /// when either file exists.
    pub fn generate_files(private: &Path, public: &Path) -> Result<Signer, KeyError> {
        for p in [private, public] {
            if p.exists() {
                return Err(KeyError::Exists(p.display().to_string()));
            }
        }
        for dir in [private.parent(), public.parent()].into_iter().flatten() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io {
                    file: dir.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        let (signer, pem) = Signer::generate()?;
        write_new(private, pem.as_bytes(), 0o600)?;
        write_new(public, signer.public.to_pem().as_bytes(), 0o644)?;
        Ok(signer)
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Sign the head after entry `seq`; the signature as hex.
    pub fn sign_head(&self, seq: i64, hash: &str) -> String {
        hex::encode(self.pair.sign(&head_message(seq, hash)).as_ref())
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |e: std::io::Error| KeyError::Io {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_round_trips_through_its_files_and_signs() {
        let d = std::env::temp_dir().join(format!("corsgate-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (private, public) = (d.join("audit.key"), d.join("audit.pub"));
        let signer = Signer::generate_files(&private, &public).unwrap();
        let again = Signer::read(&private).unwrap();
        let pk = PublicKey::read(&public).unwrap();
        assert_eq!(again.public(), &pk);
        assert_eq!(pk.id().len(), 16);
        let sig = signer.sign_head(3, "abc");
        assert!(pk.verifies(&head_message(3, "abc"), &sig));
        assert!(!pk.verifies(&head_message(4, "abc"), &sig));
        assert!(!pk.verifies(&head_message(3, "abd"), &sig));
        // Never overwritten.
        assert!(matches!(
            Signer::generate_files(&private, &d.join("other.pub")),
            Err(KeyError::Exists(_))
        ));
        // A key others can read is refused.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Signer::read(&private).unwrap_err().to_string();
            assert!(e.contains("readable by others"), "{e}");
        }
        // A public key is not a private key.
        assert!(matches!(
            Signer::read(&public),
            Err(KeyError::Format { .. }) | Err(KeyError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
