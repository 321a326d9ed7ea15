//! Reading headers of older trace formats.
//!
//! Owns: the header layouts of superseded format versions (today only version 1, whose
//! header ends before `mode_tasks`) and their conversion into the current [`TraceHeader`],
//! behind [`decode_header`], the one place the reader asks "which header layout does this
//! version use". It must never write an old format (except the version-1 test fixtures),
//! and must never touch files: it decodes bytes the reader has already checked.

use super::format::{ChainInfo, ClockKind, TaskInfo, TraceHeader, WIRE};

/// The header of format version 1: [`TraceHeader`] without `mode_tasks`. Only decoded
/// (and, in tests, encoded to make version-1 files).
#[derive(bincode::Decode)]
#[cfg_attr(test, derive(bincode::Encode))]
pub(super) struct HeaderV1 {
    pub(super) takt_version: String,
    pub(super) manifest_hash: [u8; 32],
    pub(super) epoch_ns: u64,
    pub(super) clock: ClockKind,
    pub(super) app_name: String,
    pub(super) hyperperiod_ns: u64,
    pub(super) task_names: Vec<String>,
    pub(super) topic_names: Vec<String>,
    pub(super) mode_names: Vec<String>,
    pub(super) tasks: Vec<TaskInfo>,
    pub(super) chains: Vec<ChainInfo>,
}

impl From<HeaderV1> for TraceHeader {
    fn from(h: HeaderV1) -> Self {
        TraceHeader {
            takt_version: h.takt_version,
            manifest_hash: h.manifest_hash,
            epoch_ns: h.epoch_ns,
            clock: h.clock,
            app_name: h.app_name,
            hyperperiod_ns: h.hyperperiod_ns,
            task_names: h.task_names,
            topic_names: h.topic_names,
            mode_names: h.mode_names,
            tasks: h.tasks,
            chains: h.chains,
            mode_tasks: None,
        }
    }
}

/// Decodes the header `body` of a file of format `version` (already checked to be one this
/// takt reads) into the current header; returns the header and the bytes it used.
pub(super) fn decode_header(
    version: u16,
    body: &[u8],
) -> Result<(TraceHeader, usize), bincode::error::DecodeError> {
    if version == 1 {
        bincode::decode_from_slice::<HeaderV1, _>(body, WIRE)
            .map(|(h, used)| (TraceHeader::from(h), used))
    } else {
        bincode::decode_from_slice::<TraceHeader, _>(body, WIRE)
    }
}
