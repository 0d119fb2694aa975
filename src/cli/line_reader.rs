//! Turns a line of `spool produce` input into a record, with the properties of Kafka's console
//! producer (`LineMessageReader`):
//!
//! `[headers<headers.delimiter>][key<key.separator>]value`, headers being
//! `name<headers.key.separator>value` joined by `headers.separator`.

use super::client::{parse_bool, unescape, PropertyError};
use thiserror::Error;

/// The `--property` settings of `spool produce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
    ignore_error: bool,
}

/// Record headers in order: name and value (`None`: null).
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// One record read from a line. `None` is a null key, value or header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LineError {
    #[error("line {line}: no key separator `{separator}` in `{text}`")]
    NoKeySeparator {
        line: usize,
        separator: String,
        text: String,
    },
    #[error("line {line}: no headers delimiter `{delimiter}` in `{text}`")]
    NoHeadersDelimiter {
        line: usize,
        delimiter: String,
        text: String,
    },
    #[error("line {line}: header `{header}` has a null name")]
    NullHeaderName { line: usize, header: String },
}

const KNOWN: &str = "parse.key, key.separator, parse.headers, headers.delimiter, \
                     headers.separator, headers.key.separator, null.marker, ignore.error";

impl Default for LineReader {
    fn default() -> Self {
        LineReader {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_marker: None,
            ignore_error: false,
        }
    }
}

impl LineReader {
    /// Applies `--property key=value` pairs; an unknown key is an error that names it.
    pub fn from_properties(pairs: &[(String, String)]) -> Result<Self, PropertyError> {
        let mut r = LineReader::default();
        for (key, value) in pairs {
            match key.as_str() {
                "parse.key" => r.parse_key = parse_bool(key, value)?,
                "key.separator" => r.key_separator = unescape(value),
                "parse.headers" => r.parse_headers = parse_bool(key, value)?,
                "headers.delimiter" => r.headers_delimiter = unescape(value),
                "headers.separator" => r.headers_separator = unescape(value),
                "headers.key.separator" => r.headers_key_separator = unescape(value),
                "null.marker" => r.null_marker = Some(unescape(value)),
                "ignore.error" => r.ignore_error = parse_bool(key, value)?,
                _ => {
                    return Err(PropertyError::Unknown {
                        key: key.clone(),
                        known: KNOWN.into(),
                    })
                }
            }
        }
        Ok(r)
    }

    /// Reads line number `line` (1-based, for errors), without its line ending.
    pub fn parse(&self, line: usize, text: &str) -> Result<LineRecord, LineError> {
        let mut rest = text;
        let mut headers = Vec::new();
        if self.parse_headers {
            match rest.split_once(self.headers_delimiter.as_str()) {
                Some((h, r)) => {
                    headers = self.parse_headers(line, h)?;
                    rest = r;
                }
                None if self.ignore_error => {}
                None => {
                    return Err(LineError::NoHeadersDelimiter {
                        line,
                        delimiter: self.headers_delimiter.clone(),
                        text: text.to_string(),
                    })
                }
            }
        }
        let (key, value) = if self.parse_key {
            match rest.split_once(self.key_separator.as_str()) {
                Some((k, v)) => (self.nullable(k), self.nullable(v)),
                None if self.ignore_error => (None, self.nullable(rest)),
                None => {
                    return Err(LineError::NoKeySeparator {
                        line,
                        separator: self.key_separator.clone(),
                        text: text.to_string(),
                    })
                }
            }
        } else {
            (None, self.nullable(rest))
        };
        Ok(LineRecord {
            key,
            value,
            headers,
        })
    }

    fn parse_headers(&self, line: usize, text: &str) -> Result<Headers, LineError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(self.headers_separator.as_str())
            .map(|header| {
                let (name, value) = match header.split_once(self.headers_key_separator.as_str()) {
                    Some((n, v)) => (n, self.nullable(v)),
                    None => (header, None),
                };
                if self.null_marker.as_deref() == Some(name) {
                    return Err(LineError::NullHeaderName {
                        line,
                        header: header.to_string(),
                    });
                }
                Ok((name.to_string(), value))
            })
            .collect()
    }

    fn nullable(&self, s: &str) -> Option<Vec<u8>> {
        match &self.null_marker {
            Some(marker) if marker == s => None,
            _ => Some(s.as_bytes().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pairs: &[(&str, &str)]) -> LineReader {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineReader::from_properties(&pairs).unwrap()
    }

    fn b(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn plain_lines_are_values_with_no_key() {
        let r = LineReader::default().parse(1, "a:b").unwrap();
        assert_eq!((r.key, r.value, r.headers), (None, b("a:b"), vec![]));
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let rec = r.parse(1, "k1:v:1").unwrap();
        assert_eq!((rec.key, rec.value), (b("k1"), b("v:1")));
        let err = r.parse(7, "novalue").unwrap_err();
        assert_eq!(err.to_string(), "line 7: no key separator `:` in `novalue`");
    }

    #[test]
    fn headers_come_first_like_kafkas_console_producer() {
        let r = reader(&[
            ("parse.key", "true"),
            ("key.separator", ":"),
            ("parse.headers", "true"),
            ("headers.delimiter", "|"),
        ]);
        let rec = r.parse(1, "h1:x,h2,h3:|k:v").unwrap();
        assert_eq!(
            rec.headers,
            vec![
                ("h1".to_string(), b("x")),
                ("h2".to_string(), None),
                ("h3".to_string(), b("")),
            ]
        );
        assert_eq!((rec.key, rec.value), (b("k"), b("v")));
        assert_eq!(r.parse(1, "|k:v").unwrap().headers, vec![]);
        assert!(matches!(
            r.parse(2, "k:v"),
            Err(LineError::NoHeadersDelimiter { line: 2, .. })
        ));
    }

    #[test]
    fn null_marker_and_ignore_error() {
        let r = reader(&[
            ("parse.key", "true"),
            ("null.marker", "<null>"),
            ("ignore.error", "true"),
            ("key.separator", "\\t"),
        ]);
        let rec = r.parse(1, "<null>\tv").unwrap();
        assert_eq!((rec.key, rec.value), (None, b("v")));
        let rec = r.parse(1, "k\t<null>").unwrap();
        assert_eq!((rec.key, rec.value), (b("k"), None));
        let rec = r.parse(1, "just a value").unwrap();
        assert_eq!((rec.key, rec.value), (None, b("just a value")));
    }

    #[test]
    fn unknown_properties_are_named() {
        let err = LineReader::from_properties(&[("parse.kee".into(), "true".into())]).unwrap_err();
        assert!(err.to_string().contains("parse.kee"), "{err}");
        let err = LineReader::from_properties(&[("parse.key".into(), "yes".into())]).unwrap_err();
        assert!(err.to_string().contains("parse.key"), "{err}");
    }
}
