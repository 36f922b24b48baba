//! The texts a configuration was read from, kept with it so that any later
//! stage can point at the offending text.
//!
//! Loading checks policies and references; the route compiler (a crate of
//! its own, downstream of this one) checks rules later. Both report by
//! document path (`vservices[0].rules[2].match.methods[0]`). [`Sources`]
//! maps such a path to a file, line and column: in the native file, or in
//! the Gateway API manifest an imported vService, rule or policy came from.

use crate::gateway_api::Source;
use crate::spans::{snippet, Location, Spans};
use crate::ConfigError;
use std::sync::Arc;

/// A manifest's text (after documentation snippets were expanded) and its
/// span index per document.
#[derive(Debug)]
pub(crate) struct ManifestText {
    pub(crate) file: String,
    pub(crate) text: String,
    pub(crate) spans: Vec<Spans>,
}

#[derive(Debug, Default)]
struct Inner {
    file: Option<String>,
    text: String,
    spans: Spans,
    manifests: Vec<ManifestText>,
    /// Native path prefix → where it came from in a manifest.
    provenance: Vec<(String, Source)>,
}

/// Where every part of a loaded configuration was written (cheap to clone).
#[derive(Debug, Default, Clone)]
pub struct Sources(Arc<Inner>);

/// A document path's place: file, 1-based line and column, source snippet.
pub type Place = (Option<String>, Option<Location>, Option<String>);

impl Sources {
    /// A configuration that came from no text: only the file name is known.
    pub(crate) fn file_only(file: Option<&str>) -> Sources {
        Sources(Arc::new(Inner {
            file: file.map(str::to_owned),
            ..Inner::default()
        }))
    }

    /// The native file's `text` (no spans for a bare manifest file), the
    /// imported manifests and where each imported path came from.
    pub(crate) fn new(
        file: Option<&str>,
        text: Option<&str>,
        manifests: Vec<ManifestText>,
        provenance: Vec<(String, Source)>,
    ) -> Sources {
        Sources(Arc::new(Inner {
            file: file.map(str::to_owned),
            text: text.unwrap_or_default().to_owned(),
            spans: text.map(Spans::of).unwrap_or_default(),
            manifests,
            provenance,
        }))
    }

    /// Where `path` is: a path under an imported vService, rule or policy
    /// is located in the manifest it came from, anything else in the
    /// native file.
    pub fn place(&self, path: &str) -> Place {
        let s = &self.0;
        let best = s
            .provenance
            .iter()
            .filter(|(p, _)| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(p, _)| p.len());
        match best {
            Some((p, src)) => {
                let m = &s.manifests[src.manifest];
                let doc_path = format!("{}{}", src.path, &path[p.len()..]);
                let at = m.spans.get(src.doc).and_then(|sp| sp.locate(&doc_path));
                (
                    Some(m.file.clone()),
                    at,
                    at.and_then(|a| snippet(&m.text, a)),
                )
            }
            None => {
                let at = s.spans.locate(path);
                (s.file.clone(), at, at.and_then(|a| snippet(&s.text, a)))
            }
        }
    }

    /// A refusal of the value at `path`, located, with its stable ID.
    pub fn error(&self, path: String, id: &'static str, reason: String) -> ConfigError {
        let (file, location, snippet) = self.place(&path);
        ConfigError {
            file,
            location,
            snippet,
            path,
            id: Some(id),
            reason,
        }
    }
}
