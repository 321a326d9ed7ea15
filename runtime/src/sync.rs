//! The crate-local sync facade: every atomic and every shared cell takt uses comes from here.
//!
//! Under `cfg(loom)` these are loom's model-checked types, otherwise std's. Any lock-free
//! structure takt writes imports its atomics and cells from this module and nowhere else, so
//! every one of them can be model-checked by building with `RUSTFLAGS="--cfg loom"`.
//!
//! [`UnsafeCell`] follows loom's API (`with` / `with_mut` taking a closure over a raw
//! pointer) rather than std's `get()`: loom can only check accesses it sees begin and end, so
//! the std build wraps std's cell in the same closure API and costs nothing more.

#[cfg(loom)]
pub use loom::cell::UnsafeCell;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::Arc;

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::Arc;

/// std's `UnsafeCell` behind loom's closure API, so lock-free code compiles unchanged under
/// both builds. It adds no synchronisation: callers keep the aliasing rules themselves and
/// say why in a `// SAFETY:` comment where they dereference the pointer.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    /// Consumes the cell and returns the contents.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}
