//! Ensembles: the calibrated scores of several detectors, combined.
//!
//! Every member keeps its own [`Calibrator`], so its raw score is read
//! relative to its own threshold: `r_m = raw_m / threshold_m` is 1 exactly at
//! the member's threshold and `r_m / (1 + r_m)` is its calibrated score. The
//! ensemble's raw score is the largest `r_m` (a point is as anomalous as the
//! most surprised member says: spikes from the z-scores, shifts from CUSUM,
//! broken seasons from Holt–Winters), so it too is 1 at "some member would
//! flag this", and the keyed detector's own calibrator sets the final
//! threshold from the contamination rate. The explanation is that of the
//! member with the largest `r_m`.
//!
//! Members ([`DEFAULT_MEMBERS`]) are the cheap univariate detectors; when the
//! configured algorithm is another one (e.g. a multivariate detector) it is
//! added as a member.

use serde::{Deserialize, Serialize};

use super::{Algorithm, Calibrator, DetectorSpec, FeatureExplanation, Model, OnlineDetector};

/// Members of the default ensemble.
pub const DEFAULT_MEMBERS: &[Algorithm] = &[Algorithm::Ewma, Algorithm::Seasonal, Algorithm::Cusum];

/// One member: a model and its own calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// Its state.
    pub model: Model,
    /// Its threshold.
    pub calibrator: Calibrator,
}

impl Member {
    /// A fresh member running `algorithm` under `spec`'s other settings.
    pub fn new(algorithm: Algorithm, spec: &DetectorSpec, seed: u64, n_features: usize) -> Self {
        let spec = DetectorSpec {
            algorithm,
            ..spec.clone()
        };
        Member {
            algorithm,
            model: Model::new(&spec, seed, n_features),
            calibrator: Calibrator::new(
                spec.contamination,
                Model::prior_threshold(&spec, n_features),
                spec.threshold,
            ),
        }
    }

    /// Scores then learns `x`; returns the score relative to the member's
    /// threshold and the raw score.
    pub fn update(&mut self, x: &[f64], explain: &mut Vec<FeatureExplanation>) -> (f64, f64) {
        let threshold = self.calibrator.threshold();
        let raw = super::univariate::sanitize_raw(self.model.update(x, threshold, explain));
        self.calibrator.observe(raw);
        (super::univariate::sanitize_raw(raw / threshold), raw)
    }
}

/// Ensemble state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    members: Vec<Member>,
}

impl Ensemble {
    /// The default members, plus `spec.algorithm` if it is not an ensemble
    /// or AutoML itself and not already a member.
    pub fn new(spec: &DetectorSpec, seed: u64, n_features: usize) -> Self {
        let mut algorithms = DEFAULT_MEMBERS.to_vec();
        if !matches!(spec.algorithm, Algorithm::Ensemble | Algorithm::Auto)
            && !algorithms.contains(&spec.algorithm)
        {
            algorithms.push(spec.algorithm);
        }
        Self::with_members(&algorithms, spec, seed, n_features)
    }

    /// An ensemble of the given algorithms (which must not be ensembles or AutoML).
    pub fn with_members(
        algorithms: &[Algorithm],
        spec: &DetectorSpec,
        seed: u64,
        n_features: usize,
    ) -> Self {
        let members = algorithms
            .iter()
            .filter(|a| !matches!(a, Algorithm::Ensemble | Algorithm::Auto))
            .enumerate()
            .map(|(i, &a)| Member::new(a, spec, seed.wrapping_add(i as u64), n_features))
            .collect();
        Ensemble { members }
    }

    /// The members' algorithms.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.members.iter().map(|m| m.algorithm)
    }
}

impl OnlineDetector for Ensemble {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        let mut best = 0.0;
        let mut tmp = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if i == 0 {
                best = m.update(x, explain).0;
            } else {
                let (r, _) = m.update(x, &mut tmp);
                if r > best {
                    best = r;
                    std::mem::swap(explain, &mut tmp);
                }
            }
        }
        best
    }
}
