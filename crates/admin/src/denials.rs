//! Refused requests: counted always, logged at a bounded rate, audited in
//! aggregate.
//!
//! Every 401 and 403 is counted in `/metrics`. The log gets at most one
//! line per status per [`LOG_EVERY`], saying how many were suppressed, so a
//! flood cannot fill the disk. A 403 (a known token asking above its role)
//! is audited once per token per [`WINDOW`]: the first denial of a window
//! writes a `token.denied` entry, later ones in the same window are only
//! counted, and the token's next audited denial carries that count. So the
//! weakest token can add at most one entry a minute to the chain, however
//! hard it tries; the denials not yet carried into an entry are in
//! `/metrics` (and the rate-limited log) meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One audit entry per token per window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// At most one log line per status per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    /// Denials in the current window after the audited first one.
    more: u64,
}

/// The state of refused requests.
#[derive(Default)]
pub struct Denials {
    windows: Mutex<HashMap<String, Window>>,
    counts: Mutex<HashMap<(u16, String), u64>>,
    logged: Mutex<HashMap<u16, (Option<Instant>, u64)>>,
    connections_refused: AtomicU64,
}

/// What to audit for a 403, when anything.
#[derive(Debug, PartialEq, Eq)]
pub struct Audit {
    /// Denials of this token in its previous window that were not audited
    /// one by one.
    pub previous_window: u64,
}

impl Denials {
    fn count(&self, status: u16, token: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((status, token.to_owned())).or_default() += 1;
    }

    fn log(&self, status: u16, what: &str, who: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = logged.entry(status).or_default();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            *suppressed += 1;
            return;
        }
        tracing::warn!(
            status,
            request = what,
            token = who,
            suppressed_since_last_line = *suppressed,
            "admin request denied"
        );
        *last = Some(now);
        *suppressed = 0;
    }

    /// A request without a valid token.
    pub fn unauthenticated(&self, what: &str) {
        self.count(401, "-");
        self.log(401, what, "-");
    }

    /// A token asked above its role; `Some` when this denial is to be
    /// audited (the first of its window).
    pub fn forbidden(&self, token: &str, what: &str) -> Option<Audit> {
        self.count(403, token);
        self.log(403, what, token);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(token.to_owned()).or_default();
        let now = Instant::now();
        match w.started {
            Some(t) if now.duration_since(t) < WINDOW => {
                w.more += 1;
                None
            }
            _ => {
                let previous_window = std::mem::take(&mut w.more);
                w.started = Some(now);
                Some(Audit { previous_window })
            }
        }
    }

    /// A connection over the cap.
    pub fn connection_refused(&self, peer: SocketAddr) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
        self.log(
            503,
            "connection over maxConnections",
            &peer.ip().to_string(),
        );
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP corsgate_admin_denied Admin requests refused: 401 without a valid token, 403 above the token's role.\n\
             # TYPE corsgate_admin_denied counter\n",
        );
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = counts.iter().collect();
        rows.sort();
        for ((status, token), n) in rows {
            out.push_str(&format!(
                "corsgate_admin_denied_total{{status=\"{status}\",token=\"{token}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP corsgate_admin_connections_refused Admin connections refused over maxConnections.\n\
             # TYPE corsgate_admin_connections_refused counter\n\
             corsgate_admin_connections_refused_total {}\n",
            self.connections_refused.load(Ordering::Relaxed)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_audited_once_per_window_and_counted_in_full() {
        let d = Denials::default();
        let audited = (0..500)
            .filter(|_| d.forbidden("viewer", "POST /api/v1/rollback").is_some())
            .count();
        assert_eq!(audited, 1);
        // Another token has its own window.
        assert_eq!(
            d.forbidden("grafana", "POST /x"),
            Some(Audit { previous_window: 0 })
        );
        d.unauthenticated("GET /api/v1/audit");
        let text = d.render();
        assert!(
            text.contains("corsgate_admin_denied_total{status=\"403\",token=\"viewer\"} 500"),
            "{text}"
        );
        assert!(text.contains("corsgate_admin_denied_total{status=\"401\",token=\"-\"} 1"));
        // The next window's entry carries the 499 not audited one by one.
        d.windows.lock().unwrap().get_mut("viewer").unwrap().started =
            Some(Instant::now() - WINDOW);
        assert_eq!(
            d.forbidden("viewer", "POST /api/v1/rollback"),
            Some(Audit {
                previous_window: 499
            })
        );
    }
}
