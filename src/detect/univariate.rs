//! Running a univariate detector on every feature of a record.
//!
//! Univariate algorithms implement [`Univariate`] for one series; a
//! [`PerFeature`] holds one instance per feature and turns them into an
//! [`OnlineDetector`]: the raw score of a record is the largest per-feature
//! raw score (so one broken feature is enough to flag a record), and each
//! feature's explanation carries its own expected value, normal range and
//! share of the score.
//!
//! Inputs are sanitized here, once for every univariate algorithm: NaN is
//! treated as a missing value (scores 0, learns nothing), ±∞ scores as an
//! extreme outlier and is not learned, and finite values are clamped to
//! `±INPUT_CLAMP` so that sums of squares in the algorithms stay finite.

use serde::{Deserialize, Serialize};

use super::{FeatureExplanation, OnlineDetector};

/// Largest magnitude a detector learns: squares (1e300) still fit in an f64.
pub const INPUT_CLAMP: f64 = 1e150;

/// Relative floor on a univariate detector's scale, `SD_FLOOR_REL * (1 +
/// |level|)`: a constant series does not divide by zero, while a change of a
/// constant series still scores very high.
pub const SD_FLOOR_REL: f64 = 1e-9;

/// Largest raw score reported: a z-score of a trillion is "infinitely
/// anomalous"; capping keeps the quantile sketches' arithmetic finite.
pub const RAW_MAX: f64 = 1e12;

/// What one univariate step reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Step {
    /// Raw score, non-negative (z-score-like units for every algorithm here).
    pub raw: f64,
    /// The value the detector expected.
    pub expected: f64,
    /// Scale of the normal range: at raw threshold `t` it is `expected ± t * scale`.
    pub scale: f64,
}

/// One online algorithm over one series.
pub trait Univariate {
    /// Scores `x` (finite, `|x| <= INPUT_CLAMP`) against the state learned so
    /// far, then learns it. `threshold` is the raw threshold in force, which
    /// algorithms may use to winsorize what they learn.
    fn step(&mut self, x: f64, threshold: f64) -> Step;

    /// Scores a value that must not be learned (an infinite input).
    fn peek(&self, x: f64) -> Step;
}

/// One univariate detector per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerFeature<T> {
    features: Vec<T>,
}

impl<T: Clone> PerFeature<T> {
    /// `n_features` copies of `proto`.
    pub fn new(n_features: usize, proto: T) -> Self {
        PerFeature {
            features: vec![proto; n_features.max(1)],
        }
    }

    /// The per-feature detectors.
    pub fn features(&self) -> &[T] {
        &self.features
    }
}

/// Replaces a non-finite or negative raw score by a safe value.
#[inline]
pub fn sanitize_raw(raw: f64) -> f64 {
    if raw.is_nan() {
        0.0
    } else {
        raw.clamp(0.0, RAW_MAX)
    }
}

impl<T: Univariate> OnlineDetector for PerFeature<T> {
    fn update(&mut self, x: &[f64], threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        explain.clear();
        let mut raw: f64 = 0.0;
        let mut sum = 0.0;
        for (det, &xi) in self.features.iter_mut().zip(x) {
            let s = if xi.is_nan() {
                let mut s = det.peek(0.0);
                s.raw = 0.0;
                s
            } else if xi.is_infinite() {
                let mut s = det.peek(xi.clamp(-INPUT_CLAMP, INPUT_CLAMP));
                s.raw = RAW_MAX;
                s
            } else {
                det.step(xi.clamp(-INPUT_CLAMP, INPUT_CLAMP), threshold)
            };
            let r = sanitize_raw(s.raw);
            raw = raw.max(r);
            sum += r;
            let half = threshold * s.scale;
            let half = if half.is_finite() { half } else { f64::MAX };
            explain.push(FeatureExplanation {
                expected: s.expected,
                lower: s.expected - half,
                upper: s.expected + half,
                contribution: r,
            });
        }
        for e in explain.iter_mut() {
            e.contribution = if sum > 0.0 { e.contribution / sum } else { 0.0 };
        }
        raw
    }
}
