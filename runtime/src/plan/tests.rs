//! Unit tests of synthesis, verification, sizing, chain bounds and rendering on small
//! hand-made deployments whose tables and figures are worked out by hand in the comments.

use std::collections::BTreeMap;

use super::*;
use crate::manifest::{ChainSpec, ChannelSpec, ModeSpec, OverrunPolicy, TaskSpec};

const MS: u64 = 1_000_000;

/// A task: `(name, period, offset, LET, budget, core)`, all in ms.
fn task(name: &str, period: u64, offset: u64, let_: u64, budget: u64, core: usize) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        implementation: name.into(),
        topics: BTreeMap::new(),
        app: 0,
        period_ns: period * MS,
        offset_ns: offset * MS,
        budget_ns: budget * MS,
        let_ns: let_ * MS,
        core,
        overrun: OverrunPolicy::Report,
        on_fault: Default::default(),
        params: BTreeMap::new(),
        line: 10,
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// A deployment on cores 0 and 1 with one mode per entry of `modes` (the first is the
/// default).
fn deployment(tasks: Vec<TaskSpec>, modes: Vec<Vec<usize>>) -> Deployment {
    let hyperperiod_ns = tasks.iter().fold(1, |h, t| lcm(h, t.period_ns));
    Deployment {
        name: "unit".into(),
        source: "unit.toml".into(),
        cores: vec![0, 1],
        priority: 50,
        apps: vec![crate::manifest::AppSpec {
            name: "app".into(),
            executable: None,
            supervision: Default::default(),
        }],
        tasks,
        channels: Vec::new(),
        chains: Vec::new(),
        modes: modes
            .into_iter()
            .enumerate()
            .map(|(i, tasks)| ModeSpec {
                name: format!("m{i}"),
                tasks,
            })
            .collect(),
        default_mode: 0,
        update_safe_modes: Vec::new(),
        hyperperiod_ns,
        ota: Default::default(),
        wake: Default::default(),
    }
}

fn one_mode(tasks: Vec<TaskSpec>) -> Deployment {
    let all = (0..tasks.len()).collect();
    deployment(tasks, vec![all])
}

fn chain(name: &str, tasks: Vec<usize>, precedence: bool) -> ChainSpec {
    ChainSpec {
        name: name.into(),
        topics: Vec::new(),
        tasks,
        precedence,
        max_data_age_ns: None,
        max_reaction_ns: None,
    }
}

/// `(start_ms, task, job)` of every window of `core` in mode 0.
fn table(p: &Plan, core: usize) -> Vec<(u64, usize, u64)> {
    p.modes[0]
        .cores
        .iter()
        .find(|c| c.core == core)
        .map(|c| {
            c.windows
                .iter()
                .map(|w| (w.start_ns / MS, w.task, w.job_in_cycle))
                .collect()
        })
        .unwrap_or_default()
}

fn planned(d: &Deployment) -> Plan {
    let p = synthesize(d).unwrap_or_else(|e| panic!("must be schedulable:\n{e}"));
    if let Err(v) = verify(d, &p) {
        panic!("synthesized plan fails verification: {v:?}");
    }
    p
}

