//! `takt-soak`: the ACC demo under the shipped `takt` binary for a given time, with random
//! mode switches, `kill -9` of app processes and OTA hot swaps (good versions, and a version
//! that overruns and must be rolled back), while `takt status` is asked every 100 ms. At the
//! end it stops the run and checks every invariant of the fault-injection suite; it prints
//! what it did, each invariant with how often it held, and exits 1 if any broke.
//!
//! ```text
//! cargo build --release
//! target/release/takt-soak --duration 10m [--seed N]
//! ```
//!
//! Not part of the test command (it runs for minutes); needs root for SCHED_FIFO.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;
use takt_verification::harness::{
    self, app, kill_9, no_orphans, no_stale_shm, one_version_per_app, releases_accounted, s,
    status, takt_ok, task_apps, text, wait_running, StatusProbe, Tally, World,
};

const USAGE: &str = "usage: takt-soak [--duration 10m] [--seed N]";

/// Most kills of one app inside the default restart window (60 s) that stay below its
/// restart limit (3): more would rightly escalate and stop the run.
const KILLS_PER_APP_PER_MINUTE: usize = 2;

fn parse_duration(text: &str) -> Option<Duration> {
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    match unit {
        "s" => Some(Duration::from_secs(n)),
        "m" | "min" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// What the soak did, counted.
#[derive(Default)]
struct Actions {
    counts: BTreeMap<&'static str, u64>,
}
impl Actions {
    fn add(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
}

fn main() -> ExitCode {
    let mut duration = Duration::from_secs(600);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--duration", Some(v)) => match parse_duration(v) {
                Some(d) => duration = d,
                None => {
                    eprintln!("takt-soak: --duration {v}: give e.g. 90s, 10m or 1h\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--seed", Some(v)) => match v.parse() {
                Ok(n) => seed = n,
                Err(_) => {
                    eprintln!("takt-soak: --seed {v}: a whole number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("takt-soak: unexpected `{}`\n{USAGE}", args[i]);
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    if !harness::is_root() {
        eprintln!("takt-soak: needs root (SCHED_FIFO dispatchers)");
        return ExitCode::from(2);
    }
    println!("takt-soak: {duration:?}, seed {seed} (repeat with --seed {seed})");
    match soak(duration, seed) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("takt-soak: {e}");
            ExitCode::from(1)
        }
    }
}

fn soak(duration: Duration, seed: u64) -> Result<bool, String> {
    let mut rng = Rng(seed | 1);
    let tally = Tally::default();
    let mut actions = Actions::default();
    let baseline = harness::shm_entries();
    let world = World::acc("soak")?;
    let good: Vec<PathBuf> = vec![
        harness::executable("acc-planning")?,
        harness::executable("acc-planning-v2")?,
    ];
    let overrunning = harness::executable("acc-planning-v3")?;
    let ctl = world.ctl();
    // The run outlives the soak; `takt stop` ends it.
    let run_for = format!("{}s", duration.as_secs() + 600);
    let run = world.start("soak", &run_for)?;
    wait_running(&ctl)?;
    let probe = StatusProbe::start(&ctl);
    let started = Instant::now();
    let mut version = 1u64;
    let mut kills: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    let mut killed_total: BTreeMap<&str, u64> = BTreeMap::new();
    let modes = ["drive", "degraded", "parked"];
    let apps = ["sensing", "planning", "vehicle"];

    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(500 + rng.below(2_500)));
        match rng.below(10) {
            // Mode switches: the run must be in the asked mode soon after.
            0..=3 => {
                let mode = modes[rng.below(modes.len() as u64) as usize];
                let r = takt_ok(&["mode", "set", mode, "--control", s(&ctl)]).and_then(|_| {
                    harness::poll(Duration::from_secs(10), "the mode in effect", || {
                        let (v, _) = status(&ctl)?;
                        (v["mode"] == mode && v["requested_mode"].is_null())
                            .then_some(())
                            .ok_or(format!(
                                "mode {} requested {}",
                                v["mode"], v["requested_mode"]
                            ))
                    })
                });
                actions.add("mode switch");
                tally.check("a requested mode takes effect", r);
            }
            // A crash of one app's process: it restarts at a boundary.
            4..=5 => {
                let name = apps[rng.below(apps.len() as u64) as usize];
                let recent = kills.entry(name.to_string()).or_default();
                recent.retain(|t| t.elapsed() < Duration::from_secs(65));
                if recent.len() >= KILLS_PER_APP_PER_MINUTE {
                    continue;
                }
                let r = (|| {
                    let v = wait_running(&ctl)?;
                    let pid = app(&v, name)
                        .and_then(|a| a["pid"].as_u64())
                        .ok_or(format!("no pid for {name}: {v}"))?;
                    kill_9(pid as u32)?;
                    harness::poll(Duration::from_secs(15), "the app restarted", || {
                        let (v, _) = status(&ctl)?;
                        let a = app(&v, name).cloned().unwrap_or_default();
                        (a["state"] == "running" && a["pid"].as_u64() != Some(pid))
                            .then_some(())
                            .ok_or(format!("{a}"))
                    })
                })();
                recent.push(Instant::now());
                *killed_total.entry(name).or_default() += 1;
                actions.add("kill -9 of an app");
                tally.check("a killed app restarts", r);
            }
            // A hot swap of planning: a good version commits, the overrunning one is
            // rolled back and marked bad.
            _ => {
                version += 1;
                let bad = rng.below(4) == 0;
                let exe = if bad {
                    overrunning.clone()
                } else {
                    good[rng.below(good.len() as u64) as usize].clone()
                };
                let r = (|| {
                    let bundle = world.sign("planning", version, &exe)?;
                    takt_ok(&["ota", "stage", s(&bundle), "--control", s(&ctl)])?;
                    let out = harness::takt(
                        &[
                            "ota",
                            "activate",
                            "planning",
                            "--hot-swap",
                            "--control",
                            s(&ctl),
                        ],
                        harness::CLI_TIMEOUT,
                    )?;
                    if !out.status.success() {
                        return Err(format!("activate: {}", text(&out.stderr)));
                    }
                    let v = harness::poll(Duration::from_secs(40), "probation decided", || {
                        let out = takt_ok(&["ota", "status", "--json", "--control", s(&ctl)])?;
                        let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
                        let a = app(&v, "planning").cloned().unwrap_or_default();
                        if a["state"] != "probation" && a["state"] != "activating" {
                            Ok(a)
                        } else {
                            Err(format!("{a}"))
                        }
                    })?;
                    let committed = v["installed_version"] == version;
                    // In a mode that releases none of planning's tasks its probation cannot
                    // judge it: rolled back without blame, whichever version it was.
                    let unjudged = v["last_result"]
                        .as_str()
                        .is_some_and(|r| r.contains("jobs it must run to be judged"));
                    if unjudged && !committed {
                        return Ok(());
                    }
                    match (bad, committed) {
                        (false, true) | (true, false) => Ok(()),
                        (false, false) => Err(format!("good version {version} not committed: {v}")),
                        (true, true) => {
                            Err(format!("overrunning version {version} committed: {v}"))
                        }
                    }
                })();
                actions.add(if bad {
                    "hot swap to an overrunning version"
                } else {
                    "hot swap to a good version"
                });
                let name = if bad {
                    "an overrunning version is rolled back"
                } else {
                    "a good version is committed"
                };
                tally.check(name, r);
            }
        }
        let r = wait_running(&ctl).map(|_| ());
        tally.check("every app running after each action", r);
        let r = harness::ota_live(&ctl).and_then(|v| one_version_per_app(&v));
        tally.check("old or new version, never a mix", r);
    }

    let report = probe.finish();
    println!(
        "status: answered {} times, max {:?}, {} slower than {:?}, {} unanswered",
        report.answered,
        report.max_latency,
        report.slow,
        harness::STATUS_PROMISE,
        report.unanswered.len()
    );
    tally.check(
        "status answered throughout",
        if report.unanswered.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{:?}",
                report.unanswered.iter().take(3).collect::<Vec<_>>()
            ))
        },
    );
    let r =
        takt_ok(&["stop", "--control", s(&ctl)]).and_then(|_| run.wait(Duration::from_secs(120)));
    let out = match r {
        Ok(out) => out,
        Err(e) => {
            tally.check("the run stops", Err(e));
            print_summary(&actions, &tally, started);
            return Ok(false);
        }
    };
    tally.check(
        "the run stops cleanly",
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}", out.status, text(&out.stderr)))
        },
    );
    tally.check(
        "no orphan process",
        no_orphans(&world, &[], Duration::from_secs(10)),
    );
    tally.check(
        "no stale shared memory",
        no_stale_shm(&baseline, Duration::from_secs(10)),
    );
    tally.check(
        "old or new version, never a mix (state directory)",
        world.ota_offline().and_then(|v| one_version_per_app(&v)),
    );
    let killed: Vec<(&str, u64)> = killed_total.into_iter().collect();
    let accounted = task_apps(&world.manifest).and_then(|apps| {
        let a = harness::accounting(&world.trace_files("soak"))?;
        println!(
            "releases: planned {}, seen {}, missed {}, duplicate {}",
            a.planned, a.seen, a.missed, a.duplicate
        );
        releases_accounted(&a, &apps, &killed)
    });
    tally.check("every planned release accounted for", accounted);
    print_summary(&actions, &tally, started);
    Ok(tally.broken() == 0)
}

fn print_summary(actions: &Actions, tally: &Tally, started: Instant) {
    println!("\nsoaked {:?}", started.elapsed());
    println!("action                                      count");
    for (what, n) in &actions.counts {
        println!("{what:<42} {n:>6}");
    }
    println!();
    print!("{}", tally.summary());
    println!(
        "{}",
        if tally.broken() == 0 {
            "every invariant held"
        } else {
            "INVARIANTS BROKEN"
        }
    );
}
