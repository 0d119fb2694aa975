//! Producer state (idempotence and per-partition transactions), producer id allocation, and
//! the transaction coordinator with its state log.

pub mod coordinator;
mod markers;
pub mod producer_id;
pub mod producer_state;
pub mod state;
pub mod store;