fn unschedulable(d: &Deployment) -> String {
    match synthesize(d) {
        Ok(p) => panic!("must be unschedulable, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn violations(d: &Deployment, p: &Plan) -> Vec<String> {
    match verify(d, p) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(|v| v.message).collect(),
    }
}

fn assert_reported(found: &[String], needles: &[&str]) {
    assert!(
        found.iter().any(|m| needles.iter().all(|n| m.contains(n))),
        "no violation mentions all of {needles:?}: {found:#?}"
    );
}

#[test]
fn two_tasks_on_one_core_get_the_edf_table() {
    // a: every 10 ms for 2 ms; b: every 20 ms for 5 ms. At 0 both are released, a is due
    // first (10 < 20): a0 0..2, b0 2..7, then a1 at its release 10..12.
    let d = one_mode(vec![task("a", 10, 0, 10, 2, 0), task("b", 20, 0, 20, 5, 0)]);
    let p = planned(&d);
    assert_eq!(p.hyperperiod_ns, 20 * MS);
    assert_eq!(table(&p, 0), vec![(0, 0, 0), (2, 1, 0), (10, 0, 1)]);
    let core = &p.modes[0].cores[0];
    assert_eq!(core.utilization_ppm, 450_000, "(2 + 2 + 5) / 20");
    let w = &core.windows[2];
    assert_eq!(
        (w.release_ns, w.deadline_ns, w.budget_ns),
        (10 * MS, 20 * MS, 2 * MS)
    );
    assert_eq!(
        p.modes[0].cores.len(),
        1,
        "core 1 hosts nothing, so it has no table"
    );
}

#[test]
fn tasks_on_two_cores_get_one_table_each_and_every_mode_its_own() {
    let d = deployment(
        vec![task("a", 10, 0, 10, 2, 0), task("b", 10, 3, 10, 4, 1)],
        vec![vec![0, 1], vec![1]],
    );
    let p = planned(&d);
    assert_eq!(table(&p, 0), vec![(0, 0, 0)]);
    assert_eq!(table(&p, 1), vec![(3, 1, 0)]);
    assert_eq!(p.modes[1].mode, 1);
    assert_eq!(p.modes[1].cores.len(), 1);
    assert_eq!(p.modes[1].cores[0].core, 1);
}

#[test]
fn utilization_above_one_names_core_mode_and_excess() {
    let d = one_mode(vec![task("a", 10, 0, 10, 6, 1), task("b", 10, 0, 10, 5, 1)]);
    let e = unschedulable(&d);
    assert!(e.contains("mode `m0`, core 1"), "{e}");
    assert!(
        e.contains("utilization 110.000% exceeds 100% by 10.000%"),
        "{e}"
    );
    assert!(e.contains("1ms too much"), "{e}");
    assert!(e.contains("necessary condition"), "{e}");
}

#[test]
fn non_preemptive_infeasibility_below_full_utilization_is_proved_and_located() {
    // a needs 9 ms in one piece every 20 ms; b (1 ms, due 3 ms after each release every
    // 5 ms) leaves gaps of at most 6 ms. Utilization is only 65%. EDF runs b0 0..1, a0 1..10
    // and b1 (released 5, due 8) would end at 11: 3 ms late.
    let d = one_mode(vec![task("a", 20, 0, 20, 9, 0), task("b", 5, 0, 3, 1, 0)]);
    let e = unschedulable(&d);
    assert!(
        e.contains("mode `m0`, core 0: task `b` (unit.toml:10) job 1"),
        "{e}"
    );
    assert!(e.contains("release 5ms, deadline 8ms"), "{e}");
    assert!(
        e.contains("would end at 11ms, 3ms past its deadline 8ms"),
        "{e}"
    );
    assert!(
        e.contains("no non-preemptive table exists (exhaustive search"),
        "{e}"
    );
}

#[test]
fn search_inserts_idle_time_where_edf_cannot() {
    // a (5 ms, due 20) is alone at 0, so EDF starts it and b (released 1, due 4) misses.
    // The search idles until 1: b 1..3, a 3..8.
    let d = one_mode(vec![task("a", 20, 0, 20, 5, 0), task("b", 20, 1, 3, 2, 0)]);
    let p = planned(&d);
    assert_eq!(table(&p, 0), vec![(1, 1, 0), (3, 0, 0)]);
}

#[test]
fn a_window_never_crosses_the_hyperperiod_boundary() {
    // Released at 8 with its LET deadline at 18, but the cycle ends at 10: 3 ms cannot fit.
    let d = one_mode(vec![task("late", 10, 8, 10, 3, 0)]);
    let e = unschedulable(&d);
    assert!(e.contains("task `late`"), "{e}");
    assert!(e.contains("the hyperperiod boundary 10ms"), "{e}");
    assert!(e.contains("1ms too late"), "{e}");
    // 2 ms fits exactly, ending at the boundary; the deadline field keeps the LET deadline.
    let d = one_mode(vec![task("late", 10, 8, 10, 2, 0)]);
    let p = planned(&d);
    let w = &p.modes[0].cores[0].windows[0];
    assert_eq!((w.start_ns, w.deadline_ns), (8 * MS, 18 * MS));
}

#[test]
fn precedence_puts_the_producer_first_even_against_edf() {
    // The consumer is due earlier (LET 5 ms), so plain EDF runs it first.
    let tasks = vec![task("prod", 10, 0, 10, 2, 0), task("cons", 10, 0, 5, 2, 0)];
    let mut d = one_mode(tasks);
    d.chains = vec![chain("c", vec![0, 1], false)];
    assert_eq!(table(&planned(&d), 0), vec![(0, 1, 0), (2, 0, 0)]);
    d.chains[0].precedence = true;
    let p = planned(&d);
    assert_eq!(table(&p, 0), vec![(0, 0, 0), (2, 1, 0)]);
    // The verifier catches the reversed order.
    let mut bad = p.clone();
    let windows = &mut bad.modes[0].cores[0].windows;
    windows.swap(0, 1);
    windows[0].start_ns = 0;
    windows[1].start_ns = 2 * MS;
    assert_reported(
        &violations(&d, &bad),
        &[
            "task `prod` job 0",
            "precedence of chain `c`",
            "task `cons` job 0",
        ],
    );
}

#[test]
fn a_precedence_cycle_is_reported_not_looped_on() {
    let mut d = one_mode(vec![task("x", 10, 0, 10, 1, 0), task("y", 10, 0, 10, 1, 0)]);
    d.chains = vec![chain("xy", vec![0, 1], true), chain("yx", vec![1, 0], true)];
    let e = unschedulable(&d);
    assert!(e.contains("cycle between tasks `x`, `y`"), "{e}");
}

#[test]
fn precedence_tightens_the_producer_and_can_make_a_set_infeasible() {
    // The consumer must run 0..4 at the latest to meet its 4 ms deadline (budget 4), so the
    // producer released with it cannot precede it.
    let mut d = one_mode(vec![task("p", 10, 0, 10, 1, 0), task("c", 10, 0, 4, 4, 0)]);
    d.chains = vec![chain("pc", vec![0, 1], true)];
    let e = unschedulable(&d);
    assert!(e.contains("task `p`"), "{e}");
    assert!(e.contains("precedence successor"), "{e}");
    assert!(e.contains("necessary condition"), "{e}");
}

fn with_channel(mut d: Deployment, writer: usize, reader: usize) -> Deployment {
    d.channels = vec![ChannelSpec {
        topic: "data".into(),
        type_name: "Data".into(),
        writer,
        readers: vec![reader],
    }];
    d
}

#[test]
fn sizing_of_a_10ms_writer_and_a_40ms_reader() {
    // Writer every 10 ms (LET 10, 1 ms) on core 0: windows 0, 10, 20, 30. Reader every
    // 40 ms (1 ms) on core 1: window 0..1. At the read of the reader released at 40, writer
    // samples started before 41: the previous cycle's four and the one at 40; invisible at
    // 40 (deadline > 40): only the one at 40 (deadline 50). So max_borrowed = 1 + 1.
    // Between the previous read (starting at 0) and this one: all five can be published:
    // buffer = 5 + 1.
    let d = with_channel(
        one_mode(vec![task("w", 10, 0, 10, 1, 0), task("r", 40, 0, 40, 1, 1)]),
        0,
        1,
    );
    let p = planned(&d);
    assert_eq!(
        p.channels,
        vec![ChannelSizing {
            buffer: 6,
            history: 1,
            max_borrowed: 2
        }]
    );
}

#[test]
fn sizing_grows_when_the_reader_reads_late_and_is_checked_by_verify() {
    // Same writer; the reader's window is 0..35, so it may read after the writer jobs at
    // 0, 10, 20 and 30 published, all still invisible at its release 0 (deadlines 10..40):
    // max_borrowed = 1 + 4. Between reads: the previous cycle's four plus these four: 8 + 1.
    let d = with_channel(
        one_mode(vec![
            task("w", 10, 0, 10, 1, 0),
            task("r", 40, 0, 40, 35, 1),
        ]),
        0,
        1,
    );
    let p = planned(&d);
    assert_eq!(
        p.channels,
        vec![ChannelSizing {
            buffer: 9,
            history: 1,
            max_borrowed: 5
        }]
    );
    let mut small = p.clone();
    small.channels[0].max_borrowed = 4;
    small.channels[0].buffer = 8;
    let v = violations(&d, &small);
    assert_reported(
        &v,
        &[
            "channel `data`: max_borrowed 4 is below the 5 needed",
            "`w`",
            "`r`",
        ],
    );
    assert_reported(&v, &["channel `data`: buffer 8 is below the 9 needed"]);
    small.channels[0] = ChannelSizing {
        buffer: 9,
        history: 0,
        max_borrowed: 5,
    };
    assert_reported(
        &violations(&d, &small),
        &["history 0 is below the 1 needed"],
    );
}

#[test]
fn sizing_covers_a_reader_that_a_mode_does_not_run() {
    // Mode 1 runs only the writer; buffer stays at least max_borrowed so the reader, back in
    // mode 0, still finds the newest visible sample after its queue overflowed.
    let d = with_channel(
        deployment(
            vec![task("w", 10, 0, 10, 1, 0), task("r", 10, 0, 10, 1, 0)],
            vec![vec![0, 1], vec![0]],
        ),
        0,
        1,
    );
    let p = planned(&d);
    let s = p.channels[0];
    assert!(s.buffer >= s.max_borrowed, "{s:?}");
    assert_eq!(s.history, 1);
}

#[test]
fn chain_bounds_of_a_three_task_chain_match_the_hand_computation() {
    // s: every 10 ms, LET 10; f: every 20 ms, LET 20; c: every 10 ms at offset 5, LET 10.
    // Data age: c released 55 reads f1 (released 20, visible 40), which read s1 (released
    // 10, visible 20); c's output is visible at 65: 65 - 10 = 55 ms, the worst.
    // Reaction: a change just after s at 30 (so s4 at 40 reads it, visible 50) reaches
    // f at 60 (visible 80), then c at 85 (visible 95): 95 - 30 = 65 ms, the worst.
    let mut d = one_mode(vec![
        task("s", 10, 0, 10, 1, 0),
        task("f", 20, 0, 20, 2, 0),
        task("c", 10, 5, 10, 1, 1),
    ]);
    d.chains = vec![chain("sfc", vec![0, 1, 2], false)];
    let p = planned(&d);
    assert_eq!(
        p.chains,
        vec![ChainBound {
            chain: 0,
            mode: Some(0),
            max_data_age_ns: 55 * MS,
            max_reaction_ns: 65 * MS,
        }]
    );
    // A wrong figure is caught by the verifier's closed form.
    let mut bad = p.clone();
    bad.chains[0].max_reaction_ns = 60 * MS;
    assert_reported(
        &violations(&d, &bad),
        &["chain `sfc`: max_reaction_ns is 60ms but LET gives 65ms"],
    );
}

#[test]
fn chain_bounds_of_a_two_task_chain_with_equal_periods() {
    // a then b, both every 10 ms with LET 10, b at offset 2: b released 12 reads a0
    // (released 0, visible 10) and is visible at 22: age 22 ms. A change just after a's
    // release at 0 is read by a1 at 10, visible 20, read by b at 22, visible 32: 32 ms.
    let mut d = one_mode(vec![task("a", 10, 0, 10, 1, 0), task("b", 10, 2, 10, 1, 0)]);
    d.chains = vec![chain("ab", vec![0, 1], false)];
    let p = planned(&d);
    assert_eq!(
        (p.chains[0].max_data_age_ns, p.chains[0].max_reaction_ns),
        (22 * MS, 32 * MS)
    );
}

#[test]
fn chain_bounds_pick_the_first_mode_that_runs_the_chain_or_none() {
    let mut d = deployment(
        vec![
            task("a", 10, 0, 10, 1, 0),
            task("b", 10, 0, 10, 1, 0),
            task("z", 10, 0, 10, 1, 1),
        ],
        vec![vec![0, 2], vec![2], vec![0, 1]],
    );
    d.chains = vec![
        chain("ab", vec![0, 1], false),
        chain("az", vec![0, 2], false),
    ];
    d.chains.push(chain("bz", vec![1, 2], false));
    let p = planned(&d);
    assert_eq!(
        p.chains[0].mode,
        Some(2),
        "not in the default mode 0, first in mode 2"
    );
    assert_eq!(p.chains[1].mode, Some(0), "the default mode runs it");
    assert_eq!(p.chains[2].mode, None, "no mode runs b and z together");
    assert_eq!(
        (p.chains[2].max_data_age_ns, p.chains[2].max_reaction_ns),
        (0, 0)
    );
    let text = render_text(&d, &p);
    assert!(
        text.contains("`bz`: no mode runs every task of the chain"),
        "{text}"
    );
}

/// The three-task chain of `chain_bounds_of_a_three_task_chain_match_the_hand_computation`
/// (data age 55 ms, reaction 65 ms) with the given requirements, in ms.
fn sfc_requiring(data_age: Option<u64>, reaction: Option<u64>) -> Deployment {
    let mut d = one_mode(vec![
        task("s", 10, 0, 10, 1, 0),
        task("f", 20, 0, 20, 2, 0),
        task("c", 10, 5, 10, 1, 1),
    ]);
    let mut c = chain("sfc", vec![0, 1, 2], false);
    c.max_data_age_ns = data_age.map(|ms| ms * MS);
    c.max_reaction_ns = reaction.map(|ms| ms * MS);
    d.chains = vec![c];
    d
}

fn hop(from: &str, to: &str, ms: u64) -> Contribution {
    Contribution {
        part: Part::Hop {
            from: from.into(),
            to: to.into(),
        },
        ns: ms * MS,
    }
}

fn own(t: &str, ms: u64) -> Contribution {
    Contribution {
        part: Part::Task(t.into()),
        ns: ms * MS,
    }
}

#[test]
fn chain_requirements_that_the_bounds_meet_pass_and_render_as_met() {
    // A bound equal to its requirement meets it.
    let d = sfc_requiring(Some(55), Some(100));
    let p = planned(&d);
    assert_eq!(check_requirements(&d, &p), Vec::new());
    let text = render_text(&d, &p);
    assert!(
        text.contains("    data age bound 55ms (requirement 55ms: met)"),
        "{text}"
    );
    assert!(
        text.contains("    reaction time bound 65ms (requirement 100ms: met)"),
        "{text}"
    );

    let d = sfc_requiring(None, None);
    let text = render_text(&d, &planned(&d));
    assert!(
        text.contains("    data age bound 55ms (no requirement)")
            && text.contains("    reaction time bound 65ms (no requirement)"),
        "{text}"
    );
}

#[test]
fn a_missed_data_age_requirement_names_the_bound_excess_and_largest_hop() {
    // Worst instance (see the bounds test): s released 10 -> f released 20 (s visible at
    // 20) -> c released 55 (f visible at 40, the next f only at 60) -> visible 65. Hops:
    // s -> f 10 ms (s's LET, no wait), f -> c 35 ms (f's LET 20 + 15 waiting); c's LET 10.
    let d = sfc_requiring(Some(50), None);
    let p = planned(&d);
    let v = check_requirements(&d, &p);
    assert_eq!(
        v,
        vec![RequirementViolation {
            chain: 0,
            chain_name: "sfc".into(),
            requirement: Requirement::DataAge,
            bound_ns: 55 * MS,
            required_ns: 50 * MS,
            excess_ns: 5 * MS,
            contributions: vec![hop("s", "f", 10), hop("f", "c", 35), own("c", 10)],
            largest: Some(hop("f", "c", 35)),
        }]
    );
    assert_eq!(
        v[0].to_string(),
        "chain sfc: exact LET data age bound 55ms exceeds max_data_age 50ms by 5ms; \
         the largest contribution is the hop f -> c (35ms: f's LET plus the wait for c's \
         next release)"
    );
    assert!(
        render_text(&d, &p).contains("    data age bound 55ms (requirement 50ms: exceeded by 5ms)"),
        "{}",
        render_text(&d, &p)
    );

    // The last task's own LET can be the largest part: a (LET 2) is read by b 0 ms after
    // it is visible, b's LET is 10: 2 + 10 = 12 ms.
    let mut d = one_mode(vec![task("a", 10, 0, 2, 1, 0), task("b", 10, 2, 10, 1, 1)]);
    let mut c = chain("ab", vec![0, 1], false);
    c.max_data_age_ns = Some(11 * MS);
    d.chains = vec![c];
    let v = check_requirements(&d, &planned(&d));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].contributions, vec![hop("a", "b", 2), own("b", 10)]);
    assert_eq!(v[0].largest, Some(own("b", 10)));
    assert!(
        v[0].to_string()
            .ends_with("the largest contribution is the task b (10ms: its LET)"),
        "{}",
        v[0]
    );
}

