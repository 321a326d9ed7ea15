//! The update journal and A/B slots against power cuts and kills at every step, and on
//! real files. Test names follow the transitions of the state machine in `takt::ota`.

use std::os::unix::fs::PermissionsExt;

use takt::ota::bundle::Entry;
use takt::ota::journal::{Journal, JournalError, Recovery, UpdateState};
use takt::ota::slots::{self, Slot};
use takt::ota::storage::{FsStorage, Op, SimStorage, Storage};

const APP: &str = "planner";

/// The files of version `v`: both differ per version, so a slot holding a mix shows.
fn entries(v: u64) -> Vec<Entry> {
    vec![
        Entry {
            name: "planner".to_string(),
            mode: 0o755,
            bytes: format!("#!planner v{v}\n").repeat(50).into_bytes(),
        },
        Entry {
            name: "etc/policy.toml".to_string(),
            mode: 0o644,
            bytes: format!("time_gap_s = 1.{v}\n").into_bytes(),
        },
    ]
}

/// Checks that the running slot holds exactly one complete version, file for file, and
/// returns it.
fn running_version<S: Storage>(j: &Journal<S>) -> u64 {
    let (slot, version) = j.record().running();
    let stamp = slots::verify(j.storage(), APP, slot).expect("the running slot is complete");
    assert_eq!(stamp.version, version, "slot {slot} holds another version");
    for e in entries(version) {
        let path = format!("{APP}/slot-{slot}/{}", e.name);
        let bytes = j.storage().read(&path, 1 << 20).expect("readable");
        assert_eq!(
            bytes.as_deref(),
            Some(&e.bytes[..]),
            "{path} mixes versions"
        );
    }
    version
}

fn installed_v1() -> SimStorage {
    let j = Journal::install(SimStorage::new(), APP, 1, &entries(1)).expect("install");
    j.into_storage()
}

/// Drives whatever state recovery left (a rest state or `Staged`) to `target` committed.
fn finish_update(j: &mut Journal<&mut SimStorage>, target: u64) {
    // At most two rounds: an update left staged by recovery, then the target.
    for _ in 0..2 {
        if j.record().installed_version >= target {
            break;
        }
        if j.record().state.is_rest() {
            j.stage(target, &entries(target)).expect("stage");
        }
        j.activate().expect("activate");
        j.switched().expect("switched");
        j.commit().expect("commit");
    }
    assert_eq!(j.record().installed_version, target);
    assert_eq!(running_version(j), target);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    PowerCut,
    Kill,
}

/// Runs `steps` on a copy of `base` with a failure before mutating call `cut`; returns
/// the storage after the failure (or `None` when the steps finished before `cut`) and
/// the version whose commit had returned.
fn run_with_cut(
    base: &SimStorage,
    cut: usize,
    failure: Failure,
    steps: &dyn Fn(&mut Journal<&mut SimStorage>) -> Result<(), JournalError>,
) -> Option<SimStorage> {
    let mut s = base.clone();
    s.cut_before(cut);
    let outcome = Journal::open(&mut s, APP).and_then(|(mut j, _)| steps(&mut j));
    if outcome.is_ok() {
        return None;
    }
    match failure {
        Failure::PowerCut => s.power_cut(),
        Failure::Kill => s.crash(),
    }
    Some(s)
}

/// Recovers `s`, also with a second failure at every call of the recovery itself, and
/// checks the invariants each time. Returns the recovered journal's storage and how many
/// recoveries were checked.
fn recover_everywhere(s: &SimStorage, failure: Failure, old: u64, new: u64) -> (SimStorage, usize) {
    let mut checked = 0;
    for r in 0.. {
        let mut again = s.clone();
        let start = again.ops().len();
        again.cut_before(start + r);
        let first = Journal::open(&mut again, APP).map(|_| ());
        let done = first.is_ok();
        if done {
            // Recovery finished before the cut: disarm it, nothing is lost.
            again.crash();
        } else {
            match failure {
                Failure::PowerCut => again.power_cut(),
                Failure::Kill => again.crash(),
            }
        }
        {
            let (j, _) = Journal::open(&mut again, APP).expect("recovery opens");
            let v = running_version(&j);
            assert!(
                v == old || v == new,
                "running version {v}: neither {old} nor {new}"
            );
            assert!(
                !matches!(
                    j.record().state,
                    UpdateState::Activating { .. } | UpdateState::Probation { .. }
                ),
                "recovery left a transition in flight: {:?}",
                j.record().state
            );
            assert_eq!(
                v,
                j.record().installed_version,
                "after recovery the installed version runs"
            );
        }
        checked += 1;
        // The system stays usable: the update can always be completed afterwards.
        let mut probe = again.clone();
        let (mut pj, _) = Journal::open(&mut probe, APP).expect("reopens");
        finish_update(&mut pj, 3);
        if done {
            return (again, checked);
        }
    }
    unreachable!("the loop returns once recovery runs without a cut")
}

