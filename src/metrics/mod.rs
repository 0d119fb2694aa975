//! What operators watch, for Prometheus: the figures of Kafka's JMX metrics under the names
//! Prometheus's JMX exporter gives them (`kafka_server_brokertopicmetrics_bytesin_total{topic}`,
//! `kafka_network_requestmetrics_requests_total{request}`, ...), served by [`http`] on
//! `metrics_listener` with a readiness path beside them.
//!
//! Counters and histograms are kept as events happen, in one process-wide set ([`metrics`]),
//! as Kafka keeps its in one registry: the produce and fetch paths, the request loop and the
//! ISR changes count into it without a handle being passed down. Gauges of state (partition
//! health, log sizes, groups, lag, the controller) are read from the broker at each scrape
//! ([`refresh`]), so they can never drift from what the broker holds.

pub mod http;

use crate::broker::Broker;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{LazyLock, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub request: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub request: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgatoryLabels {
    pub delayedoperation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub consumergroup: String,
    pub topic: String,
    pub partition: String,
}

type Seconds = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn request_time() -> Histogram {
    // 0.1 ms to ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Every metric spool exports.
pub struct Metrics {
    pub messages_in: Family<TopicLabels, Counter>,
    pub bytes_in: Family<TopicLabels, Counter>,
    pub bytes_out: Family<TopicLabels, Counter>,
    pub replication_bytes_out: Counter,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub total_time: Seconds,
    pub purgatory: Family<PurgatoryLabels, Gauge>,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    authentication_failures: Counter,
    authentication_successes: Counter,
    under_replicated: Gauge,
    under_min_isr: Gauge,
    offline: Gauge,
    active_controller: Gauge,
    partitions: Gauge,
    leaders: Gauge,
    log_size: Family<PartitionLabels, Gauge>,
    groups: Family<StateLabels, Gauge>,
    lag: Family<LagLabels, Gauge>,
    registry: Registry,
    /// One scrape at a time: a scrape rewrites the state gauges.
    scrape: Mutex<()>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            messages_in: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            replication_bytes_out: Counter::default(),
            requests: Family::default(),
            errors: Family::default(),
            total_time: Family::new_with_constructor(request_time),
            purgatory: Family::default(),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
            authentication_failures: Counter::default(),
            authentication_successes: Counter::default(),
            under_replicated: Gauge::default(),
            under_min_isr: Gauge::default(),
            offline: Gauge::default(),
            active_controller: Gauge::default(),
            partitions: Gauge::default(),
            leaders: Gauge::default(),
            log_size: Family::default(),
            groups: Family::default(),
            lag: Family::default(),
            registry: Registry::default(),
            scrape: Mutex::new(()),
        };
        let r = &mut m.registry;
        // Counters: the registry adds `_total`.
        r.register(
            "kafka_server_socket_server_metrics_failed_authentication",
            "SASL authentications that failed (connections closed for it)",
            m.authentication_failures.clone(),
        );
        r.register(
            "kafka_server_socket_server_metrics_successful_authentication",
            "SASL authentications and re-authentications that succeeded",
            m.authentication_successes.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by producers, per topic",
            m.messages_in.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_bytesin",
            "Record batch bytes appended by producers, per topic",
            m.bytes_in.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_bytesout",
            "Record bytes sent to consumers, per topic",
            m.bytes_out.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Record bytes sent to follower replicas",
            m.replication_bytes_out.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_requests",
            "Requests answered, per API",
            m.requests.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_errors",
            "Error codes in responses, per API and error",
            m.errors.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_totaltime_seconds",
            "Time from a request being read to its response being written, per API",
            m.total_time.clone(),
        );
        r.register(
            "kafka_server_delayedoperationpurgatory_purgatorysize",
            "Produce requests waiting for replication and fetches waiting for data",
            m.purgatory.clone(),
        );
        r.register(
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks of partitions this node leads, whatever made them",
            m.isr_shrinks.clone(),
        );
        r.register(
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions of partitions this node leads",
            m.isr_expands.clone(),
        );
        r.register(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions this node leads whose ISR is smaller than their replica set",
            m.under_replicated.clone(),
        );
        r.register(
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions this node leads whose ISR is below min.insync.replicas",
            m.under_min_isr.clone(),
        );
        r.register(
            "kafka_server_replicamanager_partitioncount",
            "Partitions with a replica on this node",
            m.partitions.clone(),
        );
        r.register(
            "kafka_server_replicamanager_leadercount",
            "Partitions this node leads",
            m.leaders.clone(),
        );
        r.register(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (reported by the active controller)",
            m.offline.clone(),
        );
        r.register(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the node that leads the metadata quorum",
            m.active_controller.clone(),
        );
        r.register(
            "kafka_log_log_size",
            "Bytes of a partition's log on this node",
            m.log_size.clone(),
        );
        r.register(
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups this node coordinates, per state",
            m.groups.clone(),
        );
        r.register(
            "kafka_consumergroup_lag",
            "High watermark minus committed offset, per group and partition (groups this node coordinates, partitions with a replica here)",
            m.lag.clone(),
        );
        m
    }

    /// Counts a failed SASL authentication.
    pub fn failed_authentication(&self) {
        self.authentication_failures.inc();
    }

    /// Counts a successful SASL authentication or re-authentication.
    pub fn successful_authentication(&self) {
        self.authentication_successes.inc();
    }

    /// Counts one answered request of `api`, with the error codes its response carries.
    pub fn request(&self, api: &str, error_codes: &[i16], seconds: f64) {
        let request = RequestLabels {
            request: api.to_string(),
        };
        self.requests.get_or_create(&request).inc();
        self.total_time.get_or_create(&request).observe(seconds);
        for code in error_codes.iter().filter(|c| **c != 0) {
            let error = kafka_protocol::ResponseError::try_from_code(*code)
                .map_or_else(|| code.to_string(), |e| kafka_error_name(&format!("{e:?}")));
            self.errors
                .get_or_create(&ErrorLabels {
                    request: api.to_string(),
                    error,
                })
                .inc();
        }
    }

    /// Counts an append by a producer.
    pub fn produced(&self, topic: &str, records: u64, bytes: u64) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.messages_in.get_or_create(&labels).inc_by(records);
        self.bytes_in.get_or_create(&labels).inc_by(bytes);
    }

    /// Counts record bytes sent, to a consumer or (`follower`) to a replica.
    pub fn fetched(&self, topic: &str, bytes: u64, follower: bool) {
        if follower {
            self.replication_bytes_out.inc_by(bytes);
        } else {
            self.bytes_out
                .get_or_create(&TopicLabels {
                    topic: topic.to_string(),
                })
                .inc_by(bytes);
        }
    }

    /// A request now waiting in `purgatory` ("Produce" or "Fetch"), until the guard drops.
    pub fn waiting(&'static self, purgatory: &'static str) -> Waiting {
        let labels = PurgatoryLabels {
            delayedoperation: purgatory.to_string(),
        };
        self.purgatory.get_or_create(&labels).inc();
        Waiting { labels }
    }
}

