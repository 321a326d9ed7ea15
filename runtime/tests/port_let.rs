//! LET visibility and zero-copy behaviour of takt's ports over real iceoryx2 shared memory.
//!
//! Every test uses its own deployment name (pid + test name), so tests running in parallel,
//! and earlier runs, never share a service.

use std::sync::mpsc;
use std::time::Duration;

use takt::port::{Message, PortNode, PortOpenError, Reader, Sizing, Writer};
use takt::time::JobTime;

const MS: u64 = 1_000_000;

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Track {
        pub range_m: f64,
        pub speed_mps: f64,
        pub id: u32,
        pub flags: u32,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Small {
        pub value: u32,
    }
}

takt::message! {
    /// A 4 MiB camera-like frame (nested arrays: bytemuck has `Pod` for these lengths).
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Frame {
        pub rows: [[u8; 4096]; 1024],
    }
}
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame(4 MiB)")
    }
}

fn deployment(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// A writer job whose LET window ends at `deadline_ns`.
/// The writer job of the test's sample number `k` (1 for the first): job index `k - 1`,
/// as the dispatcher numbers jobs from 0, so the writer numbers the sample `k`.
fn wjob(deadline_ns: u64, k: u64) -> JobTime {
    JobTime {
        release_ns: deadline_ns.saturating_sub(10 * MS),
        deadline_ns,
        index: k.saturating_sub(1),
    }
}

/// A reader job released at `release_ns`.
fn rjob(release_ns: u64) -> JobTime {
    JobTime {
        release_ns,
        deadline_ns: release_ns + 10 * MS,
        index: release_ns / (10 * MS),
    }
}

const SIZING: Sizing = Sizing {
    buffer: 4,
    history: 1,
    max_borrowed: 4,
};

fn open_pair<T: Message>(node: &PortNode, topic: &str, sizing: Sizing) -> (Writer<T>, Reader<T>) {
    let fp = T::fingerprint();
    let w = node.writer::<T>(topic, &fp, sizing).expect("writer opens");
    let r = node.reader::<T>(topic, &fp, sizing).expect("reader opens");
    (w, r)
}

fn publish_track(w: &mut Writer<Track>, deadline_ns: u64, index: u64) -> u64 {
    w.publish(&wjob(deadline_ns, index), |t| {
        t.range_m = deadline_ns as f64 / MS as f64;
        t.id = index as u32;
    })
    .expect("publish")
}

/// Reads at `release_ns` and returns (seq, payload id, visible_at) of what the job sees.
fn read_track(r: &mut Reader<Track>, release_ns: u64) -> Option<(u64, u32, u64)> {
    r.read(&rjob(release_ns))
        .map(|s| (s.seq(), s.id, s.visible_at_ns()))
}

#[test]
fn let_rule_interleaved_publish_and_read() {
    let node = PortNode::new(&deployment("interleaved")).unwrap();
    let (mut w, mut r) = open_pair::<Track>(&node, "track", SIZING);

    assert_eq!(publish_track(&mut w, 10 * MS, 0), 1);
    assert_eq!(
        read_track(&mut r, 5 * MS),
        None,
        "sample visible at 10 ms leaked at 5 ms"
    );
    assert_eq!(read_track(&mut r, 10 * MS), Some((1, 0, 10 * MS)));
    assert_eq!(publish_track(&mut w, 20 * MS, 1), 2);
    assert_eq!(publish_track(&mut w, 30 * MS, 2), 3);
    assert_eq!(read_track(&mut r, 25 * MS), Some((2, 1, 20 * MS)));
    assert_eq!(read_track(&mut r, 30 * MS), Some((3, 2, 30 * MS)));
    // The writer is silent: the last visible sample persists.
    assert_eq!(read_track(&mut r, 100 * MS), Some((3, 2, 30 * MS)));
    assert_eq!(r.last_seq(), Some(3));
    assert_eq!(w.published(), 3);
    assert_eq!(r.overflowed(), 0);
}

#[test]
fn let_rule_all_published_before_first_read() {
    let node = PortNode::new(&deployment("early")).unwrap();
    let (mut w, mut r) = open_pair::<Track>(&node, "track", SIZING);
    for (i, d) in [10 * MS, 20 * MS, 30 * MS].into_iter().enumerate() {
        publish_track(&mut w, d, i as u64);
    }
    // All three arrived physically; logically none is visible at 5 ms.
    assert_eq!(read_track(&mut r, 5 * MS), None);
    assert_eq!(r.pending(), 3);
    assert_eq!(read_track(&mut r, 10 * MS).map(|x| x.0), Some(1));
    assert_eq!(read_track(&mut r, 25 * MS).map(|x| x.0), Some(2));
    assert_eq!(read_track(&mut r, 30 * MS).map(|x| x.0), Some(3));
    assert_eq!(read_track(&mut r, 100 * MS).map(|x| x.0), Some(3));
    assert_eq!(r.overflowed(), 0);
}

#[test]
fn first_read_after_everything_is_visible_returns_the_newest() {
    let node = PortNode::new(&deployment("newest")).unwrap();
    let (mut w, mut r) = open_pair::<Track>(&node, "track", SIZING);
    for (i, d) in [10 * MS, 20 * MS, 30 * MS].into_iter().enumerate() {
        publish_track(&mut w, d, i as u64);
    }
    assert_eq!(read_track(&mut r, 30 * MS).map(|x| x.0), Some(3));
}

#[test]
fn publish_zeroes_fields_the_job_does_not_write() {
    let node = PortNode::new(&deployment("zeroing")).unwrap();
    // max_borrowed 2 and buffer 1 keep the writer's pool small so slots get reused.
    let sizing = Sizing {
        buffer: 1,
        history: 1,
        max_borrowed: 2,
    };
    let (mut w, mut r) = open_pair::<Track>(&node, "track", sizing);
    // Slots are reused after a sample is released, so without zeroing the junk written
    // by the previous jobs would show in the checked ones.
    for k in 1..=100u64 {
        w.publish(&wjob(k * 10 * MS, k), |t| {
            if !k.is_multiple_of(4) {
                t.speed_mps = 7.5;
                t.flags = 0xffff_ffff;
            }
            t.id = k as u32;
        })
        .unwrap();
        let s = r.read(&rjob(k * 10 * MS)).expect("visible");
        assert_eq!(s.id, k as u32);
        if k.is_multiple_of(4) {
            assert_eq!(
                (s.speed_mps, s.flags),
                (0.0, 0),
                "stale bytes leaked into seq {k}"
            );
        }
    }
}

/// Tiny deterministic generator so the randomized test needs no extra dependency.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn randomized_interleavings_follow_the_let_rule() {
    let node = PortNode::new(&deployment("random")).unwrap();
    let sizing = Sizing {
        buffer: 32,
        history: 1,
        max_borrowed: 32,
    };
    for seed in 1..=12u64 {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ (seed * 0x1000_0001));
        let (mut w, mut r) = open_pair::<Track>(&node, &format!("random{seed}"), sizing);
        let mut visible_at: Vec<u64> = Vec::new(); // index i holds seq i + 1
        let mut last_deadline = 0u64;
        let mut release = 0u64;
        let mut reads = 0;
        for _ in 0..200 {
            // The model's pending count: published samples not visible at the last read.
            let pending = visible_at.iter().filter(|&&v| v > release).count();
            if pending < 20 && rng.below(2) == 0 {
                // Deadlines never decrease (one writer); equal deadlines happen too.
                last_deadline += rng.below(4) * MS;
                let seq = publish_track(&mut w, last_deadline, visible_at.len() as u64);
                visible_at.push(last_deadline);
                assert_eq!(seq, visible_at.len() as u64);
            } else {
                release += rng.below(3) * MS;
                let expected = visible_at
                    .iter()
                    .rposition(|&v| v <= release)
                    .map(|i| (i as u64 + 1, visible_at[i]));
                let got = read_track(&mut r, release).map(|(seq, _, v)| (seq, v));
                assert_eq!(
                    got, expected,
                    "seed {seed}: read at {release} after visible_at list {visible_at:?}"
                );
                reads += 1;
            }
        }
        assert!(
            reads > 20 && visible_at.len() > 20,
            "seed {seed} exercised too little"
        );
        assert_eq!(r.overflowed(), 0);
    }
}

