//! End-to-end behaviour of `pynomaly run` against a real Kafka broker.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::*;
use pynomaly_detection::event::ScoreRecord;

const MINUTE: Duration = Duration::from_secs(60);

fn scores(records: &[Consumed]) -> Vec<ScoreRecord> {
    records
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("score record is JSON"))
        .collect()
}

/// `(partition, offset)` → ground truth `(kind, id)` read back from the input topic.
fn truth(input: &str, n: usize) -> HashMap<(i32, i64), Option<String>> {
    read_topic(input, n, MINUTE)
        .into_iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            let id = v["attributes"]["anomaly_id"].as_str().map(str::to_string);
            ((r.partition, r.offset), id)
        })
        .collect()
}

/// The standard environment with a fresh consumer group and `dir/data` as
/// the data directory.
fn fresh_env(input: &str, output: &str, dlq: &str, dir: &std::path::Path) -> Vec<(String, String)> {
    service_env(input, output, dlq, &unique("g"), &dir.join("data"))
}

/// Scores of an uninterrupted run with default settings over `input`'s `n`
/// records, by (partition, offset).
fn reference_run(
    input: &str,
    output: &str,
    dlq: &str,
    dir: &std::path::Path,
    n: usize,
) -> HashMap<(i32, i64), ScoreRecord> {
    let env = service_env(input, output, dlq, &unique("ref"), &dir.join("ref"));
    let _reference = Service::start(&env, dir);
    let reference: HashMap<(i32, i64), ScoreRecord> = scores(&read_topic(output, n, 2 * MINUTE))
        .into_iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    assert_eq!(
        reference.len(),
        n,
        "the reference run scores every record once"
    );
    reference
}

