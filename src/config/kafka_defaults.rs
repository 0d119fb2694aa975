//! Kafka's topic and broker configuration names, defaults and types, as Kafka 4.x reports them
//! through DescribeConfigs.
//!
//! The tables are plain data. Each default is the string a Kafka 4.x broker prints for the
//! config (Java's `ConfigDef.convertToString`): longs and ints in decimal, doubles as Java prints
//! them (`0.5`), lists comma-separated with no spaces, an empty list as `""`. `None` means Kafka's
//! default is `null`, or that the config has no default at all (`node.id`, `process.roles`).
//! Docs are short paraphrases of Kafka's own, not copies.
//!
//! Baseline is Apache Kafka 4.0/4.1: both releases' generated `topic_config.html` list the same
//! topic configs with the same defaults. Changes from 3.x that show up here:
//!
//! * `message.timestamp.after.max.ms` / `log.message.timestamp.after.max.ms` default to
//!   `3600000` (one hour); in 3.6–3.9 they were `9223372036854775807`. The `before` pair is
//!   still `9223372036854775807`.
//! * `message.timestamp.difference.max.ms`, `message.format.version` and
//!   `message.downconversion.enable` (and their `log.`-prefixed broker synonyms) are gone; see
//!   [`REMOVED_IN_KAFKA_4`].
//! * `num.recovery.threads.per.data.dir` defaults to `2` (was `1`).
//! * `log.segment.bytes` may not be set below 1 MiB (4.0); `segment.bytes` got the same floor
//!   in 4.1. The default, 1 GiB, is unchanged.
//!
//! Kafka lists each topic config's broker synonyms in priority order (`retention.ms` has
//! `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`); `broker_synonym` holds
//! the first, which is the one `ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS` names.

/// A config's type, as DescribeConfigs v3+ reports it in `ConfigType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The wire code DescribeConfigs v3+ sends (0 is UNKNOWN, which no config here has).
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

/// One config: its name, Kafka's default as printed, its type and a one-line description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The default as Kafka prints it; `None` where Kafka's default is null (or there is none).
    pub default: Option<&'static str>,
    pub config_type: ConfigType,
    pub doc: &'static str,
    /// broker-level synonym (e.g. "log.retention.ms" for "retention.ms"), if any
    pub broker_synonym: Option<&'static str>,
}

impl ConfigDef {
    /// Kafka marks password configs sensitive and returns their value as null.
    pub fn is_sensitive(&self) -> bool {
        self.config_type == ConfigType::Password
    }
}

const BOOLEAN: ConfigType = ConfigType::Boolean;
const STRING: ConfigType = ConfigType::String;
const INT: ConfigType = ConfigType::Int;
const SHORT: ConfigType = ConfigType::Short;
const LONG: ConfigType = ConfigType::Long;
const DOUBLE: ConfigType = ConfigType::Double;
const LIST: ConfigType = ConfigType::List;
const CLASS: ConfigType = ConfigType::Class;
const PASSWORD: ConfigType = ConfigType::Password;

/// `Long.MAX_VALUE`, the default of several "no limit" configs.
const LONG_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    default: Option<&'static str>,
    config_type: ConfigType,
    broker_synonym: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        default,
        config_type,
        doc,
        broker_synonym,
    }
}

