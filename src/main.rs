//! `pynomaly`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pynomaly_detection::config::{self, Config};
use pynomaly_detection::{admin, pipeline, score, simulate, state, telemetry, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Exit code for configuration errors.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "pynomaly",
    version,
    about = "Streaming anomaly detection on Kafka"
)]
struct Cli {
    /// Configuration file (TOML or YAML); environment variables override it.
    #[arg(long, global = true, env = "PYNOMALY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the detector service: consume, score, checkpoint, publish.
    Run,
    /// Score a CSV or JSONL file offline (no Kafka), through the service's code path.
    Score(score::ScoreArgs),
    /// Exit 0 when the local admin endpoint answers 200, else 1 (container health checks).
    Healthcheck {
        /// Admin port.
        #[arg(long, env = "PYNOMALY_ADMIN_PORT", default_value_t = 9090)]
        port: u16,
        /// Check readiness (`/readyz`) instead of liveness (`/healthz`).
        #[arg(long)]
        ready: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Produce a synthetic stream with injected anomalies to a topic.
    Simulate(simulate::SimulateArgs),
    /// Print the effective configuration (secrets masked) and exit; exit 2 if invalid.
    Config,
    /// Follow the score topic and print anomalies as readable lines.
    Watch(watch::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Healthcheck {
            port,
            ready,
            timeout_secs,
        } => {
            let path = if ready { "/readyz" } else { "/healthz" };
            if admin::healthcheck(port, path, Duration::from_secs(timeout_secs)) {
                ExitCode::SUCCESS
            } else {
                eprintln!("unhealthy: GET http://127.0.0.1:{port}{path} did not return 200");
                ExitCode::FAILURE
            }
        }
        Command::Simulate(args) => run_simulate(args),
        command => {
            let loaded = match Config::load(cli.config.as_deref()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match command {
                Command::Config => {
                    match config_json(&config::redacted(&loaded.config)) {
                        Ok(s) => print!("{s}"),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Command::Score(args) => {
                    telemetry::init_logging(&loaded.config);
                    match score::run(args, &loaded.config) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("error: {e:#}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Command::Watch(args) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    let flag = stop.clone();
                    // Ctrl-C stops the loop; librdkafka threads need no runtime.
                    std::thread::spawn(move || {
                        if let Ok(rt) = runtime(1) {
                            rt.block_on(async {
                                let _ = tokio::signal::ctrl_c().await;
                            });
                        }
                        flag.store(true, Ordering::Relaxed);
                    });
                    match watch::run(args, &loaded.config, &stop) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("error: {e:#}");
                            ExitCode::FAILURE
                        }
                    }
                }
                _ => run_service(loaded),
            }
        }
    }
}

fn config_json(c: &Config) -> anyhow::Result<String> {
    let v = serde_json::to_value(c)?;
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().thread_name("pynomaly-worker").build()
}

fn run_service(loaded: config::Loaded) -> ExitCode {
    let config = loaded.config;
    telemetry::init_logging(&config);
    for var in &loaded.ignored_env {
        warn!(
            variable = var,
            "Ignoring environment variable that is not a configuration key."
        );
    }
    let rt = match runtime(config.workers) {
        Ok(rt) => rt,
        Err(e) => {
            error!(%e, "Cannot start the runtime.");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => {
            info!("Stopped cleanly.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = format!("{e:#}"), "Stopped with an error.");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = telemetry::install_metrics()?;
    metrics::gauge!(telemetry::MEMORY_LIMIT).set(config.memory_limit_gb * (1u64 << 30) as f64);
    let ttl = (config.state_ttl_secs > 0).then(|| Duration::from_secs(config.state_ttl_secs));
    let store = state::Store::open_with_ttl(&config.data_dir, ttl)
        .with_context(|| format!("opening state under {}", config.data_dir.display()))?;
    info!(
        env = ?config.env,
        algorithm = config.default_algorithm,
        multivariate_algorithm = config.multivariate_algorithm,
        multivariate_min_features = config.multivariate_min_features,
        input = ?config.input_topics,
        output = config.output_topic,
        data_dir = %config.data_dir.display(),
        "Starting Pynomaly Detection {}.",
        env!("CARGO_PKG_VERSION")
    );
    let cancel = CancellationToken::new();
    // Histograms are drained into their buckets by upkeep; the exporter's own
    // task only exists with its HTTP listener, which we replace with axum.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let status = Arc::new(pipeline::Status::default());
    let addr = SocketAddr::new(
        config.admin_bind.parse().context("admin_bind")?,
        config.admin_port,
    );
    let listener_check = std::net::TcpListener::bind(addr)
        .with_context(|| format!("admin port {addr} is not available"))?;
    drop(listener_check);
    let admin_cancel = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        addr,
        status.clone(),
        metrics,
        store.clone(),
        config.data_dir.clone(),
        admin_cancel.clone(),
    ));
    tokio::spawn(handle_signals(
        cancel.clone(),
        Duration::from_secs(config.shutdown_timeout_secs),
    ));
    let result = pipeline::run(config, store, status, cancel).await;
    admin_cancel.cancel();
    let _ = admin.await;
    result
}

/// First SIGTERM/SIGINT drains; a second one, or the drain timeout, exits at once.
async fn handle_signals(cancel: CancellationToken, timeout: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("Cannot install signal handlers.");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "Draining."),
        _ = int.recv() => info!(signal = "SIGINT", "Draining."),
        _ = cancel.cancelled() => {}
    }
    cancel.cancel();
    tokio::select! {
        _ = term.recv() => { error!("Second signal: exiting now."); std::process::exit(130) }
        _ = int.recv() => { error!("Second signal: exiting now."); std::process::exit(130) }
        _ = tokio::time::sleep(timeout) => {
            error!(timeout_secs = timeout.as_secs(), "Drain timed out: exiting now.");
            std::process::exit(1)
        }
    }
}

fn run_simulate(args: simulate::SimulateArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let worker = tokio::task::spawn_blocking(move || simulate::run(args, &flag));
        let stopper = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stopper.store(true, Ordering::Relaxed);
        });
        worker.await
    });
    match result {
        Ok(Ok(sent)) => {
            eprintln!("simulate: produced {sent} events");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
