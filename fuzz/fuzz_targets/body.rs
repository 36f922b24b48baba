//! The HTTP/1.1 body decoder (corsgate-http1) on arbitrary input: it never
//! panics, never yields more data than it was given, and gives the same
//! data, outcome and error whether the input arrives at once or in the
//! pieces the input's first bytes choose.
//!
//! Input: byte 0 picks the framing (even: chunked; odd: a length taken
//! from bytes 1-2), bytes 3-4 pick up to two cut points, the rest is the
//! body as sent.

#![no_main]

use bytes::BytesMut;
use corsgate_http1::{Chunk, Decoded, Framing, FramingError};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Option<Vec<u8>>,
    ended: bool,
    error: Option<FramingError>,
}

fn run(mut framing: Framing, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut out = Outcome {
        data: Vec::new(),
        trailers: None,
        ended: false,
        error: None,
    };
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(fed, input.len());
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match framing.decode(&mut buf) {
                Ok(Some(Decoded::Data(d))) => {
                    assert!(!d.is_empty(), "an empty data step");
                    out.data.extend_from_slice(&d)
                }
                Ok(Some(Decoded::Trailers(t))) => out.trailers = Some(t.to_vec()),
                Ok(Some(Decoded::End)) => {
                    out.ended = true;
                    return out;
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 5 {
        return;
    }
    let framing = if input[0] % 2 == 0 {
        Framing::Chunked(Chunk::Size)
    } else {
        Framing::Length(u64::from(u16::from_le_bytes([input[1], input[2]])))
    };
    let body = &input[5..];
    let mut cuts = [usize::from(input[3]), usize::from(input[4])];
    cuts.sort_unstable();
    let whole = run(framing, body, &[]);
    let split = run(framing, body, &cuts);
    assert!(whole.data.len() <= body.len());
    assert_eq!(whole, split, "the outcome depends on how the input was split");
});
