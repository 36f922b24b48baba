//! The `Date` field (RFC 9110 §6.6.1) a server adds to every response,
//! formatted at most once a second per thread: formatting costs about a
//! thousand instructions, and a busy server sends many responses a second.

use std::cell::RefCell;
use std::time::SystemTime;

thread_local! {
    /// The second it was formatted for, and the 29-byte IMF-fixdate.
    static CACHED_DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Call `f` with the current time as an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED_DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() == 29 {
                cached.1.copy_from_slice(bytes);
                cached.0 = secs;
            }
        }
        f(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let mut got = Vec::new();
        with_date(|d| got.extend_from_slice(d));
        let text = std::str::from_utf8(&got).expect("ascii");
        let parsed = httpdate::parse_http_date(text).expect("an HTTP date");
        let age = SystemTime::now().duration_since(parsed).expect("not ahead");
        assert!(age.as_secs() <= 2, "{text}");
        assert!(text.ends_with(" GMT") && text.len() == 29, "{text}");
    }
}
