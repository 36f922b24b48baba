//! Load-time refusals (R3, R5 in `docs/rules.md`) as typed values with
//! stable IDs.
//!
//! The engine knows fields, not files: each problem names the field and list
//! index it is about, and the configuration layer maps that to file, line and
//! column.

use std::fmt;

/// Where in a [`PolicySpec`](crate::PolicySpec) a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    /// The camelCase field name, e.g. `allowOrigins`.
    pub field: &'static str,
    /// The list index, for list fields.
    pub index: Option<usize>,
}

impl FieldPath {
    pub(crate) const fn whole(field: &'static str) -> Self {
        FieldPath { field, index: None }
    }
    pub(crate) const fn item(field: &'static str, index: usize) -> Self {
        FieldPath {
            field,
            index: Some(index),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{}]", self.field, i),
            None => f.write_str(self.field),
        }
    }
}

/// Stable IDs of load-time refusals (the list in R3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorId {
    /// An `allowOrigins` entry outside the `CORSOrigin` pattern, or port 0 / > 65535.
    InvalidOrigin,
    /// `*` together with other values.
    StarNotAlone,
    /// A method outside the Gateway API set, or more than 9.
    InvalidMethod,
    /// A header name that is not a token.
    InvalidHeaderName,
    /// `maxAge` < 1 (or beyond int32).
    InvalidMaxAge,
    /// More than one CORS filter on one rule (raised by the config layer).
    DuplicateCorsFilter,
    /// An origin regex without an explicit scheme.
    RegexNeedsScheme,
    /// An origin regex that does not compile.
    InvalidRegex,
    /// `*` or `scheme://*` with credentials, without the opt-in (R5).
    CredentialsWithAnyOrigin,
}

impl ErrorId {
    /// The stable ID users see and search for.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorId::InvalidOrigin => "invalid-origin",
            ErrorId::StarNotAlone => "star-not-alone",
            ErrorId::InvalidMethod => "invalid-method",
            ErrorId::InvalidHeaderName => "invalid-header-name",
            ErrorId::InvalidMaxAge => "invalid-max-age",
            ErrorId::DuplicateCorsFilter => "duplicate-cors-filter",
            ErrorId::RegexNeedsScheme => "regex-needs-scheme",
            ErrorId::InvalidRegex => "invalid-regex",
            ErrorId::CredentialsWithAnyOrigin => "credentials-with-any-origin",
        }
    }
}

impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a policy cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{id} at {at}: {value:?}: {reason}")]
pub struct PolicyError {
    /// Stable ID.
    pub id: ErrorId,
    /// The field (and list index) at fault.
    pub at: FieldPath,
    /// The offending value as written.
    pub value: String,
    /// Why it is refused, and what to do instead.
    pub reason: String,
}

impl PolicyError {
    pub(crate) fn new(
        id: ErrorId,
        at: FieldPath,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        PolicyError {
            id,
            at,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
