//! The request head (`parse_request_head`): which heads are served, handed
//! over or refused; the fields as sent; the name cache; arbitrary bytes.

use bytes::BytesMut;
use corsgate_http1::{
    parse_request_head, scan_field_lines, HostLines, NameCache, ParsedRequest, MAX_REQUEST_FIELDS,
};
use http::header::ORIGIN;
use http::HeaderName;

mod common;
use common::SHAPING;

fn parse_str(s: &str) -> (ParsedRequest, usize) {
    let mut buf = BytesMut::from(s.as_bytes());
    let p = parse_request_head(&mut buf, &mut NameCache::default());
    (p, buf.len())
}

/// Which requests the front serves, and which go to hyper untouched.
#[test]
fn request_shapes() {
    // (request, served by the front)
    let table: &[(&str, bool)] = &[
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        ("OPTIONS /x HTTP/1.1\r\nOrigin: https://a\r\n\r\n", true),
        (
            "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
            true,
        ),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", false),
        ("GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", false),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        ),
        ("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", false),
        ("PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", false),
        ("CONNECT a:443 HTTP/1.1\r\n\r\n", false),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false),
    ];
    // Heads `httparse` refuses are answered 400 by the front, through
    // the pipeline (so with CORS), as hyper would answer them without.
    for text in [
        "GET / HTTP/1.1\r\nBad Name: x\r\nOrigin: https://a.test\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\rb\r\nOrigin: https://a.test\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nOrigin: https://a.test\r\n\r\n",
        "GET / HTTP/1.1\nX\r\nOrigin: https://a.test\n\n",
    ] {
        let ParsedRequest::Bad(read) = parse_str(text).0 else {
            panic!("not refused: {text:?}");
        };
        let origins = scan_field_lines(&read, &ORIGIN);
        assert_eq!(origins.len(), 1, "{text:?}");
        assert_eq!(origins[0].1, "https://a.test", "{text:?}");
    }
    for (text, served) in table {
        let (parsed, left) = parse_str(text);
        match parsed {
            ParsedRequest::Complete(_) => {
                assert!(served, "front served {text:?}");
                assert_eq!(left, 0, "{text:?}");
            }
            ParsedRequest::Foreign => {
                assert!(!served, "front refused {text:?}");
                // Nothing consumed: hyper sees every byte.
                assert_eq!(left, text.len(), "{text:?}");
            }
            ParsedRequest::Partial | ParsedRequest::Bad(_) => {
                panic!("unexpected parse of {text:?}")
            }
        }
    }
}

/// Heads `httparse` accepts but `http` cannot represent are answered
/// 400 by the front itself (hyper answers them 400 too).
#[test]
fn unrepresentable_targets_are_bad_requests() {
    let text = "GET http://[::1 HTTP/1.1\r\n\r\n";
    assert!(
        matches!(parse_str(text).0, ParsedRequest::Bad(_)),
        "{text:?}"
    );
}

#[test]
fn more_fields_than_the_front_parses_go_to_hyper() {
    let mut text = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_REQUEST_FIELDS {
        text.push_str(&format!("x-{i}: v\r\n"));
    }
    text.push_str("\r\n");
    assert!(matches!(parse_str(&text).0, ParsedRequest::Foreign));
}

#[test]
fn a_parsed_head_keeps_fields_in_order_and_pipelined_bytes() {
    let text = "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nTE: trailers\r\nConnection: close\r\n\r\nGET /next";
    let mut buf = BytesMut::from(text.as_bytes());
    let ParsedRequest::Complete(head) = parse_request_head(&mut buf, &mut NameCache::default())
    else {
        panic!("not parsed");
    };
    assert_eq!(&buf[..], b"GET /next");
    assert!(head.close && head.trailers);
    assert_eq!(head.uri.path(), "/p");
    assert_eq!(head.uri.query(), Some("q=1"));
    let fields: Vec<_> = head
        .fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("host", "h"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("te", "trailers"),
            ("connection", "close")
        ]
    );
}

#[test]
fn partial_heads_wait_for_more() {
    for text in [
        "",
        "GET",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n",
    ] {
        if text.is_empty() {
            continue;
        }
        assert!(
            matches!(parse_str(text).0, ParsedRequest::Partial),
            "{text:?}"
        );
    }
}

/// The cache answers exactly what parsing would, hit or miss.
#[test]
fn cached_names_equal_parsed_names() {
    let mut cache = NameCache::default();
    let rounds: &[&[&str]] = &[
        &["Host", "Origin", "X-Custom"],
        &["host", "ORIGIN", "x-custom"],
        &["Host", "Accept", "X-Custom", "X-More"],
        &["X-More"],
    ];
    for fields in rounds {
        for (i, raw) in fields.iter().enumerate() {
            let got = cache.name(i, raw.as_bytes()).expect("valid");
            assert_eq!(
                got,
                HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                "{raw}"
            );
        }
    }
    assert!(cache.name(0, b"bad name").is_none());
    assert_eq!(cache.name(0, b"X-More").unwrap(), "x-more");
}