/// Every topic-level config of Kafka 4.0/4.1, sorted by name.
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", Some("delete"), LIST, Some("log.cleanup.policy"),
        "What happens to old segments: \"delete\" drops them past the retention limits, \"compact\" keeps the latest record per key; both may be listed."),
    def("compression.gzip.level", Some("-1"), INT, Some("compression.gzip.level"),
        "Compression level used when compression.type is gzip (1-9, or -1 for the codec's default)."),
    def("compression.lz4.level", Some("9"), INT, Some("compression.lz4.level"),
        "Compression level used when compression.type is lz4 (1-17)."),
    def("compression.type", Some("producer"), STRING, Some("compression.type"),
        "Final codec for the topic's data: gzip, snappy, lz4, zstd, uncompressed, or producer to keep whatever the producer used."),
    def("compression.zstd.level", Some("3"), INT, Some("compression.zstd.level"),
        "Compression level used when compression.type is zstd (-131072 to 22)."),
    def("delete.retention.ms", Some("86400000"), LONG, Some("log.cleaner.delete.retention.ms"),
        "How long tombstones are kept in a compacted topic; also how long a reader starting at offset 0 has to finish to see a consistent snapshot."),
    def("file.delete.delay.ms", Some("60000"), LONG, Some("log.segment.delete.delay.ms"),
        "Delay before a deleted segment's files are removed from the filesystem."),
    def("flush.messages", Some(LONG_MAX), LONG, Some("log.flush.interval.messages"),
        "Force an fsync after this many messages; by default Kafka relies on replication and the OS instead."),
    def("flush.ms", Some(LONG_MAX), LONG, Some("log.flush.interval.ms"),
        "Force an fsync once this much time has passed since the last one; by default Kafka relies on replication and the OS instead."),
    def("follower.replication.throttled.replicas", Some(""), LIST, None,
        "Replicas, as partition:broker pairs or '*', whose replication is throttled on the follower side."),
    def("index.interval.bytes", Some("4096"), INT, Some("log.index.interval.bytes"),
        "Roughly how many bytes of log lie between two offset-index entries."),
    def("leader.replication.throttled.replicas", Some(""), LIST, None,
        "Replicas, as partition:broker pairs or '*', whose replication is throttled on the leader side."),
    def("local.retention.bytes", Some("-2"), LONG, Some("log.local.retention.bytes"),
        "With tiered storage, the most bytes of a partition kept on local disk; -2 means use retention.bytes."),
    def("local.retention.ms", Some("-2"), LONG, Some("log.local.retention.ms"),
        "With tiered storage, how long segments stay on local disk; -2 means use retention.ms."),
    def("max.compaction.lag.ms", Some(LONG_MAX), LONG, Some("log.cleaner.max.compaction.lag.ms"),
        "Longest a record may stay ineligible for compaction in a compacted topic."),
    def("max.message.bytes", Some("1048588"), INT, Some("message.max.bytes"),
        "Largest record batch the topic accepts, measured after compression."),
    def("message.timestamp.after.max.ms", Some("3600000"), LONG, Some("log.message.timestamp.after.max.ms"),
        "With CreateTime, how far ahead of the broker's clock a record's timestamp may be before the record is rejected."),
    def("message.timestamp.before.max.ms", Some(LONG_MAX), LONG, Some("log.message.timestamp.before.max.ms"),
        "With CreateTime, how far behind the broker's clock a record's timestamp may be before the record is rejected."),
    def("message.timestamp.type", Some("CreateTime"), STRING, Some("log.message.timestamp.type"),
        "Whether record timestamps are the producer's create time (CreateTime) or the broker's append time (LogAppendTime)."),
    def("min.cleanable.dirty.ratio", Some("0.5"), DOUBLE, Some("log.cleaner.min.cleanable.ratio"),
        "Share of uncompacted log needed before the cleaner compacts a partition; the compaction lag configs can trigger it sooner or hold it back."),
    def("min.compaction.lag.ms", Some("0"), LONG, Some("log.cleaner.min.compaction.lag.ms"),
        "Shortest time a record stays uncompacted in a compacted topic."),
    def("min.insync.replicas", Some("1"), INT, Some("min.insync.replicas"),
        "Fewest in-sync replicas that must have a write before an acks=all produce succeeds."),
    def("preallocate", Some("false"), BOOLEAN, Some("log.preallocate"),
        "Whether a new segment's file is preallocated on disk."),
    def("remote.log.copy.disable", Some("false"), BOOLEAN, None,
        "Stop uploading to tiered storage and keep the remote data read-only; expiry then follows retention.ms/bytes."),
    def("remote.log.delete.on.disable", Some("false"), BOOLEAN, None,
        "Delete the topic's tiered data when tiered storage is turned off; needed to set remote.storage.enable back to false."),
    def("remote.storage.enable", Some("false"), BOOLEAN, None,
        "Whether the topic uses tiered storage."),
    def("retention.bytes", Some("-1"), LONG, Some("log.retention.bytes"),
        "Largest a partition may grow before old segments are deleted under the delete policy; -1 means no size limit."),
    def("retention.ms", Some("604800000"), LONG, Some("log.retention.ms"),
        "How long data is kept before old segments are deleted under the delete policy; -1 means no time limit."),
    def("segment.bytes", Some("1073741824"), INT, Some("log.segment.bytes"),
        "Size at which a segment file is rolled; retention and cleaning work a whole segment at a time."),
    def("segment.index.bytes", Some("10485760"), INT, Some("log.index.size.max.bytes"),
        "Size preallocated for a segment's offset index, which is trimmed when the segment rolls."),
    def("segment.jitter.ms", Some("0"), LONG, Some("log.roll.jitter.ms"),
        "Most random time taken off the scheduled roll time, so segments do not all roll at once."),
    def("segment.ms", Some("604800000"), LONG, Some("log.roll.ms"),
        "Time after which a segment is rolled even if not full, so retention can delete or compact it."),
    def("unclean.leader.election.enable", Some("false"), BOOLEAN, Some("unclean.leader.election.enable"),
        "Whether a replica outside the ISR may become leader as a last resort, at the risk of losing data."),
];

