//! Kafka wire protocol glue over the pinned `kafka-protocol` crate: frame bounds, request
//! decoding and response encoding, the route table that drives both dispatch and ApiVersions,
//! and the one mapping from spool errors to Kafka error codes.

pub mod client;
pub mod codec;
pub mod errors;
pub mod frame;
pub mod routes;
