//! A request frame's body (header and request, after the size prefix) through the decoder the
//! broker uses: every served API and version, from one route table.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: spool_fuzz::Bounded = spool_fuzz::Bounded;

fuzz_target!(|data: &[u8]| {
    spool_fuzz::bounded(data, |data| {
        let _ = spool::protocol::codec::decode(bytes::Bytes::copy_from_slice(data));
    });
});
