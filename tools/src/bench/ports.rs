//! Part 1, ports: one-way latency of takt's `Writer`/`Reader` against raw iceoryx2
//! publish-subscribe, for 8 B, 64 KiB and 4 MiB payloads.
//!
//! Owns: the ping-pong. An initiator thread pinned to core 0 publishes on `ping`; an echo
//! thread pinned to core 1 busy-polls `ping` and answers on `pong`; the initiator busy-polls
//! `pong`. One-way latency is half the round trip, measured on the initiator with
//! `CLOCK_MONOTONIC` from before the loan to after the answer is seen. Both threads run
//! under SCHED_FIFO where permitted, at normal priority otherwise (the table says which).
//! It must never compare unequal work, so:
//!
//! * both variants open `ipc` services in real shared memory with the same settings: takt's
//!   [`Sizing`] turned into iceoryx2's by the same [`ServiceSizing`] rule, safe overflow,
//!   takt's publisher/subscriber/node limits and loan limit. The raw services carry no user
//!   header: the raw baseline is what an application would write without takt, and takt's
//!   24-byte LET header is part of takt's cost;
//! * both write the payload in place: loan, stamp a counter into the first and last 8
//!   bytes, send (takt through `Writer::publish_overwrite`, which does not zero the slot;
//!   raw through `loan_uninit` + `assume_init`). Neither copies or zeroes the payload, and
//!   both receivers check the two stamps agree, so a torn sample cannot pass;
//! * LET visibility is made immediate (samples are stamped visible at 0, read at the
//!   largest release), so the ports are measured, not the schedule;
//! * both variants live in the same threads of the same process run and alternate in
//!   blocks (takt first in even blocks, raw first in odd ones) with the same number of round
//!   trips; one warm-up block per variant and the first round trips of every block (the
//!   hand-over between blocks) are not recorded.
//!
//! Between blocks both threads block on a channel for a few milliseconds, so the two cores
//! are never both spun under SCHED_FIFO for long. Every wait has a timeout.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use hdrhistogram::Histogram;
use iceoryx2::node::{Node, NodeBuilder};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{ipc, ServiceName, SignalHandlingMode};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use takt::dispatch::Quantiles;
use takt::port::{Message, PortNode, Reader, ServiceSizing, Sizing, Writer};
use takt::time::{monotonic_now_ns, JobTime};

use super::report::{fmt_ns, ratio, Report, Row};
use super::rig;
use super::Env;

pub const PART: &str = "ports";

pub const KEYS: &[&str] = &[
    "port_ratio_p50_8b",
    "port_ratio_p50_4mib",
    "port_ratio_p99_8b",
    "port_ratio_p99_4mib",
    "port_4mib_over_8b_p50",
    "port_raw_4mib_over_8b_p50",
    "port_ratio_p50_64kib",
    "port_ratio_p99_64kib",
    "port_takt_8b_ns_p50",
    "port_takt_8b_ns_p99",
    "port_takt_8b_ns_max",
    "port_raw_8b_ns_p50",
    "port_raw_8b_ns_p99",
    "port_raw_8b_ns_max",
    "port_takt_64kib_ns_p50",
    "port_takt_64kib_ns_p99",
    "port_takt_64kib_ns_max",
    "port_raw_64kib_ns_p50",
    "port_raw_64kib_ns_p99",
    "port_raw_64kib_ns_max",
    "port_takt_4mib_ns_p50",
    "port_takt_4mib_ns_p99",
    "port_takt_4mib_ns_max",
    "port_raw_4mib_ns_p50",
    "port_raw_4mib_ns_p99",
    "port_raw_4mib_ns_max",
    "port_round_trips_per_variant",
];

/// The channel sizes both variants use (a LET channel as the planner sizes a simple one).
const SIZING: Sizing = Sizing {
    buffer: 2,
    history: 1,
    max_borrowed: 2,
};
/// Samples a takt `Writer` may hold on loan (`port::MAX_LOANED_SAMPLES`, private there);
/// the raw publisher gets the same.
const MAX_LOANED_SAMPLES: usize = 2;

