//! Online anomaly detectors: pure algorithms, no I/O, no async, no Kafka.
//!
//! # Lifecycle
//! A [`KeyedDetector`] is created for one entity key from a validated
//! [`DetectorSpec`] and a per-key seed ([`seed_for_key`]). Every point goes
//! through [`KeyedDetector::update`], which *first scores the point against
//! what was learned so far, then learns it* (prequential order, no look-ahead).
//! The whole state can be snapshot with [`KeyedDetector::to_bytes`] and
//! restored with [`KeyedDetector::from_bytes`]; restoring and continuing gives
//! bit-identical scores to an uninterrupted run, because every algorithm is
//! plain deterministic f64 arithmetic driven by its own seeded generator.
//!
//! # Scores
//! Base detectors produce a non-negative *raw* score (larger = more unusual).
//! The [`calibrate::Calibrator`] turns it into a threshold chosen from the
//! contamination rate and a calibrated score in `[0, 1]` with `score >= 0.5`
//! exactly when the point is flagged, so scores are comparable across detectors.

pub mod automl;
pub mod calibrate;
pub mod changepoint;
pub mod ensemble;
pub mod ewma;
pub mod gaussian;
pub mod hst;
pub mod loda;
pub mod mad;
pub mod null;
pub mod rcf;
pub mod recurrence;
pub mod rng;
pub mod scaler;
pub mod seasonal;
pub mod spot;
pub mod univariate;

#[cfg(test)]
mod proptests;

/// Raw scores of `points`, each scored then learned, in order (tests).
#[cfg(test)]
fn raw_scores<D: OnlineDetector>(d: &mut D, points: &[Vec<f64>]) -> Vec<f64> {
    let mut explain = Vec::new();
    points
        .iter()
        .map(|p| d.update(p, 0.0, &mut explain))
        .collect()
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use automl::AutoMl;
pub use calibrate::{Calibrator, ThresholdMode};
pub use changepoint::Cusum;
pub use ensemble::Ensemble;
pub use ewma::Ewma;
pub use gaussian::WindowedGaussian;
pub use hst::HalfSpaceTrees;
pub use loda::Loda;
pub use mad::Mad;
pub use null::NullDetector;
pub use rcf::RandomCutForest;
pub use recurrence::Recurrence;
pub use rng::{seed_for_key, SplitMix64};
pub use seasonal::Seasonal;
pub use univariate::{PerFeature, Univariate};

/// Version byte written first in every state snapshot. Bump it when the
/// encoding changes, and keep reading the old one (golden files in tests).
/// Version 2 added the daily-recurrence memory; version 1 still restores.
pub const STATE_VERSION: u8 = 2;

/// Factor applied to calibrated scores while alarms are suppressed: below
/// 0.5, so a suppressed point is never reported as an anomaly.
pub const SUPPRESSED_SCALE: f64 = 0.25;

/// Why a point above the threshold raised no alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// An alarm of the same key fired within `suppression` points (the same incident).
    Incident,
    /// The same time of day as an exceedance the day before ([`recurrence`]).
    DailyPattern,
}

impl Suppressed {
    /// The name written in score records.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::Incident => "incident",
            Suppressed::DailyPattern => "daily_pattern",
        }
    }
}

/// Per-feature explanation of one score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct FeatureExplanation {
    /// What the detector expected this feature to be.
    pub expected: f64,
    /// Lower edge of the normal range at the current threshold.
    pub lower: f64,
    /// Upper edge of the normal range at the current threshold.
    pub upper: f64,
    /// Share of the raw score attributed to this feature, in `[0, 1]`.
    pub contribution: f64,
}

/// The outcome of scoring one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Calibrated score in `[0, 1]`; `>= 0.5` exactly when `is_anomaly`
    /// (outside warm-up and suppression).
    pub score: f64,
    /// The detector's own raw score (non-negative, finite).
    pub raw: f64,
    /// The raw-score threshold in force for this point.
    pub threshold: f64,
    /// Whether the point is flagged.
    pub is_anomaly: bool,
    /// True while the key is still warming up: the score is 0 and nothing is flagged.
    pub warming_up: bool,
    /// Set when the raw score exceeds the threshold but no alarm was raised.
    pub suppressed: Option<Suppressed>,
    /// One entry per feature, in input order.
    pub features: Vec<FeatureExplanation>,
}

