//! LODA, Lightweight On-line Detector of Anomalies (Pevný, Machine Learning
//! 102, 2016): an ensemble of one-dimensional histograms on sparse random
//! projections.
//!
//! # Model
//! Each feature is z-scaled with the running mean and standard deviation of
//! the points before it (no look-ahead). Each of `projections` projections
//! takes `⌈√d⌉` random features with standard normal weights (Pevný's sparse
//! projections), normalized so the projection of independent unit-variance
//! features has unit variance. Each projection keeps a histogram of fixed-width
//! bins over `[-RANGE, RANGE]` plus two overflow bins, with exponentially
//! decaying counts (memory of about `window` points), which is the streaming
//! variant of the paper's alternating pair of histograms.
//!
//! # Score
//! Per projection, the negative log of the smoothed probability of the point's
//! bin, `-ln((c + a) / (total + a · bins))`; beyond the range a Gaussian tail
//! penalty `(|v| - RANGE)² / 2` is added so extreme values keep ranking above
//! merely unusual ones. The raw score is the mean over projections:
//! non-negative, about `ln(bins)` for a typical point.
//!
//! # Explanation
//! Each projection's score is split across its features in proportion to
//! `|weight · z|`, then summed and normalized.

use serde::{Deserialize, Serialize};

use super::scaler::FeatureStats;
use super::{FeatureExplanation, OnlineDetector, SplitMix64};

/// Default projections: 100, where Pevný's experiments show AUC has
/// converged for data of tens of features.
pub const DEFAULT_PROJECTIONS: u32 = 100;
/// Default memory: about 2,048 points (a decay of `1 / 2048` per point).
pub const DEFAULT_WINDOW: u32 = 2048;
/// Default bins inside `[-RANGE, RANGE]`: 40, bins of 0.3 standard deviations.
pub const DEFAULT_BINS: u32 = 40;
/// Half-width of the histogram range, in projected standard deviations.
const RANGE: f64 = 6.0;
/// Pseudo-count per bin (Laplace smoothing), so empty bins have finite score.
const PSEUDO: f64 = 0.5;
/// Rescale the decaying counts when the increment grows past this.
const RESCALE_AT: f64 = 1e100;

/// Validated LODA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LodaParams {
    /// Number of random projections.
    pub projections: u32,
    /// Memory of the histograms, in points.
    pub window: u32,
    /// Bins per histogram inside the range.
    pub bins: u32,
}

impl Default for LodaParams {
    fn default() -> Self {
        LodaParams {
            projections: DEFAULT_PROJECTIONS,
            window: DEFAULT_WINDOW,
            bins: DEFAULT_BINS,
        }
    }
}

impl LodaParams {
    /// Checks ranges: `1..=10000` projections, window `>= 2`, bins `2..=10000`.
    pub fn validate(self) -> Result<Self, String> {
        if !(1..=10_000).contains(&self.projections) {
            return Err(format!(
                "loda projections must be in 1..=10000, got {}",
                self.projections
            ));
        }
        if self.window < 2 {
            return Err(format!("loda window must be >= 2, got {}", self.window));
        }
        if !(2..=10_000).contains(&self.bins) {
            return Err(format!("loda bins must be in 2..=10000, got {}", self.bins));
        }
        Ok(self)
    }

    /// Null-model threshold floor: a point whose bins hold about a share
    /// `1 / (4 · bins)` of the mass in the typical projection, i.e. four times
    /// rarer than a uniform spread; the empirical quantile decides above it.
    pub fn prior_threshold(self) -> f64 {
        (4.0 * f64::from(self.bins)).ln()
    }
}

/// LODA detector state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loda {
    params: LodaParams,
    stats: FeatureStats,
    /// Features of each projection, `per` entries per projection.
    features: Vec<u32>,
    /// Weights matching `features`.
    weights: Vec<f64>,
    per: u32,
    /// `bins + 2` counts per projection (underflow, bins, overflow), scaled
    /// by `1 / inc`.
    counts: Vec<f64>,
    /// Total count (same scale).
    total: f64,
    /// Current increment: grows by `1 / (1 - 1/window)` per point, which
    /// decays older counts relative to new ones without touching them.
    inc: f64,
    #[serde(skip)]
    scratch: Box<Scratch>,
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    clean: Vec<f64>,
    z: Vec<f64>,
    credit: Vec<f64>,
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Loda {
    /// A fresh detector for `d` features; `params` must be validated.
    pub fn new(d: usize, params: LodaParams, seed: u64) -> Self {
        let d = d.max(1);
        let per = (d as f64).sqrt().ceil() as usize;
        let mut rng = SplitMix64::new(seed);
        let k = params.projections as usize;
        let mut features = Vec::with_capacity(k * per);
        let mut weights = Vec::with_capacity(k * per);
        let mut pick = Vec::with_capacity(per);
        for _ in 0..k {
            // `per` distinct features (rejection: per <= sqrt(d) + 1 of d).
            pick.clear();
            while pick.len() < per.min(d) {
                let f = rng.next_below(d as u64) as u32;
                if !pick.contains(&f) {
                    pick.push(f);
                }
            }
            pick.sort_unstable();
            let w: Vec<f64> = pick.iter().map(|_| rng.next_gaussian()).collect();
            let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            for (f, wi) in pick.iter().zip(&w) {
                features.push(*f);
                weights.push(wi / norm);
            }
        }
        Loda {
            params,
            stats: FeatureStats::new(d),
            features,
            weights,
            per: per.min(d) as u32,
            counts: vec![0.0; k * (params.bins as usize + 2)],
            total: 0.0,
            inc: 1.0,
            scratch: Box::default(),
        }
    }
}

