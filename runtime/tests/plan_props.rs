//! Property tests of `takt::plan` on random task sets.
//!
//! * Every synthesized plan passes the independent verifier; every refusal names a broken
//!   necessary condition or a bounded search that ended (exhaustively or at its limit).
//!   The per-task and per-hop contributions of every chain add up to its bounds, and a
//!   requirement is met exactly up to its bound.
//! * The verifier catches each kind of damage done to a valid plan: overlapping windows, a
//!   window past its deadline, a wrong core, a missing job, a duplicated job, a window
//!   before its release, and sizing or chain bounds below what the tables give.
//! * On tiny single-core sets, synthesis succeeds exactly when a brute force over every job
//!   order finds a table: the search is complete, and never claims a table that is not.
//!
//! Each test counts its non-trivial cases and fails if there are too few, so a generator
//! that drifts into trivial sets cannot pass silently.

use std::cell::Cell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use takt::manifest::{
    AppSpec, ChainSpec, ChannelSpec, Deployment, ModeSpec, OverrunPolicy, TaskSpec,
};
use takt::plan::{self, Plan, Window};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A task from a period (ms) and fractions (per mille) for budget, LET and offset, rounded
/// to whole microseconds so the times stay readable in failures. The offset stays within
/// `period - budget`, so every job can fit before the hyperperiod end (the unit tests
/// cover the jobs that cannot).
fn task(
    i: usize,
    period_ms: u64,
    budget_pm: u64,
    let_pm: u64,
    offset_pm: u64,
    core: usize,
) -> TaskSpec {
    let period_ns = period_ms * MS;
    let budget_ns = (period_ns * budget_pm / 1000 / US * US).max(US);
    let let_ns = (budget_ns + (period_ns - budget_ns) * let_pm / 1000) / US * US;
    let let_ns = let_ns.max(budget_ns);
    let offset_ns = (period_ns - budget_ns) * offset_pm / 1000 / US * US;
    TaskSpec {
        name: format!("t{i}"),
        implementation: format!("t{i}"),
        topics: BTreeMap::new(),
        app: 0,
        period_ns,
        offset_ns,
        budget_ns,
        let_ns,
        core,
        overrun: OverrunPolicy::Report,
        on_fault: Default::default(),
        params: BTreeMap::new(),
        line: 1 + 10 * i,
    }
}

fn deployment(
    tasks: Vec<TaskSpec>,
    modes: Vec<Vec<usize>>,
    default_mode: usize,
    channels: Vec<ChannelSpec>,
    chains: Vec<ChainSpec>,
) -> Deployment {
    let hyperperiod_ns = tasks
        .iter()
        .fold(1, |h, t| h / gcd(h, t.period_ns) * t.period_ns);
    Deployment {
        name: "props".into(),
        source: "props.toml".into(),
        cores: vec![0, 1],
        priority: 50,
        apps: vec![AppSpec {
            name: "app".into(),
            executable: None,
            supervision: Default::default(),
        }],
        tasks,
        channels,
        chains,
        modes: modes
            .into_iter()
            .enumerate()
            .map(|(i, tasks)| ModeSpec {
                name: format!("m{i}"),
                tasks,
            })
            .collect(),
        default_mode,
        update_safe_modes: Vec::new(),
        hyperperiod_ns,
        ota: Default::default(),
        wake: Default::default(),
    }
}

const HARMONIC_MS: &[u64] = &[1, 2, 4, 8, 16];
const NON_HARMONIC_MS: &[u64] = &[3, 5, 6, 7, 10];

