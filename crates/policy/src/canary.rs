//! Load-time attacker canaries for origin regexes and wildcards (pitfalls
//! P1-P3 in `docs/rules.md`, lints `L-REGEX-DOT` and `L-REGEX-CANARY`).
//!
//! For each regex we derive a shortest string S it matches (reading an
//! unescaped `.` as a literal dot), take its authority A and the literal
//! suffix T after the last non-literal part, and try the strings an attacker
//! would register or craft: `A.evil.test`, `evilT`, `A@evil.test`, a
//! different port, `null` and, for `https://` patterns, `http://A`.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The part of a pattern that must start with the scheme: without a leading
/// `^` (corsgate anchors anyway) and leading inline flag groups like `(?i)`.
pub(crate) fn pattern_body(pattern: &str) -> &str {
    let mut body = pattern.strip_prefix('^').unwrap_or(pattern);
    while let Some(rest) = body.strip_prefix("(?") {
        match rest.find(')') {
            Some(end)
                if rest[..end]
                    .bytes()
                    .all(|c| c.is_ascii_alphabetic() || c == b'-') =>
            {
                body = &rest[end + 1..];
            }
            _ => break,
        }
    }
    body
}

/// Find unescaped `.` outside character classes. Returns byte offsets.
pub(crate) fn unescaped_dots(pattern: &str) -> Vec<usize> {
    let b = pattern.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize; // character-class nesting depth
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' => {
                depth += 1;
                // A `]` (after an optional `^`) right after `[` is literal.
                let mut j = i + 1;
                if b.get(j) == Some(&b'^') {
                    j += 1;
                }
                if b.get(j) == Some(&b']') {
                    i = j + 1;
                    continue;
                }
            }
            b']' if depth > 0 => depth -= 1,
            b'.' if depth == 0 => out.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Does the pattern turn on case-insensitivity?
pub(crate) fn has_case_insensitive_flag(pattern: &str) -> bool {
    // Flags groups look like `(?i)`, `(?im)`, `(?i:...)`, `(?-s)`.
    let b = pattern.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'(' && b[i + 1] == b'?' {
            let mut j = i + 2;
            let mut negated = false;
            while j < b.len() && b[j] != b')' && b[j] != b':' {
                match b[j] {
                    b'-' => negated = true,
                    b'i' if !negated => return true,
                    _ => {}
                }
                j += 1;
            }
        }
        i += 1;
    }
    false
}

/// Is this class what `.` compiles to (any character, or nearly)?
fn is_dot_like(c: &Class) -> bool {
    match c {
        Class::Unicode(u) => {
            let n: u64 = u
                .ranges()
                .iter()
                .map(|r| u64::from(r.end()) - u64::from(r.start()) + 1)
                .sum();
            n > 1000
        }
        Class::Bytes(bc) => {
            let n: u32 = bc
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            n > 200
        }
    }
}

/// A representative character of a class: `.` for dot-like classes, else
/// the first ASCII letter it contains, else the first digit, else its first
/// character.
fn class_char(c: &Class) -> char {
    if is_dot_like(c) {
        return '.';
    }
    let ranges: Vec<(char, char)> = match c {
        Class::Unicode(u) => u.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .map(|r| (char::from(r.start()), char::from(r.end())))
            .collect(),
    };
    let contains = |ch: char| ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi);
    ('a'..='z')
        .chain('0'..='9')
        .find(|&ch| contains(ch))
        .or_else(|| ranges.first().map(|r| r.0))
        .unwrap_or('a')
}

/// A shortest string the expression matches.
fn shortest(h: &Hir, out: &mut String) {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
        HirKind::Class(c) => out.push(class_char(c)),
        HirKind::Repetition(rep) => {
            let mut one = String::new();
            shortest(&rep.sub, &mut one);
            for _ in 0..rep.min {
                out.push_str(&one);
            }
        }
        HirKind::Capture(cap) => shortest(&cap.sub, out),
        HirKind::Concat(items) => items.iter().for_each(|i| shortest(i, out)),
        HirKind::Alternation(alts) => {
            let best = alts
                .iter()
                .map(|a| {
                    let mut s = String::new();
                    shortest(a, &mut s);
                    s
                })
                .min_by_key(|s| s.len())
                .unwrap_or_default();
            out.push_str(&best);
        }
    }
}

