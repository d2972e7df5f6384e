//! JSON records: `{"key": "host-1", "timestamp": 1732610000000, "values": {"cpu": 0.42}}`,
//! or flat records whose key, timestamp and feature fields are named in configuration.

use serde_json::{Map, Value};

use super::{DecodeError, FieldMap};
use crate::event::{Event, ScoreRecord};

/// Decodes one JSON object.
pub fn decode(payload: &[u8], fields: &FieldMap) -> Result<Event, DecodeError> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed {
        format: "json",
        message: e.to_string(),
    })?;
    let Value::Object(obj) = value else {
        return Err(DecodeError::Malformed {
            format: "json",
            message: "top level is not an object".to_string(),
        });
    };
    let key_field = fields.key_field.as_deref().unwrap_or("key");
    let key = match lookup(&obj, key_field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(wrong(key_field, "must be a string or a number")),
    };
    let ts_field = fields.timestamp_field.as_deref().unwrap_or("timestamp");
    let timestamp_ms = match lookup(&obj, ts_field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_timestamp(v).ok_or_else(|| {
            wrong(
                ts_field,
                "must be epoch milliseconds or an RFC 3339 date-time",
            )
        })?),
    };
    let mut features = Vec::new();
    if fields.feature_fields.is_empty() {
        match obj.get("values") {
            None => return Err(DecodeError::MissingFeature("values".to_string())),
            Some(Value::Object(values)) => {
                for (name, v) in values {
                    features.push((name.clone(), number(name, v)?));
                }
            }
            Some(_) => return Err(wrong("values", "must be an object of numbers")),
        }
    } else {
        for name in &fields.feature_fields {
            let v = lookup(&obj, name).ok_or_else(|| DecodeError::MissingFeature(name.clone()))?;
            features.push((name.clone(), number(name, v)?));
        }
    }
    Ok(Event {
        key,
        timestamp_ms,
        features,
    })
}

/// A top-level field, or an entry of `values`, or a dotted path (`a.b`).
fn lookup<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(name) {
        return Some(v);
    }
    if let Some(Value::Object(values)) = obj.get("values") {
        if let Some(v) = values.get(name) {
            return Some(v);
        }
    }
    let mut parts = name.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn number(name: &str, v: &Value) -> Result<f64, DecodeError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| wrong(name, "is not a finite number")),
        Value::Null => Err(DecodeError::MissingFeature(name.to_string())),
        _ => Err(wrong(name, "must be a number")),
    }
}

fn wrong(field: &str, message: &str) -> DecodeError {
    DecodeError::WrongType {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Epoch milliseconds (integer or float) or an RFC 3339 string.
pub fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => parse_timestamp_text(s),
        _ => None,
    }
}

/// Epoch milliseconds from text: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (taken
/// as UTC, as in CSV exports and NAB), or integer epoch milliseconds.
pub fn parse_timestamp_text(s: &str) -> Option<i64> {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .map(|d| d.and_utc().timestamp_millis())
        })
        .ok()
        .or_else(|| s.parse::<i64>().ok())
}

/// Encodes a score record as one JSON object.
pub fn encode(record: &ScoreRecord) -> Vec<u8> {
    // Plain structs with finite floats and string keys always serialize.
    serde_json::to_vec(record).expect("score records serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_from_the_usual_text_forms() {
        let t = 1_392_388_200_000; // 2014-02-14 14:30:00 UTC
        assert_eq!(parse_timestamp_text("2014-02-14T14:30:00Z"), Some(t));
        assert_eq!(parse_timestamp_text("2014-02-14T15:30:00+01:00"), Some(t));
        assert_eq!(parse_timestamp_text("2014-02-14 14:30:00"), Some(t));
        assert_eq!(
            parse_timestamp_text("2014-02-14 14:30:00.250"),
            Some(t + 250)
        );
        assert_eq!(parse_timestamp_text(" 1392388200000 "), Some(t));
        assert_eq!(parse_timestamp_text("yesterday"), None);
    }

    fn dec(s: &str) -> Result<Event, DecodeError> {
        decode(s.as_bytes(), &FieldMap::default())
    }

    #[test]
    fn decodes_the_documented_record() {
        let e = dec(r#"{"key":"host-1","timestamp":1732610000000,"values":{"latency_ms":12.5,"cpu":0.42},"extra":1}"#).unwrap();
        assert_eq!(e.key.as_deref(), Some("host-1"));
        assert_eq!(e.timestamp_ms, Some(1_732_610_000_000));
        assert_eq!(
            e.features,
            vec![("cpu".to_string(), 0.42), ("latency_ms".to_string(), 12.5)]
        );
        let e = dec(r#"{"timestamp":"2024-11-26T08:33:20Z","values":{"x":1}}"#).unwrap();
        assert_eq!(e.timestamp_ms, Some(1_732_610_000_000));
    }

    #[test]
    fn flat_records_with_configured_fields() {
        let fields = FieldMap {
            key_field: Some("host".into()),
            timestamp_field: Some("ts".into()),
            feature_fields: vec!["cpu".into(), "mem".into()],
        };
        let e = decode(br#"{"host":"a","ts":5,"cpu":1,"mem":2.5}"#, &fields).unwrap();
        assert_eq!(e.key.as_deref(), Some("a"));
        assert_eq!(e.features.len(), 2);
        let err = decode(br#"{"host":"a","cpu":1}"#, &fields).unwrap_err();
        assert_eq!(err.error_type(), "missing_features");
    }

    #[test]
    fn bad_records_get_bounded_error_types() {
        for (input, kind) in [
            ("{not json", "malformed"),
            ("[1,2]", "malformed"),
            (r#"{"values":{"x":"high"}}"#, "wrong_type"),
            (r#"{"values":{"x":NaN}}"#, "malformed"),
            (r#"{"values":{"x":1e999}}"#, "malformed"),
            (r#"{"values":[1]}"#, "wrong_type"),
            (r#"{"key":"a"}"#, "missing_features"),
            (
                r#"{"timestamp":"yesterday","values":{"x":1}}"#,
                "wrong_type",
            ),
            (r#"{"key":{"a":1},"values":{"x":1}}"#, "wrong_type"),
        ] {
            assert_eq!(dec(input).unwrap_err().error_type(), kind, "{input}");
        }
    }
}
