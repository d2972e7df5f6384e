//! Synthetic event streams with ground truth: many keys, daily seasonality,
//! noise, and injected spikes, level shifts and drifts.
//!
//! The generator ([`Simulator`]) is a pure, seeded iterator (used by tests and
//! benches); [`run`] produces it to Kafka at a chosen rate. Ground truth rides
//! in each record's `attributes`: `anomaly` (`spike`, `level_shift`, `drift`)
//! and `anomaly_id` on every point of an injected anomaly's window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde::Serialize;

use crate::codec::avro::{AvroCodec, AvroEvent};
use crate::config::Format;
use crate::detect::SplitMix64;

/// One day in milliseconds: the seasonality period.
const DAY_MS: f64 = 86_400_000.0;

/// Options of the generator and of `pynomaly simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "PYNOMALY_KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// Events per second in total (0 = as fast as possible).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Events to produce in total (0 = until interrupted).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Number of entity keys (round-robin).
    #[arg(long, default_value_t = 50)]
    pub keys: usize,
    /// Chance per point that an injected anomaly starts (outside quiet points and open windows).
    #[arg(long, default_value_t = 0.005)]
    pub anomaly_rate: f64,
    /// Points per key with no injected anomaly at the start (detector warm-up).
    #[arg(long, default_value_t = 60)]
    pub quiet_points: u64,
    /// Event-time step between two points of one key, in ms (default: real
    /// time, `keys * 1000 / rate`, so event time follows the clock; 60 000 with `--rate 0`).
    #[arg(long)]
    pub step_ms: Option<i64>,
    /// Event time of each key's first point (epoch ms; default: now).
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Generator seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Record encoding.
    #[arg(long, value_enum, default_value_t = SimFormat::Json)]
    pub format: SimFormat,
    /// Extra librdkafka producer properties, `key=value` (repeatable).
    #[arg(long = "producer-property", value_parser = parse_kv)]
    pub producer_properties: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not key=value"))
}

/// Encodings the simulator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    /// JSON (default input format).
    Json,
    /// Avro datum per `schemas/event.avsc`.
    Avro,
}

impl From<SimFormat> for Format {
    fn from(f: SimFormat) -> Format {
        match f {
            SimFormat::Json => Format::Json,
            SimFormat::Avro => Format::Avro,
        }
    }
}

/// Ground truth of one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// `spike`, `level_shift` or `drift`.
    pub kind: &'static str,
    /// Identifies the injected anomaly (all points of its window share it).
    pub id: String,
}

/// One generated event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimEvent {
    /// Entity key.
    pub key: String,
    /// Event time, epoch ms.
    pub timestamp: i64,
    /// Features.
    pub values: BTreeMap<String, f64>,
    /// Ground truth, when the point is inside an injected anomaly's window.
    #[serde(skip)]
    pub truth: Option<Truth>,
}

impl SimEvent {
    /// JSON in the documented input format, ground truth in `attributes`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::json!({
            "key": self.key,
            "timestamp": self.timestamp,
            "values": self.values,
        });
        if let Some(t) = &self.truth {
            v["attributes"] = serde_json::json!({"anomaly": t.kind, "anomaly_id": t.id});
        }
        serde_json::to_vec(&v).expect("plain JSON value")
    }

    /// Avro datum per `schemas/event.avsc`.
    pub fn to_avro(&self, codec: &AvroCodec) -> Vec<u8> {
        let mut attributes = BTreeMap::new();
        if let Some(t) = &self.truth {
            attributes.insert("anomaly".to_string(), t.kind.to_string());
            attributes.insert("anomaly_id".to_string(), t.id.clone());
        }
        codec.encode_event(&AvroEvent {
            key: Some(self.key.clone()),
            timestamp: Some(self.timestamp),
            values: self.values.clone(),
            attributes,
        })
    }
}

const FEATURES: [&str; 2] = ["cpu", "latency_ms"];

#[derive(Debug, Clone)]
struct KeyGen {
    name: String,
    rng: SplitMix64,
    level: [f64; 2],
    amp: [f64; 2],
    sigma: [f64; 2],
    phase: f64,
    shift: [f64; 2],
    drift_left: u32,
    drift_step: f64,
    drift_feature: usize,
    window_left: u32,
    window: Option<Truth>,
    anomalies: u64,
    points: u64,
}

/// Seeded generator of a multi-key stream.
#[derive(Debug, Clone)]
pub struct Simulator {
    keys: Vec<KeyGen>,
    next: usize,
    start_ms: i64,
    step_ms: i64,
    anomaly_rate: f64,
    quiet_points: u64,
}

