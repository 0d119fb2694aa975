//! DeleteRecords: moves each partition's log start offset up (-1: to the high watermark);
//! records below it are gone for readers at once, and whole segments below it are deleted.

use crate::broker::Broker;
use crate::handlers::cluster_view::led_partition;
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: DeleteRecordsRequest,
    _ctx: RequestContext,
) -> Reply {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let partition = match led_partition(&broker, &t.name.0, p.partition_index) {
                        Ok(partition) => partition,
                        Err(e) => return r.with_error_code(e.code()),
                    };
                    match partition.delete_records(p.offset) {
                        Ok(low) => {
                            tracing::info!(partition = %partition.tp(), log_start_offset = low, "records deleted");
                            r.with_low_watermark(low)
                        }
                        Err(e) => r.with_error_code(errors::partition(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Reply::ready(ResponseKind::DeleteRecords(
        DeleteRecordsResponse::default().with_topics(topics),
    ))
}
