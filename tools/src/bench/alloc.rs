//! The counting allocator `takt bench` reads: the runtime's (`takt::alloc_count`), installed
//! as the global allocator in `main.rs`.

pub use takt::alloc_count::{allocated_bytes, allocations, Counting};
