//! The in-process hot path of one record: decode JSON → score with the per-key
//! engine → encode the score record, over a simulated stream of 50 keys with
//! two features. Kafka I/O is measured end to end by `scripts/bench-e2e`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pynomaly_detection::codec::{Decoder, Encoder};
use pynomaly_detection::config::Config;
use pynomaly_detection::engine::Engine;
use pynomaly_detection::event::ScoreRecord;
use pynomaly_detection::simulate::{SimFormat, SimulateArgs, Simulator};

fn stream(n: usize) -> Vec<Vec<u8>> {
    let args = SimulateArgs {
        bootstrap_servers: String::new(),
        topic: String::new(),
        rate: 0.0,
        count: 0,
        keys: 50,
        anomaly_rate: 0.005,
        quiet_points: 60,
        step_ms: Some(60_000),
        start_ms: Some(1_700_000_000_000),
        seed: 42,
        format: SimFormat::Json,
        producer_properties: Vec::new(),
    };
    Simulator::new(&args).take(n).map(|e| e.to_json()).collect()
}

fn bench(c: &mut Criterion) {
    let config = Config::defaults();
    let records = stream(10_000);
    let decoder = Decoder::new(&config);
    let encoder = Encoder::new(&config);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for (name, algorithm) in [
        ("decode_only", None),
        (
            "decode_score_encode",
            Some(config.default_algorithm.clone()),
        ),
    ] {
        let mut cfg = config.clone();
        if let Some(a) = &algorithm {
            cfg.default_algorithm = a.clone();
        }
        let mut engine = Engine::new(cfg.detector_spec().expect("valid spec"));
        // Warm every key up so the measurement is the steady state.
        for r in &records {
            let e = decoder.decode(r).unwrap();
            engine
                .score(e.key.as_deref().unwrap().as_bytes(), &e.features)
                .unwrap();
        }
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = &records[i % records.len()];
                i += 1;
                let e = decoder.decode(r).unwrap();
                if algorithm.is_none() {
                    return e.features.len();
                }
                let key = e.key.as_deref().unwrap();
                let s = engine.score(key.as_bytes(), &e.features).unwrap();
                let rec = ScoreRecord::new(
                    key.to_string(),
                    0,
                    ("events", 0, i as i64),
                    "bench",
                    &e.features,
                    &s,
                );
                encoder.encode(&rec).len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
