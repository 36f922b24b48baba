//! Reading a request head: corsgate-http1 parses it; this module turns
//! the result into the gateway's request, and reads past an oversized head
//! for its `Origin`, so that every answer carries CORS.

use crate::client_error::BadRequest;
use crate::request::{ClientRequest, FieldList};
use bytes::BytesMut;
use corsgate_http1::{field_line_value, parse_request_head, scan_field_lines, ParsedRequest};
use http::header::ORIGIN;
use std::io;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) use corsgate_http1::NameCache;

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
    /// A head that is not HTTP/1.1: answered 400 through the pipeline, with
    /// the `Origin` lines found in it, then the connection closes, as hyper
    /// does.
    Bad(FieldList),
}

/// Parse one request head from the front of `buf` (corsgate-http1's
/// [`parse_request_head`]); on `Complete` the head's bytes are split off
/// `buf`, on `Partial` and `Foreign` `buf` is untouched.
pub(super) fn parse(buf: &mut BytesMut, names: &mut NameCache) -> Parsed {
    match parse_request_head(buf, names) {
        ParsedRequest::Complete(h) => {
            let (close, trailers) = (h.close, h.trailers);
            Parsed::Complete(Head {
                request: ClientRequest::from_head(h),
                close,
                trailers,
            })
        }
        ParsedRequest::Partial => Parsed::Partial,
        ParsedRequest::Foreign => Parsed::Foreign,
        ParsedRequest::Bad(read) => Parsed::Bad(scan_field_lines(&read, &ORIGIN)),
    }
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
            if let Some(v) = field_line_value(line, &ORIGIN) {
                origins.push((ORIGIN, v));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The front's view of the parse: a served head becomes a request whose
    /// fields are a list in arrival order; a refused head keeps its
    /// `Origin` lines (the wire-level cases are corsgate-http1's tests).
    #[test]
    fn heads_become_requests_or_refusals_with_their_origin() {
        let mut buf = BytesMut::from(
            &b"GET /p HTTP/1.1\r\nOrigin: https://a.test\r\nConnection: close\r\n\r\n"[..],
        );
        let Parsed::Complete(head) = parse(&mut buf, &mut NameCache::default()) else {
            panic!("not served");
        };
        assert!(head.close && !head.trailers);
        assert_eq!(head.request.uri().path(), "/p");
        let fields: Vec<_> = head
            .request
            .fields()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(fields, ["origin", "connection"]);
        let mut bad = BytesMut::from(
            &b"GET / HTTP/1.1\r\nBad Name: x\r\norigin:  https://a.test \r\n\r\n"[..],
        );
        let Parsed::Bad(origins) = parse(&mut bad, &mut NameCache::default()) else {
            panic!("not refused");
        };
        assert_eq!(origins.len(), 1);
        assert_eq!(origins[0].1, "https://a.test");
    }
}
