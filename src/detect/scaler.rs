//! Streaming per-feature statistics shared by the multivariate detectors.
//!
//! Scale handling must not look ahead, so every multivariate detector keeps a
//! [`FeatureStats`]: running minimum/maximum (for min–max scaling, as River's
//! `MinMaxScaler`) and Welford mean/variance (for z-scaling and for the
//! `expected`/`lower`/`upper` fields of the per-feature explanation). A point
//! is always scaled with the statistics of the points *before* it.
//!
//! Inputs are sanitized first: a non-finite value is replaced by the running
//! mean of its feature (0 before anything was seen), and magnitudes are
//! clamped to [`MAX_ABS`] so squares and ranges never overflow.

use serde::{Deserialize, Serialize};

use super::FeatureExplanation;

/// Largest magnitude a feature value keeps; larger ones are clamped. 1e100
/// squared is 1e200, so Welford sums and min–max ranges stay finite.
pub const MAX_ABS: f64 = 1e100;

/// Width of the `lower..upper` normal range in explanations, in running
/// standard deviations (3σ: the usual "unusual" band for roughly normal data).
pub const EXPLAIN_SD: f64 = 3.0;

/// Relative floor on a standard deviation or range, so a constant feature
/// does not divide by zero.
const SCALE_FLOOR_REL: f64 = 1e-12;

/// Running min, max, mean and variance of each feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    n: u64,
    min: Vec<f64>,
    max: Vec<f64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl FeatureStats {
    /// Empty statistics for `d` features.
    pub fn new(d: usize) -> Self {
        FeatureStats {
            n: 0,
            min: vec![0.0; d],
            max: vec![0.0; d],
            mean: vec![0.0; d],
            m2: vec![0.0; d],
        }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Points learned.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Writes the sanitized `x` into `out` (resized to [`Self::dim`]): missing
    /// trailing features and non-finite values become the running mean,
    /// magnitudes are clamped to [`MAX_ABS`].
    pub fn sanitize(&self, x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        for i in 0..self.dim() {
            let v = x.get(i).copied().unwrap_or(f64::NAN);
            out.push(if v.is_finite() {
                v.clamp(-MAX_ABS, MAX_ABS)
            } else {
                self.mean[i]
            });
        }
    }

    /// Learns a sanitized point.
    pub fn learn(&mut self, x: &[f64]) {
        self.n += 1;
        let first = self.n == 1;
        let inv_n = 1.0 / self.n as f64;
        for (i, &v) in x.iter().enumerate().take(self.dim()) {
            if first {
                self.min[i] = v;
                self.max[i] = v;
            } else {
                self.min[i] = self.min[i].min(v);
                self.max[i] = self.max[i].max(v);
            }
            let d = v - self.mean[i];
            self.mean[i] += d * inv_n;
            self.m2[i] += d * (v - self.mean[i]);
        }
    }

    /// Min–max scaling of feature `i` with the statistics so far: 0 at the
    /// running minimum, 1 at the running maximum; outside values extrapolate.
    #[inline]
    pub fn minmax(&self, i: usize, v: f64) -> f64 {
        let range = self.max[i] - self.min[i];
        if range > SCALE_FLOOR_REL * (1.0 + self.max[i].abs()) {
            (v - self.min[i]) / range
        } else {
            0.0
        }
    }

    /// Running standard deviation of feature `i` (0 before two points).
    pub fn sd(&self, i: usize) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2[i] / (self.n - 1) as f64).max(0.0).sqrt()
        }
    }

    /// z-scaling of feature `i`: `(v - mean) / sd`, with the standard
    /// deviation floored relative to the mean; 0 before two points.
    #[inline]
    pub fn zscore(&self, i: usize, v: f64) -> f64 {
        let sd = self.sd(i);
        let floor = SCALE_FLOOR_REL * (1.0 + self.mean[i].abs());
        if sd > floor {
            (v - self.mean[i]) / sd
        } else {
            0.0
        }
    }

    /// Fills `explain` with expected value and normal range (running mean ±
    /// [`EXPLAIN_SD`] sd) per feature, and contributions from `weights`
    /// normalized to sum to 1 (all zero when the weights sum to zero).
    pub fn explain(&self, weights: &[f64], explain: &mut Vec<FeatureExplanation>) {
        explain.clear();
        let total: f64 = weights.iter().filter(|w| w.is_finite()).sum();
        for i in 0..self.dim() {
            let sd = self.sd(i);
            let w = weights.get(i).copied().unwrap_or(0.0);
            let contribution = if total > 0.0 && w.is_finite() && w > 0.0 {
                (w / total).clamp(0.0, 1.0)
            } else {
                0.0
            };
            explain.push(FeatureExplanation {
                expected: self.mean[i],
                lower: self.mean[i] - EXPLAIN_SD * sd,
                upper: self.mean[i] + EXPLAIN_SD * sd,
                contribution,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_scales_without_overflow() {
        let mut s = FeatureStats::new(2);
        let mut buf = Vec::new();
        for x in [[1.0, f64::NAN], [3.0, f64::MAX], [2.0, -f64::INFINITY]] {
            s.sanitize(&x, &mut buf);
            assert!(buf.iter().all(|v| v.is_finite()));
            s.learn(&buf);
        }
        assert_eq!(s.minmax(0, 2.0), 0.5);
        assert!((s.zscore(0, 3.0) - 1.0).abs() < 1e-12);
        assert!(s.zscore(1, 0.0).is_finite() && s.minmax(1, 5.0).is_finite());
        let mut ex = Vec::new();
        s.explain(&[1.0, 3.0], &mut ex);
        assert_eq!(ex.len(), 2);
        assert!((ex[0].contribution + ex[1].contribution - 1.0).abs() < 1e-12);
    }
}
