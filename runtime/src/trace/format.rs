//! The trace file's format: its layout, limits, checksum, wire encoding and header.
//!
//! Owns: the constants of the layout below ([`MAGIC`], [`FORMAT_VERSION`], the size
//! limits), the one bincode configuration both sides encode with, the FNV-1a checksum, and
//! the header types ([`TraceHeader`] and what it carries). Writer, reader, drainer, merge
//! and migration build on it; it must never do I/O itself, and nothing here may change
//! without a new format version.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "TAKTTRC\0"
//! 8       2     format version (u16) = 4 (versions 1 to 3 are still read, see below)
//! 10      4     header length H (u32), at most MAX_HEADER_BYTES
//! 14      8     header checksum (u64, FNV-1a over the length field and the header bytes)
//! 22      H     header: TraceHeader, bincode 2 (fixed-width little-endian integers)
//! then chunks, each:
//!         4     payload length L (u32), at most MAX_CHUNK_BYTES, = count * 48
//!         4     record count (u32), at most MAX_CHUNK_RECORDS
//!         8     checksum (u64, FNV-1a over the length, count and payload bytes)
//!         L     records, bincode 2 with the same config, 48 bytes each
//! then the end marker: a chunk with L = 0 and count = 0, written by `finish`.
//! ```
//!
//! The version sits right after the magic in a fixed place, so a reader can refuse a
//! future format before it tries to decode anything. The end marker tells a finished file
//! from one cut exactly at a chunk boundary (crash, full disk, truncation). FNV-1a detects
//! every single changed byte in a chunk, which is the damage the reader must never miss;
//! it is no defence against deliberate tampering and is not meant to be.
//!
//!
//! # Versions
//!
//! * 1: the header ends with `chains`.
//! * 2: the header gains `mode_tasks` at its end (which tasks each mode releases and the
//!   mode at cycle 0), so tools can tell a missed release from a task that is not in the
//!   active mode. Chunks and records are unchanged. A version-1 file is still read; its
//!   header then has `mode_tasks: None`.
//! * 3: records carry the attribution of every miss (see `record`): `End` gains the job's
//!   off-CPU time in `b`, `Overrun` and `Skip` the attribution in `aux`, and the new kind
//!   `Miss` (11) marks a job that ended after its LET deadline. The header and the chunk
//!   layout are those of version 2, so versions 2 and 3 decode alike; in an older file
//!   these fields are 0, which tools show as "not attributed".
//! * 4: the new kind `Fault` (12) marks a job that reported a fault (`StepContext::fault`),
//!   with its first code and its count of reports. Nothing else changes, so versions 2 to 4
//!   decode alike; an older file simply has no `Fault` records (tools show 0 faults).

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};

use super::record::RECORD_BYTES;
pub use crate::time::ClockKind;

/// The first eight bytes of every takt trace file.
pub const MAGIC: [u8; 8] = *b"TAKTTRC\0";
/// The format version this takt writes (and the newest it reads).
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this takt still reads.
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Largest header the reader accepts (names of every task, topic and mode fit easily).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Most records in one chunk; the writer splits larger batches.
pub const MAX_CHUNK_RECORDS: usize = 1 << 16;
/// Largest chunk payload the reader accepts, so one chunk never allocates more than 3 MiB.
pub const MAX_CHUNK_BYTES: usize = MAX_CHUNK_RECORDS * RECORD_BYTES;

/// Magic, version, header length and header checksum.
pub(super) const PREAMBLE_BYTES: usize = 8 + 2 + 4 + 8;
/// A chunk's length, record count and checksum.
pub(super) const FRAME_BYTES: usize = 4 + 4 + 8;

type WireConfig = Configuration<LittleEndian, Fixint, Limit<MAX_HEADER_BYTES>>;

/// The one bincode configuration of the format. Spelled out rather than taken from
/// `standard()` so a change of bincode's defaults cannot change the file layout; the limit
/// bounds what decoding may allocate whatever a length prefix claims.
pub(super) const WIRE: WireConfig = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_HEADER_BYTES>();

