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
//! - [`parse_request_head`]: a request head into `http` types, sorted into
//!   the bodiless HTTP/1.1 requests a fast path can serve, the heads to
//!   hand to a full server ([`ParsedRequest::Foreign`]) and the bad ones;
//!   [`scan_field_lines`] finds a bad head's `Origin` all the same;
//! - [`parse_response_head`]: a response head as offsets into the buffer
//!   it was read into, under one size limit ([`fields_too_large`]), and
//!   [`sort_response_fields`], its framing and hop-by-hop fields sorted out;
//! - [`valid_host`]: what a `Host` value may be (the parser reports each
//!   head's `Host` lines as [`HostLines`]);
//! - hop-by-hop fields ([`is_hop_by_hop`], [`strip_hop_by_hop`]), lists
//!   ([`list_items`]) and the `Date` a server adds ([`with_date`]).
//!
//! Everything is strict: what RFC 9112 does not allow is an error, never a
//! guess (a lenient reading of framing is how request smuggling starts).

#![deny(missing_docs)]

mod date;
mod decode;
mod head;
mod hop;
mod host;
mod length;
mod list;
mod request;

pub use date::with_date;
pub use decode::{
    chunk_size, Chunk, Decoded, Framing, FramingError, MAX_CHUNK_LINE, MAX_TRAILER_BYTES,
};
pub use head::{
    fields_too_large, parse_response_head, sort_response_fields, FramingFields, HeadError,
    ResponseHead, MAX_FIELDS, MAX_HEAD_BYTES,
};
pub use hop::{
    connection_tokens, is_hop_by_hop, is_hop_by_hop_name, names_token, strip_hop_by_hop,
};
pub use host::valid_host;
pub use length::content_length;
pub use list::list_items;
pub use request::{
    field_line_value, parse_request_head, scan_field_lines, FieldList, HostLines, NameCache,
    ParsedRequest, RequestHead, MAX_REQUEST_FIELDS,
};
