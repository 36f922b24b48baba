//! A response head (RFC 9112 §4, §5): parsed with httparse into offsets
//! of the caller's buffer, so that the fields are passed on as read,
//! without a header map.

/// Largest response head accepted: its fields counted as a request's are
/// against `limits.maxHeaderBytes` (name, value and 4 bytes a line;
/// [`fields_too_large`]).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most fields accepted in one response head.
pub const MAX_FIELDS: usize = 128;

/// A parsed response head; its fields are the spans the parse recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The response is HTTP/1.0.
    pub http10: bool,
    /// The head's length in the buffer, its empty line included.
    pub len: usize,
}

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not an HTTP/1.x response head.
    Malformed,
    /// More than [`MAX_FIELDS`] fields.
    TooManyFields,
    /// Fields over [`MAX_HEAD_BYTES`].
    TooLarge,
}

impl HeadError {
    /// What went wrong.
    pub fn what(self) -> &'static str {
        match self {
            HeadError::Malformed => "malformed response head",
            HeadError::TooManyFields => "too many response header fields",
            HeadError::TooLarge => "response head too large",
        }
    }
}

/// Are these fields over [`MAX_HEAD_BYTES`]? Every upstream path asks
/// this of every response head, so that one limit holds on all of them.
#[inline]
pub fn fields_too_large<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    fields.map(|(n, v)| n.len() + v.len() + 4).sum::<usize>() > MAX_HEAD_BYTES
}

/// Parse a complete head at the front of `buf`, if there is one
/// (`Ok(None)`: more bytes are needed), recording each field as
/// `[name start, name end, value start, value end]` offsets into `buf` in
/// `fields`. `buf` must be shorter than 4 GiB (offsets are `u32`).
#[inline]
pub fn parse_response_head(
    buf: &[u8],
    fields: &mut Vec<[u32; 4]>,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyFields),
        Err(_) => return Err(HeadError::Malformed),
    };
    if fields_too_large(resp.headers.iter().map(|h| (h.name.as_bytes(), h.value))) {
        return Err(HeadError::TooLarge);
    }
    let base = buf.as_ptr() as usize;
    let offset = |p: *const u8| (p as usize - base) as u32;
    fields.clear();
    for h in resp.headers.iter() {
        let n = offset(h.name.as_ptr());
        let v = offset(h.value.as_ptr());
        fields.push([n, n + h.name.len() as u32, v, v + h.value.len() as u32]);
    }
    Ok(Some(ResponseHead {
        status: resp.code.unwrap_or(0),
        http10: resp.version == Some(0),
        len,
    }))
}

/// What the framing and connection fields of a response head say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FramingFields {
    /// A `Transfer-Encoding` line is present.
    pub transfer_encoding: bool,
    /// The last coding of the last `Transfer-Encoding` line is `chunked`.
    pub chunked_last: bool,
    /// The `Content-Length`, every line agreeing.
    pub content_length: Option<u64>,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Connection` names a field other than close/keep-alive.
    pub names_fields: bool,
}

/// Sort a response head's fields (spans as [`parse_response_head`]
/// records them): those to pass on, that is neither framing, nor
/// hop-by-hop, nor named by `Connection`; and what the framing fields say.
/// An invalid or conflicting `Content-Length` is refused by name
/// (RFC 9112 §6.3 item 5: a proxy must not forward such a response).
pub fn sort_response_fields(
    head: &[u8],
    spans: &[[u32; 4]],
) -> Result<(Vec<[u32; 4]>, FramingFields), &'static str> {
    let mut ff = FramingFields::default();
    let mut kept = Vec::with_capacity(spans.len());
    for &span in spans {
        let [ns, ne, vs, ve] = span.map(|x| x as usize);
        let (name, value) = (&head[ns..ne], &head[vs..ve]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            ff.transfer_encoding = true;
            // Only the last coding decides; a later field line is later.
            if let Some(last) = value.rsplit(|&b| b == b',').next() {
                ff.chunked_last = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = crate::content_length(value).ok_or("invalid Content-Length")?;
            if ff.content_length.is_some_and(|prev| prev != n) {
                return Err("conflicting Content-Length");
            }
            ff.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in crate::list_items(value) {
                if t.eq_ignore_ascii_case(b"close") {
                    ff.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    ff.keep_alive = true;
                } else {
                    ff.names_fields = true;
                }
            }
        } else if !crate::is_hop_by_hop_name(name) {
            kept.push(span);
        }
    }
    if ff.names_fields {
        // Fields the upstream's Connection names are hop-by-hop too.
        let named = |name: &[u8]| {
            spans.iter().any(|&[ns, ne, vs, ve]| {
                head[ns as usize..ne as usize].eq_ignore_ascii_case(b"connection")
                    && crate::list_items(&head[vs as usize..ve as usize])
                        .any(|t| t.eq_ignore_ascii_case(name))
            })
        };
        kept.retain(|&[ns, ne, _, _]| !named(&head[ns as usize..ne as usize]));
    }
    Ok((kept, ff))
}
