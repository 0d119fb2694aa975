//! DescribeCluster: the live nodes of the metadata image, and the quorum leader as controller.

use super::{cluster_operations, str_bytes, OPERATIONS_NOT_REQUESTED};
use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// `endpoint_type` values (KIP-919).
const BROKERS: i8 = 1;

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeClusterRequest,
    ctx: RequestContext,
) -> Reply {
    let mut response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(super::cluster_view::controller_id(&broker)))
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            cluster_operations()
        } else {
            OPERATIONS_NOT_REQUESTED
        });
    if request.endpoint_type != BROKERS {
        response.error_code = ResponseError::UnsupportedEndpointType.code();
        response.error_message = Some(str_bytes(
            "spool nodes answer for the broker endpoints only",
        ));
        return Reply::ready(ResponseKind::DescribeCluster(response));
    }
    let image = broker.image();
    response.brokers = super::cluster_view::live_nodes(&image, &ctx.listener)
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect();
    Reply::ready(ResponseKind::DescribeCluster(response))
}
