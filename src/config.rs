//! Configuration: figment layers, validated into typed settings.
//!
//! Precedence, lowest first:
//! 1. defaults embedded in the binary (`config/default.toml`, also the documented reference);
//! 2. a config file (`--config PATH` or `PYNOMALY_CONFIG`), TOML or YAML by extension;
//! 3. `PYNOMALY_*` environment variables (`PYNOMALY_DEFAULT_ALGORITHM` sets
//!    `default_algorithm`); `PYNOMALY_KAFKA__SASL_MECHANISM` passes
//!    `sasl.mechanism` straight to librdkafka (double underscore = pass-through,
//!    remaining underscores become dots).
//!
//! Unknown keys in a config file are errors. Unknown `PYNOMALY_*` environment
//! variables are only warned about: Kubernetes injects service-link variables
//! such as `PYNOMALY_DETECTION_SERVICE_HOST` that are not ours.
//! Every invalid value fails start-up with the offending key named (exit code 2).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format as _, Serialized, Toml, Yaml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};

use crate::detect::{Algorithm, Contamination, DetectorSpec, MultivariateRule, ThresholdMode};

/// The reference configuration with every default, embedded at build time.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "PYNOMALY_";

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The key as an environment variable name, e.g. `PYNOMALY_BATCH_SIZE`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(field: &str, message: impl fmt::Display) -> Self {
        ConfigError {
            key: env_name(field),
            message: message.to_string(),
        }
    }
}

/// `default_algorithm` → `PYNOMALY_DEFAULT_ALGORITHM (default_algorithm)`.
fn env_name(field: &str) -> String {
    if field.is_empty() {
        return "configuration".to_string();
    }
    if field.starts_with("overrides") {
        return format!("{field} (config file)");
    }
    let env = field.replace('.', "__").to_ascii_uppercase();
    format!("{ENV_PREFIX}{env} ({field})")
}

/// Deployment environment (the guide's development / staging / production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local work: readable logs.
    Development,
    /// Production-like.
    Staging,
    /// JSON logs.
    Production,
}

/// Record encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON objects (UTF-8).
    Json,
    /// Avro binary datum (no container, no registry framing).
    Avro,
}

