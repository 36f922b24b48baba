//! A client's request as the handler sees it, whichever server read it.
//!
//! hyper delivers a request with an `http::HeaderMap`. corsgate's own
//! HTTP/1.1 front (see `front`) delivers the fields as a list in arrival
//! order instead: routing and the CORS decision read a few fields by name,
//! and a preflight answered at the gateway never needs more, so building a
//! hash map of every field would be work thrown away (about 1,900
//! instructions of a preflight's 13,200). The map is built only when the
//! request must be changed or handed to hyper's client.

use crate::client_error::BadRequest;
use crate::RequestBody;
use corsgate_http1::{HostLines, RequestHead};
use corsgate_policy::RequestFields;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

/// Header fields in arrival order.
pub(crate) type FieldList = Vec<(HeaderName, HeaderValue)>;

/// A read-only view of a request's fields.
#[derive(Clone, Copy)]
pub(crate) enum Fields<'a> {
    /// hyper's map.
    Map(&'a HeaderMap),
    /// The front's list.
    List(&'a [(HeaderName, HeaderValue)]),
}

impl<'r> Fields<'r> {
    /// Every field line, in order (a map keeps the order of each name's
    /// values, and names in first-arrival order).
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'r HeaderName, &'r HeaderValue)> {
        match self {
            Fields::Map(m) => Either::A(m.iter()),
            Fields::List(l) => Either::B(l.iter().map(|(n, v)| (n, v))),
        }
    }
}

impl RequestFields for Fields<'_> {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        match *self {
            Fields::Map(m) => Either::A(m.get_all(name).into_iter()),
            Fields::List(l) => Either::B(l.values(name)),
        }
    }

    fn first_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        match *self {
            Fields::Map(m) => m.get(name),
            Fields::List(l) => l.first_value(name),
        }
    }
}

/// One of two iterators with the same item.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

/// A client's request, as hyper or the front delivered it.
pub(crate) struct ClientRequest(Inner);

/// What corsgate-http1's parser learnt of a head's fields while reading
/// them, so that the normalise stage does not scan them again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadFacts {
    /// The `Host` lines, and whether the one line is valid.
    pub(crate) host: HostLines,
    /// The fields' size as `maxHeaderBytes` counts it.
    pub(crate) field_bytes: usize,
}

enum Inner {
    /// Read by hyper: fields in the request's map. Boxed: an
    /// `http::Request` is twice the size of the front's request, which
    /// would otherwise be moved at that size through every layer.
    Hyper(Box<Request<RequestBody>>),
    /// Read by the front: an HTTP/1.1 request without a body.
    Front {
        method: Method,
        uri: Uri,
        fields: FieldList,
        /// What the parser found of `fields` (see [`HeadFacts`]).
        facts: Option<HeadFacts>,
    },
    /// A head the front refused (malformed or oversized): only its
    /// `Origin` lines, kept so that the answer carries CORS.
    Refused {
        reason: BadRequest,
        fields: FieldList,
    },
}

static ROOT: std::sync::LazyLock<Uri> = std::sync::LazyLock::new(|| Uri::from_static("/"));

impl ClientRequest {
    /// A request read by hyper, fields in its map.
    pub(crate) fn from_map(req: Request<RequestBody>) -> Self {
        ClientRequest(Inner::Hyper(Box::new(req)))
    }

    /// A bodiless HTTP/1.1 request read by the front.
    pub(crate) fn from_list(method: Method, uri: Uri, fields: FieldList) -> Self {
        ClientRequest(Inner::Front {
            method,
            uri,
            fields,
            facts: None,
        })
    }

    /// A request head parsed by corsgate-http1, with what it found.
    pub(crate) fn from_head(head: RequestHead) -> Self {
        ClientRequest(Inner::Front {
            method: head.method,
            uri: head.uri,
            fields: head.fields,
            facts: Some(HeadFacts {
                host: head.host,
                field_bytes: head.field_bytes,
            }),
        })
    }

    /// What the parser found of the fields, for a head the front read.
    pub(crate) fn head_facts(&self) -> Option<HeadFacts> {
        match &self.0 {
            Inner::Front { facts, .. } => *facts,
            _ => None,
        }
    }

