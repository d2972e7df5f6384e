//! `pynomaly score` end to end: the real binary on small CSV and JSONL inputs.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn pynomaly(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pynomaly"))
        .args(args)
        // Keep the test independent of the caller's environment.
        .env_remove("PYNOMALY_CONFIG")
        .env("PYNOMALY_WARMUP", "10")
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