/// A validated, immutable configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    // --- Core settings (deployment guide) ---
    /// `development`, `staging` or `production`; production logs JSON.
    pub env: Environment,
    /// `TRACE`, `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`.
    pub log_level: String,
    /// Tokio worker threads; 0 means one per core.
    pub workers: usize,
    /// Memory the pod may use, in GiB; exported as `pynomaly_memory_limit_bytes`
    /// so the memory alert compares resident memory with it.
    pub memory_limit_gb: f64,

    // --- Detection settings ---
    /// Detector for keys with fewer than `multivariate_min_features` features
    /// (every key when that is 0): `ewma`, `mad`, `gaussian`, `seasonal`,
    /// `cusum`, `ensemble`, `auto` or a multivariate one (docs/detectors.md).
    pub default_algorithm: String,
    /// Detector for keys whose records have at least
    /// `multivariate_min_features` features (docs/multivariate.md).
    pub multivariate_algorithm: String,
    /// Feature count from which a key gets `multivariate_algorithm`; 0 turns
    /// the rule off (every key gets `default_algorithm`); 1 is rejected.
    pub multivariate_min_features: u32,
    /// Expected share of anomalies; sets each key's threshold.
    pub default_contamination: f64,
    /// Per-key model selection from warm-up data (Mass-Volume criterion);
    /// takes precedence over `default_algorithm` and `enable_ensemble`
    /// (for keys below `multivariate_min_features`).
    pub enable_automl: bool,
    /// Combine the calibrated scores of the cheap univariate detectors (plus
    /// `default_algorithm` when it is another one), for keys below
    /// `multivariate_min_features`.
    pub enable_ensemble: bool,
    /// How thresholds are set: `quantile` (empirical 1 - contamination
    /// quantile, P²) or `spot` (extreme-value theory, SPOT).
    pub threshold: String,
    /// Points a key sees before it may flag anything.
    pub warmup: u32,
    /// Points after an alarm during which the same key raises no new alarm
    /// (its score is scaled below 0.5 meanwhile).
    pub suppression: u32,
    /// Seconds of tolerance of the daily-recurrence rule: an exceedance at the
    /// same time of day (± this) as an exceedance of the day before is a
    /// scheduled pattern (cron job, backup, batch load) and raises no alarm.
    /// 0 turns the rule off.
    pub recurrence_tolerance_secs: u32,
    /// Seed mixed with each key's hash; change it to re-seed every detector.
    pub seed: u64,
    /// Per-topic / per-key-pattern detector settings (config file only);
    /// the first matching rule wins, keys matching none use the defaults.
    pub overrides: Vec<Override>,

    // --- Performance settings ---
    /// Records a partition task takes from the consumer per batch.
    pub batch_size: usize,
    /// Pending: accepted and validated; partitions already run in parallel tasks.
    pub parallel_jobs: usize,
    /// Keys held in memory per partition: after each checkpoint the least
    /// recently seen keys beyond it are dropped from memory (their state is
    /// in RocksDB) and loaded back when their next record arrives.
    pub cache_size: usize,
    /// Pending: accepted and validated.
    pub enable_memory_optimization: bool,

    // --- Kafka ---
    /// `bootstrap.servers`.
    pub kafka_bootstrap_servers: String,
    /// Topics to consume (comma-separated in the environment).
    #[serde(deserialize_with = "string_or_list")]
    pub input_topics: Vec<String>,
    /// Where score records go.
    pub output_topic: String,
    /// Where undecodable or invalid records go, with error headers.
    pub dead_letter_topic: String,
    /// Consumer group.
    pub group_id: String,
    /// librdkafka properties passed through as they are (`sasl.mechanism`…).
    pub kafka: BTreeMap<String, String>,
    /// Input encoding: `json` or `avro`.
    pub input_format: Format,
    /// Output encoding; empty means the input's.
    pub output_format: Option<Format>,
    /// Field holding the entity key; empty means the Kafka message key
    /// (falling back to the record's `key` field).
    pub key_field: Option<String>,
    /// Field holding the event time; empty means `timestamp`, then the Kafka record timestamp.
    pub timestamp_field: Option<String>,
    /// Feature fields; empty means every numeric entry of `values`.
    #[serde(deserialize_with = "string_or_list")]
    pub feature_fields: Vec<String>,
    /// Publish only records flagged as anomalies.
    pub anomalies_only: bool,
    /// Records larger than this go to the dead-letter topic (truncated to it).
    pub max_record_bytes: usize,

    // --- State ---
    /// RocksDB directory (a persistent volume in Kubernetes).
    pub data_dir: PathBuf,
    /// Checkpoint at least this often, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// …and after this many records per partition.
    pub checkpoint_records: u64,
    /// Key states not rewritten for this many seconds are dropped from the
    /// store by compaction (the key starts over if it comes back); 0 keeps
    /// them forever.
    pub state_ttl_secs: u64,

    // --- Admin and lifecycle ---
    /// Admin HTTP port: `/healthz`, `/readyz`, `/metrics`.
    pub admin_port: u16,
    /// Admin bind address.
    pub admin_bind: String,
    /// Time allowed for a graceful drain after SIGTERM.
    pub shutdown_timeout_secs: u64,
}

