//! `corsgate admin …`: the admin API from the command line, as readable
//! tables or `--json`.

use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;

/// What to ask the admin API.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// List the configuration versions.
    History,
    /// Show one version (default: the active one), with its content.
    Show {
        /// Version id.
        id: Option<i64>,
    },
    /// Semantic diff between two versions.
    Diff {
        /// From version.
        from: i64,
        /// To version.
        to: i64,
    },
    /// Apply a configuration file as a new version.
    Apply {
        /// The configuration file.
        file: PathBuf,
        /// The version the change is based on (default: the active one;
        /// name it to be refused with 409 if someone applied meanwhile).
        #[arg(long)]
        base: Option<i64>,
        /// Why.
        #[arg(long, short = 'm', default_value = "")]
        comment: String,
    },
    /// Roll back: a new version equal to an old one.
    Rollback {
        /// The version to return to.
        to: i64,
        /// The version the change is based on (default: the active one).
        #[arg(long)]
        base: Option<i64>,
        /// Why.
        #[arg(long, short = 'm', default_value = "")]
        comment: String,
    },
    /// The audit log, and whether its hash chain is intact.
    Audit,
    /// Every instance sharing the store: the version it serves and
    /// whether that is the active one (in-sync, behind by N, failing).
    /// Exit status 1 when a node is not in sync or the store cannot be
    /// read.
    Fleet,
}

async fn call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", url.trim_end_matches('/')))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes) }));
    Ok((status, v))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn render_error(status: u16, v: &Value) -> String {
    let mut out = format!("error {status}: {}\n", s(&v["error"]));
    for e in v["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", s(e));
    }
    if status == 409 {
        let _ = writeln!(
            out,
            "  active version is {}; fetch it and apply again",
            s(&v["active"])
        );
    }
    out
}

fn render_version(v: &Value, with_content: bool) -> String {
    let mut out = format!(
        "version {}  parent {}  by {}  at {}\n  {}\n  content sha256 {}\n",
        s(&v["id"]),
        s(&v["parent"]),
        s(&v["author"]),
        s(&v["createdAt"]),
        s(&v["comment"]),
        s(&v["contentHash"])
    );
    for t in v["propagation"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  tightened: policy {}: {} (browsers may keep the old answer for up to {} s)",
            s(&t["policy"]),
            s(&t["change"]),
            s(&t["browserCacheSecs"])
        );
    }
    if with_content {
        let _ = writeln!(out, "---\n{}", s(&v["content"]).trim_end());
    }
    out
}

fn render_fleet(v: &Value) -> String {
    let mut out = format!(
        "store {}, active version {}\n{:<28}  {:<22}  {:>7}  {:<14}  {:<30}  {}\n",
        s(&v["store"]),
        s(&v["active"]["version"]),
        "node",
        "address",
        "applied",
        "state",
        "since",
        "last error"
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        let state = match n["state"].as_str() {
            Some("behind") => format!("behind by {}", s(&n["behindBy"])),
            Some(x) => x.to_owned(),
            None => "?".to_owned(),
        };
        let me = if n["node"] == v["self"] {
            " (this)"
        } else {
            ""
        };
        let error = match &n["failed"] {
            Value::Object(f) => format!(
                "version {}: {}",
                s(f.get("version").unwrap_or(&Value::Null)),
                s(f.get("error").unwrap_or(&Value::Null))
            ),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<28}  {:<22}  {:>7}  {:<14}  {:<30}  {}",
            format!("{}{me}", s(&n["node"])),
            s(&n["address"]),
            s(&n["applied"]),
            state,
            s(&n["since"]),
            error
        );
    }
    out
}

fn render_diff(v: &Value) -> String {
    let mut out = format!("diff {} → {}\n", s(&v["from"]), s(&v["to"]));
    for p in v["diff"]["policies"].as_array().into_iter().flatten() {
        let name = s(&p["name"]);
        match p["change"].as_str() {
            Some("added") => {
                let _ = writeln!(out, "+ policy {name}");
            }
            Some("removed") => {
                let _ = writeln!(out, "- policy {name}");
            }
            _ => {
                let _ = writeln!(out, "~ policy {name}");
                for f in p["fields"].as_array().into_iter().flatten() {
                    let field = s(&f["field"]);
                    for a in f["added"].as_array().into_iter().flatten() {
                        let _ = writeln!(out, "    {field}: + {}", s(a));
                    }
                    for r in f["removed"].as_array().into_iter().flatten() {
                        let _ = writeln!(out, "    {field}: - {}", s(r));
                    }
                    if !f["from"].is_null() {
                        let _ = writeln!(out, "    {field}: {} → {}", s(&f["from"]), s(&f["to"]));
                    }
                }
            }
        }
    }
    for b in v["diff"]["bindings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "~ {}: policy {} → {}",
            s(&b["at"]),
            s(&b["from"]),
            s(&b["to"])
        );
    }
    for t in v["propagation"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  tightened: policy {}: {} (up to {} s in browsers)",
            s(&t["policy"]),
            s(&t["change"]),
            s(&t["browserCacheSecs"])
        );
    }
    out
}

