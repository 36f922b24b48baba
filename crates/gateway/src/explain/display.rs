//! The text `corsgate explain` prints: the request, whether and why a
//! preflight is sent, then each leg with what corsgate answers and the
//! browser's verdict. `--json` serialises the same [`Explanation`].

use super::{Answer, Explanation, Leg, Verdict};
use std::fmt;

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Request: {}", self.request)?;
        if self.same_origin {
            writeln!(f, "Same-origin request: CORS does not apply.")?;
        } else if self.legs.first().is_some_and(|l| l.kind == "preflight") {
            writeln!(
                f,
                "Preflight: yes, because {}",
                self.preflight_because.join("; ")
            )?;
        } else {
            writeln!(f, "Preflight: no (a simple request)")?;
            for n in &self.preflight_because {
                writeln!(f, "  {n}")?;
            }
        }
        for (i, leg) in self.legs.iter().enumerate() {
            write_leg(f, i + 1, leg)?;
        }
        if self.legs.len() == 1 && self.legs[0].kind == "preflight" {
            writeln!(
                f,
                "\n2. actual {}: not sent (the preflight failed)",
                self.method
            )?;
        }
        if !self.readable_headers.is_empty() {
            writeln!(
                f,
                "\nScripts can also read: {}",
                self.readable_headers.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Leg number `n`: the request sent, where it was routed, the answer and
/// the verdict.
fn write_leg(f: &mut fmt::Formatter<'_>, n: usize, leg: &Leg) -> fmt::Result {
    writeln!(f)?;
    writeln!(f, "{n}. {} {} {}", leg.kind, leg.method, leg.target)?;
    for (k, v) in &leg.request_headers {
        writeln!(f, "   > {k}: {v}")?;
    }
    writeln!(
        f,
        "   vService {}, rule {}, policy {} ({})",
        leg.vservice,
        leg.rule.as_deref().unwrap_or("(none: no rule matches)"),
        leg.policy.as_deref().unwrap_or("(none)"),
        leg.binding
    )?;
    write_answer(f, &leg.answer)?;
    write_verdict(f, &leg.verdict)
}

/// Who answers, and the fields corsgate writes.
fn write_answer(f: &mut fmt::Formatter<'_>, answer: &Answer) -> fmt::Result {
    match answer {
        Answer::Gateway { status, headers } => {
            writeln!(f, "   corsgate answers itself (not forwarded):")?;
            writeln!(f, "   < HTTP {status}")?;
            for (k, v) in headers {
                writeln!(f, "   < {k}: {v}")?;
            }
        }
        Answer::Upstream { upstream, headers } => {
            writeln!(
                f,
                "   forwarded to {upstream}; corsgate writes on the backend's response:"
            )?;
            if headers.is_empty() {
                writeln!(f, "   (nothing)")?;
            }
            for (k, v) in headers {
                writeln!(f, "   < {k}: {v}")?;
            }
        }
    }
    Ok(())
}

/// The browser's verdict and its reasons.
fn write_verdict(f: &mut fmt::Formatter<'_>, verdict: &Verdict) -> fmt::Result {
    match verdict {
        Verdict::Allowed => writeln!(f, "   Browser: allowed")?,
        Verdict::Blocked(r) => {
            writeln!(f, "   Browser: BLOCKED (scripts see a TypeError)")?;
            for r in r {
                writeln!(f, "     - {r}")?;
            }
        }
        Verdict::Backend(r) => {
            writeln!(f, "   Browser: decided by the backend's response")?;
            for r in r {
                writeln!(f, "     - {r}")?;
            }
        }
    }
    Ok(())
}