    /// A head the front refused: answered as a `GET /` with these
    /// `Origin` lines, for `reason`.
    pub(crate) fn refused(reason: BadRequest, origins: FieldList) -> Self {
        ClientRequest(Inner::Refused {
            reason,
            fields: origins,
        })
    }

    /// Why the front refused this request's head, if it did.
    pub(crate) fn refusal(&self) -> Option<BadRequest> {
        match &self.0 {
            Inner::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The request method.
    pub(crate) fn method(&self) -> &Method {
        match &self.0 {
            Inner::Hyper(r) => r.method(),
            Inner::Front { method, .. } => method,
            Inner::Refused { .. } => &Method::GET,
        }
    }

    /// The protocol version (the front reads HTTP/1.1 only).
    pub(crate) fn version(&self) -> http::Version {
        match &self.0 {
            Inner::Hyper(r) => r.version(),
            Inner::Front { .. } | Inner::Refused { .. } => http::Version::HTTP_11,
        }
    }

    /// The request target.
    pub(crate) fn uri(&self) -> &Uri {
        match &self.0 {
            Inner::Hyper(r) => r.uri(),
            Inner::Front { uri, .. } => uri,
            Inner::Refused { .. } => &ROOT,
        }
    }

    /// The fields, read-only.
    pub(crate) fn fields(&self) -> Fields<'_> {
        match &self.0 {
            Inner::Hyper(r) => Fields::Map(r.headers()),
            Inner::Front { fields, .. } | Inner::Refused { fields, .. } => Fields::List(fields),
        }
    }

    /// Whether the request has no body to send.
    pub(crate) fn body_is_empty(&self) -> bool {
        match &self.0 {
            Inner::Hyper(r) => http_body::Body::is_end_stream(r.body()),
            Inner::Front { .. } | Inner::Refused { .. } => true,
        }
    }

    /// The whole request as an `http::Request`, fields in its map: for a
    /// request that must be changed or handed to hyper's client.
    pub(crate) fn into_http(self) -> Request<RequestBody> {
        match self.0 {
            Inner::Hyper(r) => *r,
            Inner::Front {
                method,
                uri,
                fields,
                ..
            } => {
                let mut req = Request::new(RequestBody::Empty);
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                *req.version_mut() = http::Version::HTTP_11;
                let map = req.headers_mut();
                map.reserve(fields.len());
                for (name, value) in fields {
                    map.append(name, value);
                }
                req
            }
            // Never forwarded: the pipeline refuses it first.
            Inner::Refused { fields, .. } => {
                ClientRequest::from_list(Method::GET, ROOT.clone(), fields).into_http()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> FieldList {
        [
            ("host", "a.test"),
            ("origin", "https://app.test"),
            ("x-forwarded-for", "10.0.0.1"),
            ("X-Forwarded-For", "10.0.0.2"),
            ("accept", "*/*"),
        ]
        .into_iter()
        .map(|(n, v)| {
            (
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_static(v),
            )
        })
        .collect()
    }

    /// A list-backed request reads the same as the map it turns into, and
    /// turning it into a map keeps every line in order.
    #[test]
    fn a_list_reads_like_its_map() {
        let req = ClientRequest::from_list(Method::GET, Uri::from_static("/p?q"), lines());
        let from_list: Vec<_> = req
            .fields()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let xff = HeaderName::from_static("x-forwarded-for");
        let listed: Vec<_> = req.fields().values(&xff).cloned().collect();
        let req = ClientRequest::from_map(req.into_http());
        assert!(matches!(req.fields(), Fields::Map(_)));
        let from_map: Vec<_> = req
            .fields()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        assert_eq!(from_list, lines());
        assert_eq!(from_map, lines());
        assert_eq!(
            listed,
            req.fields().values(&xff).cloned().collect::<Vec<_>>()
        );
        assert_eq!(listed, ["10.0.0.1", "10.0.0.2"]);
        let http = req.into_http();
        assert_eq!(http.headers().len(), 5);
        assert_eq!((http.method(), http.uri().path()), (&Method::GET, "/p"));
    }
}
