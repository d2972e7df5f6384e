//! The null detector: every point scores 0 and nothing is ever flagged.
//!
//! NAB's "null" baseline, and the way to measure the pipeline with detection
//! switched off (`PYNOMALY_DEFAULT_ALGORITHM=null`, plus
//! `PYNOMALY_MULTIVARIATE_ALGORITHM=null` or `PYNOMALY_MULTIVARIATE_MIN_FEATURES=0`
//! when records have 3 or more features): records are still decoded, keyed,
//! checkpointed and published, only the scoring work is skipped.

use serde::{Deserialize, Serialize};

use super::{FeatureExplanation, OnlineDetector};

/// Stateless null detector (the struct exists so snapshots keep one shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NullDetector;

impl OnlineDetector for NullDetector {
    fn update(&mut self, x: &[f64], _threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        explain.clear();
        explain.extend(x.iter().map(|&v| FeatureExplanation {
            expected: if v.is_finite() { v } else { 0.0 },
            lower: if v.is_finite() { v } else { 0.0 },
            upper: if v.is_finite() { v } else { 0.0 },
            contribution: 0.0,
        }));
        0.0
    }
}
