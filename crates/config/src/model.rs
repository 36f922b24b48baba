//! The configuration schema. Field names are camelCase, like the Gateway
//! API vocabulary the policies use; unknown fields are errors.

use corsgate_policy::PolicySpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole corsgate configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Named, reusable CORS policies.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicySpec>,
    /// A policy applied to every vService that binds none of its own.
    #[serde(default)]
    pub cors: Option<String>,
    /// The vServices, each with its own listener.
    #[serde(default)]
    pub vservices: Vec<VService>,
    /// Kubernetes Gateway API manifests to import as more vServices,
    /// rules and policies (see docs/gateway-api.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApi>,
    /// The admin API (docs/management.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
}

/// The admin API's listener and who may use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Admin {
    /// Its own listener, never a data-plane port (default 127.0.0.1:9901).
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer tokens, by the SHA-256 of the token (never the token).
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
    /// Request body limit in bytes (default 1 MiB); a request declaring
    /// more gets 413 at once.
    #[serde(default = "default_admin_body")]
    pub max_body_bytes: usize,
    /// TLS on the admin listener (required in spirit beyond loopback: a
    /// plain-text non-loopback listener is linted `L-ADMIN-PLAINTEXT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// The Ed25519 private key (PKCS#8 PEM, mode 0600) that signs the audit
    /// chain; keep it outside the data directory (`corsgate audit keygen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key_file: Option<String>,
    /// Public keys of earlier audit keys, trusted for the entries they
    /// signed (after a rotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_previous_public_key_files: Vec<String>,
    /// Time a client has to send a request's headers (default 5000 ms).
    #[serde(default = "default_admin_header_timeout")]
    pub header_timeout_ms: u64,
    /// A connection with no traffic and no request in progress for this
    /// long is closed (default 30000 ms).
    #[serde(default = "default_admin_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Connections served at once; more are refused with 503 (default 64).
    #[serde(default = "default_admin_connections")]
    pub max_connections: usize,
    /// Where versions and the audit chain live (default: SQLite in the
    /// data directory; `etcd` for a fleet, docs/fleet.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<crate::store::StoreBackend>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9901".into()
}
fn default_admin_body() -> usize {
    1024 * 1024
}
fn default_admin_header_timeout() -> u64 {
    5000
}
fn default_admin_idle_timeout() -> u64 {
    30000
}
fn default_admin_connections() -> usize {
    64
}

/// One admin bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminToken {
    /// Who uses it (recorded as the author of changes and in the audit).
    pub name: String,
    /// SHA-256 of the token, lower-case hex (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// What it may do.
    pub role: Role,
}

/// Admin roles, each including the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read versions, diffs, audit, metrics.
    Viewer,
    /// Also apply and roll back configurations.
    Editor,
    /// Everything.
    Admin,
}

/// Where Gateway API manifests are and how their references resolve
/// outside Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayApi {
    /// Manifest files (multi-document YAML), relative to this file.
    pub manifests: Vec<String>,
    /// Listen address per Gateway (`namespace/name`) or per Gateway
    /// listener (`namespace/name/listener`). A Gateway named here but not
    /// defined in the manifests gets one plain-HTTP listener, any hostname.
    /// Unlisted listeners bind `bindAddress` on their own port.
    #[serde(default)]
    pub listeners: BTreeMap<String, String>,
    /// Upstream URL per backendRef, keyed `namespace/name:port`
    /// (`httpbin/httpbin:8000` → `http://127.0.0.1:9000`).
    #[serde(default)]
    pub backends: BTreeMap<String, String>,
    /// TLS files per Secret named by an HTTPS listener's
    /// `certificateRefs` (`namespace/name`).
    #[serde(default)]
    pub certificates: BTreeMap<String, Tls>,
    /// Address for listeners not in `listeners` (default 127.0.0.1).
    #[serde(default = "default_bind_address")]
    pub bind_address: String,
}

fn default_bind_address() -> String {
    "127.0.0.1".into()
}

/// A listener with its hostnames, CORS bindings and ordered rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VService {
    /// Unique name, used in logs.
    pub name: String,
    /// `ip:port` to listen on (plain HTTP/1.1 and h2c).
    pub listen: String,
    /// Hostnames served (`api.example.com`, `*.example.com`); empty: any.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// vService-level CORS policy (least specific).
    #[serde(default)]
    pub cors: Option<String>,
    /// Host-level CORS policies: request host → policy name.
    #[serde(default)]
    pub host_cors: BTreeMap<String, String>,
    /// Path-level CORS policies; the longest matching prefix wins.
    #[serde(default)]
    pub path_cors: Vec<PathCors>,
    /// Rules, evaluated in order; the first that matches handles the request.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Request size, time and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// How request paths are normalised before routing (docs/security.md).
    #[serde(default)]
    pub paths: Paths,
    /// Serve TLS (HTTP/2 and HTTP/1.1 by ALPN) instead of plain HTTP.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// TLS material of a vService, PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain, leaf first.
    pub cert_file: String,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// Request size limits of a vService. Requests over them get 431 or 413,
