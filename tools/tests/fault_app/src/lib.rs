#![deny(unsafe_code)]
//! A test app whose tasks report faults (`StepContext::fault`) on chosen jobs.
//!
//! `source` publishes its job index every period and, in jobs `k` with
//! `k % fault_every == fault_at` (and `k < fault_before` when that is not 0), reports two
//! faults: code `100 + k`, then code 999. `sink` reads the samples and folds them into the
//! digest; built faulty (the `fault-sink-v2` executable) it reports fault 42 in every job.
//! Built spiking ([`spiking_sink_registry`], the `fault-sink-spike-*` executables) it busies
//! its CPU for [`SPIKE`] in chosen jobs of its process (counted from the process's first
//! job, so a candidate version's spikes fall at a known distance after its switch).

use takt::task::{
    Param, Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport,
    Writer,
};

takt::message! {
    /// What `source` sends to `sink`.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Sample {
        pub seq: u64,
    }
}

const TOPIC: &str = "samples";

struct Source {
    out: Writer<Sample>,
    fault_every: u64,
    fault_at: u64,
    fault_before: u64,
}

impl Task for Source {
    fn step(&mut self, ctx: &StepContext) {
        let k = ctx.job_index();
        if self.fault_every > 0
            && k % self.fault_every == self.fault_at
            && (self.fault_before == 0 || k < self.fault_before)
        {
            ctx.fault(100 + k as u16);
            ctx.fault(999);
        }
        let _ = self.out.publish(ctx, |s| *s = Sample { seq: k });
    }
}

fn build_source(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Source {
        out: b.writer::<Sample>(TOPIC)?,
        fault_every: b.param_i64("fault_every", 0)? as u64,
        fault_at: b.param_i64("fault_at", 0)? as u64,
        fault_before: b.param_i64("fault_before", 0)? as u64,
    }))
}

/// How long a spiking sink's chosen jobs keep the CPU busy: three times its 1 ms budget.
pub const SPIKE: std::time::Duration = std::time::Duration::from_millis(3);

struct Sink {
    input: Reader<Sample>,
    faulty: bool,
    /// Jobs of this process (0: its first) that busy the CPU for [`SPIKE`].
    spikes: &'static [u64],
    jobs_run: u64,
    sum: u64,
}

impl Task for Sink {
    fn step(&mut self, ctx: &StepContext) {
        if let Some(s) = self.input.read(ctx) {
            self.sum = self.sum.wrapping_mul(31).wrapping_add(s.seq);
        }
        if self.faulty {
            ctx.fault(42);
        }
        if self.spikes.contains(&self.jobs_run) {
            let start = std::time::Instant::now();
            while start.elapsed() < SPIKE {
                std::hint::spin_loop();
            }
        }
        self.jobs_run += 1;
    }

    fn finish(&mut self, report: &mut TaskReport) {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&self.sum.to_le_bytes());
        report.digest = Some(d);
    }
}

/// The tasks one executable implements: `source`, `sink` (faulty or not), or both.
pub fn registry(source: bool, sink: bool, faulty_sink: bool) -> Registry {
    registry_with(source, sink, faulty_sink, &[])
}

/// `sink` alone, busying the CPU for [`SPIKE`] in jobs `spikes` of its process.
pub fn spiking_sink_registry(spikes: &'static [u64]) -> Registry {
    registry_with(false, true, false, spikes)
}

fn registry_with(source: bool, sink: bool, faulty_sink: bool, spikes: &'static [u64]) -> Registry {
    let mut r = Registry::new();
    if source {
        let count = || Param::int(0).range(0.0, 1_000_000.0);
        r.task(
            "source",
            Ports::new()
                .writes::<Sample>(TOPIC)
                .param("fault_every", count())
                .param("fault_at", count())
                .param("fault_before", count()),
            build_source,
        );
    }
    if sink {
        r.task("sink", Ports::new().reads::<Sample>(TOPIC), move |b| {
            Ok(Box::new(Sink {
                input: b.reader::<Sample>(TOPIC)?,
                faulty: faulty_sink,
                spikes,
                jobs_run: 0,
                sum: 0,
            }) as Box<dyn Task>)
        });
    }
    r
}
