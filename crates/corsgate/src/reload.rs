//! Hot reload: on SIGHUP and when the configuration file changes, load and
//! validate the new configuration completely, then swap it in atomically.
//!
//! A configuration that fails to load (syntax, validation, policy
//! compilation) or to apply (an address in use, an unreadable certificate)
//! is logged with its location and changes nothing: the running
//! configuration stays in force. Requests in flight finish on the
//! configuration they started with.

use corsgate_config::{ConfigErrors, ConfigLint, Loaded};
use corsgate_gateway::Running;
use corsgate_policy::Severity;
use notify_debouncer_mini::notify::RecursiveMode;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a burst of file events must be quiet before a reload: editors
/// write a file in several steps (truncate, write, rename).
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Log a configuration's lints at start-up and on reload, each at its own
/// severity: an `info` lint is an info line, a `warn` lint a warning, and an
/// `error` lint that does not refuse (`L-CRED-ANY`) an error.
pub fn log_lints(lints: &[ConfigLint]) {
    for lint in lints {
        match lint.lint.severity {
            Severity::Error => tracing::error!(%lint, "configuration lint"),
            Severity::Warn => tracing::warn!(%lint, "configuration lint"),
            Severity::Info => tracing::info!(%lint, "configuration lint"),
        }
    }
}

/// Why a reload was asked for.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// The configuration file (or its directory) changed.
    FileChanged,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChanged => "file change",
        }
    }
}

/// The configuration in force and where it came from.
pub struct Reloader {
    path: PathBuf,
    /// The content of every input file (the configuration, then its
    /// manifests) when last read, to tell a real change from noise.
    fingerprint: Vec<Option<String>>,
    current: Loaded,
    generation: u64,
}

/// The content of each file, `None` when unreadable.
fn fingerprint(files: &[PathBuf]) -> Vec<Option<String>> {
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

impl Reloader {
    /// Start from the configuration at `path` that is running now, loaded
    /// from `text`. Call it as soon as the configuration is loaded: the
    /// fingerprint is taken from `text` and, for the manifests, from the
    /// files as they are now, so that a file changed while the listeners
    /// start differs from it and is applied by the first check.
    pub fn new(path: PathBuf, current: Loaded, text: &str) -> Self {
        let files = corsgate_config::input_files(&current.config, &path);
        let mut fingerprint = fingerprint(&files);
        if let Some(first) = fingerprint.first_mut() {
            // input_files lists the configuration file first.
            *first = Some(text.to_owned());
        }
        Reloader {
            fingerprint,
            path,
            current,
            generation: 1,
        }
    }

    /// The files to watch: the configuration and its manifests.
    pub fn inputs(&self) -> Vec<PathBuf> {
        corsgate_config::input_files(&self.current.config, &self.path)
    }

    /// Whether an input file's content differs from when it was last
    /// seen (and remember it): where the file is not applied (the admin
    /// API manages the configuration), a real edit is reported once and
    /// unrelated events in the same directory are not reported at all.
    pub fn file_changed(&mut self) -> bool {
        let now = fingerprint(&self.inputs());
        let changed = now != self.fingerprint;
        self.fingerprint = now;
        changed
    }

    /// Load the file again and apply it if it is valid and changed (a
    /// SIGHUP applies it even unchanged, to re-read certificates).
    pub async fn reload(&mut self, running: &mut Running, trigger: Trigger) {
        let file = self.path.display().to_string();
        // The files of the configuration in force: a manifest edit counts
        // as a change even when the configuration file is unchanged.
        let now = fingerprint(&self.inputs());
        if matches!(trigger, Trigger::FileChanged) && now == self.fingerprint {
            return;
        }
        let loaded = match corsgate_routes::load_file(&self.path) {
            Ok(l) => l,
            Err(ConfigErrors(errors)) => {
                for e in &errors {
                    tracing::error!(trigger = trigger.as_str(), error = %e, "configuration error");
                }
                tracing::error!(
                    file,
                    errors = errors.len(),
                    "reload refused; the running configuration stays in force"
                );
                // Remember the content so that the same broken file is
                // not reported again on every unrelated event.
                self.fingerprint = now;
                return;
            }
        };
        let tightened = corsgate_config::tightenings(&self.current.config, &loaded.config);
        match running.reload(&loaded).await {
            Ok(report) => {
                self.generation += 1;
                tracing::info!(
                    file,
                    trigger = trigger.as_str(),
                    generation = self.generation,
                    kept = ?report.kept,
                    added = ?report.added,
                    removed = ?report.removed,
                    "configuration reloaded"
                );
                log_lints(&loaded.lints);
                for t in &tightened {
                    tracing::warn!(
                        policy = %t.policy,
                        change = %t.what,
                        browser_cache_secs = t.browser_cache_secs,
                        "policy tightened: {t}"
                    );
                }
                self.current = loaded;
                self.fingerprint = fingerprint(&self.inputs());
            }
            Err(e) => {
                tracing::error!(file, trigger = trigger.as_str(), error = %e,
                    "reload refused; the running configuration stays in force");
                self.fingerprint = now;
            }
        }
    }
}

/// Watch the directories of the configuration file and its manifests and
/// send [`Trigger::FileChanged`] after each quiet burst of events.
/// Directories, not files, are watched so that editors' rename-over saves
/// and Kubernetes ConfigMap symlink swaps are seen; the reload itself
/// compares the content.
///
/// The returned value must be kept alive for the watch to continue.
pub fn watch(
    files: &[PathBuf],
    tx: mpsc::UnboundedSender<Trigger>,
) -> Result<
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    notify_debouncer_mini::notify::Error,
> {
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        DEBOUNCE,
        move |res: notify_debouncer_mini::DebounceEventResult| {
            if res.is_ok() {
                let _ = tx.send(Trigger::FileChanged);
            }
        },
    )?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)?;
    }
    Ok(debouncer)
}