/// completed with the CORS policy in scope so a browser can read the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Total size of request header names and values, in bytes (default 32 KiB).
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    /// Request body size, in bytes (default 10 MiB).
    #[serde(default = "default_body_bytes")]
    pub max_body_bytes: u64,
    /// Time a client has to send a whole request head once it has started
    /// it, in milliseconds (default 30000). Past it the connection is
    /// closed: a client sending its head a byte at a time cannot hold a
    /// connection open (slowloris).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Time a keep-alive HTTP/1.1 connection may wait for its next request,
    /// in milliseconds (default 75000, nginx's `keepalive_timeout`). Past
    /// it the connection is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections the listener serves at once (default 10000). Past it a
    /// new connection is closed as soon as it is accepted, before any
    /// byte is read, so that a flood of connections costs no memory and
    /// cannot exhaust the process's file descriptors.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// HTTP/2: streams a client may have open at once on one connection
    /// (default 128, nginx's `http2_max_concurrent_streams`).
    #[serde(default = "default_http2_max_streams")]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: streams a client may reset before the gateway has served
    /// them, pending at once (default 20). Past it the connection is
    /// closed with `ENHANCE_YOUR_CALM` (the rapid-reset attack,
    /// CVE-2023-44487).
    #[serde(default = "default_http2_max_pending_resets")]
    pub http2_max_pending_resets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: default_header_bytes(),
            max_body_bytes: default_body_bytes(),
            header_timeout_ms: default_header_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_connections: default_max_connections(),
            http2_max_concurrent_streams: default_http2_max_streams(),
            http2_max_pending_resets: default_http2_max_pending_resets(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_http2_max_streams() -> u32 {
    128
}
fn default_http2_max_pending_resets() -> usize {
    20
}
fn default_header_timeout_ms() -> u64 {
    30_000
}
fn default_idle_timeout_ms() -> u64 {
    75_000
}

fn default_header_bytes() -> usize {
    32 * 1024
}
fn default_body_bytes() -> u64 {
    10 * 1024 * 1024
}

/// How request paths are normalised. Every path is normalised before it
/// is routed (RFC 3986 §6: unreserved characters percent-decoded, `.` and
/// `..` segments removed, repeated slashes merged), and the normalised
/// path is the one forwarded, so the gateway and the backend never disagree
/// on what was asked for. Only what cannot be normalised without guessing
/// is configurable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Paths {
    /// A path holding `%2F` or `%5C` (an encoded slash or backslash) or a
    /// literal `\`: `reject` (default) answers 400, since a backend that
    /// decodes them would see other segments than the rules matched;
    /// `keep` forwards them unchanged, inside their segment.
    #[serde(default)]
    pub encoded_slashes: EncodedSlashes,
    /// A path holding `;` (a path parameter, `/a;x/b`): `reject` (default)
    /// answers 400, since Java servlet containers (Tomcat, Jetty) drop
    /// `;…` from each segment before routing, so `/public/..;/internal`
    /// would reach `/internal` behind a rule that matched `/public`;
    /// `keep` forwards it unchanged (for APIs that use matrix
    /// parameters, behind backends that do not strip them).
    #[serde(default)]
    pub semicolons: Semicolons,
}

/// What to do with `;` in a path.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Semicolons {
    /// Answer 400 (default).
    #[default]
    Reject,
    /// Keep them, as part of their segment.
    Keep,
}

/// What to do with an encoded slash or backslash in a path.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    /// Answer 400 (default).
    #[default]
    Reject,
    /// Keep them, encoded, inside their segment.
    Keep,
}

/// A path-scoped CORS binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathCors {
    /// Path prefix on segment boundaries (`/admin` covers `/admin/x`, not `/administrator`).
    pub prefix: String,
    /// Policy name.
    pub cors: String,
}

/// A rule of the traffic rules engine: conditions, an optional CORS policy,
/// exactly one action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Name used in logs and metrics (defaults to `rule-<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions; all must hold. No conditions: matches everything.
    #[serde(default, rename = "match")]
    pub matches: Match,
    /// Rule-level CORS policy (most specific).
    #[serde(default)]
    pub cors: Option<String>,
    /// Forward to upstreams.
    #[serde(default)]
    pub forward: Option<Forward>,
    /// Answer directly.
    #[serde(default)]
    pub direct: Option<Direct>,
    /// Redirect.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Request header changes before forwarding (the Gateway API's
    /// `RequestHeaderModifier`).
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub request_headers: HeaderEdits,
    /// Response header changes (the Gateway API's `ResponseHeaderModifier`),
    /// applied to every response of the rule before CORS completion, so
    /// they cannot add or remove `Access-Control-*` headers behind the
    /// policy's back.
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub response_headers: HeaderEdits,
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes (names
/// in any case).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderEdits {
    /// Replace (or create) these headers.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append these values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

impl HeaderEdits {
    /// No change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A path replacement: exactly one of `full` or `prefix` (which replaces
/// the prefix the rule's `path.prefix` condition matched).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathRewrite {
    /// Replace the whole path.
    #[serde(default)]
    pub full: Option<String>,
    /// Replace the matched prefix.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// Rewrite the request before forwarding (the Gateway API's `URLRewrite`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rewrite {
    /// Send this `Host` to the upstream instead of the client's.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Change the path.
    #[serde(default)]
    pub path: Option<PathRewrite>,
}

/// Rule conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Request hosts (exact or `*.suffix`); any of them.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path condition.
    #[serde(default)]
    pub path: Option<PathMatch>,
    /// Methods; any of them. A preflight is matched on the method it
    /// announces (R17).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions; all must hold.
    #[serde(default)]
    pub query: Vec<QueryMatch>,
}

