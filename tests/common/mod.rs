//! Shared helpers for integration tests: a real broker, the real binary.
//!
//! The broker comes from `scripts/kafka-local start` (CI starts it);
//! `PYNOMALY_TEST_BOOTSTRAP` overrides the address (default `127.0.0.1:9092`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub fn bootstrap() -> String {
    std::env::var("PYNOMALY_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// A unique name per test run: `prefix-<pid>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Creates topics (fails the test if the broker is not there).
pub fn create_topics(topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = block_on(admin.create_topics(&new, &opts)).unwrap_or_else(|e| {
        panic!(
            "cannot reach Kafka at {} (run scripts/kafka-local start): {e}",
            bootstrap()
        )
    });
    for r in res {
        r.expect("topic created");
    }
}

/// Unique input, output and dead-letter topics; input and output get `partitions`.
pub fn fresh_topics(partitions: i32) -> (String, String, String) {
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topics(&[(&input, partitions), (&output, partitions), (&dlq, 1)]);
    (input, output, dlq)
}

pub fn producer() -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces `(key, payload)` records to one partition, in order, and waits.
pub fn produce(topic: &str, partition: Option<i32>, records: &[(Option<&[u8]>, Vec<u8>)]) {
    let p = producer();
    for (k, v) in records {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic).payload(v);
        if let Some(k) = k {
            r = r.key(k);
        }
        if let Some(part) = partition {
            r = r.partition(part);
        }
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads a topic from the beginning (all partitions, no group) until `want`
/// records arrived or `timeout` passed.
pub fn read_topic(topic: &str, want: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "2000000")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for hdr in h.iter() {
                    headers.insert(
                        hdr.key.to_string(),
                        String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    out
}

/// End offsets (high watermarks) per partition.
pub fn end_offsets(topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Committed offsets of a group per partition (-1 when none).
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    (0..partitions)
        .map(|p| match c.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// A running `pynomaly run`.
pub struct Service {
    pub child: Child,
    pub admin_port: u16,
    pub log: std::path::PathBuf,
}

/// The standard environment of a test instance.
pub fn service_env(
    input: &str,
    output: &str,
    dlq: &str,
    group: &str,
    data: &Path,
) -> Vec<(String, String)> {
    [
        ("PYNOMALY_KAFKA_BOOTSTRAP_SERVERS", bootstrap()),
        ("PYNOMALY_INPUT_TOPICS", input.to_string()),
        ("PYNOMALY_OUTPUT_TOPIC", output.to_string()),
        ("PYNOMALY_DEAD_LETTER_TOPIC", dlq.to_string()),
        ("PYNOMALY_GROUP_ID", group.to_string()),
        ("PYNOMALY_DATA_DIR", data.display().to_string()),
        ("PYNOMALY_LOG_LEVEL", "INFO".to_string()),
        ("PYNOMALY_CHECKPOINT_INTERVAL_MS", "500".to_string()),
        ("PYNOMALY_CHECKPOINT_RECORDS", "1000".to_string()),
        ("PYNOMALY_SHUTDOWN_TIMEOUT_SECS", "20".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pynomaly")
}

impl Service {
    /// Starts `pynomaly run` with `env` (plus a free admin port); logs to a file in `dir`.
    pub fn start(env: &[(String, String)], dir: &Path) -> Service {
        let admin_port = free_port();
        let log = dir.join(format!("service-{admin_port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PYNOMALY_ADMIN_PORT", admin_port.to_string())
            .env("PYNOMALY_ADMIN_BIND", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn pynomaly run");
        Service {
            child,
            admin_port,
            log,
        }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_port, path)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("service exited early ({st}); log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "service not ready after {timeout:?}; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits (up to 10 s) until `metric_sum(name, filter)` equals `want`; returns the last value.
    pub fn wait_metric(&self, name: &str, filter: &str, want: f64) -> f64 {
        let mut v = f64::NAN;
        for _ in 0..100 {
            v = self.metric_sum(name, filter);
            if v == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        v
    }

    /// The value of a metric line `name{labels…} value` summed over label sets matching `filter`.
    pub fn metric_sum(&self, name: &str, filter: &str) -> f64 {
        let (_, body) = self.get("/metrics").expect("metrics");
        body.lines()
            .filter(|l| {
                l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(filter)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Minimal HTTP/1.1 GET on loopback: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs `pynomaly simulate` to completion.
pub fn simulate(topic: &str, args: &[&str]) {
    let out = Command::new(bin())
        .arg("simulate")
        .args(["--bootstrap-servers", &bootstrap(), "--topic", topic])
        .args(args)
        .output()
        .expect("simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `pynomaly simulate` in the background.
pub fn simulate_bg(topic: &str, args: &[&str]) -> Child {
    Command::new(bin())
        .arg("simulate")
        .args(["--bootstrap-servers", &bootstrap(), "--topic", topic])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("simulate")
}
