//! Golden detector states: snapshots written by an earlier build must still
//! restore, and continue with bit-identical scores, in this build.
//!
//! Each algorithm learns a fixed series, its snapshot is stored in
//! `tests/golden/<name>.state` and the scores of the next points in
//! `tests/golden/<name>.scores`. A change to a state encoding must bump the
//! version byte and keep reading the old one; only then re-bless with
//! `PYNOMALY_BLESS=1 cargo test --release --test golden_state`.

use std::path::PathBuf;

use pynomaly_detection::detect::{Algorithm, DetectorSpec, KeyedDetector, SplitMix64};

const LEARN: usize = 400;
const CONTINUE: usize = 60;

fn series(n: usize) -> Vec<[f64; 2]> {
    let mut rng = SplitMix64::new(20_261_126);
    (0..n)
        .map(|i| {
            let spike = if i % 97 == 50 { 9.0 } else { 0.0 };
            [
                10.0 + rng.next_gaussian() + spike,
                100.0 + 5.0 * rng.next_gaussian(),
            ]
        })
        .collect()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn snapshots_from_earlier_builds_restore_and_continue_identically() {
    let bless = std::env::var_os("PYNOMALY_BLESS").is_some();
    let data = series(LEARN + CONTINUE);
    for name in Algorithm::NAMES {
        let spec = DetectorSpec {
            algorithm: name.parse().unwrap(),
            ..DetectorSpec::default()
        };
        let (state_path, scores_path) = (
            dir().join(format!("{name}.state")),
            dir().join(format!("{name}.scores")),
        );
        if bless {
            let mut d = KeyedDetector::new(&spec, 42, 2);
            for p in &data[..LEARN] {
                d.update(p);
            }
            std::fs::write(&state_path, d.to_bytes()).unwrap();
            let scores: Vec<String> = data[LEARN..]
                .iter()
                .map(|p| format!("{:016x}", d.update(p).score.to_bits()))
                .collect();
            std::fs::write(&scores_path, scores.join("\n") + "\n").unwrap();
            continue;
        }
        let bytes = std::fs::read(&state_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bless with PYNOMALY_BLESS=1)",
                state_path.display()
            )
        });
        let mut d = KeyedDetector::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name}: a golden snapshot no longer restores: {e}"));
        let want = std::fs::read_to_string(&scores_path).unwrap();
        for (i, (p, w)) in data[LEARN..].iter().zip(want.lines()).enumerate() {
            let got = format!("{:016x}", d.update(p).score.to_bits());
            assert_eq!(
                got, w,
                "{name}: score {i} after restoring the golden snapshot differs"
            );
        }
    }
}

#[test]
fn restoring_mid_stream_continues_like_the_uninterrupted_run() {
    // Long enough to cross several HST windows (250) and SPOT's start-up (500).
    let data = series(1_300);
    for name in Algorithm::NAMES {
        let spec = DetectorSpec {
            algorithm: name.parse().unwrap(),
            ..DetectorSpec::default()
        };
        let mut reference = KeyedDetector::new(&spec, 7, 2);
        let want: Vec<u64> = data
            .iter()
            .map(|p| reference.update(p).score.to_bits())
            .collect();
        for cut in [1, 249, 250, 251, 400, 503, 777, 1_000] {
            let mut d = KeyedDetector::new(&spec, 7, 2);
            for p in &data[..cut] {
                d.update(p);
            }
            let mut d = KeyedDetector::from_bytes(&d.to_bytes()).unwrap();
            for (i, p) in data.iter().enumerate().skip(cut) {
                assert_eq!(
                    d.update(p).score.to_bits(),
                    want[i],
                    "{name}: restored at {cut}, point {i}"
                );
            }
        }
    }
}
