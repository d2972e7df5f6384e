//! Cost per update of the multivariate detectors, and their state per key.
//!
//! ```text
//! CARGO_TARGET_DIR=/var/tmp/pynomaly-target cargo bench --bench multivariate
//! ```
//!
//! Input shapes (documented so numbers are comparable across runs):
//! - `hst`: Half-Space Trees, 25 trees, depth 15, window 250, 8 Gaussian
//!   features (the issue's reference shape), and the default shape
//!   (24 trees, depth 12).
//! - `rcf`: Random Cut Forest, 50 trees, 256 samples, shingle 8 over a
//!   univariate noisy sine (8 dimensions), AWS RCF's reference shape.
//! - `loda`: LODA, 100 projections, 40 bins, 8 Gaussian features.
//!
//! Each detector is warmed up on 20,000 points first (trees full, windows
//! rotated), then timed on a cycle of fresh points, so the numbers are the
//! steady state, including the per-feature explanation. Before timing, the
//! bench prints the serialized state of one key (`KeyedDetector::to_bytes`:
//! model + calibrator + counters) after the warm-up.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pynomaly_detection::detect::hst::{HalfSpaceTrees, HstParams};
use pynomaly_detection::detect::loda::{Loda, LodaParams};
use pynomaly_detection::detect::rcf::{RandomCutForest, RcfParams};
use pynomaly_detection::detect::{
    Algorithm, DetectorSpec, FeatureExplanation, KeyedDetector, OnlineDetector, SplitMix64,
};

const WARMUP: usize = 20_000;
const CYCLE: usize = 4096;

fn gaussian_points(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|_| (0..d).map(|_| r.next_gaussian()).collect())
        .collect()
}

fn noisy_sine(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|i| vec![(i as f64 / 20.0).sin() + 0.1 * r.next_gaussian()])
        .collect()
}

/// Bytes of one key's snapshot after the warm-up.
fn state_bytes(algorithm: Algorithm, points: &[Vec<f64>]) -> usize {
    let spec = DetectorSpec {
        algorithm,
        ..DetectorSpec::default()
    };
    let d = points[0].len();
    let mut key = KeyedDetector::new(&spec, 7, d);
    for p in points {
        key.update(p);
    }
    key.to_bytes().len()
}

fn bench_one<D: OnlineDetector>(c: &mut Criterion, name: &str, mut det: D, points: &[Vec<f64>]) {
    let mut ex: Vec<FeatureExplanation> = Vec::new();
    for p in &points[..WARMUP] {
        det.update(p, 1.0, &mut ex);
    }
    let cycle = &points[WARMUP..];
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let p = &cycle[i % cycle.len()];
            i += 1;
            black_box(det.update(black_box(p), 1.0, &mut ex))
        })
    });
}

fn multivariate(c: &mut Criterion) {
    let gauss = gaussian_points(WARMUP + CYCLE, 8, 1);
    let sine = noisy_sine(WARMUP + CYCLE, 2);
    println!(
        "state bytes per key after {WARMUP} points: hst (default 24x12, d=8) {} | rcf (50x256, shingle 8) {} | loda (100 proj, d=8) {}",
        state_bytes(Algorithm::Hst, &gauss[..WARMUP]),
        state_bytes(Algorithm::Rcf, &sine[..WARMUP]),
        state_bytes(Algorithm::Loda, &gauss[..WARMUP]),
    );
    let hst = HstParams {
        trees: 25,
        depth: 15,
        ..HstParams::default()
    };
    bench_one(
        c,
        "hst/update 25 trees depth 15 d=8",
        HalfSpaceTrees::new(8, hst, 3),
        &gauss,
    );
    bench_one(
        c,
        "hst/update default (24 trees depth 12) d=8",
        HalfSpaceTrees::new(8, HstParams::default(), 3),
        &gauss,
    );
    let rcf = RcfParams {
        trees: 50,
        sample_size: 256,
        shingle: 8,
        ..RcfParams::default()
    };
    bench_one(
        c,
        "rcf/update 50 trees 256 samples shingle 8",
        RandomCutForest::new(1, rcf, 3),
        &sine,
    );
    bench_one(
        c,
        "loda/update 100 projections d=8",
        Loda::new(8, LodaParams::default(), 3),
        &gauss,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = multivariate
}
criterion_main!(benches);