/// Round trips at the start of each block that are not recorded: the echo thread may still
/// be coming out of its hand-over wait.
const SETTLE_ROUND_TRIPS: u64 = 10;
/// Longest wait for one answer before the ping-pong is declared broken.
const ANSWER_TIMEOUT_NS: u64 = 1_000_000_000;
/// Longest wait for the other thread at a block hand-over or at start (opening 4 MiB
/// services zeroes hundreds of MiB of shared memory).
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The rest both threads take between blocks (blocking, not spinning).
const PAUSE_BETWEEN_BLOCKS: Duration = Duration::from_millis(5);

/// How many round trips, in how many blocks.
#[derive(Clone, Copy, Debug)]
struct Settings {
    blocks_per_variant: u64,
    round_trips_per_block: u64,
    /// SCHED_FIFO priority of both threads, `None` for normal priority.
    priority: Option<u8>,
}

impl Settings {
    fn recorded_per_variant(&self) -> u64 {
        self.blocks_per_variant * (self.round_trips_per_block - SETTLE_ROUND_TRIPS)
    }
}

/// A payload type: plain bytes of a fixed size, with a label and a JSON key fragment.
trait Payload: Message {
    const LABEL: &'static str;
    const KEY: &'static str;
}

macro_rules! payload {
    ($name:ident, $bytes:expr, $label:expr, $key:expr) => {
        takt::message! {
            #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
            struct $name {
                bytes: [u8; $bytes],
            }
        }
        impl Payload for $name {
            const LABEL: &'static str = $label;
            const KEY: &'static str = $key;
        }
    };
}

payload!(BenchBytes8, 8, "8 B", "8b");
payload!(BenchBytes64K, 64 * 1024, "64 KiB", "64kib");
payload!(BenchBytes4M, 4 * 1024 * 1024, "4 MiB", "4mib");

/// Writes `counter` into the first and the last 8 bytes.
fn stamp(bytes: &mut [u8], counter: u64) {
    let c = counter.to_le_bytes();
    let n = bytes.len();
    bytes[..8].copy_from_slice(&c);
    bytes[n - 8..].copy_from_slice(&c);
}

/// The counter of a stamped payload; an error if its two stamps disagree.
fn counter_of(bytes: &[u8]) -> Result<u64, String> {
    let n = bytes.len();
    let mut first = [0u8; 8];
    let mut last = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    last.copy_from_slice(&bytes[n - 8..]);
    if first == last {
        Ok(u64::from_le_bytes(first))
    } else {
        Err(format!(
            "a torn sample: its first stamp says {} and its last {}",
            u64::from_le_bytes(first),
            u64::from_le_bytes(last)
        ))
    }
}

/// One side of one variant: publishes on one topic, polls another.
trait Endpoint {
    /// Loans a sample, stamps `counter` into it in place and sends it.
    fn send(&mut self, counter: u64) -> Result<(), String>;
    /// The counter of the newest sample received so far, if any.
    fn newest(&mut self) -> Result<Option<u64>, String>;
}

/// Stamped visible from logical time 0 ...
const PUBLISH_VISIBLE_NOW: JobTime = JobTime {
    release_ns: 0,
    deadline_ns: 0,
    index: 0,
};
/// ... and read at the largest release, so LET never holds a sample back.
const READ_EVERYTHING: JobTime = JobTime {
    release_ns: u64::MAX,
    deadline_ns: u64::MAX,
    index: 0,
};

struct TaktEnd<T: Payload> {
    writer: Writer<T>,
    reader: Reader<T>,
}

impl<T: Payload> TaktEnd<T> {
    fn open(node: &PortNode, publish: &str, poll: &str) -> Result<Self, String> {
        let fp = T::fingerprint();
        Ok(TaktEnd {
            writer: node
                .writer::<T>(publish, &fp, SIZING)
                .map_err(|e| format!("takt: {e}"))?,
            reader: node
                .reader::<T>(poll, &fp, SIZING)
                .map_err(|e| format!("takt: {e}"))?,
        })
    }
}

