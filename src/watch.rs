//! `pynomaly watch`: follow the score topic and print anomalies for a person.

use std::io::Write;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::codec::avro::AvroCodec;
use crate::config::{Config, Format};
use crate::event::ScoreRecord;

/// Options of `pynomaly watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Score topic (default: the configured output topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Print every score, not only anomalies.
    #[arg(long)]
    pub all: bool,
    /// Start from the beginning of the topic instead of the end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many printed records (0 = until interrupted).
    #[arg(long, default_value_t = 0)]
    pub max: u64,
}

/// Follows the topic until interrupted or `max` lines.
pub fn run(
    args: WatchArgs,
    config: &Config,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| config.output_topic.clone());
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.kafka_bootstrap_servers)
        .set("group.id", format!("pynomaly-watch-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    for (k, v) in config.kafka_properties() {
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create()?;
    consumer.subscribe(&[&topic])?;
    let avro = AvroCodec::new();
    let format = config.output_format();
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    eprintln!(
        "watching {topic} ({}) — Ctrl-C to stop",
        if args.all {
            "all scores"
        } else {
            "anomalies only"
        }
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && (args.max == 0 || printed < args.max)
    {
        let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let payload = msg.payload().unwrap_or_default();
        let rec: Option<ScoreRecord> = match format {
            Format::Json => serde_json::from_slice(payload).ok(),
            Format::Avro => avro.decode_score(payload).ok(),
        };
        let Some(rec) = rec else { continue };
        if !args.all && !rec.is_anomaly {
            continue;
        }
        writeln!(out, "{}", describe(&rec))?;
        out.flush()?;
        printed += 1;
    }
    Ok(())
}

/// One readable line: time, key, score, and the most unusual feature.
pub fn describe(r: &ScoreRecord) -> String {
    let when = chrono::DateTime::from_timestamp_millis(r.timestamp)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| r.timestamp.to_string());
    let top = r
        .features
        .iter()
        .max_by(|a, b| a.1.contribution.total_cmp(&b.1.contribution))
        .map(|(name, f)| {
            format!(
                "{name}={:.3} expected {:.3} in [{:.3}, {:.3}]",
                f.value, f.expected, f.lower, f.upper
            )
        })
        .unwrap_or_default();
    let flag = if r.is_anomaly {
        "ANOMALY"
    } else if r.warming_up {
        "warming"
    } else {
        "normal "
    };
    format!(
        "{when}  {flag}  {:<14} score {:.2}  {top}  ({} {}/{}@{})",
        r.key, r.score, r.detector, r.topic, r.partition, r.offset
    )
}
