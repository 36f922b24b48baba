//! Why a request is refused before any rule sees it: the client's errors,
//! each with the status the gateway answers and the label it is counted
//! under. Found by the front (a malformed or oversized head), the normalise
//! stage (path, host, framing) or the upstream side (a request body that
//! breaks its framing or its limit).

use http::StatusCode;

/// Why a request is refused before routing. Each is a client error,
/// answered by the gateway (with the CORS policy in scope for `/`) and
/// counted in `corsgate_client_errors_total` by [`BadRequest::label`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadRequest {
    /// The target is neither `/…`, `*` nor absolute-form.
    PathNotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%00`: a NUL that would end the path early in C backends.
    EncodedNul,
    /// `%2F`, `%5C` or `\` under `paths.encodedSlashes: reject`.
    EncodedSlash,
    /// A `..` segment that would climb above `/` (nginx: 400).
    AboveRoot,
    /// `;` in the path under `paths.semicolons: reject`.
    PathParameter,
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` line.
    RepeatedHost,
    /// A `Host` (or authority) that is not `host[:port]`.
    InvalidHost,
    /// HTTP/2 `:authority` and `Host` name different hosts (RFC 9113 §8.3.1).
    AuthorityMismatch,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1: 501).
    TransferCoding,
    /// Header fields over `limits.maxHeaderBytes`.
    HeaderTooLarge,
    /// A declared `Content-Length` over `limits.maxBodyBytes`.
    BodyTooLarge,
    /// A request body whose framing is broken (a bad chunk size, a body
    /// shorter than declared), found while it was being forwarded.
    BodyFraming,
    /// A request line longer than the head limit.
    UriTooLong,
    /// A head that is not HTTP/1.1 at all (the parser refused it).
    Malformed,
}

impl BadRequest {
    /// Every reason, in metrics order.
    pub(crate) const ALL: [BadRequest; 16] = [
        BadRequest::PathNotAbsolute,
        BadRequest::BadEscape,
        BadRequest::EncodedNul,
        BadRequest::EncodedSlash,
        BadRequest::AboveRoot,
        BadRequest::PathParameter,
        BadRequest::MissingHost,
        BadRequest::RepeatedHost,
        BadRequest::InvalidHost,
        BadRequest::AuthorityMismatch,
        BadRequest::TransferCoding,
        BadRequest::HeaderTooLarge,
        BadRequest::BodyTooLarge,
        BadRequest::BodyFraming,
        BadRequest::UriTooLong,
        BadRequest::Malformed,
    ];

    /// The status the gateway answers with.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            BadRequest::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            BadRequest::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            BadRequest::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BadRequest::UriTooLong => StatusCode::URI_TOO_LONG,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response body.
    pub(crate) fn text(self) -> &'static str {
        match self {
            BadRequest::PathNotAbsolute => "request target is not a path\n",
            BadRequest::BadEscape => "malformed percent-encoding in the path\n",
            BadRequest::EncodedNul => "encoded NUL in the path\n",
            BadRequest::EncodedSlash => "encoded slash or backslash in the path\n",
            BadRequest::AboveRoot => "path climbs above the root\n",
            BadRequest::PathParameter => "path parameter (;) in the path\n",
            BadRequest::MissingHost => "missing Host\n",
            BadRequest::RepeatedHost => "more than one Host\n",
            BadRequest::InvalidHost => "invalid Host\n",
            BadRequest::AuthorityMismatch => "Host differs from the request's authority\n",
            BadRequest::TransferCoding => "transfer coding not implemented\n",
            BadRequest::HeaderTooLarge => "request header fields too large\n",
            BadRequest::BodyTooLarge => "request body too large\n",
            BadRequest::BodyFraming => "malformed request body\n",
            BadRequest::UriTooLong => "request target too long\n",
            BadRequest::Malformed => "malformed request\n",
        }
    }

    /// The metrics label and access-log reason.
    pub(crate) fn label(self) -> &'static str {
        match self {
            BadRequest::PathNotAbsolute => "path_not_absolute",
            BadRequest::BadEscape => "path_bad_escape",
            BadRequest::EncodedNul => "path_encoded_nul",
            BadRequest::EncodedSlash => "path_encoded_slash",
            BadRequest::AboveRoot => "path_above_root",
            BadRequest::PathParameter => "path_parameter",
            BadRequest::MissingHost => "host_missing",
            BadRequest::RepeatedHost => "host_repeated",
            BadRequest::InvalidHost => "host_invalid",
            BadRequest::AuthorityMismatch => "host_authority_mismatch",
            BadRequest::TransferCoding => "transfer_coding",
            BadRequest::HeaderTooLarge => "header_too_large",
            BadRequest::BodyTooLarge => "body_too_large",
            BadRequest::BodyFraming => "body_framing",
            BadRequest::UriTooLong => "uri_too_long",
            BadRequest::Malformed => "malformed_head",
        }
    }

    /// Index into [`BadRequest::ALL`]: the declaration order, which `ALL`
    /// lists (checked by a test), so that counting a client error is an
    /// array index, not a search.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::BadRequest;

    #[test]
    fn all_lists_every_reason_at_its_index_with_a_distinct_label() {
        for (i, bad) in BadRequest::ALL.iter().enumerate() {
            assert_eq!(bad.index(), i, "{bad:?}");
            assert!(
                BadRequest::ALL[..i]
                    .iter()
                    .all(|b| b.label() != bad.label()),
                "{bad:?}: label {} repeated",
                bad.label()
            );
        }
    }
}
