//! How versions and refused changes are answered.

use crate::{error, reply, Resp};
use corsgate_store::{ApplyError, Version};
use http::StatusCode;
use serde_json::{json, Value};

pub(crate) fn summary(v: &Version) -> Value {
    json!({
        "id": v.id,
        "parent": v.parent,
        "author": v.author,
        "createdAt": v.created_at,
        "comment": v.comment,
        "contentHash": v.content_hash,
    })
}

pub(crate) fn full(v: &Version) -> Value {
    let mut s = summary(v);
    s["content"] = json!(v.content);
    s["lints"] = serde_json::from_str(&v.lints).unwrap_or(Value::Null);
    s["policyTests"] = serde_json::from_str(&v.policy_tests).unwrap_or(Value::Null);
    s
}

pub(crate) fn config_of(content: &str) -> Option<corsgate_config::Config> {
    corsgate_config::check_str(content, None)
        .loaded
        .map(|l| l.config)
}

/// The browser propagation report of a change: what was tightened and for
/// how long browsers may keep the old preflight answers.
pub(crate) fn propagation(old: Option<&str>, new: &str) -> Value {
    let (Some(old), Some(new)) = (old.and_then(config_of), config_of(new)) else {
        return json!([]);
    };
    let t: Vec<Value> = corsgate_config::tightenings(&old, &new)
        .iter()
        .map(|t| {
            json!({
                "policy": t.policy,
                "change": t.what,
                "browserCacheSecs": t.browser_cache_secs,
            })
        })
        .collect();
    Value::Array(t)
}

/// Marks the answer to a change refused before the gateway saw it (a
/// change the gateway itself failed is counted by its reload).
#[derive(Clone, Copy)]
pub(crate) struct Refused;

fn apply_error(e: ApplyError) -> Resp {
    let counted = !matches!(e, ApplyError::NotApplied(_));
    let mut r = apply_error_reply(e);
    if counted {
        r.extensions_mut().insert(Refused);
    }
    r
}

fn apply_error_reply(e: ApplyError) -> Resp {
    match e {
        ApplyError::Stale { based_on, active } => reply(
            StatusCode::CONFLICT,
            &json!({
                "error": "stale base: another change was applied first; fetch the active version and apply again",
                "base": based_on,
                "active": active,
            }),
        ),
        ApplyError::Rejected(errors) => reply(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "configuration refused", "errors": errors }),
        ),
        ApplyError::NoSuchVersion(id) => error(StatusCode::NOT_FOUND, &format!("no version {id}")),
        ApplyError::Tampered(t) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": "a stored version failed verification; nothing was changed", "problem": t.to_string() }),
        ),
        ApplyError::NotApplied(why) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": "the gateway could not apply the configuration; nothing was stored", "reason": why }),
        ),
        ApplyError::Db(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("store: {e}")),
        ApplyError::Unavailable(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("store unavailable: {e}; read the active version before trying again"),
        ),
    }
}

/// The answer to an apply, rollback or promote: the new version with the
/// browser propagation of what it tightened (from `old`), or the refusal.
pub(crate) fn applied(old: Option<&str>, r: Result<Version, ApplyError>) -> Resp {
    match r {
        Ok(v) => {
            let mut body = full(&v);
            body["propagation"] = propagation(old, &v.content);
            reply(StatusCode::CREATED, &body)
        }
        Err(e) => apply_error(e),
    }
}
