//! One task per assigned partition: it owns that partition's detectors, so the
//! hot path takes no locks.
//!
//! # Protocol
//! The consumer thread sends [`Input::Record`]s in offset order, then exactly
//! one [`Input::Stop`] when the partition is revoked or the service drains.
//! On `Stop` the task waits for every queued output to be acknowledged,
//! writes a final checkpoint, hands the offset to the consumer for commit and
//! acknowledges. Records below the restored offset (re-fetched after a crash
//! between checkpoint and commit) are skipped, so the state sees each offset once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use rdkafka::producer::DeliveryFuture;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::output::DeadLetter;
use super::Shared;
use crate::codec::{Decoder, Encoder};
use crate::engine::Engine;
use crate::event::{Event, ScoreRecord};
use crate::state::{Checkpoint, Store};
use crate::telemetry as t;

/// Every `error_type` a dead letter can carry (codec and engine errors).
const DEAD_LETTER_TYPES: &[&str] = &[
    "empty",
    "too_large",
    "malformed",
    "wrong_type",
    "missing_features",
    "missing_key",
    "non_finite",
    "feature_mismatch",
];

/// How often idle partitions collect delivery acknowledgements.
const REAP_INTERVAL: Duration = Duration::from_millis(20);

/// A record handed from the consumer thread.
#[derive(Debug)]
pub struct Record {
    /// Offset in the partition.
    pub offset: i64,
    /// Kafka message key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Option<Vec<u8>>,
    /// Kafka record timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
    /// When the consumer received it.
    pub received: Instant,
}

/// Messages to a partition task.
#[derive(Debug)]
pub enum Input {
    /// Process this record.
    Record(Record),
    /// Drain, checkpoint and stop; then acknowledge.
    Stop {
        /// `revoke` or `shutdown`.
        reason: &'static str,
        /// Acknowledgement to the (blocking) consumer thread.
        ack: std::sync::mpsc::SyncSender<()>,
    },
}

/// What a partition task needs from the pipeline.
pub struct PartitionTask {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) shared: Arc<Shared>,
}

struct Handles {
    records_in: Counter,
    records_out: Counter,
    processing: Histogram,
    e2e: Histogram,
    keys: Gauge,
    state_bytes: Gauge,
}

enum Pending {
    Score,
    DeadLetter,
}

struct Worker {
    topic: String,
    partition: i32,
    shared: Arc<Shared>,
    engine: Engine,
    decoder: Decoder,
    encoder: Encoder,
    next_offset: i64,
    since_checkpoint: u64,
    inflight: VecDeque<(DeliveryFuture, Instant, Pending)>,
    m: Handles,
}

/// Fatal errors: the pipeline stops and a restart replays from the checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Could not deliver to Kafka.
    #[error("delivery to Kafka failed: {0}")]
    Delivery(String),
    /// Could not write state.
    #[error(transparent)]
    Store(#[from] crate::state::StoreError),
}

