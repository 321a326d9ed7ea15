//! An app-style crate root: `#![deny(unsafe_code)]` and `takt::message!` must coexist, and
//! the declared type must work as a port payload. If the macro's `unsafe impl` tripped the
//! lint, this file would not compile.
#![deny(unsafe_code)]

use takt::port::{Message, PortNode, Sizing};
use takt::time::JobTime;

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct RadarTrack {
        pub range_m: f64,
        pub range_rate_mps: f64,
        pub valid: u32,
        pub _pad: u32,
    }
}

#[test]
fn message_declared_under_deny_unsafe_code_round_trips() {
    let fp = RadarTrack::fingerprint();
    assert_eq!(RadarTrack::TYPE_NAME, "RadarTrack");
    assert_eq!((fp.name, fp.size, fp.align), ("RadarTrack", 24, 8));

    let node = PortNode::new(&format!("t{}-deny-unsafe", std::process::id())).unwrap();
    let sizing = Sizing {
        buffer: 2,
        history: 1,
        max_borrowed: 2,
    };
    let mut w = node.writer::<RadarTrack>("radar", &fp, sizing).unwrap();
    let mut r = node.reader::<RadarTrack>("radar", &fp, sizing).unwrap();
    let job = JobTime {
        release_ns: 0,
        deadline_ns: 10,
        index: 0,
    };
    w.publish(&job, |t| {
        t.range_m = 42.5;
        t.valid = 1;
    })
    .unwrap();
    let later = JobTime {
        release_ns: 10,
        deadline_ns: 20,
        index: 1,
    };
    let s = r.read(&later).expect("visible at 10");
    assert_eq!((s.range_m, s.valid, s.seq()), (42.5, 1, 1));
}
