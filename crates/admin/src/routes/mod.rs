//! The admin API's resources: which handler answers a method and a path.
//! Authentication, the role check and reading the body happen before
//! (`dispatch` in the crate root); each handler gets them in a [`Call`].

mod audit;
mod shadow;
mod versions;

use crate::{console, error, AdminState, Resp, Token};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::sync::Arc;

/// One authenticated, authorised request.
pub(crate) struct Call<'a> {
    /// What the API serves from.
    pub state: &'a Arc<AdminState>,
    /// Who asks (the author of any change).
    pub token: &'a Token,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The body, read whole (empty except on POST).
    pub body: &'a Bytes,
}

/// The handler for `method` on the path `segments`; 404 for anything
/// else. `Err` is an answer too (a refusal), kept apart so that the caller
/// can tell a change made from one refused.
pub(crate) async fn route(c: &Call<'_>, method: &Method, segments: &[&str]) -> Result<Resp, Resp> {
    match (method, segments) {
        (&Method::GET, ["api", "v1", "versions"]) => versions::list(c).await,
        (&Method::GET, ["api", "v1", "versions", "active"]) => versions::active(c).await,
        (&Method::GET, ["api", "v1", "versions", id]) => versions::one(c, id).await,
        (&Method::POST, ["api", "v1", "versions"]) => versions::apply(c).await,
        (&Method::POST, ["api", "v1", "rollback"]) => versions::rollback(c).await,
        (&Method::GET, ["api", "v1", "diff"]) => versions::diff(c).await,
        (_, ["api", "v1", "shadow", ..]) if c.state.shadow.is_none() => Ok(error(
            StatusCode::NOT_FOUND,
            "shadow rollout is not available here",
        )),
        (&Method::POST, ["api", "v1", "shadow"]) => shadow::start(c).await,
        (&Method::GET, ["api", "v1", "shadow"]) => shadow::report(c).await,
        (&Method::DELETE, ["api", "v1", "shadow"]) => shadow::stop(c).await,
        (&Method::POST, ["api", "v1", "shadow", "promote"]) => shadow::promote(c).await,
        (&Method::GET, ["api", "v1", "audit"]) => audit::log(c).await,
        (&Method::GET, ["api", "v1", "audit", "verify"]) => audit::verify(c).await,
        _ => match console::api::route(c.state, method, segments, c.body).await {
            Some(r) => r,
            None => Ok(error(StatusCode::NOT_FOUND, "no such resource")),
        },
    }
}
