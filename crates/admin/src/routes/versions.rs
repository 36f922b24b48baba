//! Versions: the history, one version, apply, rollback and the diff.

use super::Call;
use crate::replies::{applied, config_of, full, propagation, summary};
use crate::{error, parse_json, reply, with_store, ApplyBody, Resp, RollbackBody};
use http::StatusCode;
use serde_json::json;

/// `GET /api/v1/versions`: the history.
pub(super) async fn list(c: &Call<'_>) -> Result<Resp, Resp> {
    with_store(c.state, |s, _| match s.history() {
        Ok(h) => reply(
            StatusCode::OK,
            &json!({ "versions": h.iter().map(summary).collect::<Vec<_>>() }),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    })
    .await
}

/// `GET /api/v1/versions/active`.
pub(super) async fn active(c: &Call<'_>) -> Result<Resp, Resp> {
    with_store(c.state, |s, _| match s.active() {
        Ok(Some(v)) => reply(StatusCode::OK, &full(&v)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no active version"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    })
    .await
}

/// `GET /api/v1/versions/{id}`.
pub(super) async fn one(c: &Call<'_>, id: &str) -> Result<Resp, Resp> {
    match id.parse::<i64>() {
        Ok(id) => {
            with_store(c.state, move |s, _| match s.get(id) {
                Ok(Some(v)) => reply(StatusCode::OK, &full(&v)),
                Ok(None) => error(StatusCode::NOT_FOUND, &format!("no version {id}")),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
            .await
        }
        Err(_) => Ok(error(StatusCode::NOT_FOUND, "no such resource")),
    }
}

/// `POST /api/v1/versions`: validate, activate, store, audit (409 on a stale base).
pub(super) async fn apply(c: &Call<'_>) -> Result<Resp, Resp> {
    match parse_json::<ApplyBody>(c.body) {
        Ok(b) => {
            let author = c.token.name.clone();
            with_store(c.state, move |s, activate| {
                let old = s.active().ok().flatten().map(|v| v.content);
                let r = s.apply_with(b.base, &author, &b.comment, &b.content, &mut |l| {
                    activate(l)
                });
                applied(old.as_deref(), r)
            })
            .await
        }
        Err(r) => Ok(*r),
    }
}

/// `POST /api/v1/rollback`: a new version equal to an old one.
pub(super) async fn rollback(c: &Call<'_>) -> Result<Resp, Resp> {
    match parse_json::<RollbackBody>(c.body) {
        Ok(b) => {
            let author = c.token.name.clone();
            with_store(c.state, move |s, activate| {
                let old = s.active().ok().flatten().map(|v| v.content);
                applied(
                    old.as_deref(),
                    s.rollback_with(b.base, b.to, &author, &b.comment, &mut |l| activate(l)),
                )
            })
            .await
        }
        Err(r) => Ok(*r),
    }
}

/// `GET /api/v1/diff?from=A&to=B`: the semantic diff and its propagation.
pub(super) async fn diff(c: &Call<'_>) -> Result<Resp, Resp> {
    let arg = |k: &str| {
        c.query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    match (arg("from"), arg("to")) {
        (Some(from), Some(to)) => {
            with_store(c.state, move |s, _| match (s.get(from), s.get(to)) {
                (Ok(Some(a)), Ok(Some(b))) => {
                    match (config_of(&a.content), config_of(&b.content)) {
                        (Some(ca), Some(cb)) => {
                            let d = corsgate_config::diff(&ca, &cb);
                            reply(
                                StatusCode::OK,
                                &json!({
                                    "from": from,
                                    "to": to,
                                    "diff": d,
                                    "propagation": propagation(Some(&a.content), &b.content),
                                }),
                            )
                        }
                        _ => error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "a stored version no longer loads",
                        ),
                    }
                }
                (Ok(_), Ok(_)) => error(StatusCode::NOT_FOUND, "no such version"),
                (Err(e), _) | (_, Err(e)) => {
                    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
                }
            })
            .await
        }
        _ => Ok(error(StatusCode::BAD_REQUEST, "give ?from=ID&to=ID")),
    }
}
