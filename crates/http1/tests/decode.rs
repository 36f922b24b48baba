//! Properties of the body decoder, and its agreement with httparse.
//!
//! - Any chunked body, encoded with random chunk sizes, extensions and
//!   trailers and fed to the decoder in random pieces, decodes to exactly
//!   its data and trailers, ends, and leaves the bytes after it untouched;
//!   the same holds for length-delimited bodies.
//! - Decoding never depends on how the input was split: any input (valid
//!   or not) gives the same data, the same outcome and the same error fed
//!   at once or byte by byte.
//! - A chunk-size line corsgate accepts, httparse accepts with the same
//!   size (corsgate is never the more lenient of the two), and on plain hex
//!   sizes the two agree exactly.

use bytes::{Bytes, BytesMut};
use corsgate_http1::{chunk_size, content_length, Chunk, Decoded, Framing, FramingError};
use proptest::prelude::*;

/// What decoding an input gave.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Option<Bytes>,
    ended: bool,
    error: Option<FramingError>,
    /// Bytes left in the buffer when it ended or stopped.
    rest: Vec<u8>,
}

/// Feed `input` to a decoder in pieces cut at `cuts` (offsets, any order).
fn decode(mut framing: Framing, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(input.len());
    at.sort_unstable();
    let mut out = Outcome {
        data: Vec::new(),
        trailers: None,
        ended: false,
        error: None,
        rest: Vec::new(),
    };
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for cut in at {
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match framing.decode(&mut buf) {
                Ok(Some(Decoded::Data(d))) => out.data.extend_from_slice(&d),
                Ok(Some(Decoded::Trailers(t))) => out.trailers = Some(t),
                Ok(Some(Decoded::End)) => {
                    out.ended = true;
                    buf.extend_from_slice(&input[fed..]);
                    out.rest = buf.to_vec();
                    return out;
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
            if framing.is_done() {
                // The next call reports the end.
                continue;
            }
        }
    }
    out.rest = buf.to_vec();
    out
}

/// A chunked encoding of `chunks`, with `ext` after some sizes and the
/// trailer lines given.
fn chunked(chunks: &[Vec<u8>], ext: &[bool], trailers: &[String]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        out.extend_from_slice(format!("{:x}", c.len()).as_bytes());
        if ext.get(i).copied().unwrap_or(false) {
            out.extend_from_slice(b" ;name=value");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    let block = (!trailers.is_empty()).then(|| {
        let mut b = Vec::new();
        for t in trailers {
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"\r\n");
        b
    });
    match &block {
        Some(b) => out.extend_from_slice(b),
        None => out.extend_from_slice(b"\r\n"),
    }
    (out, block)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunked_body_decodes_to_its_data_and_trailers_however_it_is_split(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
        ext in prop::collection::vec(any::<bool>(), 0..8),
        trailers in prop::collection::vec("[a-z]{1,8}: [a-z0-9]{0,12}", 0..3),
        after in prop::collection::vec(any::<u8>(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let (mut input, block) = chunked(&chunks, &ext, &trailers);
        input.extend_from_slice(&after);
        let got = decode(Framing::Chunked(Chunk::Size), &input, &cuts);
        prop_assert_eq!(got.error, None);
        prop_assert!(got.ended);
        prop_assert_eq!(got.data, chunks.concat());
        prop_assert_eq!(got.trailers.map(|t| t.to_vec()), block);
        prop_assert_eq!(got.rest, after);
    }

    #[test]
    fn a_length_delimited_body_stops_at_its_length(
        body in prop::collection::vec(any::<u8>(), 0..600),
        after in prop::collection::vec(any::<u8>(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut input = body.clone();
        input.extend_from_slice(&after);
        let got = decode(Framing::Length(body.len() as u64), &input, &cuts);
        prop_assert!(got.ended);
        prop_assert_eq!(got.data, body);
        prop_assert_eq!(got.rest, after);
    }

    #[test]
    fn decoding_does_not_depend_on_how_the_input_is_split(
        input in prop::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'5'), Just(b'f'), Just(b';'), Just(b' '), Just(b':'), any::<u8>()],
            0..200,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let whole = decode(Framing::Chunked(Chunk::Size), &input, &[]);
        let split = decode(Framing::Chunked(Chunk::Size), &input, &cuts);
        let bytewise: Vec<usize> = (0..input.len()).collect();
        let single = decode(Framing::Chunked(Chunk::Size), &input, &bytewise);
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(&single, &whole);
    }

    #[test]
    fn a_chunk_size_corsgate_accepts_httparse_accepts_with_the_same_size(
        line in prop::collection::vec(
            prop_oneof![Just(b'0'), Just(b'a'), Just(b'F'), Just(b';'), Just(b' '), Just(b'\t'), Just(b'='), Just(b'x'), Just(b'-'), any::<u8>()],
            0..24,
        ),
    ) {
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Ok(());
        }
        let mut framed = line.clone();
        framed.extend_from_slice(b"\r\n");
        let theirs = match httparse::parse_chunk_size(&framed) {
            Ok(httparse::Status::Complete((_, n))) => Some(n),
            _ => None,
        };
        if let Some(ours) = chunk_size(&line) {
            prop_assert_eq!(Some(ours), theirs, "{:?}", String::from_utf8_lossy(&line));
        }
        if !line.is_empty() && line.len() <= 16 && line.iter().all(u8::is_ascii_hexdigit) {
            prop_assert_eq!(chunk_size(&line), theirs, "{:?}", String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn content_length_is_a_list_of_one_number(
        parts in prop::collection::vec(
            prop_oneof!["[0-9]{1,20}", " [0-9]{1,3} ", "[0-9a-f+-]{0,4}", Just(String::new())],
            1..4,
        ),
    ) {
        let value = parts.join(",");
        // The model: every member, trimmed, is 1-19 digits, all the same
        // number.
        let members: Vec<&str> = value.split(',').map(|p| p.trim_matches([' ', '\t'])).collect();
        let numbers: Option<Vec<u64>> = members
            .iter()
            .map(|m| (!m.is_empty() && m.len() <= 19 && m.bytes().all(|b| b.is_ascii_digit())).then(|| m.parse().ok()).flatten())
            .collect();
        let want = numbers.and_then(|n| n.iter().all(|x| *x == n[0]).then(|| n[0]));
        prop_assert_eq!(content_length(value.as_bytes()), want, "{:?}", value);
    }
}

#[test]
fn broken_chunked_framing_is_named() {
    let table: &[(&[u8], FramingError)] = &[
        (b"-1\r\nx\r\n0\r\n\r\n", FramingError::BadChunkSize),
        (b"0x5\r\nhello\r\n0\r\n\r\n", FramingError::BadChunkSize),
        (
            b"100000000000000005\r\nhello\r\n",
            FramingError::BadChunkSize,
        ),
        (b"5\nhello\r\n0\r\n\r\n", FramingError::BadChunkSize),
        (b"5\r\nhelloXY0\r\n\r\n", FramingError::MissingCrlf),
    ];
    for (input, want) in table {
        let got = decode(Framing::Chunked(Chunk::Size), input, &[]);
        assert_eq!(
            got.error,
            Some(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let long = [b"1;".as_slice(), &[b'x'; 5000], b"\r\n"].concat();
    let got = decode(Framing::Chunked(Chunk::Size), &long, &[]);
    assert_eq!(got.error, Some(FramingError::ChunkLineTooLong));
    let mut big = b"0\r\n".to_vec();
    for i in 0..2000 {
        big.extend_from_slice(format!("x-trailer-{i}: value\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let got = decode(Framing::Chunked(Chunk::Size), &big, &[]);
    assert_eq!(got.error, Some(FramingError::TrailersTooLarge));
}
