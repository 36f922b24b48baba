//! Shadow rollout (R29): a candidate evaluated beside the active
//! configuration, its report, stopping it and promoting it.

use super::Call;
use crate::replies::applied;
use crate::{error, parse_json, reply, with_store, PromoteBody, Resp, ShadowBody};
use http::StatusCode;
use serde_json::json;

/// `POST /api/v1/shadow`: evaluate a candidate beside the active configuration (audited).
pub(super) async fn start(c: &Call<'_>) -> Result<Resp, Resp> {
    match parse_json::<ShadowBody>(c.body) {
        Ok(b) => {
            let report = corsgate_routes::check_str(&b.content, Some("<candidate>"));
            match report.loaded {
                Some(loaded) if report.errors.is_empty() => {
                    if let Some(sh) = &c.state.shadow {
                        sh.install(&loaded, &b.content, &b.comment);
                    }
                    let name = c.token.name.clone();
                    let detail = json!({ "comment": b.comment });
                    let _ = with_store(c.state, move |s, _| {
                        s.record(&name, "shadow.started", None, &detail)
                    })
                    .await;
                    Ok(reply(
                        StatusCode::CREATED,
                        &json!({ "shadowing": true, "comment": b.comment }),
                    ))
                }
                _ => Ok(reply(
                    StatusCode::BAD_REQUEST,
                    &json!({
                        "error": "configuration refused",
                        "errors": report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    }),
                )),
            }
        }
        Err(r) => Ok(*r),
    }
}

/// `GET /api/v1/shadow`: what the candidate would change so far.
pub(super) async fn report(c: &Call<'_>) -> Result<Resp, Resp> {
    Ok(match c.state.shadow.as_ref().and_then(|s| s.report()) {
        Some(r) => reply(StatusCode::OK, &r),
        None => error(StatusCode::NOT_FOUND, "no candidate is being shadowed"),
    })
}

/// `DELETE /api/v1/shadow`: stop shadowing, audited as `shadow.stopped`
/// when a candidate was installed (a stop that stops nothing records
/// nothing).
pub(super) async fn stop(c: &Call<'_>) -> Result<Resp, Resp> {
    let Some(sh) = &c.state.shadow else {
        return Ok(reply(StatusCode::OK, &json!({ "shadowing": false })));
    };
    let was = sh.content().is_some();
    sh.clear();
    if was {
        let name = c.token.name.clone();
        let _ = with_store(c.state, move |s, _| {
            s.record(&name, "shadow.stopped", None, &json!({}))
        })
        .await;
    }
    Ok(reply(StatusCode::OK, &json!({ "shadowing": false })))
}

/// `POST /api/v1/shadow/promote`: apply the candidate and stop shadowing.
pub(super) async fn promote(c: &Call<'_>) -> Result<Resp, Resp> {
    match parse_json::<PromoteBody>(c.body) {
        Ok(b) => match c.state.shadow.as_ref().and_then(|s| s.content()) {
            None => Ok(error(
                StatusCode::NOT_FOUND,
                "no candidate is being shadowed",
            )),
            Some(content) => {
                let author = c.token.name.clone();
                let comment = if b.comment.is_empty() {
                    "promoted from shadow".to_owned()
                } else {
                    b.comment
                };
                let r = with_store(c.state, move |s, activate| {
                    let old = s.active().ok().flatten().map(|v| v.content);
                    applied(
                        old.as_deref(),
                        s.apply_with(b.base, &author, &comment, &content, &mut |l| activate(l)),
                    )
                })
                .await;
                if matches!(&r, Ok(resp) if resp.status() == StatusCode::CREATED) {
                    if let Some(sh) = &c.state.shadow {
                        sh.clear();
                    }
                }
                r
            }
        },
        Err(r) => Ok(*r),
    }
}
