//! Read access to a request's header fields.
//!
//! The engine reads a handful of fields by name (`Origin` and the
//! `Access-Control-Request-*` fields). Requiring an `http::HeaderMap` for
//! that would make a server that reads requests itself hash and index every
//! field of every request only for the engine to look up three of them; a
//! plain list of the request's fields, scanned in order, is cheaper for the
//! few fields a request carries. [`RequestFields`] is implemented for both.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A request's header fields, looked up by name in arrival order.
pub trait RequestFields {
    /// Every value of `name`, in the order the lines arrived.
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue>;

    /// The first value of `name`.
    fn first_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.values(name).next()
    }

    /// Whether any line is named `name`.
    fn has(&self, name: &HeaderName) -> bool {
        self.first_value(name).is_some()
    }
}

impl RequestFields for HeaderMap {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        self.get_all(name).into_iter()
    }

    fn first_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.get(name)
    }

    fn has(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
}

/// A request's fields as a list of lines, in arrival order.
impl RequestFields for [(HeaderName, HeaderValue)] {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        self.iter().filter(move |(n, _)| n == name).map(|(_, v)| v)
    }
}

impl<T: RequestFields + ?Sized> RequestFields for &T {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        (**self).values(name)
    }

    fn first_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        (**self).first_value(name)
    }

    fn has(&self, name: &HeaderName) -> bool {
        (**self).has(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list and the map answer every lookup alike, including repeated
    /// names, in line order.
    #[test]
    fn list_and_map_agree() {
        let lines = [
            ("origin", "https://a.test"),
            ("x-a", "1"),
            ("origin", "https://b.test"),
            ("X-A", "2"),
            ("access-control-request-method", "PUT"),
        ];
        let mut map = HeaderMap::new();
        let mut list = Vec::new();
        for (n, v) in lines {
            let name = HeaderName::from_bytes(n.as_bytes()).expect("name");
            let value = HeaderValue::from_static(v);
            map.append(name.clone(), value.clone());
            list.push((name, value));
        }
        for n in ["origin", "x-a", "access-control-request-method", "absent"] {
            let name = HeaderName::from_static(n);
            let from_map: Vec<_> = RequestFields::values(&map, &name).collect();
            let from_list: Vec<_> = list.as_slice().values(&name).collect();
            assert_eq!(from_map, from_list, "{n}");
            assert_eq!(
                map.first_value(&name),
                list.as_slice().first_value(&name),
                "{n}"
            );
            assert_eq!(map.has(&name), list.as_slice().has(&name), "{n}");
        }
    }
}