impl OnlineDetector for Loda {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        let d = self.stats.dim();
        let mut sc = std::mem::take(&mut self.scratch);
        self.stats.sanitize(x, &mut sc.clean);
        sc.z.clear();
        sc.z.extend((0..d).map(|i| self.stats.zscore(i, sc.clean[i])));
        sc.credit.clear();
        sc.credit.resize(d, 0.0);

        let bins = self.params.bins as usize;
        let stride = bins + 2;
        let per = self.per as usize;
        let width = 2.0 * RANGE / bins as f64;
        let pseudo = PSEUDO * self.inc;
        let ln_norm = (self.total + pseudo * stride as f64).ln();
        let mut sum = 0.0;
        let k = self.params.projections as usize;
        for p in 0..k {
            let fs = &self.features[p * per..(p + 1) * per];
            let ws = &self.weights[p * per..(p + 1) * per];
            let mut v = 0.0;
            for (f, w) in fs.iter().zip(ws) {
                v += w * sc.z[*f as usize];
            }
            let b = if v < -RANGE {
                0
            } else if v >= RANGE {
                bins + 1
            } else {
                1 + (((v + RANGE) / width) as usize).min(bins - 1)
            };
            let c = &mut self.counts[p * stride + b];
            let mut s = ln_norm - (*c + pseudo).ln();
            let beyond = v.abs() - RANGE;
            if beyond > 0.0 {
                s += 0.5 * beyond * beyond;
            }
            let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
            sum += s;
            // Learn (prequential: this projection's score is already taken).
            *c += self.inc;
            // Attribution: the projection's score by |w z| share.
            let mass: f64 = fs
                .iter()
                .zip(ws)
                .map(|(f, w)| (w * sc.z[*f as usize]).abs())
                .sum();
            if mass > 0.0 && s > 0.0 {
                for (f, w) in fs.iter().zip(ws) {
                    sc.credit[*f as usize] += s * (w * sc.z[*f as usize]).abs() / mass;
                }
            }
        }
        self.total += self.inc;
        self.inc /= 1.0 - 1.0 / f64::from(self.params.window);
        if self.inc > RESCALE_AT {
            let r = 1.0 / self.inc;
            self.counts.iter_mut().for_each(|c| *c *= r);
            self.total *= r;
            self.inc = 1.0;
        }
        let raw = sum / k.max(1) as f64;
        self.stats.explain(&sc.credit, explain);
        self.stats.learn(&sc.clean);
        self.scratch = sc;
        if raw.is_finite() {
            raw
        } else {
            f64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::detect::raw_scores as run;

    fn blob(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let a = r.next_gaussian();
                vec![
                    a,
                    10.0 + a + 0.1 * r.next_gaussian(),
                    r.next_f64(),
                    r.next_gaussian(),
                ]
            })
            .collect()
    }

    #[test]
    fn flags_an_obvious_outlier_and_explains_it() {
        let mut d = Loda::new(4, LodaParams::default(), 1);
        let normal = run(&mut d, &blob(3000, 2));
        let mut ex = Vec::new();
        let out = d.update(&[0.0, 10.0, 0.5, 30.0], 0.0, &mut ex);
        let max = normal[1000..].iter().cloned().fold(0.0, f64::max);
        assert!(out > max, "outlier {out} vs max normal {max}");
        let total: f64 = ex.iter().map(|e| e.contribution).sum();
        assert!((total - 1.0).abs() < 1e-9, "{ex:?}");
        assert!(ex[3].contribution > 0.5, "{ex:?}");
    }

    #[test]
    fn snapshot_restore_continue_identical_and_seeded() {
        let pts = blob(3000, 3);
        let mut a = Loda::new(4, LodaParams::default(), 9);
        let mut b = Loda::new(4, LodaParams::default(), 9);
        let sa = run(&mut a, &pts[..1000]);
        assert_eq!(sa, run(&mut b, &pts[..1000]));
        let bytes = postcard::to_stdvec(&b).unwrap();
        let mut b: Loda = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(run(&mut a, &pts[1000..]), run(&mut b, &pts[1000..]));
        let mut c = Loda::new(4, LodaParams::default(), 10);
        assert_ne!(sa, run(&mut c, &pts[..1000]));
    }

    #[test]
    fn survives_hostile_input_and_long_streams() {
        let params = LodaParams {
            window: 16,
            ..LodaParams::default()
        };
        let mut d = Loda::new(2, params, 5);
        let mut r = SplitMix64::new(1);
        let mut ex = Vec::new();
        for i in 0..50_000 {
            let x = match i % 97 {
                0 => [f64::NAN, f64::INFINITY],
                1 => [f64::MAX, -f64::MAX],
                2 => [1e-310, 0.0],
                _ => [r.next_f64(), r.next_gaussian()],
            };
            let s = d.update(&x, 0.0, &mut ex);
            assert!(s.is_finite() && s >= 0.0, "{s}");
            assert!(ex.iter().all(|e| e.contribution.is_finite()));
        }
        assert!(LodaParams { bins: 1, ..params }.validate().is_err());
    }
}