/// Random deployments: 1 to 7 tasks with periods from a harmonic or a non-harmonic set,
/// budgets up to 30% of the period, random LET and offsets, cores 0 and 1, 1 to 3 modes
/// (each task in a mode with probability 3/4), up to 3 channels and 2 chains.
fn deployments() -> impl Strategy<Value = Deployment> {
    (any::<bool>(), 1usize..=7).prop_flat_map(|(harmonic, n)| {
        let periods = if harmonic {
            HARMONIC_MS
        } else {
            NON_HARMONIC_MS
        };
        let tasks = prop::collection::vec(
            (
                prop::sample::select(periods),
                1u64..=300,
                0u64..=1000,
                0u64..1000,
                0usize..2,
            ),
            n,
        );
        let modes = prop::collection::vec((any::<u32>(), any::<u32>()), 1..=3);
        let channels = prop::collection::vec((0..n, prop::collection::vec(0..n, 1..=2)), 0..=3);
        let chains =
            prop::collection::vec((prop::collection::vec(0..n, 2..=3), any::<bool>()), 0..=2);
        (tasks, modes, any::<prop::sample::Index>(), channels, chains).prop_map(
            move |(tasks, modes, default, channels, chains)| {
                let tasks = tasks
                    .into_iter()
                    .enumerate()
                    .map(|(i, (p, b, l, o, c))| task(i, p, b, l, o, c))
                    .collect();
                let modes: Vec<Vec<usize>> = modes
                    .iter()
                    .map(|&(a, b)| (0..n).filter(|&t| (a | b) >> t & 1 == 1).collect())
                    .collect();
                let default_mode = default.index(modes.len());
                let channels = channels
                    .into_iter()
                    .enumerate()
                    .map(|(i, (writer, readers))| ChannelSpec {
                        topic: format!("ch{i}"),
                        type_name: "T".into(),
                        writer,
                        readers,
                    })
                    .collect();
                let chains = chains
                    .into_iter()
                    .enumerate()
                    .map(|(i, (tasks, precedence))| ChainSpec {
                        name: format!("k{i}"),
                        topics: Vec::new(),
                        tasks,
                        precedence,
                        max_data_age_ns: None,
                        max_reaction_ns: None,
                    })
                    .collect();
                deployment(tasks, modes, default_mode, channels, chains)
            },
        )
    })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn violations(d: &Deployment, p: &Plan) -> Vec<String> {
    match plan::verify(d, p) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(|v| v.message).collect(),
    }
}

/// The contributions of every chain's parts add up to its bounds; a requirement equal to a
/// bound is met, one 1 ns below it is missed by exactly 1 ns.
fn check_requirement_figures(d: &Deployment, p: &Plan) -> Result<(), TestCaseError> {
    for (i, b) in p.chains.iter().enumerate() {
        if b.mode.is_none() {
            continue;
        }
        for r in plan::REQUIREMENTS {
            let parts = plan::contributions(d, p, i, r);
            prop_assert_eq!(parts.len(), d.chains[i].tasks.len());
            let sum: u64 = parts.iter().map(|c| c.ns).sum();
            prop_assert_eq!(sum, r.bound_ns(b), "chain {} {:?}: {:?}", i, r, parts);
        }
        prop_assert!(
            b.max_data_age_ns > 0,
            "a run chain's data age is at least a LET"
        );
        let mut tight = d.clone();
        tight.chains[i].max_data_age_ns = Some(b.max_data_age_ns);
        tight.chains[i].max_reaction_ns = Some(b.max_reaction_ns);
        prop_assert!(plan::check_requirements(&tight, p).is_empty());
        tight.chains[i].max_data_age_ns = Some(b.max_data_age_ns - 1);
        let v = plan::check_requirements(&tight, p);
        prop_assert_eq!(v.len(), 1);
        prop_assert_eq!(v[0].excess_ns, 1);
        prop_assert_eq!(v[0].requirement, plan::Requirement::DataAge);
        let largest = v[0].largest.as_ref().map_or(0, |c| c.ns);
        prop_assert!(v[0].contributions.iter().all(|c| c.ns <= largest));
    }
    Ok(())
}