impl PartitionTask {
    /// Restores the partition's state and processes records until stopped.
    /// Returns the restored offset through `restored` before consuming.
    pub async fn run(self, mut rx: mpsc::Receiver<Input>) {
        let PartitionTask {
            topic,
            partition,
            shared,
        } = self;
        let store: &Store = &shared.store;
        let mut engine = Engine::with_rules(shared.spec.clone(), &shared.rules, &topic)
            .with_capacity(shared.config.cache_size);
        engine.set_byte_budget(state_budget(&shared));
        let started = Instant::now();
        let next_offset = match restore(store, &topic, partition, &mut engine) {
            Ok(o) => o,
            Err(e) => {
                error!(%e, topic, partition, "Failed to restore partition state.");
                shared.fail(format!("restore {topic}/{partition}: {e}"));
                return;
            }
        };
        info!(
            topic,
            partition,
            keys = engine.len(),
            next_offset,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Restored partition state."
        );
        shared.status.partition_restored();
        let labels = [
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ];
        let m = Handles {
            records_in: counter!(t::RECORDS_IN, &labels),
            records_out: counter!(t::RECORDS_OUT, &labels),
            processing: histogram!(t::PROCESSING_DURATION, &labels),
            e2e: histogram!(t::END_TO_END_LATENCY, &labels),
            keys: gauge!(t::DETECTOR_KEYS, &labels),
            state_bytes: gauge!(t::DETECTOR_STATE_BYTES, &labels),
        };
        m.keys.set(engine.len() as f64);
        m.state_bytes.set(engine.state_bytes() as f64);
        // Export every dead-letter series at zero, so dashboards and alert
        // rates see the series before the first bad record arrives.
        for error_type in DEAD_LETTER_TYPES {
            counter!(t::RECORDS_DEAD_LETTERED, "topic" => topic.clone(), "partition" => partition.to_string(), "error_type" => *error_type).absolute(0);
        }
        let mut w = Worker {
            decoder: Decoder::new(&shared.config),
            encoder: Encoder::new(&shared.config),
            topic,
            partition,
            engine,
            next_offset: next_offset.unwrap_or(-1),
            since_checkpoint: 0,
            inflight: VecDeque::new(),
            m,
            shared,
        };
        let result = w.run(&mut rx).await;
        if let Err(e) = result {
            error!(%e, topic = w.topic, partition = w.partition, "Partition task failed; stopping the pipeline.");
            w.shared.fail(e.to_string());
            // Keep acknowledging so the consumer thread never waits on us.
            while let Some(msg) = rx.recv().await {
                if let Input::Stop { ack, .. } = msg {
                    let _ = ack.send(());
                }
            }
        }
    }
}

/// Share of `memory_limit_gb` that detector states may take, split evenly
/// over the partitions assigned to this instance. The rest is for what the
/// serialized size does not count (allocator and index overhead, RCF's cached
/// boxes), RocksDB's caches, librdkafka's queues and the runtime.
const STATE_MEMORY_SHARE: f64 = 0.5;

/// This partition's budget of serialized detector state, in bytes.
fn state_budget(shared: &Shared) -> usize {
    let partitions = shared.status.assigned().max(1) as f64;
    (shared.config.memory_limit_gb * f64::from(1u32 << 30) * STATE_MEMORY_SHARE / partitions)
        as usize
}

fn restore(
    store: &Store,
    topic: &str,
    partition: i32,
    engine: &mut Engine,
) -> Result<Option<i64>, crate::state::StoreError> {
    // Up to the key capacity; the rest load on demand when their keys show up.
    let more = store.scan_partition(topic, partition, |key, bytes| {
        if engine.is_full() {
            return false;
        }
        restore_key(engine, topic, partition, key.to_vec(), bytes, "restore");
        true
    })?;
    if more {
        engine.set_spilled();
    }
    store.next_offset(topic, partition)
}

fn restore_key(
    engine: &mut Engine,
    topic: &str,
    partition: i32,
    key: Vec<u8>,
    bytes: &[u8],
    stage: &'static str,
) {
    if let Err(e) = engine.restore(key, bytes) {
        // A corrupt entry only costs that key its history.
        warn!(%e, topic, partition, "Dropping unreadable key state.");
        counter!(t::ERRORS, "error_type" => "corrupt_state", "stage" => stage).increment(1);
    }
}

