//! The `corsgate` command.

mod admin_cli;
mod audit;
mod check;
mod console;
mod explain_cli;
mod fdlimit;
mod fleet;
mod fleet_status;
mod fleet_store;
mod fleet_sync;
mod manage;
mod migrate;
mod reload;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// The configuration `corsgate run` uses when no `--config` is given.
const DEFAULT_CONFIG: &str = include_str!("default.yaml");

#[derive(Parser)]
#[command(
    name = "corsgate",
    version,
    about = "An application delivery gateway with one central, auditable CORS policy rule"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (on the embedded demo configuration without --config).
    Run {
        /// A corsgate YAML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Do not reload when the configuration file changes (SIGHUP still
        /// reloads).
        #[arg(long)]
        no_watch: bool,
        /// Where the versioned store lives (used when the configuration
        /// has an `admin:` section).
        #[arg(long, default_value = "corsgate-data")]
        data_dir: PathBuf,
        /// Worker threads (default: one per available CPU). With 1, a
        /// single-threaded runtime runs everything on the calling thread,
        /// which avoids cross-thread wake-ups when pinned to one core.
        #[arg(long)]
        threads: Option<usize>,
        /// This instance's name in the fleet status on the etcd store
        /// (default: the host name and the admin listener's port).
        #[arg(long, value_parser = node_name)]
        node: Option<String>,
    },
    /// Validate a configuration: every error and lint with its location
    /// and a fix. Exit status 0 valid, 1 refused (or warnings with
    /// --strict), 2 unreadable.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain what a browser sends for a request and what corsgate
    /// answers, leg by leg, with the browser's verdict and its reason.
    Explain {
        /// Configuration (default: the embedded demo).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The page's origin.
        #[arg(long)]
        origin: String,
        /// Request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The URL fetched.
        #[arg(long)]
        url: String,
        /// A header the script sets (`-H 'X-Tenant: acme'`), repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// `fetch()` credentials mode.
        #[arg(long, value_enum, default_value_t = Credentials::Omit)]
        credentials: Credentials,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage configurations through the admin API.
    Admin {
        /// The admin API's base URL.
        #[arg(
            long,
            env = "CORSGATE_ADMIN_URL",
            default_value = "http://127.0.0.1:9901"
        )]
        url: String,
        /// A bearer token.
        #[arg(long, env = "CORSGATE_ADMIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Print the API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
    /// The audit log of the management store.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The management store itself: moving it between backends.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print the JSON Schema of the configuration format (for editors).
    Schema,
    /// Print the embedded default configuration.
    DefaultConfig,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the store: the hash chain, the signatures, every version
    /// against its hash and its audit entry, and (with --expect-head) that
    /// a head recorded elsewhere is still in the chain. Names every problem.
    /// Exit status 0 intact, 1 tampered, 2 unreadable.
    Verify {
        /// The data directory holding corsgate.db.
        #[arg(long, default_value = "corsgate-data")]
        data_dir: PathBuf,
        /// Verify the store this configuration's `admin.store.etcd` names
        /// (the fleet's etcd cluster) instead of the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A trusted public key (PEM); repeat for earlier keys after a
        /// rotation. Without one, signatures are not checked.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// A head hash recorded outside this host (an audit log line's
        /// `head`, or `corsgate_audit_head_info`): it must be in the chain.
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// Create the Ed25519 key pair that signs the audit chain; refuses to
    /// overwrite an existing file.
    Keygen {
        /// The private key to write (mode 0600); keep it outside the data
        /// directory.
        #[arg(long)]
        private_key: PathBuf,
        /// The public key to write, for `audit verify --public-key`.
        #[arg(long)]
        public_key: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a SQLite store (every version, the whole audit chain with its
    /// signatures, the active version) into the empty etcd store that the
    /// configuration's `admin.store.etcd` names, audit the migration there
    /// as `store.migrated`, and verify the result. Refuses a source that
    /// does not verify and a target that holds a store already. Exit
    /// status 0 migrated and verified, 1 written but not verified, 2
    /// refused or unreadable (nothing written).
    Migrate {
        /// The data directory holding corsgate.db (the source).
        #[arg(long, default_value = "corsgate-data")]
        data_dir: PathBuf,
        /// The configuration whose `admin.store.etcd` is the target (its
        /// `admin.auditKeyFile` signs the `store.migrated` entry).
        #[arg(long)]
        config: PathBuf,
        /// A public key (PEM) the source's signatures are checked with;
        /// repeat for earlier keys after a rotation. The configuration's
        /// own keys are always used too.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Credentials {
    Include,
    Omit,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The configuration `--config` names, or the embedded demo: its text,
/// its name for messages, and it loaded. An unreadable or invalid file is
/// reported on stderr and is exit status 2.
fn load_config(
    config: Option<&std::path::Path>,
) -> Result<(String, String, corsgate_config::Loaded), ExitCode> {
    let (text, name) = match config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => (t, path.display().to_string()),
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                return Err(ExitCode::from(2));
            }
        },
        None => (DEFAULT_CONFIG.to_owned(), "<embedded default>".to_owned()),
    };
    match corsgate_routes::load_str(&text, Some(&name)) {
        Ok(l) => Ok((text, name, l)),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only what the command prints.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A fleet node name: it becomes the last part of an etcd key.
fn node_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("1 to 128 of A-Z a-z 0-9 - _ . : @".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Explain {
            config,
            origin,
            method,
            url,
            headers,
            credentials,
            json,
        } => explain_cli::run(explain_cli::ExplainArgs {
            config,
            origin,
            method,
            url,
            headers,
            credentials,
            json,
        }),
        Command::Admin {
            url,
            token,
            json,
            command,
        } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(admin_cli::run(&url, &token, command, json)) {
                Ok((out, status)) => {
                    print!("{out}");
                    ExitCode::from(status)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Audit { command } => audit::run(command),
        Command::Store {
            command:
                StoreCommand::Migrate {
                    data_dir,
                    config,
                    public_keys,
                },
        } => migrate::run(&data_dir, &config, &public_keys),
        Command::Schema => {
            let schema = schemars::schema_for!(corsgate_config::Config);
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot render the schema: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { file, strict, json } => {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let outcome = check::check(&name, &text, strict, json);
                    print!("{}", outcome.text);
                    ExitCode::from(outcome.status)
                }
                Err(e) => {
                    eprintln!("{name}: cannot read: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run {
            config,
            log_format,
            threads,
            no_watch,
            data_dir,
            node,
        } => run::run(run::RunArgs {
            config,
            log_format,
            threads,
            no_watch,
            data_dir,
            node,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_config_loads_and_has_the_demo_vservice() {
        let loaded =
            corsgate_routes::load_str(DEFAULT_CONFIG, None).expect("embedded config is valid");
        assert_eq!(loaded.config.vservices[0].name, "demo");
        assert_eq!(loaded.config.vservices[0].listen, "127.0.0.1:8080");
        assert!(loaded.policies.contains_key("public") && loaded.policies.contains_key("admin"));
    }
}
