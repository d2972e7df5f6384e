//! Per-key detection, shared by the Kafka service and `pynomaly score`.
//!
//! An [`Engine`] owns the detectors of one partition (or of one offline run):
//! it creates a key's detector on first sight (seeded from the key), checks
//! that the key keeps sending the same features, scores, and remembers which
//! keys changed since the last checkpoint. It does no I/O.
//!
//! Memory is bounded by a key capacity (`cache_size`) and a byte budget
//! (a share of `memory_limit_gb`, measured by the keys' serialized states):
//! after a checkpoint, [`Engine::evict_cold`] drops the least recently seen
//! keys until both hold. Their
//! states are in the store (they were checkpointed and have not changed
//! since), so the owner reloads one with [`Engine::restore`] when its key
//! shows up again ([`Engine::needs_load`]), and scoring continues exactly as
//! if it had never left memory.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::DetectorRule;
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
    /// Key-pattern rules for this partition's topic, first match wins.
    rules: Vec<(Option<Vec<u8>>, DetectorSpec)>,
    last_detector: &'static str,
    keys: HashMap<Vec<u8>, Entry>,
    dirty: HashSet<Vec<u8>>,
    values: Vec<f64>,
    /// Keys held in memory at most, after a checkpoint.
    capacity: usize,
    /// Serialized state bytes held in memory at most, after a checkpoint.
    byte_budget: usize,
    /// Sum of the keys' last measured serialized state sizes.
    state_bytes: usize,
    /// Logical clock: points scored, for least-recently-seen eviction.
    clock: u64,
    /// Some states of this partition are in the store only.
    spilled: bool,
}

/// One key held in memory.
struct Entry {
    names: Vec<String>,
    detector: KeyedDetector,
    last_seen: u64,
    /// Serialized state size at the last checkpoint or restore (0 before).
    bytes: usize,
}

impl Engine {
    /// An empty engine.
    pub fn new(spec: DetectorSpec) -> Self {
        Engine {
            last_detector: spec.algorithm.name(),
            spec,
            rules: Vec::new(),
            keys: HashMap::new(),
            dirty: HashSet::new(),
            values: Vec::new(),
            capacity: usize::MAX,
            byte_budget: usize::MAX,
            state_bytes: 0,
            clock: 0,
            spilled: false,
        }
    }

    /// Holds at most `capacity` keys in memory after each checkpoint (at
    /// least 1); see [`Engine::evict_cold`].
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Holds at most `bytes` of serialized state in memory after each
    /// checkpoint (the owner recomputes it as partitions come and go).
    pub fn set_byte_budget(&mut self, bytes: usize) {
        self.byte_budget = bytes;
    }

    /// Serialized size of the states held, as of their last checkpoint or
    /// restore: the measure the byte budget applies to (in-memory size is
    /// larger by allocator and index overhead, and for `rcf` by its cached
    /// bounding boxes).
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    fn over_budget(&self) -> bool {
        self.keys.len() > self.capacity || self.state_bytes > self.byte_budget
    }

    /// Whether `key` is not in memory but may have a state in the store
    /// (some keys were evicted or not restored): the owner should look it up
    /// and [`Engine::restore`] it before scoring it.
    pub fn needs_load(&self, key: &[u8]) -> bool {
        self.spilled && !self.keys.contains_key(key)
    }

    /// Whether the key capacity is reached, so further stored keys should be
    /// left in the store at restore (they load on demand).
    pub fn is_full(&self) -> bool {
        self.keys.len() >= self.capacity || self.state_bytes >= self.byte_budget
    }

    /// Marks that the store holds states that are not in memory.
    pub fn set_spilled(&mut self) {
        self.spilled = true;
    }

    /// Drops the least recently seen keys until the key capacity and the
    /// byte budget hold; returns how many. Only keys whose state is
    /// checkpointed (not dirty) are dropped, so call it right after a checkpoint.
    pub fn evict_cold(&mut self) -> usize {
        if !self.over_budget() {
            return 0;
        }
        let mut clean: Vec<(u64, usize, &Vec<u8>)> = self
            .keys
            .iter()
            .filter(|(k, _)| !self.dirty.contains(*k))
            .map(|(k, e)| (e.last_seen, e.bytes, k))
            .collect();
        clean.sort_unstable_by_key(|&(seen, _, _)| seen);
        // The coldest keys whose removal brings both measures within bounds.
        let (mut keys, mut bytes) = (self.keys.len(), self.state_bytes);
        let cold: Vec<Vec<u8>> = clean
            .into_iter()
            .take_while(|&(_, size, _)| {
                let over = keys > self.capacity || bytes > self.byte_budget;
                if over {
                    keys -= 1;
                    bytes -= size;
                }
                over
            })
            .map(|(_, _, k)| k.clone())
            .collect();
        for k in &cold {
            if let Some(e) = self.keys.remove(k) {
                self.state_bytes -= e.bytes;
            }
        }
        if !cold.is_empty() {
            self.spilled = true;
        }
        cold.len()
    }

