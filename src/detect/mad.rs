//! Robust z-score: median and MAD of a sliding window.
//!
//! The detector keeps the last `window` values in a ring buffer plus a sorted
//! copy (rebuilt after a restore, never serialized). The raw score of a point
//! is `|x - median| / (MAD_K * MAD)`, robust to up to half of the window being
//! outliers. When more than half of the window is one value (MAD = 0, common
//! for integer or idle metrics) the scale falls back to an exponentially
//! weighted mean absolute deviation, so a constant series still scores a
//! change as large without dividing by zero.
//!
//! Cost per update: one binary search and two `memmove`s over the sorted
//! window, plus an O(window / 2) merge for the MAD: about 150 ns at the
//! default window of 64 (see `benches/univariate.rs`). State: 8 bytes per
//! value of the window.

use serde::{Deserialize, Serialize};

use super::univariate::{Step, Univariate};

/// Consistency constant: `MAD_K * MAD` estimates σ for normal data.
pub const MAD_K: f64 = 1.4826;

/// Consistency constant for the mean absolute deviation (√(π/2)).
const MEAN_ABS_K: f64 = 1.2533;

/// Default window: 64 points, enough for a stable median while staying
/// local to level changes of a few hours of 5-minute data.
pub const DEFAULT_WINDOW: usize = 64;

/// Smoothing of the fallback mean-absolute-deviation scale.
const ABS_DEV_ALPHA: f64 = 0.02;

/// Relative floor on the scale (see `ewma`).
const SCALE_FLOOR_REL: f64 = 1e-9;

/// Median/MAD state of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mad {
    window: u32,
    head: u32,
    ring: Vec<f64>,
    abs_dev: f64,
    #[serde(skip)]
    sorted: Vec<f64>,
}

impl PartialEq for Mad {
    fn eq(&self, other: &Self) -> bool {
        // `sorted` is a cache derived from `ring`.
        self.window == other.window
            && self.head == other.head
            && self.ring == other.ring
            && self.abs_dev.to_bits() == other.abs_dev.to_bits()
    }
}

impl Mad {
    /// A fresh detector over the last `window` points (at least 3).
    pub fn new(window: usize) -> Self {
        let window = window.clamp(3, 1 << 16);
        Mad {
            window: window as u32,
            head: 0,
            ring: Vec::with_capacity(window),
            abs_dev: 0.0,
            sorted: Vec::with_capacity(window),
        }
    }

    fn ensure_sorted(&mut self) {
        if self.sorted.len() != self.ring.len() {
            self.sorted.clear();
            self.sorted.extend_from_slice(&self.ring);
            self.sorted.sort_by(f64::total_cmp);
        }
    }

    fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            0.5 * (self.sorted[n / 2 - 1] + self.sorted[n / 2])
        }
    }

    /// Median absolute deviation by merging the two sorted runs of
    /// deviations on each side of the median (O(n / 2)).
    fn mad(&self, med: f64) -> f64 {
        let s = &self.sorted;
        let n = s.len();
        if n < 2 {
            return 0.0;
        }
        // Left run: indices below the split walking down; right run: walking up.
        let split = s.partition_point(|&v| v < med);
        let (mut l, mut r) = (split as isize - 1, split);
        let target = n / 2; // lower-median index of the deviations
        let mut last = 0.0;
        let mut prev = 0.0;
        for k in 0..=target {
            let dl = if l >= 0 {
                med - s[l as usize]
            } else {
                f64::INFINITY
            };
            let dr = if r < n { s[r] - med } else { f64::INFINITY };
            prev = last;
            if dl <= dr {
                last = dl;
                l -= 1;
            } else {
                last = dr;
                r += 1;
            }
            if k == target {
                break;
            }
        }
        if n % 2 == 0 {
            0.5 * (prev + last)
        } else {
            last
        }
    }

    #[inline]
    fn scale(&self, med: f64, mad: f64) -> f64 {
        (MAD_K * mad)
            .max(0.5 * MEAN_ABS_K * self.abs_dev)
            .max(SCALE_FLOOR_REL * (1.0 + med.abs()))
    }
}

impl Univariate for Mad {
    fn step(&mut self, x: f64, _threshold: f64) -> Step {
        self.ensure_sorted();
        let s = self.peek(x);
        // Learn: replace the oldest value of the window.
        if self.ring.len() < self.window as usize {
            self.ring.push(x);
        } else {
            let head = self.head as usize;
            let old = std::mem::replace(&mut self.ring[head], x);
            self.head = ((head + 1) % self.window as usize) as u32;
            let i = self.sorted.partition_point(|&v| v.total_cmp(&old).is_lt());
            if i < self.sorted.len() {
                self.sorted.remove(i);
            }
        }
        let j = self.sorted.partition_point(|&v| v.total_cmp(&x).is_lt());
        self.sorted.insert(j, x);
        if !self.ring.is_empty() {
            let dev = (x - s.expected).abs();
            if dev.is_finite() {
                self.abs_dev += ABS_DEV_ALPHA * (dev - self.abs_dev);
            }
        }
        s
    }

    fn peek(&self, x: f64) -> Step {
        if self.sorted.len() != self.ring.len() {
            // Only reachable on a restored state before its first step.
            let mut c = self.clone();
            c.ensure_sorted();
            return c.peek(x);
        }
        if self.sorted.is_empty() {
            return Step {
                raw: 0.0,
                expected: x,
                scale: 0.0,
            };
        }
        let med = self.median();
        let scale = self.scale(med, self.mad(med));
        Step {
            raw: (x - med).abs() / scale,
            expected: med,
            scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(values: &[f64]) -> (f64, f64) {
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                0.5 * (v[n / 2 - 1] + v[n / 2])
            }
        };
        let m = med(&mut values.to_vec());
        let d = med(&mut values.iter().map(|v| (v - m).abs()).collect());
        (m, d)
    }

    #[test]
    fn median_and_mad_match_brute_force() {
        let mut r = crate::detect::SplitMix64::new(5);
        let mut d = Mad::new(9);
        let mut all = Vec::new();
        for _ in 0..200 {
            let x = (r.next_f64() * 10.0).round();
            d.step(x, 3.0);
            all.push(x);
            let w = &all[all.len().saturating_sub(9)..];
            let (m, mad) = brute(w);
            assert_eq!(d.median(), m);
            assert_eq!(d.mad(d.median()), mad, "{w:?}");
        }
    }

    #[test]
    fn restored_state_rebuilds_its_sorted_window() {
        let mut d = Mad::new(8);
        for i in 0..20 {
            d.step(f64::from(i % 5), 3.0);
        }
        let bytes = postcard::to_stdvec(&d).unwrap();
        let mut e: Mad = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(d.step(7.0, 3.0), e.step(7.0, 3.0));
    }
}
