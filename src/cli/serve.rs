//! `spool serve`: load the configuration, start the broker, stop it on SIGINT or SIGTERM.

use crate::broker;
use crate::config::Config;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML file of settings (see config/spool.toml; spool's keys or Kafka's dotted names), or
    /// a Kafka `server.properties` (by its `.properties` extension); only the keys it changes
    /// are needed.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, host:port (same as --set listeners=...).
    #[arg(long, value_name = "HOST:PORT")]
    listeners: Option<String>,
    /// Directory for the data (same as --set data_dir=...).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Any config key, as key=value; repeatable. Wins over the file and the environment.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Once serving, write the bound "host:port" to this file (for scripts and tests using
    /// port 0).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Log lines as `text`, or `json` (one object per line: time, level, target, message and
    /// fields). The level filter is RUST_LOG's (default info).
    #[arg(long, value_enum, env = "SPOOL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let mut overrides = args.set.clone();
    if let Some(l) = &args.listeners {
        overrides.push(format!("listeners={l}"));
    }
    if let Some(d) = &args.data_dir {
        overrides.push(format!("data_dir={}", d.display()));
    }
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spool: {e}");
            return ExitCode::from(2);
        }
    };
    for name in &config.ignored_env {
        tracing::warn!("ignoring environment variable {name}: it names no spool config key");
    }
    if !config.ignored_kafka.is_empty() {
        tracing::info!(
            "ignoring Kafka settings spool does not implement: {}",
            config.ignored_kafka.join(", ")
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spool")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spool: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(config, args.ready_file));
    // Everything is closed and synced by now; threads still blocked in system calls (a peer
    // connection attempt, say) are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("spool: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = broker::start(config).await?;
    if let Some(path) = ready_file {
        crate::log::write_atomically(&path, format!("{}\n", running.local_addr).as_bytes())?;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    running.shutdown().await?;
    Ok(())
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // openraft reports every vote and replication retry at info and its internals at debug: its
    // warnings are enough, unless RUST_LOG names it. RUST_LOG=debug thus shows spool's own
    // request handling (target spool::request: API, version, client, errors, time).
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() && v.contains("openraft") => v,
        Ok(v) if !v.trim().is_empty() => format!("{v},openraft=warn"),
        _ => "info,openraft=warn".to_string(),
    };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("spool: RUST_LOG `{filter}` is not a filter ({e}); logging at info");
        EnvFilter::new("info,openraft=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