#[test]
fn a_missed_reaction_requirement_names_the_bound_excess_and_largest_part() {
    // Worst instance (see the bounds test): a change just after s's release at 30 is read
    // by s at 40 (visible 50: s adds 20 ms), by f at 60 (visible 80: the hop s -> f adds
    // 30 ms), by c at 85 (visible 95: the hop f -> c adds 15 ms). 65 ms in all.
    let d = sfc_requiring(Some(100), Some(60));
    let p = planned(&d);
    let v = check_requirements(&d, &p);
    assert_eq!(v.len(), 1, "only the reaction requirement is missed: {v:?}");
    let v = &v[0];
    assert_eq!(v.requirement, Requirement::Reaction);
    assert_eq!(
        (v.bound_ns, v.required_ns, v.excess_ns),
        (65 * MS, 60 * MS, 5 * MS)
    );
    assert_eq!(
        v.contributions,
        vec![own("s", 20), hop("s", "f", 30), hop("f", "c", 15)]
    );
    assert_eq!(v.largest, Some(hop("s", "f", 30)));
    assert_eq!(
        v.to_string(),
        "chain sfc: exact LET reaction time bound 65ms exceeds max_reaction 60ms by 5ms; \
         the largest contribution is the hop s -> f (30ms: the wait for f's next release \
         after s's deadline plus f's LET)"
    );

    // Both missed: both reported, data age first.
    let d = sfc_requiring(Some(40), Some(60));
    let kinds: Vec<Requirement> = check_requirements(&d, &planned(&d))
        .iter()
        .map(|v| v.requirement)
        .collect();
    assert_eq!(kinds, [Requirement::DataAge, Requirement::Reaction]);
}

