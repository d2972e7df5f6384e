//! The Kafka pipeline: consumer thread → partition tasks → producer.
//!
//! # Threads and tasks
//! - The **consumer thread** owns the `BaseConsumer`: it polls, routes each
//!   record to its partition task over a bounded channel (back-pressure), serves
//!   rebalance callbacks, stores offsets handed back by checkpoints and commits.
//!   It is a plain OS thread, so blocking on a partition task's acknowledgement
//!   inside a rebalance callback never stalls the async runtime.
//! - One **partition task** per assigned partition ([`partition`]) owns that
//!   partition's detectors and checkpoints them with its offset.
//! - The **producer** ([`output`]) is shared.
//!
//! # Rebalance
//! Cooperative-sticky. On assign, each partition's offset comes from the state
//! store (falling back to the group's committed offset), its task restores the
//! detectors, and the instance is ready once every assigned partition is
//! restored. On revoke, the consumer thread stops routing that partition, asks
//! its task to drain and checkpoint, waits (bounded by the shutdown timeout),
//! commits the checkpointed offset, then lets the partition go.
//!
//! # Shutdown
//! Cancelling the root token makes the consumer thread stop fetching, stop
//! every task (each drains its outputs and checkpoints), commit synchronously,
//! and close the consumer, which leaves the group.

pub mod output;
pub mod partition;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::detect::DetectorSpec;
use crate::state::Store;
use crate::telemetry as t;
use output::Output;
use partition::{Input, PartitionTask, Record};

/// Liveness and readiness, read by the admin server.
#[derive(Debug, Default)]
pub struct Status {
    joined: AtomicBool,
    pending_restore: AtomicI64,
    assigned: AtomicI64,
    draining: AtomicBool,
    heartbeat_ms: AtomicU64,
}

impl Status {
    /// Ready: joined the group, every assigned partition restored, not draining.
    pub fn is_ready(&self) -> bool {
        self.joined.load(Ordering::Acquire)
            && self.pending_restore.load(Ordering::Acquire) <= 0
            && !self.draining.load(Ordering::Acquire)
    }

    /// Live: the consumer loop has polled within `max_silence` (or has not started yet).
    pub fn is_live(&self, max_silence: Duration) -> bool {
        let last = self.heartbeat_ms.load(Ordering::Acquire);
        last == 0 || now_ms().saturating_sub(last) <= max_silence.as_millis() as u64
    }

    /// Partitions currently assigned.
    pub fn assigned(&self) -> i64 {
        self.assigned.load(Ordering::Acquire)
    }

    fn partition_restored(&self) {
        self.pending_restore.fetch_sub(1, Ordering::AcqRel);
        self.publish();
    }

    fn publish(&self) {
        gauge!(t::READY).set(if self.is_ready() { 1.0 } else { 0.0 });
        gauge!(t::ASSIGNED_PARTITIONS).set(self.assigned() as f64);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// State shared by the consumer thread and the partition tasks.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Detector parameters.
    pub spec: DetectorSpec,
    /// Per-topic / per-key-pattern overrides.
    pub rules: Vec<crate::config::DetectorRule>,
    /// State store.
    pub store: Store,
    /// Producer.
    pub output: Output,
    /// Health.
    pub status: Arc<Status>,
    commits: Mutex<Vec<(String, i32, i64)>>,
    failure: Mutex<Option<String>>,
    cancel: CancellationToken,
}

impl Shared {
    /// A checkpointed offset, for the consumer thread to store and commit.
    fn commit(&self, topic: &str, partition: i32, next_offset: i64) {
        if let Ok(mut c) = self.commits.lock() {
            c.push((topic.to_string(), partition, next_offset));
        }
    }

    /// A fatal error: remember it and stop the pipeline.
    fn fail(&self, message: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(message);
        }
        self.cancel.cancel();
    }