proptest::proptest! {
    /// Arbitrary bytes never panic the parser; it consumes exactly one
    /// head when it serves a request and nothing when it hands the
    /// connection over, so hyper always sees every byte the front did
    /// not serve. A refused head ends the connection, whatever it
    /// consumed.
    #[test]
    fn arbitrary_bytes_are_parsed_or_left_whole(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        match parse_request_head(&mut buf, &mut NameCache::default()) {
            ParsedRequest::Bad(_) => {}
            ParsedRequest::Complete(_) => {
                let end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
                proptest::prop_assert!(end.is_some());
                proptest::prop_assert!(buf.len() < bytes.len());
                proptest::prop_assert_eq!(&buf[..], &bytes[bytes.len() - buf.len()..]);
            }
            ParsedRequest::Partial | ParsedRequest::Foreign => {
                proptest::prop_assert_eq!(&buf[..], &bytes[..]);
            }
        }
    }

    /// A request the front serves parses to the same method, target and
    /// fields whatever the case and spacing of its field lines.
    #[test]
    fn served_requests_keep_their_fields(
        method in proptest::sample::select(vec!["GET", "OPTIONS", "DELETE", "HEAD", "PATCH"]),
        path in "/[a-z0-9/._~-]{0,40}",
        fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,40}"), 0..20),
    ) {
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .filter(|(n, _)| !SHAPING.iter().any(|s| s.eq_ignore_ascii_case(n)))
            .map(|(n, v)| (n, v.trim().to_owned()))
            .collect();
        let mut text = format!("{method} {path} HTTP/1.1\r\n");
        for (n, v) in &fields {
            text.push_str(&format!("{n}:  {v} \r\n"));
        }
        text.push_str("\r\n");
        let mut buf = BytesMut::from(text.as_bytes());
        let ParsedRequest::Complete(head) = parse_request_head(&mut buf, &mut NameCache::default()) else {
            return Err(proptest::test_runner::TestCaseError::fail(format!("not served: {text:?}")));
        };
        proptest::prop_assert!(buf.is_empty());
        proptest::prop_assert_eq!(head.method.as_str(), method);
        proptest::prop_assert_eq!(head.uri.path(), if path.is_empty() { "/" } else { path.as_str() });
        let got: Vec<(String, String)> = head
            .fields
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        // In arrival order, every line kept.
        let want: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        proptest::prop_assert_eq!(head.field_bytes, want.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
        proptest::prop_assert_eq!(got, want);
    }
}

/// The parser reports the `Host` lines (RFC 9112 §3.2) and checks the one
/// line's value, remembering the last valid value per connection: a value
/// that differs from it, even by case or one byte, is checked again.
#[test]
fn host_lines_are_found_and_checked() {
    let one = |index, valid| HostLines::One { index, valid };
    // (fields, what the parser reports)
    let table: &[(&str, HostLines)] = &[
        ("", HostLines::Missing),
        ("Host: a.test\r\n", one(0, true)),
        ("Accept: */*\r\nHOST: a.test:8080\r\n", one(1, true)),
        ("Host: a b/c@d\r\n", one(0, false)),
        ("Host: user@a.test\r\n", one(0, false)),
        ("Host:\r\n", one(0, false)),
        ("Host: a.test\r\nhost: a.test\r\n", HostLines::Repeated),
        ("Host: a\r\nX: 1\r\nHost: b\r\n", HostLines::Repeated),
        ("X-Host: a\r\nHosts: b\r\n", HostLines::Missing),
    ];
    for (fields, want) in table {
        let text = format!("GET / HTTP/1.1\r\n{fields}\r\n");
        let mut buf = BytesMut::from(text.as_bytes());
        let ParsedRequest::Complete(head) = parse_request_head(&mut buf, &mut NameCache::default())
        else {
            panic!("not served: {text:?}");
        };
        assert_eq!(head.host, *want, "{text:?}");
    }
    // One connection: a valid host, the same again, then values that
    // differ from the remembered one.
    let mut names = NameCache::default();
    for (host, valid) in [
        ("a.test", true),
        ("a.test", true),
        ("a.test@b", false),
        ("a.test", true),
        ("a.tes", true),
        ("a.test ", true),
        ("", false),
        ("a..test", false),
    ] {
        let text = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let mut buf = BytesMut::from(text.as_bytes());
        let ParsedRequest::Complete(head) = parse_request_head(&mut buf, &mut names) else {
            panic!("not served: {text:?}");
        };
        assert_eq!(head.host, HostLines::One { index: 0, valid }, "{host:?}");
    }
}
