//! The network side: the listener admits connections within the connection quotas; each
//! connection's session reads frames (within the shared request-memory budget and the idle and
//! read deadlines), dispatches them through the route table and writes the responses in request
//! order. Nothing here knows about topics.

pub mod listener;
pub mod principal;
pub mod quotas;
pub mod sasl;
pub mod session;
pub mod tls;
