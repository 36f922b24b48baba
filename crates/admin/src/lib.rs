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

mod backend;
pub mod console;
mod denials;
mod fleet;
mod listener;
mod openapi;
mod probes;
mod replies;
mod starting;

use replies::{applied, config_of, full, propagation, summary, Refused};

pub use backend::{ActivateFn, Backend};
pub use console::{Console, ExplainInput, Explainer};
pub use denials::Denials;
pub use fleet::{FleetSource, StoreLink};
pub use listener::{serve, tls_acceptor, Limits};
pub use starting::serve_starting;

use bytes::Bytes;
use corsgate_config::{Loaded, Role};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
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
    if req.method() == Method::GET && path == "/openapi.json" {
        return reply(StatusCode::OK, &openapi::document());
    }
    if req.method() == Method::GET && path == "/ready" {
        return probes::ready(&state);
    }
    if req.method() == Method::GET && path == "/live" {
        return reply(StatusCode::OK, &json!({ "live": true }));
    }
    let session = match authenticate(&state, &req) {
        Some(_) => None,
        None => match console::session_token(&state, &req) {
            Ok(t) => t,
            Err(r) => return *r,
        },
    };
    let Some(token) = authenticate(&state, &req).or(session.as_ref()) else {
        state
            .denials
            .unauthenticated(&format!("{} {}", req.method(), path));
        let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    let token = token.clone();
    let first_use = state
        .used
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.name.clone());
    if first_use {
        let name = token.name.clone();
        let detail = json!({ "first": format!("{} {}", req.method(), path) });
        let _ = with_store(&state, move |s, _| {
            s.record(&name, "token.used", None, &detail)
        })
        .await;
    }
    let need = required_role(req.method(), &path);
    if token.role < need {
        let what = format!("{} {}", req.method(), path);
        if let Some(audit) = state.denials.forbidden(&token.name, &what) {
            let detail = json!({
                "denied": what,
                "role": format!("{:?}", token.role).to_lowercase(),
                "window_secs": denials::WINDOW.as_secs(),
                "previous_window_denials": audit.previous_window,
            });
            let name = token.name.clone();
            let _ = with_store(&state, move |s, _| {
                s.record(&name, "token.denied", None, &detail)
            })
            .await;
        }
        return error(
            StatusCode::FORBIDDEN,
            "this token's role does not allow this request",
        );
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let body = if method == Method::POST {
        let body = Limited::new(req.into_body(), state.max_body).collect();
        let Ok(body) = tokio::time::timeout(state.limits.idle_timeout, body).await else {
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} ms",
                    state.limits.idle_timeout.as_millis()
                ),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return r;
        };
        match body {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body over {} bytes", state.max_body),
                )
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                )
            }
        }
    } else {
        Bytes::new()
    };
    if method == Method::GET && path == "/metrics" {
        return probes::metrics(&state).await;
    }
    if method == Method::GET && path == "/fleet" {
        return fleet::fleet(&state).await;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "v1", "versions"]) => {
            with_store(&state, |s, _| match s.history() {
                Ok(h) => reply(
                    StatusCode::OK,
                    &json!({ "versions": h.iter().map(summary).collect::<Vec<_>>() }),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
            .await
        }
        (&Method::GET, ["api", "v1", "versions", "active"]) => {
            with_store(&state, |s, _| match s.active() {
                Ok(Some(v)) => reply(StatusCode::OK, &full(&v)),
                Ok(None) => error(StatusCode::NOT_FOUND, "no active version"),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
            .await
        }
        (&Method::GET, ["api", "v1", "versions", id]) => match id.parse::<i64>() {
            Ok(id) => {
                with_store(&state, move |s, _| match s.get(id) {
                    Ok(Some(v)) => reply(StatusCode::OK, &full(&v)),
                    Ok(None) => error(StatusCode::NOT_FOUND, &format!("no version {id}")),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                })
                .await
            }
            Err(_) => Ok(error(StatusCode::NOT_FOUND, "no such resource")),
        },
        (&Method::POST, ["api", "v1", "versions"]) => match parse_json::<ApplyBody>(&body) {
            Ok(b) => {
                let author = token.name.clone();
                with_store(&state, move |s, activate| {
                    let old = s.active().ok().flatten().map(|v| v.content);
                    let r = s.apply_with(b.base, &author, &b.comment, &b.content, &mut |l| {
                        activate(l)
                    });
                    applied(old.as_deref(), r)
                })
                .await
            }
            Err(r) => Ok(*r),
        },
        (&Method::POST, ["api", "v1", "rollback"]) => match parse_json::<RollbackBody>(&body) {
            Ok(b) => {
                let author = token.name.clone();
                with_store(&state, move |s, activate| {
                    let old = s.active().ok().flatten().map(|v| v.content);
                    applied(
                        old.as_deref(),
                        s.rollback_with(b.base, b.to, &author, &b.comment, &mut |l| activate(l)),
                    )
                })
                .await
            }
            Err(r) => Ok(*r),
        },
        (&Method::GET, ["api", "v1", "diff"]) => {
            let arg = |k: &str| {
                query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(n, _)| *n == k)
                    .and_then(|(_, v)| v.parse::<i64>().ok())
            };
            match (arg("from"), arg("to")) {
                (Some(from), Some(to)) => {
                    with_store(&state, move |s, _| match (s.get(from), s.get(to)) {
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
                                _ => error(StatusCode::INTERNAL_SERVER_ERROR, "a stored version no longer loads"),
                            }
                        }
                        (Ok(_), Ok(_)) => error(StatusCode::NOT_FOUND, "no such version"),
                        (Err(e), _) | (_, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                    })
                    .await
                }
                _ => Ok(error(StatusCode::BAD_REQUEST, "give ?from=ID&to=ID")),
            }
        }
        (_, ["api", "v1", "shadow", ..]) if state.shadow.is_none() => Ok(error(
            StatusCode::NOT_FOUND,
            "shadow rollout is not available here",
        )),
        (&Method::POST, ["api", "v1", "shadow"]) => match parse_json::<ShadowBody>(&body) {
            Ok(b) => {
                let report = corsgate_routes::check_str(&b.content, Some("<candidate>"));
                match report.loaded {
                    Some(loaded) if report.errors.is_empty() => {
                        if let Some(sh) = &state.shadow {
                            sh.install(&loaded, &b.content, &b.comment);
                        }
                        let name = token.name.clone();
                        let detail = json!({ "comment": b.comment });
                        let _ = with_store(&state, move |s, _| {
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
        },
        (&Method::GET, ["api", "v1", "shadow"]) => {
            Ok(match state.shadow.as_ref().and_then(|s| s.report()) {
                Some(r) => reply(StatusCode::OK, &r),
                None => error(StatusCode::NOT_FOUND, "no candidate is being shadowed"),
            })
        }
        (&Method::DELETE, ["api", "v1", "shadow"]) => {
            if let Some(sh) = &state.shadow {
                sh.clear();
            }
            Ok(reply(StatusCode::OK, &json!({ "shadowing": false })))
        }
        (&Method::POST, ["api", "v1", "shadow", "promote"]) => {
            match parse_json::<PromoteBody>(&body) {
                Ok(b) => match state.shadow.as_ref().and_then(|s| s.content()) {
                    None => Ok(error(
                        StatusCode::NOT_FOUND,
                        "no candidate is being shadowed",
                    )),
                    Some(content) => {
                        let author = token.name.clone();
                        let comment = if b.comment.is_empty() {
                            "promoted from shadow".to_owned()
                        } else {
                            b.comment
                        };
                        let r = with_store(&state, move |s, activate| {
                            let old = s.active().ok().flatten().map(|v| v.content);
                            applied(
                                old.as_deref(),
                                s.apply_with(b.base, &author, &comment, &content, &mut |l| {
                                    activate(l)
                                }),
                            )
                        })
                        .await;
                        if matches!(&r, Ok(resp) if resp.status() == StatusCode::CREATED) {
                            if let Some(sh) = &state.shadow {
                                sh.clear();
                            }
                        }
                        r
                    }
                },
                Err(r) => Ok(*r),
            }
        }
        (&Method::GET, ["api", "v1", "audit"]) => {
            with_store(&state, |s, _| match s.audit() {
                Ok(a) => reply(StatusCode::OK, &json!({ "entries": a })),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
            .await
        }
        (&Method::GET, ["api", "v1", "audit", "verify"]) => {
            with_store(&state, |s, _| match s.verify(None) {
                Ok(r) => {
                    let problems: Vec<String> =
                        r.problems.iter().map(ToString::to_string).collect();
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
        _ => match console::api::route(&state, &method, segments.as_slice(), &body).await {
            Some(r) => r,
            None => Ok(error(StatusCode::NOT_FOUND, "no such resource")),
        },
    };
    let resp = result.unwrap_or_else(|r| r);
    if let Some(m) = state.metrics.as_ref().filter(|_| method == Method::POST) {
        if resp.status() == StatusCode::CREATED {
            if let Ok(Some(v)) = with_store(&state, |s, _| s.active_id().ok().flatten()).await {
                m.set_version(v);
            }
        } else if resp.extensions().get::<Refused>().is_some() {
            m.refused();
        }
    }
    resp
}