/// The path of the mapping in /proc/self/maps that contains `addr`, if any.
fn mapping_of(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let range = parts.next()?;
        let (lo, hi) = range.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        (lo <= addr && addr < hi).then(|| parts.nth(4).unwrap_or("").to_string())
    })
}

fn frame_byte(seq: u64, row: usize, col: usize) -> u8 {
    (row as u64 * 31 + col as u64 * 7 + seq * 13) as u8
}

#[test]
fn four_mib_frame_round_trip_is_zero_copy() {
    assert_eq!(std::mem::size_of::<Frame>(), 4 << 20);
    let node = PortNode::new(&deployment("frame")).unwrap();
    let sizing = Sizing {
        buffer: 1,
        history: 1,
        max_borrowed: 2,
    };
    let (mut w, mut r) = open_pair::<Frame>(&node, "camera", sizing);
    for seq in 1..=3u64 {
        let got = w
            .publish_overwrite(&wjob(seq * 10 * MS, seq), |f| {
                for (row, bytes) in f.rows.iter_mut().enumerate() {
                    for (col, b) in bytes.iter_mut().enumerate() {
                        *b = frame_byte(seq, row, col);
                    }
                }
            })
            .unwrap();
        assert_eq!(got, seq);
        let first_addr;
        {
            let s = r.read(&rjob(seq * 10 * MS)).expect("frame visible");
            assert_eq!(s.seq(), seq);
            for (row, bytes) in s.rows.iter().enumerate() {
                for (col, &b) in bytes.iter().enumerate() {
                    assert_eq!(
                        b,
                        frame_byte(seq, row, col),
                        "seq {seq} row {row} col {col}"
                    );
                }
            }
            first_addr = s.value as *const Frame as usize;
        }
        let path = mapping_of(first_addr).unwrap_or_default();
        assert!(
            path.starts_with("/dev/shm/"),
            "payload at {first_addr:#x} is not in a shared-memory mapping but in `{path}`"
        );
        // Reading the same sample again hands out the same shared-memory bytes, not a copy.
        let again = r.read(&rjob(seq * 10 * MS + 1)).expect("still visible");
        assert_eq!(again.value as *const Frame as usize, first_addr);
    }
}

