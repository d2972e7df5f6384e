//! `pynomaly score` end to end: the real binary on small CSV and JSONL inputs.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn pynomaly(args: &[&str], stdin: &str) -> Output {
    pynomaly_with(args, &[], stdin)
}

fn pynomaly_with(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pynomaly"))
        .args(args)
        // Keep the test independent of the caller's environment.
        .env_remove("PYNOMALY_CONFIG")
        .env_remove("PYNOMALY_DEFAULT_ALGORITHM")
        .env_remove("PYNOMALY_MULTIVARIATE_ALGORITHM")
        .env_remove("PYNOMALY_MULTIVARIATE_MIN_FEATURES")
        .env_remove("PYNOMALY_ENABLE_ENSEMBLE")
        .env_remove("PYNOMALY_ENABLE_AUTOML")
        .env("PYNOMALY_WARMUP", "10")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin accepts the input");
    child.wait_with_output().expect("the binary exits")
}

fn series_csv(n: usize, spike_at: usize) -> String {
    let mut s = String::from("timestamp,host,cpu\n");
    for i in 0..n {
        let v = if i == spike_at {
            50.0
        } else {
            (i % 5) as f64 * 0.1 + 1.0
        };
        s.push_str(&format!("{i},a,{v}\n"));
    }
    s
}

#[test]
fn csv_output_repeats_input_columns_and_adds_scores() {
    let out = pynomaly(
        &["score", "-", "-o", "-", "--key-column", "host"],
        &series_csv(300, 250),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,host,cpu,anomaly_score,raw_score,is_anomaly,warming_up")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0][6], "true", "first row is warming up");
    let spike = &rows[250];
    assert_eq!(spike[2], "50");
    assert_eq!(spike[5], "true", "the spike is flagged: {spike:?}");
    for r in &rows {
        let s: f64 = r[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
    }
}

#[test]
fn bad_rows_are_reported_with_line_numbers_and_skipped() {
    let input = "timestamp,cpu\n1,0.5\n2,oops\n3,0.7\n4\n5,inf\n6,0.6\n";
    let out = pynomaly(&["score", "-", "--algorithm", "ewma"], input);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":3:") && stderr.contains("oops"),
        "{stderr}"
    );
    assert!(stderr.contains(":5:"), "{stderr}");
    assert!(stderr.contains(":6:"), "{stderr}");
    assert!(stderr.contains("3 bad rows skipped"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1 + 3);
}

#[test]
fn jsonl_keys_start_fresh_and_records_keep_their_fields() {
    let mut input = String::new();
    for i in 0..40 {
        for key in ["h1", "h2"] {
            input.push_str(&format!(
                "{{\"key\":\"{key}\",\"timestamp\":{i},\"values\":{{\"cpu\":{},\"mem\":2.0}}}}\n",
                (i % 3) as f64
            ));
        }
    }
    input.push_str("not json\n");
    let out = pynomaly(&["score", "-", "--algorithm", "mad"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 80);
    // Both keys warm up on their own first points.
    assert_eq!(lines[0]["warming_up"], true);
    assert_eq!(lines[1]["warming_up"], true);
    assert_eq!(lines[1]["key"], "h2");
    assert_eq!(lines[1]["values"]["mem"], 2.0);
    assert_eq!(lines[79]["warming_up"], false);
    assert!(lines[79]["anomaly_score"].as_f64().is_some());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":81:") && stderr.contains("1 bad rows skipped"),
        "{stderr}"
    );
}

#[test]
fn same_input_gives_the_same_scores() {
    let input = series_csv(200, 150);
    let a = pynomaly(&["score", "-"], &input);
    let b = pynomaly(&["score", "-"], &input);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

/// `n` rows of `width` features that move together (a shared level plus a
/// little per-feature wobble); row `spike_at` breaks the joint pattern.
fn wide_csv(n: usize, width: usize, spike_at: usize) -> String {
    let names: Vec<String> = (0..width).map(|j| format!("m{j}")).collect();
    let mut s = format!("timestamp,{}\n", names.join(","));
    for i in 0..n {
        let level = (i % 7) as f64;
        let row: Vec<String> = (0..width)
            .map(|j| {
                let v = level + 0.1 * ((i * (j + 3)) % 5) as f64;
                let v = if i == spike_at && j == 0 { v + 40.0 } else { v };
                format!("{v}")
            })
            .collect();
        s.push_str(&format!("{i},{}\n", row.join(",")));
    }
    s
}

fn detector_of(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("scored "))
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    let after = summary.split(" with ").nth(1).expect("`with <detector>`");
    after.split(':').next().unwrap().to_string()
}

