//! What the console's explain page runs: the gateway's `explain` engine,
//! the same code and JSON as `corsgate explain --json`, on the active
//! configuration.

use corsgate_admin::{ExplainInput, Explainer};
use corsgate_gateway::explain::{explain, BrowserRequest};
use std::sync::Arc;

/// The explain engine for the admin API's `POST /api/v1/explain`.
pub fn explainer() -> Explainer {
    Arc::new(|loaded, input: &ExplainInput| {
        let url = input
            .url
            .parse::<http::Uri>()
            .map_err(|e| format!("url {}: {e}", input.url))?;
        let req = BrowserRequest {
            origin: input.origin.clone(),
            method: input.method.clone(),
            url,
            headers: input.headers.clone(),
            credentials: input.credentials,
        };
        let compiled = corsgate_gateway::router::compile(loaded).map_err(|e| e.to_string())?;
        let e = explain(&compiled, &loaded.policies, &req).map_err(|e| e.to_string())?;
        serde_json::to_value(&e).map_err(|e| e.to_string())
    })
}
