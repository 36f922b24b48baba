//! Reading a request head: `httparse` into the front's field list, the
//! shapes the front serves and those it hands to hyper, and the `Origin`
//! of a head it refuses (malformed or oversized), so that the answer
//! carries CORS.

use crate::client_error::BadRequest;
use crate::request::{ClientRequest, FieldList};
use bytes::BytesMut;
use corsgate_policy::list_items;
use http::{HeaderName, HeaderValue, Method};
use std::io;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most request header fields the front parses; a request with more goes
/// to hyper.
pub(crate) const MAX_FIELDS: usize = 64;
/// Most bytes of an oversized head read (and dropped) while looking for its
/// `Origin`, so that its 431 carries CORS; past it the answer goes out
/// without reading more.
pub(super) const OVERSIZED_DRAIN: usize = 1 << 20;
/// The longest line of an oversized head kept while scanning it.
pub(super) const SCAN_LINE: usize = 8 * 1024;
/// One parsed request head the front serves.
pub(super) struct Head {
    pub(super) request: ClientRequest,
    /// The client sent `Connection: close`.
    pub(super) close: bool,
    /// The client accepts trailers (`TE: trailers`).
    pub(super) trailers: bool,
}

// A short-lived value on the stack; boxing the head would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    Complete(Head),
    /// More bytes are needed.
    Partial,
    /// Not a request the front serves: hand the connection to hyper.
    Foreign,
    /// A head that is not HTTP/1.1 (`httparse` refuses it, or a URI or
    /// field `http` refuses after it): answered 400 through the pipeline,
    /// with the `Origin` lines found in it, then the connection closes, as
    /// hyper does.
    Bad(FieldList),
}

/// Parse one request head from the front of `buf`; on `Complete` the head's
/// bytes are split off `buf` (the request's URI and field values share
/// them), otherwise `buf` is untouched.
pub(super) fn parse(buf: &mut BytesMut, names: &mut NameCache) -> Parsed {
    // Offsets into the head of each field's name and value, in a buffer
    // the connection keeps (no per-request initialisation or allocation).
    let spans = &mut names.spans;
    spans.clear();
    let (len, method, target, close, trailers) = {
        let mut fields =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            // hyper parses more fields, and an HTTP/2 preface is hyper's.
            Err(httparse::Error::TooManyHeaders) => return Parsed::Foreign,
            Err(_) if buf.starts_with(b"PRI ") => return Parsed::Foreign,
            Err(_) => return Parsed::Bad(scan_origins(buf)),
        };
        if req.version != Some(1) {
            return Parsed::Foreign;
        }
        let Some(Ok(method)) = req.method.map(|m| Method::from_bytes(m.as_bytes())) else {
            return Parsed::Foreign;
        };
        if method == Method::CONNECT {
            return Parsed::Foreign;
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let Some(path) = req.path else {
            return Parsed::Foreign;
        };
        let target = (offset(path.as_bytes()), path.len() as u32);
        let mut close = false;
        let mut trailers = false;
        for f in req.headers.iter() {
            let name = f.name.as_bytes();
            if let Some(class) = classify(name) {
                match class {
                    Class::Foreign => return Parsed::Foreign,
                    Class::Connection => {
                        for token in list_items(f.value) {
                            if token.eq_ignore_ascii_case(b"close") {
                                close = true;
                            } else if token.eq_ignore_ascii_case(b"upgrade") {
                                return Parsed::Foreign;
                            }
                        }
                    }
                    Class::Te => {
                        trailers |= list_items(f.value).any(|t| {
                            t.split(|&b| b == b';')
                                .next()
                                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
                        });
                    }
                }
            }
            spans.push((
                offset(name),
                name.len() as u32,
                offset(f.value),
                f.value.len() as u32,
            ));
        }
        (len, method, target, close, trailers)
    };
    let head = buf.split_to(len).freeze();
    let slice = |at: u32, len: u32| head.slice(at as usize..(at + len) as usize);
    let Ok(uri) = http::Uri::from_maybe_shared(slice(target.0, target.1)) else {
        return Parsed::Bad(scan_origins(&head));
    };
    let mut fields = FieldList::with_capacity(names.spans.len());
    for i in 0..names.spans.len() {
        let (n, nl, v, vl) = names.spans[i];
        let Some(name) = names.name(i, &head[n as usize..(n + nl) as usize]) else {
            return Parsed::Bad(scan_origins(&head));
        };
        let Ok(value) = HeaderValue::from_maybe_shared(slice(v, vl)) else {
            return Parsed::Bad(scan_origins(&head));
        };
        fields.push((name, value));
    }
    let request = ClientRequest::from_list(method, uri, fields);
    Parsed::Complete(Head {
        request,
        close,
        trailers,
    })
}