fn stage_activate_commit(j: &mut Journal<&mut SimStorage>) -> Result<(), JournalError> {
    j.stage(2, &entries(2))?;
    j.activate()?;
    j.switched()?;
    j.commit()
}

fn stage_activate_roll_back(j: &mut Journal<&mut SimStorage>) -> Result<(), JournalError> {
    j.stage(2, &entries(2))?;
    j.activate()?;
    j.switched()?;
    j.roll_back()
}

/// Cuts at every mutating call of `steps`; returns (cut points, recoveries checked).
fn cut_everywhere(
    failure: Failure,
    steps: &dyn Fn(&mut Journal<&mut SimStorage>) -> Result<(), JournalError>,
    expect_after_full_run: u64,
) -> (usize, usize) {
    let base = installed_v1();
    let first = base.ops().len();
    let mut cuts = 0;
    let mut recoveries = 0;
    let mut seen_new = false;
    for cut in first.. {
        let Some(s) = run_with_cut(&base, cut, failure, steps) else {
            // No cut hit: the steps ran to the end.
            let mut s = base.clone();
            let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
            steps(&mut j).expect("runs without a cut");
            assert_eq!(running_version(&j), expect_after_full_run);
            break;
        };
        cuts += 1;
        let (recovered, n) = recover_everywhere(&s, failure, 1, 2);
        recoveries += n;
        let mut recovered = recovered;
        let (j, _) = Journal::open(&mut recovered, APP).expect("opens");
        let v = running_version(&j);
        // Nothing committed is lost: once version 2 is installed, every later cut keeps it.
        if seen_new {
            assert_eq!(v, 2, "cut {cut}: a committed version was lost");
        }
        seen_new |= v == 2;
    }
    (cuts, recoveries)
}

#[test]
fn transitions_1_2_3_4_survive_a_power_cut_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::PowerCut, &stage_activate_commit, 2);
    println!(
        "stage-activate-commit: {cuts} power-cut points covered, {recoveries} recoveries checked (including cuts during recovery)"
    );
    assert!(cuts >= 20, "only {cuts} cut points");
}

#[test]
fn transitions_1_2_3_4_survive_a_kill_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::Kill, &stage_activate_commit, 2);
    println!("stage-activate-commit: {cuts} kill points covered, {recoveries} recoveries checked");
    assert!(cuts >= 20, "only {cuts} cut points");
}

#[test]
fn transitions_1_2_3_5_survive_a_power_cut_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::PowerCut, &stage_activate_roll_back, 1);
    println!(
        "stage-activate-rollback: {cuts} power-cut points covered, {recoveries} recoveries checked"
    );
    assert!(cuts >= 20, "only {cuts} cut points");
}

#[test]
fn transition_4_commit_moves_the_installed_version_and_slot() {
    let mut s = installed_v1();
    let (mut j, rec) = Journal::open(&mut s, APP).expect("opens");
    assert_eq!(rec, Recovery::Nothing);
    assert_eq!(j.stage(2, &entries(2)).expect("stages"), Slot::B);
    assert_eq!(running_version(&j), 1, "staging does not switch");
    j.activate().expect("activates");
    j.switched().expect("switches");
    assert_eq!(j.record().running(), (Slot::B, 2));
    assert_eq!(
        j.record().installed_version,
        1,
        "probation is not committed"
    );
    j.commit().expect("commits");
    assert_eq!(j.record().installed_slot, Slot::B);
    assert_eq!(
        j.record().state,
        UpdateState::Committed {
            slot: Slot::B,
            version: 2
        }
    );
    // The next update goes into the other slot again.
    assert_eq!(j.stage(3, &entries(3)).expect("stages"), Slot::A);
}

#[test]
fn transition_5_roll_back_marks_the_version_bad_and_it_is_never_staged_again() {
    let mut s = installed_v1();
    let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
    j.stage(2, &entries(2)).expect("stages");
    j.activate().expect("activates");
    j.switched().expect("switches");
    j.roll_back().expect("rolls back");
    assert_eq!(running_version(&j), 1);
    assert_eq!(j.record().bad_versions, vec![2]);
    assert!(matches!(
        j.stage(2, &entries(2)),
        Err(JournalError::KnownBad { version: 2, .. })
    ));
    j.stage(3, &entries(3))
        .expect("a newer version may be staged");
}

#[test]
fn transition_1_refuses_older_or_equal_versions_and_busy_states() {
    let mut s = installed_v1();
    let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
    assert!(matches!(
        j.stage(1, &entries(1)),
        Err(JournalError::NotNewer {
            version: 1,
            installed_version: 1,
            ..
        })
    ));
    j.stage(2, &entries(2)).expect("stages");
    assert!(matches!(
        j.stage(3, &entries(3)),
        Err(JournalError::WrongState { .. })
    ));
    assert!(matches!(j.commit(), Err(JournalError::WrongState { .. })));
    assert!(matches!(
        j.roll_back(),
        Err(JournalError::WrongState { .. })
    ));
}

