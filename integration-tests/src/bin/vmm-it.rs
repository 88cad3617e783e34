//! The `vmm` command, built into the integration-test package so that tests can run it as a
//! process (`CARGO_BIN_EXE_vmm-it`). Same code as `vmm`, plus one test aid: with
//! `VMM_IT_HEAP_REPORT=1` it prints its peak heap use on stderr at exit, so that tests can check
//! that floods of guest output or exits leave the monitor's memory flat (exact, unlike RSS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let status = vmm::cli::main();
    if std::env::var_os("VMM_IT_HEAP_REPORT").is_some() {
        eprintln!("vmm-it: peak heap {} bytes", PEAK.load(Ordering::Relaxed));
    }
    std::process::exit(status)
}
