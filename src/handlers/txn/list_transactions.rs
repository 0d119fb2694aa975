//! ListTransactions: transactional ids with their producer and state, filtered by state names,
//! producer ids and (v1) how long the transaction has been running. Unknown state names are
//! echoed back, as Kafka does.

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use crate::txn::state::TxnState;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: ListTransactionsRequest,
    ctx: RequestContext,
) -> Reply {
    let states: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown = request
        .state_filters
        .iter()
        .filter(|s| TxnState::from_name(s).is_none())
        .cloned()
        .collect();
    let pids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.api_version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let listed = broker
        .txns
        .list(&states, &pids, duration)
        .into_iter()
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    Reply::ready(ResponseKind::ListTransactions(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed),
    ))
}
