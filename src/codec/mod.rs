//! Bytes ⇄ events and score records, nothing else.
//!
//! Decoding never panics: every failure is a [`DecodeError`] whose
//! [`DecodeError::error_type`] is a bounded label used in metrics and in the
//! dead-letter headers.

pub mod avro;
pub mod json;

use crate::config::{Config, Format};
use crate::event::{Event, ScoreRecord};

/// Why a record could not be turned into an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Zero-length payload.
    #[error("empty payload")]
    Empty,
    /// Larger than `max_record_bytes`.
    #[error("payload of {size} bytes exceeds max_record_bytes = {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Not valid JSON / Avro for the schema.
    #[error("malformed {format} record: {message}")]
    Malformed {
        /// `json` or `avro`.
        format: &'static str,
        /// Decoder message.
        message: String,
    },
    /// A field has the wrong type.
    #[error("field `{field}` {message}")]
    WrongType {
        /// Field name.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A configured feature is absent.
    #[error("feature `{0}` is missing")]
    MissingFeature(String),
    /// No entity key anywhere.
    #[error("record has no entity key (no Kafka key and no `{0}` field)")]
    MissingKey(String),
}

impl DecodeError {
    /// Bounded label for metrics and dead-letter headers.
    pub fn error_type(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::MissingFeature(_) => "missing_features",
            DecodeError::MissingKey(_) => "missing_key",
        }
    }
}

/// How fields are found in a record (from configuration).
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    /// Field with the entity key (`None`: the `key` field).
    pub key_field: Option<String>,
    /// Field with the event time (`None`: `timestamp`).
    pub timestamp_field: Option<String>,
    /// Feature fields (empty: every entry of `values`).
    pub feature_fields: Vec<String>,
}

/// A decoder for the configured input format.
pub struct Decoder {
    format: Format,
    fields: FieldMap,
    max_bytes: usize,
    avro: avro::AvroCodec,
}

impl Decoder {
    /// From configuration.
    pub fn new(config: &Config) -> Self {
        Decoder {
            format: config.input_format,
            fields: FieldMap {
                key_field: config.key_field.clone(),
                timestamp_field: config.timestamp_field.clone(),
                feature_fields: config.feature_fields.clone(),
            },
            max_bytes: config.max_record_bytes,
            avro: avro::AvroCodec::new(),
        }
    }

    /// Decodes one payload.
    pub fn decode(&self, payload: &[u8]) -> Result<Event, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::Empty);
        }
        if payload.len() > self.max_bytes {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                max: self.max_bytes,
            });
        }
        match self.format {
            Format::Json => json::decode(payload, &self.fields),
            Format::Avro => self.avro.decode(payload, &self.fields),
        }
    }
}

/// An encoder for the configured output format.
pub struct Encoder {
    format: Format,
    avro: avro::AvroCodec,
}

impl Encoder {
    /// From configuration.
    pub fn new(config: &Config) -> Self {
        Encoder {
            format: config.output_format(),
            avro: avro::AvroCodec::new(),
        }
    }

    /// Encodes one score record.
    pub fn encode(&self, record: &ScoreRecord) -> Vec<u8> {
        match self.format {
            Format::Json => json::encode(record),
            Format::Avro => self.avro.encode(record),
        }
    }
}
