//! Fuzz checks of the trace file reader.
//!
//! Owns: the properties every byte string must satisfy when `takt::trace` reads it as a
//! trace file, and [`repair_checksums`], which lets mutations reach the decoders behind
//! the checksums. It must never hide a panic of the reader (no `catch_unwind`) and never
//! leave its scratch file behind after a check that did not panic.
//!
//! The reader is file-path based, so each input is written to one scratch file on tmpfs
//! (`/dev/shm`) and read from there; that costs a few microseconds per input. An
//! in-memory entry point would have to share `trace::reader`'s private decoding code, which
//! means changing that module; the scratch file exercises exactly the code `takt trace`
//! runs, buffered reads included.
//!
//! Properties, besides "no panic":
//! * [`takt::trace::read_all`] and [`takt::trace::TraceReader::next_chunk`] called by
//!   hand agree on the header, every record and where the file broke, and a reader that
//!   stopped stays stopped;
//! * a break lies inside the file; a file read without a break has exactly the size its
//!   preamble, header, chunks and end marker add up to;
//! * [`takt::trace::read_many`] of the file twice holds every record twice, in time order;
//! * a file refused at open is refused the same way by every entry point.
//!
//! Every input is checked twice: as it is, and with its checksums repaired. FNV-1a
//! checksums guard the header and every chunk, so almost every random mutation of a
//! real trace breaks a checksum and stops the reader before it decodes anything;
//! the repaired copy gets the mutation past them, into the header and record decoders.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use takt::trace::{FORMAT_VERSION, MAGIC, MAX_CHUNK_BYTES, MAX_HEADER_BYTES};
use takt::trace::record::RECORD_BYTES;
use takt::trace::{read_all, read_many, TraceReader, TraceRecord};

/// Magic, version, header length, header checksum.
const PREAMBLE_BYTES: usize = 8 + 2 + 4 + 8;
/// Payload length, record count, checksum.
const FRAME_BYTES: usize = 4 + 4 + 8;

/// Checks `bytes` as a trace file, and again with its checksums repaired when that
/// changes anything.
pub fn check_trace(bytes: &[u8]) {
    check_file(bytes);
    let repaired = repair_checksums(bytes);
    if repaired != bytes {
        check_file(&repaired);
    }
}

/// `bytes` with the magic and version set and the header and chunk checksums recomputed,
/// as far as the framing can be followed: the header when its length fits the input,
/// then each chunk whose length, count and payload fit, up to the end marker.
pub fn repair_checksums(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() < PREAMBLE_BYTES {
        return out;
    }
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let header_len = le_u32(&out[10..14]) as usize;
    if header_len > MAX_HEADER_BYTES || PREAMBLE_BYTES + header_len > out.len() {
        return out;
    }
    let sum = fnv1a64(&[
        &out[10..14],
        &out[PREAMBLE_BYTES..PREAMBLE_BYTES + header_len],
    ]);
    out[14..22].copy_from_slice(&sum.to_le_bytes());
    let mut at = PREAMBLE_BYTES + header_len;
    while at + FRAME_BYTES <= out.len() {
        let len = le_u32(&out[at..at + 4]) as usize;
        let count = le_u32(&out[at + 4..at + 8]) as usize;
        let payload = at + FRAME_BYTES;
        if len > MAX_CHUNK_BYTES || len != count * RECORD_BYTES || payload + len > out.len() {
            break;
        }
        let sum = fnv1a64(&[
            &out[at..at + 4],
            &out[at + 4..at + 8],
            &out[payload..payload + len],
        ]);
        out[at + 8..at + 16].copy_from_slice(&sum.to_le_bytes());
        at = payload + len;
        if count == 0 {
            break;
        }
    }
    out
}

