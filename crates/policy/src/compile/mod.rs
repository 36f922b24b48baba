//! Validation (R3, R5), lints (R6) and compilation (R4) of a [`PolicySpec`]
//! (rule numbers: `docs/rules.md`).
//!
//! Compilation collects *every* problem rather than stopping at the first,
//! so `check` can report them all at once.

mod safety;

use crate::canary;
use crate::error::{ErrorId, FieldPath, PolicyError};
use crate::lint::{Lint, LintId, Severity};
use crate::matcher::{self, EntryError, OriginEntry, OriginMatcher};
use crate::policy::{AllowList, Expose, Policy};
use crate::spec::PolicySpec;
use crate::token::{is_forbidden_request_header, is_token, GATEWAY_API_METHODS};
use http::HeaderValue;

/// A policy that compiled, with its non-refusing lints.
#[derive(Debug)]
pub struct Compiled {
    /// The immutable compiled policy.
    pub policy: Policy,
    /// Lints that did not refuse it (info, warn, and `L-CRED-ANY`).
    pub lints: Vec<Lint>,
}

/// A refused policy: every error, and every lint (refusing or not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy refused: {}", summary(.errors, .lints))]
pub struct Rejected {
    /// Syntax and safety errors (R3, R5).
    pub errors: Vec<PolicyError>,
    /// All lints; those with [`Lint::refuses`] are refusals too.
    pub lints: Vec<Lint>,
}

fn summary(errors: &[PolicyError], lints: &[Lint]) -> String {
    let mut parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.extend(
        lints
            .iter()
            .filter(|l| l.refuses())
            .map(ToString::to_string),
    );
    parts.join("; ")
}

/// The largest `maxAge` the Gateway API accepts (`int32`).
const MAX_AGE_LIMIT: i64 = i32::MAX as i64;
/// Chromium's cap on `Access-Control-Max-Age` (F7).
pub const CHROMIUM_MAX_AGE_CAP: i64 = 7200;
/// Firefox's cap, the largest of any browser (F7).
pub const FIREFOX_MAX_AGE_CAP: i64 = 86400;
/// `maxAge` when unset (R2).
pub const DEFAULT_MAX_AGE: i64 = 5;

struct Builder<'a> {
    spec: &'a PolicySpec,
    errors: Vec<PolicyError>,
    lints: Vec<Lint>,
}

