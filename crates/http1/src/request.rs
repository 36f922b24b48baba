//! A request head (RFC 9112 §3, §5): parsed with httparse into the
//! `http` crate's types, fields kept as a list in arrival order, and sorted
//! into the heads the caller serves itself (a bodiless HTTP/1.1 request),
//! those it hands to another server whole (bodies, upgrades, `Expect`,
//! other versions) and those that are not HTTP at all.

use crate::host::valid_host;
use crate::list::list_items;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Uri};

/// Header fields in arrival order, every line kept (a map would merge
/// names and cost a hash per field; a proxy reads only a few of them).
pub type FieldList = Vec<(HeaderName, HeaderValue)>;

/// Most request header fields parsed; a head with more is handed over
/// ([`ParsedRequest::Foreign`]: hyper's server allows 100).
pub const MAX_REQUEST_FIELDS: usize = 64;

/// One bodiless HTTP/1.1 request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The method (never `CONNECT`).
    pub method: Method,
    /// The request target as sent.
    pub uri: Uri,
    /// Every field line in arrival order; values share the head's bytes.
    pub fields: FieldList,
    /// The client sent `Connection: close`.
    pub close: bool,
    /// The client accepts trailers (`TE: trailers`).
    pub trailers: bool,
    /// Its `Host` lines.
    pub host: HostLines,
    /// The fields' size as a server's header limit counts it: name, value
    /// and four bytes (`: ` and CRLF) a line.
    pub field_bytes: usize,
}

/// What a head's `Host` lines are (RFC 9112 §3.2 makes anything but one
/// valid line a 400), found while the head is parsed so that the server
/// need not look for them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostLines {
    /// No `Host` line.
    Missing,
    /// One: the field at `index`; `valid` if its value passes
    /// [`valid_host`].
    One {
        /// Its position in [`RequestHead::fields`].
        index: usize,
        /// Whether the value is `host[:port]`.
        valid: bool,
    },
    /// More than one.
    Repeated,
}

/// What the bytes at the front of a buffer are.
// A short-lived value on the stack; boxing the head would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ParsedRequest {
    /// A complete bodiless HTTP/1.1 request; its bytes were split off the
    /// buffer.
    Complete(RequestHead),
    /// More bytes are needed; the buffer is untouched.
    Partial,
    /// A head for a full HTTP server (a body, an upgrade, `Expect`,
    /// `CONNECT`, HTTP/1.0, the HTTP/2 preface, more than
    /// [`MAX_REQUEST_FIELDS`] fields); the buffer is untouched, so that
    /// server sees every byte.
    Foreign,
    /// Not an HTTP/1.1 request: httparse refuses it, or the `http` crate
    /// cannot represent its target or a field. Carries the bytes read
    /// (taken out of the buffer), for [`scan_field_lines`]; the connection
    /// must close after the answer, as it does in hyper.
    Bad(Bytes),
}

