//! Writing a response: the status line, the fields (from a map, from a
//! preflight's precomputed lines, or an upstream's lines as read plus the
//! CORS completion), `Date`, and the body framed by length or chunks, with
//! trailers for clients that asked for them.

use crate::upstream::exchange::{push_field, UpstreamResponse};
use crate::Body;
use bytes::Bytes;
use corsgate_http1::with_date;
use corsgate_policy::{CompletionLines, PreflightResponse};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TE, TRANSFER_ENCODING};
use http::{Response, StatusCode};
use http_body::Body as _;
use std::io;
use std::pin::pin;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Response bytes gathered before one write; larger body frames are
/// written without being copied.
const WRITE_BATCH: usize = 16 * 1024;

/// How the response body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes are written (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
}

/// Encode a preflight's answer straight from the policy's precomputed
/// lines. Its body is empty: framed like any response, so `content-length:
/// 0`, and none at all on a 204 (`preflightRejectStatus: 204`).
pub(super) fn write_preflight(out: &mut Vec<u8>, answer: &PreflightResponse, keep: bool) {
    out.clear();
    status_line(out, answer.status);
    answer.write_fields(out);
    finish_head(out, answer.status, Some(0), Some(0), false, false, keep);
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Write `response` to `io`. Returns whether the connection can carry
/// another request: `false` when the body failed or did not match its
/// declared length, which leaves the client a response it can tell is
/// incomplete (as hyper does).
pub(super) async fn write_response<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: Response<Body>,
    head_only: bool,
    trailers: bool,
    keep: bool,
) -> io::Result<bool> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    out.clear();
    status_line(out, status);
    // One pass over the fields, without changing the map: framing fields
    // are the front's to write (a Transfer-Encoding handed over by the
    // handler never reaches the client as is), connection-level ones too.
    let mut declared: Option<Option<u64>> = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            declared = Some(crate::upstream::exchange::content_length(value.as_bytes()));
            continue;
        }
        if name == TRANSFER_ENCODING || name == CONNECTION || name == TE {
            continue;
        }
        dated |= name == DATE;
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let exact = body.size_hint().exact();
    let framing = finish_head(
        out,
        status,
        declared.flatten(),
        exact,
        head_only,
        dated,
        keep,
    );
    write_body(io, out, body, framing, trailers).await
}

/// Write an upstream response read by corsgate's exchange: its fields as
/// received (framing and hop-by-hop fields were left out when it was read),
/// less those the CORS completion replaces, then the completion's.
pub(super) async fn write_upstream<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: UpstreamResponse,
    cors: Option<CompletionLines>,
    head_only: bool,
    trailers: bool,
    keep: bool,
) -> io::Result<bool> {
    let status = response.status;
    out.clear();
    status_line(out, status);
    let mut dated = false;
    for (name, line) in response.lines() {
        if cors.is_some() && CompletionLines::replaces(name) {
            continue;
        }
        dated |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(lines) = &cors {
        let vary = response
            .fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"vary"))
            .map(|(_, v)| v);
        lines.write(vary, out);
    }
    let declared = response.declared_length;
    let body = response.into_body();
    let exact = body.size_hint().exact();
    let framing = finish_head(out, status, declared, exact, head_only, dated, keep);
    write_body(io, out, body, framing, trailers).await
}