impl Builder<'_> {
    fn error(&mut self, id: ErrorId, at: FieldPath, value: &str, reason: impl Into<String>) {
        self.errors.push(PolicyError::new(id, at, value, reason));
    }

    fn lint(&mut self, id: LintId, severity: Severity, at: FieldPath, message: String, fix: &str) {
        self.lints.push(Lint {
            id,
            severity,
            at,
            message,
            fix: fix.to_owned(),
        });
    }

    /// R3: `*` must stand alone in `field`.
    fn star_alone(&mut self, field: &'static str, list: &[String]) {
        if list.len() > 1 {
            if let Some(i) = list.iter().position(|v| v == "*") {
                self.error(
                    ErrorId::StarNotAlone,
                    FieldPath::item(field, i),
                    "*",
                    "`*` means every value and cannot be combined with other values",
                );
            }
        }
    }

    fn origins(&mut self) -> Vec<(usize, OriginEntry)> {
        let spec = self.spec;
        self.star_alone("allowOrigins", &spec.allow_origins);
        let mut entries = Vec::new();
        for (i, text) in spec.allow_origins.iter().enumerate() {
            let at = FieldPath::item("allowOrigins", i);
            match matcher::parse_entry(text) {
                Ok(e) => entries.push((i, e)),
                Err(EntryError::Port) => self.error(
                    ErrorId::InvalidOrigin,
                    at,
                    text,
                    "port must be between 1 and 65535",
                ),
                Err(EntryError::Pattern) => self.error(
                    ErrorId::InvalidOrigin,
                    at,
                    text,
                    "expected `*`, `http(s)://host[:port]`, `http(s)://*.suffix[:port]` or \
                     `http(s)://*[:port]` with no path, trailing slash or userinfo \
                     (to allow `null`, use allowNullOrigin)",
                ),
            }
        }
        entries
    }

    fn methods(&mut self) -> AllowList {
        let list = &self.spec.allow_methods;
        self.star_alone("allowMethods", list);
        if list.len() > 9 {
            self.error(
                ErrorId::InvalidMethod,
                FieldPath::whole("allowMethods"),
                &list.join(","),
                "at most 9 methods",
            );
        }
        for (i, m) in list.iter().enumerate() {
            if !GATEWAY_API_METHODS.contains(&m.as_str()) {
                self.error(
                    ErrorId::InvalidMethod,
                    FieldPath::item("allowMethods", i),
                    m,
                    "methods are case-sensitive and must be one of GET, HEAD, POST, PUT, \
                     DELETE, CONNECT, OPTIONS, TRACE, PATCH or *",
                );
            }
            match m.as_str() {
                "CONNECT" | "TRACE" => self.lint(
                    LintId::NoopMethod,
                    Severity::Info,
                    FieldPath::item("allowMethods", i),
                    format!("{m} is a forbidden method; browsers never send it"),
                    "remove it",
                ),
                "OPTIONS" => self.lint(
                    LintId::NoopOptions,
                    Severity::Info,
                    FieldPath::item("allowMethods", i),
                    "browsers never preflight an OPTIONS request; listing it has no effect".into(),
                    "remove OPTIONS",
                ),
                _ => {}
            }
        }
        build_list(list, false)
    }

    fn headers(&mut self) -> AllowList {
        let list = &self.spec.allow_headers;
        self.star_alone("allowHeaders", list);
        for (i, h) in list.iter().enumerate() {
            self.header_name("allowHeaders", i, h);
            if h != "*" && is_forbidden_request_header(h) {
                self.lint(
                    LintId::NoopHeader,
                    Severity::Info,
                    FieldPath::item("allowHeaders", i),
                    format!("{h} is a forbidden request header; scripts cannot set it"),
                    "remove it; it has no effect",
                );
            }
        }
        build_list(list, true)
    }

    fn header_name(&mut self, field: &'static str, i: usize, h: &str) {
        if !is_token(h.as_bytes()) {
            self.error(
                ErrorId::InvalidHeaderName,
                FieldPath::item(field, i),
                h,
                "a header name is an HTTP token: letters, digits and !#$%&'*+-.^_`|~",
            );
        }
    }

    fn expose(&mut self, credentials: bool) -> Expose {
        let list = &self.spec.expose_headers;
        for (i, h) in list.iter().enumerate() {
            self.header_name("exposeHeaders", i, h);
        }
        if let Some(i) = list.iter().position(|h| h == "*") {
            if credentials {
                self.lint(
                    LintId::ExposeStarCreds,
                    Severity::Warn,
                    FieldPath::item("exposeHeaders", i),
                    "browsers ignore `*` in Access-Control-Expose-Headers for credentialed \
                     requests; corsgate enumerates the response's header names instead"
                        .into(),
                    "list the headers to expose",
                );
                return Expose::Enumerate;
            }
            return Expose::Star;
        }
        match build_list(list, true) {
            AllowList::List { value, .. } => Expose::List(value),
            _ => Expose::None,
        }
    }

    fn max_age(&mut self) -> HeaderValue {
        let age = self.spec.max_age.unwrap_or(DEFAULT_MAX_AGE);
        if !(1..=MAX_AGE_LIMIT).contains(&age) {
            self.error(
                ErrorId::InvalidMaxAge,
                FieldPath::whole("maxAge"),
                &age.to_string(),
                "maxAge must be between 1 and 2147483647 seconds",
            );
        }
        if age > CHROMIUM_MAX_AGE_CAP {
            self.lint(
                LintId::MaxAgeChromium,
                Severity::Warn,
                FieldPath::whole("maxAge"),
                format!(
                    "Chromium caches preflights for at most {CHROMIUM_MAX_AGE_CAP} s, not {age}"
                ),
                "use 7200 or less",
            );
        }
        if age > FIREFOX_MAX_AGE_CAP {
            self.lint(
                LintId::MaxAgeAll,
                Severity::Warn,
                FieldPath::whole("maxAge"),
                format!("no browser caches preflights longer than {FIREFOX_MAX_AGE_CAP} s"),
                "use 7200 or less",
            );
        }
        HeaderValue::from(age)
    }

    /// R13: compile regexes into one automaton; lint each one.
    fn regexes(&mut self) -> Option<regex_automata::meta::Regex> {
        let patterns = &self.spec.allow_origin_regexes;
        if patterns.is_empty() {
            return None;
        }
        let mut ok = true;
        for (i, p) in patterns.iter().enumerate() {
            let at = FieldPath::item("allowOriginRegexes", i);
            let body = canary::pattern_body(p);
            if !(body.starts_with("https://")
                || body.starts_with("http://")
                || body.starts_with("https?://"))
            {
                self.error(
                    ErrorId::RegexNeedsScheme,
                    at,
                    p,
                    "an origin regex must start with https://, http:// or https?:// \
                     (after an optional ^ and inline flags)",
                );
                ok = false;
            }
            let single = match regex::Regex::new(&matcher::anchored(p)) {
                Ok(r) => r,
                Err(e) => {
                    self.error(ErrorId::InvalidRegex, at, p, e.to_string());
                    ok = false;
                    continue;
                }
            };
            let dots = canary::unescaped_dots(p);
            if let Some(&pos) = dots.first() {
                self.lint(
                    LintId::RegexDot,
                    Severity::Error,
                    at,
                    format!(
                        "unescaped `.` at byte {pos} of {p:?} matches any character, e.g. \
                         `appXexample.com`"
                    ),
                    "write `\\.` for a literal dot",
                );
            }
            if canary::has_case_insensitive_flag(p) {
                self.lint(
                    LintId::RegexCase,
                    Severity::Info,
                    at,
                    "request origins are always lower case; `(?i)` is unnecessary".into(),
                    "remove (?i) and write the pattern in lower case",
                );
            }
            if let Some(canaries) = canary::regex_canaries(p) {
                let hits: Vec<&String> = canaries.iter().filter(|c| single.is_match(c)).collect();
                if !hits.is_empty() {
                    self.lint(
                        LintId::RegexCanary,
                        Severity::Error,
                        at,
                        format!("{p:?} also matches attacker-controlled origins: {hits:?}"),
                        "anchor the host: end with the exact domain and an explicit port",
                    );
                }
            }
        }
        if !ok {
            return None;
        }
        match matcher::compile_regex_set(patterns) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(
                    ErrorId::InvalidRegex,
                    FieldPath::whole("allowOriginRegexes"),
                    "",
                    e,
                );
                None
            }
        }
    }

    fn list_lints(&mut self) {
        let spec = self.spec;
        for (field, list, what) in [
            (
                "allowMethods",
                &spec.allow_methods,
                "only GET, HEAD and POST will work",
            ),
            (
                "allowHeaders",
                &spec.allow_headers,
                "only CORS-safelisted request headers will work",
            ),
            (
                "exposeHeaders",
                &spec.expose_headers,
                "scripts can read only CORS-safelisted response headers",
            ),
        ] {
            if list.is_empty() {
                self.lint(
                    LintId::EmptyList,
                    Severity::Info,
                    FieldPath::whole(field),
                    format!("{field} is empty: {what}"),
                    "list what the frontend needs",
                );
            }
        }
        if spec.allow_credentials {
            for (field, list) in [
                ("allowMethods", &spec.allow_methods),
                ("allowHeaders", &spec.allow_headers),
            ] {
                if let Some(i) = list.iter().position(|v| v == "*") {
                    self.lint(
                        LintId::WildcardCreds,
                        Severity::Warn,
                        FieldPath::item(field, i),
                        format!(
                            "`*` in {field} with credentials: corsgate echoes whatever the \
                             browser asks for"
                        ),
                        "list the methods and headers the API uses",
                    );
                }
            }
        }
    }
}