/// FNV-1a, 64 bit, over the concatenation of `parts`: the trace format's checksum, as
/// documented in `runtime/src/trace/format.rs` (the runtime keeps its own private).
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The directory of the scratch files: `$TAKT_FUZZ_SCRATCH`, else `/dev/shm` (tmpfs, so
/// fuzzing does not wear a disk), else the system temporary directory.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("TAKT_FUZZ_SCRATCH") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

fn check_file(bytes: &[u8]) {
    // One file per process: parallel fuzzer instances never share one, and AFL++ runs
    // one input at a time per process.
    let path = scratch_dir().join(format!("takt-fuzz-trace-{}.takt", std::process::id()));
    // The harness's own environment, not the code under test: without a writable scratch
    // directory no input can be checked at all, so stopping loudly is right.
    fs::write(&path, bytes).expect("the fuzz scratch directory is writable");
    check_read(&path, bytes.len() as u64);
    // Best effort: a file left behind is overwritten by the next input anyway.
    let _ = fs::remove_file(&path);
}

fn check_read(path: &Path, file_len: u64) {
    let whole = match read_all(path) {
        Ok(read) => read,
        Err(refusal) => {
            let text = refusal.to_string();
            assert!(!text.is_empty());
            let by_hand = TraceReader::open(path)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(
                by_hand,
                Err(text.clone()),
                "TraceReader::open and read_all disagree on refusing the file"
            );
            match read_many(&[path]) {
                Ok(_) => panic!("read_many accepts a file read_all refuses ({text})"),
                Err(e) => assert_eq!(e.to_string(), text, "read_many refuses differently"),
            }
            return;
        }
    };

    let mut reader = match TraceReader::open(path) {
        Ok(reader) => reader,
        Err(e) => panic!("TraceReader::open refuses a file read_all read: {e}"),
    };
    assert_eq!(
        reader.header(),
        &whole.header,
        "the two readers decode different headers"
    );
    let mut records: Vec<TraceRecord> = Vec::new();
    let mut chunks = 0u64;
    let stop = loop {
        let before = records.len();
        match reader.next_chunk(&mut records) {
            Ok(Some(n)) => {
                assert!(n > 0, "a chunk of records holds none");
                assert_eq!(
                    records.len() - before,
                    n,
                    "next_chunk miscounts its records"
                );
                chunks += 1;
            }
            Ok(None) => break None,
            Err(b) => {
                assert_eq!(records.len(), before, "a broken chunk left records behind");
                break Some(b);
            }
        }
    };
    assert_eq!(
        reader.next_chunk(&mut records),
        Ok(None),
        "a reader that stopped reads on"
    );
    assert_eq!(
        records, whole.records,
        "read_all and next_chunk read different records"
    );
    assert_eq!(
        stop, whole.error,
        "read_all and next_chunk break differently"
    );

    let header_len = whole_header_len(path);
    let record_bytes = whole.records.len() as u64 * RECORD_BYTES as u64;
    match &whole.error {
        Some(b) => {
            assert!(
                b.offset <= file_len,
                "the break at byte {} lies past the end of a {file_len}-byte file ({b})",
                b.offset
            );
            assert!(!b.to_string().is_empty());
        }
        None => {
            let expected = PREAMBLE_BYTES as u64
                + header_len
                + chunks * FRAME_BYTES as u64
                + record_bytes
                + FRAME_BYTES as u64;
            assert_eq!(
                file_len, expected,
                "a file read without a break is not exactly preamble + header + chunks + end marker"
            );
        }
    }

    match read_many(&[path, path]) {
        Ok(many) => {
            assert_eq!(many.files.len(), 2);
            assert_eq!(many.records.len(), 2 * whole.records.len());
            assert!(
                many.records
                    .windows(2)
                    .all(|w| w[0].record.time_ns <= w[1].record.time_ns),
                "read_many's records are not in time order"
            );
            for file in &many.files {
                assert_eq!(file.record_count, whole.records.len());
                assert_eq!(file.error, whole.error);
            }
        }
        Err(e) => panic!("read_many refuses two copies of a file read_all read: {e}"),
    }
}

/// The header length field of a file the reader opened (so it has a full preamble).
fn whole_header_len(path: &Path) -> u64 {
    let bytes = fs::read(path).expect("the scratch file written just before is readable");
    u64::from(le_u32(&bytes[10..14]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_40MS: &[u8] = include_bytes!("../seeds/trace/acc-40ms.takt");
    const SEED_200MS: &[u8] = include_bytes!("../seeds/trace/acc-200ms.takt");

    fn read(bytes: &[u8]) -> takt::trace::TraceRead {
        let path = scratch_dir().join(format!("takt-fuzz-test-{}.takt", std::process::id()));
        fs::write(&path, bytes).unwrap();
        let read = read_all(&path);
        let _ = fs::remove_file(&path);
        read.unwrap()
    }

    #[test]
    fn the_seeds_are_complete_traces_of_the_current_format() {
        // Fails when the format changes: regenerate the seeds (see README.md).
        for seed in [SEED_40MS, SEED_200MS] {
            let r = read(seed);
            assert_eq!(r.error, None);
            assert!(!r.records.is_empty());
            assert_eq!(r.header.task_names.len(), 7);
            check_trace(seed);
        }
    }

    #[test]
    fn repair_leaves_a_valid_trace_unchanged() {
        assert_eq!(repair_checksums(SEED_40MS), SEED_40MS);
        assert_eq!(repair_checksums(SEED_200MS), SEED_200MS);
    }

    #[test]
    fn repair_gets_a_changed_record_past_the_checksum() {
        let mut bytes = SEED_40MS.to_vec();
        // The last byte of the last record, right before the 16-byte end marker.
        let at = bytes.len() - FRAME_BYTES - 1;
        bytes[at] ^= 0x01;
        assert!(matches!(
            read(&bytes).error.map(|b| b.reason),
            Some(takt::trace::BreakReason::Checksum { .. })
        ));
        let fixed = read(&repair_checksums(&bytes));
        assert_eq!(fixed.error, None);
        assert_eq!(fixed.records.len(), read(SEED_40MS).records.len());
    }

    #[test]
    fn damaged_and_random_inputs_pass_the_checks() {
        check_trace(b"");
        check_trace(b"TAKTTRC\0");
        check_trace(b"TAKTTRC\0\x01\x00\xff\xff\xff\xff");
        check_trace(&[0u8; 64]);
        for cut in [10, 22, 23, 100, SEED_40MS.len() / 2, SEED_40MS.len() - 1] {
            check_trace(&SEED_40MS[..cut]);
        }
        let mut bytes = SEED_40MS.to_vec();
        bytes.extend_from_slice(b"trailing");
        check_trace(&bytes);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200 {
            let mut bytes = SEED_40MS.to_vec();
            for _ in 0..(1 + i % 8) {
                // xorshift64: a fixed sequence, so a failure reproduces.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % bytes.len();
                bytes[at] = (state >> 32) as u8;
            }
            check_trace(&bytes);
        }
    }
}
