//! Producer state for idempotence, and producer id allocation.

pub mod producer_id;
pub mod producer_state;