/// The broker configs an admin tool commonly reads, plus every broker synonym of a topic
/// config, sorted by name.
#[rustfmt::skip]
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def("advertised.listeners", None, STRING, None,
        "Addresses published to clients and other brokers; defaults to listeners when unset."),
    def("auto.create.topics.enable", Some("true"), BOOLEAN, None,
        "Whether a request for a missing topic creates it."),
    def("auto.leader.rebalance.enable", Some("true"), BOOLEAN, None,
        "Whether leadership is periodically moved back to preferred replicas."),
    def("broker.id", Some("-1"), INT, None,
        "This broker's id (in KRaft mode node.id is the one that counts)."),
    def("broker.rack", None, STRING, None,
        "The broker's rack, used for rack-aware replica placement."),
    def("compression.gzip.level", Some("-1"), INT, None,
        "Default gzip compression level (1-9, or -1 for the codec's default)."),
    def("compression.lz4.level", Some("9"), INT, None,
        "Default lz4 compression level (1-17)."),
    def("compression.type", Some("producer"), STRING, None,
        "Default final codec for topics: gzip, snappy, lz4, zstd, uncompressed or producer."),
    def("compression.zstd.level", Some("3"), INT, None,
        "Default zstd compression level (-131072 to 22)."),
    def("connections.max.idle.ms", Some("600000"), LONG, None,
        "Idle connections are closed after this many milliseconds."),
    def("controller.listener.names", None, STRING, None,
        "Comma-separated names of the listeners the controllers use."),
    def("controller.quorum.bootstrap.servers", Some(""), LIST, None,
        "host:port endpoints used to discover the controller quorum."),
    def("controller.quorum.voters", Some(""), LIST, None,
        "Static controller quorum as id@host:port entries."),
    def("default.replication.factor", Some("1"), INT, None,
        "Replication factor of auto-created topics and of topics created with -1."),
    def("delete.topic.enable", Some("true"), BOOLEAN, None,
        "Whether topics may be deleted; when false, deletions are rejected."),
    def("fetch.max.bytes", Some("57671680"), INT, None,
        "Most record bytes the broker returns in one fetch response."),
    def("group.initial.rebalance.delay.ms", Some("3000"), INT, None,
        "How long the coordinator waits for more members to join a new classic group before its first rebalance."),
    def("group.max.session.timeout.ms", Some("1800000"), INT, None,
        "Largest session timeout a classic group member may ask for."),
    def("group.min.session.timeout.ms", Some("6000"), INT, None,
        "Smallest session timeout a classic group member may ask for."),
    def("inter.broker.listener.name", None, STRING, None,
        "Listener brokers use to talk to each other; when unset, security.inter.broker.protocol decides."),
    def("listener.security.protocol.map", Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"), STRING, None,
        "Maps each listener name to its security protocol, as NAME:PROTOCOL pairs."),
    def("listeners", Some("PLAINTEXT://:9092"), STRING, None,
        "Comma-separated URIs the broker listens on, each with its listener name."),
    def("log.cleaner.backoff.ms", Some("15000"), LONG, None,
        "How long the log cleaner sleeps when no partition needs cleaning."),
    def("log.cleaner.delete.retention.ms", Some("86400000"), LONG, None,
        "Default time tombstones are kept in compacted topics."),
    def("log.cleaner.enable", Some("true"), BOOLEAN, None,
        "Whether the log cleaner runs; compacted topics, __consumer_offsets included, need it."),
    def("log.cleaner.max.compaction.lag.ms", Some(LONG_MAX), LONG, None,
        "Default longest a record may stay ineligible for compaction."),
    def("log.cleaner.min.cleanable.ratio", Some("0.5"), DOUBLE, None,
        "Default share of uncompacted log needed before a partition is cleaned."),
    def("log.cleaner.min.compaction.lag.ms", Some("0"), LONG, None,
        "Default shortest time a record stays uncompacted."),
    def("log.cleanup.policy", Some("delete"), LIST, None,
        "Default cleanup policy for topics: delete, compact, or both."),
    def("log.dir", Some("/tmp/kafka-logs"), STRING, None,
        "Directory holding log data, used when log.dirs is unset."),
    def("log.dirs", None, STRING, None,
        "Comma-separated directories holding log data; log.dir is used when unset."),
    def("log.flush.interval.messages", Some(LONG_MAX), LONG, None,
        "Default number of messages written to a partition between forced flushes."),
    def("log.flush.interval.ms", None, LONG, None,
        "Default longest a message waits in memory before a forced flush; log.flush.scheduler.interval.ms applies when unset."),
    def("log.flush.scheduler.interval.ms", Some(LONG_MAX), LONG, None,
        "How often the flusher checks whether any log is due for a flush."),
    def("log.index.interval.bytes", Some("4096"), INT, None,
        "Default number of log bytes between offset-index entries."),
    def("log.index.size.max.bytes", Some("10485760"), INT, None,
        "Default largest size of a segment's offset index."),
    def("log.local.retention.bytes", Some("-2"), LONG, None,
        "Default local-disk size limit with tiered storage; -2 means use log.retention.bytes."),
    def("log.local.retention.ms", Some("-2"), LONG, None,
        "Default local-disk time limit with tiered storage; -2 means use log.retention.ms."),
    def("log.message.timestamp.after.max.ms", Some("3600000"), LONG, None,
        "Default for how far ahead of the broker's clock a CreateTime timestamp may be."),
    def("log.message.timestamp.before.max.ms", Some(LONG_MAX), LONG, None,
        "Default for how far behind the broker's clock a CreateTime timestamp may be."),
    def("log.message.timestamp.type", Some("CreateTime"), STRING, None,
        "Default timestamp type for topics: CreateTime or LogAppendTime."),
    def("log.preallocate", Some("false"), BOOLEAN, None,
        "Whether new segment files are preallocated on disk."),
    def("log.retention.bytes", Some("-1"), LONG, None,
        "Default size limit of a partition before old segments are deleted; -1 means none."),
    def("log.retention.check.interval.ms", Some("300000"), LONG, None,
        "How often the broker looks for segments to delete."),
    def("log.retention.hours", Some("168"), INT, None,
        "Default retention in hours; log.retention.minutes and log.retention.ms take precedence."),
    def("log.retention.minutes", None, INT, None,
        "Default retention in minutes; log.retention.ms takes precedence, log.retention.hours applies when unset."),
    def("log.retention.ms", None, LONG, None,
        "Default retention in milliseconds, -1 for no limit; log.retention.minutes applies when unset."),
    def("log.roll.hours", Some("168"), INT, None,
        "Default time in hours before a segment is rolled; log.roll.ms takes precedence."),
    def("log.roll.jitter.hours", Some("0"), INT, None,
        "Default roll jitter in hours; log.roll.jitter.ms takes precedence."),
    def("log.roll.jitter.ms", None, LONG, None,
        "Default roll jitter in milliseconds; log.roll.jitter.hours applies when unset."),
    def("log.roll.ms", None, LONG, None,
        "Default time in milliseconds before a segment is rolled; log.roll.hours applies when unset."),
    def("log.segment.bytes", Some("1073741824"), INT, None,
        "Default segment file size (at least 1 MiB since Kafka 4.0)."),
    def("log.segment.delete.delay.ms", Some("60000"), LONG, None,
        "Default delay before a deleted segment's files are removed."),
    def("max.connections", Some("2147483647"), INT, None,
        "Most connections the broker accepts at once."),
    def("max.connections.per.ip", Some("2147483647"), INT, None,
        "Most connections the broker accepts at once from one IP address."),
    def("max.connections.per.ip.overrides", Some(""), STRING, None,
        "Per-IP or per-host exceptions to max.connections.per.ip, as host:count pairs."),
    def("message.max.bytes", Some("1048588"), INT, None,
        "Default largest record batch a topic accepts, after compression."),
    def("min.insync.replicas", Some("1"), INT, None,
        "Default fewest in-sync replicas an acks=all write needs."),
    def("node.id", None, INT, None,
        "This node's id in KRaft mode; required, with no default."),
    def("num.io.threads", Some("8"), INT, None,
        "Threads that process requests, disk I/O included."),
    def("num.network.threads", Some("3"), INT, None,
        "Threads per listener that read requests from and write responses to the network."),
    def("num.partitions", Some("1"), INT, None,
        "Default partition count of new topics."),
    def("num.recovery.threads.per.data.dir", Some("2"), INT, None,
        "Threads per data directory for log recovery at startup and flushing at shutdown (was 1 before 4.0)."),
    def("num.replica.fetchers", Some("1"), INT, None,
        "Fetcher threads replicating from each source broker."),
    def("offsets.retention.minutes", Some("10080"), INT, None,
        "How long committed offsets of an empty group, or of an unsubscribed topic, are kept."),
    def("offsets.topic.num.partitions", Some("50"), INT, None,
        "Partition count of __consumer_offsets; should not change after deployment."),
    def("offsets.topic.replication.factor", Some("3"), SHORT, None,
        "Replication factor of __consumer_offsets; creating it fails until enough brokers exist."),
    def("offsets.topic.segment.bytes", Some("104857600"), INT, None,
        "Segment size of __consumer_offsets, kept small for fast compaction and loading."),
    def("principal.builder.class", Some("org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"), CLASS, None,
        "Class that builds the KafkaPrincipal used for authorization."),
    def("process.roles", None, LIST, None,
        "Roles this process plays: broker, controller, or both; required in KRaft mode."),
    def("queued.max.request.bytes", Some("-1"), LONG, None,
        "Most bytes of queued requests before the broker stops reading more; -1 means no bound."),
    def("replica.lag.time.max.ms", Some("30000"), LONG, None,
        "A follower that has not fetched, or not caught up, for this long is dropped from the ISR."),
    def("sasl.jaas.config", None, PASSWORD, None,
        "JAAS login settings for SASL connections; set per listener and mechanism on brokers."),
    def("security.inter.broker.protocol", Some("PLAINTEXT"), STRING, None,
        "Security protocol between brokers; may not be set together with inter.broker.listener.name."),
    def("socket.receive.buffer.bytes", Some("102400"), INT, None,
        "SO_RCVBUF of the server's sockets; -1 uses the OS default."),
    def("socket.request.max.bytes", Some("104857600"), INT, None,
        "Largest request the server accepts, in bytes."),
    def("socket.send.buffer.bytes", Some("102400"), INT, None,
        "SO_SNDBUF of the server's sockets; -1 uses the OS default."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", Some("10000"), INT, None,
        "How often transactions open past their timeout are looked for and aborted."),
    def("transaction.max.timeout.ms", Some("900000"), INT, None,
        "Longest transaction timeout a producer may ask for in InitProducerId."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", Some("3600000"), INT, None,
        "How often transactional ids past transactional.id.expiration.ms are removed."),
    def("transaction.state.log.min.isr", Some("2"), INT, None,
        "min.insync.replicas of __transaction_state."),
    def("transaction.state.log.num.partitions", Some("50"), INT, None,
        "Partition count of __transaction_state; should not change after deployment."),
    def("transaction.state.log.replication.factor", Some("3"), SHORT, None,
        "Replication factor of __transaction_state; creating it fails until enough brokers exist."),
    def("transaction.state.log.segment.bytes", Some("104857600"), INT, None,
        "Segment size of __transaction_state, kept small for fast compaction and loading."),
    def("transactional.id.expiration.ms", Some("604800000"), INT, None,
        "How long a transactional id may go without a transaction status update before it expires."),
    def("unclean.leader.election.enable", Some("false"), BOOLEAN, None,
        "Default for whether a replica outside the ISR may become leader, at the risk of losing data."),
];

