//! `corsgate check`: every error and lint of a configuration, with its
//! location, severity and a one-line fix.

use corsgate_config::{snippet, ConfigLint, Report};
use corsgate_policy::Severity;
use serde_json::json;
use std::fmt::Write as _;

/// Exit status of `check`: 0 valid, 1 refused (or warnings under
/// `--strict`), 2 unreadable.
pub struct Outcome {
    /// What to print on standard output.
    pub text: String,
    /// Exit status.
    pub status: u8,
}

fn count(report: &Report, severity: Severity) -> usize {
    report
        .lints
        .iter()
        .filter(|l| l.lint.severity == severity)
        .count()
}

fn lint_line(file: &str, text: &str, l: &ConfigLint, out: &mut String) {
    let at = match l.location {
        Some((line, col)) => format!("{file}:{line}:{col}"),
        None => file.to_owned(),
    };
    let _ = writeln!(
        out,
        "{at}: {}[{}] {}: {}",
        l.lint.severity, l.lint.id, l.path, l.lint.message
    );
    if let Some(s) = l.location.and_then(|loc| snippet(text, loc)) {
        for line in s.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out, "    fix: {}", l.lint.fix);
}

/// Check `text` (from `file`) and render the result.
pub fn check(file: &str, text: &str, strict: bool, as_json: bool) -> Outcome {
    let report = corsgate_config::check_str(text, Some(file));
    let warnings = count(&report, Severity::Warn);
    let valid = report.errors.is_empty();
    let status = if !valid || (strict && warnings > 0) {
        1
    } else {
        0
    };
    if as_json {
        let errors: Vec<_> = report
            .errors
            .iter()
            .map(|e| {
                json!({
                    "line": e.location.map(|l| l.0),
                    "column": e.location.map(|l| l.1),
                    "path": e.path,
                    "reason": e.reason,
                })
            })
            .collect();
        let lints: Vec<_> = report
            .lints
            .iter()
            .map(|l| {
                json!({
                    "id": l.lint.id.as_str(),
                    "severity": l.lint.severity.as_str(),
                    "line": l.location.map(|l| l.0),
                    "column": l.location.map(|l| l.1),
                    "path": l.path,
                    "message": l.lint.message,
                    "fix": l.lint.fix,
                })
            })
            .collect();
        let doc = json!({
            "file": file,
            "valid": valid,
            "strict": strict,
            "errors": errors,
            "lints": lints,
            "policyTests": report.policy_tests,
        });
        return Outcome {
            text: format!("{doc:#}\n"),
            status,
        };
    }
    let mut out = String::new();
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for l in &report.lints {
        lint_line(file, text, l, &mut out);
    }
    let summary = match &report.loaded {
        Some(loaded) => {
            let rules: usize = loaded.config.vservices.iter().map(|v| v.rules.len()).sum();
            format!(
                "valid: {} vService(s), {} policy(ies), {rules} rule(s); {} policy test(s) passed",
                loaded.config.vservices.len(),
                loaded.policies.len(),
                report.policy_tests,
            )
        }
        None => "refused".to_owned(),
    };
    let _ = writeln!(
        out,
        "{file}: {summary}; {} error(s), {warnings} warning(s), {} info{}",
        report.errors.len(),
        count(&report, Severity::Info),
        if strict && warnings > 0 && valid {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    );
    Outcome { text: out, status }
}
