//! AutoML: each key picks its own detector from its warm-up data.
//!
//! During selection (the first `max(warmup, MIN_SELECTION)` points of a key)
//! every candidate ([`CANDIDATES`]) runs side by side, each with its own
//! calibration. Then the key keeps the candidate with the best unsupervised
//! **Mass-Volume** criterion (Clémençon & Jakubowicz 2013; Goix 2016) and
//! drops the others, so after selection it costs exactly one detector.
//!
//! Mass-Volume for a streaming predictor: the normal range a detector gives
//! for a point is `expected ± r · scale`. Take `r = q`, the [`MASS`] quantile
//! of the candidate's own raw scores over the second half of the selection
//! period: the ranges then hold that share of the warm-up points (equal mass
//! for every candidate). The candidate whose ranges are *narrowest* on
//! average — smallest `ln q + mean ln scale`, summed over features — models
//! the key's normal behaviour most sharply, and will see anomalies as the
//! most surprising. The first half of the selection period is ignored so that
//! candidates with longer memories are not judged on their cold start. Ties go
//! to the earlier candidate in the list.
//!
//! Until selection, the output is that of the candidate currently leading.
//! Scores are reported relative to the chosen candidate's own threshold, as
//! in [`super::ensemble`].

use serde::{Deserialize, Serialize};

use super::calibrate::P2Quantile;
use super::ensemble::Member;
use super::{Algorithm, DetectorSpec, FeatureExplanation, OnlineDetector};

/// Candidates, cheapest first (ties favour them).
pub const CANDIDATES: &[Algorithm] = &[
    Algorithm::Ewma,
    Algorithm::Mad,
    Algorithm::Seasonal,
    Algorithm::Cusum,
];
/// Shortest selection period: seasonal candidates need a few hundred points
/// before their period is found.
pub const MIN_SELECTION: u64 = 600;
/// Share of warm-up points inside the compared normal ranges.
pub const MASS: f64 = 0.95;

/// A candidate and its Mass-Volume statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Candidate {
    member: Member,
    mass_level: P2Quantile,
    log_scale_sum: f64,
    count: u64,
}

impl Candidate {
    fn log_volume(&self, n_features: usize) -> f64 {
        let q = self.mass_level.estimate().unwrap_or(f64::MAX).max(1e-12);
        let mean_log_scale = if self.count > 0 {
            self.log_scale_sum / self.count as f64
        } else {
            f64::MAX
        };
        n_features as f64 * q.ln() + mean_log_scale
    }
}

/// AutoML state of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoMl {
    candidates: Vec<Candidate>,
    seen: u64,
    select_after: u64,
    n_features: u32,
    leader: u32,
}

impl AutoMl {
    /// Selection over [`CANDIDATES`] (plus `spec.algorithm` when it is another
    /// plain detector), deciding after `max(spec.warmup, MIN_SELECTION)` points.
    pub fn new(spec: &DetectorSpec, seed: u64, n_features: usize) -> Self {
        let mut algorithms = CANDIDATES.to_vec();
        if let Some(extra) = spec.extra_member().filter(|a| !algorithms.contains(a)) {
            algorithms.push(extra);
        }
        let candidates = algorithms
            .iter()
            .enumerate()
            .map(|(i, &a)| Candidate {
                member: Member::new(a, spec, seed.wrapping_add(i as u64), n_features),
                mass_level: P2Quantile::new(MASS),
                log_scale_sum: 0.0,
                count: 0,
            })
            .collect();
        AutoMl {
            candidates,
            seen: 0,
            select_after: u64::from(spec.warmup).max(MIN_SELECTION),
            n_features: n_features.max(1) as u32,
            leader: 0,
        }
    }

    /// The chosen algorithm, once selection is over.
    pub fn chosen(&self) -> Option<Algorithm> {
        (self.candidates.len() == 1).then(|| self.candidates[0].member.algorithm)
    }

    fn best(&self) -> usize {
        let n = self.n_features as usize;
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.candidates.iter().enumerate() {
            let v = c.log_volume(n);
            if v < best.1 {
                best = (i, v);
            }
        }
        best.0
    }
}

impl OnlineDetector for AutoMl {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        self.seen += 1;
        if self.candidates.len() == 1 {
            return self.candidates[0].member.update(x, explain).0;
        }
        let judge = self.seen > self.select_after / 2;
        let leader = self.leader as usize;
        let mut out = 0.0;
        let mut tmp = Vec::new();
        for (i, c) in self.candidates.iter_mut().enumerate() {
            let threshold = c.member.calibrator.threshold();
            let (r, raw) = c.member.update(x, &mut tmp);
            if judge {
                c.mass_level.observe(raw);
                let log_scale: f64 = tmp
                    .iter()
                    .map(|e| {
                        let scale = (e.upper - e.lower) / (2.0 * threshold);
                        if scale.is_finite() && scale > 0.0 {
                            scale.ln()
                        } else {
                            0.0
                        }
                    })
                    .sum();
                c.log_scale_sum += log_scale;
                c.count += 1;
            }
            if i == leader {
                out = r;
                std::mem::swap(explain, &mut tmp);
            }
        }
        if judge {
            self.leader = self.best() as u32;
        }
        if self.seen >= self.select_after {
            let keep = self.best();
            let chosen = self.candidates.swap_remove(keep);
            self.candidates = vec![chosen];
        }
        out
    }
}
