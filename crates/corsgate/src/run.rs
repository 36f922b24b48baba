//! `corsgate run`: load the configuration, start the runtime, let the
//! store decide what is served (with an admin API), then serve until
//! SIGINT or SIGTERM, taking file changes, SIGHUP and admin API changes
//! as they come, and drain.

use crate::{init_logs, manage, reload, LogFormat};
use corsgate_gateway::Running;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `corsgate run`.
pub struct RunArgs {
    /// `--config` (none: the embedded demo).
    pub config: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--threads` (none: one per CPU).
    pub threads: Option<usize>,
    /// `--no-watch`.
    pub no_watch: bool,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--node`: the name in the fleet status.
    pub node: Option<String>,
}

/// Exit status 2 for a configuration that cannot be read or loaded, 1
/// when listening or the runtime fails, 0 after a clean shutdown.
pub fn run(args: RunArgs) -> ExitCode {
    init_logs(args.log_format);
    let (text, name, loaded) = match crate::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(status) => return status,
    };
    reload::log_lints(&loaded.lints);
    let reloader = args
        .config
        .clone()
        .map(|path| reload::Reloader::new(path, loaded.clone(), &text));
    if let Some(n) = crate::fdlimit::raise() {
        tracing::debug!(limit = n, "file descriptors");
    }
    let runtime = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With an admin API, the store decides what is served; the admin
    // section itself (this instance's listener, its way to the store) is
    // always the local file's.
    let admin = loaded.config.admin.clone();
    let (loaded, managed) = match &admin {
        Some(a) => match manage::open(&args.data_dir, a, &name, &text, loaded) {
            Ok(m) => (m.loaded.clone(), Some(m)),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => (loaded, None),
    };
    runtime.block_on(serve(args, loaded, admin.zip(managed), reloader))
}

/// One worker thread: a current-thread runtime, which avoids cross-thread
/// wake-ups when pinned to one core.
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}

/// Listen, start the admin API (`managed`: the file's admin section and
/// the store opened for it), serve until a signal, drain.
async fn serve(
    args: RunArgs,
    loaded: corsgate_config::Loaded,
    managed: Option<(corsgate_config::Admin, manage::Managed)>,
    reloader: Option<reload::Reloader>,
) -> ExitCode {
    let mut running = match corsgate_gateway::start(&loaded).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in &running.addrs {
        tracing::info!(vservice = %name, %addr, "listening");
    }
    if args.config.is_none() {
        print_demo_hints(&running);
    }
    let mut admin_rt = match managed {
        Some((a, m)) => {
            let started = manage::start_admin(
                m,
                &a,
                running.metrics(),
                running.shadow(),
                &args.data_dir,
                args.node.clone(),
            )
            .await;
            match started {
                Ok(rt) => {
                    tracing::info!(addr = %rt.addr, "admin API listening");
                    Some(rt)
                }
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let (tx, triggers) = tokio::sync::mpsc::unbounded_channel();
    // Kept alive for as long as the gateway runs.
    let _watch = match (&reloader, args.no_watch) {
        (Some(r), false) => match reload::watch(&r.inputs(), tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the configuration file; reload with SIGHUP");
                None
            }
        },
        _ => None,
    };
    if _watch.is_some() && admin_rt.is_none() {
        // A file changed after it was loaded and before the watch began
        // raised no event: check once now (a no-op when nothing changed).
        let _ = tx.send(reload::Trigger::FileChanged);
    }
    spawn_sighup(tx);
    let mut serving = Serving {
        running: &mut running,
        admin: admin_rt.as_mut(),
        reloader,
        config: args.config.clone(),
    };
    serving.until_stopped(triggers).await;
    tracing::info!("shutting down");
    if let Some(rt) = &admin_rt {
        let _ = rt.stop.send(true);
    }
    running.shutdown().await;
    // The fleet record was withdrawn when the stop was sent; wait for that
    // round trip (bounded by its own timeout).
    if let Some(task) = admin_rt.as_mut().and_then(|rt| rt.registration.take()) {
        let _ = task.await;
    }
    ExitCode::SUCCESS
}

/// What the serving loop changes.
struct Serving<'a> {
    running: &'a mut Running,
    admin: Option<&'a mut manage::AdminRuntime>,
    reloader: Option<reload::Reloader>,
    config: Option<PathBuf>,
}

impl Serving<'_> {
    /// Take reload triggers and admin API activations until SIGINT or
    /// SIGTERM.
    async fn until_stopped(
        &mut self,
        mut triggers: tokio::sync::mpsc::UnboundedReceiver<reload::Trigger>,
    ) {
        // Created once, before the loop, so that no signal falls between
        // two registrations.
        let interrupt = tokio::signal::ctrl_c();
        let term = terminate();
        tokio::pin!(interrupt, term);
        loop {
            tokio::select! {
                _ = &mut interrupt => return,
                _ = &mut term => return,
                Some(trigger) = triggers.recv() => self.trigger(trigger).await,
                Some((new, reply)) = async {
                    match self.admin.as_mut() {
                        Some(rt) => rt.activations.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let result = self.running.reload(&new).await;
                    match &result {
                        Ok(report) => tracing::info!(?report, "configuration applied through the admin API"),
                        Err(e) => tracing::error!(error = %e, "admin API change not applied"),
                    }
                    let _ = reply.send(result.map(|_| ()).map_err(|e| e.to_string()));
                },
            }
        }
    }

    /// A file change or SIGHUP: reload the file, or with the admin API
    /// apply it as a new version (SIGHUP only).
    async fn trigger(&mut self, trigger: reload::Trigger) {
        match (self.reloader.as_mut(), self.admin.as_deref(), trigger) {
            (_, Some(rt), reload::Trigger::Signal) => match &self.config {
                Some(path) => manage::reload_from_file(rt, path),
                None => tracing::warn!("the embedded configuration cannot be reloaded"),
            },
            (r, Some(_), reload::Trigger::FileChanged) => {
                if r.is_some_and(|r| r.file_changed()) {
                    tracing::warn!(
                        "the configuration is managed by the admin API; a changed file is applied only on SIGHUP"
                    );
                }
            }
            (Some(r), None, trigger) => r.reload(self.running, trigger).await,
            (None, None, _) => {
                tracing::warn!("the embedded configuration cannot be reloaded; run with --config")
            }
        }
    }
}

/// Turn every SIGHUP into a reload trigger.
fn spawn_sighup(tx: tokio::sync::mpsc::UnboundedSender<reload::Trigger>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(reload::Trigger::Signal).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
}

async fn terminate() {
    #[cfg(unix)]
    {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

fn print_demo_hints(running: &corsgate_gateway::Running) {
    let Some(addr) = running.addr("demo") else {
        return;
    };
    println!(
        "\ncorsgate demo is up on http://{addr}\n\
         Try:\n  \
         # a preflight from an allowed origin, answered by the gateway\n  \
         curl -si -X OPTIONS http://{addr}/api/hello -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: PUT'\n  \
         # the same from an origin that is not allowed: 200, no CORS headers\n  \
         curl -si -X OPTIONS http://{addr}/api/hello -H 'Origin: https://evil.test' -H 'Access-Control-Request-Method: PUT'\n  \
         # an actual request: CORS headers completed on the response\n  \
         curl -si http://{addr}/api/hello -H 'Origin: https://app.example.com'\n  \
         # the narrower, credentialed admin policy on /admin\n  \
         curl -si http://{addr}/admin/api -H 'Origin: https://admin.example.com'\n  \
         # no route: a 404 that still carries CORS headers\n  \
         curl -si http://{addr}/nowhere -H 'Origin: https://app.example.com'\n"
    );
}
