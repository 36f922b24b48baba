//! The admin listener's settings: its address, its exposure beyond
//! loopback (tokens required, TLS expected), its limits and its tokens. The
//! admin API changes what the gateway enforces, so a setting that would
//! expose it is refused rather than warned about.

use crate::check::refusal;
use crate::{Admin, ConfigError, ConfigLint, VService};
use corsgate_policy::Lint;

/// Every check of `admin`, in the order they are reported.
pub(crate) fn check_admin(
    admin: &Admin,
    vservices: &[VService],
    file: Option<&str>,
    errors: &mut Vec<ConfigError>,
    lints: &mut Vec<ConfigLint>,
) {
    let (admin_errors, admin_lints) = admin_checks(admin);
    for (path, reason) in admin_errors {
        errors.push(refusal(file, path, reason));
    }
    lints.extend(admin_lints);
    if admin.listen.parse::<std::net::SocketAddr>().is_err() {
        errors.push(refusal(
            file,
            "admin.listen".into(),
            format!("{:?} is not an address like 127.0.0.1:9901", admin.listen),
        ));
    }
    if vservices
        .iter()
        .any(|v| v.listen == admin.listen && !admin.listen.ends_with(":0"))
    {
        errors.push(refusal(
            file,
            "admin.listen".into(),
            "the admin API is never served on a data-plane port; choose another address".into(),
        ));
    }
    check_tokens(admin, file, errors);
}

/// Token names are unique (they name the actor in the audit log) and each
/// token is stored as its SHA-256, never in clear.
fn check_tokens(admin: &Admin, file: Option<&str>, errors: &mut Vec<ConfigError>) {
    let mut names = std::collections::HashSet::new();
    for (i, t) in admin.tokens.iter().enumerate() {
        if !names.insert(&t.name) {
            errors.push(refusal(
                file,
                format!("admin.tokens[{i}].name"),
                format!("duplicate token name {:?}", t.name),
            ));
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(refusal(
                file,
                format!("admin.tokens[{i}].sha256"),
                "the SHA-256 of the token as 64 hex digits (printf %s TOKEN | sha256sum)".into(),
            ));
        }
    }
}

/// The admin listener's exposure: beyond loopback, tokens are required
/// (an error) and TLS expected (`L-ADMIN-PLAINTEXT`); limits must be
/// positive.
fn admin_checks(admin: &Admin) -> (Vec<(String, String)>, Vec<ConfigLint>) {
    let mut errors = Vec::new();
    let mut lints = Vec::new();
    let exposed = admin
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if exposed && admin.tokens.is_empty() {
        errors.push((
            "admin.listen".into(),
            format!(
                "{} is reachable beyond this host but admin.tokens is empty; add tokens or listen on 127.0.0.1",
                admin.listen
            ),
        ));
    }
    if exposed && admin.tls.is_none() {
        lints.push(ConfigLint {
            path: "admin.listen".into(),
            file: None,
            location: None,
            snippet: None,
            lint: Lint {
                id: corsgate_policy::LintId::AdminPlaintext,
                severity: corsgate_policy::Severity::Warn,
                at: corsgate_policy::FieldPath {
                    field: "listen",
                    index: None,
                },
                message: format!(
                    "the admin API on {} is reachable beyond this host without TLS: bearer tokens cross the network in clear",
                    admin.listen
                ),
                fix: "add admin.tls (certFile, keyFile), or listen on 127.0.0.1".into(),
            },
        });
    }
    for (field, value) in [
        ("headerTimeoutMs", admin.header_timeout_ms),
        ("idleTimeoutMs", admin.idle_timeout_ms),
        ("maxConnections", admin.max_connections as u64),
    ] {
        if value == 0 {
            errors.push((format!("admin.{field}"), "must be at least 1".into()));
        }
    }
    if let Some(store) = &admin.store {
        errors.extend(crate::store::store_checks(store));
    }
    (errors, lints)
}