/// FNV-1a, 64 bit, over the concatenation of `parts`.
pub(super) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Everything a reader needs to label records without the manifest.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TraceHeader {
    /// Version of the takt that wrote the file.
    pub takt_version: String,
    /// Hash of the deployment manifest; files of one deployment agree on it.
    pub manifest_hash: [u8; 32],
    /// The deployment's epoch on the clock, nanoseconds.
    pub epoch_ns: u64,
    pub clock: ClockKind,
    /// The process (app) that wrote the file.
    pub app_name: String,
    pub hyperperiod_ns: u64,
    /// Task names, indexed by a record's `task`.
    pub task_names: Vec<String>,
    /// Topic (port) names, indexed by the port id of `Publish` and `Read` records.
    pub topic_names: Vec<String>,
    /// Mode names, indexed by the modes of `ModeSwitch` records.
    pub mode_names: Vec<String>,
    /// Per task (same index as `task_names`): its timing and core, so tools can compute
    /// deadlines and utilization without the manifest.
    pub tasks: Vec<TaskInfo>,
    /// The deployment's declared cause-effect chains with the plan's analytic bounds.
    pub chains: Vec<ChainInfo>,
    /// Which tasks each mode releases and the mode at cycle 0 (format 2). `None` in a
    /// format-1 file, or when the writer did not know the plan; tools then infer the
    /// expected releases from the records.
    pub mode_tasks: Option<ModeTasks>,
}

/// The release pattern of every mode, as the plan's tables have it: in each hyperperiod
/// cycle of mode `m`, every task in `tasks[m]` is released once per period (job indices
/// `cycle * hyperperiod / period ..` up to the next cycle's first), every other task not at
/// all. Mode switches take effect only at cycle starts, so this and the `ModeSwitch`
/// records give every release a run owes.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ModeTasks {
    /// The mode active at cycle 0 (index into `mode_names`).
    pub default_mode: u64,
    /// Per mode (same index as `mode_names`): the task indices its tables release, ascending.
    pub tasks: Vec<Vec<u32>>,
}

impl ModeTasks {
    /// Whether mode `mode` releases task `task`; `None` for a mode it does not describe.
    pub fn releases(&self, mode: u64, task: u32) -> Option<bool> {
        let set = usize::try_from(mode).ok().and_then(|m| self.tasks.get(m))?;
        Some(set.binary_search(&task).is_ok())
    }
}

/// A task's timing as the plan used it.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TaskInfo {
    pub core: u32,
    pub period_ns: u64,
    pub offset_ns: u64,
    pub budget_ns: u64,
    pub let_ns: u64,
}

/// A declared cause-effect chain: `tasks[i]` writes `ports[i]`, which `tasks[i + 1]` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ChainInfo {
    pub name: String,
    /// Task indices, sensor end first.
    pub tasks: Vec<u32>,
    /// Port ids linking consecutive tasks (`tasks.len() - 1` of them).
    pub ports: Vec<u16>,
    /// The plan's analytic bounds (see `plan::ChainBound`); 0 when the chain is active in no mode.
    pub max_data_age_ns: u64,
    pub max_reaction_ns: u64,
}

impl TraceHeader {
    /// A header for `app_name` written by this takt; the caller fills in the rest.
    pub fn new(app_name: impl Into<String>, clock: ClockKind) -> Self {
        TraceHeader {
            takt_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest_hash: [0; 32],
            epoch_ns: 0,
            clock,
            app_name: app_name.into(),
            hyperperiod_ns: 0,
            task_names: Vec::new(),
            topic_names: Vec::new(),
            mode_names: Vec::new(),
            tasks: Vec::new(),
            chains: Vec::new(),
            mode_tasks: None,
        }
    }

    /// Name of task index `task`, if the header has it.
    pub fn task_name(&self, task: u32) -> Option<&str> {
        self.task_names.get(task as usize).map(String::as_str)
    }

    /// Name of port id `port`, if the header has it.
    pub fn topic_name(&self, port: u16) -> Option<&str> {
        self.topic_names.get(usize::from(port)).map(String::as_str)
    }