impl Score {
    /// A blank score with room for `n_features` explanations, to be filled by
    /// [`KeyedDetector::update_into`] (reusing it avoids an allocation per point).
    pub fn empty(n_features: usize) -> Score {
        Score {
            score: 0.0,
            raw: 0.0,
            threshold: 0.0,
            is_anomaly: false,
            warming_up: true,
            suppressed: None,
            features: Vec::with_capacity(n_features),
        }
    }
}

/// An online detector: the contract every algorithm in this module follows.
pub trait OnlineDetector {
    /// Scores `x` (one value per feature, all finite) against the state
    /// learned so far, then learns it. Returns a non-negative finite raw score
    /// and fills `explain` with one entry per feature (expected value and a
    /// normal range for a raw threshold of `threshold`).
    fn update(&mut self, x: &[f64], threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64;
}

/// Which algorithm a key runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Exponentially weighted mean/variance z-score (univariate per feature).
    Ewma,
    /// Sliding-window median/MAD robust z-score (univariate per feature).
    Mad,
    /// NAB's windowed Gaussian baseline (univariate per feature).
    Gaussian,
    /// Holt–Winters residual z-score with the period found online (univariate per feature).
    Seasonal,
    /// Two-sided CUSUM for level shifts and drifts (univariate per feature).
    Cusum,
    /// Calibrated scores of several detectors combined (see [`ensemble`]).
    Ensemble,
    /// Per-key choice among candidate detectors after warm-up (see [`automl`]).
    Auto,
    /// Half-Space Trees over all features (multivariate, see [`hst`]).
    Hst,
    /// Random Cut Forest with shingling (multivariate, see [`rcf`]).
    Rcf,
    /// LODA sparse random projections with histograms (multivariate, see [`loda`]).
    Loda,
    /// Scores every point 0: detection switched off (see [`null`]).
    Null,
}

impl Algorithm {
    /// Every accepted name, for error messages and docs.
    pub const NAMES: &'static [&'static str] = &[
        "ewma", "mad", "gaussian", "seasonal", "cusum", "ensemble", "auto", "hst", "rcf", "loda",
        "null",
    ];

    /// The univariate algorithms (each runs per feature).
    pub const UNIVARIATE: &'static [Algorithm] = &[
        Algorithm::Ewma,
        Algorithm::Mad,
        Algorithm::Gaussian,
        Algorithm::Seasonal,
        Algorithm::Cusum,
    ];

    /// The name used in configuration and score records.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ewma => "ewma",
            Algorithm::Mad => "mad",
            Algorithm::Gaussian => "gaussian",
            Algorithm::Seasonal => "seasonal",
            Algorithm::Cusum => "cusum",
            Algorithm::Ensemble => "ensemble",
            Algorithm::Auto => "auto",
            Algorithm::Hst => "hst",
            Algorithm::Rcf => "rcf",
            Algorithm::Loda => "loda",
            Algorithm::Null => "null",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "ewma" | "ewma_zscore" | "zscore" => Ok(Algorithm::Ewma),
            "mad" | "median_mad" | "robust" => Ok(Algorithm::Mad),
            "gaussian" | "windowed_gaussian" => Ok(Algorithm::Gaussian),
            "seasonal" | "holt_winters" => Ok(Algorithm::Seasonal),
            "cusum" | "changepoint" => Ok(Algorithm::Cusum),
            "ensemble" => Ok(Algorithm::Ensemble),
            "auto" | "automl" => Ok(Algorithm::Auto),
            "hst" | "half_space_trees" | "halfspacetrees" => Ok(Algorithm::Hst),
            "rcf" | "random_cut_forest" | "randomcutforest" => Ok(Algorithm::Rcf),
            "loda" => Ok(Algorithm::Loda),
            "null" | "none" | "off" => Ok(Algorithm::Null),
            other => Err(format!(
                "unknown algorithm `{other}`; expected one of: {}",
                Algorithm::NAMES.join(", ")
            )),
        }
    }
}

/// A contamination rate: the expected share of anomalies, in `(0, 0.5)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contamination(f64);

impl Contamination {
    /// The rate as a fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Contamination {
    type Error = String;

