//! A global allocator that remembers the largest single allocation made on
//! each thread, so a test can assert that no allocation was sized by a
//! corrupt header rather than by the bytes actually present.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Wraps the system allocator; install with `#[global_allocator]`.
pub struct Tracking;

/// Above this size, while a measurement is running, the allocation is
/// refused (the process aborts with "memory allocation of N bytes failed")
/// instead of taking the shared machine's memory.
const HARD_CAP: usize = 4 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size)
        }
    });
    !(size > HARD_CAP && MEASURING.try_with(|m| m.get()).unwrap_or(false))
}

// SAFETY: every call is forwarded unchanged to `System`; only sizes are noted.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation (in
/// bytes) that this thread made while it ran.
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|c| c.set(0));
    MEASURING.with(|m| m.set(true));
    let r = f();
    MEASURING.with(|m| m.set(false));
    (r, LARGEST.with(|c| c.get()))
}
