//! The CORS stages around the act stage.
//!
//! - **CORS before** ([`before`]): the policy in scope evaluates the
//!   request. A scoped preflight is answered here and never forwarded
//!   (R18-R20); for any other request the completion is queued for after.
//!   A shadow candidate, if one is installed, is compared here too.
//! - **CORS after** ([`after`]): whatever response results, the upstream's
//!   or the gateway's own, is completed (R21-R25); a 1xx is left alone
//!   (R27).

use super::record::{CorsDecision, Record};
use crate::generation::Generation;
use crate::router::{CompiledVService, RequestFacts, Selection};
use crate::upstream::Answer;
use crate::Reply;
use corsgate_policy::{
    ActualOutcome, Completion, Evaluation, PreflightOutcome, PreflightResponse, RequestFields,
};

/// What the CORS-before stage decided.
pub(super) enum Before {
    /// A scoped preflight's answer: sent as it is, never forwarded (R18).
    Answered(PreflightResponse, CorsDecision),
    /// Act on the request, then complete the response with the queued
    /// completion, if the policy in scope made one.
    Act(Option<Completion>, CorsDecision),
}

/// Stage 3: evaluate the request under the policy in scope.
#[inline]
pub(super) fn before<H: RequestFields + ?Sized>(
    generation: &Generation,
    vs: &CompiledVService,
    selection: &Selection<'_>,
    facts: &RequestFacts<'_, H>,
) -> Before {
    let evaluation = selection
        .policy
        .map(|p| p.evaluate_classified(facts.preflight, facts.headers));
    // The shadow is checked first: it is rarely installed, and the Origin
    // lookup is then skipped.
    if let Some((shadow, origin)) = generation
        .shadow
        .0
        .load()
        .as_ref()
        .and_then(|s| Some((s, facts.headers.first_value(&http::header::ORIGIN)?)))
    {
        let active = evaluation.as_ref().and_then(crate::shadow::verdict);
        shadow.compare(&vs.listen, facts, active, origin.as_bytes());
    }
    match evaluation {
        None => Before::Act(None, CorsDecision::NoPolicy),
        Some(Evaluation::Preflight(answer)) => {
            let decision = match answer.outcome {
                PreflightOutcome::Allowed(_) => match answer.browser_blocks {
                    None => CorsDecision::PreflightAllowed,
                    Some(r) => CorsDecision::PreflightBlocked(r),
                },
                PreflightOutcome::Refused(r) => CorsDecision::PreflightRefused(r),
            };
            Before::Answered(answer, decision)
        }
        Some(Evaluation::Actual(c)) => {
            let decision = match c.outcome {
                ActualOutcome::NotCors => CorsDecision::NotCors,
                ActualOutcome::Allowed(_) => CorsDecision::Allowed,
                ActualOutcome::Refused(r) => CorsDecision::Refused(r),
            };
            Before::Act(Some(c), decision)
        }
        Some(Evaluation::Shadow(_)) => Before::Act(None, CorsDecision::Shadow),
    }
}

/// Stages 5 and 6: complete `answer` with the queued completion, apply the
/// rule's response-header edits, record it, and hand it to the connection.
///
/// An upstream response the front writes itself (`writes_heads`) is passed
/// on as read, its CORS completion written as lines, when nothing needs its
/// fields in a map (a rule's response-header edits, or a completion that
/// depends on the whole response).
#[inline]
pub(super) fn after(
    answer: Answer,
    writes_heads: bool,
    selection: &Selection<'_>,
    mut completion: Option<Completion>,
    record: &Record<'_>,
) -> Reply {
    let answer = match answer {
        Answer::Upstream(up)
            if writes_heads && selection.rule.is_none_or(|r| r.response_headers.is_empty()) =>
        {
            let lines = match (selection.policy, completion.take()) {
                (Some(policy), Some(c)) => policy.completion_lines(c).map(Some),
                // No policy, or a shadow one: the response is not changed.
                _ => Ok(None),
            };
            match lines {
                Ok(cors) => {
                    record.write(up.status);
                    return Reply::Upstream(up, cors);
                }
                Err(c) => {
                    completion = Some(c);
                    Answer::Upstream(up)
                }
            }
        }
        other => other,
    };
    let mut resp = answer.into_response();
    if let Some(rule) = selection.rule {
        if !rule.response_headers.is_empty() && !resp.status().is_informational() {
            rule.response_headers.apply(resp.headers_mut());
        }
    }
    // R23-R25: complete whatever response we send, ours or the upstream's;
    // 1xx (a 101 switching protocols) is left alone (R27).
    if let (Some(policy), Some(c), false) = (
        selection.policy,
        &completion,
        resp.status().is_informational(),
    ) {
        policy.complete(c, resp.headers_mut());
    }
    record.write(resp.status());
    Reply::Response(resp)
}