#[test]
fn recovery_r2_and_r3_revert_interrupted_activation_and_probation() {
    let mut s = installed_v1();
    {
        let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
        j.stage(2, &entries(2)).expect("stages");
        j.activate().expect("activates");
    }
    let (mut j, rec) = Journal::open(&mut s, APP).expect("opens");
    assert_eq!(rec, Recovery::RevertedActivation);
    assert!(matches!(
        j.record().state,
        UpdateState::Staged { version: 2, .. }
    ));
    j.activate().expect("activates");
    j.switched().expect("switches");
    drop(j);
    let (j, rec) = Journal::open(&mut s, APP).expect("opens");
    assert_eq!(rec, Recovery::RevertedProbation);
    assert_eq!(running_version(&j), 1);
    assert!(
        j.record().bad_versions.is_empty(),
        "a power cut is not the version's fault"
    );
}

#[test]
fn recovery_r1_drops_a_staged_slot_that_was_damaged() {
    let mut s = installed_v1();
    {
        let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
        j.stage(2, &entries(2)).expect("stages");
    }
    s.write("planner/slot-b/planner", b"damaged")
        .expect("writes");
    let (j, rec) = Journal::open(&mut s, APP).expect("opens");
    assert_eq!(rec, Recovery::DroppedIncompleteStage);
    assert_eq!(j.record().state, UpdateState::Idle);
    assert_eq!(running_version(&j), 1);
}

#[test]
fn sim_storage_loses_what_was_not_fsynced() {
    let mut s = SimStorage::new();
    s.create_dir("d").expect("mkdir");
    s.write("d/a", b"1").expect("write");
    s.fsync_file("d/a").expect("fsync");
    s.power_cut();
    assert_eq!(
        s.read("d/a", 10).expect("read"),
        None,
        "dir entry not fsynced"
    );
    s.write("d/a", b"1").expect("write");
    s.fsync_dir("d").expect("fsync dir");
    s.power_cut();
    assert_eq!(
        s.read("d/a", 10).expect("read"),
        Some(vec![]),
        "content not fsynced"
    );
    s.write("d/a", b"2").expect("write");
    s.fsync_file("d/a").expect("fsync");
    s.write("d/b", b"3").expect("write");
    s.fsync_file("d/b").expect("fsync");
    s.rename("d/b", "d/a").expect("rename");
    s.power_cut();
    assert_eq!(
        s.read("d/a", 10).expect("read"),
        Some(b"2".to_vec()),
        "rename not durable"
    );
    let before = s.ops().len();
    s.cut_before(before);
    assert!(s.write("d/c", b"x").is_err());
    assert_eq!(s.ops().len(), before, "the cut call had no effect");
    assert!(matches!(s.ops().last(), Some(Op::Rename(_, _))));
    s.power_cut();
    assert_eq!(s.read("d/c", 10).expect("read"), None);
}

#[test]
fn real_files_take_the_whole_cycle_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let j = Journal::install(FsStorage::new(&root), APP, 1, &entries(1)).expect("install");
    assert_eq!(running_version(&j), 1);
    drop(j);
    let (mut j, rec) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(rec, Recovery::Nothing);
    j.stage(2, &entries(2)).expect("stages");
    j.activate().expect("activates");
    j.switched().expect("switches");
    j.commit().expect("commits");
    drop(j);
    // A leftover temporary journal (a transition that was never renamed) is ignored.
    std::fs::write(root.join("planner/journal.tmp"), b"half").expect("write");
    let (mut j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert!(!root.join("planner/journal.tmp").exists());
    assert_eq!(running_version(&j), 2);
    let exe = root.join("planner/slot-b/planner");
    let mode = std::fs::metadata(&exe)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read(root.join("planner/slot-b/etc/policy.toml")).expect("read"),
        entries(2)[1].bytes
    );
    j.stage(3, &entries(3)).expect("stages into slot a");
    assert!(
        !root.join("planner/slot-a/.stamp").exists()
            || slots::verify(j.storage(), APP, Slot::A).is_ok()
    );
    j.activate().expect("activates");
    j.switched().expect("switches");
    j.roll_back().expect("rolls back");
    drop(j);
    let (j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(running_version(&j), 2);
    assert_eq!(j.record().bad_versions, vec![3]);
    drop(j);
    // A damaged journal is an error naming the file, not a panic.
    std::fs::write(root.join("planner/journal"), b"TAKTJNL1garbage").expect("write");
    let err = Journal::open(FsStorage::new(&root), APP).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt { path, .. } if path == "planner/journal"),
        "{err}"
    );
}