/// The literal text after the last non-literal part of the expression.
/// `None` when the whole expression is literal.
fn literal_tail(h: &Hir) -> Option<String> {
    let mut node = h;
    while let HirKind::Capture(cap) = node.kind() {
        node = &cap.sub;
    }
    let items: &[Hir] = match node.kind() {
        HirKind::Concat(items) => items,
        HirKind::Literal(_) | HirKind::Empty => return None,
        _ => return Some(String::new()),
    };
    let mut tail: Vec<String> = Vec::new();
    let mut all_literal = true;
    for item in items.iter().rev() {
        match item.kind() {
            HirKind::Literal(lit) => tail.push(String::from_utf8_lossy(&lit.0).into_owned()),
            HirKind::Look(_) | HirKind::Empty => {}
            _ => {
                all_literal = false;
                break;
            }
        }
    }
    if all_literal {
        return None;
    }
    tail.reverse();
    Some(tail.concat())
}

/// The canary strings for a pattern with scheme `scheme`, authority `a` and
/// literal host suffix `t`.
pub(crate) fn canaries(scheme: &str, a: &str, t: &str, https_only: bool) -> Vec<String> {
    let host = match a.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && !h.ends_with('[') =>
        {
            h
        }
        _ => a,
    };
    let mut v = vec![
        format!("{scheme}://{a}.evil.test"),
        format!("{scheme}://evil{t}"),
        format!("{scheme}://{a}@evil.test"),
        format!("{scheme}://{host}:1"),
        "null".to_owned(),
    ];
    if https_only {
        v.push(format!("http://{a}"));
    }
    v
}

/// The canaries for a user regex; `None` if it cannot be parsed (the
/// compiler reports that separately). A top-level alternation gets the
/// canaries of each branch, so `https://a\.com|.*` cannot hide a
/// catch-all behind a scheme-prefixed first branch; `null` is always tried.
pub(crate) fn regex_canaries(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let body = pattern_body(pattern);
    let mut node = &hir;
    while let HirKind::Capture(cap) = node.kind() {
        node = &cap.sub;
    }
    let branches: Vec<&Hir> = match node.kind() {
        HirKind::Alternation(alts) => alts.iter().collect(),
        _ => vec![node],
    };
    let mut out = vec!["null".to_owned()];
    for branch in branches {
        for c in branch_canaries(branch, body.starts_with("https://")) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Some(out)
}

fn branch_canaries(hir: &Hir, https_only: bool) -> Vec<String> {
    let mut s = String::new();
    shortest(hir, &mut s);
    let Some((scheme, a)) = s.split_once("://") else {
        // A branch without a scheme: its own shortest string is a canary.
        return vec![s];
    };
    let t = match literal_tail(hir) {
        Some(tail) => {
            // The tail may include the scheme when everything else is literal.
            let tail = tail.rsplit_once("://").map_or(tail.as_str(), |(_, t)| t);
            tail.trim_start_matches('.').to_owned()
        }
        None => a.to_owned(),
    };
    let t = if t.is_empty() { a.to_owned() } else { t };
    canaries(scheme, a, &t, https_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2_unescaped_dots_are_found_outside_classes_only() {
        assert_eq!(unescaped_dots(r"https://a\.b\.com"), Vec::<usize>::new());
        assert_eq!(unescaped_dots(r"https://[a-z.]+\.com"), Vec::<usize>::new());
        assert_eq!(unescaped_dots(r"https://[].]+\.com"), Vec::<usize>::new());
        assert_eq!(unescaped_dots(r"https://a.b\.com"), vec![9]);
        assert_eq!(unescaped_dots(r".*\.envoyproxy\.io"), vec![0]);
        assert_eq!(unescaped_dots(r"https://\\.x"), vec![10]);
    }

    #[test]
    fn r13_case_flag_detection() {
        assert!(has_case_insensitive_flag("(?i)https://a\\.com"));
        assert!(has_case_insensitive_flag("https://(?i:a)\\.com"));
        assert!(!has_case_insensitive_flag("(?-i)https://a\\.com"));
        assert!(!has_case_insensitive_flag("https://a\\.com"));
    }

    #[test]
    fn p1_canaries_follow_the_documented_construction() {
        let c = regex_canaries(r"https://[a-z0-9-]+\.envoyproxy\.io").unwrap();
        assert_eq!(
            c,
            vec![
                "null",
                "https://a.envoyproxy.io.evil.test",
                "https://evilenvoyproxy.io",
                "https://a.envoyproxy.io@evil.test",
                "https://a.envoyproxy.io:1",
                "http://a.envoyproxy.io",
            ]
        );
        let c = regex_canaries(r"https?://app\.example\.com").unwrap();
        assert_eq!(c[1], "http://app.example.com.evil.test");
        assert_eq!(c[2], "http://evilapp.example.com");
        assert_eq!(c.len(), 5, "no http:// canary for https?:// patterns");
        let c = regex_canaries(r"http://localhost:[0-9]+").unwrap();
        assert_eq!(c[4], "http://localhost:1");
        let c = regex_canaries(r"https://a\.test|x").unwrap();
        assert!(c.contains(&"x".to_owned()), "{c:?}");
    }
}