/// How a path is matched: exactly one of `exact`, `prefix`, `regex`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatch {
    /// The whole path, exactly.
    #[serde(default)]
    pub exact: Option<String>,
    /// A prefix on segment boundaries, as in the Gateway API.
    #[serde(default)]
    pub prefix: Option<String>,
    /// An anchored regex over the whole path.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A header condition: present (no `value`/`regex`), equal, or regex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (any case).
    pub name: String,
    /// Exact value.
    #[serde(default)]
    pub value: Option<String>,
    /// Anchored regex over the value.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A query parameter condition: present, or equal to `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryMatch {
    /// Parameter name.
    pub name: String,
    /// Exact value; absent (and no `regex`) means "present with any value".
    #[serde(default)]
    pub value: Option<String>,
    /// Anchored regex over the value.
    #[serde(default)]
    pub regex: Option<String>,
}

/// Forward to one of several upstreams, round robin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forward {
    /// `http://host:port` base URLs.
    pub upstreams: Vec<String>,
    /// Connect timeout in milliseconds (default 2000).
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Time to the upstream's response headers in milliseconds (default 30000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Speak HTTP/2 (prior knowledge, h2c) to the upstreams instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Rewrite host or path before forwarding.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Protocols a client may switch to through this rule (`Upgrade`),
    /// tunnelled once the upstream answers 101 (default `[websocket]`).
    /// Any other `Upgrade` is forwarded as an ordinary request without
    /// it. `h2c` is refused: an HTTP/2 connection tunnelled through the
    /// gateway would carry requests no rule sees (docs/security.md).
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
    /// What the upstream is told about the client in `X-Forwarded-For`,
    /// `X-Forwarded-Host` and `X-Forwarded-Proto` (default `append`).
    #[serde(default)]
    pub forwarded_headers: ForwardedHeaders,
    /// Most connections kept open to each upstream between requests, for
    /// reuse (default 512, at most 65535). `0` keeps none: every request
    /// gets a new connection, closed once its response has been read.
    /// With `http2: true` one connection per upstream carries every
    /// stream, so any value from 1 up means that one connection
    /// (docs/configuration.md).
    #[serde(default = "default_max_idle_connections")]
    #[schemars(range(max = 65535))]
    pub max_idle_connections: u32,
}

/// The most idle upstream connections `maxIdleConnections` may keep: the
/// connections from one local address to one upstream are bounded by the
/// 16-bit local port, so a larger number could never be reached.
pub const MAX_IDLE_CONNECTIONS: u32 = 65_535;

pub(crate) fn default_max_idle_connections() -> u32 {
    512
}

/// How a forwarding rule writes `X-Forwarded-For`, `X-Forwarded-Host` and
/// `X-Forwarded-Proto`. In every mode the client's own `X-Forwarded-Host`
/// and `X-Forwarded-Proto` are dropped: the gateway knows the answers and
/// a client could lie about them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedHeaders {
    /// The client's `X-Forwarded-For` entries, then its address (as
    /// nginx's `$proxy_add_x_forwarded_for`); host and proto set (default).
    #[default]
    Append,
    /// `X-Forwarded-For` holds only the client's address: for an edge
    /// gateway, where whatever the client sent is its own word.
    Replace,
    /// None of the three is sent, and the client's `X-Forwarded-For` is
    /// dropped too: for backends that must not see them, and the bytes
    /// saved on every request.
    Off,
}

pub(crate) fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
}

fn default_connect_ms() -> u64 {
    2000
}
fn default_timeout_ms() -> u64 {
    30_000
}

/// A response produced by the gateway itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Direct {
    /// Status code.
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body.
    #[serde(default)]
    pub body: String,
}

/// A redirect produced by the gateway: a fixed `location`, or one computed
/// from the request with any of `scheme`, `hostname`, `port` and `path`
/// replaced (the Gateway API's `RequestRedirect`); the query is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    /// A fixed `Location`.
    #[serde(default)]
    pub location: Option<String>,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Port (omitted from the `Location` when it is the scheme's default).
    #[serde(default)]
    pub port: Option<u16>,
    /// Path replacement.
    #[serde(default)]
    pub path: Option<PathRewrite>,
    /// 301, 302, 303, 307 or 308 (default 302).
    #[serde(default = "default_redirect")]
    pub status: u16,
}

fn default_redirect() -> u16 {
    302
}
