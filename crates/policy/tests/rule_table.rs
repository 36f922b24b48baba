//! Every rule number the repository cites (`R23`, `R12b`, `F5`, `P4`, and
//! both ends of a range such as `R10-R15`) is a row of `docs/rules.md`, so
//! a reader of the repository alone can look each one up.

use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text files of the repository that can cite rules: sources, tests,
/// docs, scripts and examples, without build output or installed packages.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | "node_modules" | "corpus" | "artifacts"
            ) && !name.starts_with('.')
            {
                files(&path, out);
            }
        } else if [".rs", ".md", ".py", ".mjs", ".sh", ".yaml", ".toml"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(path);
        }
    }
}

/// The anchors `<a id="r23"></a>` of the rule table, upper-cased as cited.
fn defined(table: &str) -> BTreeSet<String> {
    let anchor = Regex::new(r#"<a id="([rfp])([0-9]{1,2}[a-c]?)"></a>"#).unwrap();
    anchor
        .captures_iter(table)
        .map(|c| format!("{}{}", c[1].to_uppercase(), &c[2]))
        .collect()
}

#[test]
fn every_cited_rule_number_is_a_row_of_the_rule_table() {
    let root = repo_root();
    let table = std::fs::read_to_string(root.join("docs/rules.md")).expect("docs/rules.md");
    let rows = defined(&table);
    for n in 1..=30 {
        assert!(
            rows.contains(&format!("R{n}")),
            "docs/rules.md has no row R{n}"
        );
    }

    let cited = Regex::new(r"\b([RFP])([0-9]{1,2}[a-c]?)\b").unwrap();
    // The second end of a range, `R10-R15` or `R12a–c`.
    let range_end = Regex::new(r"\b([RFP])[0-9]{1,2}[a-c]?[-–]([0-9]{1,2})\b").unwrap();
    let mut list = Vec::new();
    for top in [
        "crates", "docs", "bench", "browser", "scripts", "examples", "fuzz",
    ] {
        files(&root.join(top), &mut list);
    }
    list.push(root.join("README.md"));
    let mut missing = Vec::new();
    let mut seen = 0;
    for path in &list {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let mut numbers: Vec<String> = cited
                .captures_iter(line)
                .map(|c| format!("{}{}", &c[1], &c[2]))
                .collect();
            numbers.extend(
                range_end
                    .captures_iter(line)
                    .map(|c| format!("{}{}", &c[1], &c[2])),
            );
            for number in numbers {
                seen += 1;
                if !rows.contains(&number) {
                    let shown = path.strip_prefix(&root).unwrap_or(path);
                    missing.push(format!("{}:{}: {number}", shown.display(), n + 1));
                }
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} citations found: is the walk right?"
    );
    assert!(
        missing.is_empty(),
        "rule numbers without a row in docs/rules.md:\n{}",
        missing.join("\n")
    );
}
