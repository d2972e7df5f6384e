//! ns per update of every univariate detector, and serialized state bytes per key.
//!
//! Input shape: one feature, a daily sine of period 288 (5-minute data) plus
//! Gaussian noise and a spike every 1000 points; each detector is warmed up on
//! 5,000 points before timing, so windows, seasons and thresholds are full.
//! Two levels are timed:
//! * `detector/<name>`: the algorithm alone (`Model::update`), what the
//!   targets (EWMA ≤ 50 ns, MAD ≤ 500 ns) refer to;
//! * `keyed/<name>`: the whole per-key path the service runs
//!   (`KeyedDetector::update_into`: algorithm + SPOT threshold + warm-up and
//!   suppression bookkeeping), allocation-free.
//!
//! State bytes (`KeyedDetector::to_bytes`, versioned postcard) are printed
//! before the timings.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pynomaly_detection::detect::{
    Algorithm, DetectorSpec, KeyedDetector, Model, Score, SplitMix64, ThresholdMode,
};

const WARMUP_POINTS: usize = 5_000;
const SERIES: usize = 4_096;

fn series() -> Vec<f64> {
    let mut r = SplitMix64::new(42);
    (0..SERIES)
        .map(|t| {
            let season = (t as f64 * std::f64::consts::TAU / 288.0).sin() * 10.0;
            let spike = if t % 1000 == 999 { 40.0 } else { 0.0 };
            50.0 + season + r.next_gaussian() + spike
        })
        .collect()
}

fn spec(algorithm: Algorithm) -> DetectorSpec {
    DetectorSpec {
        algorithm,
        threshold: ThresholdMode::Spot,
        suppression: 200,
        ..DetectorSpec::default()
    }
}

fn benches(c: &mut Criterion) {
    let xs = series();
    let algorithms: Vec<Algorithm> = Algorithm::UNIVARIATE
        .iter()
        .copied()
        .chain([Algorithm::Ensemble, Algorithm::Auto])
        .collect();
    for &a in &algorithms {
        let mut d = KeyedDetector::new(&spec(a), 1, 1);
        for i in 0..WARMUP_POINTS {
            d.update(&[xs[i % SERIES]]);
        }
        println!(
            "state_bytes/{a}: {} bytes per key (1 feature)",
            d.to_bytes().len()
        );
    }
    let mut g = c.benchmark_group("detector");
    for &a in &algorithms {
        let s = spec(a);
        let mut m = Model::new(&s, 1, 1);
        let mut explain = Vec::with_capacity(1);
        for i in 0..WARMUP_POINTS {
            m.update(&[xs[i % SERIES]], 3.0, &mut explain);
        }
        let mut i = 0;
        g.bench_function(a.name(), |b| {
            b.iter(|| {
                i = (i + 1) % SERIES;
                black_box(m.update(&[black_box(xs[i])], 3.0, &mut explain))
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("keyed");
    for &a in &algorithms {
        let mut d = KeyedDetector::new(&spec(a), 1, 1);
        for i in 0..WARMUP_POINTS {
            d.update(&[xs[i % SERIES]]);
        }
        let mut out: Score = d.update(&[xs[0]]);
        let mut i = 0;
        g.bench_function(a.name(), |b| {
            b.iter(|| {
                i = (i + 1) % SERIES;
                d.update_into(&[black_box(xs[i])], &mut out);
                black_box(out.score)
            })
        });
    }
    g.finish();
}

criterion_group!(univariate, benches);
criterion_main!(univariate);
