//! Broker configuration: compiled-in defaults (`config/spool.toml`), then a file, then
//! `SPOOL_*` environment variables, then `--set` flags. Unknown keys in a file or a flag are
//! errors that name them; unknown `SPOOL_*` variables are warnings (the environment is shared).

pub mod dynamic;
pub mod kafka_defaults;
pub mod listeners;
pub mod names;
pub mod topic;

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The documented defaults, compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../../config/spool.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin} is not valid TOML: {source}")]
    Parse {
        origin: String,
        source: Box<toml::de::Error>,
    },
    #[error("unknown config key `{key}` in {origin}: it is neither spool's nor Kafka's{hint}")]
    UnknownKey {
        key: String,
        origin: String,
        /// " (did you mean `x`?)" or nothing.
        hint: String,
    },
    #[error("config key `{key}` from {origin}: {reason}")]
    BadValue {
        key: String,
        origin: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    Durable,
    Interval,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node_id: i32,
    pub cluster_id: String,
    pub listeners: String,
    pub advertised_listeners: String,
    pub listener_security_protocol_map: String,
    pub controller_listener_names: String,
    pub inter_broker_listener_name: String,
    pub ssl_keystore_type: String,
    pub ssl_truststore_type: String,
    pub ssl_keystore_location: String,
    pub ssl_keystore_key: String,
    pub ssl_keystore_certificate_chain: String,
    pub ssl_key_password: String,
    pub ssl_truststore_location: String,
    pub ssl_truststore_certificates: String,
    pub ssl_client_auth: String,
    pub ssl_principal_mapping_rules: String,
    pub sasl_enabled_mechanisms: String,
    pub connections_max_reauth_ms: i64,
    pub sasl_server_max_receive_size: usize,
    pub connection_failed_authentication_delay_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: String,
    pub connections_max_idle_ms: u64,
    pub request_read_timeout_ms: u64,
    pub metrics_listener: String,
    pub queued_max_request_bytes: i64,
    pub fetch_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub max_in_flight_requests_per_connection: usize,
    pub shutdown_timeout_ms: u64,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub max_partitions_per_request: i64,
    pub max_broker_partitions: i64,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub delete_topic_enable: bool,
    pub data_dir: PathBuf,
    pub message_max_bytes: i32,
    pub segment_bytes: i32,
    pub segment_ms: i64,
    pub segment_index_bytes: i32,
    pub index_interval_bytes: i32,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub retention_check_interval_ms: u64,
    pub message_timestamp_type: String,
    pub flush_mode: FlushMode,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub checkpoint_interval_ms: u64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub producer_id_expiration_ms: i64,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub offsets_topic_num_partitions: i32,
    pub offsets_retention_minutes: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: i32,
    pub transaction_max_timeout_ms: i32,
    pub transaction_state_log_num_partitions: i32,
    pub transactional_id_expiration_ms: i64,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    pub controller_listener: String,
    pub controller_quorum_voters: String,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub offsets_topic_replication_factor: i16,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub controlled_shutdown_enable: bool,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `SPOOL_*` environment variables that name no config key (reported as warnings: the
    /// environment is shared with other tools, unlike a config file).
    #[serde(skip)]
    pub ignored_env: Vec<String>,
    /// Kafka settings given that spool does not implement, each once (a `server.properties`
    /// carries many); logged at start-up.
    #[serde(skip)]
    pub ignored_kafka: Vec<String>,
    /// spool keys a source set (file, environment, `--set`), whatever the value: what
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG.
    #[serde(skip)]
    pub set_keys: BTreeSet<String>,
    /// Kafka's per-listener settings (`listener.name.<name>.ssl.keystore.location`, the name
    /// lowercase), by their full name.
    #[serde(skip)]
    pub listener_settings: BTreeMap<String, String>,
}

/// A value as a source gives it: typed (TOML) or a string to read as the key's type.
enum Given {
    Toml(toml::Value),
    Raw(String),
}

/// Applies one source's settings, by any of their names (see [`names`]). Unknown names are
/// errors when `strict` (files, flags) and are collected in `unknown` otherwise (the
/// environment is shared with other programs).
fn apply_source(
    table: &mut toml::Table,
    entries: Vec<(String, Given)>,
    origin: &str,
    strict: bool,
    seen: &mut Seen,
    unknown: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    let mut resolved = Vec::new();
    for (name, given) in entries {
        if per_listener(&name).is_some() {
            let value = match given {
                Given::Toml(toml::Value::String(v)) | Given::Raw(v) => v,
                Given::Toml(other) => other.to_string(),
            };
            seen.listener_settings
                .insert(name.to_ascii_lowercase(), value);
            continue;
        }
        match names::resolve(&name, &keys) {
            names::Resolved::Spool { key, scale, rank } => {
                resolved.push((rank, name, key, scale, given))
            }
            names::Resolved::IgnoredKafka => {
                if !seen.ignored_kafka.contains(&name) {
                    seen.ignored_kafka.push(name);
                }
            }
            names::Resolved::Unknown { suggestion } if strict => {
                return Err(ConfigError::UnknownKey {
                    key: name,
                    origin: origin.into(),
                    hint: suggestion
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default(),
                });
            }
            names::Resolved::Unknown { .. } => unknown.push(name),
        }
    }
    // Kafka's precedence among synonyms: `.ms` over `.minutes` over `.hours`.
    resolved.sort_by_key(|(rank, ..)| *rank);
    for (_, name, key, scale, given) in resolved {
        let bad = |reason: String| ConfigError::BadValue {
            key: name.clone(),
            origin: origin.into(),
            reason,
        };
        let mut value = match given {
            Given::Toml(v) => v,
            Given::Raw(raw) => typed_value(&table[&key], &raw, &name, origin)?,
        };
        if scale != 1 {
            if let toml::Value::Integer(n) = value {
                value = toml::Value::Integer(
                    n.checked_mul(scale)
                        .ok_or_else(|| bad(format!("{n} is out of range")))?,
                );
            }
        }
        if key == "data_dir" {
            if let toml::Value::String(dirs) = &value {
                if dirs.contains(',') {
                    return Err(bad(format!(
                        "`{dirs}` names several directories; spool keeps its data in one"
                    )));
                }
            }
        }
        set(table, &key, value, origin)?;
        seen.set_keys.insert(key);
    }
    Ok(())
}

/// What the sources of a configuration said beyond the values themselves.
#[derive(Default)]
struct Seen {
    ignored_kafka: Vec<String>,
    set_keys: BTreeSet<String>,
    listener_settings: BTreeMap<String, String>,
}

/// The settings Kafka lets a listener override as `listener.name.<name>.<setting>` that spool
/// reads.
pub const PER_LISTENER: &[&str] = &[
    "ssl.keystore.type",
    "ssl.truststore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.principal.mapping.rules",
    "sasl.enabled.mechanisms",
    "connections.max.reauth.ms",
    "plain.sasl.jaas.config",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
];

/// `listener.name.<name>.<setting>` split into the listener's name and a setting spool reads.
fn per_listener(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("listener.name.")?;
    let (listener, setting) = rest.split_once('.')?;
    let setting_lower = setting.to_ascii_lowercase();
    (!listener.is_empty() && PER_LISTENER.contains(&setting_lower.as_str()))
        .then_some((listener, setting))
}

/// A TOML table's settings with nested tables flattened to dotted names (`[log] dirs = ..`
/// and `log.dirs = ..` are both Kafka's `log.dirs`).
fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, Given)>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            value => out.push((name, Given::Toml(value))),
        }
    }
}