impl<T: Payload> Endpoint for TaktEnd<T> {
    fn send(&mut self, counter: u64) -> Result<(), String> {
        self.writer
            .publish_overwrite(&PUBLISH_VISIBLE_NOW, |m| {
                stamp(bytemuck::bytes_of_mut(m), counter)
            })
            .map(|_| ())
            .map_err(|e| format!("takt: {e}"))
    }

    fn newest(&mut self) -> Result<Option<u64>, String> {
        match self.reader.read(&READ_EVERYTHING) {
            Some(s) => counter_of(bytemuck::bytes_of(s.value)).map(Some),
            None => Ok(None),
        }
    }
}

struct RawEnd<T: Payload> {
    publisher: Publisher<ipc::Service, T, ()>,
    subscriber: Subscriber<ipc::Service, T, ()>,
}

/// Opens (or creates) the raw service `name` with the settings takt derives from [`SIZING`].
fn raw_service<T: Payload>(
    node: &Node<ipc::Service>,
    name: &str,
) -> Result<PortFactory<ipc::Service, T, ()>, String> {
    let s = ServiceSizing::from(SIZING);
    let service_name =
        ServiceName::new(name).map_err(|e| format!("raw: service name `{name}`: {e:?}"))?;
    s.configure(node.service_builder(&service_name).publish_subscribe::<T>())
        .open_or_create()
        .map_err(|e| format!("raw: service `{name}`: {e}"))
}

impl<T: Payload> RawEnd<T> {
    fn open(node: &Node<ipc::Service>, publish: &str, poll: &str) -> Result<Self, String> {
        let publisher = raw_service::<T>(node, publish)?
            .publisher_builder()
            .max_loaned_samples(MAX_LOANED_SAMPLES)
            .create()
            .map_err(|e| format!("raw: publisher on `{publish}`: {e}"))?;
        let subscriber = raw_service::<T>(node, poll)?
            .subscriber_builder()
            .create()
            .map_err(|e| format!("raw: subscriber on `{poll}`: {e}"))?;
        Ok(RawEnd {
            publisher,
            subscriber,
        })
    }
}

impl<T: Payload> Endpoint for RawEnd<T> {
    fn send(&mut self, counter: u64) -> Result<(), String> {
        takt::port::baseline::send_stamped(&self.publisher, counter).map_err(|e| e.to_string())
    }

    fn newest(&mut self) -> Result<Option<u64>, String> {
        let mut newest = None;
        while let Some(sample) = self
            .subscriber
            .receive()
            .map_err(|e| format!("raw: receive: {e}"))?
        {
            newest = Some(counter_of(bytemuck::bytes_of(sample.payload()))?);
        }
        Ok(newest)
    }
}

