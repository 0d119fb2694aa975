//! The network side: the listener accepts a bounded number of connections; each connection's
//! session reads frames, dispatches them through the route table and writes the responses in
//! request order. Nothing here knows about topics.

pub mod listener;
pub mod session;
