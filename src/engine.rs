//! Per-key detection, shared by the Kafka service and `pynomaly score`.
//!
//! An [`Engine`] owns the detectors of one partition (or of one offline run):
//! it creates a key's detector on first sight (seeded from the key), checks
//! that the key keeps sending the same features, scores, and remembers which
//! keys changed since the last checkpoint. It does no I/O.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::detect::{seed_for_key, DetectorSpec, KeyedDetector, Score, StateError};

/// Version byte of a serialized [`KeyState`].
const KEY_STATE_VERSION: u8 = 1;

/// Why a point could not be scored; each maps to a dead-letter `error_type`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The record had no features at all.
    #[error("record has no numeric features")]
    NoFeatures,
    /// A feature value was NaN or infinite.
    #[error("feature `{0}` is not a finite number")]
    NonFinite(String),
    /// The key was created with other features.
    #[error("key was created with features [{expected}] but this record has [{got}]")]
    FeatureMismatch {
        /// Features the key was created with.
        expected: String,
        /// Features of this record.
        got: String,
    },
}

impl EngineError {
    /// Bounded label for metrics and dead-letter headers.
    pub fn error_type(&self) -> &'static str {
        match self {
            EngineError::NoFeatures => "missing_features",
            EngineError::NonFinite(_) => "non_finite",
            EngineError::FeatureMismatch { .. } => "feature_mismatch",
        }
    }
}

/// One key's persistent state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    /// Feature names, in the order the detector sees them.
    pub features: Vec<String>,
    /// Detector snapshot (versioned by the detector module).
    pub detector: Vec<u8>,
}

/// Detectors of one partition.
pub struct Engine {
    spec: DetectorSpec,
    keys: HashMap<Vec<u8>, (Vec<String>, KeyedDetector)>,
    dirty: HashSet<Vec<u8>>,
    values: Vec<f64>,
}

impl Engine {
    /// An empty engine.
    pub fn new(spec: DetectorSpec) -> Self {
        Engine {
            spec,
            keys: HashMap::new(),
            dirty: HashSet::new(),
            values: Vec::new(),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Scores one point of `key`; `features` are `(name, value)` in a stable order.
    pub fn score(&mut self, key: &[u8], features: &[(String, f64)]) -> Result<Score, EngineError> {
        if features.is_empty() {
            return Err(EngineError::NoFeatures);
        }
        if let Some((name, _)) = features.iter().find(|(_, v)| !v.is_finite()) {
            return Err(EngineError::NonFinite(name.clone()));
        }
        let spec = &self.spec;
        let (names, detector) = self.keys.entry(key.to_vec()).or_insert_with(|| {
            let names = features.iter().map(|(n, _)| n.clone()).collect();
            let seed = seed_for_key(spec.seed, key);
            (names, KeyedDetector::new(spec, seed, features.len()))
        });
        if names.len() != features.len() || names.iter().zip(features).any(|(a, (b, _))| a != b) {
            return Err(EngineError::FeatureMismatch {
                expected: names.join(","),
                got: features
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        self.values.clear();
        self.values.extend(features.iter().map(|(_, v)| *v));
        let score = detector.update(&self.values);
        if !self.dirty.contains(key) {
            self.dirty.insert(key.to_vec());
        }
        Ok(score)
    }

    /// Detector name of a key's model (for score records).
    pub fn detector_name(&self) -> &'static str {
        self.spec.algorithm.name()
    }

    /// Serialized states of the keys changed since the last call, which clears the set.
    pub fn take_dirty(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|k| {
                let (names, det) = self.keys.get(&k)?;
                let state = KeyState {
                    features: names.clone(),
                    detector: det.to_bytes(),
                };
                Some((k, encode_key_state(&state)))
            })
            .collect()
    }

    /// Restores a key from a checkpoint.
    pub fn restore(&mut self, key: Vec<u8>, bytes: &[u8]) -> Result<(), StateError> {
        let state = decode_key_state(bytes)?;
        let det = KeyedDetector::from_bytes(&state.detector)?;
        self.keys.insert(key, (state.features, det));
        Ok(())
    }
}

fn encode_key_state(state: &KeyState) -> Vec<u8> {
    let mut out = vec![KEY_STATE_VERSION];
    // Vec-backed postcard serialization of strings and bytes cannot fail.
    out.extend(postcard::to_stdvec(state).expect("postcard to Vec is infallible"));
    out
}

fn decode_key_state(bytes: &[u8]) -> Result<KeyState, StateError> {
    match bytes.split_first() {
        None => Err(StateError::Empty),
        Some((&KEY_STATE_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(StateError::Version(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> Vec<(String, f64)> {
        vec![("cpu".to_string(), v)]
    }

    #[test]
    fn rejects_non_finite_and_changed_features_without_touching_state() {
        let mut e = Engine::new(DetectorSpec::default());
        e.score(b"k", &f(1.0)).unwrap();
        assert_eq!(
            e.score(b"k", &f(f64::NAN)).unwrap_err().error_type(),
            "non_finite"
        );
        let other = vec![("mem".to_string(), 1.0)];
        assert_eq!(
            e.score(b"k", &other).unwrap_err().error_type(),
            "feature_mismatch"
        );
        assert_eq!(
            e.score(b"k", &[]).unwrap_err().error_type(),
            "missing_features"
        );
    }

    #[test]
    fn checkpoint_and_restore_continue_identically() {
        let mut a = Engine::new(DetectorSpec::default());
        for i in 0..100 {
            a.score(b"k", &f((i % 7) as f64)).unwrap();
        }
        let dirty = a.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(a.take_dirty().is_empty());
        let mut b = Engine::new(DetectorSpec::default());
        b.restore(dirty[0].0.clone(), &dirty[0].1).unwrap();
        for i in 100..200 {
            let v = f((i % 7) as f64 + if i == 150 { 50.0 } else { 0.0 });
            assert_eq!(a.score(b"k", &v).unwrap(), b.score(b"k", &v).unwrap());
        }
    }
}
