//! Dynamic broker configs: Kafka broker settings changed at run time through AlterConfigs or
//! IncrementalAlterConfigs, for this node (resource name = node id) or as the cluster default
//! (empty resource name). They sit between a topic's own overrides and the static settings of
//! `config/spool.toml`, and are kept in `<data_dir>/dynamic-configs.toml` so they survive
//! restarts. Only the log defaults that topics inherit can change this way.

use super::kafka_defaults;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FILE: &str = "dynamic-configs.toml";

/// Broker configs that can be changed without a restart (Kafka's per-broker dynamic log
/// configs that spool applies), by Kafka name.
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "log.cleaner.delete.retention.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleanup.policy",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
    "min.insync.replicas",
];

/// Which level a dynamic value was set at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// This node (resource name = node id): DYNAMIC_BROKER_CONFIG.
    Node,
    /// The cluster default (empty resource name): DYNAMIC_DEFAULT_BROKER_CONFIG.
    Cluster,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    #[serde(default)]
    pub node: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
}

impl DynamicConfigs {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Reads the dynamic configs of `data_dir` (none when the file is absent).
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(Self::path(data_dir)) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes them to `data_dir`, atomically.
    pub fn store(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self).expect("dynamic configs serialise");
        crate::log::write_atomically(&Self::path(data_dir), text.as_bytes())
    }

    pub fn level(&self, level: Level) -> &BTreeMap<String, String> {
        match level {
            Level::Node => &self.node,
            Level::Cluster => &self.cluster,
        }
    }

    pub fn level_mut(&mut self, level: Level) -> &mut BTreeMap<String, String> {
        match level {
            Level::Node => &mut self.node,
            Level::Cluster => &mut self.cluster,
        }
    }

    /// The dynamic value of broker config `name`: this node's, else the cluster default.
    pub fn get(&self, name: &str) -> Option<(&str, Level)> {
        self.node
            .get(name)
            .map(|v| (v.as_str(), Level::Node))
            .or_else(|| self.cluster.get(name).map(|v| (v.as_str(), Level::Cluster)))
    }

    /// The dynamic value behind topic config `topic_name` (through its broker synonym).
    pub fn for_topic_config(&self, topic_name: &str) -> Option<(&str, Level)> {
        let synonym = kafka_defaults::topic_config(topic_name)?.broker_synonym?;
        self.get(synonym)
    }
}

/// Why a dynamic broker config change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicError {
    /// Not a config that can change at run time (Kafka: INVALID_REQUEST).
    #[error("{0}")]
    NotDynamic(String),
    /// A value that is not valid for it (Kafka: INVALID_CONFIG).
    #[error("{0}")]
    Invalid(String),
}

/// Checks a dynamic broker config: it must be one that can change at run time, and its value
/// must be valid for the topic config it is the default of.
pub fn validate(name: &str, value: &str) -> Result<(), DynamicError> {
    let topic_name = DYNAMIC_BROKER_CONFIGS
        .contains(&name)
        .then(|| {
            kafka_defaults::TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_synonym == Some(name))
                .map(|d| d.name)
        })
        .flatten();
    let Some(topic_name) = topic_name else {
        return Err(DynamicError::NotDynamic(
            if kafka_defaults::broker_config(name).is_some() {
                format!("Cannot update these configs dynamically: Set({name})")
            } else {
                format!("Unknown broker config name: {name}")
            },
        ));
    };
    super::topic::validate(topic_name, value).map_err(|_| {
        DynamicError::Invalid(format!("Invalid value {value} for configuration {name}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_values_win_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DynamicConfigs::default();
        d.cluster.insert("log.retention.ms".into(), "1000".into());
        assert_eq!(
            d.for_topic_config("retention.ms"),
            Some(("1000", Level::Cluster))
        );
        d.node.insert("log.retention.ms".into(), "2000".into());
        assert_eq!(
            d.for_topic_config("retention.ms"),
            Some(("2000", Level::Node))
        );
        d.store(dir.path()).unwrap();
        assert_eq!(DynamicConfigs::load(dir.path()).unwrap(), d);
    }

    #[test]
    fn only_dynamic_configs_with_valid_values_pass() {
        assert!(validate("log.retention.ms", "60000").is_ok());
        assert!(matches!(
            validate("log.retention.ms", "soon"),
            Err(DynamicError::Invalid(_))
        ));
        assert!(validate("log.segment.bytes", "1").is_err());
        assert!(validate("node.id", "2")
            .unwrap_err()
            .to_string()
            .contains("dynamically"));
        assert!(matches!(
            validate("no.such.config", "2"),
            Err(DynamicError::NotDynamic(_))
        ));
    }
}