/// End a response head: framing fields (from the declared length or the
/// body's exact size; none for HEAD, 1xx, 204 and 304), `Date` unless the
/// handler wrote one, `Connection: close` when the connection ends.
/// Inlined so that each caller's constant arguments fold its branches away
/// (a preflight answer's head is on the hottest path).
#[inline(always)]
fn finish_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    declared: Option<u64>,
    exact: Option<u64>,
    head_only: bool,
    dated: bool,
    keep: bool,
) -> Framing {
    let no_body = status.is_informational() || status == StatusCode::NO_CONTENT;
    let framing = if no_body {
        Framing::None
    } else if head_only || status == StatusCode::NOT_MODIFIED {
        // HEAD says what GET would have (RFC 9110 §9.3.2); 304 what 200
        // would have, if the handler says so.
        let length = declared.or_else(|| {
            (status != StatusCode::NOT_MODIFIED)
                .then_some(exact)
                .flatten()
        });
        if let Some(n) = length {
            push_length(out, n);
        }
        Framing::None
    } else if let Some(n) = declared.or(exact) {
        push_length(out, n);
        Framing::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if !dated {
        with_date(|date| push_field(out, b"date", date));
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Write the head gathered in `out` and `body` framed as `framing`.
/// Returns whether the connection can carry another request: `false` when
/// the body failed or did not match its declared length, which leaves the
/// client a response it can tell is incomplete (as hyper does).
async fn write_body<IO, B>(
    io: &mut IO,
    out: &mut Vec<u8>,
    body: B,
    framing: Framing,
    trailers: bool,
) -> io::Result<bool>
where
    IO: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes, Error = crate::BoxError>,
{
    if framing == Framing::None {
        drop(body);
        io.write_all(out).await?;
        return Ok(true);
    }
    let mut body = pin!(body);
    let mut written: u64 = 0;
    let mut sent_trailers = false;
    loop {
        // Gather what is ready; write before waiting for more.
        let frame = match ready_frame(body.as_mut()) {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; closing the connection");
                io.write_all(out).await?;
                return Ok(false);
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                written += data.len() as u64;
                if let Framing::Length(n) = framing {
                    if written > n {
                        tracing::debug!("response body longer than its Content-Length");
                        io.write_all(out).await?;
                        return Ok(false);
                    }
                }
                if framing == Framing::Chunked {
                    push_chunk_size(out, data.len());
                }
                if data.len() >= WRITE_BATCH {
                    io.write_all(out).await?;
                    out.clear();
                    io.write_all(&data).await?;
                } else {
                    out.extend_from_slice(&data);
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= WRITE_BATCH {
                    io.write_all(out).await?;
                    out.clear();
                }
            }
            Err(frame) => {
                if let (Ok(fields), Framing::Chunked, true) =
                    (frame.into_trailers(), framing, trailers)
                {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &fields {
                        push_field(out, name.as_str().as_bytes(), value.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    sent_trailers = true;
                }
            }
        }
    }
    if let Framing::Length(n) = framing {
        if written != n {
            tracing::debug!(
                written,
                declared = n,
                "response body shorter than its Content-Length"
            );
            io.write_all(out).await?;
            return Ok(false);
        }
    }
    if framing == Framing::Chunked && !sent_trailers {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(out).await?;
    out.clear();
    Ok(true)
}

/// Poll the body once without waiting: `Some` if a frame (or its end) is
/// ready now.
#[allow(clippy::type_complexity)]
fn ready_frame<B: http_body::Body<Data = Bytes, Error = crate::BoxError>>(
    body: std::pin::Pin<&mut B>,
) -> Option<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match body.poll_frame(&mut cx) {
        std::task::Poll::Ready(frame) => Some(frame),
        std::task::Poll::Pending => None,
    }
}

fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

fn push_chunk_size(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789ABCDEF"[n & 0xF];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reply;
    use http::HeaderValue;

    #[test]
    fn lengths_are_decimal() {
        for n in [0u64, 7, 10, 600, u64::MAX] {
            let mut out = Vec::new();
            push_length(&mut out, n);
            assert_eq!(out, format!("content-length: {n}\r\n").as_bytes());
        }
    }

    #[test]
    fn chunk_sizes_are_hex() {
        for (n, want) in [(0, "0"), (10, "A"), (255, "FF"), (65536, "10000")] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, n);
            assert_eq!(out, format!("{want}\r\n").as_bytes());
        }
    }

    /// An upstream response written by the front as read (the completion
    /// as lines) carries the same fields as the map hyper-served
    /// connections get, across heads, origins and with no policy; and
    /// never a hop-by-hop field, a second ACAO, or CORS for a refused
    /// origin.
    #[tokio::test]
    async fn upstream_responses_as_lines_equal_the_map() {
        let heads: [&'static [u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nVary: Accept-Encoding\r\nAccess-Control-Allow-Origin: *\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Keep: 2\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nvary:Origin\r\nContent-Length: 0\r\nDate:  Mon, 30 Nov 2026 00:00:00 GMT\r\nX-Spaced:\tvalue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nAccess-Control-Expose-Headers: x-secret\r\nVary: accept, x-a\r\nvary: x-b\r\n\r\n",
        ];
        let spec = corsgate_policy::PolicySpec {
            allow_origins: vec!["https://app.test".into()],
            allow_credentials: true,
            expose_headers: vec!["X-Request-Id".into()],
            ..Default::default()
        };
        let policy = corsgate_policy::Policy::compile(&spec)
            .expect("policy")
            .policy;
        let framing = ["content-length", "date", "connection", "transfer-encoding"];
        for head in heads {
            for origin in [Some("https://app.test"), Some("https://evil.test"), None] {
                for with_policy in [true, false] {
                    let case = format!(
                        "{} {origin:?} policy {with_policy}",
                        String::from_utf8_lossy(&head[..12])
                    );
                    let mut req = http::HeaderMap::new();
                    if let Some(o) = origin {
                        req.insert("origin", HeaderValue::from_static(o));
                    }
                    let lines = || {
                        with_policy
                            .then(|| policy.completion_lines(policy.actual(&req)).ok())
                            .flatten()
                    };
                    let mut wire = Vec::new();
                    let up = UpstreamResponse::from_head(head);
                    write_upstream(&mut wire, &mut Vec::new(), up, lines(), false, false, true)
                        .await
                        .expect("written");
                    let text = String::from_utf8(wire).expect("ascii");
                    let mut written: Vec<(String, String)> = text
                        .split("\r\n\r\n")
                        .next()
                        .expect("head")
                        .split("\r\n")
                        .skip(1)
                        .map(|l| {
                            let (n, v) = l.split_once(':').expect("field line");
                            (n.to_ascii_lowercase(), v.trim().to_owned())
                        })
                        .filter(|(n, _)| !framing.contains(&n.as_str()))
                        .collect();
                    let mapped =
                        Reply::Upstream(UpstreamResponse::from_head(head), lines()).into_response();
                    let mut from_map: Vec<(String, String)> = mapped
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().expect("text").to_owned()))
                        .filter(|(n, _)| !framing.contains(&n.as_str()))
                        .collect();
                    written.sort();
                    from_map.sort();
                    assert_eq!(written, from_map, "{case}");
                    let count = |name: &str| written.iter().filter(|(n, _)| n == name).count();
                    assert_eq!(count("x-hop") + count("keep-alive"), 0, "{case}");
                    assert_eq!(count("x-keep"), usize::from(head == heads[0]), "{case}");
                    assert!(count("access-control-allow-origin") <= 1, "{case}");
                    if with_policy {
                        let allowed = origin == Some("https://app.test");
                        assert_eq!(
                            count("access-control-allow-origin"),
                            usize::from(allowed),
                            "{case}"
                        );
                        let vary: Vec<&str> = written
                            .iter()
                            .filter(|(n, _)| n == "vary")
                            .map(|(_, v)| v.as_str())
                            .collect();
                        assert!(
                            vary.join(", ").to_ascii_lowercase().contains("origin"),
                            "{case}: {vary:?}"
                        );
                    }
                }
            }
        }
    }

    /// A preflight's answer is framed like any response: `content-length:
    /// 0` on a 200 or 403, no length field on a 204 (RFC 9110 §8.6).
    #[test]
    fn preflight_answers_are_framed_by_status() {
        let origin = HeaderValue::from_static("https://app.test");
        for (reject, origin, status, length) in [
            (corsgate_policy::RejectStatus::Ok, &origin, 200, true),
            (
                corsgate_policy::RejectStatus::NoContent,
                &HeaderValue::from_static("https://evil.test"),
                204,
                false,
            ),
            (
                corsgate_policy::RejectStatus::Forbidden,
                &HeaderValue::from_static("https://evil.test"),
                403,
                true,
            ),
            (corsgate_policy::RejectStatus::NoContent, &origin, 200, true),
        ] {
            let spec = corsgate_policy::PolicySpec {
                allow_origins: vec!["https://app.test".into()],
                preflight_reject_status: reject,
                ..Default::default()
            };
            let policy = corsgate_policy::Policy::compile(&spec)
                .expect("policy")
                .policy;
            let mut req = http::HeaderMap::new();
            req.insert("origin", origin.clone());
            req.insert(
                "access-control-request-method",
                HeaderValue::from_static("GET"),
            );
            let answer = policy.preflight(&req);
            let mut out = Vec::new();
            write_preflight(&mut out, &answer, true);
            let text = String::from_utf8(out).expect("ascii");
            let case = format!("{reject:?} {origin:?}");
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} ")),
                "{case}: {text}"
            );
            assert_eq!(
                text.contains("content-length: 0\r\n"),
                length,
                "{case}: {text}"
            );
            assert!(
                text.ends_with("\r\n\r\n") && text.contains("\r\ndate: "),
                "{case}: {text}"
            );
        }
    }

    #[test]
    fn date_is_an_imf_fixdate() {
        let mut got = Vec::new();
        with_date(|d| got.extend_from_slice(d));
        let text = String::from_utf8(got).expect("ascii");
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }
}
