//! `corsgate explain`: what a browser sends for a request and what
//! corsgate answers, leg by leg, with the browser's verdict and its reason.
//! Exit status 0 when the browser lets the script read the response, 1
//! when it blocks it (or the backend decides), 2 for bad input.

use crate::Credentials;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `corsgate explain`.
pub struct ExplainArgs {
    /// `--config` (none: the embedded demo).
    pub config: Option<PathBuf>,
    /// The page's origin.
    pub origin: String,
    /// The request method.
    pub method: String,
    /// The URL requested.
    pub url: String,
    /// Request headers, `Name: value`.
    pub headers: Vec<String>,
    /// The fetch's credentials mode.
    pub credentials: Credentials,
    /// Print JSON.
    pub json: bool,
}

/// Explain one request against the configuration (default: the demo).
pub fn run(args: ExplainArgs) -> ExitCode {
    let ExplainArgs {
        config,
        origin,
        method,
        url,
        headers,
        credentials,
        json,
    } = args;
    let (_, _, loaded) = match crate::load_config(config.as_deref()) {
        Ok(c) => c,
        Err(status) => return status,
    };
    let url = match url.parse::<http::Uri>() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("--url {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut parsed = Vec::new();
    for h in &headers {
        match h.split_once(':') {
            Some((k, v)) => parsed.push((k.trim().to_owned(), v.trim().to_owned())),
            None => {
                eprintln!("-H {h:?}: expected 'Name: value'");
                return ExitCode::from(2);
            }
        }
    }
    let req = corsgate_gateway::explain::BrowserRequest {
        origin,
        method,
        url,
        headers: parsed,
        credentials: credentials == Credentials::Include,
    };
    let compiled = match corsgate_gateway::router::compile(&loaded) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match corsgate_gateway::explain::explain(&compiled, &loaded.policies, &req) {
        Ok(e) => {
            if json {
                match serde_json::to_string_pretty(&e) {
                    Ok(s) => println!("{s}"),
                    Err(err) => {
                        eprintln!("{err}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{e}");
            }
            // 0 when the browser would let the script read the
            // response, 1 when it blocks it or the backend decides.
            let ok = e
                .legs
                .iter()
                .all(|l| l.verdict == corsgate_gateway::explain::Verdict::Allowed);
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