#[test]
fn chain_contributions_add_up_to_the_bounds() {
    // Chains of different shapes: equal periods, a slow middle task, offsets that make
    // consumers wait, one on two cores, one not run by the default mode.
    let mut d = deployment(
        vec![
            task("s", 10, 0, 10, 1, 0),
            task("f", 20, 0, 20, 2, 0),
            task("c", 10, 5, 10, 1, 1),
            task("x", 40, 7, 13, 1, 1),
            task("y", 5, 1, 3, 1, 0),
        ],
        vec![vec![0, 1, 2, 4], vec![0, 1, 2, 3, 4]],
    );
    d.chains = vec![
        chain("sfc", vec![0, 1, 2], false),
        chain("sc", vec![0, 2], false),
        chain("yxc", vec![4, 3, 2], false),
        chain("cys", vec![2, 4, 0], false),
        chain("fy", vec![1, 4], false),
    ];
    let p = planned(&d);
    assert_eq!(p.chains[2].mode, Some(1), "x runs only in mode 1");
    for (i, b) in p.chains.iter().enumerate() {
        for r in REQUIREMENTS {
            let parts = contributions(&d, &p, i, r);
            assert_eq!(parts.len(), d.chains[i].tasks.len(), "{i} {r:?}: {parts:?}");
            let sum: u64 = parts.iter().map(|c| c.ns).sum();
            assert_eq!(sum, r.bound_ns(b), "chain {i} {r:?}: {parts:?}");
            assert!(sum > 0);
        }
    }
}

