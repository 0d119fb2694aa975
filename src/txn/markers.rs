//! Transaction markers from the coordinator to every partition of a transaction: partitions
//! this node leads are written here; the others are sent, grouped by leader, as WriteTxnMarkers
//! requests to the node the metadata names as their leader (Kafka's
//! `TransactionMarkerChannelManager`). A partition whose leader is unknown or unreachable
//! answers NOT_LEADER_OR_FOLLOWER or REQUEST_TIMED_OUT, and the coordinator retries later.

use super::coordinator::{code, TxnCoordinator};
use crate::log::batch::Marker;
use crate::model::TopicPartition;
use crate::replication::client::Client;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a remote leader may take to write, replicate and sync the markers.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE: usize = 1 << 20;

impl TxnCoordinator {
    /// Writes a marker to each partition, here or at its leader; one code per partition, in
    /// the order given.
    pub(super) async fn send_markers(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let image = self.replication().image();
        let local = self.replication().local();
        let mut by_leader: BTreeMap<Option<u64>, Vec<TopicPartition>> = BTreeMap::new();
        for tp in partitions {
            let leader = image
                .partition(&tp.topic, tp.partition)
                .and_then(|p| p.leader);
            by_leader.entry(leader).or_default().push(tp.clone());
        }
        let mut codes: BTreeMap<TopicPartition, i16> = BTreeMap::new();
        for (leader, tps) in by_leader {
            let results = match leader {
                Some(l) if l == local => {
                    self.write_markers(producer_id, epoch, marker, coordinator_epoch, &tps)
                        .await
                }
                Some(l) => match image.nodes.get(&l) {
                    Some(node) => {
                        let addr = format!("{}:{}", node.host, node.port);
                        let source = self.replication().source();
                        let sent = send(
                            &addr,
                            source,
                            producer_id,
                            epoch,
                            marker,
                            coordinator_epoch,
                            &tps,
                        );
                        sent.await.unwrap_or_else(|e| {
                            tracing::warn!(leader = l, error = %e, "sending transaction markers failed");
                            tps.iter().map(|tp| (tp.clone(), code::REQUEST_TIMED_OUT)).collect()
                        })
                    }
                    None => leaderless(&tps),
                },
                None if image.partition(&tps[0].topic, tps[0].partition).is_none() => tps
                    .iter()
                    .map(|tp| (tp.clone(), code::UNKNOWN_TOPIC_OR_PARTITION))
                    .collect(),
                None => leaderless(&tps),
            };
            codes.extend(results);
        }
        partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    codes
                        .get(tp)
                        .copied()
                        .unwrap_or(code::NOT_LEADER_OR_FOLLOWER),
                )
            })
            .collect()
    }
}

fn leaderless(tps: &[TopicPartition]) -> Vec<(TopicPartition, i16)> {
    tps.iter()
        .map(|tp| (tp.clone(), code::NOT_LEADER_OR_FOLLOWER))
        .collect()
}

/// One WriteTxnMarkers v1 request to a partition leader.
async fn send(
    addr: &str,
    source: Option<std::net::IpAddr>,
    producer_id: i64,
    epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    tps: &[TopicPartition],
) -> Result<Vec<(TopicPartition, i16)>, crate::replication::client::ClientError> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(marker == Marker::Commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partition_indexes(partitions)
                    })
                    .collect(),
            )]);
    let mut client = Client::connect(
        addr,
        source,
        "spool-txn-coordinator",
        MAX_RESPONSE,
        SEND_TIMEOUT,
    )
    .await?;
    let response = client.call(&request, 1, SEND_TIMEOUT).await?;
    let mut out = Vec::new();
    for m in &response.markers {
        for t in &m.topics {
            for p in &t.partitions {
                out.push((
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    p.error_code,
                ));
            }
        }
    }
    Ok(out)
}
