//! Thresholds from the contamination rate, and calibrated scores.
//!
//! The threshold is the larger of the detector's null-model threshold for the
//! contamination rate (the raw score that normal data exceeds with probability
//! `contamination`) and, once enough points have been seen, the empirical
//! `1 - contamination` quantile of the key's own raw scores, tracked in O(1)
//! by the P² algorithm (Jain & Chlamtac 1985). The empirical term keeps the
//! alarm rate near the contamination rate on heavy-tailed data.
//!
//! The calibrated score maps the raw score through `raw / (raw + threshold)`:
//! monotone, in `[0, 1)`, and exactly 0.5 at the threshold, so `score >= 0.5`
//! means "flagged" for every detector.

use serde::{Deserialize, Serialize};

use super::spot::Spot;
use super::Contamination;

/// How a key's raw-score threshold is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// `max(null-model threshold, empirical 1 - contamination quantile)`.
    #[default]
    Quantile,
    /// `max(null-model threshold, SPOT extreme-value threshold)`, see [`Spot`].
    Spot,
}

impl std::str::FromStr for ThresholdMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quantile" => Ok(ThresholdMode::Quantile),
            "spot" | "dspot" | "evt" => Ok(ThresholdMode::Spot),
            other => Err(format!(
                "unknown threshold mode `{other}`; expected quantile or spot"
            )),
        }
    }
}

/// P² streaming quantile estimator (five markers, O(1) memory and time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct P2Quantile {
    p: f64,
    n: u64,
    q: [f64; 5],
    pos: [f64; 5],
    want: [f64; 5],
    inc: [f64; 5],
}

impl P2Quantile {
    /// Tracks the `p` quantile, `0 < p < 1`.
    pub fn new(p: f64) -> Self {
        P2Quantile {
            p,
            n: 0,
            q: [0.0; 5],
            pos: [1.0, 2.0, 3.0, 4.0, 5.0],
            want: [1.0, 1.0 + 2.0 * p, 1.0 + 4.0 * p, 3.0 + 2.0 * p, 5.0],
            inc: [0.0, p / 2.0, p, (1.0 + p) / 2.0, 1.0],
        }
    }

    /// Points observed.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Adds one finite observation (non-finite ones are ignored).
    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n < 5 {
            self.q[self.n as usize] = x;
            self.n += 1;
            if self.n == 5 {
                self.q.sort_by(f64::total_cmp);
            }
            return;
        }
        self.n += 1;
        let k = if x < self.q[0] {
            self.q[0] = x;
            0
        } else if x >= self.q[4] {
            self.q[4] = x;
            3
        } else {
            (0..4).find(|&i| x < self.q[i + 1]).unwrap_or(3)
        };
        for i in (k + 1)..5 {
            self.pos[i] += 1.0;
        }
        for i in 0..5 {
            self.want[i] += self.inc[i];
        }
        for i in 1..4 {
            let d = self.want[i] - self.pos[i];
            if (d >= 1.0 && self.pos[i + 1] - self.pos[i] > 1.0)
                || (d <= -1.0 && self.pos[i - 1] - self.pos[i] < -1.0)
            {
                let s = d.signum();
                let qp = self.parabolic(i, s);
                self.q[i] = if self.q[i - 1] < qp && qp < self.q[i + 1] {
                    qp
                } else {
                    self.linear(i, s)
                };
                self.pos[i] += s;
            }
        }
    }

    fn parabolic(&self, i: usize, s: f64) -> f64 {
        let (q, n) = (&self.q, &self.pos);
        q[i] + s / (n[i + 1] - n[i - 1])
            * ((n[i] - n[i - 1] + s) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                + (n[i + 1] - n[i] - s) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
    }

    fn linear(&self, i: usize, s: f64) -> f64 {
        let j = if s > 0.0 { i + 1 } else { i - 1 };
        self.q[i] + s * (self.q[j] - self.q[i]) / (self.pos[j] - self.pos[i])
    }

    /// The current estimate (`None` before five observations).
    pub fn estimate(&self) -> Option<f64> {
        if self.n < 5 {
            return None;
        }
        Some(self.q[2])
    }

    /// The quantile this estimator tracks.
    pub fn p(&self) -> f64 {
        self.p
    }
}

/// Turns raw scores into a threshold and a calibrated score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    contamination: f64,
    prior: f64,
    quantile: P2Quantile,
    spot: Option<Spot>,
}

impl Calibrator {
    /// A calibrator with the detector's null-model threshold `prior`.
    pub fn new(contamination: Contamination, prior: f64, mode: ThresholdMode) -> Self {
        Calibrator {
            contamination: contamination.get(),
            prior: if prior.is_finite() && prior > 0.0 {
                prior
            } else {
                1.0
            },
            quantile: P2Quantile::new(1.0 - contamination.get()),
            spot: match mode {
                ThresholdMode::Quantile => None,
                ThresholdMode::Spot => Some(Spot::new(contamination.get())),
            },
        }
    }

    /// Points needed before the empirical quantile is trusted: enough to
    /// expect a few dozen points in the tail.
    fn min_points(&self) -> u64 {
        (20.0 / self.contamination).ceil() as u64
    }

    /// The raw-score threshold in force now.
    pub fn threshold(&self) -> f64 {
        if let Some(spot) = &self.spot {
            return spot.threshold().map_or(self.prior, |z| self.prior.max(z));
        }
        match self.quantile.estimate() {
            Some(q) if self.quantile.count() >= self.min_points() => self.prior.max(q),
            _ => self.prior,
        }
    }

    /// Learns one raw score.
    pub fn observe(&mut self, raw: f64) {
        match &mut self.spot {
            Some(spot) => spot.observe(raw),
            None => self.quantile.observe(raw),
        }
    }

    /// Maps a raw score to `[0, 1]`, 0.5 at the threshold.
    pub fn calibrate(raw: f64, threshold: f64) -> f64 {
        if threshold <= 0.0 || !threshold.is_finite() {
            return if raw > 0.0 { 1.0 } else { 0.0 };
        }
        let s = raw / (raw + threshold);
        if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::SplitMix64;

    #[test]
    fn p2_tracks_a_high_quantile_of_uniform_data() {
        let mut q = P2Quantile::new(0.99);
        let mut r = SplitMix64::new(9);
        for _ in 0..100_000 {
            q.observe(r.next_f64());
        }
        let est = q.estimate().unwrap();
        assert!((est - 0.99).abs() < 0.005, "estimate {est}");
    }

    #[test]
    fn calibrated_score_is_half_at_threshold_and_bounded() {
        assert_eq!(Calibrator::calibrate(3.0, 3.0), 0.5);
        assert!(Calibrator::calibrate(f64::MAX, 3.0) <= 1.0);
        assert_eq!(Calibrator::calibrate(0.0, 3.0), 0.0);
        assert!(Calibrator::calibrate(2.0, 3.0) < 0.5);
    }
}
