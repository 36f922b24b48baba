//! Comma-separated lists (RFC 9110 §5.6.1), as the connection-level
//! fields (`Connection`, `TE`, `Transfer-Encoding`) carry them.

/// The non-empty items of a comma-separated list, each trimmed of
/// optional whitespace (SP and HTAB only).
pub fn list_items(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&c| c == b',')
        .map(trim_ows)
        .filter(|i| !i.is_empty())
}

/// `s` without leading or trailing SP and HTAB.
fn trim_ows(s: &[u8]) -> &[u8] {
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !ows(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !ows(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_trimmed_and_empty_ones_dropped() {
        let items: Vec<&[u8]> = list_items(b" a ,b,, \tc\t,\x0bd").collect();
        // A vertical tab is not optional whitespace: it stays.
        assert_eq!(items, [&b"a"[..], b"b", b"c", b"\x0bd"]);
        assert_eq!(list_items(b" , ,").count(), 0);
    }
}