/// A detector override: which records it applies to and what it changes.
///
/// ```toml
/// [[overrides]]
/// topic = "payments"        # optional: records from this input topic
/// key_pattern = "card-*"    # optional: entity keys matching this glob (`*`, `?`)
/// algorithm = "loda"        # any of the settings below, each optional
/// contamination = 0.001
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Input topic the rule applies to (any when absent).
    #[serde(default)]
    pub topic: Option<String>,
    /// Glob over the entity key (`*` any run, `?` one byte); any key when absent.
    #[serde(default)]
    pub key_pattern: Option<String>,
    /// Algorithm for matching keys.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Contamination for matching keys.
    #[serde(default)]
    pub contamination: Option<f64>,
    /// Warm-up for matching keys.
    #[serde(default)]
    pub warmup: Option<u32>,
    /// Suppression for matching keys.
    #[serde(default)]
    pub suppression: Option<u32>,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Keys a config file or the environment may set (the struct's fields).
const KEYS: &[&str] = &[
    "env",
    "log_level",
    "workers",
    "memory_limit_gb",
    "default_algorithm",
    "multivariate_algorithm",
    "multivariate_min_features",
    "default_contamination",
    "enable_automl",
    "enable_ensemble",
    "threshold",
    "warmup",
    "suppression",
    "recurrence_tolerance_secs",
    "seed",
    "overrides",
    "batch_size",
    "parallel_jobs",
    "cache_size",
    "enable_memory_optimization",
    "kafka_bootstrap_servers",
    "input_topics",
    "output_topic",
    "dead_letter_topic",
    "group_id",
    "input_format",
    "output_format",
    "key_field",
    "timestamp_field",
    "feature_fields",
    "anomalies_only",
    "max_record_bytes",
    "data_dir",
    "checkpoint_interval_ms",
    "checkpoint_records",
    "state_ttl_secs",
    "admin_port",
    "admin_bind",
    "shutdown_timeout_secs",
];

/// Environment variables that are ours but not configuration keys.
const NON_CONFIG_ENV: &[&str] = &[
    "config",
    "kafka_home",
    "kafka_port",
    "kafka_version",
    "kafka_heap",
    "kafka_start_timeout",
    "test_bootstrap",
    "tools_dir",
    "metrics_url",
    "telemetry_rs",
];

/// A validated override: records of `topic` (any when `None`) whose key
/// matches `key_pattern` (any when `None`) get `spec`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRule {
    /// Input topic, or any.
    pub topic: Option<String>,
    /// Key glob, or any key.
    pub key_pattern: Option<String>,
    /// Detector settings for matching keys.
    pub spec: DetectorSpec,
}

/// Where a configuration came from, plus what was ignored.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// `PYNOMALY_*` variables that are not configuration keys (warned about).
    pub ignored_env: Vec<String>,
}

