//! Message body framing (RFC 9112 §6.3) and its decoding, one step at a
//! time, out of a buffer the caller fills: by length, by chunks (with
//! trailers) or to the close.

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line (size and extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;
/// The largest trailer section accepted, its final empty line included.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// How a message body is delimited, and where its decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding, at this step.
    Chunked(Chunk),
    /// Until the peer closes the connection.
    Close,
    /// Complete.
    Done,
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
}

/// One step of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, in order.
    Data(Bytes),
    /// The trailer section of a chunked body, as sent (fields and the
    /// final empty line), for the caller to parse and filter.
    Trailers(Bytes),
    /// The body is complete.
    End,
}

/// Why a body cannot be decoded: the framing is broken, and the
/// connection must not be used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`].
    ChunkLineTooLong,
    /// A chunk-size line that is not 1-16 hex digits and extensions.
    BadChunkSize,
    /// Chunk data not followed by CRLF.
    MissingCrlf,
    /// A trailer section over [`MAX_TRAILER_BYTES`].
    TrailersTooLarge,
}

impl FramingError {
    /// What went wrong, for a log line or an error value.
    pub fn what(self) -> &'static str {
        match self {
            FramingError::ChunkLineTooLong => "chunk-size line too long",
            FramingError::BadChunkSize => "bad chunk size",
            FramingError::MissingCrlf => "chunk data not followed by CRLF",
            FramingError::TrailersTooLarge => "chunked trailer too large",
        }
    }
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what())
    }
}

impl std::error::Error for FramingError {}

impl Framing {
    /// The body is complete: nothing more belongs to it.
    #[inline]
    pub fn is_done(&self) -> bool {
        matches!(self, Framing::Done | Framing::Length(0))
    }

    /// Take the next step of the body out of `buf`: `Ok(Some(_))` with
    /// what it holds, `Ok(None)` when more input is needed (nothing is
    /// consumed then beyond framing already decoded). Bytes after the end
    /// of the body stay in `buf`. A [`Framing::Close`] body never ends
    /// here: its end is the peer's close, which the caller sees.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, FramingError> {
        loop {
            match *self {
                Framing::Done | Framing::Length(0) => {
                    *self = Framing::Done;
                    return Ok(Some(Decoded::End));
                }
                Framing::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    *self = Framing::Length(left - take as u64);
                    return Ok(Some(Decoded::Data(buf.split_to(take).freeze())));
                }
                Framing::Close => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Decoded::Data(buf.split().freeze())));
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(buf) else {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err(FramingError::ChunkLineTooLong)
                        } else {
                            Ok(None)
                        };
                    };
                    if end > MAX_CHUNK_LINE {
                        return Err(FramingError::ChunkLineTooLong);
                    }
                    let size = chunk_size(&buf[..end]).ok_or(FramingError::BadChunkSize)?;
                    buf.advance(end + 2);
                    *self = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Some(Decoded::Data(data)));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(FramingError::MissingCrlf);
                    }
                    buf.advance(2);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *self = Framing::Done;
                        return Ok(Some(Decoded::End));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return if buf.len() > MAX_TRAILER_BYTES {
                            Err(FramingError::TrailersTooLarge)
                        } else {
                            Ok(None)
                        };
                    };
                    if end + 4 > MAX_TRAILER_BYTES {
                        return Err(FramingError::TrailersTooLarge);
                    }
                    *self = Framing::Done;
                    return Ok(Some(Decoded::Trailers(buf.split_to(end + 4).freeze())));
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): 1-16 hex digits, then
/// nothing, or optional SP/HTAB and `;` extensions (ignored). `None`
/// for anything else: a sign, `0x`, more than 16 digits (which would
/// overflow), a bare LF left in the line.
#[inline]
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    // Only BWS (SP, HTAB) may come before an extension (RFC 9112 §7.1.1):
    // other ASCII whitespace (form feed, vertical tab) is not whitespace
    // to HTTP, and httparse refuses it too.
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_read_strictly() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"a", Some(10)),
            (b"FF", Some(255)),
            (b"1f;name=value", Some(31)),
            (b"1f ; ext", Some(31)),
            (b"ffffffffffffffff", Some(u64::MAX)),
            (b"10000000000000000", None),
            (b"", None),
            (b";ext", None),
            (b"-1", None),
            (b"1 2", None),
            (b"0x1", None),
            (b"g", None),
            (b"1\t;x", Some(1)),
            // Form feed and vertical tab are ASCII whitespace, not HTTP's.
            (b"0\x0c;", None),
            (b"0\x0b;x", None),
        ];
        for (line, want) in table {
            assert_eq!(
                chunk_size(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