/// Kafka's name of an error (`NOT_LEADER_OR_FOLLOWER`) from the variant's (`NotLeaderOrFollower`).
fn kafka_error_name(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len() + 8);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A request counted in its purgatory's size while it lives.
pub struct Waiting {
    labels: PurgatoryLabels,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics().purgatory.get_or_create(&self.labels).dec();
    }
}

/// The text exposition of every metric, with the state gauges read from `broker` now.
pub fn scrape(broker: &Broker) -> String {
    let m = metrics();
    let _one = m.scrape.lock().unwrap_or_else(|e| e.into_inner());
    refresh(broker, m);
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    out
}

/// Sets the state gauges from what the broker holds now.
fn refresh(broker: &Broker, m: &Metrics) {
    let image = broker.image();
    let me = broker.node_id() as u64;
    let controller = broker.replication.controller();
    m.active_controller.set(i64::from(controller.is_leader()));
    let offline = if controller.is_leader() {
        image
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader.is_none())
            .count()
    } else {
        0
    };
    m.offline.set(offline as i64);
    let (mut under_replicated, mut under_min_isr, mut leaders) = (0, 0, 0);
    for (name, topic) in &image.topics {
        let min_isr = broker
            .topics
            .get(name)
            .and_then(|t| broker.topics.effective(&t, "min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        for p in topic.partitions.iter().filter(|p| p.leader == Some(me)) {
            leaders += 1;
            under_replicated += i64::from(p.isr.len() < p.replicas.len());
            under_min_isr += i64::from(p.isr.len() < min_isr);
        }
    }
    m.under_replicated.set(under_replicated);
    m.under_min_isr.set(under_min_isr);
    m.leaders.set(leaders);
    let local = broker.topics.all_partitions();
    m.partitions.set(local.len() as i64);
    m.log_size.clear();
    for p in &local {
        m.log_size
            .get_or_create(&PartitionLabels {
                topic: p.tp().topic.to_string(),
                partition: p.tp().partition.to_string(),
            })
            .set(p.size_bytes() as i64);
    }
    m.groups.clear();
    m.lag.clear();
    for (group, _, state) in broker.groups.list() {
        m.groups
            .get_or_create(&StateLabels {
                state: state.name().to_string(),
            })
            .inc();
        for (topic, partitions) in broker.groups.fetch(&group, None) {
            for (partition, committed) in partitions {
                let (Some(committed), Some(p)) =
                    (committed, broker.topics.partition(&topic, partition))
                else {
                    continue;
                };
                m.lag
                    .get_or_create(&LagLabels {
                        consumergroup: group.clone(),
                        topic: topic.clone(),
                        partition: partition.to_string(),
                    })
                    .set((p.high_watermark() - committed.offset).max(0));
            }
        }
    }
}

/// The error codes a response carries, top-level and per topic or partition, for the APIs
/// clients use most (Kafka's `errorCounts`); other APIs report none.
pub fn error_codes(response: &kafka_protocol::messages::ResponseKind) -> Vec<i16> {
    use kafka_protocol::messages::ResponseKind as R;
    match response {
        R::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        R::Fetch(r) => std::iter::once(r.error_code)
            .chain(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .collect(),
        R::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        R::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        R::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        R::OffsetFetch(r) => std::iter::once(r.error_code)
            .chain(r.groups.iter().map(|g| g.error_code))
            .collect(),
        R::FindCoordinator(r) => std::iter::once(r.error_code)
            .chain(r.coordinators.iter().map(|c| c.error_code))
            .collect(),
        R::JoinGroup(r) => vec![r.error_code],
        R::SyncGroup(r) => vec![r.error_code],
        R::Heartbeat(r) => vec![r.error_code],
        R::LeaveGroup(r) => vec![r.error_code],
        R::ApiVersions(r) => vec![r.error_code],
        R::InitProducerId(r) => vec![r.error_code],
        R::EndTxn(r) => vec![r.error_code],
        R::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        R::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        R::DescribeConfigs(r) => r.results.iter().map(|t| t.error_code).collect(),
        R::DescribeCluster(r) => vec![r.error_code],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_labelled_with_kafka_names() {
        assert_eq!(
            super::kafka_error_name("NotLeaderOrFollower"),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            super::kafka_error_name("MemberIdRequired"),
            "MEMBER_ID_REQUIRED"
        );
    }
}
