//! # corsgate-http1
//!
//! The HTTP/1.1 wire format as corsgate reads it, without I/O: the caller
//! owns the socket and the buffer, this crate says what the bytes in the
//! buffer mean. Kept apart from the gateway so that it can be read, tested
//! and fuzzed on its own (`fuzz/`), as hyper keeps its wire layer apart
//! from its connection handling.
//!
//! - [`Framing`]: how a message body is delimited (length, chunked, to the
//!   close) and [`Framing::decode`], which takes one step of the body out
//!   of a buffer;
//! - [`chunk_size`] and [`content_length`]: the strict readings of a
//!   chunk-size line and a `Content-Length` value;
//! - [`parse_response_head`]: a response head as offsets into the buffer
//!   it was read into, under one size limit ([`fields_too_large`]).
//!
//! Everything is strict: what RFC 9112 does not allow is an error, never a
//! guess (a lenient reading of framing is how request smuggling starts).

#![deny(missing_docs)]

mod decode;
mod head;
mod length;

pub use decode::{
    chunk_size, Chunk, Decoded, Framing, FramingError, MAX_CHUNK_LINE, MAX_TRAILER_BYTES,
};
pub use head::{
    fields_too_large, parse_response_head, HeadError, ResponseHead, MAX_FIELDS, MAX_HEAD_BYTES,
};
pub use length::content_length;