impl Config {
    /// Loads defaults < `file` < environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    "config",
                    format!("config file {} does not exist", path.display()),
                ));
            }
            fig = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => fig.merge(Yaml::file_exact(path)),
                _ => fig.merge(Toml::file_exact(path)),
            };
        }
        let ignored_env = std::env::vars()
            .filter_map(|(k, _)| k.strip_prefix(ENV_PREFIX).map(str::to_ascii_lowercase))
            .filter(|k| !is_env_key(k) && !NON_CONFIG_ENV.contains(&k.as_str()))
            .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
            .collect();
        fig = fig.merge(env_provider());
        Self::from_figment(fig).map(|config| Loaded {
            config,
            ignored_env,
        })
    }

    /// Extracts and validates (used by `load` and by tests).
    pub fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let config: Config = fig.extract().map_err(|e| {
            let field = e.path.join(".");
            let field = if field.is_empty() {
                unknown_field(&e).unwrap_or_default()
            } else {
                field
            };
            ConfigError::new(&field, e.kind)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults alone, validated (for tests and `score`).
    pub fn defaults() -> Config {
        // The embedded defaults are covered by a unit test.
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
            .expect("embedded defaults are valid")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field: &str, v: u64| {
            if v == 0 {
                Err(ConfigError::new(field, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        self.log_filter()?;
        self.detector_spec()?;
        self.detector_rules()?;
        if !(self.memory_limit_gb.is_finite() && self.memory_limit_gb > 0.0) {
            return Err(ConfigError::new(
                "memory_limit_gb",
                format!(
                    "must be a positive number of GiB, got {}",
                    self.memory_limit_gb
                ),
            ));
        }
        positive("batch_size", self.batch_size as u64)?;
        positive("cache_size", self.cache_size as u64)?;
        positive("checkpoint_interval_ms", self.checkpoint_interval_ms)?;
        positive("checkpoint_records", self.checkpoint_records)?;
        if self.recurrence_tolerance_secs >= 43_200 {
            return Err(ConfigError::new(
                "recurrence_tolerance_secs",
                format!(
                    "{} s would match any time of day; use less than 43200 (12 h), or 0 to turn the rule off",
                    self.recurrence_tolerance_secs
                ),
            ));
        }
        positive("shutdown_timeout_secs", self.shutdown_timeout_secs)?;
        positive("max_record_bytes", self.max_record_bytes as u64)?;
        if self.workers > 1024 {
            return Err(ConfigError::new("workers", "must be at most 1024"));
        }
        if self.parallel_jobs > 1024 {
            return Err(ConfigError::new("parallel_jobs", "must be at most 1024"));
        }
        if self.kafka_bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new(
                "kafka_bootstrap_servers",
                "must not be empty",
            ));
        }
        if self.input_topics.is_empty() {
            return Err(ConfigError::new("input_topics", "name at least one topic"));
        }
        for (field, topic) in [
            ("output_topic", &self.output_topic),
            ("dead_letter_topic", &self.dead_letter_topic),
        ]
        .into_iter()
        .chain(self.input_topics.iter().map(|t| ("input_topics", t)))
        {
            validate_topic(topic).map_err(|m| ConfigError::new(field, m))?;
        }
        if self.input_topics.contains(&self.output_topic)
            || self.input_topics.contains(&self.dead_letter_topic)
        {
            return Err(ConfigError::new(
                "output_topic",
                "output and dead-letter topics must differ from the input topics (a feedback loop)",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::new("group_id", "must not be empty"));
        }
        for key in ["enable.auto.offset.store", "group.id", "bootstrap.servers"] {
            if self.kafka.contains_key(key) {
                return Err(ConfigError::new(
                    &format!("kafka.{}", key.replace('.', "_")),
                    "is managed by Pynomaly Detection; use its own key instead",
                ));
            }
        }
        if self.admin_bind.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "admin_bind",
                format!("`{}` is not an IP address", self.admin_bind),
            ));
        }
        Ok(())
    }

    /// The tracing filter directive for `log_level`.
    pub fn log_filter(&self) -> Result<&'static str, ConfigError> {
        match self.log_level.to_ascii_uppercase().as_str() {
            "TRACE" => Ok("trace"),
            "DEBUG" => Ok("debug"),
            "INFO" => Ok("info"),
            "WARNING" | "WARN" => Ok("warn"),
            "ERROR" | "CRITICAL" => Ok("error"),
            other => Err(ConfigError::new(
                "log_level",
                format!("`{other}` is not one of TRACE, DEBUG, INFO, WARNING, ERROR"),
            )),
        }
    }

    /// The validated detector parameters.
    pub fn detector_spec(&self) -> Result<DetectorSpec, ConfigError> {
        let algorithm: Algorithm = self
            .default_algorithm
            .parse()
            .map_err(|m| ConfigError::new("default_algorithm", m))?;
        let multivariate_algorithm: Algorithm = self
            .multivariate_algorithm
            .parse()
            .map_err(|m| ConfigError::new("multivariate_algorithm", m))?;
        let multivariate = match self.multivariate_min_features {
            0 => None,
            1 => {
                return Err(ConfigError::new(
                    "multivariate_min_features",
                    "1 would make every key multivariate, leaving `default_algorithm` unused; \
                     use 0 (rule off: every key gets `default_algorithm`) or 2 or more",
                ))
            }
            n => Some(MultivariateRule {
                algorithm: multivariate_algorithm,
                min_features: n,
            }),
        };
        let contamination = Contamination::try_from(self.default_contamination)
            .map_err(|m| ConfigError::new("default_contamination", m))?;
        let threshold: ThresholdMode = self
            .threshold
            .parse()
            .map_err(|m| ConfigError::new("threshold", m))?;
        // AutoML and ensembles add `default_algorithm` to their own candidates;
        // wide keys get the multivariate rule's algorithm either way.
        let (algorithm, member) = if self.enable_automl {
            (Algorithm::Auto, Some(algorithm))
        } else if self.enable_ensemble {
            (Algorithm::Ensemble, Some(algorithm))
        } else {
            (algorithm, None)
        };
        Ok(DetectorSpec {
            algorithm,
            contamination,
            warmup: self.warmup,
            suppression: self.suppression,
            recurrence_tolerance_secs: self.recurrence_tolerance_secs,
            seed: self.seed,
            threshold,
            multivariate,
            member,
        })
    }

    /// The validated override rules, in order.
    pub fn detector_rules(&self) -> Result<Vec<DetectorRule>, ConfigError> {
        let base = self.detector_spec()?;
        self.overrides
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let field = |name: &str| format!("overrides.{i}.{name}");
                if o.topic.is_none() && o.key_pattern.is_none() {
                    return Err(ConfigError::new(
                        &field("topic"),
                        "name a topic, a key_pattern or both",
                    ));
                }
                if let Some(t) = &o.topic {
                    if !self.input_topics.contains(t) {
                        return Err(ConfigError::new(
                            &field("topic"),
                            format!(
                                "`{t}` is not one of the input topics {:?}",
                                self.input_topics
                            ),
                        ));
                    }
                }
                let mut spec = base.clone();
                if let Some(a) = &o.algorithm {
                    // The rule's algorithm, whatever the key's feature count.
                    spec.algorithm = a
                        .parse()
                        .map_err(|m| ConfigError::new(&field("algorithm"), m))?;
                    spec.multivariate = None;
                }
                if let Some(c) = o.contamination {
                    spec.contamination = Contamination::try_from(c)
                        .map_err(|m| ConfigError::new(&field("contamination"), m))?;
                }
                if let Some(w) = o.warmup {
                    spec.warmup = w;
                }
                if let Some(s) = o.suppression {
                    spec.suppression = s;
                }
                Ok(DetectorRule {
                    topic: o.topic.clone(),
                    key_pattern: o.key_pattern.clone(),
                    spec,
                })
            })
            .collect()
    }

    /// Output encoding in force.
    pub fn output_format(&self) -> Format {
        self.output_format.unwrap_or(self.input_format)
    }

    /// librdkafka properties from `kafka.*` keys: `sasl_mechanism` → `sasl.mechanism`.
    pub fn kafka_properties(&self) -> Vec<(String, String)> {
        self.kafka
            .iter()
            .map(|(k, v)| (k.replace('_', "."), v.clone()))
            .collect()
    }
}