/// Busy-polls `end` until it has seen `counter`, for at most [`ANSWER_TIMEOUT_NS`].
fn wait_for(end: &mut dyn Endpoint, counter: u64, what: &str) -> Result<(), String> {
    let mut polls: u32 = 0;
    let mut deadline_ns = 0;
    loop {
        match end.newest()? {
            Some(c) if c == counter => return Ok(()),
            Some(c) if c > counter => {
                return Err(format!("{what}: expected sample {counter}, got {c}"))
            }
            _ => {}
        }
        polls = polls.wrapping_add(1);
        // Reading the clock on every poll would slow both variants equally, but there is
        // no need: every 256th poll bounds the wait just as well.
        if polls.is_multiple_of(256) {
            let now_ns = monotonic_now_ns();
            if deadline_ns == 0 {
                deadline_ns = now_ns + ANSWER_TIMEOUT_NS;
            } else if now_ns > deadline_ns {
                return Err(format!(
                    "{what}: sample {counter} did not arrive within {} ms",
                    ANSWER_TIMEOUT_NS / 1_000_000
                ));
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Takt,
    Raw,
}

/// What the initiator tells the echo thread.
enum Command {
    /// Echo `round_trips` samples of `variant`, counters `first_counter..`.
    Block {
        variant: Variant,
        round_trips: u64,
        first_counter: u64,
    },
    Done,
}

/// Names of one payload size's four topics: (takt namespace, raw service prefix).
#[derive(Clone)]
struct Topics {
    namespace: String,
    raw_prefix: String,
}

impl Topics {
    fn raw(&self, topic: &str) -> String {
        format!("{}/{topic}", self.raw_prefix)
    }
}

/// Both variants' endpoints of one side, opened on the thread that uses them (iceoryx2
/// `ipc` ports are not `Send`).
struct Side<T: Payload> {
    takt: TaktEnd<T>,
    raw: RawEnd<T>,
    // The nodes outlive the ports opened through them.
    _takt_node: PortNode,
    _raw_node: Node<ipc::Service>,
}

impl<T: Payload> Side<T> {
    fn open(topics: &Topics, publish: &str, poll: &str) -> Result<Self, String> {
        let takt_node = PortNode::new(&topics.namespace).map_err(|e| format!("takt: {e}"))?;
        // The same iceoryx2 configuration as takt's (static files on tmpfs), so the two
        // sides differ only in what takt adds.
        let raw_node = NodeBuilder::new()
            .config(takt::port::iceoryx2_config())
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| format!("raw: cannot create the iceoryx2 node: {e}"))?;
        Ok(Side {
            takt: TaktEnd::open(&takt_node, publish, poll)?,
            raw: RawEnd::open(&raw_node, &topics.raw(publish), &topics.raw(poll))?,
            _takt_node: takt_node,
            _raw_node: raw_node,
        })
    }

    fn end(&mut self, v: Variant) -> &mut dyn Endpoint {
        match v {
            Variant::Takt => &mut self.takt,
            Variant::Raw => &mut self.raw,
        }
    }
}

fn echo<T: Payload>(
    topics: Topics,
    settings: Settings,
    commands: Receiver<Command>,
    acks: SyncSender<Result<(), String>>,
) -> Result<(), String> {
    // Opening zeroes the services' shared memory (hundreds of MiB for 4 MiB payloads), so
    // it happens at normal priority; SCHED_FIFO starts with the measurement.
    let setup = rig::pin_and_prioritize(1, None)
        .and_then(|()| Side::<T>::open(&topics, "pong", "ping"))
        .and_then(|side| rig::pin_and_prioritize(1, settings.priority).map(|()| side));
    let mut side = match setup {
        Ok(side) => {
            let _ = acks.send(Ok(()));
            side
        }
        Err(e) => {
            let _ = acks.send(Err(e.clone()));
            return Err(e);
        }
    };
    loop {
        match commands.recv_timeout(HANDOVER_TIMEOUT) {
            Ok(Command::Block {
                variant,
                round_trips,
                first_counter,
            }) => {
                if acks.send(Ok(())).is_err() {
                    return Ok(()); // the initiator gave up; it reports why
                }
                let end = side.end(variant);
                for c in first_counter..first_counter + round_trips {
                    wait_for(end, c, "echo")?;
                    end.send(c)?;
                }
            }
            Ok(Command::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "echo: no command from the initiator within {HANDOVER_TIMEOUT:?}"
                ))
            }
        }
    }
}

/// One-way latency histograms (takt, raw).
type Latencies = (Histogram<u64>, Histogram<u64>);