    fn try_from(v: f64) -> Result<Self, Self::Error> {
        if v.is_finite() && v > 0.0 && v < 0.5 {
            Ok(Contamination(v))
        } else {
            Err(format!("contamination must be in (0, 0.5), got {v}"))
        }
    }
}

/// Validated detector parameters shared by every key of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSpec {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Expected anomaly rate; sets the threshold.
    pub contamination: Contamination,
    /// Points a key sees before it may flag anything.
    pub warmup: u32,
    /// Points after an alarm during which further alarms of the same key are
    /// suppressed (0 = off).
    pub suppression: u32,
    /// Global seed mixed with each key's hash.
    pub seed: u64,
    /// How the raw-score threshold is set.
    pub threshold: ThresholdMode,
    /// Algorithm for wide keys (`multivariate_algorithm` when
    /// `multivariate_min_features` > 0); `None`: every key runs `algorithm`.
    /// Not part of any snapshot: a key keeps the algorithm it was created with.
    #[serde(default)]
    pub multivariate: Option<MultivariateRule>,
    /// With `algorithm` an ensemble or AutoML: the configured
    /// `default_algorithm`, which joins their fixed members or candidates.
    #[serde(default)]
    pub member: Option<Algorithm>,
    /// An exceedance within this many seconds of the same time of day as an
    /// exceedance of the day before is a daily pattern and raises no alarm
    /// (0 = off); see [`recurrence`].
    #[serde(default)]
    pub recurrence_tolerance_secs: u32,
}

/// Keys whose records have at least `min_features` features run `algorithm`
/// instead of [`DetectorSpec::algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultivariateRule {
    /// The detector for wide keys.
    pub algorithm: Algorithm,
    /// Feature count from which a key is wide (at least 2).
    pub min_features: u32,
}

impl DetectorSpec {
    /// The algorithm a key whose records have `n_features` features runs:
    /// the multivariate rule's when `n_features >= min_features`, else
    /// `algorithm`.
    pub fn algorithm_for(&self, n_features: usize) -> Algorithm {
        match self.multivariate {
            Some(rule) if n_features >= rule.min_features as usize => rule.algorithm,
            _ => self.algorithm,
        }
    }

    /// The algorithm an ensemble or AutoML adds to its fixed members or
    /// candidates, if any (never an ensemble or AutoML itself).
    pub fn extra_member(&self) -> Option<Algorithm> {
        Some(self.member.unwrap_or(self.algorithm))
            .filter(|a| !matches!(a, Algorithm::Ensemble | Algorithm::Auto))
    }

    /// This spec for a key of `n_features` features: `algorithm` set to
    /// [`DetectorSpec::algorithm_for`] and the multivariate rule cleared, so
    /// [`Model::new`] (and ensemble or AutoML members) build exactly that.
    pub fn for_features(&self, n_features: usize) -> DetectorSpec {
        DetectorSpec {
            algorithm: self.algorithm_for(n_features),
            multivariate: None,
            ..self.clone()
        }
    }
}

impl Default for DetectorSpec {
    fn default() -> Self {
        DetectorSpec {
            algorithm: Algorithm::Ewma,
            contamination: Contamination(0.005),
            warmup: 30,
            suppression: 0,
            seed: 0x5eed_0fa4_0a1e,
            threshold: ThresholdMode::Quantile,
            multivariate: None,
            member: None,
            recurrence_tolerance_secs: 0,
        }
    }
}

/// The algorithm state behind a key (enum dispatch: no vtable, serde-able).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Model {
    /// See [`Ewma`].
    Ewma(PerFeature<Ewma>),
    /// See [`Mad`].
    Mad(PerFeature<Mad>),
    /// See [`WindowedGaussian`].
    Gaussian(PerFeature<WindowedGaussian>),
    /// See [`Seasonal`].
    Seasonal(PerFeature<Seasonal>),
    /// See [`Cusum`].
    Cusum(PerFeature<Cusum>),
    /// See [`Ensemble`].
    Ensemble(Ensemble),
    /// See [`AutoMl`].
    Auto(AutoMl),
    /// See [`HalfSpaceTrees`].
    Hst(HalfSpaceTrees),
    /// See [`RandomCutForest`].
    Rcf(RandomCutForest),
    /// See [`Loda`].
    Loda(Loda),
    /// See [`NullDetector`].
    Null(NullDetector),
}

