//! DescribeLogDirs: the one log directory (the data dir), its volume's total and usable bytes,
//! and the size of each partition in it.

use super::str_bytes;
use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeLogDirsRequest,
    _ctx: RequestContext,
) -> Reply {
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut all = broker.topics.list();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let topics = all
        .iter()
        .filter_map(|t| {
            let only = match &wanted {
                None => None,
                Some(w) => Some(&w.iter().find(|(name, _)| *name == t.name)?.1),
            };
            let partitions: Vec<DescribeLogDirsPartition> = t
                .local()
                .filter(|p| only.is_none_or(|ps| ps.contains(&p.tp().partition)))
                .map(|p| {
                    // Kafka's offset lag: how far this replica's log end is behind the high
                    // watermark (zero on the leader).
                    let lag = (p.high_watermark() - p.log_end_offset()).max(0);
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.tp().partition)
                        .with_partition_size(p.size_bytes() as i64)
                        .with_offset_lag(lag)
                        .with_is_future_key(false)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = &broker.config.data_dir;
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let (total, usable) = match rustix::fs::statvfs(&path) {
        Ok(s) => (
            (s.f_blocks.saturating_mul(s.f_frsize)) as i64,
            (s.f_bavail.saturating_mul(s.f_frsize)) as i64,
        ),
        Err(e) => {
            tracing::warn!(error = %e, dir = %path.display(), "cannot read the log dir's volume size");
            (-1, -1)
        }
    };
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(path.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    Reply::ready(ResponseKind::DescribeLogDirs(
        DescribeLogDirsResponse::default().with_results(vec![result]),
    ))
}