fn initiate<T: Payload>(
    topics: Topics,
    settings: Settings,
    commands: SyncSender<Command>,
    acks: Receiver<Result<(), String>>,
) -> Result<Latencies, String> {
    rig::pin_and_prioritize(0, None)?;
    let mut side = Side::<T>::open(&topics, "ping", "pong")?;
    rig::pin_and_prioritize(0, settings.priority)?;
    let ack = |what: &str| -> Result<(), String> {
        match acks.recv_timeout(HANDOVER_TIMEOUT) {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the echo thread did not {what} within {HANDOVER_TIMEOUT:?}"
            )),
        }
    };
    ack("open its ports")?;
    let mut schedule = vec![(Variant::Takt, false), (Variant::Raw, false)];
    for b in 0..settings.blocks_per_variant {
        if b % 2 == 0 {
            schedule.extend([(Variant::Takt, true), (Variant::Raw, true)]);
        } else {
            schedule.extend([(Variant::Raw, true), (Variant::Takt, true)]);
        }
    }
    let mut takt = rig::histogram();
    let mut raw = rig::histogram();
    let mut counter = 1u64;
    let n = settings.round_trips_per_block;
    for (variant, recorded) in schedule {
        std::thread::sleep(PAUSE_BETWEEN_BLOCKS);
        commands
            .send(Command::Block {
                variant,
                round_trips: n,
                first_counter: counter,
            })
            .map_err(|_| "the echo thread ended early".to_string())?;
        ack("start its block")?;
        let end = side.end(variant);
        let h = match variant {
            Variant::Takt => &mut takt,
            Variant::Raw => &mut raw,
        };
        for i in 0..n {
            let c = counter + i;
            let t0_ns = monotonic_now_ns();
            end.send(c)?;
            wait_for(end, c, "initiator")?;
            let t1_ns = monotonic_now_ns();
            if recorded && i >= SETTLE_ROUND_TRIPS {
                rig::record(h, (t1_ns - t0_ns) / 2);
            }
        }
        counter += n;
    }
    let _ = commands.send(Command::Done);
    Ok((takt, raw))
}

/// Runs the ping-pong for payload `T` on two fresh threads and joins both.
fn measure<T: Payload>(env: &Env, settings: Settings) -> Result<Latencies, String> {
    let topics = Topics {
        namespace: format!("{}-ports-{}", env.namespace, T::KEY),
        raw_prefix: format!("takt-bench-raw/{}/{}", std::process::id(), T::KEY),
    };
    let (command_tx, command_rx) = mpsc::sync_channel::<Command>(1);
    let (ack_tx, ack_rx) = mpsc::sync_channel::<Result<(), String>>(1);
    let echo_topics = topics.clone();
    let echo_thread = std::thread::Builder::new()
        .name("takt-bench-echo".into())
        .spawn(move || echo::<T>(echo_topics, settings, command_rx, ack_tx))
        .map_err(|e| format!("cannot start the echo thread: {e}"))?;
    let initiator_thread = std::thread::Builder::new()
        .name("takt-bench-ping".into())
        .spawn(move || initiate::<T>(topics, settings, command_tx, ack_rx));
    let initiated = match initiator_thread {
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| Err("the initiator thread panicked".into())),
        Err(e) => Err(format!("cannot start the initiator thread: {e}")),
    };
    // The echo thread ends on `Done`, on a closed channel or on its own timeouts.
    let echoed = echo_thread
        .join()
        .unwrap_or_else(|_| Err("the echo thread panicked".into()));
    match (initiated, echoed) {
        (Ok(l), Ok(())) => Ok(l),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
    }
}

/// Figures of one payload size.
struct SizeFigures {
    label: &'static str,
    key: &'static str,
    takt: Quantiles,
    raw: Quantiles,
}

fn measure_size<T: Payload>(env: &Env, settings: Settings, r: &mut Report) -> Option<SizeFigures> {
    env.step(format!(
        "{} ping-pong, takt and raw iceoryx2 alternating",
        T::LABEL
    ));
    match measure::<T>(env, settings) {
        Ok((takt, raw)) => {
            let (takt, raw) = (Quantiles::of(&takt), Quantiles::of(&raw));
            for (variant, q) in [("takt", takt), ("raw", raw)] {
                r.set(
                    &format!("port_{variant}_{}_ns_p50", T::KEY),
                    q.p50_ns as f64,
                );
                r.set(
                    &format!("port_{variant}_{}_ns_p99", T::KEY),
                    q.p99_ns as f64,
                );
                r.set(
                    &format!("port_{variant}_{}_ns_max", T::KEY),
                    q.max_ns as f64,
                );
            }
            Some(SizeFigures {
                label: T::LABEL,
                key: T::KEY,
                takt,
                raw,
            })
        }
        Err(e) => {
            env.fail(r, PART, format!("{} ping-pong: {e}", T::LABEL));
            None
        }
    }
}

