//! # corsgate-gateway
//!
//! The data plane: one listener per vService (HTTP/1.1 and h2c), the traffic
//! rules engine ([`router`]), the reverse proxy, and CORS applied to every
//! response (R18-R26): preflights on a CORS-scoped route are answered here
//! and never forwarded; every other response — the backend's or the
//! gateway's own 404/502/504 — is completed by the policy in scope.

#![deny(missing_docs)]

pub mod explain;
pub mod metrics;
pub mod router;
pub mod shadow;

mod exchange;
mod hop;
mod pool;
mod proxy;
mod server;
pub mod tls;

pub use server::{start, ReloadError, ReloadReport, Running};

/// The response body type of every gateway response.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
