//! Where each value of a YAML document is, by document path.
//!
//! serde gives line and column only for syntax and type errors. Everything
//! found later (a reference to a missing policy, a refused origin, a lint)
//! knows its document path (`vservices[0].rules[2].cors`); this index maps
//! such a path back to a line and column, read from the YAML parser's event
//! stream, so that every error and lint can point at the offending text.

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

/// 1-based line and column.
pub type Location = (usize, usize);

/// Document path → location, for one YAML document.
#[derive(Debug, Default, Clone)]
pub struct Spans {
    at: HashMap<String, Location>,
}

enum Frame {
    Map {
        path: String,
        /// The key read, waiting for its value.
        key: Option<(String, Location)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Spans {
    /// Index every document of `text`. A syntax error ends the walk early;
    /// what was read before it stays indexed (the syntax error itself is
    /// reported by the deserializer, with its own location).
    pub fn of_documents(text: &str) -> Vec<Spans> {
        let mut docs = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut current = Spans::default();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let here = (span.start.line(), span.start.col() + 1);
            // The path of a node starting here, and where to record it.
            let mut node = |stack: &mut Vec<Frame>, scalar: Option<&str>| -> Option<String> {
                match stack.last_mut() {
                    None => Some(String::new()),
                    Some(Frame::Seq { path, next }) => {
                        let p = format!("{path}[{next}]");
                        *next += 1;
                        current.at.insert(p.clone(), here);
                        Some(p)
                    }
                    Some(Frame::Map { path, key }) => match key.take() {
                        None => {
                            *key = Some((scalar.unwrap_or("?").to_owned(), here));
                            None
                        }
                        Some((k, key_at)) => {
                            let p = join(path, &k);
                            // A scalar is pointed at itself; a nested
                            // mapping or sequence at its key's line.
                            let at = if scalar.is_some() { here } else { key_at };
                            current.at.insert(p.clone(), at);
                            Some(p)
                        }
                    },
                }
            };
            match event {
                Event::Scalar(value, ..) => {
                    node(&mut stack, Some(&value));
                }
                Event::Alias(_) => {
                    node(&mut stack, Some(""));
                }
                Event::MappingStart(..) => {
                    if let Some(path) = node(&mut stack, None) {
                        stack.push(Frame::Map { path, key: None });
                    } else {
                        // A mapping used as a key: index nothing inside it.
                        stack.push(Frame::Map {
                            path: "?".into(),
                            key: None,
                        });
                    }
                }
                Event::SequenceStart(..) => {
                    let path = node(&mut stack, None).unwrap_or_else(|| "?".into());
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::DocumentEnd => {
                    docs.push(std::mem::take(&mut current));
                    stack.clear();
                }
                _ => {}
            }
        }
        if !current.at.is_empty() {
            docs.push(current);
        }
        docs
    }

    /// Index a single-document text.
    pub fn of(text: &str) -> Spans {
        Spans::of_documents(text)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The location of `path`, or of its nearest indexed ancestor (a
    /// missing field is reported at the mapping that lacks it).
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(at) = self.at.get(p) {
                return Some(*at);
            }
            let cut = if p.ends_with(']') {
                p.rfind('[')
            } else {
                p.rfind('.')
            }?;
            p = &p[..cut];
        }
    }
}

/// The source line `line` (1-based) with a caret under `col`, for error
/// messages.
pub fn snippet(text: &str, (line, col): Location) -> Option<String> {
    let source = text.lines().nth(line.checked_sub(1)?)?;
    let pad: String = source
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let gutter = " ".repeat(line.to_string().len());
    Some(format!("{line} | {source}\n{gutter} | {pad}^"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "policies:\n  p:\n    allowOrigins:\n      - https://a.example\n      - \"https://b.example\"\n    maxAge: 60\nvservices:\n  - name: api\n    rules:\n      - cors: missing\n        match: { path: { prefix: /x } }\n";

    #[test]
    fn scalars_are_located_at_themselves_containers_at_their_key() {
        let s = Spans::of(DOC);
        assert_eq!(s.locate("policies.p.allowOrigins[1]"), Some((5, 9)));
        assert_eq!(s.locate("policies.p.maxAge"), Some((6, 13)));
        assert_eq!(s.locate("policies.p"), Some((2, 3)));
        assert_eq!(s.locate("vservices[0].rules[0].cors"), Some((10, 15)));
        assert_eq!(
            s.locate("vservices[0].rules[0].match.path.prefix"),
            Some((11, 34))
        );
    }

    #[test]
    fn a_missing_path_falls_back_to_its_nearest_ancestor() {
        let s = Spans::of(DOC);
        assert_eq!(s.locate("policies.p.allowMethods"), Some((2, 3)));
        assert_eq!(s.locate("vservices[0].rules[3]"), Some((9, 5)));
        assert_eq!(s.locate("nothing.here"), None);
    }

    #[test]
    fn documents_are_indexed_separately() {
        let docs = Spans::of_documents("a: 1\n---\nb:\n  c: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].locate("a"), Some((1, 4)));
        assert_eq!(docs[1].locate("b.c"), Some((4, 6)));
    }

    #[test]
    fn snippet_points_at_the_column() {
        assert_eq!(
            snippet(DOC, (10, 15)).unwrap(),
            "10 |       - cors: missing\n   |               ^"
        );
    }
}