#[test]
fn every_synthesized_plan_verifies_and_every_refusal_says_why() {
    let planned = Cell::new(0u32);
    let planned_busy = Cell::new(0u32);
    let refused_necessary = Cell::new(0u32);
    let refused_search = Cell::new(0u32);
    let search_stopped = Cell::new(0u32);
    runner(200)
        .run(&deployments(), |d| {
            match plan::synthesize(&d) {
                Ok(p) => {
                    let v = violations(&d, &p);
                    prop_assert!(
                        v.is_empty(),
                        "synthesized plan fails verification: {:#?}",
                        v
                    );
                    prop_assert_eq!(p.modes.len(), d.modes.len());
                    prop_assert_eq!(p.channels.len(), d.channels.len());
                    prop_assert_eq!(p.chains.len(), d.chains.len());
                    let text = plan::render_text(&d, &p);
                    prop_assert!(text.contains("hyperperiod"));
                    check_requirement_figures(&d, &p)?;
                    planned.set(planned.get() + 1);
                    if p.modes
                        .iter()
                        .flat_map(|m| &m.cores)
                        .any(|c| c.windows.len() >= 3)
                    {
                        planned_busy.set(planned_busy.get() + 1);
                    }
                }
                Err(e) => {
                    prop_assert!(!e.reasons.is_empty());
                    let mut search = false;
                    for r in &e.reasons {
                        let necessary = r.contains("necessary condition violated");
                        let exhausted =
                            r.contains("no non-preemptive table exists (exhaustive search");
                        let stopped = r.contains("bounded search stopped at its limit");
                        prop_assert!(
                            necessary || exhausted || stopped,
                            "a refusal must name a necessary condition or the search's end: {}",
                            r
                        );
                        prop_assert!(r.contains("mode `m") && r.contains("core "), "{}", r);
                        search |= exhausted || stopped;
                    }
                    if e.reasons.iter().any(|r| r.contains("stopped at its limit")) {
                        search_stopped.set(search_stopped.get() + 1);
                    }
                    if search {
                        refused_search.set(refused_search.get() + 1);
                    } else {
                        refused_necessary.set(refused_necessary.get() + 1);
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "planned {} ({} with a core of >= 3 windows), refused by a necessary condition {}, by the search {} ({} of them at its limits)",
        planned.get(),
        planned_busy.get(),
        refused_necessary.get(),
        refused_search.get(),
        search_stopped.get()
    );
    assert!(
        planned_busy.get() >= 50,
        "too few non-trivial plans: {}",
        planned_busy.get()
    );
    assert!(
        refused_necessary.get() + refused_search.get() >= 10,
        "too few refusals to exercise the error paths"
    );
}

/// The damage a mutation does, and the words the verifier must use for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Damage {
    Overlap,
    PastDeadline,
    WrongCore,
    Missing,
    Duplicate,
    BeforeRelease,
    SmallSizing,
    WrongChainBound,
}

impl Damage {
    const ALL: [Damage; 8] = [
        Damage::Overlap,
        Damage::PastDeadline,
        Damage::WrongCore,
        Damage::Missing,
        Damage::Duplicate,
        Damage::BeforeRelease,
        Damage::SmallSizing,
        Damage::WrongChainBound,
    ];

    fn words(self) -> &'static str {
        match self {
            Damage::Overlap => "overlaps",
            Damage::PastDeadline => "after ",
            Damage::WrongCore => "wrong core",
            Damage::Missing => "missing",
            Damage::Duplicate => "appears twice",
            Damage::BeforeRelease => "before the job's release",
            Damage::SmallSizing => "needed",
            Damage::WrongChainBound => "but LET gives",
        }
    }
}

/// `mode `mM`, core C, task `tT` job K`: how every window violation starts.
fn job_label(mode: usize, core: usize, w: &Window) -> String {
    format!(
        "mode `m{mode}`, core {core}, task `t{}` job {}",
        w.task, w.job_in_cycle
    )
}

/// Applies `damage` to a copy of `p` at a place chosen by `pick`; `None` when the plan has
/// no place for it. Returns the damaged plan and the text the violation must contain.
fn damage(p: &Plan, damage: Damage, pick: usize) -> Option<(Plan, String)> {
    let mut q = p.clone();
    // Windows as (mode, table, window) positions.
    let spots: Vec<(usize, usize, usize)> = p
        .modes
        .iter()
        .enumerate()
        .flat_map(|(m, mp)| {
            mp.cores
                .iter()
                .enumerate()
                .flat_map(move |(c, t)| (0..t.windows.len()).map(move |w| (m, c, w)))
        })
        .collect();
    let spot = |filter: &dyn Fn(&(usize, usize, usize)) -> bool| {
        let ok: Vec<&(usize, usize, usize)> = spots.iter().filter(|s| filter(s)).collect();
        (!ok.is_empty()).then(|| *ok[pick % ok.len()])
    };
    match damage {
        Damage::Overlap => {
            let (m, c, w) = spot(&|&(m, c, w)| w + 1 < p.modes[m].cores[c].windows.len())?;
            let table = &mut q.modes[m].cores[c];
            table.windows[w + 1].start_ns = table.windows[w].start_ns;
            let label = job_label(m, table.core, &table.windows[w + 1]);
            Some((q, format!("{label}: the window")))
        }
        Damage::PastDeadline => {
            let (m, c, w) = spot(&|_| true)?;
            let table = &mut q.modes[m].cores[c];
            let win = &mut table.windows[w];
            win.start_ns = win.deadline_ns.min(p.hyperperiod_ns) - win.budget_ns + 1;
            let label = job_label(m, table.core, win);
            Some((q, format!("{label}: the window ends at")))
        }
        Damage::WrongCore => {
            let (m, c, w) = spot(&|_| true)?;
            let cores = &mut q.modes[m].cores;
            let moved = cores[c].windows.remove(w);
            match (0..cores.len()).find(|&o| o != c) {
                Some(o) => {
                    let at = cores[o]
                        .windows
                        .partition_point(|x| x.start_ns <= moved.start_ns);
                    let label = job_label(m, cores[o].core, &moved);
                    cores[o].windows.insert(at, moved);
                    Some((q, format!("{label}: on the wrong core")))
                }
                None => {
                    cores[c].windows.insert(w, moved);
                    cores[c].core = 1 - cores[c].core;
                    let label = job_label(m, cores[c].core, &cores[c].windows[w]);
                    Some((q, format!("{label}: on the wrong core")))
                }
            }
        }
        Damage::Missing => {
            let (m, c, w) = spot(&|_| true)?;
            let table = &mut q.modes[m].cores[c];
            let gone = table.windows.remove(w);
            let label = job_label(m, table.core, &gone);
            Some((q, format!("{label}: missing")))
        }
        Damage::Duplicate => {
            let (m, c, w) = spot(&|_| true)?;
            let table = &mut q.modes[m].cores[c];
            let copy = table.windows[w].clone();
            let label = job_label(m, table.core, &copy);
            table.windows.insert(w + 1, copy);
            Some((q, format!("{label}: appears twice")))
        }
        Damage::BeforeRelease => {
            let (m, c, w) = spot(&|&(m, c, w)| p.modes[m].cores[c].windows[w].release_ns > 0)?;
            let table = &mut q.modes[m].cores[c];
            let win = &mut table.windows[w];
            win.start_ns = win.release_ns - 1;
            let label = job_label(m, table.core, win);
            Some((q, format!("{label}: the window starts at")))
        }
        Damage::SmallSizing => {
            let i = pick % p.channels.len().max(1);
            let s = q.channels.get_mut(i)?;
            // Synthesis sizes exactly what is needed, so one less must be refused.
            if pick.is_multiple_of(2) && s.max_borrowed > 1 {
                s.max_borrowed -= 1;
                Some((q, format!("channel `ch{i}`: max_borrowed")))
            } else {
                s.buffer = s.buffer.checked_sub(1)?;
                Some((q, format!("channel `ch{i}`: buffer")))
            }
        }
        Damage::WrongChainBound => {
            let i = pick % p.chains.len().max(1);
            let b = q.chains.get_mut(i)?;
            b.mode?;
            b.max_data_age_ns += 1;
            Some((q, format!("chain `k{i}`: max_data_age_ns")))
        }
    }
}

#[test]
fn the_verifier_reports_every_kind_of_damage_to_a_valid_plan() {
    let applied: Vec<Cell<u32>> = Damage::ALL.iter().map(|_| Cell::new(0)).collect();
    runner(200)
        .run(&(deployments(), any::<usize>()), |(d, pick)| {
            let Ok(p) = plan::synthesize(&d) else {
                return Ok(());
            };
            for (i, &kind) in Damage::ALL.iter().enumerate() {
                let Some((bad, must)) = damage(&p, kind, pick) else {
                    continue;
                };
                applied[i].set(applied[i].get() + 1);
                let v = violations(&d, &bad);
                prop_assert!(
                    v.iter()
                        .any(|m| m.contains(&must) && m.contains(kind.words())),
                    "{:?}: no violation contains {:?} and {:?}: {:#?}",
                    kind,
                    must,
                    kind.words(),
                    v
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let counts: Vec<(Damage, u32)> = Damage::ALL
        .iter()
        .zip(&applied)
        .map(|(&k, c)| (k, c.get()))
        .collect();
    eprintln!("damage applied: {counts:?}");
    for (kind, n) in counts {
        assert!(n >= 20, "{kind:?} was applied only {n} times");
    }
}

/// Tiny single-core task sets: 1 to 5 tasks with periods 4 or 8 ms (at most 7 jobs per
/// hyperperiod), budgets 10% to 70% of the period.
fn tiny_sets() -> impl Strategy<Value = Deployment> {
    prop::collection::vec(
        (
            prop::sample::select(&[4u64, 8][..]),
            100u64..=700,
            0u64..=1000,
            0u64..1000,
        ),
        1..=5,
    )
    .prop_filter("at most 7 jobs", |ts| {
        ts.iter().map(|t| 8 / t.0).sum::<u64>() <= 7
    })
    .prop_map(|ts| {
        let n = ts.len();
        let tasks = ts
            .into_iter()
            .enumerate()
            .map(|(i, (p, b, l, o))| task(i, p, b, l, o, 0))
            .collect();
        deployment(tasks, vec![(0..n).collect()], 0, Vec::new(), Vec::new())
    })
}

/// Whether some order of the jobs, each started as early as possible, meets every
/// `start >= release` and `start + budget <= min(deadline, hyperperiod)`: an exhaustive
/// search written independently of the planner.
fn brute_force_feasible(d: &Deployment) -> bool {
    let h = d.hyperperiod_ns;
    let mut jobs = Vec::new();
    for t in &d.tasks {
        let mut release = t.offset_ns;
        while release < h {
            jobs.push((release, t.budget_ns, (release + t.let_ns).min(h)));
            release += t.period_ns;
        }
    }
    fn place(jobs: &[(u64, u64, u64)], used: &mut Vec<bool>, free_at: u64, left: usize) -> bool {
        if left == 0 {
            return true;
        }
        for j in 0..jobs.len() {
            if used[j] {
                continue;
            }
            let (release, budget, due) = jobs[j];
            let end = free_at.max(release) + budget;
            if end > due {
                continue;
            }
            used[j] = true;
            let ok = place(jobs, used, end, left - 1);
            used[j] = false;
            if ok {
                return true;
            }
        }
        false
    }
    let mut used = vec![false; jobs.len()];
    place(&jobs, &mut used, 0, jobs.len())
}

#[test]
fn on_tiny_sets_synthesis_succeeds_exactly_when_a_table_exists() {
    let feasible = Cell::new(0u32);
    let infeasible_below_full_load = Cell::new(0u32);
    let proved_by_search = Cell::new(0u32);
    runner(300)
        .run(&tiny_sets(), |d| {
            let exists = brute_force_feasible(&d);
            let load: u128 = d
                .tasks
                .iter()
                .map(|t| (d.hyperperiod_ns / t.period_ns * t.budget_ns) as u128)
                .sum();
            match plan::synthesize(&d) {
                Ok(p) => {
                    prop_assert!(
                        exists,
                        "synthesis found a table the brute force says cannot exist"
                    );
                    prop_assert!(violations(&d, &p).is_empty());
                    feasible.set(feasible.get() + 1);
                }
                Err(e) => {
                    prop_assert!(!exists, "a table exists but synthesis refused: {}", e);
                    prop_assert!(!e.to_string().contains("stopped at its limit"), "{}", e);
                    let text = e.to_string();
                    if text.contains("exhaustive search") {
                        proved_by_search.set(proved_by_search.get() + 1);
                    }
                    if load <= d.hyperperiod_ns as u128 {
                        prop_assert!(
                            text.contains("exhaustive search")
                                || text.contains("necessary condition"),
                            "{}",
                            text
                        );
                        infeasible_below_full_load.set(infeasible_below_full_load.get() + 1);
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "tiny sets: {} feasible, {} infeasible at utilization <= 1, {} proved infeasible by the search",
        feasible.get(),
        infeasible_below_full_load.get(),
        proved_by_search.get()
    );
    assert!(feasible.get() >= 50, "too few feasible tiny sets");
    assert!(
        infeasible_below_full_load.get() >= 20,
        "too few infeasible tiny sets below full utilization"
    );
    assert!(
        proved_by_search.get() >= 10,
        "too few infeasibility proofs by the exhaustive search"
    );
}
