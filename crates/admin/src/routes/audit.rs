//! The audit log and its verification.

use super::Call;
use crate::{error, reply, with_store, Resp};
use http::StatusCode;
use serde_json::json;

/// `GET /api/v1/audit`: every entry.
pub(super) async fn log(c: &Call<'_>) -> Result<Resp, Resp> {
    with_store(c.state, |s, _| match s.audit() {
        Ok(a) => reply(StatusCode::OK, &json!({ "entries": a })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    })
    .await
}

/// `GET /api/v1/audit/verify`: the whole store checked with the gateway's own keys.
pub(super) async fn verify(c: &Call<'_>) -> Result<Resp, Resp> {
    with_store(c.state, |s, _| match s.verify(None) {
        Ok(r) => {
            let problems: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
            reply(
                StatusCode::OK,
                &json!({
                    "intact": problems.is_empty(),
                    "entries": r.entries,
                    "versions": r.versions,
                    "head": r.head.map(|(seq, hash)| json!({ "seq": seq, "hash": hash })),
                    "signed": matches!(r.signing, corsgate_store::Signing::Head { .. }),
                    "problem": problems.first(),
                    "problems": problems,
                }),
            )
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("store: {e}")),
    })
    .await
}