/// Parse one request head from the front of `buf`.
pub fn parse_request_head(buf: &mut BytesMut, names: &mut NameCache) -> ParsedRequest {
    // Offsets into the head of each field's name and value, in a buffer
    // the connection keeps (no per-request initialisation or allocation).
    let spans = &mut names.spans;
    spans.clear();
    let (len, method, target, close, trailers, mut host, field_bytes) = {
        let mut fields =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return ParsedRequest::Partial,
            // A full server parses more fields, and an HTTP/2 preface is
            // not HTTP/1.1.
            Err(httparse::Error::TooManyHeaders) => return ParsedRequest::Foreign,
            Err(_) if buf.starts_with(b"PRI ") => return ParsedRequest::Foreign,
            Err(_) => return ParsedRequest::Bad(buf.split().freeze()),
        };
        if req.version != Some(1) {
            return ParsedRequest::Foreign;
        }
        let Some(Ok(method)) = req.method.map(|m| Method::from_bytes(m.as_bytes())) else {
            return ParsedRequest::Foreign;
        };
        if method == Method::CONNECT {
            return ParsedRequest::Foreign;
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let Some(path) = req.path else {
            return ParsedRequest::Foreign;
        };
        let target = (offset(path.as_bytes()), path.len() as u32);
        let mut close = false;
        let mut trailers = false;
        let mut host = HostLines::Missing;
        let mut field_bytes = 0;
        for f in req.headers.iter() {
            let name = f.name.as_bytes();
            field_bytes += name.len() + f.value.len() + 4;
            if let Some(class) = classify(name) {
                match class {
                    Class::Foreign => return ParsedRequest::Foreign,
                    Class::Host => {
                        host = match host {
                            HostLines::Missing => HostLines::One {
                                index: spans.len(),
                                valid: false,
                            },
                            _ => HostLines::Repeated,
                        };
                    }
                    Class::Connection => {
                        for token in list_items(f.value) {
                            if token.eq_ignore_ascii_case(b"close") {
                                close = true;
                            } else if token.eq_ignore_ascii_case(b"upgrade") {
                                return ParsedRequest::Foreign;
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
        (len, method, target, close, trailers, host, field_bytes)
    };
    let head = buf.split_to(len).freeze();
    let slice = |at: u32, len: u32| head.slice(at as usize..(at + len) as usize);
    let Ok(uri) = Uri::from_maybe_shared(slice(target.0, target.1)) else {
        return ParsedRequest::Bad(head);
    };
    let mut fields = FieldList::with_capacity(names.spans.len());
    for i in 0..names.spans.len() {
        let (n, nl, v, vl) = names.spans[i];
        let Some(name) = names.name(i, &head[n as usize..(n + nl) as usize]) else {
            return ParsedRequest::Bad(head);
        };
        fields.push((name, field_value(slice(v, vl))));
    }
    if let HostLines::One { index, valid } = &mut host {
        *valid = names.host_is_valid(fields[*index].1.as_bytes());
    }
    ParsedRequest::Complete(RequestHead {
        method,
        uri,
        fields,
        close,
        trailers,
        host,
        field_bytes,
    })
}

/// A field value httparse has accepted, as a `HeaderValue` without checking
/// its bytes again: hyper's own HTTP/1 parser does the same. Checking costs
/// a test a byte, about 225 instructions of a browser's request
/// (callgrind), for bytes already known to pass.
#[inline]
fn field_value(bytes: Bytes) -> HeaderValue {
    // The `http` crate allows in a value exactly what httparse does: HTAB
    // and every byte from SP up except DEL (RFC 9110 §5.5, obs-text
    // included). Debug builds, the tests and the fuzz target check it.
    debug_assert!(HeaderValue::from_maybe_shared(bytes.clone()).is_ok());
    // SAFETY: httparse returned these bytes as a field value, and it
    // refuses a value with any byte `HeaderValue` does not allow (see
    // above; the differential test against hyper and the `request` fuzz
    // target exercise it).
    unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) }
}

/// The lines named `name` of a head that did not parse (malformed or too
/// large), found by a lenient line scan: lines are split at LF (a CR
/// before it is dropped), the first line is the request line, the scan
/// stops at the empty line. A gateway uses it to find a refused request's
/// `Origin`, so that its error can still be read by the page.
pub fn scan_field_lines(head: &[u8], name: &HeaderName) -> FieldList {
    let mut found = FieldList::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(v) = field_line_value(line, name) {
            found.push((name.clone(), v));
        }
    }
    found
}

/// The value of `line` if it is a field line named `name` (`Name: value`,
/// the name in any case, no space before the colon).
pub fn field_line_value(line: &[u8], name: &HeaderName) -> Option<HeaderValue> {
    let n = name.as_str().len();
    let (found, rest) = line.split_at_checked(n)?;
    let value = rest.strip_prefix(b":")?;
    if !found.eq_ignore_ascii_case(name.as_str().as_bytes()) {
        return None;
    }
    HeaderValue::from_bytes(value.trim_ascii()).ok()
}

/// The field names of the previous request on a connection, by position.
/// A client sends the same fields in the same order request after request,
/// so a case-insensitive byte comparison with the name seen at the same
/// position usually replaces parsing the name, and for names the `http`
/// crate does not know (browsers send half a dozen `sec-*` fields) the
/// allocation that parsing makes. Bytes equal to a valid name up to ASCII
/// case always parse to that name, so a hit is exact. The same holds for
/// the connection's last valid `Host` value, kept here too.
#[derive(Default)]
pub struct NameCache {
    names: Vec<HeaderName>,
    /// Scratch for [`parse_request_head`]: each field's name and value as
    /// (offset, length) pairs into the head.
    spans: Vec<(u32, u32, u32, u32)>,
    /// The last `Host` value found valid: a connection's requests name the
    /// same host, and comparing bytes costs a fraction of checking them.
    host: Vec<u8>,
}

impl NameCache {
    /// The name for `raw`, the `i`-th field's name; `None` if invalid.
    pub fn name(&mut self, i: usize, raw: &[u8]) -> Option<HeaderName> {
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

    /// [`valid_host`], remembering the last value it passed.
    fn host_is_valid(&mut self, v: &[u8]) -> bool {
        if !self.host.is_empty() && self.host == v {
            return true;
        }
        let valid = valid_host(v);
        if valid {
            self.host.clear();
            self.host.extend_from_slice(v);
        }
        valid
    }
}

/// Request fields looked at before accepting a request.
enum Class {
    /// A field that hands the request over.
    Foreign,
    Connection,
    Te,
    Host,
}

/// Which of the fields that decide a head's shape `name` is.
fn classify(name: &[u8]) -> Option<Class> {
    // Cheap pre-filter on length: only these lengths name a field of interest.
    let class = match name.len() {
        2 if name.eq_ignore_ascii_case(b"te") => Class::Te,
        4 if name.eq_ignore_ascii_case(b"host") => Class::Host,
        6 if name.eq_ignore_ascii_case(b"expect") => Class::Foreign,
        7 if name.eq_ignore_ascii_case(b"upgrade") => Class::Foreign,
        10 if name.eq_ignore_ascii_case(b"connection") => Class::Connection,
        14 if name.eq_ignore_ascii_case(b"content-length") => Class::Foreign,
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => Class::Foreign,
        _ => return None,
    };
    Some(class)
}
