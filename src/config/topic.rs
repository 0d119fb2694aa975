//! Per-topic configuration overrides, by Kafka's dotted names (`retention.ms`), and how they
//! combine with the broker's settings into a partition's `LogConfig`.

use super::dynamic::DynamicConfigs;
use super::kafka_defaults::{self, ConfigType};
use super::Config;
use crate::log::{CompactionConfig, LogConfig};
use std::collections::BTreeMap;

/// A topic's explicit overrides, by Kafka name.
pub type TopicOverrides = BTreeMap<String, String>;

/// Checks one override: the name must be a Kafka topic config and the value must parse as its
/// type and lie in its range. The message is what INVALID_CONFIG carries back.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = kafka_defaults::topic_config(name)
        .ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let bad = || format!("Invalid value {value} for configuration {name}");
    match def.config_type {
        ConfigType::Long => {
            value.parse::<i64>().map_err(|_| bad())?;
        }
        ConfigType::Int => {
            value.parse::<i32>().map_err(|_| bad())?;
        }
        ConfigType::Short => {
            value.parse::<i16>().map_err(|_| bad())?;
        }
        ConfigType::Double => {
            value.parse::<f64>().map_err(|_| bad())?;
        }
        ConfigType::Boolean => {
            value.parse::<bool>().map_err(|_| bad())?;
        }
        _ => {}
    }
    let number = value.parse::<i64>().ok();
    let at_least = |min: i64| {
        if number.is_some_and(|n| n >= min) {
            Ok(())
        } else {
            Err(bad())
        }
    };
    match name {
        "cleanup.policy" => {
            let policies: Vec<&str> = value.split(',').map(str::trim).collect();
            if policies.iter().any(|p| !matches!(*p, "delete" | "compact")) {
                return Err(bad());
            }
            Ok(())
        }
        "message.timestamp.type" if !matches!(value, "CreateTime" | "LogAppendTime") => Err(bad()),
        "compression.type"
            if !matches!(
                value,
                "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer"
            ) =>
        {
            Err(bad())
        }
        "segment.bytes" => at_least(14),
        "segment.index.bytes" => at_least(12),
        "max.message.bytes" | "index.interval.bytes" | "segment.ms" | "min.insync.replicas" => {
            at_least(if name == "min.insync.replicas" || name == "segment.ms" {
                1
            } else {
                0
            })
        }
        "retention.ms" | "retention.bytes" => at_least(-1),
        "delete.retention.ms" | "min.compaction.lag.ms" => at_least(0),
        "max.compaction.lag.ms" => at_least(1),
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err(bad()),
        },
        _ => Ok(()),
    }
}

/// The value of topic config `name` when the topic does not override it: a dynamic broker
/// config, else the broker's static setting where spool has one, else Kafka's default.
pub fn broker_value(config: &Config, dynamic: &DynamicConfigs, name: &str) -> Option<String> {
    if let Some((value, _)) = dynamic.for_topic_config(name) {
        return Some(value.to_string());
    }
    static_broker_value(config, name)
}

/// `broker_value` without the dynamic layer.
pub fn static_broker_value(config: &Config, name: &str) -> Option<String> {
    Some(match name {
        "retention.ms" => config.retention_ms.to_string(),
        "retention.bytes" => config.retention_bytes.to_string(),
        "segment.bytes" => config.segment_bytes.to_string(),
        "segment.ms" => config.segment_ms.to_string(),
        "segment.index.bytes" => config.segment_index_bytes.to_string(),
        "index.interval.bytes" => config.index_interval_bytes.to_string(),
        "max.message.bytes" => config.message_max_bytes.to_string(),
        "message.timestamp.type" => config.message_timestamp_type.clone(),
        "flush.messages" => config.flush_messages.to_string(),
        "flush.ms" => config.flush_ms.to_string(),
        "min.insync.replicas" => config.min_insync_replicas.to_string(),
        _ => {
            return kafka_defaults::topic_config(name)?
                .default
                .map(str::to_string)
        }
    })
}

/// The effective value of `name` for a topic with `overrides`.
pub fn effective(
    config: &Config,
    dynamic: &DynamicConfigs,
    overrides: &TopicOverrides,
    name: &str,
) -> Option<String> {
    overrides
        .get(name)
        .cloned()
        .or_else(|| broker_value(config, dynamic, name))
}

/// The log settings of a topic with `overrides`.
pub fn log_config(
    config: &Config,
    dynamic: &DynamicConfigs,
    overrides: &TopicOverrides,
) -> LogConfig {
    let policy = effective(config, dynamic, overrides, "cleanup.policy").unwrap_or_default();
    let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
    let num = |name: &str| -> i64 {
        effective(config, dynamic, overrides, name)
            .and_then(|v| v.parse().ok())
            .expect("validated numeric topic config")
    };
    LogConfig {
        segment_bytes: num("segment.bytes") as u64,
        segment_ms: num("segment.ms"),
        segment_index_bytes: num("segment.index.bytes") as usize,
        index_interval_bytes: num("index.interval.bytes") as u64,
        retention_ms: num("retention.ms"),
        retention_bytes: num("retention.bytes"),
        max_message_bytes: num("max.message.bytes").max(0) as usize,
        log_append_time: effective(config, dynamic, overrides, "message.timestamp.type").as_deref()
            == Some("LogAppendTime"),
        retention_enabled: policies.contains(&"delete"),
        compaction: policies.contains(&"compact").then(|| CompactionConfig {
            delete_retention_ms: num("delete.retention.ms"),
            min_compaction_lag_ms: num("min.compaction.lag.ms"),
            max_compaction_lag_ms: num("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: effective(
                config,
                dynamic,
                overrides,
                "min.cleanable.dirty.ratio",
            )
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.5),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_settings() {
        let config = Config::load(None, Vec::new(), &[]).unwrap();
        let mut o = TopicOverrides::new();
        o.insert("retention.ms".into(), "1000".into());
        o.insert("message.timestamp.type".into(), "LogAppendTime".into());
        let mut dynamic = DynamicConfigs::default();
        dynamic
            .cluster
            .insert("log.segment.bytes".into(), "2048".into());
        let lc = log_config(&config, &dynamic, &o);
        assert_eq!(lc.retention_ms, 1000);
        assert!(lc.log_append_time);
        assert_eq!(
            lc.segment_bytes, 2048,
            "a dynamic broker config beats the static one"
        );
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        assert!(validate("retention.mss", "1")
            .unwrap_err()
            .contains("Unknown"));
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("segment.bytes", "1").is_err());
        assert!(validate("cleanup.policy", "delete").is_ok());
        assert!(validate("message.timestamp.type", "Whenever").is_err());
        assert!(validate("unclean.leader.election.enable", "maybe").is_err());
    }
}