#[test]
fn manifest_type_mismatch_is_refused_naming_both_types() {
    let node = PortNode::new(&deployment("manifest-mismatch")).unwrap();
    let err = node
        .writer::<Track>("track", &Small::fingerprint(), SIZING)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PortOpenError::TypeMismatch { .. }), "{text}");
    assert!(text.contains("Track") && text.contains("Small"), "{text}");
    assert!(
        text.contains("size 24") && text.contains("size 4"),
        "{text}"
    );
    assert!(
        text.contains("manifest") && text.contains("`track`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);

    // The same check guards readers: T = Small while the manifest says Track.
    let err = node
        .reader::<Small>("track", &Track::fingerprint(), SIZING)
        .unwrap_err();
    assert!(matches!(err, PortOpenError::TypeMismatch { .. }), "{err}");
}

#[test]
fn running_service_type_mismatch_is_refused_naming_both_types() {
    let node = PortNode::new(&deployment("service-mismatch")).unwrap();
    let _w = node
        .writer::<Track>("track", &Track::fingerprint(), SIZING)
        .unwrap();
    // A reader built against another manifest/type set where the topic carries Small.
    let err = node
        .reader::<Small>("track", &Small::fingerprint(), SIZING)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PortOpenError::TypeMismatch { .. }), "{text}");
    assert!(text.contains("`Small` (size 4, align 4, layout "), "{text}");
    assert!(
        text.contains("`Track` (size 24, align 8, layout "),
        "{text}"
    );
    assert!(text.contains("running service"), "{text}");
}

