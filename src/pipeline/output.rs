//! The producer side: score records and dead letters.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::Config;

/// Why a record went to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// Bounded error label.
    pub error_type: &'static str,
    /// Human-readable reason.
    pub message: String,
    /// Source topic / partition / offset.
    pub source: (&'a str, i32, i64),
}

/// The shared producer and the two destination topics.
pub struct Output {
    producer: FutureProducer,
    output_topic: String,
    dead_letter_topic: String,
    max_record_bytes: usize,
}

impl Output {
    /// Creates the idempotent producer (`acks=all`, `enable.idempotence=true`).
    pub fn new(config: &Config) -> Result<Output, KafkaError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.kafka_bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("client.id", "pynomaly-detection");
        for (k, v) in config.kafka_properties() {
            if !is_consumer_only(&k) {
                cc.set(k, v);
            }
        }
        Ok(Output {
            producer: cc.create()?,
            output_topic: config.output_topic.clone(),
            dead_letter_topic: config.dead_letter_topic.clone(),
            max_record_bytes: config.max_record_bytes,
        })
    }

    /// Queues a score record; waits for queue space rather than failing.
    pub async fn send_score(
        &self,
        key: &[u8],
        payload: &[u8],
    ) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(&self.output_topic)
            .key(key)
            .payload(payload);
        self.send(record).await
    }

    /// Queues a dead letter: the original bytes (truncated to `max_record_bytes`)
    /// with error and provenance headers.
    pub async fn send_dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        dl: &DeadLetter<'_>,
    ) -> Result<DeliveryFuture, KafkaError> {
        let payload = payload.unwrap_or_default();
        let truncated = payload.len() > self.max_record_bytes;
        let body = &payload[..payload.len().min(self.max_record_bytes)];
        let partition = dl.source.1.to_string();
        let offset = dl.source.2.to_string();
        let size = payload.len().to_string();
        let message: String = dl.message.chars().take(1024).collect();
        let headers = OwnedHeaders::new()
            .insert(header("pynomaly.error.type", dl.error_type))
            .insert(header("pynomaly.error.message", &message))
            .insert(header("pynomaly.source.topic", dl.source.0))
            .insert(header("pynomaly.source.partition", &partition))
            .insert(header("pynomaly.source.offset", &offset))
            .insert(header("pynomaly.original.size", &size))
            .insert(header(
                "pynomaly.truncated",
                if truncated { "true" } else { "false" },
            ));
        let mut record = FutureRecord::to(&self.dead_letter_topic)
            .payload(body)
            .headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        self.send(record).await
    }

    async fn send<'a>(
        &self,
        mut record: FutureRecord<'a, [u8], [u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        loop {
            match self.producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    // The local queue is full: let librdkafka drain it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Properties that only make sense for the consumer (librdkafka warns otherwise).
pub fn is_consumer_only(key: &str) -> bool {
    key.starts_with("group.")
        || key.starts_with("session.")
        || key.starts_with("heartbeat.")
        || key.starts_with("auto.")
        || key.starts_with("fetch.")
        || key.starts_with("max.poll")
        || key.starts_with("partition.assignment")
        || key.starts_with("enable.auto")
        || key.starts_with("isolation.")
}
