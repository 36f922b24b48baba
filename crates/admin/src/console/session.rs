//! Console sessions: a browser signs in once with a token and then holds a
//! random session id in an `HttpOnly` cookie, so the token itself never
//! sits in the page (no `localStorage`, no URL) after sign-in.
//!
//! Only the SHA-256 of a session id is kept, so a memory dump or a debug
//! print of the table does not hand out live sessions. Each session carries
//! the role of the token it was opened with and a CSRF token the page must
//! echo in `X-CSRF-Token` on every state-changing call (double submit
//! against the server-side copy, not against a cookie).

use crate::Token;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lives after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// At most this many live sessions; the oldest is dropped beyond it, so a
/// token holder signing in in a loop cannot grow the table without bound.
pub const MAX_SESSIONS: usize = 256;

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The token it was opened with (its name is the author of changes).
    pub token: Token,
    /// The CSRF token the page must send back.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

/// The live sessions, keyed by the SHA-256 of their id.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes from the kernel, as hex.
pub(crate) fn random_hex() -> Result<String, String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("no randomness for a session id: {e}"))?;
    Ok(hex::encode(buf))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Open a session for `token`: its id (for the cookie) and its CSRF
    /// token (for the page).
    pub fn open(&self, token: &Token, now: Instant) -> Result<(String, String), String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires > now);
        while live.len() >= MAX_SESSIONS {
            let oldest = live.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            match oldest {
                Some(k) => live.remove(&k),
                None => break,
            };
        }
        live.insert(
            key(&id),
            Session {
                token: token.clone(),
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        Ok((id, csrf))
    }

    /// The live session with this id, if any (an expired one is removed).
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let k = key(id);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(&k) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                live.remove(&k);
                None
            }
            None => None,
        }
    }

    /// End a session.
    pub fn close(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(id));
    }

    /// Is any stored key equal to `id` in clear? (Never: for tests.)
    #[cfg(test)]
    fn stores_clear(&self, id: &str) -> bool {
        let live = self.live.lock().unwrap();
        live.keys().any(|k| hex::encode(k) == id) || live.values().any(|s| s.csrf == id)
    }
}

/// Constant-time equality of two strings of any length.
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use corsgate_config::Role;

    fn token(role: Role) -> Token {
        Token {
            name: "t".into(),
            sha256: [7; 32],
            role,
        }
    }

    #[test]
    fn a_session_keeps_its_role_and_expires() {
        let s = Sessions::default();
        let now = Instant::now();
        let (id, csrf) = s.open(&token(Role::Viewer), now).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        let got = s.get(&id, now).unwrap();
        assert_eq!(got.token.role, Role::Viewer);
        assert_eq!(got.csrf, csrf);
        assert!(s
            .get(&id, now + SESSION_TTL + Duration::from_secs(1))
            .is_none());
        // Removed once seen expired.
        assert!(s.get(&id, now).is_none());
    }

    #[test]
    fn only_the_hash_of_the_id_is_stored() {
        let s = Sessions::default();
        let (id, _) = s.open(&token(Role::Editor), Instant::now()).unwrap();
        assert!(!s.stores_clear(&id));
        assert!(s
            .live
            .lock()
            .unwrap()
            .contains_key(&<[u8; 32]>::from(Sha256::digest(id.as_bytes()))));
    }

    #[test]
    fn unknown_and_closed_sessions_are_refused() {
        let s = Sessions::default();
        let now = Instant::now();
        let (id, _) = s.open(&token(Role::Editor), now).unwrap();
        assert!(s.get("0".repeat(64).as_str(), now).is_none());
        s.close(&id);
        assert!(s.get(&id, now).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::default();
        let now = Instant::now();
        let mut first = None;
        for i in 0..MAX_SESSIONS + 10 {
            let (id, _) = s
                .open(&token(Role::Viewer), now + Duration::from_millis(i as u64))
                .unwrap();
            first.get_or_insert(id);
        }
        assert_eq!(s.live.lock().unwrap().len(), MAX_SESSIONS);
        assert!(s.get(&first.unwrap(), now).is_none());
    }

    #[test]
    fn string_comparison() {
        assert!(same_str("abc", "abc"));
        assert!(!same_str("abc", "abd"));
        assert!(!same_str("abc", "abcd"));
        assert!(!same_str("", "a"));
    }
}
