//! What parsing a hostile module image costs in memory: no more than the
//! image itself, whatever its bytes. The image arrives from a guest (up to
//! `MAX_MODULE_IMAGE_LEN`, 512 MiB), so a parser that holds a token per
//! byte or a widened copy of the text multiplies what one request can make
//! the daemon allocate.
//!
//! A counting allocator measures the peak of what this test's own thread
//! holds while the parser runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use protocol::cuda::ImageKind;
use vhost_device_compute::executor::cuda::image::parse;

struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn add(n: usize) {
    let _ = HELD.try_with(|h| {
        let v = h.get() + n;
        h.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn sub(n: usize) {
    let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        sub(layout.size());
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes held by this thread beyond what it held before, while
/// parsing `img` as `kind`.
fn peak_while_parsing(kind: ImageKind, img: &[u8]) -> usize {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let info = parse(kind, img);
    let peak = PEAK.with(Cell::get) - base;
    drop(info);
    peak
}

const MIB: usize = 1 << 20;

#[test]
fn punctuation_does_not_cost_a_token_per_byte() {
    let img = vec![b'('; 16 * MIB];
    let peak = peak_while_parsing(ImageKind::Ptx, &img);
    assert!(peak < img.len(), "parsing 16 MiB of '(' held {peak} bytes");
}

#[test]
fn invalid_utf8_is_not_widened() {
    let mut img = b".version 8.0\n".to_vec();
    img.resize(16 * MIB, 0xff);
    let peak = peak_while_parsing(ImageKind::Ptx, &img);
    assert!(peak < img.len(), "parsing 16 MiB of 0xff held {peak} bytes");
}

#[test]
fn many_kernels_are_recorded_up_to_a_bound() {
    // Kernel entries of a few bytes each: the recorded names cost more
    // than their text, so past a bound they are not recorded.
    let mut img = Vec::new();
    let mut i = 0u32;
    while img.len() < 16 * MIB {
        img.extend_from_slice(format!(".entry k{i:x}()\n").as_bytes());
        i += 1;
    }
    let peak = peak_while_parsing(ImageKind::Ptx, &img);
    assert!(peak < img.len(), "parsing {i} entries held {peak} bytes");
    let mut params = b".entry k(".to_vec();
    while params.len() < 16 * MIB {
        params.extend_from_slice(b".u8 a,");
    }
    params.extend_from_slice(b".u8 a)");
    let peak = peak_while_parsing(ImageKind::Ptx, &params);
    assert!(
        peak < params.len(),
        "a kernel of 2M parameters held {peak} bytes"
    );
}
