//! The route table: for each served API, its version range and its handler. Dispatch and the
//! ApiVersions answer both read this one table, so what is advertised is what is served.

use crate::broker::Broker;
use crate::handlers;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a handler gives back.
pub enum Reply {
    /// The response, ready to write.
    Ready(Box<ResponseKind>),
    /// A response that completes later (a produce waiting for durability, a fetch waiting for
    /// data). Responses are still written in request order.
    Deferred(BoxFuture<ResponseKind>),
    /// No response at all (acks=0 produce).
    Nothing,
}

impl Reply {
    pub fn ready(body: ResponseKind) -> Self {
        Reply::Ready(Box::new(body))
    }
}

/// Request facts a handler may need beside the body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub peer: std::net::SocketAddr,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The name of the listener the request came in on: clients are told that listener's
    /// addresses.
    pub listener: Arc<str>,
    /// Who sent it: `User:<name>` once authenticated with SASL, else `User:ANONYMOUS`.
    pub principal: Arc<str>,
}

pub type Handler = fn(Arc<Broker>, RequestKind, RequestContext) -> BoxFuture<Reply>;

pub struct Route {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub handle: Handler,
}

macro_rules! routes {
    ($( $key:ident $min:literal ..= $max:literal => $($module:ident)::+ ),* $(,)?) => {
        mod dispatch {
            use super::*;
            $(
                #[allow(non_snake_case)]
                pub(super) fn $key(broker: Arc<Broker>, request: RequestKind, ctx: RequestContext) -> BoxFuture<Reply> {
                    Box::pin(async move {
                        match request {
                            RequestKind::$key(r) => handlers::$($module)::+::handle(broker, r, ctx).await,
                            // `codec::decode` decodes the body by this route's own key.
                            other => unreachable!("{} routed to {}", other_name(&other), stringify!($key)),
                        }
                    })
                }
            )*
        }
        /// Served APIs, in API key order.
        pub static ROUTES: &[Route] = &[
            $( Route { api_key: ApiKey::$key, min_version: $min, max_version: $max, handle: dispatch::$key } ),*
        ];
    };
}

fn other_name(request: &RequestKind) -> String {
    let debug = format!("{request:?}");
    debug.split('(').next().unwrap_or_default().to_string()
}

routes! {
    Produce 3..=13 => produce,
    Fetch 4..=18 => fetch,
    ListOffsets 1..=10 => list_offsets,
    Metadata 0..=13 => metadata,
    OffsetCommit 2..=9 => group::offset_commit,
    OffsetFetch 1..=9 => group::offset_fetch,
    FindCoordinator 0..=6 => group::find_coordinator,
    JoinGroup 0..=9 => group::join_group,
    Heartbeat 0..=4 => group::heartbeat,
    LeaveGroup 0..=5 => group::leave_group,
    SyncGroup 0..=5 => group::sync_group,
    DescribeGroups 0..=6 => group::describe_groups,
    ListGroups 0..=5 => group::list_groups,
    SaslHandshake 0..=1 => sasl::handshake,
    ApiVersions 0..=4 => api_versions,
    CreateTopics 2..=7 => create_topics,
    DeleteTopics 1..=6 => delete_topics,
    DeleteRecords 0..=2 => delete_records,
    InitProducerId 0..=5 => init_producer_id,
    OffsetForLeaderEpoch 2..=4 => offset_for_leader_epoch,
    AddPartitionsToTxn 0..=4 => txn::add_partitions_to_txn,
    AddOffsetsToTxn 0..=4 => txn::add_offsets_to_txn,
    EndTxn 0..=4 => txn::end_txn,
    WriteTxnMarkers 1..=1 => txn::write_txn_markers,
    TxnOffsetCommit 0..=4 => txn::txn_offset_commit,
    DescribeConfigs 1..=4 => describe_configs,
    AlterConfigs 0..=2 => alter_configs,
    DescribeLogDirs 1..=4 => describe_log_dirs,
    SaslAuthenticate 0..=2 => sasl::authenticate,
    CreatePartitions 0..=3 => create_partitions,
    DeleteGroups 0..=2 => group::delete_groups,
    ElectLeaders 0..=2 => elect_leaders,
    IncrementalAlterConfigs 0..=1 => incremental_alter_configs,
    AlterPartitionReassignments 0..=1 => alter_partition_reassignments,
    ListPartitionReassignments 0..=0 => list_partition_reassignments,
    OffsetDelete 0..=0 => group::offset_delete,
    DescribeUserScramCredentials 0..=0 => scram_credentials::describe,
    AlterUserScramCredentials 0..=0 => scram_credentials::alter,
    DescribeQuorum 0..=2 => describe_quorum,
    DescribeCluster 0..=2 => describe_cluster,
    DescribeProducers 0..=0 => txn::describe_producers,
    DescribeTransactions 0..=0 => txn::describe_transactions,
    ListTransactions 0..=1 => txn::list_transactions,
    DescribeTopicPartitions 0..=0 => describe_topic_partitions,
}

/// The route serving `key`, if spool serves it.
pub fn route(key: ApiKey) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.api_key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_within_what_the_protocol_crate_can_decode() {
        for r in ROUTES {
            let valid = r.api_key.valid_versions();
            assert!(
                r.min_version >= valid.min && r.max_version <= valid.max,
                "{:?}",
                r.api_key
            );
            assert!(r.min_version <= r.max_version);
        }
    }

    #[test]
    fn routes_are_unique_and_sorted() {
        for pair in ROUTES.windows(2) {
            assert!((pair[0].api_key as i16) < (pair[1].api_key as i16));
        }
    }
}
