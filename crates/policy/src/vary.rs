//! Merging `Vary: Origin` into a response (R24 in `docs/rules.md`).
//!
//! The token is appended, never replacing what the upstream said; tokens are
//! compared case-insensitively across all `Vary` lines; `Vary: *` already
//! covers everything and is left alone. When there is no `Vary`, a static
//! value is inserted, so the common case does not allocate.

use crate::token::list_items;
use http::header::VARY;
use http::{HeaderMap, HeaderValue};

/// Merge the token `Origin` into the response's `Vary`.
pub fn merge_vary_origin(headers: &mut HeaderMap) {
    merge_vary(headers, "Origin");
}

/// Merge `token` into the response's `Vary`. Existing lines are folded into
/// one so that caches that read only the first line still see every token.
pub fn merge_vary(headers: &mut HeaderMap, token: &'static str) {
    let mut any = false;
    for line in headers.get_all(VARY) {
        any = true;
        for item in list_items(line.as_bytes()) {
            if item == b"*" || item.eq_ignore_ascii_case(token.as_bytes()) {
                return;
            }
        }
    }
    if !any {
        headers.insert(VARY, HeaderValue::from_static(token));
        return;
    }
    let mut merged: Vec<u8> = Vec::new();
    for line in headers.get_all(VARY) {
        for item in list_items(line.as_bytes()) {
            if !merged.is_empty() {
                merged.extend_from_slice(b", ");
            }
            merged.extend_from_slice(item);
        }
    }
    if !merged.is_empty() {
        merged.extend_from_slice(b", ");
    }
    merged.extend_from_slice(token.as_bytes());
    match HeaderValue::from_bytes(&merged) {
        Ok(v) => {
            headers.insert(VARY, v);
        }
        // Unreachable: the bytes come from valid header values plus a
        // token. Appending a separate line keeps the response correct anyway.
        Err(_) => {
            headers.append(VARY, HeaderValue::from_static(token));
        }
    }
}

/// Write the `Vary` lines a response gets when its own `Vary` values are
/// `lines` and `Origin` is merged in exactly as [`merge_vary_origin`] does
/// it in a map: lines that already name `Origin` or `*` are kept as they
/// are; otherwise one line lists every item, then `Origin`.
pub(crate) fn write_vary_origin<'v>(
    lines: impl Iterator<Item = &'v [u8]> + Clone,
    out: &mut Vec<u8>,
) {
    let covered = lines.clone().any(|line| {
        list_items(line).any(|item| item == b"*" || item.eq_ignore_ascii_case(b"Origin"))
    });
    if covered {
        for line in lines {
            out.extend_from_slice(b"vary: ");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        return;
    }
    out.extend_from_slice(b"vary: ");
    for item in lines.flat_map(list_items) {
        out.extend_from_slice(item);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"Origin\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(lines: &[&'static str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(VARY, HeaderValue::from_static(l));
        }
        merge_vary_origin(&mut h);
        h.get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn r24_vary_is_merged_never_clobbered_or_duplicated() {
        let cases: &[(&[&'static str], &[&str])] = &[
            (&[], &["Origin"]),
            (&["Accept-Encoding"], &["Accept-Encoding, Origin"]),
            (&["accept-encoding, origin"], &["accept-encoding, origin"]),
            (&["ORIGIN"], &["ORIGIN"]),
            (&["*"], &["*"]),
            (&["Accept", "Cookie"], &["Accept, Cookie, Origin"]),
            (&["Accept", "origin"], &["Accept", "origin"]),
            (&["Accept,,  "], &["Accept, Origin"]),
            (&["Originator"], &["Originator, Origin"]),
        ];
        for (input, want) in cases {
            assert_eq!(vary_after(input), *want, "{input:?}");
        }
    }
}
