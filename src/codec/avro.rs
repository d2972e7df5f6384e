//! Avro binary datums for `schemas/event.avsc` (input) and `schemas/anomaly.avsc` (output).
//!
//! Plain datums, no container header and no schema-registry framing: the schema
//! is fixed by the product and shipped in `schemas/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_avro_fast::ser::SerializerConfig;
use serde_avro_fast::Schema;

use super::{DecodeError, FieldMap};
use crate::event::{Event, ScoreRecord};

/// The input schema.
pub const EVENT_SCHEMA: &str = include_str!("../../schemas/event.avsc");
/// The output schema.
pub const ANOMALY_SCHEMA: &str = include_str!("../../schemas/anomaly.avsc");

/// An input datum as laid out by `event.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvroEvent {
    /// Entity key.
    pub key: Option<String>,
    /// Event time, epoch ms.
    pub timestamp: Option<i64>,
    /// Features.
    pub values: BTreeMap<String, f64>,
    /// Metadata carried along.
    pub attributes: BTreeMap<String, String>,
}

/// Parsed schemas.
pub struct AvroCodec {
    event: Schema,
    anomaly: Schema,
}

impl Default for AvroCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl AvroCodec {
    /// Parses the embedded schemas.
    pub fn new() -> Self {
        // The schemas are compiled in and covered by tests.
        AvroCodec {
            event: EVENT_SCHEMA.parse().expect("schemas/event.avsc is valid"),
            anomaly: ANOMALY_SCHEMA
                .parse()
                .expect("schemas/anomaly.avsc is valid"),
        }
    }

    /// Decodes an `Event` datum.
    pub fn decode(&self, payload: &[u8], fields: &FieldMap) -> Result<Event, DecodeError> {
        let datum: AvroEvent =
            serde_avro_fast::from_datum_slice(payload, &self.event).map_err(|e| {
                DecodeError::Malformed {
                    format: "avro",
                    message: e.to_string(),
                }
            })?;
        let features = if fields.feature_fields.is_empty() {
            datum.values.into_iter().collect()
        } else {
            fields
                .feature_fields
                .iter()
                .map(|f| {
                    datum
                        .values
                        .get(f)
                        .map(|v| (f.clone(), *v))
                        .ok_or_else(|| DecodeError::MissingFeature(f.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Event {
            key: datum.key,
            timestamp_ms: datum.timestamp,
            features,
        })
    }

    /// Encodes an input event (used by the simulator and tests).
    pub fn encode_event(&self, event: &AvroEvent) -> Vec<u8> {
        serde_avro_fast::to_datum_vec(event, &mut SerializerConfig::new(&self.event))
            .expect("AvroEvent matches schemas/event.avsc")
    }

    /// Encodes a score record.
    pub fn encode(&self, record: &ScoreRecord) -> Vec<u8> {
        serde_avro_fast::to_datum_vec(record, &mut SerializerConfig::new(&self.anomaly))
            .expect("ScoreRecord matches schemas/anomaly.avsc")
    }

    /// Decodes a score record (for tests and tooling).
    pub fn decode_score(&self, payload: &[u8]) -> Result<ScoreRecord, DecodeError> {
        serde_avro_fast::from_datum_slice(payload, &self.anomaly).map_err(|e| {
            DecodeError::Malformed {
                format: "avro",
                message: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FeatureScore;

    #[test]
    fn event_round_trips_and_garbage_is_an_error() {
        let codec = AvroCodec::new();
        let ev = AvroEvent {
            key: Some("host-1".into()),
            timestamp: Some(1_732_610_000_000),
            values: [("cpu".to_string(), 0.42)].into_iter().collect(),
            attributes: BTreeMap::new(),
        };
        let bytes = codec.encode_event(&ev);
        let e = codec.decode(&bytes, &FieldMap::default()).unwrap();
        assert_eq!(e.key.as_deref(), Some("host-1"));
        assert_eq!(e.features, vec![("cpu".to_string(), 0.42)]);
        for garbage in [
            &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            b"\x02",
            b"not avro at all",
        ] {
            assert!(codec.decode(garbage, &FieldMap::default()).is_err());
        }
    }

    fn sample_record() -> ScoreRecord {
        ScoreRecord {
            key: "k".into(),
            timestamp: 1,
            topic: "t".into(),
            partition: 2,
            offset: 3,
            score: 0.7,
            raw_score: 5.0,
            threshold: 3.0,
            is_anomaly: true,
            detector: "ewma".into(),
            warming_up: false,
            suppressed: None,
            features: [(
                "cpu".to_string(),
                FeatureScore {
                    value: 9.0,
                    expected: 1.0,
                    lower: 0.0,
                    upper: 2.0,
                    contribution: 1.0,
                },
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn score_record_round_trips() {
        let codec = AvroCodec::new();
        let rec = sample_record();
        assert_eq!(codec.decode_score(&codec.encode(&rec)).unwrap(), rec);
        let rec = ScoreRecord {
            is_anomaly: false,
            suppressed: Some("daily_pattern".into()),
            ..rec
        };
        assert_eq!(codec.decode_score(&codec.encode(&rec)).unwrap(), rec);
    }

    #[test]
    fn consumers_of_the_previous_anomaly_schema_still_read_every_old_field() {
        // The schema before `suppressed` was added (its last field).
        let old_schema: serde_avro_fast::Schema = ANOMALY_SCHEMA
            .lines()
            .filter(|l| !l.contains("\"name\": \"suppressed\""))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(
                "\"Per-feature explanation.\"},",
                "\"Per-feature explanation.\"}",
            )
            .parse()
            .expect("the previous schema parses");
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct OldRecord {
            key: String,
            offset: i64,
            warming_up: bool,
            features: std::collections::BTreeMap<String, FeatureScore>,
        }
        let codec = AvroCodec::new();
        let rec = ScoreRecord {
            is_anomaly: false,
            suppressed: Some("daily_pattern".into()),
            ..sample_record()
        };
        let old: OldRecord =
            serde_avro_fast::from_datum_slice(&codec.encode(&rec), &old_schema).unwrap();
        assert_eq!(
            old,
            OldRecord {
                key: rec.key,
                offset: rec.offset,
                warming_up: rec.warming_up,
                features: rec.features,
            }
        );
    }
}
