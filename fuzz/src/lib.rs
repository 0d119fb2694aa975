//! What the fuzz targets share: an allocator that aborts on any single allocation larger than
//! a bound derived from the input, so that a length or count taken from the input without
//! checking it against the bytes that remain is a crash the fuzzer reports.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allowed beyond the multiple of the input: fixed-size decoder state (zstd's window of up to
/// 8 MiB, lz4's blocks of up to 4 MiB, read buffers).
pub const FIXED_BYTES: usize = 16 << 20;
/// Allowed per input byte.
pub const PER_INPUT_BYTE: usize = 64;

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The system allocator with a per-input bound on any one allocation.
pub struct Bounded;

fn check(size: usize) {
    let limit = LIMIT.load(Ordering::Relaxed);
    if size > limit {
        LIMIT.store(usize::MAX, Ordering::Relaxed);
        eprintln!("allocation of {size} bytes exceeds the bound of {limit} for this input");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bound only decides
// whether to abort before forwarding.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` on `input` with the allocation bound in force.
pub fn bounded(input: &[u8], f: impl FnOnce(&[u8])) {
    LIMIT.store(
        FIXED_BYTES.saturating_add(input.len().saturating_mul(PER_INPUT_BYTE)),
        Ordering::Relaxed,
    );
    f(input);
    LIMIT.store(usize::MAX, Ordering::Relaxed);
}
