//! Change detection for level shifts and drifts: two-sided CUSUM (Page 1954).
//!
//! The series is standardized against a slow, winsorized EWMA reference
//! (mean and standard deviation). Two cumulative sums collect standardized
//! deviations beyond the allowance `k` (in σ): `S⁺ = max(0, S⁺ + z − k)`,
//! `S⁻ = max(0, S⁻ − z − k)`. The raw score is `max(S⁺, S⁻)`: a one-off spike
//! of `z` scores about `z − k`, a persistent shift of `δ` σ accumulates
//! `δ − k` per point, so small shifts and slow drifts that a point-wise
//! z-score never flags cross the threshold after a few points.
//!
//! When the score crosses the threshold the change is accepted: the sums are
//! reset and the reference mean jumps to a fast EWMA of the recent values, so
//! one shift raises one alarm instead of an alarm on every later point.
//!
//! Cost: O(1), a dozen flops; state: 56 bytes per feature.

use serde::{Deserialize, Serialize};

use super::univariate::{Step, Univariate, SD_FLOOR_REL};

/// Allowance `k` in σ: tuned to detect shifts of about `2k = 1` σ fastest.
pub const DEFAULT_K: f64 = 0.5;
/// Reference (slow) smoothing factor: memory of about 200 points.
const SLOW_ALPHA: f64 = 0.01;
/// Fast smoothing factor for the post-change level: about 10 points.
const FAST_ALPHA: f64 = 0.2;
/// Points before the sums run (the reference is unreliable before).
const SETTLE: u32 = 10;

/// CUSUM state of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    k: f64,
    n: u32,
    mean: f64,
    var: f64,
    fast: f64,
    up: f64,
    down: f64,
}

impl Default for Cusum {
    fn default() -> Self {
        Self::new(DEFAULT_K)
    }
}

impl Cusum {
    /// A fresh detector with allowance `k` σ.
    pub fn new(k: f64) -> Self {
        Cusum {
            k: if k.is_finite() && k >= 0.0 {
                k
            } else {
                DEFAULT_K
            },
            n: 0,
            mean: 0.0,
            var: 0.0,
            fast: 0.0,
            up: 0.0,
            down: 0.0,
        }
    }

    /// Decision interval `h` whose in-control average run length is
    /// `1 / contamination` points for `k = 0.5`, from Siegmund's (1985)
    /// approximation `ARL ≈ (e^{2k(h+1.166)} − 2k(h+1.166) − 1) / 2k²`,
    /// per side, Bonferroni over two sides and `n_features`.
    pub fn prior_threshold(contamination: f64, n_features: usize) -> f64 {
        let c = (contamination / (2.0 * n_features.max(1) as f64)).clamp(1e-300, 0.5);
        // e^{h+1.166} ≈ ARL / 2 for k = 0.5 (the linear terms are negligible).
        ((0.5 / c).ln() - 1.166).max(1.0)
    }

    #[inline]
    fn sd(&self) -> f64 {
        self.var.sqrt().max(SD_FLOOR_REL * (1.0 + self.mean.abs()))
    }
}

impl Univariate for Cusum {
    fn step(&mut self, x: f64, threshold: f64) -> Step {
        if self.n == 0 {
            self.mean = x;
            self.fast = x;
            self.n = 1;
            return Step {
                raw: 0.0,
                expected: x,
                scale: 0.0,
            };
        }
        let sd = self.sd();
        let z = (x - self.mean) / sd;
        let z = z.clamp(-1e12, 1e12);
        let s = if self.n >= SETTLE {
            self.up = (self.up + z - self.k).max(0.0);
            self.down = (self.down - z - self.k).max(0.0);
            Step {
                raw: self.up.max(self.down),
                expected: self.mean,
                scale: sd,
            }
        } else {
            Step {
                raw: 0.0,
                expected: self.mean,
                scale: sd,
            }
        };
        self.fast += FAST_ALPHA * (x - self.fast);
        if s.raw > threshold {
            // Accept the change: restart from the recent level.
            self.up = 0.0;
            self.down = 0.0;
            self.mean = self.fast;
        } else {
            let alpha = SLOW_ALPHA.max(1.0 / (f64::from(self.n) + 1.0));
            let mut d = x - self.mean;
            if self.n >= SETTLE {
                let clip = 3.0 * sd;
                d = d.clamp(-clip, clip);
            }
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n = self.n.saturating_add(1);
        s
    }

    fn peek(&self, x: f64) -> Step {
        let sd = self.sd();
        let z = if self.n == 0 {
            0.0
        } else {
            ((x - self.mean) / sd).abs()
        };
        Step {
            raw: (z - self.k).max(0.0) + self.up.max(self.down),
            expected: self.mean,
            scale: sd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_shift_accumulates_and_alarms_once() {
        let mut d = Cusum::default();
        let mut r = crate::detect::SplitMix64::new(2);
        let h = Cusum::prior_threshold(0.005, 1);
        for _ in 0..500 {
            assert!(d.step(r.next_gaussian(), h).raw < 2.0 * h);
        }
        let mut alarms = 0;
        for _ in 0..200 {
            if d.step(1.5 + r.next_gaussian(), h).raw > h {
                alarms += 1;
            }
        }
        assert!((1..=3).contains(&alarms), "{alarms} alarms");
    }
}
