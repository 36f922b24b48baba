//! Gateway API manifests named by a configuration: read, expanded, parsed,
//! imported (crate module [`crate::gateway_api`]) and merged into the
//! native configuration. Every error and note is located in the manifest
//! it is about, and the generated vServices and policies keep their
//! provenance so that later stages point into the manifests too.

use crate::error::yaml_error;
use crate::gateway_api::{self, NoteKind, Source};
use crate::sources::ManifestText;
use crate::spans::{snippet, Spans};
use crate::{Config, ConfigError, GatewayApi, ImportNote};
use serde_json::Value;
use std::path::Path;

/// The manifests' texts and what importing them produced.
pub(crate) struct ImportResult {
    pub(crate) texts: Vec<ManifestText>,
    pub(crate) imported: gateway_api::Imported,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) notes: Vec<ImportNote>,
}

/// Read, parse and import the manifests a configuration names. `inline` is
/// the text when the configuration file is itself the manifest.
pub(crate) fn import_manifests(
    g: &GatewayApi,
    file: Option<&str>,
    inline: Option<&str>,
) -> ImportResult {
    let base = file
        .and_then(|f| Path::new(f).parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut read = Read::default();
    for (i, m) in g.manifests.iter().enumerate() {
        let (name, raw) = match inline {
            Some(t) => (m.clone(), Ok(t.to_owned())),
            None => {
                let p = base.join(m);
                (p.display().to_string(), std::fs::read_to_string(&p))
            }
        };
        match raw {
            Ok(raw) => read.manifest(i, name, &raw),
            Err(e) => {
                read.errors.push(ConfigError {
                    id: None,
                    file: file.map(str::to_owned),
                    location: None,
                    snippet: None,
                    path: format!("gatewayApi.manifests[{i}]"),
                    reason: format!("cannot read {name}: {e}"),
                });
                read.texts.push(ManifestText {
                    file: name,
                    text: String::new(),
                    spans: Vec::new(),
                });
            }
        }
    }
    let imported = gateway_api::import(&read.docs, g);
    located(read, imported)
}

/// The manifests read so far: their texts (indexed like
/// `gatewayApi.manifests`), documents, and the errors and notes of reading.
#[derive(Default)]
struct Read {
    texts: Vec<ManifestText>,
    errors: Vec<ConfigError>,
    notes: Vec<ImportNote>,
    docs: Vec<(usize, usize, Value)>,
}

impl Read {
    /// Manifest `i`, named `name`: documentation shortcodes expanded (each
    /// a note, an unknown one an error), documents parsed, spans kept.
    fn manifest(&mut self, i: usize, name: String, raw: &str) {
        let (text, snippet_notes, snippet_errors) = gateway_api::expand_snippets(raw);
        for (line, message) in snippet_notes {
            self.notes.push(ImportNote {
                file: name.clone(),
                location: Some((line, 1)),
                path: String::new(),
                kind: NoteKind::Info,
                message,
            });
        }
        for (line, reason) in snippet_errors {
            self.errors.push(ConfigError {
                id: None,
                file: Some(name.clone()),
                location: Some((line, 1)),
                snippet: snippet(&text, (line, 1)),
                path: String::new(),
                reason,
            });
        }
        match gateway_api::documents(&text) {
            Ok(d) => self
                .docs
                .extend(d.into_iter().enumerate().map(|(di, v)| (i, di, v))),
            Err(e) => self.errors.push(yaml_error(Some(&name), &text, &e)),
        }
        let spans = Spans::of_documents(&text);
        self.texts.push(ManifestText {
            file: name,
            text,
            spans,
        });
    }
}

/// The import's errors and notes, located in the manifests' texts.
fn located(read: Read, imported: gateway_api::Imported) -> ImportResult {
    let Read {
        texts,
        mut errors,
        mut notes,
        ..
    } = read;
    let locate = |src: &Source| {
        let m = &texts[src.manifest];
        let at = m.spans.get(src.doc).and_then(|s| s.locate(&src.path));
        (m.file.clone(), at, at.and_then(|a| snippet(&m.text, a)))
    };
    for (src, id, reason) in &imported.errors {
        let (f, at, snip) = locate(src);
        errors.push(ConfigError {
            id: *id,
            file: Some(f),
            location: at,
            snippet: snip,
            path: src.path.clone(),
            reason: reason.clone(),
        });
    }
    for n in &imported.notes {
        let (f, at, _) = locate(&n.source);
        notes.push(ImportNote {
            file: f,
            location: at,
            path: n.source.path.clone(),
            kind: n.kind,
            message: n.message.clone(),
        });
    }
    ImportResult {
        texts,
        imported,
        errors,
        notes,
    }
}

/// Merge imported policies and vServices into `config`: imported vServices
/// follow the native ones, so their provenance paths are renumbered. A
/// policy name used by both is an error, never a
/// silent replacement of the native policy.
pub(crate) fn merge(
    config: &mut Config,
    imported: gateway_api::Imported,
    file: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Source)> {
    let native_vservices = config.vservices.len();
    for (name, spec) in imported.policies {
        if config.policies.contains_key(&name) {
            errors.push(ConfigError {
                id: None,
                file: file.map(str::to_owned),
                location: None,
                snippet: None,
                path: format!("policies.{name}"),
                reason: "this name is also used by an imported Gateway API policy".into(),
            });
        }
        config.policies.insert(name, spec);
    }
    config.vservices.extend(imported.vservices);
    let mut provenance = Vec::new();
    for (path, src) in imported.provenance {
        let path = match path.strip_prefix("vservices[") {
            Some(rest) => {
                let (n, tail) = rest.split_once(']').unwrap_or((rest, ""));
                let n: usize = n.parse().unwrap_or(0);
                format!("vservices[{}]{tail}", n + native_vservices)
            }
            None => path,
        };
        provenance.push((path, src));
    }
    provenance
}
