//! The console's files, built into the binary: no build step, no Node.js
//! at run time. Each is answered with its exact content type, an ETag and
//! `Cache-Control: no-cache` (revalidated, so a new binary's pages are
//! picked up at once; a 304 costs no body).

use super::bytes_reply;
use crate::{error, Resp};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

const JS: &str = "text/javascript; charset=utf-8";

/// Path under `/ui/`, content type, content.
pub(crate) const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
    ("app.js", JS, include_str!("../../ui/app.js")),
    ("lib.js", JS, include_str!("../../ui/lib.js")),
    (
        "pages/overview.js",
        JS,
        include_str!("../../ui/pages/overview.js"),
    ),
    (
        "pages/policies.js",
        JS,
        include_str!("../../ui/pages/policies.js"),
    ),
    ("pages/edit.js", JS, include_str!("../../ui/pages/edit.js")),
    (
        "pages/history.js",
        JS,
        include_str!("../../ui/pages/history.js"),
    ),
    (
        "pages/audit.js",
        JS,
        include_str!("../../ui/pages/audit.js"),
    ),
    (
        "pages/explain.js",
        JS,
        include_str!("../../ui/pages/explain.js"),
    ),
    (
        "pages/shadow.js",
        JS,
        include_str!("../../ui/pages/shadow.js"),
    ),
    (
        "pages/fleet.js",
        JS,
        include_str!("../../ui/pages/fleet.js"),
    ),
    (
        "pages/traffic.js",
        JS,
        include_str!("../../ui/pages/traffic.js"),
    ),
];

/// Answer `GET /ui/<path>` (`/ui` and `/ui/` are the page itself).
pub(crate) fn serve(path: &str, req: &HeaderMap) -> Resp {
    let name = path.trim_start_matches("/ui").trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    let Some((_, ctype, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return error(StatusCode::NOT_FOUND, "no such console file");
    };
    let etag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(body.as_bytes()))[..32]
    );
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        bytes_reply(StatusCode::NOT_MODIFIED, ctype, Bytes::new())
    } else {
        bytes_reply(StatusCode::OK, ctype, Bytes::from_static(body.as_bytes()))
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_type_and_no_inline_script() {
        for (name, ctype, body) in ASSETS {
            let r = serve(&format!("/ui/{name}"), &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{name}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], *ctype);
            if name.ends_with(".html") {
                // CSP forbids inline script and style: the page must not need them.
                assert!(
                    !body.contains("<script>") && !body.contains("style="),
                    "{name}"
                );
                assert!(
                    !body.contains("onclick") && !body.contains("<style"),
                    "{name}"
                );
            }
            assert!(!body.contains("eval("), "{name}");
        }
        assert_eq!(
            serve("/ui/", &HeaderMap::new()).headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            serve("/ui/../lib.rs", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn etag_revalidation() {
        let r = serve("/ui/app.js", &HeaderMap::new());
        let tag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve("/ui/app.js", &h).status(), StatusCode::NOT_MODIFIED);
    }
}
