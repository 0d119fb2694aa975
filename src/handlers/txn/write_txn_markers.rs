//! WriteTxnMarkers: writes commit or abort markers to partitions this node leads (what a
//! transaction coordinator asks of partition leaders; also how an operator aborts a hanging
//! transaction). Each marker is synced before it is acknowledged.

use crate::broker::Broker;
use crate::log::batch::Marker;
use crate::model::TopicPartition;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: WriteTxnMarkersRequest,
    _ctx: RequestContext,
) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let mut markers = Vec::with_capacity(request.markers.len());
        for m in &request.markers {
            let marker = if m.transaction_result {
                Marker::Commit
            } else {
                Marker::Abort
            };
            let tps: Vec<TopicPartition> = m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| TopicPartition::new(t.name.0.to_string(), *p))
                })
                .collect();
            let results = broker
                .txns
                .write_markers(
                    m.producer_id.0,
                    m.producer_epoch,
                    marker,
                    m.coordinator_epoch,
                    &tps,
                )
                .await;
            let mut results = results.into_iter();
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let error = results.next().map_or(0, |(_, e)| e);
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(error)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers))
    }))
}
