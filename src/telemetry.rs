//! Logging set-up and every metric name in one place.
//!
//! Names follow `pynomaly_<noun>_<unit>[_total]` in base units. Labels are
//! bounded: topic, partition, detector, error_type, stage — never an entity key.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{Config, Environment};

/// Records consumed, by `topic`, `partition`.
pub const RECORDS_IN: &str = "pynomaly_records_in_total";
/// Score records published, by `topic`, `partition` (source).
pub const RECORDS_OUT: &str = "pynomaly_records_out_total";
/// Records sent to the dead-letter topic, by `topic`, `partition`, `error_type`.
pub const RECORDS_DEAD_LETTERED: &str = "pynomaly_records_dead_lettered_total";
/// Records flagged, by `topic`, `partition`, `detector`.
pub const ANOMALIES: &str = "pynomaly_anomalies_total";
/// Errors, by `error_type` and `stage` (decode, detect, produce, checkpoint, consume, commit).
pub const ERRORS: &str = "pynomaly_errors_total";
/// Receipt of a record to delivery of its score, by `topic`, `partition`.
pub const PROCESSING_DURATION: &str = "pynomaly_processing_duration_seconds";
/// Now minus event time when the score is published, by `topic`, `partition`.
pub const END_TO_END_LATENCY: &str = "pynomaly_end_to_end_latency_seconds";
/// High watermark minus next offset to process, by `topic`, `partition`.
pub const CONSUMER_LAG: &str = "pynomaly_consumer_lag_records";
/// Duration of one checkpoint (WriteBatch write).
pub const CHECKPOINT_DURATION: &str = "pynomaly_checkpoint_duration_seconds";
/// Bytes written by the last checkpoint.
pub const CHECKPOINT_SIZE: &str = "pynomaly_checkpoint_size_bytes";
/// Checkpoints written, by `reason` (interval, records, revoke, shutdown).
pub const CHECKPOINTS: &str = "pynomaly_checkpoints_total";
/// RocksDB live data size.
pub const STATE_SIZE: &str = "pynomaly_state_size_bytes";
/// Entity keys held, by `partition` (and `topic`).
pub const DETECTOR_KEYS: &str = "pynomaly_detector_keys";
/// Serialized size of the detector states held in memory, by partition.
pub const DETECTOR_STATE_BYTES: &str = "pynomaly_detector_state_bytes";
/// Keys dropped from memory beyond `cache_size` (their state stays in RocksDB).
pub const KEYS_EVICTED: &str = "pynomaly_detector_keys_evicted_total";
/// Evicted keys brought back from RocksDB when their next record arrived.
pub const KEYS_LOADED: &str = "pynomaly_detector_keys_loaded_total";
/// Partitions currently assigned.
pub const ASSIGNED_PARTITIONS: &str = "pynomaly_assigned_partitions";
/// 1 when ready (assigned partitions restored and consumed), else 0.
pub const READY: &str = "pynomaly_ready";
/// Resident memory of the process.
pub const RESIDENT_MEMORY: &str = "pynomaly_process_resident_memory_bytes";
/// Configured memory limit (`PYNOMALY_MEMORY_LIMIT_GB`).
pub const MEMORY_LIMIT: &str = "pynomaly_memory_limit_bytes";
/// Free bytes on the volume holding `PYNOMALY_DATA_DIR`.
pub const DATA_DIR_FREE: &str = "pynomaly_data_dir_free_bytes";
/// Constant 1 with the `version` label.
pub const BUILD_INFO: &str = "pynomaly_build_info";

/// The `(error_type, stage)` pairs of [`ERRORS`] (decode errors also use the
/// dead-letter `error_type`s with stage `decode`).
pub const ERROR_SERIES: &[(&str, &str)] = &[
    ("kafka", "consume"),
    ("rebalance", "consume"),
    ("commit", "commit"),
    ("delivery", "produce"),
    ("store", "checkpoint"),
    ("corrupt_state", "restore"),
    ("malformed", "decode"),
];

/// Latency buckets in seconds: 1 ms … 60 s, so p99 > 1 s is visible.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the Prometheus recorder and describes every metric.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)?
        .install_recorder()?;
    describe_counter!(RECORDS_IN, "Records consumed from the input topics.");
    describe_counter!(RECORDS_OUT, "Score records published to the output topic.");
    describe_counter!(
        RECORDS_DEAD_LETTERED,
        "Records sent to the dead-letter topic."
    );
    describe_counter!(ANOMALIES, "Records flagged as anomalies.");
    describe_counter!(ERRORS, "Errors by type and pipeline stage.");
    describe_histogram!(
        PROCESSING_DURATION,
        Unit::Seconds,
        "Time from receiving a record to its score being acknowledged by the broker."
    );
    describe_histogram!(
        END_TO_END_LATENCY,
        Unit::Seconds,
        "Wall-clock time minus event time when the score is published."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records behind the high watermark, per partition."
    );
    describe_histogram!(
        CHECKPOINT_DURATION,
        Unit::Seconds,
        "Duration of a checkpoint."
    );
    describe_gauge!(
        CHECKPOINT_SIZE,
        Unit::Bytes,
        "Bytes written by the last checkpoint."
    );
    describe_counter!(CHECKPOINTS, "Checkpoints written, by reason.");
    describe_gauge!(STATE_SIZE, Unit::Bytes, "RocksDB live data size.");
    describe_gauge!(DETECTOR_KEYS, "Entity keys with detector state in memory.");
    describe_gauge!(
        DETECTOR_STATE_BYTES,
        Unit::Bytes,
        "Serialized size of the detector states held in memory."
    );
    describe_counter!(
        KEYS_EVICTED,
        "Keys dropped from memory beyond cache_size; their state stays in RocksDB."
    );
    describe_counter!(
        KEYS_LOADED,
        "Evicted keys loaded back from RocksDB when their next record arrived."
    );
    describe_gauge!(ASSIGNED_PARTITIONS, "Partitions assigned to this instance.");
    describe_gauge!(READY, "1 when the instance is ready.");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process."
    );
    describe_gauge!(MEMORY_LIMIT, Unit::Bytes, "Configured memory limit.");
    describe_gauge!(DATA_DIR_FREE, Unit::Bytes, "Free bytes on the data volume.");
    describe_gauge!(BUILD_INFO, "Build information.");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Start the error series at zero so error-rate alerts and panels have data
    // from the first scrape (a counter that never moved would be absent).
    for (error_type, stage) in ERROR_SERIES {
        metrics::counter!(ERRORS, "error_type" => *error_type, "stage" => *stage).absolute(0);
    }
    Ok(handle)
}

/// Installs the tracing subscriber: JSON in production, text elsewhere.
pub fn init_logging(config: &Config) {
    let filter = config.log_filter().unwrap_or("info");
    // RUST_LOG, when set, refines the level (e.g. `rdkafka=debug`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.env == Environment::Production {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Free bytes (for unprivileged users) on the filesystem holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}