impl Config {
    /// Builds the configuration from the defaults, an optional file, the environment (as given)
    /// and `key=value` overrides.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table = parse(DEFAULTS_TOML, "defaults")?;
        let mut seen = Seen::default();
        let mut ignored_env = Vec::new();
        if let Some(path) = file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let mut entries = Vec::new();
            if path.extension().is_some_and(|e| e == "properties") {
                // A Kafka server.properties.
                let pairs =
                    names::parse_properties(&text).map_err(|reason| ConfigError::BadValue {
                        key: "(file)".into(),
                        origin: origin.clone(),
                        reason,
                    })?;
                entries.extend(pairs.into_iter().map(|(k, v)| (k, Given::Raw(v))));
            } else {
                flatten("", parse(&text, &origin)?, &mut entries);
            }
            apply_source(
                &mut table,
                entries,
                &origin,
                true,
                &mut seen,
                &mut ignored_env,
            )?;
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        // The Kafka image's variables first, then spool's own, which win.
        let keys: Vec<String> = table.keys().cloned().collect();
        let mut kafka_env = Vec::new();
        for (var, raw) in &env {
            let property = if var == "CLUSTER_ID" {
                "cluster_id".to_string()
            } else if let Some(property) = names::kafka_env_property(var) {
                property
            } else {
                continue;
            };
            if matches!(
                names::resolve(&property, &keys),
                names::Resolved::Unknown { .. }
            ) {
                ignored_env.push(var.clone());
                continue;
            }
            kafka_env.push((property, Given::Raw(raw.clone())));
        }
        apply_source(
            &mut table,
            kafka_env,
            "the environment",
            true,
            &mut seen,
            &mut Vec::new(),
        )?;
        let keys: Vec<String> = table.keys().cloned().collect();
        for (name, raw) in env.iter().filter(|(k, _)| k.starts_with("SPOOL_")) {
            let key = name["SPOOL_".len()..].to_ascii_lowercase();
            if !keys.contains(&key) {
                ignored_env.push(name.clone());
                continue;
            }
            let value = typed_value(&table[&key], raw, &key, name)?;
            set(&mut table, &key, value, name)?;
            seen.set_keys.insert(key);
        }
        let mut flags = Vec::new();
        for o in overrides {
            let (key, raw) = o.split_once('=').ok_or_else(|| ConfigError::BadValue {
                key: o.clone(),
                origin: "--set".into(),
                reason: "expected key=value".into(),
            })?;
            flags.push((key.trim().to_string(), Given::Raw(raw.trim().to_string())));
        }
        apply_source(&mut table, flags, "--set", true, &mut seen, &mut Vec::new())?;
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e| ConfigError::Parse {
                    origin: "merged configuration".into(),
                    source: Box::new(e),
                })?;
        config.ignored_env = ignored_env;
        config.ignored_kafka = seen.ignored_kafka;
        config.set_keys = seen.set_keys;
        config.listener_settings = seen.listener_settings;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.socket_request_max_bytes < 1024 || self.socket_request_max_bytes > i32::MAX as usize
        {
            return bad(format!(
                "socket_request_max_bytes {} must be in [1024, 2^31)",
                self.socket_request_max_bytes
            ));
        }
        if self.fetch_max_bytes == 0 || self.fetch_max_bytes > (i32::MAX as usize) / 2 {
            return bad(format!(
                "fetch_max_bytes {} must be in [1, 2^30)",
                self.fetch_max_bytes
            ));
        }
        if self.queued_max_request_bytes != -1
            && (self.queued_max_request_bytes < self.socket_request_max_bytes as i64)
        {
            return bad(format!(
                "queued_max_request_bytes {} must be -1 (no bound) or at least socket_request_max_bytes {}, or the largest request could never be read",
                self.queued_max_request_bytes, self.socket_request_max_bytes
            ));
        }
        if self.connections_max_idle_ms == 0 || self.request_read_timeout_ms == 0 {
            return bad(
                "connections_max_idle_ms and request_read_timeout_ms must be positive".into(),
            );
        }
        self.connection_overrides()?;
        if self.segment_bytes < 14 || self.message_max_bytes < 0 || self.segment_index_bytes < 12 {
            return bad(
                "segment_bytes, message_max_bytes and segment_index_bytes must be positive sizes"
                    .into(),
            );
        }
        if !matches!(
            self.message_timestamp_type.as_str(),
            "CreateTime" | "LogAppendTime"
        ) {
            return bad(format!(
                "message_timestamp_type `{}` must be CreateTime or LogAppendTime",
                self.message_timestamp_type
            ));
        }
        if self.max_partitions_per_request < 1 || self.max_broker_partitions < -1 {
            return bad("max_partitions_per_request must be at least 1 and max_broker_partitions at least -1".into());
        }
        if self.num_partitions < 1
            || self.max_connections == 0
            || self.max_in_flight_requests_per_connection == 0
        {
            return bad("num_partitions, max_connections and max_in_flight_requests_per_connection must be at least 1".into());
        }
        if self.offsets_topic_num_partitions < 1
            || self.group_max_size < 1
            || self.offset_metadata_max_bytes < 0
        {
            return bad(
                "offsets_topic_num_partitions and group_max_size must be at least 1".into(),
            );
        }
        if self.transaction_state_log_num_partitions < 1 || self.transaction_max_timeout_ms < 1 {
            return bad(
                "transaction_state_log_num_partitions and transaction_max_timeout_ms must be at least 1"
                    .into(),
            );
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return bad(
                "group_min_session_timeout_ms is above group_max_session_timeout_ms".into(),
            );
        }
        if self.default_replication_factor < 1
            || self.offsets_topic_replication_factor < 1
            || self.transaction_state_log_replication_factor < 1
        {
            return bad("replication factors must be at least 1".into());
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return bad("broker_session_timeout_ms must exceed broker_heartbeat_interval_ms, which must be positive".into());
        }
        if self.node_id < 0 {
            return bad(format!("node_id {} must be >= 0", self.node_id));
        }
        self.listen_addrs()?;
        let voters = self.voters()?;
        if !voters.is_empty() && self.cluster_id.is_empty() {
            return bad("a cluster needs the same cluster_id set on every node".into());
        }
        if !voters.is_empty() && !voters.contains_key(&(self.node_id as u64)) {
            return bad(format!(
                "controller_quorum_voters does not name this node ({})",
                self.node_id
            ));
        }
        Ok(())
    }

    /// The group coordinator's settings.
    pub fn group_config(&self) -> crate::group::GroupConfig {
        crate::group::GroupConfig {
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            max_size: self.group_max_size as usize,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            offset_metadata_max_bytes: self.offset_metadata_max_bytes as usize,
        }
    }

    /// This node's value of the Kafka broker config `name`, where spool has a setting for it.
    pub fn kafka_value(&self, name: &str) -> Option<String> {
        Some(match name {
            "node.id" | "broker.id" => self.node_id.to_string(),
            "listeners" => named_listeners(&self.listeners),
            "advertised.listeners" if !self.advertised_listeners.is_empty() => {
                named_listeners(&self.advertised_listeners)
            }
            "listener.security.protocol.map" => self.listener_security_protocol_map.clone(),
            "controller.listener.names" if !self.controller_listener_names.is_empty() => {
                self.controller_listener_names.clone()
            }
            "inter.broker.listener.name" if !self.inter_broker_listener_name.is_empty() => {
                self.inter_broker_listener_name.clone()
            }
            "log.dirs" | "log.dir" => self.data_dir.display().to_string(),
            "max.connections" => self.max_connections.to_string(),
            "max.connections.per.ip" => self.max_connections_per_ip.to_string(),
            "max.connections.per.ip.overrides" => self.max_connections_per_ip_overrides.clone(),
            "connections.max.idle.ms" => self.connections_max_idle_ms.to_string(),
            "queued.max.request.bytes" => self.queued_max_request_bytes.to_string(),
            "socket.request.max.bytes" => self.socket_request_max_bytes.to_string(),
            "fetch.max.bytes" => self.fetch_max_bytes.to_string(),
            "auto.create.topics.enable" => self.auto_create_topics_enable.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "delete.topic.enable" => self.delete_topic_enable.to_string(),
            "message.max.bytes" => self.message_max_bytes.to_string(),
            "log.segment.bytes" => self.segment_bytes.to_string(),
            "log.roll.ms" => self.segment_ms.to_string(),
            "log.index.size.max.bytes" => self.segment_index_bytes.to_string(),
            "log.index.interval.bytes" => self.index_interval_bytes.to_string(),
            "log.retention.ms" => self.retention_ms.to_string(),
            "log.retention.bytes" => self.retention_bytes.to_string(),
            "log.retention.check.interval.ms" => self.retention_check_interval_ms.to_string(),
            "log.message.timestamp.type" => self.message_timestamp_type.clone(),
            "log.flush.interval.messages" => self.flush_messages.to_string(),
            "log.flush.interval.ms" => self.flush_ms.to_string(),
            "log.flush.offset.checkpoint.interval.ms" => self.checkpoint_interval_ms.to_string(),
            "producer.id.expiration.ms" => self.producer_id_expiration_ms.to_string(),
            "log.cleaner.enable" => self.log_cleaner_enable.to_string(),
            "log.cleaner.backoff.ms" => self.log_cleaner_backoff_ms.to_string(),
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms.to_string(),
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms.to_string(),
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms.to_string(),
            "group.max.size" => self.group_max_size.to_string(),
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions.to_string(),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor.to_string(),
            "controller.quorum.voters" => self.controller_quorum_voters.clone(),
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms.to_string(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms.to_string(),
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms.to_string(),
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms.to_string(),
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes.to_string(),
            "replica.fetch.response.max.bytes" => self.replica_fetch_response_max_bytes.to_string(),
            "replica.fetch.backoff.ms" => self.replica_fetch_backoff_ms.to_string(),
            "controlled.shutdown.enable" => self.controlled_shutdown_enable.to_string(),
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable.to_string(),
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds.to_string()
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage.to_string()
            }
            "offsets.retention.minutes" => self.offsets_retention_minutes.to_string(),
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval_ms.to_string()
            }
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes.to_string(),
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms.to_string(),
            "transaction.state.log.num.partitions" => {
                self.transaction_state_log_num_partitions.to_string()
            }
            "transaction.state.log.replication.factor" => {
                self.transaction_state_log_replication_factor.to_string()
            }
            "transaction.state.log.min.isr" => self.transaction_state_log_min_isr.to_string(),
            "transactional.id.expiration.ms" => self.transactional_id_expiration_ms.to_string(),
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => self
                .transaction_abort_timed_out_transaction_cleanup_interval_ms
                .to_string(),
            "transaction.remove.expired.transaction.cleanup.interval.ms" => self
                .transaction_remove_expired_transaction_cleanup_interval_ms
                .to_string(),
            _ => return None,
        })
    }

    /// The quorum voters from `controller_quorum_voters` (`id@host:port,...`), by node id. Empty
    /// when this node is a quorum of one.
    pub fn voters(&self) -> Result<BTreeMap<u64, String>, ConfigError> {
        let bad = |reason: String| ConfigError::BadValue {
            key: "controller_quorum_voters".into(),
            origin: "configuration".into(),
            reason,
        };
        let mut voters = BTreeMap::new();
        for entry in self
            .controller_quorum_voters
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, addr) = entry
                .split_once('@')
                .ok_or_else(|| bad(format!("`{entry}` is not id@host:port")))?;
            let id: u64 = id
                .parse()
                .map_err(|e| bad(format!("`{entry}`: node id: {e}")))?;
            if addr.rsplit_once(':').is_none() {
                return Err(bad(format!("`{entry}`: `{addr}` is not host:port")));
            }
            if voters.insert(id, addr.to_string()).is_some() {
                return Err(bad(format!("node {id} is named twice")));
            }
        }
        Ok(voters)
    }

    /// `max_connections_per_ip_overrides` (`host:count,...`, Kafka's format) as a count per IP
    /// address; a host name counts for every address it resolves to now.
    pub fn connection_overrides(
        &self,
    ) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, ConfigError> {
        use std::net::ToSocketAddrs;
        let bad = |reason: String| ConfigError::BadValue {
            key: "max_connections_per_ip_overrides".into(),
            origin: "configuration".into(),
            reason,
        };
        let mut out = std::collections::HashMap::new();
        for entry in self
            .max_connections_per_ip_overrides
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (host, count) = entry
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("`{entry}` is not host:count")))?;
            let count: usize = count
                .trim()
                .parse()
                .map_err(|e| bad(format!("`{entry}`: count: {e}")))?;
            let host = host.trim().trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<std::net::IpAddr> = match host.parse() {
                Ok(ip) => vec![ip],
                Err(_) => (host, 0)
                    .to_socket_addrs()
                    .map_err(|e| bad(format!("`{entry}`: cannot resolve `{host}`: {e}")))?
                    .map(|a| a.ip())
                    .collect(),
            };
            for ip in addrs {
                out.insert(ip, count);
            }
        }
        Ok(out)
    }

    /// Whether a source set the setting `name` (spool's key or Kafka's name) rather than it
    /// having its default.
    pub fn is_set(&self, name: &str) -> bool {
        static KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            parse(DEFAULTS_TOML, "defaults")
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()
        });
        match names::resolve(name, &KEYS) {
            names::Resolved::Spool { key, .. } => self.set_keys.contains(&key),
            _ => false,
        }
    }

    /// The listener settings, validated (see [`listeners`]).
    pub fn listener_plan(&self) -> Result<listeners::ListenerPlan, ConfigError> {
        listeners::plan(
            &self.listeners,
            &self.advertised_listeners,
            &self.listener_security_protocol_map,
            &self.controller_listener_names,
            &self.inter_broker_listener_name,
        )
        .map_err(|(key, reason)| ConfigError::BadValue {
            key: key.into(),
            origin: "configuration".into(),
            reason,
        })
    }

    /// The TLS settings of `listener`: each from `listener.name.<listener>.<setting>` when
    /// given, else the broker-wide key.
    pub fn tls_settings(&self, listener: &str) -> crate::server::tls::TlsSettings {
        let lower = listener.to_ascii_lowercase();
        let get = |setting: &str, base: &str| {
            let name = format!("listener.name.{lower}.{setting}");
            match self.listener_settings.get(&name) {
                Some(v) => crate::server::tls::Setting {
                    name,
                    value: v.clone(),
                },
                None => crate::server::tls::Setting {
                    name: setting.to_string(),
                    value: base.to_string(),
                },
            }
        };
        crate::server::tls::TlsSettings {
            listener: listener.to_string(),
            keystore_type: get("ssl.keystore.type", &self.ssl_keystore_type),
            keystore_location: get("ssl.keystore.location", &self.ssl_keystore_location),
            keystore_certificate_chain: get(
                "ssl.keystore.certificate.chain",
                &self.ssl_keystore_certificate_chain,
            ),
            keystore_key: get("ssl.keystore.key", &self.ssl_keystore_key),
            key_password: get("ssl.key.password", &self.ssl_key_password),
            truststore_type: get("ssl.truststore.type", &self.ssl_truststore_type),
            truststore_location: get("ssl.truststore.location", &self.ssl_truststore_location),
            truststore_certificates: get(
                "ssl.truststore.certificates",
                &self.ssl_truststore_certificates,
            ),
            client_auth: get("ssl.client.auth", &self.ssl_client_auth),
        }
    }

    /// The `ssl.principal.mapping.rules` of `listener`, parsed.
    pub fn principal_rules(
        &self,
        listener: &str,
    ) -> Result<crate::server::principal::PrincipalRules, ConfigError> {
        let name = format!(
            "listener.name.{}.ssl.principal.mapping.rules",
            listener.to_ascii_lowercase()
        );
        let (key, text) = match self.listener_settings.get(&name) {
            Some(v) => (name, v.clone()),
            None => (
                "ssl_principal_mapping_rules".to_string(),
                self.ssl_principal_mapping_rules.clone(),
            ),
        };
        crate::server::principal::PrincipalRules::parse(&text).map_err(|reason| {
            ConfigError::BadValue {
                key,
                origin: "configuration".into(),
                reason,
            }
        })
    }

    /// The SASL settings of `listener`, from `listener.name.<listener>.*` when given, else the
    /// broker-wide keys; an unserved mechanism or a bad JAAS text is an error naming the key.
    pub fn sasl_settings(
        &self,
        listener: &str,
    ) -> Result<crate::server::sasl::SaslSettings, ConfigError> {
        use crate::server::sasl::{jaas, Mechanism, SaslSettings};
        let lower = listener.to_ascii_lowercase();
        let own = |setting: &str| {
            let name = format!("listener.name.{lower}.{setting}");
            self.listener_settings.get(&name).map(|v| (name, v.clone()))
        };
        let bad = |key: &str, reason: String| ConfigError::BadValue {
            key: key.to_string(),
            origin: "configuration".into(),
            reason,
        };
        let (key, raw) = own("sasl.enabled.mechanisms").unwrap_or_else(|| {
            (
                "sasl_enabled_mechanisms".into(),
                self.sasl_enabled_mechanisms.clone(),
            )
        });
        let mut mechanisms = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let m = Mechanism::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
                bad(
                    &key,
                    format!(
                        "listener {listener}: mechanism {name} is not served (PLAIN, \
                         SCRAM-SHA-256 and SCRAM-SHA-512 are)"
                    ),
                )
            })?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(bad(
                &key,
                format!("listener {listener} is a SASL listener and offers no mechanism"),
            ));
        }
        let reauth = match own("connections.max.reauth.ms") {
            Some((name, v)) => v
                .trim()
                .parse::<i64>()
                .map_err(|e| bad(&name, format!("`{v}` is not an integer: {e}")))?,
            None => self.connections_max_reauth_ms,
        };
        let mut plain_users = std::collections::BTreeMap::new();
        for m in &mechanisms {
            let setting = format!("{}.sasl.jaas.config", m.name().to_ascii_lowercase());
            let Some((name, text)) = own(&setting) else {
                continue;
            };
            let modules = jaas::parse(&text).map_err(|e| bad(&name, e))?;
            let expected = match m {
                Mechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
                Mechanism::Scram(_) => "org.apache.kafka.common.security.scram.ScramLoginModule",
            };
            for module in modules {
                if module.class != expected {
                    return Err(bad(
                        &name,
                        format!("login module {} is not {expected}", module.class),
                    ));
                }
                if *m == Mechanism::Plain {
                    for (option, value) in module.options {
                        if let Some(user) = option.strip_prefix("user_") {
                            plain_users.insert(user.to_string(), value);
                        }
                    }
                }
            }
        }
        Ok(SaslSettings {
            mechanisms,
            plain_users,
            max_reauth: std::time::Duration::from_millis(reauth.max(0) as u64),
            max_receive: self.sasl_server_max_receive_size,
            failure_delay: std::time::Duration::from_millis(
                self.connection_failed_authentication_delay_ms,
            ),
        })
    }

    /// Each client listener's name and socket address, in the order `listeners` gives them.
    pub fn listen_addrs(&self) -> Result<Vec<(String, SocketAddr)>, ConfigError> {
        use std::net::ToSocketAddrs;
        let bad = |reason: String| ConfigError::BadValue {
            key: "listeners".into(),
            origin: "configuration".into(),
            reason,
        };
        let mut out = Vec::new();
        for listener in self.listener_plan()?.clients {
            let addr = listener.bind.bind_addr();
            let resolved = addr
                .to_socket_addrs()
                .map_err(|e| bad(format!("`{addr}` does not resolve: {e}")))?
                .next()
                .ok_or_else(|| bad(format!("`{addr}` resolves to no address")))?;
            out.push((listener.bind.name, resolved));
        }
        Ok(out)
    }

    /// Where the controller listens: the listener `controller_listener_names` names in
    /// `listeners` (Kafka's way), else `controller_listener`.
    pub fn controller_addr(&self) -> Result<String, ConfigError> {
        Ok(match self.listener_plan()?.controller {
            Some(c) => c.bind_addr(),
            None => self.controller_listener.clone(),
        })
    }
}

