//! The origin half of every decision (R9-R15): which entry allows the
//! request's origin and what `Access-Control-Allow-Origin` says, or why
//! none does. Preflights and actual requests share it, and the common case
//! (one `Origin` line that is exactly a configured origin) is answered with
//! one lookup and no parse.

use super::{Refusal, STAR};
use crate::fields::RequestFields;
use crate::matcher::MatchedBy;
use crate::origin::RequestOrigin;
use crate::policy::Policy;
use http::header::ORIGIN;
use http::HeaderValue;

/// What goes into `Access-Control-Allow-Origin` for an allowed origin.
#[derive(Clone, Copy)]
enum Acao {
    /// A literal `*` (R11).
    Star,
    /// The request's own Origin value (R10).
    Echo,
    /// `null`, under `allowNullOrigin`.
    Null,
}

impl Policy {
    /// Match a classified origin against the policy (R9-R15): which entry
    /// allows it, or why none does. This is the whole per-request origin
    /// decision without header access; `explain`, policy tests and
    /// benchmarks use it directly.
    pub fn match_origin(&self, origin: RequestOrigin<'_>) -> Result<MatchedBy, Refusal> {
        self.origin_match(origin).map(|(m, _)| m)
    }

    fn origin_match(&self, origin: RequestOrigin<'_>) -> Result<(MatchedBy, Acao), Refusal> {
        match origin {
            RequestOrigin::Absent => Err(Refusal::OriginNotAllowed),
            RequestOrigin::Invalid(why) => Err(Refusal::OriginInvalid(why)),
            RequestOrigin::Null => {
                if self.matcher.is_any() && !self.credentials {
                    Ok((MatchedBy::AnyOrigin, Acao::Star))
                } else if self.matcher.allows_null() {
                    Ok((MatchedBy::NullOrigin, Acao::Null))
                } else {
                    Err(Refusal::NullOrigin)
                }
            }
            // R11: `*` without credentials answers `*`; with the R5 opt-in it
            // echoes the (canonical, single) origin.
            RequestOrigin::Valid(_) if self.matcher.is_any() => Ok((
                MatchedBy::AnyOrigin,
                if self.credentials {
                    Acao::Echo
                } else {
                    Acao::Star
                },
            )),
            RequestOrigin::Valid(o) => self
                .matcher
                .find(&o)
                .map(|m| (m, Acao::Echo))
                .ok_or(Refusal::OriginNotAllowed),
        }
    }

    /// Decide the origin: the ACAO value to write, or why there is none.
    pub(super) fn origin_decision(
        &self,
        origin: RequestOrigin<'_>,
        raw: Option<&HeaderValue>,
    ) -> Result<(HeaderValue, MatchedBy), Refusal> {
        let (matched, acao) = self.origin_match(origin)?;
        let value = match acao {
            Acao::Star => STAR.clone(),
            Acao::Null => HeaderValue::from_static("null"),
            // A valid origin always comes with its single raw value.
            Acao::Echo => raw.cloned().ok_or(Refusal::OriginNotAllowed)?,
        };
        Ok((value, matched))
    }

    /// The decision for a request whose single `Origin` line is exactly a
    /// configured exact origin: the common case, answered with one lookup
    /// and no parse (see [`OriginMatcher::find_exact`]). `None` means "take
    /// the full path", never "refused".
    ///
    /// [`OriginMatcher::find_exact`]: crate::matcher::OriginMatcher::find_exact
    pub(super) fn exact_origin<H: RequestFields + ?Sized>(
        &self,
        headers: &H,
    ) -> Option<(HeaderValue, MatchedBy)> {
        if self.matcher.is_any() {
            return None;
        }
        let mut lines = headers.values(&ORIGIN);
        let first = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let matched = self.matcher.find_exact(first.as_bytes())?;
        Some((first.clone(), matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::request_origin_and_value;
    use http::HeaderMap;

    fn policy(json: &str) -> Policy {
        let spec: crate::spec::PolicySpec = serde_json::from_str(json).expect("spec");
        Policy::compile(&spec).expect("compiles").policy
    }

    /// The exact-origin shortcut must never change a decision: for every
    /// input it either answers exactly what the full parse and match
    /// answer, or steps aside.
    #[test]
    fn exact_origin_shortcut_agrees_with_the_full_path() {
        let p = policy(
            r#"{"allowOrigins": ["https://app.example.com", "http://localhost:8080",
                "https://*.tenants.example.com"], "allowMethods": ["GET"]}"#,
        );
        let inputs: &[&[&str]] = &[
            &["https://app.example.com"],
            &["http://localhost:8080"],
            &["https://a.tenants.example.com"],
            &["https://APP.example.com"],
            &["https://app.example.com:443"],
            &["https://app.example.com/"],
            &["https://app.example.com."],
            &[" https://app.example.com"],
            &["https://app.example.com", "https://app.example.com"],
            &["http://localhost:8080", "https://evil.test"],
            &["null"],
            &["https://evil.test"],
            &[],
        ];
        for lines in inputs {
            let mut h = HeaderMap::new();
            for l in *lines {
                h.append(ORIGIN, HeaderValue::from_static(l));
            }
            let (origin, raw) = request_origin_and_value(&h);
            let full = p.origin_decision(origin, raw).ok();
            if let Some(fast) = p.exact_origin(&h) {
                assert_eq!(Some(fast), full, "{lines:?}");
            }
            let expect_fast = lines.len() == 1
                && (lines[0] == "https://app.example.com" || lines[0] == "http://localhost:8080");
            assert_eq!(p.exact_origin(&h).is_some(), expect_fast, "{lines:?}");
        }
    }
}
