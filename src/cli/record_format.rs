//! How `spool consume` prints a record: the text of Kafka's console consumer
//! (`DefaultMessageFormatter`, driven by the same `--property print.*` names), or one JSON
//! object per line.

use super::client::{parse_bool, unescape, PropertyError};
use rdkafka::message::{Headers, Message, Timestamp};
use serde_json::{json, Value};
use std::io::Write;

/// The `--property` settings of `spool consume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFormat {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    headers_key_separator: String,
    null_literal: String,
}

const KNOWN: &str = "print.timestamp, print.partition, print.offset, print.headers, print.key, \
                     print.value, key.separator, line.separator, headers.separator, \
                     headers.key.separator, null.literal";

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_literal: "null".into(),
        }
    }
}

impl TextFormat {
    /// Applies `--property key=value` pairs; an unknown key is an error that names it.
    pub fn from_properties(pairs: &[(String, String)]) -> Result<Self, PropertyError> {
        let mut f = TextFormat::default();
        for (key, value) in pairs {
            match key.as_str() {
                "print.timestamp" => f.print_timestamp = parse_bool(key, value)?,
                "print.partition" => f.print_partition = parse_bool(key, value)?,
                "print.offset" => f.print_offset = parse_bool(key, value)?,
                "print.headers" => f.print_headers = parse_bool(key, value)?,
                "print.key" => f.print_key = parse_bool(key, value)?,
                "print.value" => f.print_value = parse_bool(key, value)?,
                "key.separator" => f.key_separator = unescape(value),
                "line.separator" => f.line_separator = unescape(value),
                "headers.separator" => f.headers_separator = unescape(value),
                "headers.key.separator" => f.headers_key_separator = unescape(value),
                "null.literal" => f.null_literal = unescape(value),
                _ => {
                    return Err(PropertyError::Unknown {
                        key: key.clone(),
                        known: KNOWN.into(),
                    })
                }
            }
        }
        Ok(f)
    }

    /// Writes one record as Kafka's console consumer would: the chosen fields in the order
    /// timestamp, partition, offset, headers, key, value, separated by `key.separator`.
    pub fn write(&self, out: &mut impl Write, m: &impl Message) -> std::io::Result<()> {
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        let mut first = true;
        for (i, _) in fields.iter().enumerate().filter(|(_, on)| **on) {
            if !first {
                out.write_all(self.key_separator.as_bytes())?;
            }
            first = false;
            match i {
                0 => out.write_all(timestamp_text(m.timestamp()).as_bytes())?,
                1 => write!(out, "Partition:{}", m.partition())?,
                2 => write!(out, "Offset:{}", m.offset())?,
                3 => self.write_headers(out, m)?,
                4 => self.write_nullable(out, m.key())?,
                _ => self.write_nullable(out, m.payload())?,
            }
        }
        // Kafka ends the line only after the value; without one, fields run on. A line per
        // record is what anyone piping the output expects, so spool always ends it.
        out.write_all(self.line_separator.as_bytes())
    }

    fn write_headers(&self, out: &mut impl Write, m: &impl Message) -> std::io::Result<()> {
        let Some(headers) = m.headers().filter(|h| h.count() > 0) else {
            return out.write_all(b"NO_HEADERS");
        };
        for (i, h) in headers.iter().enumerate() {
            if i > 0 {
                out.write_all(self.headers_separator.as_bytes())?;
            }
            out.write_all(h.key.as_bytes())?;
            out.write_all(self.headers_key_separator.as_bytes())?;
            self.write_nullable(out, h.value)?;
        }
        Ok(())
    }

    fn write_nullable(&self, out: &mut impl Write, bytes: Option<&[u8]>) -> std::io::Result<()> {
        out.write_all(bytes.unwrap_or(self.null_literal.as_bytes()))
    }
}

fn timestamp_text(t: Timestamp) -> String {
    match t {
        Timestamp::NotAvailable => "NO_TIMESTAMP".into(),
        Timestamp::CreateTime(ms) => format!("CreateTime:{ms}"),
        Timestamp::LogAppendTime(ms) => format!("LogAppendTime:{ms}"),
    }
}

/// One record as a JSON object: topic, partition, offset, timestamp, timestamp_type, key,
/// value and headers. Bytes that are UTF-8 are strings; others are `{"hex": "..."}`; null
/// stays null.
pub fn json(m: &impl Message) -> Value {
    let (timestamp_type, timestamp) = match m.timestamp() {
        Timestamp::NotAvailable => (Value::Null, Value::Null),
        Timestamp::CreateTime(ms) => (json!("CreateTime"), json!(ms)),
        Timestamp::LogAppendTime(ms) => (json!("LogAppendTime"), json!(ms)),
    };
    let headers: Vec<Value> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| json!({"key": h.key, "value": bytes_json(h.value)}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": timestamp,
        "timestamp_type": timestamp_type,
        "key": bytes_json(m.key()),
        "value": bytes_json(m.payload()),
        "headers": headers,
    })
}

fn bytes_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    fn message(key: Option<&[u8]>, headers: Option<OwnedHeaders>) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"v1".to_vec()),
            key.map(<[u8]>::to_vec),
            "t".into(),
            Timestamp::CreateTime(1700),
            2,
            42,
            headers,
        )
    }

    fn text(pairs: &[(&str, &str)], m: &OwnedMessage) -> String {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        TextFormat::from_properties(&pairs)
            .unwrap()
            .write(&mut out, m)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn value_only_by_default() {
        assert_eq!(text(&[], &message(Some(b"k"), None)), "v1\n");
    }

    #[test]
    fn all_fields_in_kafkas_order() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some("x"),
            })
            .insert(Header::<&str> {
                key: "h2",
                value: None,
            });
        let m = message(Some(b"k"), Some(headers));
        let all = [
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
            ("key.separator", " | "),
        ];
        assert_eq!(
            text(&all, &m),
            "CreateTime:1700 | Partition:2 | Offset:42 | h1:x,h2:null | k | v1\n"
        );
        let m = message(None, None);
        assert_eq!(
            text(&[("print.key", "true"), ("print.headers", "true")], &m),
            "NO_HEADERS\tnull\tv1\n"
        );
    }

    #[test]
    fn json_keeps_nulls_and_marks_binary() {
        let m = OwnedMessage::new(
            Some(vec![0xff, 0x00]),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            1,
            None,
        );
        assert_eq!(
            json(&m),
            json!({"topic": "t", "partition": 0, "offset": 1, "timestamp": null,
                   "timestamp_type": null, "key": null, "value": {"hex": "ff00"}, "headers": []})
        );
    }

    #[test]
    fn unknown_properties_are_named() {
        let err = TextFormat::from_properties(&[("print.kye".into(), "true".into())]).unwrap_err();
        assert!(err.to_string().contains("print.kye"), "{err}");
    }
}
