//! The response-head parser (corsgate-http1) on arbitrary bytes: it never
//! panics; a complete head's length and every field span lie inside it;
//! the head alone parses the same as the head with what followed it; and
//! each strict prefix of a complete head asks for more input.

#![no_main]

use corsgate_http1::parse_response_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let mut spans = Vec::new();
    let Ok(Some(head)) = parse_response_head(buf, &mut spans) else {
        return;
    };
    assert!(head.len <= buf.len());
    for [ns, ne, vs, ve] in &spans {
        assert!(ns <= ne && vs <= ve && (*ve as usize) <= head.len);
    }
    let mut alone = Vec::new();
    assert_eq!(parse_response_head(&buf[..head.len], &mut alone), Ok(Some(head)));
    assert_eq!(alone, spans);
    for cut in [head.len - 1, head.len / 2] {
        assert_eq!(parse_response_head(&buf[..cut], &mut alone), Ok(None), "prefix {cut}");
    }
});
