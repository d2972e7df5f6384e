//! Streaming (prequential) ROC AUC and rows/s of the multivariate detectors
//! over the ODDS CSV files (`x0..xN,label`, label 1 = outlier).
//!
//! ```text
//! CARGO_TARGET_DIR=/var/tmp/pynomaly-target \
//!   cargo run --release --example eval_odds -- ../shared/odds [default,hst,rcf,loda]
//! ```
//! Each file is streamed in order through one fresh [`KeyedDetector`] (the
//! service's code path: model, calibrator, explanation) with the algorithm's
//! default parameters; every row is scored *before* it is learned.
//!
//! `default` (the first column when no list is given) is the *default
//! multivariate configuration*: the detector `config/default.toml` gives a key
//! with the file's feature count (`Config::defaults().detector_spec()`, then
//! `KeyedDetector::new` resolves `multivariate_algorithm` /
//! `default_algorithm` by feature count), seeded as `pynomaly score` seeds a
//! CSV without a key column, so its AUC is that of `pynomaly score FILE`'s
//! `raw_score`. The detector it picked is printed beside it. AUC is the
//! Mann–Whitney statistic of the raw scores (ties count one half); rows/s
//! times only the updates, on one thread. Prints a markdown table beside
//! River's numbers from `odds/README.md`.
//!
//! Besides algorithm names, `hst:TxD[xW[xR]]` runs Half-Space Trees with `T`
//! trees of depth `D`, window `W` and `R` reference windows (other parameters
//! default) as a bare model, without the calibrator, e.g. `hst:10x8x250x1` for
//! River's shape.
//!
//! Environment: `EVAL_REPEAT=N` runs every file `N` times (a fresh detector
//! each time, same scores) and reports the median rows/s (`EVAL_MIN=1`: the
//! fastest run, for A/B comparisons on a noisy machine); `EVAL_SEED=S`
//! replaces the seed 42 (AUC spread over seeds).

use std::time::Instant;

use pynomaly_detection::config::Config;
use pynomaly_detection::detect::hst::{HalfSpaceTrees, HstParams};
use pynomaly_detection::detect::{
    seed_for_key, Algorithm, DetectorSpec, FeatureExplanation, KeyedDetector, OnlineDetector, Score,
};

/// River 0.26.1 `MinMaxScaler | HalfSpaceTrees(seed=42)` from `odds/README.md`:
/// (file stem, AUC, rows/s).
const RIVER: &[(&str, f64, f64)] = &[
    ("cardio", 0.843, 9.4e3),
    ("satimage-2", 0.818, 11.6e3),
    ("thyroid", 0.861, 20.0e3),
    ("mammography", 0.833, 20.9e3),
    ("shuttle", 0.961, 16.8e3),
    ("smtp", 0.733, 14.3e3),
];

/// ROC AUC by the Mann–Whitney statistic with average ranks for ties.
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0, 0u64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Reads `x0..xN,label` rows; unparsable cells become NaN (the detectors
/// treat them as missing).
fn load(path: &std::path::Path) -> Result<(Vec<Vec<f64>>, Vec<bool>)> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut v: Vec<f64> = line
            .split(',')
            .map(|c| c.trim().parse::<f64>().unwrap_or(f64::NAN))
            .collect();
        let label = v.pop().unwrap_or(0.0);
        labels.push(label >= 0.5);
        rows.push(v);
    }
    Ok((rows, labels))
}

/// What to evaluate: the default configuration, an algorithm through the
/// service path, or a bare HST of a given shape.
#[derive(Clone, Copy)]
enum Candidate {
    Default,
    Keyed(Algorithm),
    Hst(HstParams),
}

impl Candidate {
    fn parse(s: &str) -> std::result::Result<Candidate, String> {
        if s == "default" {
            return Ok(Candidate::Default);
        }
        if let Some(shape) = s.strip_prefix("hst:") {
            let nums: Vec<u32> = shape
                .split('x')
                .map(|v| v.parse().map_err(|e| format!("{s}: {e}")))
                .collect::<std::result::Result<_, _>>()?;
            let mut params = HstParams::default();
            match nums[..] {
                [t, d] => (params.trees, params.depth) = (t, d),
                [t, d, w] => (params.trees, params.depth, params.window) = (t, d, w),
                [t, d, w, k] => {
                    (params.trees, params.depth, params.window, params.references) = (t, d, w, k)
                }
                _ => return Err(format!("expected hst:TREESxDEPTH[xWINDOW[xREFS]], got {s}")),
            }
            return Ok(Candidate::Hst(params.validate()?));
        }
        s.parse().map(Candidate::Keyed)
    }

