//! Properties of the response-head parser: any head made of valid
//! fields parses to exactly its status and fields (as offsets into the
//! buffer), whatever follows it; every strict prefix of it asks for more;
//! and the one size limit holds.

use corsgate_http1::{parse_response_head, HeadError, MAX_HEAD_BYTES};
use proptest::prelude::*;

fn head(status: u16, fields: &[(String, String)], http10: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.{} {status} X\r\n", u8::from(!http10)).into_bytes();
    for (n, v) in fields {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_head_parses_to_its_fields_and_every_prefix_asks_for_more(
        status in 100u16..600,
        fields in prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..20),
        http10 in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        // Field values as a receiver sees them: without leading or
        // trailing whitespace.
        let fields: Vec<(String, String)> =
            fields.into_iter().map(|(n, v)| (n, v.trim().to_owned())).collect();
        let h = head(status, &fields, http10);
        let mut buf = h.clone();
        buf.extend_from_slice(&body);
        let mut spans = Vec::new();
        let parsed = parse_response_head(&buf, &mut spans).unwrap().expect("complete");
        prop_assert_eq!(parsed.status, status);
        prop_assert_eq!(parsed.http10, http10);
        prop_assert_eq!(parsed.len, h.len());
        prop_assert_eq!(spans.len(), fields.len());
        for ([ns, ne, vs, ve], (n, v)) in spans.iter().zip(&fields) {
            prop_assert_eq!(&buf[*ns as usize..*ne as usize], n.as_bytes());
            prop_assert_eq!(&buf[*vs as usize..*ve as usize], v.as_bytes());
        }
        for cut in 0..h.len() {
            prop_assert_eq!(parse_response_head(&h[..cut], &mut spans), Ok(None), "prefix of {}", cut);
        }
    }

    #[test]
    fn any_bytes_parse_or_are_refused_without_panicking(
        buf in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut spans = Vec::new();
        if let Ok(Some(h)) = parse_response_head(&buf, &mut spans) {
            prop_assert!(h.len <= buf.len());
            for [ns, ne, vs, ve] in &spans {
                prop_assert!(ns <= ne && vs <= ve && (*ve as usize) <= h.len);
            }
        }
    }
}

#[test]
fn one_size_limit_holds() {
    let value = "v".repeat(1000);
    let fields: Vec<(String, String)> =
        (0..70).map(|i| (format!("x-{i}"), value.clone())).collect();
    let h = head(200, &fields, false);
    assert!(h.len() > MAX_HEAD_BYTES);
    assert_eq!(
        parse_response_head(&h, &mut Vec::new()),
        Err(HeadError::TooLarge)
    );
    let many: Vec<(String, String)> = (0..129).map(|i| (format!("x-{i}"), "1".into())).collect();
    assert_eq!(
        parse_response_head(&head(200, &many, false), &mut Vec::new()),
        Err(HeadError::TooManyFields)
    );
    assert_eq!(
        parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n", &mut Vec::new()),
        Err(HeadError::Malformed)
    );
}