impl Model {
    /// A fresh model of `spec.algorithm`, taken as it is: the multivariate
    /// rule is resolved by [`KeyedDetector::new`] (see [`DetectorSpec::for_features`]).
    pub fn new(spec: &DetectorSpec, seed: u64, n_features: usize) -> Model {
        match spec.algorithm {
            Algorithm::Ewma => {
                Model::Ewma(PerFeature::new(n_features, Ewma::new(ewma::DEFAULT_ALPHA)))
            }
            Algorithm::Mad => {
                Model::Mad(PerFeature::new(n_features, Mad::new(mad::DEFAULT_WINDOW)))
            }
            Algorithm::Gaussian => Model::Gaussian(PerFeature::new(
                n_features,
                WindowedGaussian::new(gaussian::DEFAULT_WINDOW, gaussian::DEFAULT_STEP),
            )),
            Algorithm::Seasonal => Model::Seasonal(PerFeature::new(n_features, Seasonal::new())),
            Algorithm::Cusum => Model::Cusum(PerFeature::new(n_features, Cusum::default())),
            Algorithm::Ensemble => Model::Ensemble(Ensemble::new(spec, seed, n_features)),
            Algorithm::Auto => Model::Auto(AutoMl::new(spec, seed, n_features)),
            Algorithm::Hst => Model::Hst(HalfSpaceTrees::new(
                n_features,
                hst::HstParams::default(),
                seed,
            )),
            Algorithm::Rcf => Model::Rcf(RandomCutForest::new(
                n_features,
                rcf::RcfParams::default(),
                seed,
            )),
            Algorithm::Loda => {
                Model::Loda(Loda::new(n_features, loda::LodaParams::default(), seed))
            }
            Algorithm::Null => Model::Null(NullDetector),
        }
    }

    /// The raw-score threshold that normal data exceeds with probability
    /// `contamination`, from the algorithm's null model (`spec.algorithm`,
    /// as in [`Model::new`]).
    pub fn prior_threshold(spec: &DetectorSpec, n_features: usize) -> f64 {
        let c = spec.contamination.get();
        match spec.algorithm {
            Algorithm::Ewma | Algorithm::Mad | Algorithm::Gaussian | Algorithm::Seasonal => {
                Ewma::prior_threshold(c, n_features)
            }
            Algorithm::Cusum => Cusum::prior_threshold(c, n_features),
            // Both report member scores relative to the member's own threshold.
            Algorithm::Ensemble | Algorithm::Auto => 1.0,
            Algorithm::Hst => hst::HstParams::default().prior_threshold(),
            Algorithm::Rcf => rcf::RcfParams::default().prior_threshold(),
            Algorithm::Loda => loda::LodaParams::default().prior_threshold(),
            Algorithm::Null => 1.0,
        }
    }

    /// Scores then learns one point (see [`OnlineDetector::update`]).
    pub fn update(
        &mut self,
        x: &[f64],
        threshold: f64,
        explain: &mut Vec<FeatureExplanation>,
    ) -> f64 {
        match self {
            Model::Ewma(m) => m.update(x, threshold, explain),
            Model::Mad(m) => m.update(x, threshold, explain),
            Model::Gaussian(m) => m.update(x, threshold, explain),
            Model::Seasonal(m) => m.update(x, threshold, explain),
            Model::Cusum(m) => m.update(x, threshold, explain),
            Model::Ensemble(m) => m.update(x, threshold, explain),
            Model::Auto(m) => m.update(x, threshold, explain),
            Model::Hst(m) => m.update(x, threshold, explain),
            Model::Rcf(m) => m.update(x, threshold, explain),
            Model::Loda(m) => m.update(x, threshold, explain),
            Model::Null(m) => m.update(x, threshold, explain),
        }
    }
}

/// Errors restoring a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The snapshot was empty.
    #[error("empty detector state")]
    Empty,
    /// Written by an unknown encoding version.
    #[error("unsupported detector state version {0} (this build reads {STATE_VERSION})")]
    Version(u8),
    /// The bytes did not decode.
    #[error("corrupt detector state: {0}")]
    Decode(#[from] postcard::Error),
}