    /// Name of mode index `mode`, if the header has it.
    pub fn mode_name(&self, mode: u64) -> Option<&str> {
        usize::try_from(mode)
            .ok()
            .and_then(|m| self.mode_names.get(m))
            .map(String::as_str)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::time::{LogicalNs, MonoNs};
    use crate::trace::record::{EventKind, TraceRecord};

    #[test]
    fn a_record_encodes_to_its_48_byte_memory_layout() {
        let rec = TraceRecord::publish(
            3,
            0x0102_0304,
            7,
            LogicalNs(100),
            MonoNs(200),
            0xabcd,
            9,
            300,
        );
        let mut buf = [0u8; 64];
        let n = bincode::encode_into_slice(rec, &mut buf, WIRE).unwrap();
        assert_eq!(n, RECORD_BYTES);
        assert_eq!(buf[0], EventKind::Publish as u8);
        assert_eq!(buf[1], 3);
        assert_eq!(&buf[2..4], &0xabcdu16.to_le_bytes());
        assert_eq!(&buf[4..8], &0x0102_0304u32.to_le_bytes());
        assert_eq!(&buf[8..16], &200u64.to_le_bytes());
        assert_eq!(&buf[16..24], &100u64.to_le_bytes());
        assert_eq!(&buf[24..32], &7u64.to_le_bytes());
        assert_eq!(&buf[32..40], &9u64.to_le_bytes());
        assert_eq!(&buf[40..48], &300u64.to_le_bytes());
        let (back, used): (TraceRecord, usize) =
            bincode::decode_from_slice(&buf[..n], WIRE).unwrap();
        assert_eq!((back, used), (rec, RECORD_BYTES));
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

    #[test]
    fn header_round_trips_and_names_resolve() {
        let mut h = TraceHeader::new("acc", ClockKind::Sim);
        h.task_names = vec!["radar".into(), "control".into()];
        h.topic_names = vec!["objects".into()];
        h.mode_names = vec!["drive".into(), "parked".into()];
        h.manifest_hash = [7; 32];
        h.mode_tasks = Some(ModeTasks {
            default_mode: 1,
            tasks: vec![vec![0, 1], vec![1]],
        });
        let bytes = bincode::encode_to_vec(&h, WIRE).unwrap();
        let (back, _): (TraceHeader, usize) = bincode::decode_from_slice(&bytes, WIRE).unwrap();
        assert_eq!(back, h);
        let modes = back.mode_tasks.as_ref().unwrap();
        assert_eq!(modes.releases(0, 0), Some(true));
        assert_eq!(modes.releases(1, 0), Some(false));
        assert_eq!(modes.releases(2, 0), None);
        assert_eq!(h.task_name(1), Some("control"));
        assert_eq!(h.task_name(2), None);
        assert_eq!(h.topic_name(0), Some("objects"));
        assert_eq!(h.mode_name(1), Some("parked"));
        assert_eq!(h.mode_name(u64::MAX), None);
    }

    #[test]
    fn a_header_claiming_a_huge_name_list_is_refused_without_allocating_it() {
        // A length prefix of 2^60 names: the decoder must refuse it by the limit rather
        // than try to reserve it.
        let mut h = TraceHeader::new("x", ClockKind::Real);
        h.mode_names = vec!["m".into()];
        let mut bytes = bincode::encode_to_vec(&h, WIRE).unwrap();
        // The header ends with the mode list (its u64 length prefix, then the single name as
        // a u64 length 1 and the byte 'm'), the empty task and chain lists (a u64 length
        // each) and `mode_tasks: None` (one tag byte).
        let at = bytes.len() - (8 + 8 + 1 + 8 + 8 + 1);
        assert_eq!(&bytes[at..at + 8], &1u64.to_le_bytes());
        assert_eq!(bytes[at + 16], b'm');
        bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let decoded: Result<(TraceHeader, usize), _> = bincode::decode_from_slice(&bytes, WIRE);
        assert!(decoded.is_err());
    }
}