    fn label(self) -> String {
        match self {
            Candidate::Default => "default".to_string(),
            Candidate::Keyed(a) => a.to_string(),
            Candidate::Hst(p) => format!(
                "hst {}x{} w{} r{} (model)",
                p.trees, p.depth, p.window, p.references
            ),
        }
    }

    /// Raw scores of every row (prequential), the seconds spent updating
    /// (median over `repeat` identical fresh runs, or the fastest with
    /// `EVAL_MIN`) and the detector's name.
    fn run(self, rows: &[Vec<f64>], repeat: usize) -> (Vec<f64>, f64, &'static str) {
        let mut times = Vec::with_capacity(repeat);
        let (mut scores, mut name) = (Vec::new(), "");
        for _ in 0..repeat.max(1) {
            let (s, t, n) = self.run_once(rows);
            (scores, name) = (s, n);
            times.push(t);
        }
        times.sort_by(f64::total_cmp);
        let pick = if std::env::var_os("EVAL_MIN").is_some() {
            0
        } else {
            times.len() / 2
        };
        (scores, times[pick], name)
    }

    /// One fresh detector over every row.
    fn run_once(self, rows: &[Vec<f64>]) -> (Vec<f64>, f64, &'static str) {
        let seed: u64 = std::env::var("EVAL_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(42);
        let d = rows.first().map_or(0, Vec::len);
        let mut scores = Vec::with_capacity(rows.len());
        let start;
        let mut name = "hst";
        match self {
            Candidate::Default | Candidate::Keyed(_) => {
                let (spec, seed) = match self {
                    Candidate::Keyed(algorithm) => (
                        DetectorSpec {
                            algorithm,
                            warmup: 0,
                            ..DetectorSpec::default()
                        },
                        seed,
                    ),
                    _ => {
                        // Exactly what the service and `pynomaly score` build.
                        let spec = Config::defaults()
                            .detector_spec()
                            .expect("the embedded defaults are valid");
                        let seed = seed_for_key(spec.seed, b"");
                        (spec, seed)
                    }
                };
                let mut det = KeyedDetector::new(&spec, seed, d);
                name = det.name();
                let mut out = Score::empty(d);
                start = Instant::now();
                for r in rows {
                    det.update_into(r, &mut out);
                    scores.push(out.raw);
                }
            }
            Candidate::Hst(params) => {
                let mut det = HalfSpaceTrees::new(d, params, seed);
                let mut ex: Vec<FeatureExplanation> = Vec::with_capacity(d);
                start = Instant::now();
                for r in rows {
                    scores.push(det.update(r, 0.0, &mut ex));
                }
            }
        }
        (scores, start.elapsed().as_secs_f64(), name)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .cloned()
        .unwrap_or_else(|| "../shared/odds".into());
    let algos: Vec<Candidate> = match args.get(1) {
        Some(list) => list
            .split(',')
            .map(Candidate::parse)
            .collect::<std::result::Result<_, _>>()?,
        None => [Candidate::Default]
            .into_iter()
            .chain([Algorithm::Hst, Algorithm::Rcf, Algorithm::Loda].map(Candidate::Keyed))
            .collect(),
    };
    let repeat: usize = std::env::var("EVAL_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    print!("| file | rows | features | River AUC | River rows/s |");
    for a in &algos {
        if let Candidate::Default = a {
            print!(" default detector |");
        }
        let a = a.label();
        print!(" {a} AUC | {a} rows/s |");
    }
    println!();
    print!("|---|---|---|---|---|");
    for a in &algos {
        if let Candidate::Default = a {
            print!("---|");
        }
        print!("---|---|");
    }
    println!();
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        let (rows, labels) = load(&path)?;
        let river = RIVER.iter().find(|r| r.0 == stem);
        print!(
            "| {stem} | {} | {} |",
            rows.len(),
            rows.first().map_or(0, Vec::len)
        );
        match river {
            Some((_, a, r)) => print!(" {a:.3} | {:.1}k |", r / 1e3),
            None => print!(" – | – |"),
        }
        for &candidate in &algos {
            let (scores, secs, name) = candidate.run(&rows, repeat);
            if let Candidate::Default = candidate {
                print!(" {name} |");
            }
            let a = auc(&scores, &labels);
            let rate = rows.len() as f64 / secs;
            let mark = match river {
                Some((_, ra, _)) if a >= *ra => "",
                Some(_) => " (below River)",
                None => "",
            };
            print!(" {a:.3}{mark} | {:.1}k |", rate / 1e3);
        }
        println!();
    }
    Ok(())
}