/// Everything one entity key needs: model, calibration, warm-up and
/// suppression counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedDetector {
    algorithm: Algorithm,
    model: Model,
    calibrator: Calibrator,
    n_features: u32,
    seen: u64,
    warmup: u32,
    suppression: u32,
    suppress_left: u32,
    recurrence: Option<Recurrence>,
}

/// [`KeyedDetector`] as encoded by state version 1 (no recurrence memory).
#[derive(Deserialize)]
struct KeyedDetectorV1 {
    algorithm: Algorithm,
    model: Model,
    calibrator: Calibrator,
    n_features: u32,
    seen: u64,
    warmup: u32,
    suppression: u32,
    suppress_left: u32,
}

impl From<KeyedDetectorV1> for KeyedDetector {
    fn from(v: KeyedDetectorV1) -> Self {
        KeyedDetector {
            algorithm: v.algorithm,
            model: v.model,
            calibrator: v.calibrator,
            n_features: v.n_features,
            seen: v.seen,
            warmup: v.warmup,
            suppression: v.suppression,
            suppress_left: v.suppress_left,
            recurrence: None,
        }
    }
}

impl KeyedDetector {
    /// A fresh detector for a key whose points have `n_features` values,
    /// running [`DetectorSpec::algorithm_for`]`(n_features)`.
    pub fn new(spec: &DetectorSpec, seed: u64, n_features: usize) -> Self {
        let spec = &spec.for_features(n_features);
        KeyedDetector {
            algorithm: spec.algorithm,
            model: Model::new(spec, seed, n_features),
            calibrator: Calibrator::new(
                spec.contamination,
                Model::prior_threshold(spec, n_features),
                spec.threshold,
            ),
            n_features: n_features as u32,
            seen: 0,
            warmup: spec.warmup,
            suppression: spec.suppression,
            suppress_left: 0,
            recurrence: (spec.recurrence_tolerance_secs > 0)
                .then(|| Recurrence::new(i64::from(spec.recurrence_tolerance_secs) * 1000)),
        }
    }

    /// The algorithm's name, as written in score records.
    pub fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// Number of features this key was created with.
    pub fn n_features(&self) -> usize {
        self.n_features as usize
    }

    /// Points seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Scores one point, then learns it. Never panics: NaN values are
    /// treated as missing (score 0, not learned) and infinite ones as extreme
    /// outliers that are not learned (the pipeline dead-letters such records
    /// before they get here anyway).
    pub fn update(&mut self, x: &[f64]) -> Score {
        let mut out = Score::empty(x.len());
        self.update_into(x, &mut out);
        out
    }

    /// [`KeyedDetector::update`] writing into `out`, reusing its allocation:
    /// the allocation-free hot path.
    pub fn update_into(&mut self, x: &[f64], out: &mut Score) {
        self.update_at(x, None, out);
    }

    /// [`KeyedDetector::update_into`] for a point with event time
    /// `timestamp_ms` (epoch milliseconds), which the daily-recurrence rule
    /// needs ([`recurrence`]); without one the rule does not apply.
    pub fn update_at(&mut self, x: &[f64], timestamp_ms: Option<i64>, out: &mut Score) {
        let threshold = self.calibrator.threshold();
        let raw = self.model.update(x, threshold, &mut out.features);
        let raw = univariate::sanitize_raw(raw);
        self.seen += 1;
        let warming_up = self.seen <= u64::from(self.warmup);
        // Learn the score distribution even during warm-up so the threshold is
        // ready when warm-up ends.
        self.calibrator.observe(raw);
        out.raw = raw;
        out.threshold = threshold;
        out.warming_up = warming_up;
        out.suppressed = None;
        if warming_up {
            out.score = 0.0;
            out.is_anomaly = false;
            return;
        }
        let mut score = Calibrator::calibrate(raw, threshold);
        let exceeds = raw > threshold;
        // Every exceedance is remembered, suppressed or not, so a daily
        // pattern is recognised even when its first occurrence was suppressed.
        let recurring = match (&mut self.recurrence, timestamp_ms) {
            (Some(r), Some(t)) if exceeds => r.exceedance(t),
            _ => false,
        };
        let suppressed = self.suppress_left > 0;
        let is_anomaly = exceeds && !suppressed && !recurring;
        if suppressed {
            self.suppress_left -= 1;
        }
        if suppressed || recurring {
            // A suppressed point keeps its ranking among suppressed points but
            // stays below every unsuppressed alarm, so a consumer that picks
            // its own cut-off on the score sees one alarm per incident too.
            score *= SUPPRESSED_SCALE;
        }
        if is_anomaly {
            self.suppress_left = self.suppression;
        }
        out.suppressed = match (exceeds, suppressed, recurring) {
            (true, true, _) => Some(Suppressed::Incident),
            (true, false, true) => Some(Suppressed::DailyPattern),
            _ => None,
        };
        out.score = score;
        out.is_anomaly = is_anomaly;
    }

