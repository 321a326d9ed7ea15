//! Deployment manifest: TOML text → validated [`Deployment`]. (being written)
pub mod model;
pub use model::*;
