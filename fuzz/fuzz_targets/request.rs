//! The request-head parser (corsgate-http1) on arbitrary bytes: it never
//! panics; a served head is a prefix of the input whose bytes are split
//! off, and it parses the same alone as with what followed it, its every
//! strict prefix asking for more; a head handed over or incomplete leaves
//! the buffer untouched.

#![no_main]

use bytes::BytesMut;
use corsgate_http1::{parse_request_head, NameCache, ParsedRequest};
use libfuzzer_sys::fuzz_target;

fn fields(p: &ParsedRequest) -> Option<Vec<(String, Vec<u8>)>> {
    match p {
        ParsedRequest::Complete(h) => Some(
            h.fields
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        ),
        _ => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let mut names = NameCache::default();
    let mut buf = BytesMut::from(input);
    let parsed = parse_request_head(&mut buf, &mut names);
    match &parsed {
        ParsedRequest::Partial | ParsedRequest::Foreign => assert_eq!(&buf[..], input),
        ParsedRequest::Bad(read) => assert!(read.len() + buf.len() <= input.len()),
        ParsedRequest::Complete(h) => {
            let len = input.len() - buf.len();
            assert_eq!(&buf[..], &input[len..]);
            assert!(input[..len].ends_with(b"\n"));
            // The head alone, with a warm name cache, reads the same.
            let mut alone = BytesMut::from(&input[..len]);
            let again = parse_request_head(&mut alone, &mut names);
            assert!(alone.is_empty());
            assert_eq!(fields(&again), fields(&parsed));
            let ParsedRequest::Complete(g) = &again else { unreachable!() };
            assert_eq!((&g.method, &g.uri, g.close, g.trailers), (&h.method, &h.uri, h.close, h.trailers));
            for cut in [len - 1, len / 2] {
                let mut prefix = BytesMut::from(&input[..cut]);
                let p = parse_request_head(&mut prefix, &mut NameCache::default());
                assert!(matches!(p, ParsedRequest::Partial), "prefix {cut}: {p:?}");
            }
        }
    }
});