    /// Versioned binary snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        // Serializing plain structs of numbers into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).expect("postcard to Vec is infallible"));
        out
    }

    /// Restores a snapshot written by [`KeyedDetector::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        match bytes.split_first() {
            None => Err(StateError::Empty),
            Some((&STATE_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
            Some((&1, rest)) => Ok(postcard::from_bytes::<KeyedDetectorV1>(rest)?.into()),
            Some((&v, _)) => Err(StateError::Version(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DetectorSpec {
        DetectorSpec::default()
    }

    #[test]
    fn snapshot_restore_continue_is_identical() {
        let mut rng = SplitMix64::new(7);
        let points: Vec<[f64; 2]> = (0..500)
            .map(|i| {
                [
                    rng.next_gaussian() + if i == 300 { 12.0 } else { 0.0 },
                    rng.next_f64(),
                ]
            })
            .collect();
        let mut a = KeyedDetector::new(&spec(), 1, 2);
        let mut b = KeyedDetector::new(&spec(), 1, 2);
        for p in &points[..250] {
            a.update(p);
            b.update(p);
        }
        let mut b = KeyedDetector::from_bytes(&b.to_bytes()).unwrap();
        for p in &points[250..] {
            assert_eq!(a.update(p), b.update(p));
        }
    }

    #[test]
    fn a_spike_at_the_same_time_every_day_alarms_only_the_first_day() {
        const STEP_MS: i64 = 300_000; // 5-minute data: 288 points a day
        let spec = DetectorSpec {
            recurrence_tolerance_secs: 1800,
            ..spec()
        };
        let mut rng = SplitMix64::new(11);
        let mut d = KeyedDetector::new(&spec, 1, 1);
        let t0 = 1_700_000_000_000;
        let mut alarms = Vec::new();
        let mut out = Score::empty(1);
        for i in 0..288 * 8 {
            let (day, phase) = (i / 288, i % 288);
            // A job at about 03:20 every day (± 2 points), from day 3 on; one
            // spike at another time of day on day 6.
            let job = day >= 3 && phase == 40 + day * 7 % 5 - 2;
            let incident = day == 6 && phase == 200;
            let x = rng.next_gaussian() + if job || incident { 25.0 } else { 0.0 };
            d.update_at(&[x], Some(t0 + i * STEP_MS), &mut out);
            if out.is_anomaly {
                alarms.push((day, phase));
            }
        }
        assert!(alarms.contains(&(3, 40 + (3 * 7 % 5) - 2)), "{alarms:?}");
        assert!(alarms.contains(&(6, 200)), "{alarms:?}");
        assert!(
            !alarms
                .iter()
                .any(|&(day, p)| day > 3 && (35..=45).contains(&p)),
            "the daily job alarms only on its first day: {alarms:?}"
        );
        // Snapshot and restore keep the memory of the previous day.
        let mut e = KeyedDetector::from_bytes(&d.to_bytes()).unwrap();
        let t = t0 + (288 * 8 + 40) * STEP_MS;
        let mut restored = Score::empty(1);
        d.update_at(&[25.0], Some(t), &mut out);
        e.update_at(&[25.0], Some(t), &mut restored);
        assert_eq!(out, restored);
        assert!(!restored.is_anomaly && restored.raw > restored.threshold);
        assert_eq!(restored.suppressed, Some(Suppressed::DailyPattern));
    }

    #[test]
    fn version_1_snapshots_still_restore() {
        #[derive(Serialize)]
        struct V1<'a> {
            algorithm: Algorithm,
            model: &'a Model,
            calibrator: &'a Calibrator,
            n_features: u32,
            seen: u64,
            warmup: u32,
            suppression: u32,
            suppress_left: u32,
        }
        let mut d = KeyedDetector::new(&spec(), 1, 1);
        for i in 0..100 {
            d.update(&[f64::from(i % 7)]);
        }
        let mut bytes = vec![1u8];
        bytes.extend(
            postcard::to_stdvec(&V1 {
                algorithm: d.algorithm,
                model: &d.model,
                calibrator: &d.calibrator,
                n_features: d.n_features,
                seen: d.seen,
                warmup: d.warmup,
                suppression: d.suppression,
                suppress_left: d.suppress_left,
            })
            .unwrap(),
        );
        assert_eq!(KeyedDetector::from_bytes(&bytes).unwrap(), d);
    }

    #[test]
    fn flags_a_spike_after_warmup_and_not_before() {
        let mut rng = SplitMix64::new(3);
        let mut d = KeyedDetector::new(&spec(), 1, 1);
        let first = d.update(&[100.0]);
        assert!(first.warming_up && !first.is_anomaly && first.score == 0.0);
        // The default EWMA has a long memory (≈ 4,000 points): a wild first
        // point weighs 1/n in its variance until that memory is reached.
        for _ in 0..3000 {
            d.update(&[rng.next_gaussian()]);
        }
        let s = d.update(&[15.0]);
        assert!(s.is_anomaly && s.score >= 0.5 && s.score <= 1.0, "{s:?}");
        let n = d.update(&[0.1]);
        assert!(!n.is_anomaly && n.score < 0.5, "{n:?}");
    }

    #[test]
    fn rejects_unknown_version_and_garbage() {
        assert!(matches!(
            KeyedDetector::from_bytes(&[]),
            Err(StateError::Empty)
        ));
        assert!(matches!(
            KeyedDetector::from_bytes(&[99, 1]),
            Err(StateError::Version(99))
        ));
        assert!(KeyedDetector::from_bytes(&[STATE_VERSION, 0xff]).is_err());
    }

    #[test]
    fn narrow_keys_run_the_default_algorithm_and_wide_keys_the_multivariate_one() {
        let spec = DetectorSpec {
            algorithm: Algorithm::Seasonal,
            multivariate: Some(MultivariateRule {
                algorithm: Algorithm::Loda,
                min_features: 3,
            }),
            ..DetectorSpec::default()
        };
        for (n, want) in [
            (1, "seasonal"),
            (2, "seasonal"),
            (3, "loda"),
            (4, "loda"),
            (30, "loda"),
        ] {
            assert_eq!(spec.algorithm_for(n).name(), want, "{n} features");
            let d = KeyedDetector::new(&spec, 1, n);
            assert_eq!(d.name(), want, "{n} features");
            // The model behind the name is the same algorithm.
            let fresh = KeyedDetector::new(&spec.for_features(n), 1, n);
            assert_eq!(d, fresh);
        }
        // No rule (min_features = 0 in the configuration): every key the same.
        let off = DetectorSpec {
            multivariate: None,
            ..spec.clone()
        };
        assert_eq!(KeyedDetector::new(&off, 1, 30).name(), "seasonal");
    }

    #[test]
    fn ensembles_and_automl_apply_below_the_feature_threshold_only() {
        for algorithm in [Algorithm::Ensemble, Algorithm::Auto] {
            let spec = DetectorSpec {
                algorithm,
                multivariate: Some(MultivariateRule {
                    algorithm: Algorithm::Loda,
                    min_features: 3,
                }),
                ..DetectorSpec::default()
            };
            assert_eq!(KeyedDetector::new(&spec, 1, 2).name(), algorithm.name());
            assert_eq!(KeyedDetector::new(&spec, 1, 3).name(), "loda");
        }
    }

    #[test]
    fn contamination_is_validated() {
        assert!(Contamination::try_from(0.0).is_err());
        assert!(Contamination::try_from(f64::NAN).is_err());
        assert!(Contamination::try_from(0.6).is_err());
        assert!(Contamination::try_from(0.01).is_ok());
    }
}
