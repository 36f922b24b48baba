//! Walking manifest objects: the context every step writes its notes and
//! errors through, and the small readers of `serde_json` values.

use super::{Imported, Note, NoteKind, Source};
use serde_json::{Map, Value};

/// The place being walked (manifest, document) and the import being
/// filled: every note and error is written through it, so each carries the
/// manifest place it is about.
pub(super) struct Ctx<'a> {
    pub(super) manifest: usize,
    pub(super) doc: usize,
    pub(super) out: &'a mut Imported,
}

impl Ctx<'_> {
    /// The manifest place of `path` in the current document.
    pub(super) fn src(&self, path: &str) -> Source {
        Source {
            manifest: self.manifest,
            doc: self.doc,
            path: path.to_owned(),
        }
    }
    /// A note at `path`.
    pub(super) fn note(&mut self, path: &str, kind: NoteKind, message: String) {
        let source = self.src(path);
        self.out.notes.push(Note {
            source,
            kind,
            message,
        });
    }
    /// A refusal without a stable ID.
    pub(super) fn error(&mut self, path: &str, message: String) {
        let source = self.src(path);
        self.out.errors.push((source, None, message));
    }
    /// A refusal with a stable ID.
    pub(super) fn refuse(&mut self, path: &str, id: &'static str, message: String) {
        let source = self.src(path);
        self.out.errors.push((source, Some(id), message));
    }
    /// Report every key of `obj` not in `known`.
    pub(super) fn extra(&mut self, obj: &Map<String, Value>, path: &str, known: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                self.note(
                    &join(path, k),
                    NoteKind::Unsupported,
                    format!("`{k}` is not implemented by corsgate and is ignored"),
                );
            }
        }
    }
}

/// `path.key`, or `key` at the document root.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping field, if it is one.
pub(super) fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}
/// A sequence field; anything else reads as empty.
pub(super) fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
/// A scalar field as text (YAML reads `80` and `true` as numbers and
/// booleans where the Gateway API means strings).
pub(super) fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