/// `corsgate admin history`: one line a version.
fn render_history(v: &Value) -> String {
    let mut out = format!(
        "{:>4}  {:>6}  {:<12}  {:<25}  {}\n",
        "id", "parent", "author", "created", "comment"
    );
    for x in v["versions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>4}  {:>6}  {:<12}  {:<25}  {}",
            s(&x["id"]),
            s(&x["parent"]),
            s(&x["author"]),
            s(&x["createdAt"]),
            s(&x["comment"])
        );
    }
    out
}

/// `corsgate admin audit`: one line an entry, then what verification found.
fn render_audit(v: &Value) -> String {
    let mut out = String::new();
    for e in v["entries"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>4}  {:<25}  {:<10}  {:<26}  {:>4}  {}",
            s(&e["seq"]),
            s(&e["at"]),
            s(&e["actor"]),
            s(&e["action"]),
            s(&e["version"]),
            s(&e["detail"])
        );
    }
    if v["verify"]["intact"] == true {
        let _ = writeln!(
            out,
            "hash chain intact ({} entries); head {} {}",
            s(&v["verify"]["entries"]),
            s(&v["verify"]["head"]["seq"]),
            s(&v["verify"]["head"]["hash"])
        );
    } else {
        for p in v["verify"]["problems"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "TAMPERED: {}", s(p));
        }
    }
    out
}

/// Run one admin command; `(stdout, exit status)`.
pub async fn run(
    url: &str,
    token: &str,
    cmd: AdminCommand,
    as_json: bool,
) -> Result<(String, u8), String> {
    let active_id = || async {
        let (st, v) = call(url, token, "GET", "/api/v1/versions/active", None).await?;
        Ok::<Option<i64>, String>(if st == 200 { v["id"].as_i64() } else { None })
    };
    let is_fleet = matches!(cmd, AdminCommand::Fleet);
    let (status, v, text): (u16, Value, fn(&Value) -> String) = match cmd {
        AdminCommand::Fleet => {
            let (st, v) = call(url, token, "GET", "/fleet", None).await?;
            (st, v, render_fleet)
        }
        AdminCommand::History => {
            let (st, v) = call(url, token, "GET", "/api/v1/versions", None).await?;
            (st, v, render_history)
        }
        AdminCommand::Show { id } => {
            let path = id.map_or_else(
                || "/api/v1/versions/active".to_owned(),
                |i| format!("/api/v1/versions/{i}"),
            );
            let (st, v) = call(url, token, "GET", &path, None).await?;
            (st, v, |v| render_version(v, true))
        }
        AdminCommand::Diff { from, to } => {
            let (st, v) = call(
                url,
                token,
                "GET",
                &format!("/api/v1/diff?from={from}&to={to}"),
                None,
            )
            .await?;
            (st, v, render_diff)
        }
        AdminCommand::Apply {
            file,
            base,
            comment,
        } => {
            let content =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let base = match base {
                Some(b) => Some(b),
                None => active_id().await?,
            };
            let body = json!({ "base": base, "comment": comment, "content": content });
            let (st, v) = call(url, token, "POST", "/api/v1/versions", Some(body)).await?;
            (st, v, |v| render_version(v, false))
        }
        AdminCommand::Rollback { to, base, comment } => {
            let base = match base {
                Some(b) => Some(b),
                None => active_id().await?,
            };
            let body = json!({ "base": base, "to": to, "comment": comment });
            let (st, v) = call(url, token, "POST", "/api/v1/rollback", Some(body)).await?;
            (st, v, |v| render_version(v, false))
        }
        AdminCommand::Audit => {
            let (st, mut v) = call(url, token, "GET", "/api/v1/audit", None).await?;
            let (_, verify) = call(url, token, "GET", "/api/v1/audit/verify", None).await?;
            v["verify"] = verify;
            (st, v, render_audit)
        }
    };
    let in_sync = |v: &Value| {
        v["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|x| x["state"] == "in-sync"))
    };
    let ok = (200..300).contains(&status) && (!is_fleet || in_sync(&v));
    let out = if as_json {
        format!("{v:#}\n")
    } else if (200..300).contains(&status) {
        text(&v)
    } else {
        render_error(status, &v)
    };
    Ok((out, if ok { 0 } else { 1 }))
}
