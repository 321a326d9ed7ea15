//! A counting global allocator, for evidence that the dispatch hot path allocates nothing.
//!
//! Owns: two process-wide counters, heap allocations and bytes requested, that a binary
//! installs with `#[global_allocator] static A: takt::alloc_count::Counting = Counting;` and
//! reads before and after the steady state of a run (`takt bench` does, to report
//! allocations per job). It must never change what the system allocator does: every call is
//! forwarded unchanged, and counting is two relaxed atomic adds, with no allocation, lock or
//! syscall of its own. It lives in the runtime because implementing `GlobalAlloc` is
//! `unsafe`, and takt keeps every `unsafe` here.
//!
//! A test hook (issue #12.11): it counts only with the `test-hooks` feature, which only
//! dev-dependencies enable. Without it [`Counting`] forwards without counting, [`COUNTING`]
//! is false, and [`counting_allocator!`](crate::counting_allocator) installs nothing, so a
//! shipped `takt` binary runs on the system allocator itself.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to [`System`], counting every allocation and reallocation (with `test-hooks`).
pub struct Counting;

/// Whether this build counts allocations (the `test-hooks` feature).
pub const COUNTING: bool = cfg!(feature = "test-hooks");

/// Installs [`Counting`] as the global allocator of the binary that invokes it, when the
/// runtime is built with `test-hooks`; expands to nothing otherwise.
#[cfg(feature = "test-hooks")]
#[macro_export]
macro_rules! counting_allocator {
    () => {
        #[global_allocator]
        static TAKT_COUNTING_ALLOCATOR: $crate::alloc_count::Counting =
            $crate::alloc_count::Counting;
    };
}

/// Installs [`Counting`] as the global allocator of the binary that invokes it, when the
/// runtime is built with `test-hooks`; expands to nothing otherwise.
#[cfg(not(feature = "test-hooks"))]
#[macro_export]
macro_rules! counting_allocator {
    () => {};
}

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    // `const` initialization: no lazy setup, so touching them never allocates itself.
    static THREAD_ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    // The largest single request and the bytes requested by this thread since the last
    // `watch` began (see [`watch`]).
    static THREAD_LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static THREAD_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count(bytes: usize) {
    if !COUNTING {
        return;
    }
    // Relaxed: the counters order nothing else. A reader compares two readings taken on
    // one thread, or readings handed over through a join or a channel, which order them.
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    // `try_with`: during thread teardown the slot may be gone; such allocations count only
    // process-wide.
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = THREAD_LARGEST.try_with(|c| c.set(c.get().max(bytes)));
    let _ = THREAD_BYTES.try_with(|c| c.set(c.get().saturating_add(bytes)));
}

/// What the calling thread requested from the heap while [`watch`] ran its closure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watched {
    /// The largest single allocation or reallocation, in bytes.
    pub largest: usize,
    /// Bytes requested by all of them together.
    pub bytes: usize,
}

/// Runs `f` and returns its result with what this thread allocated meanwhile: evidence
/// that code bounds its allocations by what it checked, not by what its input claims (the
/// OTA delta tests use it on hostile patches). Other threads' allocations are not counted.
/// Without `test-hooks` ([`COUNTING`] false) the figures are 0: callers must check
/// [`COUNTING`] before they conclude anything from them.
pub fn watch<T>(f: impl FnOnce() -> T) -> (T, Watched) {
    THREAD_LARGEST.with(|c| c.set(0));
    THREAD_BYTES.with(|c| c.set(0));
    let r = f();
    let w = Watched {
        largest: THREAD_LARGEST.with(std::cell::Cell::get),
        bytes: THREAD_BYTES.with(std::cell::Cell::get),
    };
    (r, w)
}

/// Heap allocations made by the calling thread so far (tests that run beside other tests
/// count their own thread only).
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.try_with(|c| c.get()).unwrap_or(0)
}

// SAFETY: every method forwards its arguments unchanged to the system allocator and returns
// its result unchanged, so `Counting` keeps exactly the contract `System` keeps. Counting
// only touches two static atomics; it neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap allocations (including reallocations) since the process started, all threads.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes requested by those allocations.
pub fn allocated_bytes() -> u64 {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}

// The library's own unit-test binary installs the counter, so the test below exercises the
// same code a `takt` binary runs.
#[cfg(all(test, not(loom), feature = "test-hooks"))]
#[global_allocator]
static TEST_ALLOCATOR: Counting = Counting;

#[cfg(all(test, not(loom), feature = "test-hooks"))]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_is_counted() {
        let before = (allocations(), allocated_bytes());
        let v: Vec<u8> = Vec::with_capacity(4096);
        std::hint::black_box(&v);
        assert!(allocations() > before.0);
        assert!(allocated_bytes() >= before.1 + 4096);
    }

    #[test]
    fn watch_sees_this_threads_largest_request_and_its_total() {
        let (_, w) = watch(|| {
            let a: Vec<u8> = Vec::with_capacity(100);
            let b: Vec<u8> = Vec::with_capacity(5000);
            std::hint::black_box((&a, &b));
        });
        assert!(w.largest >= 5000, "{w:?}");
        assert!(w.bytes >= 5100, "{w:?}");
        // Another thread's allocation is not this thread's.
        let (_, w) = watch(|| {
            std::thread::spawn(|| std::hint::black_box(Vec::<u8>::with_capacity(1 << 20)))
                .join()
                .unwrap();
        });
        assert!(w.largest < 1 << 20, "{w:?}");
    }
}
