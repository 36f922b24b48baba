//! # corsgate-routes
//!
//! The route compiler and the compiled routes: one pure function,
//! [`compile`], from a loaded configuration to the vServices the router
//! serves, and the types it produces (rules, conditions, actions, the rule
//! index, policy selection).
//!
//! It sits between the configuration (schema, policies, Gateway API
//! import) and the data plane, and does no I/O: the same compiler runs in
//! `corsgate check`, at start-up and reload, on the admin store's apply
//! path, for shadow candidates and in `explain`, so nothing the gateway
//! serves was checked differently from what `check` reported. Like
//! `corsgate_policy::Policy::compile` it returns every error at once, each
//! with a stable ID ([`RouteErrorId`]) and, from the loaded configuration's
//! [`Sources`](corsgate_config::Sources), its file, line and column.
//!
//! Evaluation order, per request:
//! 1. the vService is the listener the request arrived on; a request whose
//!    host is not among its `hostnames` gets 404 (still completed with the
//!    vService's CORS policy, R25);
//! 2. rules are tried in configuration order; the first whose conditions all
//!    hold handles the request. For a preflight, a method condition is
//!    tested against `Access-Control-Request-Method`, a header-presence
//!    condition against the names in `Access-Control-Request-Headers`, and
//!    header value conditions count as "could match" (R17);
//! 3. the CORS policy is the most specific binding: the matched rule's, else
//!    the longest `pathCors` prefix, else `hostCors`, else the vService's,
//!    else the global one. It applies whole; fields never merge (R16).

#![deny(missing_docs)]

mod action;
mod compile;
mod compile_rule;
mod error;
mod headers;
mod host;
mod index;
mod path;
mod redirect;
mod rule;
mod vservice;

pub use action::Action;
pub use compile::compile;
pub use error::RouteErrorId;
pub use headers::HeaderChanges;
pub use path::{prefix_matches, PathChange};
pub use redirect::RedirectTarget;
pub use rule::CompiledRule;
pub use vservice::{Binding, CompiledVService, RequestFacts, Selection};

use corsgate_config::{ConfigErrors, Loaded, Report};

/// Add the route compiler's refusals to a configuration report, so that
/// one report lists the loader's and the compiler's errors together.
pub fn check(report: &mut Report) {
    if let Some(parsed) = &report.parsed {
        if let Err(e) = compile(parsed) {
            report.refuse(e.0);
        }
    }
}

/// [`corsgate_config::check_str`] and then the route compiler: everything
/// `corsgate check` reports about `text`.
pub fn check_str(text: &str, file: Option<&str>) -> Report {
    let mut report = corsgate_config::check_str(text, file);
    check(&mut report);
    report
}

/// Load `text` as the gateway would serve it: refused if the loader or
/// the route compiler refuses it.
pub fn load_str(text: &str, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    check_str(text, file).into_result()
}

/// [`load_str`] of a file's text (the file and the manifests it names are
/// read by the loader, not here).
pub fn load_file(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    let mut report = corsgate_config::check_file(path);
    check(&mut report);
    report.into_result()
}