impl Worker {
    async fn run(&mut self, rx: &mut mpsc::Receiver<Input>) -> Result<(), TaskError> {
        let interval = Duration::from_millis(self.shared.config.checkpoint_interval_ms);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.shared.config.checkpoint_records;
        // Under load deliveries are collected after every record; when the
        // input pauses, this tick collects the last ones so that the
        // out-counter and the latency histogram stay current.
        let mut reap_tick = tokio::time::interval(REAP_INTERVAL);
        reap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = tick.tick() => {
                    if self.since_checkpoint > 0 {
                        self.checkpoint("interval").await?;
                    }
                }
                _ = reap_tick.tick(), if !self.inflight.is_empty() => self.reap(false).await?,
                msg = rx.recv() => match msg {
                    Some(Input::Record(r)) => {
                        self.process(r).await?;
                        if self.since_checkpoint >= every {
                            self.checkpoint("records").await?;
                        }
                    }
                    Some(Input::Stop { reason, ack }) => {
                        self.checkpoint(reason).await?;
                        // The partition leaves this instance: its gauges must not
                        // keep reporting (the new owner reports them now).
                        self.m.keys.set(0.0);
                        gauge!(t::CONSUMER_LAG, "topic" => self.topic.clone(), "partition" => self.partition.to_string()).set(0.0);
                        let _ = ack.send(());
                        return Ok(());
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    async fn process(&mut self, r: Record) -> Result<(), TaskError> {
        if r.offset < self.next_offset {
            debug!(
                offset = r.offset,
                next = self.next_offset,
                "Skipping record already in the checkpoint."
            );
            return Ok(());
        }
        self.m.records_in.increment(1);
        let decoded = self.decode(&r);
        if let Ok((key, _)) = &decoded {
            if self.engine.needs_load(key) {
                self.load_key(key)?;
            }
        }
        match decoded.and_then(|(key, event)| self.score(&r, key, event)) {
            Ok(Some((key, payload, anomaly))) => {
                if anomaly {
                    // Rare, so the labelled handle is looked up per anomaly.
                    counter!(t::ANOMALIES, "topic" => self.topic.clone(), "partition" => self.partition.to_string(), "detector" => self.engine.detector_name()).increment(1);
                }
                let f = self
                    .shared
                    .output
                    .send_score(&key, &payload)
                    .await
                    .map_err(|e| TaskError::Delivery(e.to_string()))?;
                self.inflight.push_back((f, r.received, Pending::Score));
            }
            Ok(None) => {}
            Err((error_type, message)) => {
                counter!(t::RECORDS_DEAD_LETTERED, "topic" => self.topic.clone(), "partition" => self.partition.to_string(), "error_type" => error_type).increment(1);
                counter!(t::ERRORS, "error_type" => error_type, "stage" => "decode").increment(1);
                debug!(
                    topic = self.topic,
                    partition = self.partition,
                    offset = r.offset,
                    error_type,
                    message,
                    "Dead-lettering record."
                );
                let dl = DeadLetter {
                    error_type,
                    message,
                    source: (&self.topic, self.partition, r.offset),
                };
                let f = self
                    .shared
                    .output
                    .send_dead_letter(r.key.as_deref(), r.payload.as_deref(), &dl)
                    .await
                    .map_err(|e| TaskError::Delivery(e.to_string()))?;
                self.inflight
                    .push_back((f, r.received, Pending::DeadLetter));
            }
        }
        self.next_offset = r.offset + 1;
        self.since_checkpoint += 1;
        self.reap(false).await
    }

    /// Decodes a record and finds its entity key.
    fn decode(&self, r: &Record) -> Result<(Vec<u8>, Event), (&'static str, String)> {
        let payload = r.payload.as_deref().unwrap_or_default();
        let mut event = self
            .decoder
            .decode(payload)
            .map_err(|e| (e.error_type(), e.to_string()))?;
        let config = &self.shared.config;
        let field_key = event.key.take().map(String::into_bytes);
        let key: Vec<u8> = if config.key_field.is_some() {
            field_key
        } else {
            r.key.clone().or(field_key)
        }
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            let field = config.key_field.as_deref().unwrap_or("key");
            (
                "missing_key",
                format!("record has no entity key (no Kafka key and no `{field}` field)"),
            )
        })?;
        Ok((key, event))
    }

    /// Scores a decoded record; `Ok(None)` when anomalies-only filters it out.
    #[allow(clippy::type_complexity)]
    fn score(
        &mut self,
        r: &Record,
        key: Vec<u8>,
        event: Event,
    ) -> Result<Option<(Vec<u8>, Vec<u8>, bool)>, (&'static str, String)> {
        let config = &self.shared.config;
        // The record's own time (never the wall clock), so replays score identically.
        let event_time = event.timestamp_ms.or(r.timestamp_ms);
        let score = self
            .engine
            .score_at(&key, &event.features, event_time)
            .map_err(|e| (e.error_type(), e.to_string()))?;
        self.m.keys.set(self.engine.len() as f64);
        if config.anomalies_only && !score.is_anomaly {
            return Ok(None);
        }
        let timestamp = event_time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let lag_ms = chrono::Utc::now().timestamp_millis() - timestamp;
        self.m.e2e.record(lag_ms.max(0) as f64 / 1000.0);
        let record = ScoreRecord::new(
            String::from_utf8_lossy(&key).into_owned(),
            timestamp,
            (&self.topic, self.partition, r.offset),
            self.engine.detector_name(),
            &event.features,
            &score,
        );
        Ok(Some((key, self.encoder.encode(&record), score.is_anomaly)))
    }

    /// Collects finished deliveries; with `all`, waits for every one.
    async fn reap(&mut self, all: bool) -> Result<(), TaskError> {
        while let Some((f, _, _)) = self.inflight.front_mut() {
            let result = if all { Some(f.await) } else { f.now_or_never() };
            let Some(result) = result else { break };
            let (_, received, kind) = self.inflight.pop_front().expect("front exists");
            match result {
                Ok(Ok(_)) => {
                    if let Pending::Score = kind {
                        self.m.records_out.increment(1);
                        self.m.processing.record(received.elapsed().as_secs_f64());
                    }
                }
                Ok(Err((e, _))) => {
                    counter!(t::ERRORS, "error_type" => "delivery", "stage" => "produce")
                        .increment(1);
                    return Err(TaskError::Delivery(e.to_string()));
                }
                Err(_) => return Err(TaskError::Delivery("producer dropped the delivery".into())),
            }
        }
        Ok(())
    }

    /// Waits for outputs, writes state + offset atomically, hands the offset to the consumer.
    async fn checkpoint(&mut self, reason: &'static str) -> Result<(), TaskError> {
        self.reap(true).await?;
        if self.next_offset < 0 {
            return Ok(());
        }
        let started = Instant::now();
        let cp = Checkpoint {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset: self.next_offset,
            states: self.engine.take_dirty(),
        };
        let bytes = match self.shared.store.write(&cp) {
            Ok(b) => b,
            Err(e) => {
                counter!(t::ERRORS, "error_type" => "store", "stage" => "checkpoint").increment(1);
                return Err(e.into());
            }
        };
        histogram!(t::CHECKPOINT_DURATION).record(started.elapsed().as_secs_f64());
        gauge!(t::CHECKPOINT_SIZE).set(bytes as f64);
        counter!(t::CHECKPOINTS, "reason" => reason).increment(1);
        debug!(
            topic = self.topic,
            partition = self.partition,
            next_offset = self.next_offset,
            keys = cp.states.len(),
            bytes,
            reason,
            "Checkpoint written."
        );
        self.since_checkpoint = 0;
        self.shared
            .commit(&self.topic, self.partition, self.next_offset);
        // Every state is durable now: drop the coldest keys beyond
        // `cache_size` or this partition's share of the memory budget.
        self.engine.set_byte_budget(state_budget(&self.shared));
        let evicted = self.engine.evict_cold();
        if evicted > 0 {
            counter!(t::KEYS_EVICTED, "topic" => self.topic.clone(), "partition" => self.partition.to_string()).increment(evicted as u64);
            self.m.keys.set(self.engine.len() as f64);
        }
        self.m.state_bytes.set(self.engine.state_bytes() as f64);
        Ok(())
    }

    /// Brings an evicted key's state back from the store before its record
    /// is scored. A store error is not the record's fault: it stops the
    /// pipeline like a failed checkpoint (the restart replays from the last one).
    fn load_key(&mut self, key: &[u8]) -> Result<(), TaskError> {
        let bytes = self
            .shared
            .store
            .load_key(&self.topic, self.partition, key)
            .inspect_err(|_| {
                counter!(t::ERRORS, "error_type" => "store", "stage" => "load").increment(1);
            })?;
        if let Some(bytes) = bytes {
            counter!(t::KEYS_LOADED, "topic" => self.topic.clone(), "partition" => self.partition.to_string()).increment(1);
            restore_key(
                &mut self.engine,
                &self.topic,
                self.partition,
                key.to_vec(),
                &bytes,
                "load",
            );
        }
        Ok(())
    }
}