/// Configs Kafka 3.x had and Kafka 4.0 removed (KIP-724 dropped message formats v0/v1 and
/// with them the format and down-conversion configs; the timestamp-difference pair, deprecated
/// since 3.6, gave way to the before/after pair). A 4.x broker rejects them as unknown.
pub const REMOVED_IN_KAFKA_4: &[&str] = &[
    "log.message.downconversion.enable",
    "log.message.format.version",
    "log.message.timestamp.difference.max.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
];

fn lookup(table: &'static [ConfigDef], name: &str) -> Option<&'static ConfigDef> {
    table
        .binary_search_by(|c| c.name.cmp(name))
        .ok()
        .map(|i| &table[i])
}

/// The topic config called `name`, if Kafka 4.x has one.
pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    lookup(TOPIC_CONFIGS, name)
}

/// The broker config called `name`, if it is in [`BROKER_CONFIGS`].
pub fn broker_config(name: &str) -> Option<&'static ConfigDef> {
    lookup(BROKER_CONFIGS, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_sorted_unique(table: &[ConfigDef], what: &str) {
        for pair in table.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{what}: {:?} must sort strictly before {:?}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn topic_configs_are_sorted_and_unique() {
        assert_sorted_unique(TOPIC_CONFIGS, "TOPIC_CONFIGS");
    }

    #[test]
    fn broker_configs_are_sorted_and_unique() {
        assert_sorted_unique(BROKER_CONFIGS, "BROKER_CONFIGS");
    }

    #[test]
    fn every_broker_synonym_is_a_broker_config() {
        for c in TOPIC_CONFIGS {
            if let Some(syn) = c.broker_synonym {
                let b = broker_config(syn).unwrap_or_else(|| {
                    panic!("{}: synonym {syn} missing from BROKER_CONFIGS", c.name)
                });
                assert_eq!(
                    b.config_type, c.config_type,
                    "{}: type differs from {syn}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn broker_configs_have_no_synonyms() {
        assert!(BROKER_CONFIGS.iter().all(|c| c.broker_synonym.is_none()));
    }

    #[test]
    fn removed_configs_are_absent() {
        for name in REMOVED_IN_KAFKA_4 {
            assert!(topic_config(name).is_none(), "{name}");
            assert!(broker_config(name).is_none(), "{name}");
        }
    }

    #[test]
    fn key_topic_defaults() {
        let d = |n: &str| topic_config(n).unwrap_or_else(|| panic!("no {n}")).default;
        assert_eq!(d("retention.ms"), Some("604800000"));
        assert_eq!(d("retention.bytes"), Some("-1"));
        assert_eq!(d("segment.bytes"), Some("1073741824"));
        assert_eq!(d("segment.ms"), Some("604800000"));
        assert_eq!(d("segment.jitter.ms"), Some("0"));
        assert_eq!(d("max.message.bytes"), Some("1048588"));
        assert_eq!(d("cleanup.policy"), Some("delete"));
        assert_eq!(d("compression.type"), Some("producer"));
        assert_eq!(d("message.timestamp.type"), Some("CreateTime"));
        assert_eq!(d("message.timestamp.after.max.ms"), Some("3600000"));
        assert_eq!(
            d("message.timestamp.before.max.ms"),
            Some("9223372036854775807")
        );
        assert_eq!(d("flush.messages"), Some("9223372036854775807"));
        assert_eq!(d("flush.ms"), Some("9223372036854775807"));
        assert_eq!(d("min.insync.replicas"), Some("1"));
        assert_eq!(d("min.cleanable.dirty.ratio"), Some("0.5"));
        assert_eq!(d("leader.replication.throttled.replicas"), Some(""));
        assert_eq!(TOPIC_CONFIGS.len(), 33);
    }

    #[test]
    fn key_broker_defaults() {
        let d = |n: &str| broker_config(n).unwrap_or_else(|| panic!("no {n}")).default;
        assert_eq!(d("log.retention.hours"), Some("168"));
        assert_eq!(d("log.retention.ms"), None);
        assert_eq!(d("log.flush.interval.ms"), None);
        assert_eq!(d("num.partitions"), Some("1"));
        assert_eq!(d("offsets.topic.replication.factor"), Some("3"));
        assert_eq!(d("listeners"), Some("PLAINTEXT://:9092"));
        assert_eq!(d("node.id"), None);
    }

    #[test]
    fn types_and_codes() {
        assert_eq!(
            topic_config("cleanup.policy").map(|c| c.config_type),
            Some(ConfigType::List)
        );
        assert_eq!(
            topic_config("segment.bytes").map(|c| c.config_type),
            Some(ConfigType::Int)
        );
        assert_eq!(
            broker_config("offsets.topic.replication.factor").map(|c| c.config_type),
            Some(ConfigType::Short)
        );
        assert!(broker_config("sasl.jaas.config").is_some_and(ConfigDef::is_sensitive));
        let codes: Vec<i8> = [
            ConfigType::Boolean,
            ConfigType::String,
            ConfigType::Int,
            ConfigType::Short,
            ConfigType::Long,
            ConfigType::Double,
            ConfigType::List,
            ConfigType::Class,
            ConfigType::Password,
        ]
        .into_iter()
        .map(ConfigType::code)
        .collect();
        assert_eq!(codes, (1..=9).collect::<Vec<i8>>());
    }

    #[test]
    fn unknown_names_are_not_found() {
        assert!(topic_config("no.such.config").is_none());
        assert!(broker_config("retention.ms").is_none());
        assert!(topic_config("log.retention.ms").is_none());
    }
}
