//! Windowed Gaussian: NAB's baseline detector, reproduced to calibrate the
//! evaluation harness.
//!
//! As in NAB's `windowedGaussian` detector: the first `window` points are
//! all kept and the mean and standard deviation are those of every point so
//! far; once the window is full, new points are buffered and every `step`
//! points the window slides forward by `step` and the statistics are
//! recomputed. The raw score is `|x - mean| / sd` (NAB reports the
//! monotone transform `1 - Q(|z|)`).
//!
//! Cost: amortized O(window / step) = 64 flops per point at NAB's defaults;
//! state: the whole window, 8 bytes per value (51 KB at NAB's 6400), so it is
//! a baseline, not a production detector.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::univariate::{Step, Univariate};

/// NAB's window size.
pub const DEFAULT_WINDOW: usize = 6400;
/// NAB's step size.
pub const DEFAULT_STEP: usize = 100;
/// NAB's floor on the standard deviation.
const SD_FLOOR: f64 = 1e-6;

/// Windowed Gaussian state of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedGaussian {
    window: u32,
    step: u32,
    data: VecDeque<f64>,
    buffer: Vec<f64>,
    /// Welford sum of squared deviations while the window fills.
    m2: f64,
    mean: f64,
    sd: f64,
}

impl WindowedGaussian {
    /// A fresh detector (`window >= step >= 1`).
    pub fn new(window: usize, step: usize) -> Self {
        let window = window.max(1);
        let step = step.clamp(1, window);
        WindowedGaussian {
            window: window as u32,
            step: step as u32,
            data: VecDeque::new(),
            buffer: Vec::new(),
            m2: 0.0,
            mean: 0.0,
            sd: 1.0,
        }
    }

    fn recompute(&mut self) {
        let n = self.data.len() as f64;
        let mean = self.data.iter().sum::<f64>() / n;
        let var = self
            .data
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / n;
        self.mean = mean;
        self.sd = var.sqrt();
        if self.sd == 0.0 || !self.sd.is_finite() {
            self.sd = SD_FLOOR;
        }
    }
}

impl Univariate for WindowedGaussian {
    fn step(&mut self, x: f64, _threshold: f64) -> Step {
        let s = self.peek(x);
        if self.data.len() < self.window as usize {
            self.data.push_back(x);
            // While the window fills, the statistics are those of every
            // point so far (Welford's update, O(1)).
            let n = self.data.len() as f64;
            if self.data.len() == 1 {
                self.mean = x;
                self.m2 = 0.0;
            } else {
                let d = x - self.mean;
                self.mean += d / n;
                self.m2 += d * (x - self.mean);
            }
            let sd = (self.m2 / n).sqrt();
            self.sd = if sd > 0.0 && sd.is_finite() {
                sd
            } else {
                SD_FLOOR
            };
        } else {
            self.buffer.push(x);
            if self.buffer.len() >= self.step as usize {
                let k = self.buffer.len();
                self.data.drain(..k);
                self.data.extend(self.buffer.drain(..));
                self.recompute();
            }
        }
        s
    }

    fn peek(&self, x: f64) -> Step {
        if self.data.is_empty() {
            return Step {
                raw: 0.0,
                expected: x,
                scale: 0.0,
            };
        }
        Step {
            raw: (x - self.mean).abs() / self.sd,
            expected: self.mean,
            scale: self.sd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_follow_the_sliding_window() {
        let mut d = WindowedGaussian::new(4, 2);
        for x in [1.0, 2.0, 3.0, 4.0] {
            d.step(x, 3.0);
        }
        assert!((d.mean - 2.5).abs() < 1e-12);
        d.step(5.0, 3.0);
        assert!((d.mean - 2.5).abs() < 1e-12, "no slide before a full step");
        d.step(6.0, 3.0);
        assert!((d.mean - 4.5).abs() < 1e-12);
    }
}
