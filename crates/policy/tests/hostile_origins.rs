//! A corpus of hostile `Origin` values against realistic policies: suffix,
//! prefix, userinfo, port, scheme, `null`, comma, IDN and IPv6 tricks.
//! Zero bypasses: none of them may receive an `Access-Control-*` header,
//! on a preflight or an actual response.

mod common;

use common::{actual, acx, one, policy, preflight};
use http::Method;

const POLICIES: &[&str] = &[
    r#"{"allowOrigins": ["https://app.example.com"], "allowCredentials": true}"#,
    r#"{"allowOrigins": ["https://*.example.com"], "allowCredentials": true}"#,
    r#"{"allowOriginRegexes": ["https://[a-z0-9-]+\\.tenants\\.example\\.com"], "allowCredentials": true}"#,
    r#"{"allowOrigins": ["https://app.example.com", "https://*.example.com", "http://*.example.com:8080"],
        "allowOriginRegexes": ["https://(a|b)\\.example\\.com"]}"#,
];

/// Origins an attacker can produce or a broken client sends. None is
/// allowed by any policy above.
const HOSTILE: &[&str] = &[
    // suffix / prefix / contains
    "https://app.example.com.evil.test",
    "https://example.com.evil.test",
    "https://evilexample.com",
    "https://app-example.com",
    "https://appXexample.com",
    "https://example.com",
    "https://example.comevil.test",
    "https://evil.test/app.example.com",
    "https://evil.test?app.example.com",
    "https://evil.test#app.example.com",
    // userinfo
    "https://app.example.com@evil.test",
    "https://evil.test@app.example.com",
    "https://app.example.com:443@evil.test",
    // ports
    "https://app.example.com:443",
    "https://app.example.com:8443",
    "https://app.example.com:1",
    "https://app.example.com:",
    "https://app.example.com:0443",
    "http://x.example.com:80",
    // schemes
    "http://app.example.com",
    "HTTPS://app.example.com",
    "wss://app.example.com",
    "file://app.example.com",
    "//app.example.com",
    "app.example.com",
    "https:app.example.com",
    // null and friends
    "null",
    "NULL",
    "null, https://app.example.com",
    // lists, whitespace and case
    "https://app.example.com,https://evil.test",
    "https://evil.test,https://app.example.com",
    "https://app.example.com https://evil.test",
    "https://APP.example.com",
    "https://app.example.com/",
    "https://app.example.com.",
    "https://app..example.com",
    // IDN and homoglyph tricks (browsers send punycode; raw UTF-8 is not canonical)
    "https://xn--pp-7ka.example.com.evil.test",
    "https://аpp.example.com",
    "https://app.exаmple.com",
    // IPv6 / IPv4 tricks
    "https://[::1]",
    "https://[::ffff:7f00:1]",
    "https://[app.example.com]",
    "https://127.0.0.1",
    "https://0x7f.0.0.1",
    // encodings
    "https://app%2eexample.com",
    "https://app.example.com%00.evil.test",
    "https://app.example.com\\.evil.test",
];

#[test]
fn hostile_origins_never_get_cors_headers() {
    let mut checked = 0;
    for json in POLICIES {
        let p = policy(json);
        for origin in HOSTILE {
            // Raw UTF-8 goes in as bytes, like obs-text on the wire.
            let r = preflight(
                &p,
                &[("origin", origin), ("access-control-request-method", "PUT")],
            );
            assert!(
                acx(&r.headers()).is_empty(),
                "preflight bypass: {origin} vs {json}"
            );
            let (_, resp) = actual(
                &p,
                Method::GET,
                &[("origin", origin)],
                &[
                    ("access-control-allow-origin", "*"),
                    ("access-control-allow-credentials", "true"),
                ],
            );
            assert!(acx(&resp).is_empty(), "actual bypass: {origin} vs {json}");
            assert!(one(&resp, "vary").is_some());
            checked += 1;
        }
    }
    assert_eq!(checked, POLICIES.len() * HOSTILE.len());
}

#[test]
fn the_corpus_is_not_vacuous_legitimate_origins_do_pass() {
    let legit = [
        (0, "https://app.example.com"),
        (1, "https://app.example.com"),
        (1, "https://a.b.example.com"),
        (2, "https://t1.tenants.example.com"),
        (3, "http://x.example.com:8080"),
        (3, "https://a.example.com"),
    ];
    for (i, origin) in legit {
        let p = policy(POLICIES[i]);
        let (_, resp) = actual(&p, Method::GET, &[("origin", origin)], &[]);
        assert_eq!(
            one(&resp, "access-control-allow-origin").as_deref(),
            Some(origin),
            "{origin}"
        );
    }
}