/// A listener list in Kafka's `NAME://host:port` form (spool's plain `host:port` is PLAINTEXT).
fn named_listeners(raw: &str) -> String {
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.contains("://") {
                e.to_string()
            } else {
                format!("PLAINTEXT://{e}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|source| ConfigError::Parse {
            origin: origin.into(),
            source: Box::new(source),
        })
}

fn set(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
    origin: &str,
) -> Result<(), ConfigError> {
    match table.get(key) {
        None => Err(ConfigError::UnknownKey {
            key: key.into(),
            origin: origin.into(),
            hint: String::new(),
        }),
        Some(current) if current.type_str() != value.type_str() => Err(ConfigError::BadValue {
            key: key.into(),
            origin: origin.into(),
            reason: format!(
                "expected a {}, got a {}",
                current.type_str(),
                value.type_str()
            ),
        }),
        Some(_) => {
            table.insert(key.into(), value);
            Ok(())
        }
    }
}

/// Parses a raw string into a value of the same TOML type as `like`.
fn typed_value(
    like: &toml::Value,
    raw: &str,
    key: &str,
    origin: &str,
) -> Result<toml::Value, ConfigError> {
    let bad = |reason: String| ConfigError::BadValue {
        key: key.into(),
        origin: origin.into(),
        reason,
    };
    Ok(match like {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.parse()
                .map_err(|e| bad(format!("`{raw}` is not an integer: {e}")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            raw.parse()
                .map_err(|e| bad(format!("`{raw}` is not true/false: {e}")))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            raw.parse()
                .map_err(|e| bad(format!("`{raw}` is not a number: {e}")))?,
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_and_validate() {
        let c = Config::load(None, Vec::new(), &[]).unwrap();
        assert_eq!(c.listeners, "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("./spool-data"));
        assert_eq!(c.socket_request_max_bytes, 100 * 1024 * 1024);
        assert_eq!(c.flush_mode, FlushMode::Durable);
    }

    #[test]
    fn every_shipped_key_is_commented() {
        let mut previous_is_comment = false;
        for line in DEFAULTS_TOML.lines() {
            if !line.starts_with('#') && line.contains(" = ") {
                assert!(
                    previous_is_comment,
                    "config key without a comment above it: {line}"
                );
            }
            previous_is_comment = line.starts_with('#');
        }
    }

    #[test]
    fn file_env_and_flags_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "num_partitions = 3\nretention_ms = 5\n").unwrap();
        let env = vec![
            ("SPOOL_NUM_PARTITIONS".to_string(), "4".to_string()),
            ("HOME".into(), "/".into()),
        ];
        let c = Config::load(Some(&file), env, &["retention_ms=7".into()]).unwrap();
        assert_eq!((c.num_partitions, c.retention_ms), (4, 7));
    }

    #[test]
    fn the_secure_config_and_sasl_settings_load() {
        use crate::server::sasl::Mechanism;
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/secure/single-node.properties");
        let c = Config::load(Some(&path), Vec::new(), &[]).unwrap();
        assert!(c.ignored_kafka.is_empty(), "{:?}", c.ignored_kafka);
        let plan = c.listener_plan().unwrap();
        assert!(plan.clients[0].is_tls() && plan.clients[0].is_sasl());
        let s = c.sasl_settings("SASL_SSL").unwrap();
        assert_eq!(s.mechanisms.len(), 3);
        assert_eq!(s.mechanisms[2], Mechanism::Plain);
        assert_eq!(s.plain_users["admin"], "change-me");
        assert_eq!(s.max_reauth.as_millis(), 3_600_000);
        assert_eq!(
            c.tls_settings("SASL_SSL").keystore_location.value,
            "certs/broker.keystore.pem"
        );

        for (bad, needle) in [
            ("sasl.enabled.mechanisms=GSSAPI", "GSSAPI is not served"),
            ("sasl.enabled.mechanisms=", "offers no mechanism"),
            (
                "listener.name.sasl_ssl.plain.sasl.jaas.config=Other required;",
                "is not org.apache.kafka.common.security.plain.PlainLoginModule",
            ),
            (
                "listener.name.sasl_ssl.plain.sasl.jaas.config=x required user_a=",
                "sasl.jaas.config",
            ),
        ] {
            let c = Config::load(Some(&path), Vec::new(), &[bad.into()]).unwrap();
            let err = c.sasl_settings("SASL_SSL").unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn kafka_names_work_in_toml_properties_the_environment_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        // Dotted keys in TOML are nested tables; both spellings are Kafka's names.
        let toml_file = dir.path().join("s.toml");
        std::fs::write(
            &toml_file,
            "\"retention.ms\" = 1000\nlog.dirs = \"/tmp/x\"\n[num]\npartitions = 4\nnetwork.threads = 3\n",
        )
        .unwrap();
        let c = Config::load(Some(&toml_file), Vec::new(), &[]).unwrap();
        assert_eq!((c.retention_ms, c.num_partitions), (1000, 4));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.ignored_kafka, ["num.network.threads"]);

        let props = dir.path().join("server.properties");
        std::fs::write(
            &props,
            "node.id=3\nprocess.roles=broker,controller\nlog.retention.hours=2\n\
             log.retention.minutes=5\nlog.segment.bytes=1048576\nauto.create.topics.enable=false\n",
        )
        .unwrap();
        let c = Config::load(Some(&props), Vec::new(), &[]).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(
            c.retention_ms,
            5 * 60_000,
            "minutes win over hours, as in Kafka"
        );
        assert_eq!(c.segment_bytes, 1 << 20);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.ignored_kafka, ["process.roles"]);

        let env = vec![
            ("KAFKA_NUM_PARTITIONS".to_string(), "6".to_string()),
            ("KAFKA_LOG_RETENTION_HOURS".into(), "1".into()),
            ("KAFKA_HEAP_OPTS".into(), "-Xmx1G".into()),
            ("KAFKA_NOT_A_THING".into(), "1".into()),
            ("CLUSTER_ID".into(), "MkU3OEVBNTcwNTJENDM2Qk".into()),
            ("SPOOL_NUM_PARTITIONS".into(), "7".into()),
        ];
        let c = Config::load(None, env, &["log.roll.hours=1".into()]).unwrap();
        assert_eq!(c.num_partitions, 7, "SPOOL_ wins over KAFKA_");
        assert_eq!(c.retention_ms, 3_600_000);
        assert_eq!(c.segment_ms, 3_600_000);
        assert_eq!(c.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
        assert_eq!(c.ignored_env, ["KAFKA_NOT_A_THING"]);

        let err = Config::load(None, Vec::new(), &["num.partitons=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `num.partitions`"), "{err}");
        let err = Config::load(None, Vec::new(), &["log.dirs=/a,/b".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("several directories"), "{err}");
    }

    #[test]
    fn connection_limits_are_validated() {
        let c = Config::load(
            None,
            Vec::new(),
            &["max_connections_per_ip_overrides=127.0.0.2:5, [::1]:7,localhost:3".into()],
        )
        .unwrap();
        let o = c.connection_overrides().unwrap();
        assert_eq!(o[&"127.0.0.2".parse::<std::net::IpAddr>().unwrap()], 5);
        assert_eq!(o[&"::1".parse::<std::net::IpAddr>().unwrap()], 7);
        assert_eq!(o[&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()], 3);
        for bad in [
            "max_connections_per_ip_overrides=127.0.0.2",
            "max_connections_per_ip_overrides=127.0.0.2:many",
            "queued_max_request_bytes=1000",
            "connections_max_idle_ms=0",
        ] {
            let err = Config::load(None, Vec::new(), &[bad.into()])
                .unwrap_err()
                .to_string();
            let key = bad.split('=').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
        let unbounded =
            Config::load(None, Vec::new(), &["queued_max_request_bytes=-1".into()]).unwrap();
        assert_eq!(unbounded.queued_max_request_bytes, -1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "retention_mss = 5\n").unwrap();
        let err = Config::load(Some(&file), Vec::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention_mss"), "{err}");
        let c = Config::load(None, vec![("SPOOL_NOPE".into(), "1".into())], &[]).unwrap();
        assert_eq!(c.ignored_env, ["SPOOL_NOPE"], "reported, not fatal");
        let err = Config::load(None, Vec::new(), &["flush.mode=sometimes".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("flush"), "{err}");
    }

    #[test]
    fn wrong_types_are_refused() {
        let err = Config::load(
            None,
            vec![("SPOOL_NUM_PARTITIONS".into(), "many".into())],
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("num_partitions"));
    }
}
