//! Config names as users write them: spool's own keys (`retention_ms`), Kafka's dotted broker
//! properties (`log.retention.hours`, `node.id`), and the environment variables the Kafka
//! container image reads (`KAFKA_LOG_DIRS`). Each name resolves to a spool key (with the unit
//! conversion Kafka's synonyms need), to a Kafka setting spool does not implement (listed once
//! at start-up and otherwise ignored), or to nothing, with the closest real name suggested.

use super::kafka_defaults;

/// What a config name means to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Sets spool's `key`; an integer value is multiplied by `scale` (hours to milliseconds,
    /// say). Among synonyms given in one source, the higher `rank` wins, as in Kafka
    /// (`log.retention.ms` over `.minutes` over `.hours`).
    Spool { key: String, scale: i64, rank: u8 },
    /// A Kafka setting spool does not implement.
    IgnoredKafka,
    /// Neither spool's nor Kafka's.
    Unknown { suggestion: Option<String> },
}

/// Kafka names whose spool key is not the name with `_` for `.`, with their unit and rank.
const ALIASES: &[(&str, &str, i64, u8)] = &[
    ("broker.id", "node_id", 1, 0),
    ("log.dir", "data_dir", 1, 0),
    ("log.dirs", "data_dir", 1, 1),
    ("log.retention.hours", "retention_ms", 3_600_000, 0),
    ("log.retention.minutes", "retention_ms", 60_000, 1),
    ("log.retention.ms", "retention_ms", 1, 2),
    ("log.retention.bytes", "retention_bytes", 1, 0),
    (
        "log.retention.check.interval.ms",
        "retention_check_interval_ms",
        1,
        0,
    ),
    ("log.segment.bytes", "segment_bytes", 1, 0),
    ("log.roll.hours", "segment_ms", 3_600_000, 0),
    ("log.roll.ms", "segment_ms", 1, 1),
    ("log.index.size.max.bytes", "segment_index_bytes", 1, 0),
    ("log.index.interval.bytes", "index_interval_bytes", 1, 0),
    ("log.message.timestamp.type", "message_timestamp_type", 1, 0),
    ("log.flush.interval.messages", "flush_messages", 1, 0),
    ("log.flush.interval.ms", "flush_ms", 1, 0),
    (
        "log.flush.offset.checkpoint.interval.ms",
        "checkpoint_interval_ms",
        1,
        0,
    ),
];

/// Prefixes of Kafka's broker properties: a name under one of them that spool does not know is
/// taken for one of the many Kafka settings a `server.properties` carries.
const KAFKA_PREFIXES: &[&str] = &[
    "advertised.",
    "alter.",
    "authorizer.",
    "auto.",
    "background.",
    "broker.",
    "client.",
    "compression.",
    "config.",
    "confluent.",
    "connections.",
    "controlled.",
    "controller.",
    "create.",
    "default.",
    "delegation.",
    "delete.",
    "early.",
    "eligible.",
    "fetch.",
    "group.",
    "initial.",
    "inter.",
    "kafka.",
    "leader.",
    "listener",
    "log.",
    "max.",
    "message.",
    "metadata.",
    "metric",
    "min.",
    "node.",
    "num.",
    "offset",
    "password.",
    "principal.",
    "process.",
    "producer.",
    "queued.",
    "quota.",
    "remote.",
    "replica.",
    "request.",
    "reserved.",
    "sasl.",
    "security.",
    "share.",
    "socket.",
    "ssl.",
    "super.",
    "telemetry.",
    "transaction",
    "unclean.",
    "unstable.",
    "zookeeper.",
];

/// Resolves `name` against spool's keys (`spool_keys`, all of `config/spool.toml`).
pub fn resolve(name: &str, spool_keys: &[String]) -> Resolved {
    if let Some(key) = spool_keys.iter().find(|k| k.as_str() == name) {
        return spool(key, 1, 0);
    }
    if let Some((_, key, scale, rank)) = ALIASES.iter().find(|(kafka, ..)| *kafka == name) {
        return Resolved::Spool {
            key: key.to_string(),
            scale: *scale,
            rank: *rank,
        };
    }
    let underscored = name.replace('.', "_");
    if name.contains('.') {
        if let Some(key) = spool_keys.iter().find(|k| **k == underscored) {
            return spool(key, 1, 0);
        }
    }
    let is_kafka = kafka_defaults::broker_config(name).is_some()
        || kafka_defaults::TOPIC_CONFIGS
            .iter()
            .any(|d| d.broker_synonym == Some(name))
        || kafka_defaults::REMOVED_IN_KAFKA_4.contains(&name);
    if is_kafka {
        return Resolved::IgnoredKafka;
    }
    let suggestion = closest(name, spool_keys);
    // A near miss of a real name is a typo, not an unknown Kafka setting.
    if suggestion.is_none() && KAFKA_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Resolved::IgnoredKafka;
    }
    Resolved::Unknown { suggestion }
}

