//! # corsgate-admin
//!
//! The admin API: JSON over HTTP on its own listener (never a data-plane
//! port), bearer tokens whose SHA-256 hashes live in the configuration, and
//! three roles (`viewer` < `editor` < `admin`). Authentication and the role
//! check happen before routing, so a caller without the right token learns
//! nothing about which resources exist (401 or 403 whatever the path).
//!
//! Changes go through [`corsgate_store::Store::apply_with`]: the candidate
//! is validated, checked against the version it was based on (409 when
//! stale), handed to the running gateway inside the store's transaction,
//! and only then stored and audited.

#![deny(missing_docs)]

mod access;
mod backend;
pub mod console;
mod denials;
mod fleet;
mod listener;
mod openapi;
mod probes;
mod replies;
mod routes;
mod starting;

pub use backend::{ActivateFn, Backend};
pub use console::{Console, ExplainInput, Explainer};
pub use denials::Denials;
pub use fleet::{FleetSource, StoreLink};
pub use listener::{serve, tls_acceptor, Limits};
pub use starting::serve_starting;

use bytes::Bytes;
use corsgate_config::{Loaded, Role};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// Hands a validated configuration to the running gateway; called from a
/// blocking thread inside the store's transaction.
pub type Activate = Arc<dyn Fn(&Loaded) -> Result<(), String> + Send + Sync>;

/// One accepted token.
#[derive(Clone)]
pub struct Token {
    /// Its name (the author of changes).
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Its role.
    pub role: Role,
}

impl Token {
    /// From the configuration (`sha256` as hex); `None` if malformed
    /// (validation refuses those already).
    pub fn from_config(t: &corsgate_config::AdminToken) -> Option<Token> {
        let bytes = hex::decode(&t.sha256).ok()?;
        Some(Token {
            name: t.name.clone(),
            sha256: bytes.try_into().ok()?,
            role: t.role,
        })
    }
}

/// Everything the admin API serves from.
pub struct AdminState {
    /// The store: SQLite, or a shared one behind [`Backend`] (its work
    /// runs on blocking threads).
    pub store: Arc<Mutex<dyn Backend>>,
    /// Accepted tokens.
    pub tokens: Vec<Token>,
    /// Request body limit.
    pub max_body: usize,
    /// How an applied configuration reaches the gateway.
    pub activate: Activate,
    /// The gateway's metrics: render as Prometheus text, and note the
    /// version in force after a change.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// Shadow rollout, when the gateway supports it.
    pub shadow: Option<Arc<dyn ShadowControl>>,
    /// Tokens already recorded as used since start (each is audited once
    /// per process, so polling does not flood the log).
    pub used: Mutex<std::collections::HashSet<String>>,
    /// Timeouts and the connection cap.
    pub limits: Limits,
    /// TLS on the listener.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Refused requests: counters, rate-limited logs, aggregated audit.
    pub denials: Denials,
    /// What start-up found wrong with the store, if anything: `/ready`
    /// answers 503 with it and `/metrics` reports the store not intact.
    pub integrity: Mutex<Option<String>>,
    /// The web console's sessions and engines (see [`console`]).
    pub console: Console,
    /// The fleet on a shared store (`GET /fleet`, the store-link
    /// metrics); `None` on the embedded SQLite store, one instance.
    pub fleet: Option<Arc<dyn FleetSource>>,
    /// Where this admin API listens, as `/fleet` reports it.
    pub node_address: String,
}

/// The gateway's shadow candidate (R29).
pub trait ShadowControl: Send + Sync {
    /// Evaluate `loaded` beside the active configuration from now on.
    fn install(&self, loaded: &Loaded, content: &str, comment: &str);
    /// Stop.
    fn clear(&self);
    /// What the candidate would change so far, if one is installed.
    fn report(&self) -> Option<Value>;
    /// The candidate's configuration text.
    fn content(&self) -> Option<String>;
}

/// Where `/metrics` comes from.
pub trait MetricsSource: Send + Sync {
    /// Prometheus text format.
    fn render(&self) -> String;
    /// The configuration version now in force.
    fn set_version(&self, version: i64);
    /// A change was refused before it reached the gateway (invalid, stale,
    /// or a stored version that fails verification).
    fn refused(&self) {}
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body:#}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Resp {
    reply(status, &json!({ "error": message }))
}

/// Constant-time comparison of two hashes.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authenticate<'a>(state: &'a AdminState, req: &Request<Incoming>) -> Option<&'a Token> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    token_for(state, value.strip_prefix("Bearer ")?.trim())
}

/// The accepted token equal to `token`, if any.
pub(crate) fn token_for<'a>(state: &'a AdminState, token: &str) -> Option<&'a Token> {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Compare with every token so timing does not tell which one matched.
    let mut found = None;
    for t in &state.tokens {
        if same(&t.sha256, &digest) {
            found = Some(t);
        }
    }
    found
}

/// The role a request needs, decided from its method alone (so the answer
/// does not depend on whether the path exists), except the two read-only
/// computations a viewer's console posts a body to: validating a
/// candidate and explaining a request.
fn required_role(method: &Method, path: &str) -> Role {
    if method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST && (path == "/api/v1/validate" || path == "/api/v1/explain"))
    {
        Role::Viewer
    } else {
        Role::Editor
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    base: Option<i64>,
    #[serde(default)]
    comment: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowBody {
    #[serde(default)]
    comment: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    base: Option<i64>,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    base: Option<i64>,
    to: i64,
    #[serde(default)]
    comment: String,
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Resp>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(reply(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": format!("malformed JSON: {e}"),
                "line": e.line(),
                "column": e.column(),
            }),
        ))
    })
}

/// Run `f` with the store on a blocking thread.
async fn with_store<T: Send + 'static>(
    state: &Arc<AdminState>,
    f: impl FnOnce(&mut dyn Backend, &Activate) -> T + Send + 'static,
) -> Result<T, Resp> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = state.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut *store, &state.activate)
    })
    .await
    .map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("store task: {e}"),
        )
    })
}

pub(crate) async fn handle(state: Arc<AdminState>, req: Request<Incoming>) -> Resp {
    if console::is_console(req.uri().path()) {
        return console::serve(state, req).await;
    }
    let mut r = dispatch(state, req).await;
    console::harden(r.headers_mut());
    r
}

async fn dispatch(state: Arc<AdminState>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    if let Some(r) = probes::declared_too_large(&state, &req) {
        return r;
    }
    let get = req.method() == Method::GET;
    match path.as_str() {
        "/openapi.json" if get => return reply(StatusCode::OK, &openapi::document()),
        "/ready" if get => return probes::ready(&state),
        "/live" if get => return reply(StatusCode::OK, &json!({ "live": true })),
        _ => {}
    }
    let token = match access::who(&state, &req, &path).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = access::authorise(&state, &token, req.method(), &path).await {
        return r;
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let body = match access::read_body(&state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match path.as_str() {
        "/metrics" if method == Method::GET => return probes::metrics(&state).await,
        "/fleet" if method == Method::GET => return fleet::fleet(&state).await,
        _ => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let call = routes::Call {
        state: &state,
        token: &token,
        query: &query,
        body: &body,
    };
    let resp = routes::route(&call, &method, &segments)
        .await
        .unwrap_or_else(|r| r);
    if method == Method::POST {
        access::after_change(&state, &resp).await;
    }
    resp
}