#[test]
fn a_service_too_small_for_the_sizing_is_refused_with_the_reason() {
    let node = PortNode::new(&deployment("sizing")).unwrap();
    let fp = Track::fingerprint();
    let _w = node.writer::<Track>("track", &fp, SIZING).unwrap();
    let bigger = Sizing {
        buffer: SIZING.buffer * 2,
        ..SIZING
    };
    let err = node.reader::<Track>("track", &fp, bigger).unwrap_err();
    assert!(matches!(err, PortOpenError::Service { .. }), "{err}");
    assert!(err.to_string().contains("`track`"), "{err}");
}

#[test]
fn reader_in_another_thread_sees_exactly_the_let_values() {
    let dep = deployment("thread");
    const N: u64 = 30;
    let sizing = Sizing {
        buffer: 40,
        history: 1,
        max_borrowed: 40,
    };
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (published_tx, published_rx) = mpsc::channel::<u64>();
    let (result_tx, result_rx) = mpsc::channel::<Result<(), String>>();
    let reader_dep = dep.clone();
    let handle = std::thread::spawn(move || {
        let outcome = (|| -> Result<(), String> {
            // iceoryx2 ipc ports are single-threaded: the reader's node lives on its thread.
            let node = PortNode::new(&reader_dep).map_err(|e| e.to_string())?;
            let mut r = node
                .reader::<Track>("track", &Track::fingerprint(), sizing)
                .map_err(|e| e.to_string())?;
            ready_tx.send(()).map_err(|e| e.to_string())?;
            for k in 1..=N {
                let published = published_rx
                    .recv_timeout(Duration::from_secs(20))
                    .map_err(|e| format!("waiting for sample {k}: {e}"))?;
                if published != k {
                    return Err(format!("expected notice {k}, got {published}"));
                }
                // The writer may already be far ahead; LET must hide that.
                let before = read_track(&mut r, k * 10 * MS - 1).map(|x| x.0);
                let expect_before = (k > 1).then_some(k - 1);
                if before != expect_before {
                    return Err(format!(
                        "at {}: got {before:?}, want {expect_before:?}",
                        k * 10 * MS - 1
                    ));
                }
                let at = read_track(&mut r, k * 10 * MS).map(|x| (x.0, x.1));
                if at != Some((k, k as u32)) {
                    return Err(format!("at {}: got {at:?}, want seq {k}", k * 10 * MS));
                }
            }
            if r.overflowed() != 0 {
                return Err(format!("{} samples overflowed", r.overflowed()));
            }
            Ok(())
        })();
        let _ = result_tx.send(outcome);
    });

    let node = PortNode::new(&dep).unwrap();
    let mut w = node
        .writer::<Track>("track", &Track::fingerprint(), sizing)
        .unwrap();
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("reader thread ready");
    for k in 1..=N {
        publish_track(&mut w, k * 10 * MS, k);
        if published_tx.send(k).is_err() {
            break; // the reader gave up; its result says why
        }
    }
    let outcome = result_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("reader thread reports within the timeout");
    handle.join().expect("reader thread does not panic");
    outcome.unwrap();
}