fn is_env_key(k: &str) -> bool {
    KEYS.contains(&k) || k.starts_with("kafka__")
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|k| is_env_key(&k.as_str().to_ascii_lowercase()))
        .split("__")
}

fn unknown_field(e: &figment::Error) -> Option<String> {
    match &e.kind {
        figment::error::Kind::UnknownField(f, _) => Some(f.clone()),
        _ => None,
    }
}

/// Kafka's topic name rules (legal characters, length, not `.`/`..`).
fn validate_topic(t: &str) -> Result<(), String> {
    if t.is_empty() || t == "." || t == ".." || t.len() > 249 {
        return Err(format!("`{t}` is not a valid topic name"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic `{t}` contains `{c}`; use [a-zA-Z0-9._-]"));
    }
    Ok(())
}

/// Serializable view for `pynomaly config` (secrets masked).
pub fn redacted(config: &Config) -> Config {
    let mut c = config.clone();
    for (k, v) in c.kafka.iter_mut() {
        if k.contains("password") || k.contains("secret") || k.ends_with("key") {
            *v = "****".to_string();
        }
    }
    c
}

/// Figment seeded with a full config value (used in tests).
pub fn figment_from(config: &Config) -> Figment {
    Figment::from(Serialized::defaults(config))
}

#[cfg(test)]
// figment's Jail returns its own (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn embedded_defaults_are_valid_and_match_the_contract() {
        let c = Config::defaults();
        assert_eq!(c.kafka_bootstrap_servers, "localhost:9092");
        assert_eq!(c.input_topics, vec!["events"]);
        assert_eq!(c.output_topic, "anomalies");
        assert_eq!(c.dead_letter_topic, "events-dlq");
        assert_eq!(c.group_id, "pynomaly-detection");
        assert_eq!(c.admin_port, 9090);
    }

    #[test]
    fn wide_keys_get_the_multivariate_algorithm_by_default() {
        let c = Config::defaults();
        assert_eq!(c.default_algorithm, "seasonal");
        assert_eq!(c.multivariate_algorithm, "loda");
        assert_eq!(c.multivariate_min_features, 3);
        let spec = c.detector_spec().unwrap();
        assert_eq!(spec.algorithm_for(1), Algorithm::Seasonal);
        assert_eq!(spec.algorithm_for(2), Algorithm::Seasonal);
        assert_eq!(spec.algorithm_for(3), Algorithm::Loda);
        assert_eq!(spec.algorithm_for(40), Algorithm::Loda);
    }

    #[test]
    fn multivariate_keys_are_set_by_environment_and_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "multivariate_algorithm = \"hst\"\n")?;
            jail.set_env("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "5");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap().config;
            assert_eq!(c.multivariate_min_features, 5);
            let spec = c.detector_spec().unwrap();
            assert_eq!(spec.algorithm_for(4), Algorithm::Seasonal);
            assert_eq!(spec.algorithm_for(5), Algorithm::Hst);
            jail.set_env("PYNOMALY_MULTIVARIATE_ALGORITHM", "rcf");
            let spec = Config::load(Some(Path::new("c.toml")))
                .unwrap()
                .config
                .detector_spec()
                .unwrap();
            assert_eq!(spec.algorithm_for(5), Algorithm::Rcf);
            // 0 turns the rule off: every key gets `default_algorithm`.
            jail.set_env("PYNOMALY_MULTIVARIATE_MIN_FEATURES", "0");
            let spec = Config::load(None).unwrap().config.detector_spec().unwrap();
            assert_eq!(spec.multivariate, None);
            assert_eq!(spec.algorithm_for(100), Algorithm::Seasonal);
            Ok(())
        });
    }

    #[test]
    fn ensemble_and_automl_apply_below_the_multivariate_threshold() {
        Jail::expect_with(|jail| {
            jail.set_env("PYNOMALY_ENABLE_ENSEMBLE", "true");
            let spec = Config::load(None).unwrap().config.detector_spec().unwrap();
            assert_eq!(spec.algorithm_for(2), Algorithm::Ensemble);
            assert_eq!(spec.algorithm_for(3), Algorithm::Loda);
            jail.set_env("PYNOMALY_ENABLE_AUTOML", "true");
            let spec = Config::load(None).unwrap().config.detector_spec().unwrap();
            assert_eq!(spec.algorithm_for(2), Algorithm::Auto);
            assert_eq!(spec.algorithm_for(3), Algorithm::Loda);
            // The configured default algorithm joins the candidates.
            assert_eq!(spec.member, Some(Algorithm::Seasonal));
            jail.set_env("PYNOMALY_DEFAULT_ALGORITHM", "mad");
            let spec = Config::load(None).unwrap().config.detector_spec().unwrap();
            assert_eq!(spec.extra_member(), Some(Algorithm::Mad));
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_and_passes_kafka_properties() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "output_topic = \"from-file\"\nbatch_size = 7\n")?;
            jail.set_env("PYNOMALY_OUTPUT_TOPIC", "from-env");
            jail.set_env("PYNOMALY_INPUT_TOPICS", "a, b");
            jail.set_env("PYNOMALY_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512");
            jail.set_env("PYNOMALY_DETECTION_SERVICE_HOST", "10.0.0.1");
            let loaded = Config::load(Some(Path::new("c.toml"))).unwrap();
            let c = loaded.config;
            assert_eq!(c.output_topic, "from-env");
            assert_eq!(c.batch_size, 7);
            assert_eq!(c.input_topics, vec!["a", "b"]);
            assert!(c
                .kafka_properties()
                .contains(&("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string())));
            assert!(loaded
                .ignored_env
                .contains(&"PYNOMALY_DETECTION_SERVICE_HOST".to_string()));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        for (var, value, key) in [
            (
                "PYNOMALY_DEFAULT_CONTAMINATION",
                "2",
                "PYNOMALY_DEFAULT_CONTAMINATION",
            ),
            (
                "PYNOMALY_DEFAULT_ALGORITHM",
                "magic",
                "PYNOMALY_DEFAULT_ALGORITHM",
            ),
            (
                "PYNOMALY_MULTIVARIATE_ALGORITHM",
                "magic",
                "PYNOMALY_MULTIVARIATE_ALGORITHM",
            ),
            (
                "PYNOMALY_MULTIVARIATE_MIN_FEATURES",
                "1",
                "PYNOMALY_MULTIVARIATE_MIN_FEATURES",
            ),
            (
                "PYNOMALY_MULTIVARIATE_MIN_FEATURES",
                "-3",
                "PYNOMALY_MULTIVARIATE_MIN_FEATURES",
            ),
            ("PYNOMALY_BATCH_SIZE", "lots", "PYNOMALY_BATCH_SIZE"),
            (
                "PYNOMALY_RECURRENCE_TOLERANCE_SECS",
                "43200",
                "PYNOMALY_RECURRENCE_TOLERANCE_SECS",
            ),
            (
                "PYNOMALY_STATE_TTL_SECS",
                "a month",
                "PYNOMALY_STATE_TTL_SECS",
            ),
            ("PYNOMALY_LOG_LEVEL", "LOUD", "PYNOMALY_LOG_LEVEL"),
            ("PYNOMALY_ENV", "prod-ish", "PYNOMALY_ENV"),
            (
                "PYNOMALY_OUTPUT_TOPIC",
                "bad topic",
                "PYNOMALY_OUTPUT_TOPIC",
            ),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Config::load(None).unwrap_err();
                assert!(err.key.starts_with(key), "{var}={value}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn overrides_are_validated_and_name_the_rule() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "ok.toml",
                "[[overrides]]\ntopic = \"events\"\nkey_pattern = \"card-*\"\nalgorithm = \"loda\"\n",
            )?;
            let c = Config::load(Some(Path::new("ok.toml"))).unwrap().config;
            let rules = c.detector_rules().unwrap();
            assert_eq!(rules[0].spec.algorithm.name(), "loda");
            jail.create_file(
                "wide.toml",
                "[[overrides]]\nkey_pattern = \"host-*\"\nalgorithm = \"mad\"\n\
                 [[overrides]]\nkey_pattern = \"card-*\"\ncontamination = 0.01\n",
            )?;
            let c = Config::load(Some(Path::new("wide.toml"))).unwrap().config;
            let rules = c.detector_rules().unwrap();
            // An override's algorithm holds whatever the feature count…
            assert_eq!(rules[0].spec.algorithm_for(1), Algorithm::Mad);
            assert_eq!(rules[0].spec.algorithm_for(10), Algorithm::Mad);
            // …and one without an algorithm inherits the multivariate rule.
            assert_eq!(rules[1].spec.algorithm_for(2), Algorithm::Seasonal);
            assert_eq!(rules[1].spec.algorithm_for(10), Algorithm::Loda);
            jail.create_file(
                "bad.toml",
                "[[overrides]]\nkey_pattern = \"x*\"\nalgorithm = \"magic\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.key.contains("overrides.0.algorithm"), "{err}");
            jail.create_file("bad2.toml", "[[overrides]]\ntopic = \"elsewhere\"\n")?;
            let err = Config::load(Some(Path::new("bad2.toml"))).unwrap_err();
            assert!(err.key.contains("overrides.0.topic"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "batch_sise = 7\n")?;
            let err = Config::load(Some(Path::new("c.toml"))).unwrap_err();
            assert!(err.to_string().contains("batch_sise"), "{err}");
            Ok(())
        });
    }
}
