//! A controller RPC frame body (Raft's AppendEntries, Vote, InstallSnapshot, forwarded writes)
//! through the decoder the controller listener uses.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: spool_fuzz::Bounded = spool_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    spool_fuzz::bounded(data, |data| {
        let _ = serde_json::from_slice::<spool::cluster::network::RpcRequest>(data);
    });
});