#[test]
fn a_chain_no_mode_runs_meets_every_requirement() {
    let mut d = deployment(
        vec![task("a", 10, 0, 10, 1, 0), task("b", 10, 0, 10, 1, 1)],
        vec![vec![0], vec![1]],
    );
    let mut c = chain("ab", vec![0, 1], false);
    c.max_data_age_ns = Some(1);
    d.chains = vec![c];
    let p = planned(&d);
    assert_eq!(p.chains[0].mode, None);
    assert_eq!(check_requirements(&d, &p), Vec::new());
    assert!(
        render_text(&d, &p).contains("data age requirement 1ns: met (the chain never runs whole)")
    );
}

#[test]
fn verify_reports_each_broken_invariant_with_mode_core_task_and_job() {
    let d = one_mode(vec![task("a", 10, 0, 10, 2, 0), task("b", 20, 0, 20, 5, 0)]);
    let good = planned(&d);
    let mutate = |f: &dyn Fn(&mut Vec<Window>)| {
        let mut p = good.clone();
        f(&mut p.modes[0].cores[0].windows);
        violations(&d, &p)
    };
    // b0 moved onto a0.
    assert_reported(
        &mutate(&|w| w[1].start_ns = MS),
        &[
            "mode `m0`, core 0, task `b` job 0",
            "overlaps",
            "task `a` job 0",
            "by 1ms",
        ],
    );
    // a1 ends after its deadline 20 ms.
    assert_reported(
        &mutate(&|w| w[2].start_ns = 19 * MS),
        &[
            "task `a` job 1",
            "ends at 21ms, 1ms after its deadline 20ms",
        ],
    );
    // a1 before its release at 10 ms.
    assert_reported(
        &mutate(&|w| w[2].start_ns = 8 * MS),
        &[
            "task `a` job 1",
            "starts at 8ms, 2ms before the job's release 10ms",
        ],
    );
    // b0 missing.
    assert_reported(
        &mutate(&|w| {
            w.remove(1);
        }),
        &["task `b` job 0", "missing"],
    );
    // a0 twice.
    assert_reported(
        &mutate(&|w| {
            let mut dup = w[0].clone();
            dup.start_ns = 15 * MS;
            w.push(dup);
        }),
        &["task `a` job 0", "appears twice"],
    );
    // Out of order.
    assert_reported(&mutate(&|w| w.swap(0, 2)), &["not sorted"]);
    // A field that does not match the task.
    assert_reported(
        &mutate(&|w| w[0].budget_ns = MS),
        &["budget field is 1ms but the task's budget is 2ms"],
    );
    // A job index the task does not have.
    assert_reported(
        &mutate(&|w| w[1].job_in_cycle = 1),
        &["task `b` job 1", "no such job"],
    );

    // Wrong core: the whole table claims to be core 1.
    let mut p = good.clone();
    p.modes[0].cores[0].core = 1;
    let v = violations(&d, &p);
    assert_reported(
        &v,
        &[
            "mode `m0`, core 1, task `a` job 0",
            "wrong core",
            "pinned to core 0",
        ],
    );
    assert_reported(&v, &["core 0", "has no table"]);

    let mut p = good.clone();
    p.modes[0].cores[0].utilization_ppm += 1;
    assert_reported(
        &violations(&d, &p),
        &["utilization_ppm is 450001", "450000"],
    );

    let mut p = good.clone();
    p.hyperperiod_ns = 40 * MS;
    assert_reported(&violations(&d, &p), &["hyperperiod is 40ms", "LCM", "20ms"]);

    let mut p = good.clone();
    p.modes.push(p.modes[0].clone());
    assert_reported(&violations(&d, &p), &["2 modes", "declares 1"]);
}

