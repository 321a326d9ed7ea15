//! The trace file end to end: rings → drainer → file → reader, and what the reader does
//! with damaged files (truncated, corrupted, wrong magic, future version). Damage must
//! give back every record before it and the offset where it broke, never a panic.
#![cfg(not(loom))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use takt::time::{LogicalNs, MonoNs};
use takt::trace::{
    channel, read_all, read_many, spawn_drainer, BreakReason, ClockKind, EventKind, ReadManyError,
    TraceHeader, TraceOpenError, TraceRecord, TraceWriter,
};
use takt::trace::{FORMAT_VERSION, MAGIC};

/// A fresh directory per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("takt-trace-{label}-{}-{n}", std::process::id()));
        // A leftover from an earlier crashed run would only make the test read stale
        // files; start clean.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn header(app: &str) -> TraceHeader {
    let mut h = TraceHeader::new(app, ClockKind::Sim);
    h.manifest_hash = [0x5a; 32];
    h.epoch_ns = 1_000_000_000;
    h.hyperperiod_ns = 100_000_000;
    h.task_names = vec!["radar".into(), "fusion".into(), "control".into()];
    h.topic_names = vec!["objects".into(), "track".into(), "command".into()];
    h.mode_names = vec!["drive".into(), "degraded".into(), "parked".into()];
    h
}

/// A record whose fields are all functions of `(core, job)`, so any mix-up shows.
fn record(core: u8, job: u64) -> TraceRecord {
    let t = 1_000 + job * 1_000 + u64::from(core);
    match job % 4 {
        0 => TraceRecord::release(
            core,
            u32::from(core),
            job,
            LogicalNs(job * 1_000),
            MonoNs(t),
            job * 1_000 + 5,
            200,
        ),
        1 => TraceRecord::start(
            core,
            u32::from(core),
            job,
            LogicalNs(job * 1_000),
            MonoNs(t),
        ),
        2 => TraceRecord::publish(
            core,
            u32::from(core),
            job,
            LogicalNs(job * 1_000),
            MonoNs(t),
            1,
            job,
            t + 500,
        ),
        _ => TraceRecord::end(
            core,
            u32::from(core),
            job,
            LogicalNs(job * 1_000),
            MonoNs(t),
            400,
            7,
        ),
    }
}

/// Writes `chunks` through a `TraceWriter` and finishes the file.
fn write_chunks(path: &Path, chunks: &[Vec<TraceRecord>]) {
    let mut w = TraceWriter::create(path, &header("writer")).expect("create");
    for c in chunks {
        w.write_records(c).expect("write");
    }
    w.finish().expect("finish");
}

fn sample_chunks() -> Vec<Vec<TraceRecord>> {
    (0..6u64)
        .map(|c| (0..20).map(|j| record((c % 2) as u8, c * 20 + j)).collect())
        .collect()
}

