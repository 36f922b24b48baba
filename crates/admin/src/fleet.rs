//! `GET /fleet`: every instance that shares this store, with the version
//! it serves and whether that is the active one; and the store-link
//! gauges `/metrics` adds for a shared store.
//!
//! The listing comes from a [`FleetSource`] the binary provides for a
//! shared store (etcd). On the embedded SQLite store there is one instance
//! and the answer says so, in the same shape, so a console or a script
//! reads both alike.

use crate::{reply, with_store, AdminState, Resp};
use http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// This instance's link to a shared store.
#[derive(Clone, Copy, Debug)]
pub struct StoreLink {
    /// The last round trip succeeded.
    pub connected: bool,
    /// Time since the store last answered (`None`: never).
    pub since_reached: Option<Duration>,
}

/// Where `/fleet` comes from on a shared store.
pub trait FleetSource: Send + Sync {
    /// The fleet as JSON (`store`, `self`, `active`, `nodes`), or, when
    /// the store cannot be read, what this instance knows of itself
    /// (answered with 503). Blocking: runs on a blocking thread.
    fn fleet(&self) -> Result<Value, Value>;
    /// The link to the store, for `/metrics`.
    fn link(&self) -> Option<StoreLink>;
    /// The version this instance serves (not the store's active one: a
    /// failing instance serves an older version).
    fn serving(&self) -> Option<i64>;
}

/// `GET /fleet`.
pub(crate) async fn fleet(state: &Arc<AdminState>) -> Resp {
    if let Some(source) = state.fleet.clone() {
        return match tokio::task::spawn_blocking(move || source.fleet()).await {
            Ok(Ok(v)) => reply(StatusCode::OK, &v),
            Ok(Err(v)) => reply(StatusCode::SERVICE_UNAVAILABLE, &v),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": format!("fleet listing failed: {e}") }),
            ),
        };
    }
    let active = with_store(state, |s, _| s.active().ok().flatten()).await;
    let active = active.ok().flatten();
    let intact = state
        .integrity
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_none();
    let a = active
        .as_ref()
        .map(|v| json!({ "version": v.id, "contentHash": v.content_hash }));
    // One box: what the store holds active is what this process serves
    // (an apply is stored only after the gateway took it).
    let node = json!({
        "node": "this instance",
        "address": state.node_address,
        "corsgate": env!("CARGO_PKG_VERSION"),
        "applied": active.as_ref().map(|v| v.id),
        "appliedHash": active.as_ref().map(|v| v.content_hash.clone()),
        "failed": null,
        "state": if intact { "in-sync" } else { "failing" },
    });
    reply(
        StatusCode::OK,
        &json!({ "store": "sqlite", "self": "this instance", "active": a, "nodes": [node] }),
    )
}

/// The gauges `/metrics` adds for a shared store.
pub(crate) fn link_metrics(state: &AdminState) -> String {
    let Some(link) = state.fleet.as_ref().and_then(|f| f.link()) else {
        return String::new();
    };
    let since = link
        .since_reached
        .map_or_else(|| "NaN".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
    format!(
        "# HELP corsgate_store_connected 1 when the last round trip to the shared store succeeded.\n\
         # TYPE corsgate_store_connected gauge\n\
         corsgate_store_connected {}\n\
         # HELP corsgate_store_seconds_since_reached Seconds since the shared store last answered (NaN: never since start).\n\
         # TYPE corsgate_store_seconds_since_reached gauge\n\
         corsgate_store_seconds_since_reached {since}\n",
        u8::from(link.connected)
    )
}
