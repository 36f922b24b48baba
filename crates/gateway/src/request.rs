//! A client's request as the handler sees it, whichever server read it.
//!
//! hyper delivers a request with an `http::HeaderMap`. corsgate's own
//! HTTP/1.1 front (see `front`) delivers the fields as a list in arrival
//! order instead: routing and the CORS decision read a few fields by name,
//! and a preflight answered at the gateway never needs more, so building a
//! hash map of every field would be work thrown away (about 1,900
//! instructions of a preflight's 13,200). The map is built only when the
//! request must be changed or handed to hyper's client.

use crate::RequestBody;
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

/// A client's request: method, target, version, extensions and body in an
/// `http::Request`, and the fields either in its map or in a list.
pub(crate) struct ClientRequest {
    /// When `list` is `Some`, this request's map is empty and unused.
    req: Request<RequestBody>,
    list: Option<FieldList>,
}

impl ClientRequest {
    /// A request read by hyper, fields in its map.
    pub(crate) fn from_map(req: Request<RequestBody>) -> Self {
        ClientRequest { req, list: None }
    }

    /// A request read by the front: `req`'s map is empty, the fields are
    /// `list`.
    pub(crate) fn from_list(req: Request<RequestBody>, list: FieldList) -> Self {
        debug_assert!(req.headers().is_empty());
        ClientRequest {
            req,
            list: Some(list),
        }
    }

    /// The request method.
    pub(crate) fn method(&self) -> &Method {
        self.req.method()
    }

    /// The request target.
    pub(crate) fn uri(&self) -> &Uri {
        self.req.uri()
    }

    /// The fields, read-only.
    pub(crate) fn fields(&self) -> Fields<'_> {
        match &self.list {
            Some(l) => Fields::List(l),
            None => Fields::Map(self.req.headers()),
        }
    }

    /// Whether the request has no body to send.
    pub(crate) fn body_is_empty(&self) -> bool {
        http_body::Body::is_end_stream(self.req.body())
    }

    /// The fields as a map, to change them; a list is moved into the map
    /// first.
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderMap {
        if let Some(list) = self.list.take() {
            let map = self.req.headers_mut();
            map.reserve(list.len());
            for (name, value) in list {
                map.append(name, value);
            }
        }
        self.req.headers_mut()
    }

    /// The whole request as an `http::Request`, fields in its map.
    pub(crate) fn into_http(mut self) -> Request<RequestBody> {
        self.headers_mut();
        self.req
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
        let mut req = ClientRequest::from_list(Request::new(RequestBody::Empty), lines());
        let from_list: Vec<_> = req
            .fields()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let xff = HeaderName::from_static("x-forwarded-for");
        let listed: Vec<_> = req.fields().values(&xff).cloned().collect();
        req.headers_mut();
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
        assert_eq!(req.into_http().headers().len(), 5);
    }
}