    /// An engine for records of `topic`: the rules for other topics are dropped.
    pub fn with_rules(spec: DetectorSpec, rules: &[DetectorRule], topic: &str) -> Self {
        let mut e = Engine::new(spec);
        e.rules = rules
            .iter()
            .filter(|r| r.topic.as_deref().is_none_or(|t| t == topic))
            .map(|r| {
                (
                    r.key_pattern.as_ref().map(|p| p.as_bytes().to_vec()),
                    r.spec.clone(),
                )
            })
            .collect();
        e
    }

    fn spec_for(&self, key: &[u8]) -> &DetectorSpec {
        self.rules
            .iter()
            .find(|(p, _)| p.as_deref().is_none_or(|p| glob_match(p, key)))
            .map_or(&self.spec, |(_, s)| s)
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
        self.score_at(key, features, None)
    }

    /// [`Engine::score`] for a point with event time `timestamp_ms` (epoch
    /// milliseconds), used by the daily-recurrence rule.
    pub fn score_at(
        &mut self,
        key: &[u8],
        features: &[(String, f64)],
        timestamp_ms: Option<i64>,
    ) -> Result<Score, EngineError> {
        if features.is_empty() {
            return Err(EngineError::NoFeatures);
        }
        if let Some((name, _)) = features.iter().find(|(_, v)| !v.is_finite()) {
            return Err(EngineError::NonFinite(name.clone()));
        }
        let spec = self.spec_for(key).clone();
        let spec = &spec;
        self.clock += 1;
        let entry = self.keys.entry(key.to_vec()).or_insert_with(|| Entry {
            names: features.iter().map(|(n, _)| n.clone()).collect(),
            detector: KeyedDetector::new(spec, seed_for_key(spec.seed, key), features.len()),
            last_seen: 0,
            bytes: 0,
        });
        entry.last_seen = self.clock;
        let (names, detector) = (&entry.names, &mut entry.detector);
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
        let mut score = Score::empty(self.values.len());
        detector.update_at(&self.values, timestamp_ms, &mut score);
        self.last_detector = detector.name();
        if !self.dirty.contains(key) {
            self.dirty.insert(key.to_vec());
        }
        Ok(score)
    }

    /// Algorithm of the key scored last (for its score record).
    pub fn detector_name(&self) -> &'static str {
        self.last_detector
    }

    /// Serialized states of the keys changed since the last call, which clears the set.
    pub fn take_dirty(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|k| {
                let e = self.keys.get_mut(&k)?;
                let state = KeyState {
                    features: e.names.clone(),
                    detector: e.detector.to_bytes(),
                };
                let bytes = encode_key_state(&state);
                self.state_bytes = self.state_bytes - e.bytes + bytes.len();
                e.bytes = bytes.len();
                Some((k, bytes))
            })
            .collect()
    }

    /// Restores a key from a checkpoint.
    pub fn restore(&mut self, key: Vec<u8>, bytes: &[u8]) -> Result<(), StateError> {
        let state = decode_key_state(bytes)?;
        let det = KeyedDetector::from_bytes(&state.detector)?;
        let entry = Entry {
            names: state.features,
            detector: det,
            last_seen: self.clock,
            bytes: bytes.len(),
        };
        self.state_bytes += entry.bytes;
        if let Some(old) = self.keys.insert(key, entry) {
            self.state_bytes -= old.bytes;
        }
        Ok(())
    }
}