fn spool(key: &str, scale: i64, rank: u8) -> Resolved {
    Resolved::Spool {
        key: key.to_string(),
        scale,
        rank,
    }
}

/// The real name nearest `name` (spool keys, their Kafka spellings, Kafka's broker configs),
/// when it is close enough to be a typo.
fn closest(name: &str, spool_keys: &[String]) -> Option<String> {
    let dotted: Vec<String> = spool_keys.iter().map(|k| k.replace('_', ".")).collect();
    let candidates = spool_keys
        .iter()
        .map(String::as_str)
        .chain(dotted.iter().map(String::as_str))
        .chain(ALIASES.iter().map(|(k, ..)| *k))
        .chain(kafka_defaults::BROKER_CONFIGS.iter().map(|d| d.name));
    let limit = (name.len() / 5).clamp(1, 3);
    candidates
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The Kafka property an environment variable of the Kafka container image sets: `KAFKA_` off,
/// lower case, `_` for `.`, `__` for `_` and `___` for `-` (the image's own rule). `None` for
/// variables that are not properties (the image's JVM and logging options) or not `KAFKA_`.
pub fn kafka_env_property(var: &str) -> Option<String> {
    const NOT_PROPERTIES: &[&str] = &[
        "KAFKA_HEAP_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_LOG4J_LOGGERS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_DEBUG",
        "KAFKA_VERSION",
        "KAFKA_HOME",
    ];
    let rest = var.strip_prefix("KAFKA_")?;
    if rest.is_empty() || NOT_PROPERTIES.contains(&var) {
        return None;
    }
    Some(
        rest.to_ascii_lowercase()
            .replace("___", "\u{1}")
            .replace("__", "\u{2}")
            .replace('_', ".")
            .replace('\u{1}', "-")
            .replace('\u{2}', "_"),
    )
}

/// Parses Java properties text (`key=value`, `key: value` or `key value`; `#` and `!`
/// comments; a trailing `\` continues a line) into pairs in file order.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with(['#', '!'])) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) if !b.ends_with('\\') => (b, true),
            _ => (trimmed, false),
        };
        logical.push_str(body);
        if continues {
            continue;
        }
        let entry = std::mem::take(&mut logical);
        let split = entry
            .find(['=', ':', ' ', '\t'])
            .ok_or_else(|| format!("line {}: `{entry}` is not key=value", n + 1))?;
        let key = entry[..split].trim().to_string();
        let rest = entry[split..].trim_start();
        let value = rest
            .strip_prefix(['=', ':'])
            .unwrap_or(rest)
            .trim()
            .to_string();
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        [
            "retention_ms",
            "node_id",
            "num_partitions",
            "data_dir",
            "segment_ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn kafka_names_resolve_with_their_units() {
        let k = keys();
        assert_eq!(
            resolve("log.retention.hours", &k),
            Resolved::Spool {
                key: "retention_ms".into(),
                scale: 3_600_000,
                rank: 0
            }
        );
        assert!(
            matches!(resolve("num.partitions", &k), Resolved::Spool { key, .. } if key == "num_partitions")
        );
        assert!(
            matches!(resolve("retention_ms", &k), Resolved::Spool { key, .. } if key == "retention_ms")
        );
        assert_eq!(resolve("process.roles", &k), Resolved::IgnoredKafka);
        assert_eq!(resolve("num.network.threads", &k), Resolved::IgnoredKafka);
        assert_eq!(resolve("ssl.keystore.location", &k), Resolved::IgnoredKafka);
        assert_eq!(
            resolve("retention_mss", &k),
            Resolved::Unknown {
                suggestion: Some("retention_ms".into())
            }
        );
        assert_eq!(
            resolve("num.partitons", &k),
            Resolved::Unknown {
                suggestion: Some("num.partitions".into())
            }
        );
        assert_eq!(
            resolve("colour", &k),
            Resolved::Unknown { suggestion: None }
        );
    }

    #[test]
    fn the_kafka_image_environment_maps_to_properties() {
        assert_eq!(
            kafka_env_property("KAFKA_NODE_ID").as_deref(),
            Some("node.id")
        );
        assert_eq!(
            kafka_env_property("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").as_deref(),
            Some("listener.security.protocol.map")
        );
        assert_eq!(
            kafka_env_property("KAFKA_A__B___C").as_deref(),
            Some("a_b-c")
        );
        assert_eq!(kafka_env_property("KAFKA_HEAP_OPTS"), None);
        assert_eq!(kafka_env_property("SPOOL_NODE_ID"), None);
    }

    #[test]
    fn properties_files_parse_as_java_reads_them() {
        let text = "# comment\n! also\nnode.id=1\nlog.dirs : /a\nprocess.roles broker,controller\n\
                    controller.quorum.voters=1@h:9093,\\\n   2@g:9093\n\n  num.partitions = 3 \n";
        let got = parse_properties(text).unwrap();
        let want: Vec<(String, String)> = [
            ("node.id", "1"),
            ("log.dirs", "/a"),
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@h:9093,2@g:9093"),
            ("num.partitions", "3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
