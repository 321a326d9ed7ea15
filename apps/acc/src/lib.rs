#![deny(unsafe_code)]
//! ACC demo (being written)