/// Glob match over bytes: `*` matches any run (also empty), `?` one byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: O(len(p) * len(t)) worst case.
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
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
    fn globs_match_like_shell_patterns() {
        assert!(glob_match(b"card-*", b"card-42"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"h?st-*-a", b"host-1-a"));
        assert!(!glob_match(b"card-*", b"acct-1"));
        assert!(!glob_match(b"a?", b"a"));
    }

    #[test]
    fn key_patterns_choose_the_detector_of_new_keys() {
        use crate::detect::Algorithm;
        let loda = DetectorSpec {
            algorithm: Algorithm::Loda,
            ..DetectorSpec::default()
        };
        let rules = vec![
            DetectorRule {
                topic: Some("other".into()),
                key_pattern: None,
                spec: DetectorSpec::default(),
            },
            DetectorRule {
                topic: Some("events".into()),
                key_pattern: Some("card-*".into()),
                spec: loda,
            },
        ];
        let mut e = Engine::with_rules(DetectorSpec::default(), &rules, "events");
        e.score(b"card-1", &f(1.0)).unwrap();
        assert_eq!(e.detector_name(), "loda");
        e.score(b"host-1", &f(1.0)).unwrap();
        assert_eq!(e.detector_name(), DetectorSpec::default().algorithm.name());
    }

    #[test]
    fn wide_keys_get_the_multivariate_rule_unless_an_override_names_an_algorithm() {
        use crate::detect::{Algorithm, MultivariateRule};
        let base = DetectorSpec {
            algorithm: Algorithm::Seasonal,
            multivariate: Some(MultivariateRule {
                algorithm: Algorithm::Loda,
                min_features: 3,
            }),
            ..DetectorSpec::default()
        };
        let rules = vec![
            DetectorRule {
                topic: None,
                key_pattern: Some("mad-*".into()),
                spec: DetectorSpec {
                    algorithm: Algorithm::Mad,
                    multivariate: None,
                    ..base.clone()
                },
            },
            DetectorRule {
                topic: None,
                key_pattern: Some("quiet-*".into()),
                spec: DetectorSpec {
                    warmup: 100,
                    ..base.clone()
                },
            },
        ];
        let wide = |n: usize| -> Vec<(String, f64)> {
            (0..n).map(|i| (format!("f{i}"), i as f64)).collect()
        };
        let mut e = Engine::with_rules(base, &rules, "events");
        for (key, n, want) in [
            ("host-1", 1, "seasonal"),
            ("host-2", 2, "seasonal"),
            ("host-3", 3, "loda"),
            ("host-4", 12, "loda"),
            ("mad-1", 1, "mad"),
            ("mad-2", 12, "mad"),
            ("quiet-1", 2, "seasonal"),
            ("quiet-2", 3, "loda"),
        ] {
            e.score(key.as_bytes(), &wide(n)).unwrap();
            assert_eq!(e.detector_name(), want, "{key} with {n} features");
        }
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

    #[test]
    fn evicted_keys_reload_from_the_store_and_score_as_if_never_evicted() {
        use std::collections::HashMap;
        let keys: Vec<Vec<u8>> = (0..20).map(|k| format!("k{k}").into_bytes()).collect();
        let mut unbounded = Engine::new(DetectorSpec::default());
        let mut bounded = Engine::new(DetectorSpec::default()).with_capacity(5);
        // Stands in for RocksDB: every checkpoint writes the dirty states here.
        let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let (mut evicted, mut loaded) = (0, 0);
        for i in 0..2_000u64 {
            // Skewed traffic: a few hot keys, a long tail of cold ones.
            let k = &keys[((i * 7919) % 97 % 20) as usize];
            let v = f(((i * 31) % 11) as f64 + if i % 500 == 499 { 40.0 } else { 0.0 });
            if bounded.needs_load(k) {
                if let Some(bytes) = store.get(k) {
                    bounded.restore(k.clone(), bytes).unwrap();
                    loaded += 1;
                }
            }
            assert_eq!(
                bounded.score(k, &v).unwrap(),
                unbounded.score(k, &v).unwrap(),
                "point {i}"
            );
            if i % 50 == 49 {
                store.extend(bounded.take_dirty());
                evicted += bounded.evict_cold();
                assert!(bounded.len() <= 5, "{} keys held", bounded.len());
            }
        }
        assert!(
            evicted > 100 && loaded > 100,
            "{evicted} evicted, {loaded} loaded"
        );
        assert_eq!(unbounded.len(), 20);
    }

    #[test]
    fn eviction_keeps_the_most_recently_seen_and_never_a_dirty_key() {
        let mut e = Engine::new(DetectorSpec::default()).with_capacity(2);
        for k in [b"a", b"b", b"c"] {
            e.score(k, &f(1.0)).unwrap();
        }
        // Every key is dirty: nothing may go before it is checkpointed.
        assert_eq!(e.evict_cold(), 0);
        assert!(!e.needs_load(b"a"));
        e.take_dirty();
        e.score(b"a", &f(1.0)).unwrap(); // dirty again, and the most recent
        assert_eq!(e.evict_cold(), 1);
        assert_eq!(e.len(), 2);
        assert!(
            e.needs_load(b"b"),
            "b was the least recently seen clean key"
        );
        assert!(!e.needs_load(b"a") && !e.needs_load(b"c"));
    }

    #[test]
    fn the_byte_budget_evicts_cold_keys_until_the_states_fit() {
        let mut e = Engine::new(DetectorSpec::default());
        for k in 0..10u8 {
            e.score(&[k], &f(1.0)).unwrap();
        }
        assert_eq!(e.state_bytes(), 0, "measured at the first checkpoint");
        let states = e.take_dirty();
        let total: usize = states.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(e.state_bytes(), total);
        let per_key = total / 10;
        // Room for about four keys: the six least recently seen go.
        e.set_byte_budget(4 * per_key + per_key / 2);
        e.score(&[0], &f(1.0)).unwrap(); // key 0 becomes the most recent
        e.take_dirty();
        assert_eq!(e.evict_cold(), 6);
        assert_eq!(e.len(), 4);
        assert!(e.state_bytes() <= 4 * per_key + per_key / 2);
        assert!(!e.needs_load(&[0]) && e.needs_load(&[1]));
        assert!(!e.is_full(), "half a key of room left");
        e.set_byte_budget(e.state_bytes());
        assert!(e.is_full(), "a restore stops loading here");
    }
}
