//! Origin safety (R5, R6): the checks that need the whole origin picture
//! rather than one entry: a wildcard with credentials, a wildcard under a
//! public suffix, plain-http origins with credentials, `null`, an empty
//! allow-list. Each is its own named check so that the list of what is
//! refused or warned about reads off [`Builder::origin_safety`].

use super::Builder;
use crate::canary;
use crate::error::{ErrorId, FieldPath};
use crate::lint::{LintId, Severity};
use crate::matcher::{OriginEntry, OriginMatcher};
use crate::origin::{parse_origin, RequestOrigin, Scheme};

impl Builder<'_> {
    /// Origin-related lints and R5 that need the whole picture.
    pub(super) fn origin_safety(&mut self, entries: &[(usize, OriginEntry)]) {
        let spec = self.spec;
        let creds = spec.allow_credentials;
        for (i, e) in entries {
            let at = FieldPath::item("allowOrigins", *i);
            if creds {
                self.any_origin_with_credentials(*i, e, at);
            }
            if let OriginEntry::Subdomain {
                suffix,
                scheme,
                port,
            } = e
            {
                self.subdomain_safety(*i, e, at, suffix, *scheme, *port);
            }
            if creds && e.scheme() == Some(Scheme::Http) {
                self.http_creds(at, &spec.allow_origins[*i]);
            }
        }
        if creds {
            self.http_regexes_with_credentials();
        }
        if spec.allow_null_origin {
            self.null_origin(creds);
        }
        self.empty_allow_list();
    }

    /// R5: `*` or a host wildcard with credentials reflects every origin
    /// with `Access-Control-Allow-Credentials: true`. Refused, unless the
    /// policy opts in explicitly (then an `L-CRED-ANY` lint records it).
    fn any_origin_with_credentials(&mut self, i: usize, e: &OriginEntry, at: FieldPath) {
        let spec = self.spec;
        let scope = match e {
            OriginEntry::Any => "every origin",
            OriginEntry::AnyHost { .. } => "every origin of that scheme and port",
            _ => return,
        };
        if spec.unsafe_allow_any_origin_with_credentials {
            self.lint(
                LintId::CredAny,
                Severity::Error,
                at,
                format!(
                    "{} with credentials reflects {scope} with \
                     Access-Control-Allow-Credentials: true (explicit opt-in recorded)",
                    spec.allow_origins[i]
                ),
                "list the trusted origins instead",
            );
        } else {
            self.error(
                ErrorId::CredentialsWithAnyOrigin,
                at,
                &spec.allow_origins[i],
                format!(
                    "with allowCredentials: true this makes the gateway reflect {scope} \
                     together with Access-Control-Allow-Credentials: true, so any site \
                     can read responses with the user's cookies (browsers reject a \
                     literal `*` with credentials). List the trusted origins, or set \
                     unsafeAllowAnyOriginWithCredentials: true to accept the risk"
                ),
            );
        }
    }

    /// A subdomain wildcard: refused under a public suffix (anyone can
    /// register a name there), and checked against attacker canaries as a
    /// self-test of the matcher (P1).
    fn subdomain_safety(
        &mut self,
        i: usize,
        e: &OriginEntry,
        at: FieldPath,
        suffix: &str,
        scheme: Scheme,
        port: u16,
    ) {
        if is_public_suffix(suffix) {
            self.lint(
                LintId::PublicSuffix,
                Severity::Error,
                at,
                format!(
                    "`{}` is a public suffix: anyone can register a name under it",
                    suffix
                ),
                "name your own registrable domain, e.g. https://*.example.com",
            );
        }
        // The wildcard canaries are a self-test of the matcher (P1).
        let single = OriginMatcher::new(&[(i, e.clone())], None, false);
        let a = if port == scheme.default_port() {
            suffix.to_owned()
        } else {
            format!("{suffix}:{port}")
        };
        let hits: Vec<String> =
            canary::canaries(scheme.as_str(), &a, suffix, scheme == Scheme::Https)
                .into_iter()
                .filter(|c| match parse_origin(c) {
                    RequestOrigin::Valid(o) => single.find(&o).is_some(),
                    _ => false,
                })
                .collect();
        if !hits.is_empty() {
            self.lint(
                LintId::RegexCanary,
                Severity::Error,
                at,
                format!("wildcard matches attacker canaries {hits:?}"),
                "report this as a corsgate bug",
            );
        }
    }

    /// Regexes that allow plain-http origins, with credentials.
    fn http_regexes_with_credentials(&mut self) {
        let spec = self.spec;
        for (i, p) in spec.allow_origin_regexes.iter().enumerate() {
            let body = canary::pattern_body(p);
            if body.starts_with("http://") || body.starts_with("https?://") {
                self.http_creds(FieldPath::item("allowOriginRegexes", i), p);
            }
        }
    }

    /// `allowNullOrigin`: any page can send `Origin: null`; with
    /// credentials it is a refusal.
    fn null_origin(&mut self, creds: bool) {
        let (severity, msg) = if creds {
            (
                Severity::Error,
                "`null` with credentials lets any sandboxed attacker page read users' data",
            )
        } else {
            (
                Severity::Warn,
                "any page can send `Origin: null` (sandboxed iframes, data: URLs)",
            )
        };
        self.lint(
            LintId::Null,
            severity,
            FieldPath::whole("allowNullOrigin"),
            msg.into(),
            "serve the sandboxed content from a real origin and list that",
        );
    }

    /// A policy that allows no origin only strips headers: probably a
    /// mistake, so it is a warning.
    fn empty_allow_list(&mut self) {
        let spec = self.spec;
        if spec.allow_origins.is_empty()
            && spec.allow_origin_regexes.is_empty()
            && !spec.allow_null_origin
        {
            self.lint(
                LintId::Empty,
                Severity::Warn,
                FieldPath::whole("allowOrigins"),
                "no origin is allowed; the policy only strips headers and answers preflights \
                 with refusals"
                    .into(),
                "add the frontend origins to allowOrigins",
            );
        }
    }

    /// A plain-http origin with credentials: a network attacker can inject
    /// script there.
    fn http_creds(&mut self, at: FieldPath, value: &str) {
        self.lint(
            LintId::HttpOriginCreds,
            Severity::Warn,
            at,
            format!(
                "{value} is plain http: a network attacker can inject script there and read \
                 credentialed responses"
            ),
            "allow only https:// origins when credentials are on",
        );
    }
}

/// Is `suffix` (lower case) exactly a public suffix on the embedded list?
/// Only suffixes named by an explicit rule count, so `*.localhost` or
/// `*.internal` in development configs are not flagged.
pub(crate) fn is_public_suffix(suffix: &str) -> bool {
    match psl::suffix(suffix.as_bytes()) {
        Some(s) => s.is_known() && s.as_bytes() == suffix.as_bytes(),
        None => false,
    }
}