#[test]
fn verify_flags_a_job_of_an_inactive_task() {
    let d = deployment(
        vec![task("a", 10, 0, 10, 1, 0), task("b", 10, 0, 10, 1, 0)],
        vec![vec![0, 1], vec![0]],
    );
    let mut p = planned(&d);
    p.modes[1].cores[0] = p.modes[0].cores[0].clone();
    assert_reported(
        &violations(&d, &p),
        &["mode `m1`, core 0, task `b` job 0", "not active"],
    );
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let mut d = one_mode(vec![task("a", 10, 0, 10, 2, 0)]);
    d.modes[0].tasks.push(7);
    let e = unschedulable(&d);
    assert!(e.contains("task index 7"), "{e}");
    let p = Plan {
        hyperperiod_ns: 10 * MS,
        modes: vec![ModePlan {
            mode: 0,
            cores: vec![CoreTable {
                core: 0,
                windows: vec![Window {
                    start_ns: u64::MAX,
                    task: 99,
                    budget_ns: u64::MAX,
                    release_ns: 0,
                    deadline_ns: 0,
                    job_in_cycle: u64::MAX,
                }],
                utilization_ppm: 0,
                spin_ns: 0,
            }],
        }],
        channels: Vec::new(),
        chains: Vec::new(),
    };
    assert!(!violations(&d, &p).is_empty());
    let _ = render_text(&d, &p);

    let mut d = one_mode(vec![task("a", 10, 0, 12, 2, 3)]);
    d.hyperperiod_ns = 5;
    let e = unschedulable(&d);
    assert!(e.contains("task `a` (unit.toml:10)"), "{e}");
    assert!(e.contains("LET 12ms <= period 10ms must hold"), "{e}");
    assert!(
        e.contains("core 3 is not one of the deployment's cores"),
        "{e}"
    );

    let mut d = one_mode(vec![task("a", 10, 0, 10, 2, 0)]);
    d.hyperperiod_ns = 20 * MS;
    assert!(unschedulable(&d).contains("LCM of the task periods is 10ms"));

    let d = one_mode(vec![
        task("a", 7_000, 0, 10, 1, 0),
        task("b", 11_000, 0, 10, 1, 0),
    ]);
    assert!(unschedulable(&d).contains("exceeds the limit of 10s"));
}

