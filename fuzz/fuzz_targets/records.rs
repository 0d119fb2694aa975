//! A produced record batch through the validator every produce goes through, for every codec.
//! The first input byte chooses whether the batch's length and CRC are made right (so that the
//! fuzzer reaches the records and the decompressors) or left as given (so the header checks
//! are fuzzed too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::log::records::{validate_produced, ProducedChecks};

#[global_allocator]
static ALLOC: spool_fuzz::Bounded = spool_fuzz::Bounded;

/// Where the CRC-32C field is, and where what it covers starts.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, batch)) = data.split_first() else {
        return;
    };
    let mut batch = batch.to_vec();
    if mode & 1 == 1 && batch.len() >= 61 {
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        // Magic 2, so the records are read.
        batch[16] = 2;
        let crc = crc32c::crc32c(&batch[CRC_FROM..]);
        batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    }
    let checks = ProducedChecks {
        max_record_bytes: 1 << 20,
        max_uncompressed_bytes: spool::log::records::MAX_UNCOMPRESSED_BATCH_BYTES,
        require_keys: mode & 2 == 2,
    };
    spool_fuzz::bounded(data, |_| {
        let _ = validate_produced(&batch, &checks);
    });
});
