//! The mode switches of a run, once each.
//!
//! Owns: [`ModeSwitch`] and the de-duplication of `ModeSwitch` records (every core's
//! dispatcher records the same switch). It must never decide which mode a cycle is in for
//! the release accounting (that is `releases`, which also notes records that disagree).

use std::collections::BTreeMap;

use takt::trace::{TraceEvent, TraceHeader, TraceRecord};

use super::mode_name;

/// One mode switch, once, however many cores recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeSwitch {
    /// The hyperperiod cycle the new mode starts with.
    pub cycle: u64,
    /// Logical time of the boundary, ns since the epoch.
    pub at_ns: u64,
    /// Earliest physical time a core recorded it.
    pub time_ns: u64,
    pub from_mode: u64,
    pub to_mode: u64,
    pub from_name: String,
    pub to_name: String,
    /// The cores that recorded it, ascending.
    pub cores: Vec<u8>,
}

/// Every switch once, ordered by `(cycle, from, to)`, with the cores that recorded it.
pub(crate) fn mode_switches(header: &TraceHeader, records: &[TraceRecord]) -> Vec<ModeSwitch> {
    let mut by_key: BTreeMap<(u64, u64, u64), ModeSwitch> = BTreeMap::new();
    for r in records {
        let Ok(TraceEvent::ModeSwitch { from_mode, to_mode }) = r.event() else {
            continue;
        };
        let s = by_key
            .entry((r.job, from_mode, to_mode))
            .or_insert_with(|| ModeSwitch {
                cycle: r.job,
                at_ns: r.logical_ns,
                time_ns: r.time_ns,
                from_mode,
                to_mode,
                from_name: mode_name(header, from_mode),
                to_name: mode_name(header, to_mode),
                cores: Vec::new(),
            });
        s.time_ns = s.time_ns.min(r.time_ns);
        if !s.cores.contains(&r.core) {
            s.cores.push(r.core);
            s.cores.sort_unstable();
        }
    }
    by_key.into_values().collect()
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze;
    use crate::analysis::testkit::*;
    use takt::time::{LogicalNs, MonoNs};
    use takt::trace::TraceRecord;

    #[test]
    fn mode_switches_recorded_by_every_core_are_reported_once() {
        let mut records = clean_run(1);
        records.push(TraceRecord::mode_switch(
            1,
            3,
            LogicalNs(30 * MS),
            MonoNs(30 * MS + 7),
            0,
            1,
        ));
        records.push(TraceRecord::mode_switch(
            0,
            3,
            LogicalNs(30 * MS),
            MonoNs(30 * MS + 5),
            0,
            1,
        ));
        records.push(TraceRecord::mode_switch(
            0,
            5,
            LogicalNs(50 * MS),
            MonoNs(50 * MS + 5),
            1,
            7,
        ));
        let a = analyze(&header(), &records);
        assert_eq!(a.mode_switches.len(), 2);
        let s = &a.mode_switches[0];
        assert_eq!(
            (s.cycle, s.at_ns, s.time_ns, s.cores.clone()),
            (3, 30 * MS, 30 * MS + 5, vec![0, 1])
        );
        assert_eq!(
            (s.from_name.as_str(), s.to_name.as_str()),
            ("drive", "parked")
        );
        assert_eq!(a.mode_switches[1].to_name, "#7");
    }
}