#[test]
fn render_shows_hyperperiod_tables_sizing_and_bounds() {
    let mut d = with_channel(
        one_mode(vec![task("w", 10, 0, 10, 1, 0), task("r", 40, 0, 40, 1, 1)]),
        0,
        1,
    );
    d.chains = vec![chain("wr", vec![0, 1], false)];
    let p = planned(&d);
    let text = render_text(&d, &p);
    for needle in [
        "hyperperiod 40ms",
        "mode `m0` (default)",
        "core 0: utilization 10.0000%",
        "core 1: utilization 2.5000%",
        "start",
        "slack",
        "`data`: buffer 6, history 1, max_borrowed 2",
        "`wr` in mode `m0`: max data age",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // The writer's last window: 30..31, released 30, deadline 40, slack 9 ms.
    assert!(
        text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == ["30ms", "31ms", "w", "3", "30ms", "40ms", "9ms"]
        }),
        "{text}"
    );
}

/// 1,000 tasks with harmonic periods (1, 2, 5, 10, 20, 40, 100 ms) on two cores, about 70%
/// utilization each: planned and verified. The time is printed for the record, never
/// asserted.
#[test]
fn a_thousand_harmonic_tasks_plan_and_verify() {
    let periods_ms = [1u64, 2, 5, 10, 20, 40, 100];
    let mut tasks = Vec::with_capacity(1000);
    for i in 0..1000u64 {
        let period_ns = periods_ms[(i % 7) as usize] * MS;
        // 0.14% of the period each: 500 tasks per core make 70%.
        let budget_ns = period_ns * 14 / 10_000;
        tasks.push(TaskSpec {
            name: format!("t{i}"),
            period_ns,
            // Offsets in the first half of the period leave every job room before the
            // cycle end.
            offset_ns: (i * 37_000) % (period_ns / 2),
            let_ns: period_ns,
            budget_ns,
            core: (i % 2) as usize,
            ..task("x", 1, 0, 1, 1, 0)
        });
    }
    let mut d = one_mode(tasks);
    d.channels = (0..100)
        .map(|i| ChannelSpec {
            topic: format!("c{i}"),
            type_name: "T".into(),
            writer: i * 7,
            readers: vec![i * 7 + 3, i * 7 + 5],
        })
        .collect();
    d.chains = (0..50)
        .map(|i| chain(&format!("k{i}"), vec![i * 7, i * 7 + 4, i * 7 + 6], false))
        .collect();
    let started = std::time::Instant::now();
    let p = planned(&d);
    eprintln!(
        "1000 tasks, {} windows: planned and verified in {:?}",
        p.modes[0]
            .cores
            .iter()
            .map(|c| c.windows.len())
            .sum::<usize>(),
        started.elapsed()
    );
    assert_eq!(p.modes[0].cores.len(), 2);
    assert!(p.modes[0]
        .cores
        .iter()
        .all(|c| c.utilization_ppm >= 690_000));
}

