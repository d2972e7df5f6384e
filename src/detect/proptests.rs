//! Contract tests run over every algorithm in [`Algorithm::NAMES`]: scores
//! bounded and never NaN for any input, snapshot → restore → continue
//! identical to an uninterrupted run, same seed same scores.

use proptest::prelude::*;

use super::*;

fn all_algorithms() -> Vec<Algorithm> {
    Algorithm::NAMES
        .iter()
        .map(|n| n.parse().expect("every listed name parses"))
        .collect()
}

fn spec(algorithm: Algorithm, threshold: ThresholdMode, suppression: u32) -> DetectorSpec {
    DetectorSpec {
        algorithm,
        warmup: 5,
        suppression,
        threshold,
        ..DetectorSpec::default()
    }
}

/// Any f64, weighted towards the nasty ones.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e3f64..1e3,
        1 => proptest::num::f64::ANY,
        1 => Just(f64::NAN),
        1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::MAX), Just(-f64::MAX)],
        1 => prop_oneof![Just(f64::MIN_POSITIVE / 4.0), Just(-5e-324), Just(0.0), Just(-0.0)],
        1 => prop_oneof![Just(1e300), Just(-1e300), Just(1e-300)],
    ]
}

fn points() -> impl Strategy<Value = (usize, Vec<Vec<f64>>)> {
    (1usize..4).prop_flat_map(|d| {
        (
            Just(d),
            prop::collection::vec(prop::collection::vec(any_value(), d), 1..120),
        )
    })
}

fn finite_points() -> impl Strategy<Value = (usize, Vec<Vec<f64>>)> {
    (1usize..4).prop_flat_map(|d| {
        (
            Just(d),
            prop::collection::vec(prop::collection::vec(-1e6f64..1e6, d), 2..300),
        )
    })
}

fn check(s: &Score) -> Result<(), TestCaseError> {
    prop_assert!(
        s.score.is_finite() && (0.0..=1.0).contains(&s.score),
        "score {s:?}"
    );
    prop_assert!(s.raw.is_finite() && s.raw >= 0.0, "raw {s:?}");
    prop_assert!(!s.threshold.is_nan(), "threshold {s:?}");
    for e in &s.features {
        prop_assert!(
            !e.contribution.is_nan() && (0.0..=1.0).contains(&e.contribution),
            "{e:?}"
        );
        prop_assert!(
            !e.expected.is_nan() && !e.lower.is_nan() && !e.upper.is_nan(),
            "{e:?}"
        );
    }
    if !s.warming_up {
        prop_assert_eq!(s.is_anomaly, s.is_anomaly && s.score >= 0.5);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scores_are_bounded_and_never_nan((d, pts) in points(), spot in any::<bool>()) {
        let mode = if spot { ThresholdMode::Spot } else { ThresholdMode::Quantile };
        for a in all_algorithms() {
            let mut det = KeyedDetector::new(&spec(a, mode, 3), 11, d);
            for p in &pts {
                check(&det.update(p))?;
            }
            let mut back = KeyedDetector::from_bytes(&det.to_bytes()).expect("own snapshot decodes");
            check(&back.update(&pts[0]))?;
        }
    }

    #[test]
    fn snapshot_restore_continue_is_identical((d, pts) in finite_points(), cut in 0.0f64..1.0) {
        let cut = ((pts.len() as f64 * cut) as usize).min(pts.len() - 1);
        for a in all_algorithms() {
            let s = spec(a, ThresholdMode::Quantile, 2);
            let mut a1 = KeyedDetector::new(&s, 5, d);
            let mut b1 = KeyedDetector::new(&s, 5, d);
            for p in &pts[..cut] {
                a1.update(p);
                b1.update(p);
            }
            let mut b1 = KeyedDetector::from_bytes(&b1.to_bytes()).expect("decodes");
            for p in &pts[cut..] {
                prop_assert_eq!(a1.update(p), b1.update(p), "{}", a);
            }
        }
    }

    #[test]
    fn same_seed_same_scores((d, pts) in finite_points(), seed in any::<u64>()) {
        for a in all_algorithms() {
            let s = spec(a, ThresholdMode::Spot, 0);
            let mut x = KeyedDetector::new(&s, seed, d);
            let mut y = KeyedDetector::new(&s, seed, d);
            for p in &pts {
                prop_assert_eq!(x.update(p), y.update(p), "{}", a);
            }
        }
    }
}

/// The smallest possible detector, as a worked example of the trait: the
/// absolute distance to the previous value.
struct Dummy {
    last: Option<f64>,
}

impl OnlineDetector for Dummy {
    fn update(&mut self, x: &[f64], threshold: f64, explain: &mut Vec<FeatureExplanation>) -> f64 {
        explain.clear();
        let raw = self.last.map_or(0.0, |l| (x[0] - l).abs());
        let expected = self.last.unwrap_or(x[0]);
        explain.push(FeatureExplanation {
            expected,
            lower: expected - threshold,
            upper: expected + threshold,
            contribution: 1.0,
        });
        self.last = Some(x[0]);
        raw
    }
}

#[test]
fn dummy_detector_follows_the_contract() {
    let mut d = Dummy { last: None };
    let mut ex = Vec::new();
    assert_eq!(d.update(&[1.0], 3.0, &mut ex), 0.0);
    assert_eq!(d.update(&[5.0], 3.0, &mut ex), 4.0);
    assert_eq!(ex[0].expected, 1.0);
}
