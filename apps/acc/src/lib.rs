#![deny(unsafe_code)]
//! ACC demo (being written).
use takt::task::Registry;

/// Every task implementation and message type of the ACC demo.
pub fn registry() -> Registry {
    Registry::new()
}
