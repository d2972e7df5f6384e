//! Event recall and point precision of each detector on the simulated stream
//! (`pynomaly simulate`'s generator), offline, through the service's engine.
//!
//!     cargo run --release --example sim_eval [EVENTS] [KEYS]
//!
//! An injected anomaly counts as caught when any point of its labelled window
//! is flagged; precision is the share of flagged points inside some window.

use std::collections::BTreeMap;

use clap::Parser;
use pynomaly_detection::config::Config;
use pynomaly_detection::detect::Algorithm;
use pynomaly_detection::engine::Engine;
use pynomaly_detection::simulate::{SimulateArgs, Simulator};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimulateArgs,
    /// Events to generate.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
}

fn main() {
    let mut cli = Cli::parse_from(
        std::env::args()
            .take(1)
            .chain(["--start-ms".into(), "1700000000000".into()])
            .chain(std::env::args().skip(1)),
    );
    // Minute data, as in the integration test (`--rate 0`), unless asked otherwise.
    cli.sim.step_ms.get_or_insert(60_000);
    if cli.sim.keys == 0 {
        cli.sim.keys = 50;
    }
    let stream: Vec<_> = Simulator::new(&cli.sim).take(cli.events).collect();
    println!("{} events, {} keys", stream.len(), cli.sim.keys);
    println!("| algorithm | events | recall | precision | flagged |");
    println!("|---|---|---|---|---|");
    // PYNOMALY_* variables apply (e.g. PYNOMALY_SUPPRESSION=0).
    let base = Config::load(None).expect("valid configuration").config;
    for name in Algorithm::NAMES {
        let mut config = base.clone();
        config.default_algorithm = name.to_string();
        let Ok(spec) = config.detector_spec() else {
            continue;
        };
        let mut engine = Engine::new(spec);
        let mut caught: BTreeMap<String, bool> = BTreeMap::new();
        let (mut tp, mut fp) = (0usize, 0usize);
        for ev in &stream {
            let features: Vec<(String, f64)> =
                ev.values.iter().map(|(k, v)| (k.clone(), *v)).collect();
            // The event time, as the service passes it (daily-recurrence rule).
            let s = engine
                .score_at(ev.key.as_bytes(), &features, Some(ev.timestamp))
                .expect("valid");
            if let Some(t) = &ev.truth {
                *caught.entry(t.id.clone()).or_insert(false) |= s.is_anomaly;
            }
            match (s.is_anomaly, ev.truth.is_some()) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                _ => {}
            }
        }
        let recall = caught.values().filter(|c| **c).count() as f64 / caught.len().max(1) as f64;
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        println!(
            "| {name} | {} | {recall:.3} | {precision:.3} | {} |",
            caught.len(),
            tp + fp
        );
    }
}