/// Build a list header value: `*` means echo; otherwise the items in
/// configuration order, de-duplicated (header names case-insensitively and
/// lower-cased), joined with `", "`.
fn build_list(list: &[String], lower: bool) -> AllowList {
    if list.iter().any(|v| v == "*") {
        return AllowList::Echo;
    }
    let mut items: Vec<Box<str>> = Vec::with_capacity(list.len());
    for v in list {
        let v = if lower {
            v.to_ascii_lowercase()
        } else {
            v.clone()
        };
        if !items.iter().any(|i| **i == *v) {
            items.push(v.into());
        }
    }
    if items.is_empty() {
        return AllowList::None;
    }
    let joined = items.join(", ");
    match HeaderValue::from_str(&joined) {
        Ok(value) => AllowList::List {
            value: promoted(value),
            items,
        },
        // Invalid items were already reported as errors; compilation fails.
        Err(_) => AllowList::None,
    }
}

/// Clone once so that the value's buffer becomes reference-counted now,
/// not on the first request: later clones are then allocation-free.
pub(crate) fn promoted(v: HeaderValue) -> HeaderValue {
    drop(v.clone());
    v
}

impl Policy {
    /// Validate, lint and compile a policy (R1-R6).
    ///
    /// Returns every error and lint at once. Error-severity lints other than
    /// `L-CRED-ANY` refuse the policy.
    pub fn compile(spec: &PolicySpec) -> Result<Compiled, Rejected> {
        let mut b = Builder {
            spec,
            errors: Vec::new(),
            lints: Vec::new(),
        };
        let entries = b.origins();
        let regexes = b.regexes();
        b.origin_safety(&entries);
        let methods = b.methods();
        let headers = b.headers();
        let expose = b.expose(spec.allow_credentials);
        let max_age = b.max_age();
        b.list_lints();

        if !b.errors.is_empty() || b.lints.iter().any(Lint::refuses) {
            return Err(Rejected {
                errors: b.errors,
                lints: b.lints,
            });
        }
        let matcher = OriginMatcher::new(&entries, regexes, spec.allow_null_origin);
        let mut policy = Policy {
            spec: spec.clone(),
            entries,
            matcher,
            credentials: spec.allow_credentials,
            methods,
            headers,
            expose,
            max_age: promoted(max_age),
            private_network: spec.allow_private_network,
            validation: spec.preflight_validation,
            reject_status: spec.preflight_reject_status,
            upstream: spec.upstream_cors_headers,
            mode: spec.mode,
            preflight_template: crate::decision::PreflightTemplate::empty(),
        };
        policy.preflight_template = crate::decision::preflight_template(&policy);
        Ok(Compiled {
            policy,
            lints: b.lints,
        })
    }
}