pub fn run(env: &Env, r: &mut Report) {
    if env.cores < 2 {
        env.skip(
            r,
            PART,
            format!(
                "the ping-pong needs two cores (one per busy-polling thread), this machine has {}",
                env.cores
            ),
        );
        return;
    }
    let priority = match &env.not_realtime {
        None => Some(rig::RT_PRIORITY),
        Some(why) => {
            env.say(&format!(
                "note ports: running at normal priority, SCHED_FIFO is not permitted: {why}"
            ));
            None
        }
    };
    let settings = if env.quick {
        Settings {
            blocks_per_variant: 4,
            round_trips_per_block: 510,
            priority,
        }
    } else {
        Settings {
            blocks_per_variant: 20,
            round_trips_per_block: 1010,
            priority,
        }
    };
    r.set_count(
        "port_round_trips_per_variant",
        settings.recorded_per_variant(),
    );
    let sizes = [
        measure_size::<BenchBytes8>(env, settings, r),
        measure_size::<BenchBytes64K>(env, settings, r),
        measure_size::<BenchBytes4M>(env, settings, r),
    ];
    let class = if priority.is_some() {
        format!("SCHED_FIFO {}", rig::RT_PRIORITY)
    } else {
        "normal priority".to_string()
    };
    for s in sizes.iter().flatten() {
        let targeted = s.key != "64kib";
        for (q, name, takt, raw) in [
            ("p50", "p50", s.takt.p50_ns, s.raw.p50_ns),
            ("p99", "p99", s.takt.p99_ns, s.raw.p99_ns),
            ("max", "max", s.takt.max_ns, s.raw.max_ns),
        ] {
            let rt = ratio(Some(takt as f64), Some(raw as f64));
            if q != "max" {
                if let Some(v) = rt {
                    r.set(&format!("port_ratio_{q}_{}", s.key), v);
                }
            }
            let mut row = Row::new(PART, format!("{} one-way {name} ({class})", s.label))
                .takt(fmt_ns(takt as f64))
                .baseline(format!("{} raw", fmt_ns(raw as f64)))
                .ratio(rt);
            if targeted && q != "max" {
                row = row.at_most(rt, 1.10, "<= 1.10x raw");
            }
            r.row(row);
        }
    }
    if let (Some(small), Some(large)) = (&sizes[0], &sizes[2]) {
        let takt = ratio(
            Some(large.takt.p50_ns as f64),
            Some(small.takt.p50_ns as f64),
        );
        let raw = ratio(Some(large.raw.p50_ns as f64), Some(small.raw.p50_ns as f64));
        if let Some(v) = takt {
            r.set("port_4mib_over_8b_p50", v);
        }
        if let Some(v) = raw {
            r.set("port_raw_4mib_over_8b_p50", v);
        }
        r.row(
            Row::new(PART, "4 MiB over 8 B one-way p50")
                .takt(takt.map_or_else(|| "-".into(), super::report::fmt_ratio))
                .baseline(format!(
                    "{} raw",
                    raw.map_or_else(|| "-".into(), super::report::fmt_ratio)
                ))
                .at_most(takt, 1.25, "<= 1.25x"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_torn_samples_are_caught() {
        let mut small = [0u8; 8];
        stamp(&mut small, 42);
        assert_eq!(counter_of(&small), Ok(42));
        let mut big = vec![0u8; 64 * 1024];
        stamp(&mut big, 7);
        assert_eq!(counter_of(&big), Ok(7));
        big[0] = 8;
        assert!(counter_of(&big).unwrap_err().contains("torn"));
    }

    #[test]
    fn payload_sizes_are_exact() {
        assert_eq!(std::mem::size_of::<BenchBytes8>(), 8);
        assert_eq!(std::mem::size_of::<BenchBytes64K>(), 65_536);
        assert_eq!(std::mem::size_of::<BenchBytes4M>(), 4 << 20);
    }

    #[test]
    fn recorded_round_trips_leave_out_the_settling_ones() {
        let s = Settings {
            blocks_per_variant: 4,
            round_trips_per_block: 510,
            priority: None,
        };
        assert_eq!(s.recorded_per_variant(), 2000);
    }
}