#[test]
fn wide_csv_is_scored_by_the_multivariate_algorithm_by_default() {
    let input = wide_csv(400, 4, 350);
    let out = pynomaly(&["score", "-"], &input);
    assert_eq!(detector_of(&out), "loda");
    // The joint outlier stands out among the scored rows.
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 400);
    let raw = |r: &Vec<&str>| r[6].parse::<f64>().unwrap();
    let top = rows[20..]
        .iter()
        .enumerate()
        .max_by(|a, b| raw(a.1).total_cmp(&raw(b.1)))
        .map(|(i, _)| i + 20)
        .unwrap();
    assert_eq!(top, 350, "the spike has the highest raw score");
    // Three features is the threshold; two stay with `default_algorithm`.
    assert_eq!(
        detector_of(&pynomaly(&["score", "-"], &wide_csv(50, 3, 0))),
        "loda"
    );
    assert_eq!(
        detector_of(&pynomaly(&["score", "-"], &wide_csv(50, 2, 0))),
        "seasonal"
    );
    assert_eq!(
        detector_of(&pynomaly(&["score", "-"], &series_csv(50, 0))),
        "seasonal"
    );
}

#[test]
fn algorithm_flag_and_configuration_change_the_wide_detector() {
    let input = wide_csv(60, 4, 50);
    assert_eq!(
        detector_of(&pynomaly(&["score", "-", "--algorithm", "ewma"], &input)),
        "ewma"
    );
    assert_eq!(
        detector_of(&pynomaly_with(
            &["score", "-"],
            &[("PYNOMALY_MULTIVARIATE_ALGORITHM", "hst")],
            &input
        )),
        "hst"
    );
    assert_eq!(
        detector_of(&pynomaly_with(
            &["score", "-"],
            &[("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "0")],
            &input
        )),
        "seasonal"
    );
    assert_eq!(
        detector_of(&pynomaly_with(
            &["score", "-"],
            &[("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "5")],
            &input
        )),
        "seasonal"
    );
}

#[test]
fn invalid_multivariate_settings_exit_2_naming_the_key() {
    for (var, value) in [
        ("PYNOMALY_MULTIVARIATE_ALGORITHM", "magic"),
        ("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "1"),
        ("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "many"),
    ] {
        let out = pynomaly_with(&["score", "-"], &[(var, value)], "cpu\n1\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

/// Rows (`timestamp` text, value) every 5 minutes over 6 days, with a job
/// spike at about 03:20 every day from day 2 on (a few minutes early or late).
fn daily_job_csv() -> (String, Vec<usize>) {
    let mut s = String::from("timestamp,value\n");
    let mut job_rows = Vec::new();
    for i in 0..288 * 6 {
        let (day, phase) = (i / 288, i % 288);
        let job = day >= 2 && phase == 40 + (day % 3);
        if job {
            job_rows.push(i);
        }
        let v = 10.0 + ((i * 7919) % 13) as f64 * 0.1 + if job { 30.0 } else { 0.0 };
        let minutes = i * 5;
        s.push_str(&format!(
            "2024-01-{:02} {:02}:{:02}:00,{v}\n",
            1 + minutes / 1440,
            minutes % 1440 / 60,
            minutes % 60
        ));
    }
    (s, job_rows)
}

#[test]
fn a_job_at_the_same_time_every_day_alarms_on_its_first_day_only() {
    let (input, job_rows) = daily_job_csv();
    let flagged = |env: &[(&str, &str)]| -> Vec<bool> {
        let out = pynomaly_with(&["score", "-", "-o", "-"], env, &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        job_rows
            .iter()
            .map(|&i| rows[i].split(',').nth(4) == Some("true"))
            .collect()
    };
    // The service default: the timestamp column drives the daily-recurrence rule.
    assert_eq!(flagged(&[]), [true, false, false, false]);
    assert_eq!(
        flagged(&[("PYNOMALY_RECURRENCE_TOLERANCE_SECS", "0")]),
        [true, true, true, true],
        "with the rule off every day's job alarms"
    );
}