#[test]
fn late_reader_gets_the_newest_visible_sample_from_history() {
    let node = PortNode::new(&deployment("history")).unwrap();
    let fp = Track::fingerprint();
    let mut w = node.writer::<Track>("track", &fp, SIZING).unwrap();
    for (i, d) in [10 * MS, 20 * MS].into_iter().enumerate() {
        publish_track(&mut w, d, i as u64);
    }
    let mut r = node.reader::<Track>("track", &fp, SIZING).unwrap();
    // The writer hands history to readers that joined when it next touches its connections.
    w.update_connections().unwrap();
    assert_eq!(read_track(&mut r, 25 * MS).map(|x| x.0), Some(2));

    // A second late reader, served by the next publish instead.
    let mut r2 = node.reader::<Track>("track", &fp, SIZING).unwrap();
    publish_track(&mut w, 30 * MS, 2);
    assert_eq!(read_track(&mut r2, 25 * MS).map(|x| x.0), Some(2));
    assert_eq!(read_track(&mut r2, 30 * MS).map(|x| x.0), Some(3));
}

#[test]
fn reader_may_open_before_the_writer() {
    let node = PortNode::new(&deployment("reader-first")).unwrap();
    let fp = Track::fingerprint();
    let mut r = node.reader::<Track>("track", &fp, SIZING).unwrap();
    assert_eq!(read_track(&mut r, 50 * MS), None);
    let mut w = node.writer::<Track>("track", &fp, SIZING).unwrap();
    publish_track(&mut w, 10 * MS, 0);
    assert_eq!(read_track(&mut r, 50 * MS).map(|x| x.0), Some(1));
}

#[test]
fn a_writer_taking_over_a_topic_continues_the_sequence() {
    // OTA hot swap: the new version's writer opens the topic beside the old one and
    // publishes from job 3 on; the reader sees 1, 2, 3, 4 with no gap and no repeat.
    let node = PortNode::new(&deployment("takeover")).unwrap();
    let sizing = Sizing {
        buffer: 4,
        history: 1,
        max_borrowed: 3,
    };
    let (mut old, mut r) = open_pair::<Track>(&node, "track", sizing);
    let mut new = node
        .writer::<Track>("track", &Track::fingerprint(), sizing)
        .expect("a second writer may open the topic");
    assert_eq!(publish_track(&mut old, 10 * MS, 1), 1);
    assert_eq!(read_track(&mut r, 10 * MS).map(|x| x.0), Some(1));
    assert_eq!(publish_track(&mut old, 20 * MS, 2), 2);
    assert_eq!(read_track(&mut r, 20 * MS).map(|x| x.0), Some(2));
    assert_eq!(publish_track(&mut new, 30 * MS, 3), 3, "continues, not 1");
    assert_eq!(read_track(&mut r, 30 * MS).map(|x| x.0), Some(3));
    assert_eq!(publish_track(&mut new, 40 * MS, 4), 4);
    assert_eq!(
        read_track(&mut r, 40 * MS).map(|x| (x.0, x.1)),
        Some((4, 4))
    );
}

#[test]
fn full_pending_queue_drops_the_oldest_and_counts_it() {
    let node = PortNode::new(&deployment("overflow")).unwrap();
    // Pending capacity is max_borrowed - 1 = 2.
    let sizing = Sizing {
        buffer: 8,
        history: 1,
        max_borrowed: 3,
    };
    let (mut w, mut r) = open_pair::<Track>(&node, "track", sizing);
    for k in 1..=5u64 {
        publish_track(&mut w, k * 10 * MS, k);
    }
    assert_eq!(read_track(&mut r, 1), None);
    assert_eq!(r.overflowed(), 3);
    // The two newest survived and still obey LET.
    assert_eq!(read_track(&mut r, 40 * MS).map(|x| x.0), Some(4));
    assert_eq!(read_track(&mut r, 50 * MS).map(|x| x.0), Some(5));
}

#[test]
fn node_names_the_deployment_and_reports_cleanup() {
    let node = PortNode::new(&deployment("node")).unwrap();
    assert_eq!(
        node.service_name("radar"),
        format!("takt/{}/radar", deployment("node"))
    );
    // Nothing to assert about the count in general (other processes may have died or not),
    // only that it is reported.
    let _ = node.cleaned_dead_nodes();
    let err = PortNode::new(&"x".repeat(200)).unwrap_err();
    assert!(matches!(err, PortOpenError::InvalidName { .. }), "{err}");
}
