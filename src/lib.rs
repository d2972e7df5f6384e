//! # Pynomaly Detection
//!
//! Streaming anomaly detection on Kafka: consume events, score them with an
//! online detector per entity key, checkpoint detector state and offsets in
//! RocksDB, publish one score record per event.
//!
//! # Layout
//! - [`config`]: figment configuration (defaults < file < `PYNOMALY_*`), validated.
//! - [`event`]: the event and score types the rest of the code speaks.
//! - [`codec`]: bytes ⇄ events / score records (JSON, Avro).
//! - [`detect`]: pure online detectors (no I/O); publishable on its own.
//! - [`engine`]: per-key detectors of one partition; shared by the service and `score`.
//! - [`state`]: RocksDB store of key states and offsets (atomic checkpoints).
//! - [`pipeline`]: consumer thread, partition tasks, producer, rebalance and drain.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`telemetry`]: logging set-up and every metric name.
//! - [`simulate`]: synthetic event streams with ground truth.
//! - [`score`]: offline scoring of CSV / JSONL files.
//! - [`watch`]: follow the score topic, readable by a person.

pub mod admin;
pub mod codec;
pub mod config;
pub mod detect;
pub mod engine;
pub mod event;
pub mod pipeline;
pub mod score;
pub mod simulate;
pub mod state;
pub mod telemetry;
pub mod watch;
