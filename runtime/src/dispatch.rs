//! Dispatcher. (being written)
