//! `Content-Length` (RFC 9110 §8.6).

/// Strict `Content-Length`: digits only; a list is accepted when every
/// member is the same number (RFC 9110 §8.6). `None` for anything else,
/// which a receiver must treat as an unrecoverable framing error.
#[inline]
pub fn content_length(value: &[u8]) -> Option<u64> {
    let mut found: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        // At most 19 digits always fit in a u64.
        if part.is_empty() || part.len() > 19 {
            return None;
        }
        let mut n: u64 = 0;
        for &d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
        }
        match found {
            Some(prev) if prev != n => return None,
            _ => found = Some(n),
        }
    }
    found
}