    fn take_commits(&self) -> Vec<(String, i32, i64)> {
        self.commits
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// Records buffered per partition between the consumer thread and the task.
const PARTITION_QUEUE: usize = 2048;

type Route = HashMap<(String, i32), mpsc::Sender<Input>>;

/// The consumer context: rebalances, statistics, errors.
struct Ctx {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    routes: Mutex<Route>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, tstats) in &stats.topics {
            for (p, ps) in &tstats.partitions {
                // Partition -1 is librdkafka's internal "unassigned" partition;
                // only partitions this instance consumes have a fetch position.
                if *p < 0 || !ps.desired {
                    continue;
                }
                // Real-time lag: high watermark minus the next offset handed
                // to us; before the first fetch, fall back to the lag behind
                // the stored (checkpointed) offset.
                let lag = if ps.hi_offset >= 0 && ps.app_offset >= 0 {
                    (ps.hi_offset - ps.app_offset).max(0)
                } else {
                    ps.consumer_lag_stored
                };
                if lag >= 0 {
                    gauge!(t::CONSUMER_LAG, "topic" => topic.clone(), "partition" => p.to_string())
                        .set(lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        counter!(t::ERRORS, "error_type" => "kafka", "stage" => "consume").increment(1);
        warn!(%error, reason, "Kafka client error.");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                error!(error = ?other, "Rebalance error.");
                counter!(t::ERRORS, "error_type" => "rebalance", "stage" => "consume").increment(1);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Ctx {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts = partitions_of(tpl);
        let status = &self.shared.status;
        for (topic, partition) in &parts {
            match self.shared.store.next_offset(topic, *partition) {
                Ok(Some(o)) => {
                    let _ = tpl.set_partition_offset(topic, *partition, Offset::Offset(o));
                }
                Ok(None) => {}
                Err(e) => {
                    error!(%e, topic, partition, "Cannot read stored offset.");
                    self.shared.fail(e.to_string());
                }
            }
            let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
            status.pending_restore.fetch_add(1, Ordering::AcqRel);
            status.assigned.fetch_add(1, Ordering::AcqRel);
            let task = PartitionTask {
                topic: topic.clone(),
                partition: *partition,
                shared: self.shared.clone(),
            };
            self.rt.spawn(task.run(rx));
            if let Ok(mut r) = self.routes.lock() {
                r.insert((topic.clone(), *partition), tx);
            }
        }
        let result = if matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        ) {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
        if let Err(e) = result {
            error!(%e, "Failed to apply assignment.");
            self.shared.fail(format!("assign: {e}"));
        }
        status.joined.store(true, Ordering::Release);
        status.publish();
        info!(partitions = ?parts, "Partitions assigned.");
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts = partitions_of(tpl);
        self.stop_tasks(consumer, Some(&parts), "revoke");
        let result = if matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        ) {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = result {
            warn!(%e, "Failed to release partitions.");
        }
        self.shared.status.publish();
        info!(partitions = ?parts, "Partitions revoked.");
    }

    /// Stops the tasks of `parts` (all when `None`), waits for their final
    /// checkpoints and commits the offsets synchronously.
    fn stop_tasks(
        &self,
        consumer: &BaseConsumer<Self>,
        parts: Option<&[(String, i32)]>,
        reason: &'static str,
    ) {
        let stopped: Vec<((String, i32), mpsc::Sender<Input>)> = match self.routes.lock() {
            Ok(mut routes) => match parts {
                Some(parts) => parts
                    .iter()
                    .filter_map(|k| routes.remove(k).map(|tx| (k.clone(), tx)))
                    .collect(),
                None => routes.drain().collect(),
            },
            Err(_) => Vec::new(),
        };
        let deadline =
            Instant::now() + Duration::from_secs(self.shared.config.shutdown_timeout_secs);
        let mut acks = Vec::new();
        for ((topic, partition), tx) in stopped {
            let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
            if tx
                .blocking_send(Input::Stop {
                    reason,
                    ack: ack_tx,
                })
                .is_ok()
            {
                acks.push((topic, partition, ack_rx));
            }
            self.shared.status.assigned.fetch_sub(1, Ordering::AcqRel);
        }
        for (topic, partition, ack) in acks {
            let left = deadline.saturating_duration_since(Instant::now());
            if ack.recv_timeout(left).is_err() {
                warn!(
                    topic,
                    partition, reason, "Partition task did not finish its checkpoint in time."
                );
            }
        }
        self.commit_pending(consumer, CommitMode::Sync);
    }

    /// Stores (and with `Sync`, commits) the offsets of finished checkpoints.
    fn commit_pending(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) {
        let commits = self.shared.take_commits();
        if commits.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in &commits {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        let result = match mode {
            CommitMode::Sync => consumer.commit(&tpl, CommitMode::Sync),
            CommitMode::Async => consumer.store_offsets(&tpl),
        };
        if let Err(e) = result {
            // Lag dashboards lag a little; the state store holds the real offsets.
            counter!(t::ERRORS, "error_type" => "commit", "stage" => "commit").increment(1);
            warn!(%e, "Failed to commit offsets.");
        }
    }
}

/// `(topic, partition)` of every element of a partition list.
fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Builds the consumer configuration.
fn consumer_config(config: &Config) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.kafka_bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "5000")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("session.timeout.ms", "45000")
        .set("client.id", "pynomaly-detection");
    for (k, v) in config.kafka_properties() {
        cc.set(k, v);
    }
    cc
}

/// Runs the pipeline until `cancel` fires or a fatal error occurs.
pub async fn run(
    config: Config,
    store: Store,
    status: Arc<Status>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let spec = config.detector_spec()?;
    let rules = config.detector_rules()?;
    let output = Output::new(&config)?;
    let shared = Arc::new(Shared {
        spec,
        rules,
        store,
        output,
        status,
        commits: Mutex::new(Vec::new()),
        failure: Mutex::new(None),
        cancel: cancel.clone(),
        config,
    });
    let ctx = Ctx {
        shared: shared.clone(),
        rt: tokio::runtime::Handle::current(),
        routes: Mutex::new(HashMap::new()),
    };
    let consumer: BaseConsumer<Ctx> = consumer_config(&shared.config).create_with_context(ctx)?;
    let topics: Vec<&str> = shared
        .config
        .input_topics
        .iter()
        .map(String::as_str)
        .collect();
    consumer.subscribe(&topics)?;
    info!(topics = ?topics, group = shared.config.group_id, "Subscribed.");
    let thread_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name("pynomaly-consumer".into())
        .spawn(move || consume_loop(consumer, thread_shared))?;
    // Wait for the consumer thread without blocking the runtime.
    let joined = tokio::task::spawn_blocking(move || handle.join()).await;
    if let Ok(Err(_)) | Err(_) = joined {
        anyhow::bail!("consumer thread panicked");
    }
    shared
        .output
        .flush(Duration::from_secs(shared.config.shutdown_timeout_secs))?;
    if let Some(f) = shared.failure.lock().ok().and_then(|f| f.clone()) {
        anyhow::bail!("pipeline stopped: {f}");
    }
    Ok(())
}

fn consume_loop(consumer: BaseConsumer<Ctx>, shared: Arc<Shared>) {
    let status = &shared.status;
    let poll = Duration::from_millis(100);
    while !shared.cancel.is_cancelled() {
        status.heartbeat_ms.store(now_ms(), Ordering::Release);
        match consumer.poll(poll) {
            Some(Ok(msg)) => {
                let route = consumer
                    .context()
                    .routes
                    .lock()
                    .ok()
                    .and_then(|r| r.get(&(msg.topic().to_string(), msg.partition())).cloned());
                let Some(tx) = route else {
                    warn!(topic = msg.topic(), partition = msg.partition(), "Record for an unassigned partition; dropped (it will be re-fetched by its owner).");
                    continue;
                };
                let rec = Record {
                    offset: msg.offset(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec),
                    timestamp_ms: msg.timestamp().to_millis(),
                    received: Instant::now(),
                };
                // Back-pressure: block until the partition task has room, but
                // keep an eye on cancellation.
                let mut input = Input::Record(rec);
                loop {
                    match tx.try_send(input) {
                        Ok(()) => break,
                        Err(mpsc::error::TrySendError::Full(back)) => {
                            if shared.cancel.is_cancelled() {
                                break;
                            }
                            input = back;
                            status.heartbeat_ms.store(now_ms(), Ordering::Release);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
            }
            Some(Err(e)) => {
                counter!(t::ERRORS, "error_type" => "kafka", "stage" => "consume").increment(1);
                warn!(%e, "Consumer error.");
            }
            None => {}
        }
        consumer
            .context()
            .commit_pending(&consumer, CommitMode::Async);
    }
    info!("Draining: stopping partition tasks.");
    status.draining.store(true, Ordering::Release);
    status.publish();
    consumer.context().stop_tasks(&consumer, None, "shutdown");
    // Leave the group now (close triggers a final revoke with no tasks left).
    drop(consumer);
    info!("Consumer closed.");
}
