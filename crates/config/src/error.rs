//! Refusals: one [`ConfigError`] per problem, with file, line, column and
//! the offending line, and [`ConfigErrors`], all of them at once, so that
//! one run of `corsgate check` shows everything to fix.

use crate::spans::{snippet, Location};
use std::fmt;

/// One reason a configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when loaded from one.
    pub file: Option<String>,
    /// 1-based line and column, when the configuration came from text.
    pub location: Option<Location>,
    /// The offending source line with a caret under the column.
    pub snippet: Option<String>,
    /// Where in the document (`policies.admin.allowOrigins[1]`).
    pub path: String,
    /// The stable ID of the refusal (`invalid-method`), for the errors
    /// that have one: every route compiler error and import error does.
    pub id: Option<&'static str>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<config>");
        match self.location {
            Some((l, c)) => write!(f, "{file}:{l}:{c}: ")?,
            None => write!(f, "{file}: ")?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)?;
        if let Some(id) = self.id {
            write!(f, " ({id})")?;
        }
        if let Some(snippet) = &self.snippet {
            for line in snippet.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// A refused configuration: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration refused:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A YAML syntax or type error of `text`, with its location and snippet.
pub(crate) fn yaml_error(file: Option<&str>, text: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let location = e.location().map(|l| (l.line(), l.column()));
    ConfigError {
        id: None,
        file: file.map(str::to_owned),
        location,
        snippet: location.and_then(|at| snippet(text, at)),
        path: String::new(),
        reason: e.to_string(),
    }
}
