//! Differential: the same request bytes given to `parse_request_head` and to
//! hyper's HTTP/1.1 server (over an in-memory pipe, hyper's real
//! connection code) must be accepted or refused alike, and an accepted
//! request must read the same: method, target, version and every field
//! line.
//!
//! The front serves a request itself only when this holds; every head it
//! hands over ([`ParsedRequest::Foreign`]) is hyper's to judge, so the
//! property says nothing about those.

use bytes::{Bytes, BytesMut};
use corsgate_http1::{parse_request_head, NameCache, ParsedRequest};
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::SHAPING;

/// A request as one of the two parsers read it.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    method: String,
    target: String,
    version: http::Version,
    /// (name, value) sorted by name, each name's lines in arrival order
    /// (a header map keeps no order between names).
    fields: Vec<(String, Vec<u8>)>,
}

/// What hyper's server did with the bytes.
#[derive(Debug)]
enum HyperSaw {
    Accepted(Read),
    /// hyper answered this status without calling the service.
    Refused(u16),
    /// Neither: it waited for more and saw the end of input.
    Nothing,
}

fn sorted(mut fields: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

fn hyper_reads(rt: &tokio::runtime::Runtime, bytes: &[u8]) -> HyperSaw {
    let seen: Arc<Mutex<Option<Read>>> = Arc::default();
    let out = {
        let seen = seen.clone();
        rt.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let fields = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect();
                *seen.lock().unwrap() = Some(Read {
                    method: req.method().as_str().to_owned(),
                    target: req.uri().to_string(),
                    version: req.version(),
                    fields: sorted(fields),
                });
                async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service);
            let task = tokio::spawn(conn);
            client.write_all(bytes).await.unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                client.read_to_end(&mut out),
            )
            .await;
            task.abort();
            out
        })
    };
    if let Some(read) = seen.lock().unwrap().take() {
        return HyperSaw::Accepted(read);
    }
    match out
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
    {
        Some(status) if out.starts_with(b"HTTP/1.1 ") => HyperSaw::Refused(status),
        _ => HyperSaw::Nothing,
    }
}

/// Bytes that make a request line or field invalid somewhere.
const HOSTILE: &[&str] = &[
    " ", "\t", "\0", "\x7f", "\x01", "\r", "\u{e9}", "\"", "{", "|", "\\", "^", "`", "%", "#", ":",
];

fn piece(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::string::string_regex(valid).unwrap(),
        1 => (proptest::string::string_regex(valid).unwrap(), proptest::sample::select(HOSTILE), any::<prop::sample::Index>())
            .prop_map(|(s, bad, at)| {
                let mut cut = at.index(s.len() + 1);
                while !s.is_char_boundary(cut) { cut -= 1; }
                format!("{}{bad}{}", &s[..cut], &s[cut..])
            }),
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        6 => proptest::sample::select(vec!["GET", "OPTIONS", "DELETE", "HEAD", "PATCH", "PUT", "get", "M-SEARCH"]).prop_map(str::to_owned),
        1 => piece("[A-Z]{1,8}"),
    ];
    let target = prop_oneof![
        6 => piece("/[a-zA-Z0-9/._~%?=&+-]{0,24}"),
        1 => proptest::sample::select(vec!["*", "http://a.test/x?y", "https://a.test:8443", "http://[::1", "//x", "/%zz", ""]).prop_map(str::to_owned),
    ];
    let version = prop_oneof![
        10 => Just("HTTP/1.1"),
        1 => proptest::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.10"]),
    ];
    let field = (
        piece("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"),
        prop_oneof![
            6 => proptest::string::string_regex("[ -~]{0,24}").unwrap().prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..12),
        ],
        prop_oneof![6 => Just("\r\n"), 1 => Just("\n")],
    );
    (
        method,
        target,
        version,
        proptest::collection::vec(field, 0..8),
        prop_oneof![6 => Just("\r\n"), 1 => Just("\n")],
    )
        .prop_map(|(method, target, version, fields, end)| {
            let mut out = format!("{method} {target} {version}\r\n").into_bytes();
            for (name, value, eol) in fields {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(eol.as_bytes());
            }
            out.extend_from_slice(end.as_bytes());
            out
        })
}

fn ours(bytes: &[u8]) -> ParsedRequest {
    parse_request_head(&mut BytesMut::from(bytes), &mut NameCache::default())
}

fn read_of(head: &corsgate_http1::RequestHead) -> Read {
    Read {
        method: head.method.as_str().to_owned(),
        target: head.uri.to_string(),
        // The only version served.
        version: http::Version::HTTP_11,
        fields: sorted(
            head.fields
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        ),
    }
}

/// Check one input; `Err` names the disagreement.
fn agree(rt: &tokio::runtime::Runtime, bytes: &[u8]) -> Result<(), String> {
    let mine = ours(bytes);
    let theirs = hyper_reads(rt, bytes);
    let text = String::from_utf8_lossy(bytes);
    match (&mine, &theirs) {
        (ParsedRequest::Foreign, _) if handed_over(bytes) => Ok(()),
        (ParsedRequest::Complete(h), HyperSaw::Accepted(r)) if read_of(h) == *r => Ok(()),
        (ParsedRequest::Bad(_), HyperSaw::Refused(400)) => Ok(()),
        (ParsedRequest::Partial, HyperSaw::Nothing) => Ok(()),
        _ => Err(format!("{text:?}: corsgate {mine:?}, hyper {theirs:?}")),
    }
}

/// Is there a documented reason to hand these bytes over: not HTTP/1.1,
/// `CONNECT`, the HTTP/2 preface, or a field line that shapes the request
/// (`TE` and `Connection` only hand over with `upgrade`, so any such line
/// counts here as a possible reason).
fn handed_over(bytes: &[u8]) -> bool {
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let parts: Vec<&[u8]> = first.split(|&b| b == b' ').collect();
    if parts.last() != Some(&&b"HTTP/1.1"[..]) || parts[0] == b"CONNECT" || parts[0] == b"PRI" {
        return true;
    }
    lines.any(|line| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        SHAPING
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(name))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Cases a generator reaches rarely, each once: obs-text and DEL in a
/// value, bare CR, a space before the colon, LF-only lines, an empty name,
/// absolute and asterisk forms, an unrepresentable target.
#[test]
fn named_cases_agree() {
    let rt = runtime();
    for case in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nX: caf\xc3\xa9 \xff\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET http://a.test/x HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX:\ta\t\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \0\r\n\r\n",
    ] {
        if let Err(e) = agree(&rt, case) {
            panic!("{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn corsgate_and_hyper_read_requests_alike(bytes in request()) {
        thread_local! {
            static RT: tokio::runtime::Runtime = runtime();
        }
        let result = RT.with(|rt| agree(rt, &bytes));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