#[test]
fn rings_through_the_drainer_read_back_equal() {
    const PER_CORE: u64 = 20_000;
    let dir = TempDir::new("roundtrip");
    let path = dir.file("acc.takttrace");
    let (p0, c0) = channel(1024, 0).unwrap();
    let (p1, c1) = channel(8, 1).unwrap();

    // Fill core 1's tiny ring before anyone drains it, so the file must carry losses.
    let mut pushed1 = Vec::new();
    for job in 0..100 {
        let r = record(1, job);
        if p1.push(r) {
            pushed1.push(r);
        }
    }
    assert_eq!(pushed1.len(), 8);

    let writer = TraceWriter::create(&path, &header("acc")).unwrap();
    let drainer = spawn_drainer(vec![c0, c1], writer, Duration::from_millis(1)).unwrap();
    let core0 = std::thread::spawn(move || {
        let mut pushed = Vec::new();
        for job in 0..PER_CORE {
            let r = record(0, job);
            if p0.push(r) {
                pushed.push(r);
            }
            if job % 256 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (pushed, p0.dropped_total())
    });
    let core1 = std::thread::spawn(move || {
        for job in 100..PER_CORE {
            let r = record(1, job);
            if p1.push(r) {
                pushed1.push(r);
            }
            if job % 4 == 0 {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        (pushed1, p1.dropped_total())
    });
    let (pushed0, dropped0) = core0.join().unwrap();
    let (pushed1, dropped1) = core1.join().unwrap();
    assert!(
        dropped1 >= 92,
        "the pre-filled ring dropped only {dropped1}"
    );
    let summary = drainer
        .stop(Duration::from_secs(30))
        .expect("drainer stops");
    assert_eq!(summary.rings_unfinished, 0);
    assert_eq!(summary.dropped, dropped0 + dropped1);

    let read = read_all(&path).expect("readable");
    assert_eq!(read.error, None, "a finished file reads to its end marker");
    assert_eq!(read.header, header("acc"));
    assert_eq!(read.records.len() as u64, summary.records);
    assert_eq!(read.dropped_total, dropped0 + dropped1);
    for (core, pushed, dropped) in [(0u8, &pushed0, dropped0), (1, &pushed1, dropped1)] {
        let on_core: Vec<TraceRecord> = read
            .records
            .iter()
            .filter(|r| r.core == core && r.kind != EventKind::Dropped as u8)
            .copied()
            .collect();
        assert_eq!(
            &on_core, pushed,
            "core {core}: records differ from what was pushed"
        );
        let lost: u64 = read
            .records
            .iter()
            .filter(|r| r.core == core && r.kind == EventKind::Dropped as u8)
            .map(|r| r.a)
            .sum();
        assert_eq!(
            lost, dropped,
            "core {core}: markers do not add up to the drops"
        );
        assert_eq!(on_core.len() as u64 + lost, PER_CORE);
    }
    // The first loss on core 1 sits right after its 8 buffered records.
    let core1_stream: Vec<&TraceRecord> = read.records.iter().filter(|r| r.core == 1).collect();
    assert_eq!(core1_stream[8].kind(), Ok(EventKind::Dropped));
    assert_eq!(core1_stream[8].job, 8);
    assert_eq!(core1_stream[8].time_ns, record(1, 8).time_ns);
}

#[test]
fn a_file_cut_to_half_gives_the_records_before_the_cut_and_the_offset() {
    let dir = TempDir::new("half");
    let path = dir.file("t");
    let chunks = sample_chunks();
    write_chunks(&path, &chunks);
    let full = read_all(&path).unwrap();
    assert_eq!(full.error, None);
    assert_eq!(full.records, chunks.concat());

    let bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    std::fs::write(&path, &bytes[..half]).unwrap();
    let cut = read_all(&path).unwrap();
    let brk = cut.error.expect("a cut file must report where it broke");
    assert!(full.records.starts_with(&cut.records));
    assert!(!cut.records.is_empty() && cut.records.len() < full.records.len());
    assert!(
        brk.offset <= half as u64,
        "break at {} beyond the cut at {half}",
        brk.offset
    );
    assert!(
        matches!(
            brk.reason,
            BreakReason::Truncated { .. } | BreakReason::MissingEnd
        ),
        "{brk}"
    );
    // Every whole chunk before the cut was read: the break is at the first chunk that
    // does not fit.
    let chunk_bytes = 16 + 20 * 48;
    let header_end = bytes.len() - 16 - chunks.len() * chunk_bytes;
    let whole_chunks = (half - header_end) / chunk_bytes;
    assert_eq!(cut.records.len(), whole_chunks * 20);
    assert_eq!(brk.offset as usize, header_end + whole_chunks * chunk_bytes);
}

#[test]
fn a_flipped_byte_in_the_middle_gives_the_records_before_it_and_the_offset() {
    let dir = TempDir::new("flip");
    let path = dir.file("t");
    let chunks = sample_chunks();
    write_chunks(&path, &chunks);
    let full = read_all(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let read = read_all(&path).unwrap();
    let brk = read.error.expect("a flipped byte must be detected");
    assert!(full.records.starts_with(&read.records));
    assert!(read.records.len() < full.records.len());
    assert!(brk.offset <= mid as u64);
    assert!(matches!(brk.reason, BreakReason::Checksum { .. }), "{brk}");
    assert!(brk.to_string().contains(&brk.offset.to_string()));
}

#[test]
fn a_wrong_magic_is_refused_naming_the_file() {
    let dir = TempDir::new("magic");
    let path = dir.file("not-a-trace.bin");
    write_chunks(&path, &sample_chunks());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(b"PNG\r\n\x1a\n\0");
    std::fs::write(&path, &bytes).unwrap();
    let err = read_all(&path).unwrap_err();
    assert!(matches!(err, TraceOpenError::BadMagic { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("not-a-trace.bin"), "{msg}");
    assert!(msg.contains("TAKTTRC"), "{msg}");

    std::fs::write(&path, b"TAK").unwrap();
    assert!(matches!(
        read_all(&path),
        Err(TraceOpenError::BadMagic { .. })
    ));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        read_all(&path),
        Err(TraceOpenError::BadMagic { .. })
    ));
}

#[test]
fn a_future_version_is_refused_naming_both_versions() {
    let dir = TempDir::new("version");
    let path = dir.file("future.takttrace");
    write_chunks(&path, &sample_chunks());
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], &MAGIC);
    bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = read_all(&path).unwrap_err();
    assert!(
        matches!(err, TraceOpenError::UnsupportedVersion { found: 7, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("future.takttrace"), "{msg}");
    assert!(msg.contains("version 7"), "{msg}");
    assert!(msg.contains(&format!("version {FORMAT_VERSION}")), "{msg}");
}

#[test]
fn a_file_without_the_end_marker_reports_it_after_all_records() {
    let dir = TempDir::new("noend");
    let path = dir.file("t");
    let mut w = TraceWriter::create(&path, &header("writer")).unwrap();
    let records: Vec<TraceRecord> = (0..50).map(|j| record(0, j)).collect();
    w.write_records(&records).unwrap();
    w.flush().unwrap();
    let written = w.bytes_written();
    // Dropped without `finish`, as a crashed writer would leave it.
    drop(w);
    let read = read_all(&path).unwrap();
    assert_eq!(read.records, records);
    let brk = read.error.expect("missing end marker");
    assert_eq!(brk.reason, BreakReason::MissingEnd);
    assert_eq!(brk.offset, written);
}

#[test]
fn a_writer_killed_right_after_create_leaves_a_readable_header_not_an_empty_file() {
    let dir = TempDir::new("killed");
    let path = dir.file("t");
    let w = TraceWriter::create(&path, &header("standby")).unwrap();
    // `kill -9`: no destructor runs, nothing buffered is flushed.
    std::mem::forget(w);
    let read = read_all(&path).expect("the header reached the file at create");
    assert_eq!(read.header.app_name, "standby");
    assert!(read.records.is_empty());
    assert_eq!(
        read.error.expect("no end marker").reason,
        BreakReason::MissingEnd
    );
}

#[test]
fn bytes_after_the_end_marker_are_reported() {
    let dir = TempDir::new("trailing");
    let path = dir.file("t");
    let chunks = sample_chunks();
    write_chunks(&path, &chunks);
    let mut bytes = std::fs::read(&path).unwrap();
    let end = bytes.len() as u64;
    bytes.extend_from_slice(b"junk");
    std::fs::write(&path, &bytes).unwrap();
    let read = read_all(&path).unwrap();
    assert_eq!(read.records, chunks.concat());
    assert_eq!(
        read.error.map(|b| (b.offset, b.reason)),
        Some((end, BreakReason::DataAfterEnd))
    );
}

#[test]
fn a_huge_chunk_length_is_refused_without_allocating_it() {
    let dir = TempDir::new("huge");
    let path = dir.file("t");
    write_chunks(&path, &sample_chunks());
    let full = read_all(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let first_chunk = bytes.len() - 16 - 6 * (16 + 20 * 48);
    bytes[first_chunk..first_chunk + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let read = read_all(&path).unwrap();
    assert!(read.records.is_empty());
    assert_eq!(read.header, full.header);
    let brk = read.error.unwrap();
    assert_eq!(brk.offset, first_chunk as u64);
    assert!(
        matches!(brk.reason, BreakReason::ChunkTooLarge { .. }),
        "{brk}"
    );
}

#[test]
fn files_of_one_run_merge_by_time_and_others_are_refused() {
    let dir = TempDir::new("many");
    let a = dir.file("a");
    let b = dir.file("b");
    let evens: Vec<TraceRecord> = (0..40).step_by(2).map(|j| record(0, j)).collect();
    let odds: Vec<TraceRecord> = (1..40).step_by(2).map(|j| record(0, j)).collect();
    write_chunks(&a, std::slice::from_ref(&evens));
    write_chunks(&b, std::slice::from_ref(&odds));
    let merged = read_many(&[&a, &b]).unwrap();
    let times: Vec<u64> = merged.records.iter().map(|m| m.record.time_ns).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted);
    assert_eq!(merged.records.len(), 40);
    assert!(merged
        .records
        .iter()
        .all(|m| m.file == (m.record.job % 2) as usize));
    assert_eq!(merged.files[1].record_count, 20);

    let c = dir.file("other-run");
    let mut h = header("other");
    h.epoch_ns += 1;
    let mut w = TraceWriter::create(&c, &h).unwrap();
    w.write_records(&odds).unwrap();
    w.finish().unwrap();
    let err = read_many(&[&a, &c]).unwrap_err();
    assert!(
        matches!(
            err,
            ReadManyError::Mismatch {
                field: "epoch_ns",
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("other-run") && msg.contains(&a.display().to_string()),
        "{msg}"
    );

    assert!(matches!(
        read_many::<&Path>(&[]),
        Err(ReadManyError::NoFiles)
    ));
}

/// The file the property tests damage, and what an undamaged read gives.
fn pristine() -> &'static (Vec<u8>, Vec<TraceRecord>) {
    static FILE: OnceLock<(Vec<u8>, Vec<TraceRecord>)> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = TempDir::new("pristine");
        let path = dir.file("t");
        let chunks: Vec<Vec<TraceRecord>> = (0..5u64)
            .map(|c| {
                (0..(3 + c * 2))
                    .map(|j| record(c as u8, c * 100 + j))
                    .collect()
            })
            .collect();
        write_chunks(&path, &chunks);
        (std::fs::read(&path).unwrap(), chunks.concat())
    })
}

fn read_bytes(bytes: &[u8]) -> Result<takt::trace::TraceRead, TraceOpenError> {
    let dir = TempDir::new("prop");
    let path = dir.file("t");
    std::fs::write(&path, bytes).unwrap();
    read_all(&path)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single changed byte is detected, and what is returned is a prefix of the truth.
    #[test]
    fn any_single_byte_flip_is_detected(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (bytes, records) = pristine();
        let mut damaged = bytes.clone();
        let at = pos.index(damaged.len());
        damaged[at] ^= mask;
        if let Ok(read) = read_bytes(&damaged) {
            prop_assert!(read.error.is_some(), "flip at {} undetected", at);
            prop_assert!(records.starts_with(&read.records));
        }
    }

    /// Any truncation is detected and returns a prefix.
    #[test]
    fn any_truncation_is_detected(pos in any::<prop::sample::Index>()) {
        let (bytes, records) = pristine();
        let len = pos.index(bytes.len());
        if let Ok(read) = read_bytes(&bytes[..len]) {
            prop_assert!(read.error.is_some(), "cut at {} undetected", len);
            prop_assert!(records.starts_with(&read.records));
            prop_assert!(read.error.unwrap().offset <= len as u64);
        }
    }

    /// Random damage of every kind at once never panics and never invents records.
    #[test]
    fn random_damage_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (bytes, records) = pristine();
        let mut damaged = bytes.clone();
        for (pos, value) in &flips {
            let at = pos.index(damaged.len());
            damaged[at] = *value;
        }
        if let Some(cut) = cut {
            let len = cut.index(damaged.len());
            damaged.truncate(len);
        }
        if let Ok(read) = read_bytes(&damaged) {
            prop_assert!(read.records.len() <= records.len());
        }
    }

    /// Arbitrary bytes behind a valid preamble never panic either.
    #[test]
    fn garbage_after_the_magic_never_panics(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = read_bytes(&bytes);
    }
}

/// Format 4 only adds the `Fault` kind: a version-3 file (same header and chunks) is still
/// read, record for record, and a version-4 file carries `Fault` records intact.
#[test]
fn a_version_3_file_is_still_read_and_fault_records_round_trip() {
    let dir = TempDir::new("v3");
    let path = dir.file("t");
    let fault = TraceRecord::fault(0, 1, 7, LogicalNs(70), MonoNs(75), 513, 3);
    let mut chunks = sample_chunks();
    chunks.push(vec![fault]);
    write_chunks(&path, &chunks);
    let read = read_all(&path).unwrap();
    assert_eq!(read.records.last(), Some(&fault));
    assert_eq!(
        fault.event(),
        Ok(takt::trace::TraceEvent::Fault {
            code: 513,
            reports: 3
        })
    );

    let old = dir.file("old");
    write_chunks(&old, &sample_chunks());
    let mut bytes = std::fs::read(&old).unwrap();
    assert_eq!(&bytes[8..10], &FORMAT_VERSION.to_le_bytes());
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    std::fs::write(&old, &bytes).unwrap();
    let read = read_all(&old).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.error, None);
    assert_eq!(read.records, sample_chunks().concat());
}
