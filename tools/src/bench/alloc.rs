//! The counting allocator `takt bench` reads: the runtime's (`takt::alloc_count`), installed
//! as the global allocator in `main.rs` only in a test build (`COUNTING`).

pub use takt::alloc_count::{allocated_bytes, allocations, COUNTING};
