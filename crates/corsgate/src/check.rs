//! `corsgate check`: every error and lint of a configuration, with its
//! location, severity and a one-line fix.

use corsgate_config::{ConfigLint, NoteKind, Report};
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

fn lint_line(l: &ConfigLint, out: &mut String) {
    let file = l.file.as_deref().unwrap_or("<config>");
    let at = match l.location {
        Some((line, col)) => format!("{file}:{line}:{col}"),
        None => file.to_owned(),
    };
    let _ = writeln!(
        out,
        "{at}: {}[{}] {}: {}",
        l.lint.severity, l.lint.id, l.path, l.lint.message
    );
    if let Some(s) = &l.snippet {
        for line in s.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out, "    fix: {}", l.lint.fix);
}

/// Check `text` (from `file`) and render the result.
pub fn check(file: &str, text: &str, strict: bool, as_json: bool) -> Outcome {
    let report = corsgate_routes::check_str(text, Some(file));
    let warnings = count(&report, Severity::Warn)
        + report
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Unsupported)
            .count();
    let valid = report.errors.is_empty();
    let status = if !valid || (strict && warnings > 0) {
        1
    } else {
        0
    };
    let text = if as_json {
        json_text(file, &report, valid, strict)
    } else {
        plain_text(file, &report, valid, strict, warnings)
    };
    Outcome { text, status }
}

/// The `--json` document: the same errors, lints and notes as the text,
/// as fields a script can read.
fn json_text(file: &str, report: &Report, valid: bool, strict: bool) -> String {
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "file": e.file,
                "id": e.id,
                "line": e.location.map(|l| l.0),
                "column": e.location.map(|l| l.1),
                "path": e.path,
                "reason": e.reason,
            })
        })
        .collect();
    let lints: Vec<_> = report.lints.iter().map(ConfigLint::to_json).collect();
    let notes: Vec<_> = report
        .notes
        .iter()
        .map(|n| {
            json!({
                "file": n.file,
                "kind": n.kind.as_str(),
                "line": n.location.map(|l| l.0),
                "column": n.location.map(|l| l.1),
                "path": n.path,
                "message": n.message,
            })
        })
        .collect();
    let doc = json!({
        "notes": notes,
        "file": file,
        "valid": valid,
        "strict": strict,
        "errors": errors,
        "lints": lints,
        "policyTests": report.policy_tests,
    });
    format!("{doc:#}\n")
}

/// The text for a person: errors, lints, notes (compatibility notes
/// grouped last), then a one-line summary.
fn plain_text(file: &str, report: &Report, valid: bool, strict: bool, warnings: usize) -> String {
    let mut out = String::new();
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for l in &report.lints {
        lint_line(l, &mut out);
    }
    let mut compat = Vec::new();
    for n in &report.notes {
        if n.kind == NoteKind::Compat {
            compat.push(n);
        } else {
            let _ = writeln!(out, "{n}");
        }
    }
    if !compat.is_empty() {
        let _ = writeln!(
            out,
            "compatibility: where corsgate deliberately differs from the Gateway API text \
             (docs/gateway-api.md):"
        );
        for n in compat {
            let _ = writeln!(out, "  {n}");
        }
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
        count(report, Severity::Info),
        if strict && warnings > 0 && valid {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    );
    out
}