#[test]
fn scores_every_offset_once_and_catches_injected_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(4);
    let n = 20_000;
    simulate(
        &input,
        &[
            "--count",
            "20000",
            "--rate",
            "0",
            "--keys",
            "50",
            "--start-ms",
            "1700000000000",
            "--anomaly-rate",
            "0.005",
        ],
    );
    let env = fresh_env(&input, &output, &dlq, dir.path());
    let mut svc = Service::start(&env, dir.path());
    svc.wait_ready(MINUTE);
    let out = read_topic(&output, n, 2 * MINUTE);
    let recs = scores(&out);
    let mut seen = HashSet::new();
    for r in &recs {
        assert!(
            seen.insert((r.partition, r.offset)),
            "offset scored twice: {r:?}"
        );
        assert!((0.0..=1.0).contains(&r.score));
        // Two features (cpu, latency_ms): below multivariate_min_features,
        // so the keys keep default_algorithm.
        assert_eq!(r.detector, "seasonal", "{r:?}");
    }
    assert_eq!(
        seen.len(),
        n,
        "every input offset yields one score; log:\n{}",
        svc.log_text()
    );
    let truth = truth(&input, n);
    assert_eq!(truth.len(), n);
    // Event-level recall: an injected anomaly is caught if any point of its window is flagged.
    let mut events: BTreeMap<String, bool> = BTreeMap::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    for r in &recs {
        let label = &truth[&(r.partition, r.offset)];
        if let Some(id) = label {
            let caught = events.entry(id.clone()).or_insert(false);
            *caught |= r.is_anomaly;
        }
        if r.is_anomaly {
            if label.is_some() {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    let recall = events.values().filter(|c| **c).count() as f64 / events.len() as f64;
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    eprintln!(
        "injected anomalies: {}, recall {recall:.3}, precision {precision:.3} (tp {tp}, fp {fp})",
        events.len()
    );
    assert!(
        events.len() >= 30,
        "the stream must carry injected anomalies"
    );
    assert!(recall >= 0.9, "recall {recall:.3}");
    assert!(precision >= 0.5, "precision {precision:.3}");
    // Counters agree with what reached the topic.
    assert_eq!(
        svc.metric_sum("pynomaly_records_in_total", &input),
        n as f64
    );
}

#[test]
fn kill_dash_nine_then_restart_loses_nothing_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let input = unique("in");
    let (out_ref, out_crash, dlq) = (unique("ref"), unique("crash"), unique("dlq"));
    create_topics(&[(&input, 4), (&out_ref, 4), (&out_crash, 4), (&dlq, 1)]);
    let n = 12_000;
    // The crash run consumes while events are still arriving, so the kill lands mid-stream.
    let crash_env = service_env(
        &input,
        &out_crash,
        &dlq,
        &unique("crash"),
        &dir.path().join("crash"),
    );
    let mut crash = Service::start(&crash_env, dir.path());
    crash.wait_ready(MINUTE);
    let mut sim = simulate_bg(
        &input,
        &[
            "--count",
            "12000",
            "--rate",
            "3000",
            "--keys",
            "40",
            "--start-ms",
            "1700000000000",
        ],
    );
    // Wait until some output exists, then kill -9 mid-stream.
    let before = read_topic(&out_crash, 1500, MINUTE);
    assert!(
        before.len() >= 1500,
        "no output before the kill; log:\n{}",
        crash.log_text()
    );
    crash.kill9();
    let mut crash = Service::start(&crash_env, dir.path());
    crash.wait_ready(MINUTE);
    assert!(sim.wait().unwrap().success());
    let reference = reference_run(&input, &out_ref, &dlq, dir.path(), n);
    // Read everything the crash run published (duplicates included) once every offset is there.
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    let (mut by_offset, mut duplicates) = (HashMap::new(), 0);
    while std::time::Instant::now() < deadline {
        let total: i64 = end_offsets(&out_crash, 4).iter().sum();
        let crashed = scores(&read_topic(&out_crash, total as usize, MINUTE));
        by_offset.clear();
        duplicates = 0;
        for r in crashed {
            if let Some(prev) = by_offset.get(&(r.partition, r.offset)) {
                duplicates += 1;
                assert_eq!(prev, &r, "a record scored twice must score identically");
            }
            by_offset.insert((r.partition, r.offset), r);
        }
        if by_offset.len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "crash run: {} distinct offsets, {duplicates} re-scored after the kill",
        by_offset.len()
    );
    assert_eq!(
        by_offset.len(),
        n,
        "no input offset may be missing; log:\n{}",
        crash.log_text()
    );
    for (k, r) in &by_offset {
        assert_eq!(
            r, &reference[k],
            "scores after restart equal the uninterrupted run"
        );
    }
}

#[test]
fn bad_records_are_dead_lettered_and_the_partition_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(1);
    let good = |i: usize| {
        format!(
            r#"{{"key":"k","timestamp":{},"values":{{"x":{}}}}}"#,
            1_700_000_000_000u64 + i as u64,
            i % 5
        )
        .into_bytes()
    };
    let huge = format!(
        r#"{{"key":"k","values":{{"x":1}},"pad":"{}"}}"#,
        "a".repeat(1_000_000)
    )
    .into_bytes();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{not json".to_vec()),
        (
            "wrong_type",
            br#"{"key":"k","values":{"x":"NaN"}}"#.to_vec(),
        ),
        ("malformed", br#"{"key":"k","values":{"x":NaN}}"#.to_vec()),
        ("wrong_type", br#"{"key":"k","values":{"x":[1]}}"#.to_vec()),
        ("empty", Vec::new()),
        ("too_large", huge),
        (
            "feature_mismatch",
            br#"{"key":"k","values":{"y":1}}"#.to_vec(),
        ),
        ("missing_features", br#"{"key":"k"}"#.to_vec()),
    ];
    let mut records: Vec<(Option<&[u8]>, Vec<u8>)> = (0..50).map(|i| (None, good(i))).collect();
    for (_, payload) in &bad {
        records.push((None, payload.clone()));
        records.push((None, good(records.len())));
    }
    produce(&input, Some(0), &records);
    let env = fresh_env(&input, &output, &dlq, dir.path());
    let svc = Service::start(&env, dir.path());
    let dead = read_topic(&dlq, bad.len(), MINUTE);
    assert_eq!(dead.len(), bad.len(), "log:\n{}", svc.log_text());
    for (d, (kind, payload)) in dead.iter().zip(&bad) {
        assert_eq!(d.headers["pynomaly.error.type"], *kind, "{:?}", d.headers);
        assert_eq!(d.headers["pynomaly.source.topic"], input);
        assert!(!d.headers["pynomaly.error.message"].is_empty());
        if *kind == "too_large" {
            assert_eq!(d.headers["pynomaly.truncated"], "true");
            assert_eq!(
                d.headers["pynomaly.original.size"],
                payload.len().to_string()
            );
        } else {
            assert_eq!(&d.payload, payload, "original bytes are kept");
        }
    }
    let good_count = records.len() - bad.len();
    let out = read_topic(&output, good_count, MINUTE);
    assert_eq!(
        out.len(),
        good_count,
        "valid records after bad ones are still scored"
    );
    assert_eq!(
        svc.metric_sum("pynomaly_records_dead_lettered_total", &input),
        bad.len() as f64
    );
    assert_eq!(
        svc.metric_sum(
            "pynomaly_records_dead_lettered_total",
            "error_type=\"too_large\""
        ),
        1.0
    );
}

#[test]
fn avro_records_are_scored_and_bad_avro_is_dead_lettered() {
    use pynomaly_detection::codec::avro::{AvroCodec, AvroEvent};
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(1);
    let codec = AvroCodec::new();
    let ev = |x: f64| {
        codec.encode_event(&AvroEvent {
            key: Some("sensor-1".into()),
            timestamp: Some(1_700_000_000_000),
            values: [("temp".to_string(), x)].into_iter().collect(),
            attributes: Default::default(),
        })
    };
    let records: Vec<(Option<&[u8]>, Vec<u8>)> = vec![
        (None, ev(1.0)),
        (
            None,
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        ),
        (None, ev(f64::NAN)),
        (None, ev(f64::INFINITY)),
        (None, ev(2.0)),
    ];
    produce(&input, Some(0), &records);
    let mut env = fresh_env(&input, &output, &dlq, dir.path());
    env.push(("PYNOMALY_INPUT_FORMAT".into(), "avro".into()));
    let svc = Service::start(&env, dir.path());
    let dead = read_topic(&dlq, 3, MINUTE);
    let kinds: Vec<&str> = dead
        .iter()
        .map(|d| d.headers["pynomaly.error.type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["malformed", "non_finite", "non_finite"],
        "log:\n{}",
        svc.log_text()
    );
    let out = read_topic(&output, 2, MINUTE);
    assert_eq!(out.len(), 2);
    let rec = codec
        .decode_score(&out[1].payload)
        .expect("output follows the input format: Avro");
    assert_eq!(rec.key, "sensor-1");
    assert_eq!(rec.offset, 4);
    assert!(rec.features.contains_key("temp"));
}

#[test]
fn sigterm_drains_checkpoints_commits_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(2);
    let group = unique("g");
    simulate(
        &input,
        &[
            "--count",
            "3000",
            "--rate",
            "0",
            "--keys",
            "10",
            "--start-ms",
            "1700000000000",
        ],
    );
    let data = dir.path().join("data");
    let mut env = service_env(&input, &output, &dlq, &group, &data);
    // Long intervals: only the drain can write the final checkpoint and commit.
    env.push(("PYNOMALY_CHECKPOINT_INTERVAL_MS".into(), "600000".into()));
    env.push(("PYNOMALY_CHECKPOINT_RECORDS".into(), "100000000".into()));
    let mut svc = Service::start(&env, dir.path());
    svc.wait_ready(MINUTE);
    assert_eq!(read_topic(&output, 3000, MINUTE).len(), 3000);
    let started = std::time::Instant::now();
    svc.signal("TERM");
    let status = svc
        .wait_exit(Duration::from_secs(20))
        .expect("exits within the shutdown timeout");
    assert!(status.success(), "exit {status}; log:\n{}", svc.log_text());
    eprintln!("drain took {:?}", started.elapsed());
    let ends = end_offsets(&input, 2);
    assert_eq!(
        committed(&group, &input, 2),
        ends,
        "offsets committed on drain"
    );
    let store = pynomaly_detection::state::Store::open(&data).unwrap();
    for (p, end) in ends.iter().enumerate() {
        assert_eq!(
            store.next_offset(&input, p as i32).unwrap(),
            Some(*end),
            "checkpoint written"
        );
        assert!(!store.load_partition(&input, p as i32).unwrap().is_empty());
    }
}

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    // No broker at this address: alive, never assigned, so never ready.
    let mut env = service_env(&input, &output, &dlq, &unique("g"), &dir.path().join("a"));
    env[0].1 = format!("127.0.0.1:{}", free_port());
    let lonely = Service::start(&env, dir.path());
    let mut ok = false;
    for _ in 0..100 {
        if let Some((200, _)) = lonely.get("/healthz") {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "healthz answers; log:\n{}", lonely.log_text());
    assert_eq!(
        lonely.get("/readyz").unwrap().0,
        503,
        "not ready before assignment"
    );
    let hc = std::process::Command::new(bin())
        .args(["healthcheck", "--port", &lonely.admin_port.to_string()])
        .status()
        .unwrap();
    assert!(
        hc.success(),
        "pynomaly healthcheck exits 0 on a live instance"
    );
    let hc = std::process::Command::new(bin())
        .args(["healthcheck", "--port", &free_port().to_string()])
        .status()
        .unwrap();
    assert_eq!(hc.code(), Some(1), "and 1 when nothing answers");

    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]);
    let env = service_env(&input, &output, &dlq, &unique("g"), &dir.path().join("b"));
    let mut svc = Service::start(&env, dir.path());
    svc.wait_ready(MINUTE);
    assert_eq!(svc.get("/readyz").unwrap().0, 200);
    simulate(&input, &["--count", "200", "--rate", "0", "--keys", "5"]);
    assert_eq!(read_topic(&output, 200, MINUTE).len(), 200);
    let (code, body) = svc.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for name in [
        "pynomaly_records_in_total",
        "pynomaly_records_out_total",
        "pynomaly_processing_duration_seconds_bucket",
        "pynomaly_end_to_end_latency_seconds_bucket",
        "pynomaly_detector_keys",
        "pynomaly_assigned_partitions",
        "pynomaly_ready",
        "pynomaly_process_resident_memory_bytes",
        "pynomaly_data_dir_free_bytes",
        "pynomaly_memory_limit_bytes",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert_eq!(
        svc.wait_metric("pynomaly_records_out_total", &input, 200.0),
        200.0
    );
    assert_eq!(svc.metric_sum("pynomaly_ready", ""), 1.0);
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    for (var, value) in [
        ("PYNOMALY_DEFAULT_CONTAMINATION", "2"),
        ("PYNOMALY_DEFAULT_ALGORITHM", "magic"),
        ("PYNOMALY_MULTIVARIATE_ALGORITHM", "magic"),
        ("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "1"),
        ("PYNOMALY_BATCH_SIZE", "many"),
        ("PYNOMALY_ENV", "prod-ish"),
        ("PYNOMALY_ADMIN_PORT", "99999"),
        ("PYNOMALY_OUTPUT_TOPIC", "no spaces"),
    ] {
        let out = std::process::Command::new(bin())
            .arg("run")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var),
            "{var}={value}: message must name the key: {stderr}"
        );
    }
}

#[test]
fn key_pattern_overrides_choose_the_detector() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(1);
    let config = dir.path().join("pynomaly.toml");
    std::fs::write(
        &config,
        format!(
            "[[overrides]]\ntopic = \"{input}\"\nkey_pattern = \"card-*\"\nalgorithm = \"mad\"\n"
        ),
    )
    .unwrap();
    let record =
        |key: &str| format!(r#"{{"key":"{key}","values":{{"amount":12.5}}}}"#).into_bytes();
    produce(
        &input,
        Some(0),
        &[(None, record("card-7")), (None, record("host-1"))],
    );
    let mut env = fresh_env(&input, &output, &dlq, dir.path());
    env.push(("PYNOMALY_CONFIG".into(), config.display().to_string()));
    let svc = Service::start(&env, dir.path());
    let out = scores(&read_topic(&output, 2, MINUTE));
    assert_eq!(out.len(), 2, "log:\n{}", svc.log_text());
    let by_key: HashMap<&str, &str> = out
        .iter()
        .map(|r| (r.key.as_str(), r.detector.as_str()))
        .collect();
    assert_eq!(by_key["card-7"], "mad");
    assert_ne!(
        by_key["host-1"], "mad",
        "keys matching no rule keep the default"
    );
}

#[test]
fn a_small_key_cache_evicts_reloads_and_scores_exactly_like_an_unbounded_one() {
    bounded_memory_scores_like_unbounded(&[("PYNOMALY_CACHE_SIZE", "5")], 10.0);
}

#[test]
fn a_small_memory_limit_evicts_reloads_and_scores_exactly_like_an_unbounded_one() {
    // 0.00003 GiB: half of it for detector states, split over 2 partitions
    // = 8 KB each, a handful of young seasonal keys of two features.
    bounded_memory_scores_like_unbounded(&[("PYNOMALY_MEMORY_LIMIT_GB", "0.00003")], 30.0);
}

/// 60 keys over 2 partitions under `bound`, checkpoints every 100 records:
/// most records meet an evicted key, and every score equals an unbounded run's.
fn bounded_memory_scores_like_unbounded(bound: &[(&str, &str)], max_keys: f64) {
    let dir = tempfile::tempdir().unwrap();
    let input = unique("in");
    let (out_ref, out_small, dlq) = (unique("ref"), unique("small"), unique("dlq"));
    create_topics(&[(&input, 2), (&out_ref, 2), (&out_small, 2), (&dlq, 1)]);
    let batch = |count: &str, start_ms: &str| {
        simulate(
            &input,
            &[
                "--count",
                count,
                "--rate",
                "0",
                "--keys",
                "60",
                "--start-ms",
                start_ms,
            ],
        )
    };
    batch("4000", "1700000000000");
    let mut small_env = service_env(
        &input,
        &out_small,
        &dlq,
        &unique("small"),
        &dir.path().join("small"),
    );
    small_env.extend(bound.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    small_env.push(("PYNOMALY_CHECKPOINT_RECORDS".into(), "100".into()));
    let mut small = Service::start(&small_env, dir.path());
    small.wait_ready(MINUTE);
    assert_eq!(read_topic(&out_small, 4000, MINUTE).len(), 4000);
    let evicted = small.metric_sum("pynomaly_detector_keys_evicted_total", "");
    let loaded = small.metric_sum("pynomaly_detector_keys_loaded_total", "");
    eprintln!(
        "first run: {evicted} keys evicted, {loaded} loaded back, {} keys and {} state bytes held",
        small.metric_sum("pynomaly_detector_keys", ""),
        small.metric_sum("pynomaly_detector_state_bytes", "")
    );
    assert!(
        evicted > 100.0 && loaded > 100.0,
        "{evicted} evicted, {loaded} loaded"
    );
    small.signal("TERM");
    assert!(small.wait_exit(Duration::from_secs(20)).unwrap().success());
    // A restart restores what fits; the others load when they show up.
    batch("2000", "1700100000000");
    let mut small = Service::start(&small_env, dir.path());
    small.wait_ready(MINUTE);
    let n = 6000;
    let bounded: HashMap<(i32, i64), ScoreRecord> = scores(&read_topic(&out_small, n, 2 * MINUTE))
        .into_iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    assert_eq!(bounded.len(), n, "log:\n{}", small.log_text());
    // Once the last records are checkpointed (every 500 ms), the keys in
    // memory are back within the bound (60 without it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut held = small.metric_sum("pynomaly_detector_keys", "");
    while held > max_keys && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        held = small.metric_sum("pynomaly_detector_keys", "");
    }
    eprintln!("keys held after the last checkpoint: {held}");
    assert!(held <= max_keys, "{held} keys held, bound {max_keys}");
    assert!(small.metric_sum("pynomaly_detector_keys_loaded_total", "") >= 50.0);
    let reference = reference_run(&input, &out_ref, &dlq, dir.path(), n);
    for (k, r) in reference {
        assert_eq!(
            bounded[&k], r,
            "a key reloaded from RocksDB scores as if it had stayed in memory"
        );
    }
}

#[test]
fn suppressed_exceedances_say_why_in_the_score_record() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, dlq) = fresh_topics(1);
    // One key, a point every 5 minutes for 3 days, and a two-point job at
    // 03:20 every day: day 1 alarms once (its second point is the same
    // incident), days 2 and 3 are the daily pattern.
    let t0: i64 = 1_700_006_400_000; // a midnight, UTC
    let n = 288 * 3;
    let job = |i: usize| i % 288 == 40 || i % 288 == 41;
    let records: Vec<(Option<&[u8]>, Vec<u8>)> = (0..n)
        .map(|i| {
            let v = 10.0 + ((i * 7919) % 13) as f64 * 0.1 + if job(i) { 30.0 } else { 0.0 };
            let ts = t0 + i as i64 * 300_000;
            (
                None,
                format!(r#"{{"key":"db-1","timestamp":{ts},"values":{{"load":{v}}}}}"#)
                    .into_bytes(),
            )
        })
        .collect();
    produce(&input, Some(0), &records);
    let mut env = fresh_env(&input, &output, &dlq, dir.path());
    env.push(("PYNOMALY_SUPPRESSION".into(), "20".into()));
    let svc = Service::start(&env, dir.path());
    let mut out = scores(&read_topic(&output, n, MINUTE));
    assert_eq!(out.len(), n, "log:\n{}", svc.log_text());
    out.sort_by_key(|r| r.offset);
    for r in &out {
        let exceeds = !r.warming_up && r.raw_score > r.threshold;
        assert_eq!(
            r.suppressed.is_some(),
            exceeds && !r.is_anomaly,
            "suppressed is set exactly for unflagged exceedances: {r:?}"
        );
    }
    let at = |i: usize| (out[i].is_anomaly, out[i].suppressed.as_deref());
    assert_eq!(at(40), (true, None));
    assert_eq!(at(41), (false, Some("incident")));
    for day in 1..3 {
        assert_eq!(
            at(day * 288 + 40),
            (false, Some("daily_pattern")),
            "day {day}"
        );
        assert_eq!(
            at(day * 288 + 41),
            (false, Some("daily_pattern")),
            "day {day}"
        );
    }
}