#[test]
fn a_spin_margin_is_counted_as_busy_time_before_every_window_and_verified() {
    // The table of `two_tasks_on_one_core_get_the_edf_table`: a0 0..2, b0 2..7, a1 10..12
    // in 20 ms. With a 3 ms margin: before a0 the gap from a1's end (12) to 20 is 8 ms, so
    // 3; before b0 a0 leaves nothing (b0 starts at a0's end); before a1 b0 leaves 3 ms, so 3.
    let mut d = one_mode(vec![task("a", 10, 0, 10, 2, 0), task("b", 20, 0, 20, 5, 0)]);
    assert_eq!(
        planned(&d).modes[0].cores[0].spin_ns,
        0,
        "sleeping spins nothing"
    );
    d.wake.default = crate::manifest::Wake::Spin { margin_ns: 3 * MS };
    let p = planned(&d);
    let core = &p.modes[0].cores[0];
    assert_eq!(core.spin_ns, 6 * MS);
    assert_eq!(
        core.utilization_ppm, 450_000,
        "the budgets' share is unchanged"
    );
    // A per-core override: sleeping on core 0 again.
    let mut sleeping = d.clone();
    sleeping
        .wake
        .by_core
        .insert(0, crate::manifest::Wake::Sleep);
    assert_eq!(planned(&sleeping).modes[0].cores[0].spin_ns, 0);
    // One window alone spins before itself, a hyperperiod after its own start.
    let mut one = one_mode(vec![task("a", 10, 0, 10, 2, 0)]);
    one.wake.default = crate::manifest::Wake::Spin { margin_ns: 9 * MS };
    assert_eq!(
        planned(&one).modes[0].cores[0].spin_ns,
        8 * MS,
        "10 - 2 left, 8 < 9"
    );
    // The verifier recomputes it.
    let mut wrong = p.clone();
    wrong.modes[0].cores[0].spin_ns -= 1;
    assert_reported(
        &violations(&d, &wrong),
        &["spin_ns is 5999999", "spin margin of 3ms", "makes 6000000"],
    );
}