/// The `Origin` lines of a head that cannot be served (malformed or too
/// large), so that the gateway's 400 or 431 carries CORS: a page can then
/// read the status instead of seeing a CORS failure. Lines are split at LF
/// (a CR before it is dropped); the first line is the request line.
pub(super) fn scan_origins(head: &[u8]) -> FieldList {
    let mut found = FieldList::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(v) = origin_value(line) {
            found.push((http::header::ORIGIN, v));
        }
    }
    found
}

/// The value of an `Origin:` field line, if `line` is one.
fn origin_value(line: &[u8]) -> Option<HeaderValue> {
    let (name, value) = line.split_at_checked(7)?;
    if !name.eq_ignore_ascii_case(b"origin:") {
        return None;
    }
    HeaderValue::from_bytes(value.trim_ascii()).ok()
}

/// Read the rest of a head over [`ClientLimits::max_head`], dropping it
/// line by line and keeping only its `Origin` lines, until the empty line
/// that ends it, [`OVERSIZED_DRAIN`] bytes, the header deadline or the
/// client's close. A request line that did not fit makes it a 414, else a
/// 431 (nginx answers the same two).
pub(super) async fn drain_oversized<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    deadline: Instant,
) -> io::Result<(BadRequest, FieldList)> {
    let reason = if buf.contains(&b'\n') {
        BadRequest::HeaderTooLarge
    } else {
        BadRequest::UriTooLong
    };
    let mut origins = FieldList::new();
    let mut first_line = true;
    // Inside a line longer than SCAN_LINE: drop until its end.
    let mut skipping = false;
    let mut read = buf.len();
    loop {
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(i + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if std::mem::take(&mut skipping) || std::mem::take(&mut first_line) {
                continue;
            }
            if line.is_empty() {
                return Ok((reason, origins));
            }
            if let Some(v) = origin_value(line) {
                origins.push((http::header::ORIGIN, v));
            }
        }
        if buf.len() > SCAN_LINE {
            // Not an Origin line worth reading: drop what came so far.
            skipping = true;
            buf.clear();
        }
        if read >= OVERSIZED_DRAIN {
            return Ok((reason, origins));
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline.into(), io.read_buf(buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok((reason, origins)),
            Ok(Ok(n)) => read += n,
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// The field names of the previous request on this connection, by
/// position. A client sends the same fields in the same order request after
/// request, so a case-insensitive byte comparison with the name seen at the
/// same position usually replaces parsing the name, and for names the
/// `http` crate does not know (browsers send half a dozen `sec-*` fields) the
/// allocation that parsing makes. Bytes equal to a valid name up to ASCII
/// case always parse to that name, so a hit is exact.
#[derive(Default)]
pub(crate) struct NameCache {
    names: Vec<HeaderName>,
    /// Scratch for [`parse`]: each field's name and value as (offset,
    /// length) pairs into the head.
    spans: Vec<(u32, u32, u32, u32)>,
}

impl NameCache {
    /// The name for `raw`, the `i`-th field's name; `None` if invalid.
    fn name(&mut self, i: usize, raw: &[u8]) -> Option<HeaderName> {
        if let Some(seen) = self.names.get(i) {
            if seen.as_str().as_bytes().eq_ignore_ascii_case(raw) {
                return Some(seen.clone());
            }
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        if i < self.names.len() {
            self.names[i] = name.clone();
        } else if i == self.names.len() {
            self.names.push(name.clone());
        }
        Some(name)
    }
}

/// Request fields the front looks at before accepting a request.
enum Class {
    /// A field that takes the request to hyper.
    Foreign,
    Connection,
    Te,
}

fn classify(name: &[u8]) -> Option<Class> {
    // Cheap pre-filter on length: only these lengths name a field of interest.
    let class = match name.len() {
        2 if name.eq_ignore_ascii_case(b"te") => Class::Te,
        6 if name.eq_ignore_ascii_case(b"expect") => Class::Foreign,
        7 if name.eq_ignore_ascii_case(b"upgrade") => Class::Foreign,
        10 if name.eq_ignore_ascii_case(b"connection") => Class::Connection,
        14 if name.eq_ignore_ascii_case(b"content-length") => Class::Foreign,
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => Class::Foreign,
        _ => return None,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corsgate_policy::RequestFields;

    fn parse_str(s: &str) -> (Parsed, usize) {
        let mut buf = BytesMut::from(s.as_bytes());
        let p = parse(&mut buf, &mut NameCache::default());
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
            let Parsed::Bad(origins) = parse_str(text).0 else {
                panic!("not refused: {text:?}");
            };
            assert_eq!(origins.len(), 1, "{text:?}");
            assert_eq!(origins[0].1, "https://a.test", "{text:?}");
        }
        for (text, served) in table {
            let (parsed, left) = parse_str(text);
            match parsed {
                Parsed::Complete(_) => {
                    assert!(served, "front served {text:?}");
                    assert_eq!(left, 0, "{text:?}");
                }
                Parsed::Foreign => {
                    assert!(!served, "front refused {text:?}");
                    // Nothing consumed: hyper sees every byte.
                    assert_eq!(left, text.len(), "{text:?}");
                }
                Parsed::Partial | Parsed::Bad(_) => panic!("unexpected parse of {text:?}"),
            }
        }
    }

    /// Heads `httparse` accepts but `http` cannot represent are answered
    /// 400 by the front itself (hyper answers them 400 too).
    #[test]
    fn unrepresentable_targets_are_bad_requests() {
        let text = "GET http://[::1 HTTP/1.1\r\n\r\n";
        assert!(matches!(parse_str(text).0, Parsed::Bad(_)), "{text:?}");
    }

    #[test]
    fn more_fields_than_the_front_parses_go_to_hyper() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_FIELDS {
            text.push_str(&format!("x-{i}: v\r\n"));
        }
        text.push_str("\r\n");
        assert!(matches!(parse_str(&text).0, Parsed::Foreign));
    }

    #[test]
    fn a_parsed_head_keeps_fields_in_order_and_pipelined_bytes() {
        let text = "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nTE: trailers\r\nConnection: close\r\n\r\nGET /next";
        let mut buf = BytesMut::from(text.as_bytes());
        let Parsed::Complete(head) = parse(&mut buf, &mut NameCache::default()) else {
            panic!("not parsed");
        };
        assert_eq!(&buf[..], b"GET /next");
        assert!(head.close && head.trailers);
        let r = &head.request;
        assert_eq!(r.uri().path(), "/p");
        assert_eq!(r.uri().query(), Some("q=1"));
        let x_a = HeaderName::from_static("x-a");
        let fields = r.fields();
        let values: Vec<_> = fields.values(&x_a).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(
            r.fields().first_value(&http::header::HOST).expect("host"),
            "h"
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
            assert!(matches!(parse_str(text).0, Parsed::Partial), "{text:?}");
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
            match parse(&mut buf, &mut NameCache::default()) {
                Parsed::Bad(_) => {}
                Parsed::Complete(_) => {
                    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
                    proptest::prop_assert!(end.is_some());
                    proptest::prop_assert!(buf.len() < bytes.len());
                    proptest::prop_assert_eq!(&buf[..], &bytes[bytes.len() - buf.len()..]);
                }
                Parsed::Partial | Parsed::Foreign => {
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
                .filter(|(n, _)| classify(n.as_bytes()).is_none())
                .map(|(n, v)| (n, v.trim().to_owned()))
                .collect();
            let mut text = format!("{method} {path} HTTP/1.1\r\n");
            for (n, v) in &fields {
                text.push_str(&format!("{n}:  {v} \r\n"));
            }
            text.push_str("\r\n");
            let mut buf = BytesMut::from(text.as_bytes());
            let Parsed::Complete(head) = parse(&mut buf, &mut NameCache::default()) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("not served: {text:?}")));
            };
            proptest::prop_assert!(buf.is_empty());
            let r = &head.request;
            proptest::prop_assert_eq!(r.method().as_str(), method);
            proptest::prop_assert_eq!(r.uri().path(), if path.is_empty() { "/" } else { path.as_str() });
            let got: Vec<(String, String)> = r
                .fields()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            // In arrival order, every line kept.
            let want: Vec<(String, String)> = fields
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
