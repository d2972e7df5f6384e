//! The event and score types the rest of the code speaks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A decoded input record, before feature extraction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Entity key from the record body, if any.
    pub key: Option<String>,
    /// Event time in epoch milliseconds, if the record carries one.
    pub timestamp_ms: Option<i64>,
    /// Features, `(name, value)` in a stable order.
    pub features: Vec<(String, f64)>,
}

/// Per-feature part of a score record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureScore {
    /// The observed value.
    pub value: f64,
    /// What the detector expected.
    pub expected: f64,
    /// Lower edge of the normal range.
    pub lower: f64,
    /// Upper edge of the normal range.
    pub upper: f64,
    /// Share of the score due to this feature.
    pub contribution: f64,
}

/// One output record (mirrors `schemas/anomaly.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// Entity key.
    pub key: String,
    /// Event time, epoch ms.
    pub timestamp: i64,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Calibrated score in `[0, 1]`.
    pub score: f64,
    /// Raw detector score.
    pub raw_score: f64,
    /// Raw threshold in force.
    pub threshold: f64,
    /// Flagged?
    pub is_anomaly: bool,
    /// Algorithm name.
    pub detector: String,
    /// Key still warming up.
    pub warming_up: bool,
    /// Per-feature explanation.
    pub features: BTreeMap<String, FeatureScore>,
    /// Why a point above the threshold raised no alarm: `incident` or
    /// `daily_pattern`; `None` otherwise. Last in the Avro schema, so
    /// consumers of the previous schema still read every field before it.
    pub suppressed: Option<String>,
}

impl ScoreRecord {
    /// Builds a record from a detector score and the features it scored.
    pub fn new(
        key: String,
        timestamp: i64,
        source: (&str, i32, i64),
        detector: &str,
        features: &[(String, f64)],
        score: &crate::detect::Score,
    ) -> Self {
        let features = features
            .iter()
            .zip(score.features.iter())
            .map(|((name, value), e)| {
                (
                    name.clone(),
                    FeatureScore {
                        value: *value,
                        expected: finite(e.expected),
                        lower: finite(e.lower),
                        upper: finite(e.upper),
                        contribution: finite(e.contribution),
                    },
                )
            })
            .collect();
        ScoreRecord {
            key,
            timestamp,
            topic: source.0.to_string(),
            partition: source.1,
            offset: source.2,
            score: finite(score.score),
            raw_score: finite(score.raw),
            threshold: finite(score.threshold),
            is_anomaly: score.is_anomaly,
            detector: detector.to_string(),
            warming_up: score.warming_up,
            features,
            suppressed: score.suppressed.map(|s| s.as_str().to_string()),
        }
    }
}

/// JSON cannot carry NaN or infinities; clamp to the largest finite values.
fn finite(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(f64::MIN, f64::MAX)
    }
}