impl Simulator {
    /// A generator from options (only the generator fields are used).
    pub fn new(args: &SimulateArgs) -> Simulator {
        let start_ms = args
            .start_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let keys = (0..args.keys.max(1))
            .map(|k| {
                let name = format!("host-{k:04}");
                let mut rng =
                    SplitMix64::new(crate::detect::seed_for_key(args.seed, name.as_bytes()));
                let cpu = 20.0 + 60.0 * rng.next_f64();
                let lat = 5.0 + 200.0 * rng.next_f64();
                KeyGen {
                    name,
                    level: [cpu, lat],
                    amp: [0.25 * cpu, 0.15 * lat],
                    sigma: [0.02 * cpu + 0.2, 0.03 * lat + 0.1],
                    phase: std::f64::consts::TAU * rng.next_f64(),
                    rng,
                    shift: [0.0; 2],
                    drift_left: 0,
                    drift_step: 0.0,
                    drift_feature: 0,
                    window_left: 0,
                    window: None,
                    anomalies: 0,
                    points: 0,
                }
            })
            .collect();
        Simulator {
            keys,
            next: 0,
            start_ms,
            step_ms: args.step_ms.unwrap_or_else(|| {
                if args.rate > 0.0 {
                    ((args.keys.max(1) as f64 * 1000.0 / args.rate).round() as i64).max(1)
                } else {
                    60_000
                }
            }),
            anomaly_rate: args.anomaly_rate,
            quiet_points: args.quiet_points,
        }
    }
}

impl Iterator for Simulator {
    type Item = SimEvent;

    fn next(&mut self) -> Option<SimEvent> {
        let i = self.next;
        self.next = (self.next + 1) % self.keys.len();
        let (start, step, rate, quiet) = (
            self.start_ms,
            self.step_ms,
            self.anomaly_rate,
            self.quiet_points,
        );
        let g = &mut self.keys[i];
        let ts = start + step * g.points as i64;
        let mut spike = [0.0; 2];
        if g.window_left == 0 {
            g.window = None;
            if g.points >= quiet && g.rng.next_f64() < rate {
                let f = g.rng.next_below(2) as usize;
                let sign = if g.rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
                let kind_roll = g.rng.next_f64();
                g.anomalies += 1;
                let id = format!("{}-{}", g.name, g.anomalies);
                let kind = if kind_roll < 0.6 {
                    spike[f] = sign * (6.0 + 4.0 * g.rng.next_f64()) * g.sigma[f];
                    g.window_left = 1;
                    "spike"
                } else if kind_roll < 0.8 {
                    g.shift[f] += sign * (6.0 + 4.0 * g.rng.next_f64()) * g.sigma[f];
                    g.window_left = 10;
                    "level_shift"
                } else {
                    g.drift_left = 30;
                    g.drift_feature = f;
                    g.drift_step = sign * (8.0 + 4.0 * g.rng.next_f64()) * g.sigma[f] / 30.0;
                    g.window_left = 35;
                    "drift"
                };
                g.window = Some(Truth { kind, id });
            }
        }
        if g.drift_left > 0 {
            g.shift[g.drift_feature] += g.drift_step;
            g.drift_left -= 1;
        }
        let season = (std::f64::consts::TAU * ts as f64 / DAY_MS + g.phase).sin();
        let mut values = BTreeMap::new();
        for f in 0..2 {
            let v = g.level[f]
                + g.amp[f] * season
                + g.shift[f]
                + spike[f]
                + g.sigma[f] * g.rng.next_gaussian();
            values.insert(FEATURES[f].to_string(), (v * 1000.0).round() / 1000.0);
        }
        let truth = if g.window_left > 0 {
            g.window_left -= 1;
            g.window.clone()
        } else {
            None
        };
        g.points += 1;
        Some(SimEvent {
            key: g.name.clone(),
            timestamp: ts,
            values,
            truth,
        })
    }
}

/// Produces the stream to Kafka until `count` events or `stop` fires.
pub fn run(args: SimulateArgs, stop: &std::sync::atomic::AtomicBool) -> anyhow::Result<u64> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &args.bootstrap_servers)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("client.id", "pynomaly-simulate");
    for (k, v) in &args.producer_properties {
        cc.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = cc.create()?;
    let avro = AvroCodec::new();
    let sim = Simulator::new(&args);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last_report = Instant::now();
    for ev in sim {
        if stop.load(std::sync::atomic::Ordering::Relaxed) || (args.count > 0 && sent >= args.count)
        {
            break;
        }
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate);
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let payload = match args.format {
            SimFormat::Json => ev.to_json(),
            SimFormat::Avro => ev.to_avro(&avro),
        };
        let mut record = BaseRecord::to(&args.topic)
            .key(ev.key.as_bytes())
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        sent += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                sent,
                rate = sent as f64 / started.elapsed().as_secs_f64(),
                "Simulating."
            );
            last_report = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn args(extra: &[&str]) -> SimulateArgs {
        let mut v = vec!["sim", "--start-ms", "0"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn same_seed_same_stream_and_anomalies_are_labelled() {
        let a: Vec<_> = Simulator::new(&args(&[])).take(20_000).collect();
        let b: Vec<_> = Simulator::new(&args(&[])).take(20_000).collect();
        assert_eq!(a, b);
        let c: Vec<_> = Simulator::new(&args(&["--seed", "7"])).take(100).collect();
        assert_ne!(a[..100], c[..]);
        let labelled = a.iter().filter(|e| e.truth.is_some()).count();
        assert!(labelled > 100, "{labelled} labelled points");
        // No anomalies during the quiet points of each key (50 keys × 60).
        assert!(a[..3000].iter().all(|e| e.truth.is_none()));
        let kinds: std::collections::HashSet<_> = a
            .iter()
            .filter_map(|e| e.truth.as_ref().map(|t| t.kind))
            .collect();
        assert_eq!(kinds.len(), 3);
    }
}
