//! The update journal and A/B slots against power cuts and kills at every step, and on
//! real files. Test names follow the transitions of the state machine in `takt::ota`.

use std::os::unix::fs::PermissionsExt;

use takt::ota::bundle::Entry;
use takt::ota::journal::{Journal, JournalError, Recovery, UpdateState};
use takt::ota::lock::{LockError, StateLock};
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
        finish_update(&mut pj, new + 1);
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
    new: u64,
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
        let (recovered, n) = recover_everywhere(&s, failure, 1, new);
        recoveries += n;
        let mut recovered = recovered;
        let (j, _) = Journal::open(&mut recovered, APP).expect("opens");
        let v = running_version(&j);
        // Nothing committed is lost: once version 2 is installed, every later cut keeps it.
        if seen_new {
            assert_eq!(v, new, "cut {cut}: a committed version was lost");
        }
        seen_new |= v == new;
    }
    (cuts, recoveries)
}

#[test]
fn transitions_1_2_3_4_survive_a_power_cut_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::PowerCut, &stage_activate_commit, 2, 2);
    println!(
        "stage-activate-commit: {cuts} power-cut points covered, {recoveries} recoveries checked (including cuts during recovery)"
    );
    assert!(cuts >= 20, "only {cuts} cut points");
}

#[test]
fn transitions_1_2_3_4_survive_a_kill_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::Kill, &stage_activate_commit, 2, 2);
    println!("stage-activate-commit: {cuts} kill points covered, {recoveries} recoveries checked");
    assert!(cuts >= 20, "only {cuts} cut points");
}

#[test]
fn transitions_1_2_3_5_survive_a_power_cut_at_every_write_fsync_and_rename() {
    let (cuts, recoveries) = cut_everywhere(Failure::PowerCut, &stage_activate_roll_back, 1, 2);
    println!(
        "stage-activate-rollback: {cuts} power-cut points covered, {recoveries} recoveries checked"
    );
    assert!(cuts >= 20, "only {cuts} cut points");
}

fn stage_restage_activate_commit(j: &mut Journal<&mut SimStorage>) -> Result<(), JournalError> {
    j.stage(2, &entries(2))?;
    j.stage(3, &entries(3))?;
    j.activate()?;
    j.switched()?;
    j.commit()
}

#[test]
fn transition_1b_a_newer_bundle_replaces_a_staged_one_and_survives_a_power_cut_anywhere() {
    let mut s = installed_v1();
    let (mut j, _) = Journal::open(&mut s, APP).expect("opens");
    assert_eq!(j.stage(2, &entries(2)).expect("stages"), Slot::B);
    // Before, a staged update that was never activated blocked every newer bundle.
    assert_eq!(j.stage(3, &entries(3)).expect("restages"), Slot::B);
    assert_eq!(
        j.record().state,
        UpdateState::Staged {
            slot: Slot::B,
            version: 3
        }
    );
    assert!(
        matches!(j.stage(3, &entries(3)), Ok(Slot::B)),
        "the same version may be staged again while nothing runs it"
    );
    let (cuts, recoveries) =
        cut_everywhere(Failure::PowerCut, &stage_restage_activate_commit, 3, 3);
    println!("stage-restage-activate-commit: {cuts} power-cut points, {recoveries} recoveries");
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
    assert!(matches!(j.commit(), Err(JournalError::WrongState { .. })));
    assert!(matches!(
        j.roll_back(),
        Err(JournalError::WrongState { .. })
    ));
    // Once the switch has begun, no bundle may be staged over it.
    j.activate().expect("activates");
    assert!(matches!(
        j.stage(3, &entries(3)),
        Err(JournalError::WrongState { .. })
    ));
    assert!(matches!(j.commit(), Err(JournalError::WrongState { .. })));
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
    // A damaged journal is no longer fatal (R5): it is kept aside and the journal is
    // rebuilt from the anti-rollback record and the intact slot.
    std::fs::write(root.join("planner/journal"), b"TAKTJNL1garbage").expect("write");
    let (j, _) = Journal::open(FsStorage::new(&root), APP).expect("rebuilds");
    assert_eq!(running_version(&j), 2);
    assert!(root.join("planner/journal.corrupt").exists());
    assert!(
        j.notes().iter().any(|n| n.contains("planner/journal")),
        "{:?}",
        j.notes()
    );
}

// --- #12.7: durable anti-rollback and slot integrity -----------------------------------

/// A state directory with `planner` version 1 in slot a and version 2 committed in slot b.
fn committed_v2_on_disk() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let j = Journal::install(FsStorage::new(&root), APP, 1, &entries(1)).expect("install");
    drop(j);
    let (mut j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    j.stage(2, &entries(2)).expect("stages");
    j.activate().expect("activates");
    j.switched().expect("switches");
    j.commit().expect("commits");
    (dir, root)
}

#[test]
fn anti_rollback_survives_the_loss_of_the_journal() {
    let (_dir, root) = committed_v2_on_disk();
    std::fs::remove_file(root.join("planner/journal")).expect("delete the journal");
    // The supervisor's way in: a missing journal used to mean a factory state at version 0.
    let (mut j, _) = Journal::open_or_factory(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(j.record().rollback_floor(), 2);
    assert_eq!(running_version(&j), 2);
    assert!(
        j.notes().iter().any(|n| n.contains("rebuilt")),
        "{:?}",
        j.notes()
    );
    for old in [1, 2] {
        let err = j.stage(old, &entries(old)).unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::NotNewer {
                    installed_version: 2,
                    ..
                }
            ),
            "version {old}: {err}"
        );
    }
    j.stage(3, &entries(3))
        .expect("a newer version still stages");
}

#[test]
fn anti_rollback_survives_the_loss_or_corruption_of_the_counter_record() {
    let (_dir, root) = committed_v2_on_disk();
    let record = root.join(".anti-rollback/planner");
    let good = std::fs::read(&record).expect("the record exists");
    std::fs::remove_file(&record).expect("delete");
    let (j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(j.record().rollback_floor(), 2);
    assert!(
        j.notes().iter().any(|n| n.contains("missing")),
        "{:?}",
        j.notes()
    );
    drop(j);
    assert_eq!(std::fs::read(&record).expect("rewritten"), good);
    // Every truncation and every flipped byte: a clear note, the counter holds, no panic.
    for cut in 0..good.len() {
        std::fs::write(&record, &good[..cut]).expect("write");
        let (j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
        assert_eq!(j.record().rollback_floor(), 2, "truncated at {cut}");
        assert!(!j.notes().is_empty(), "truncated at {cut}: not reported");
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        std::fs::write(&record, &bad).expect("write");
        let (j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
        assert_eq!(j.record().rollback_floor(), 2, "byte {i} flipped");
        assert!(
            j.notes()
                .iter()
                .any(|n| n.contains(".anti-rollback/planner")),
            "byte {i}: {:?}",
            j.notes()
        );
    }
}

#[test]
fn an_older_copy_of_the_journal_cannot_lower_the_counter() {
    let (_dir, root) = committed_v2_on_disk();
    let at_v2 = std::fs::read(root.join("planner/journal")).expect("read");
    let (mut j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    j.stage(3, &entries(3)).expect("stages");
    j.activate().expect("activates");
    j.switched().expect("switches");
    j.commit().expect("commits");
    drop(j);
    // Someone puts the journal of version 2 back (slot b still holds version 2 intact? no:
    // slot a holds 3 now, slot b 2): the record says 3, and 3 holds.
    std::fs::write(root.join("planner/journal"), &at_v2).expect("write");
    let (mut j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(j.record().rollback_floor(), 3);
    assert!(
        j.notes().iter().any(|n| n.contains("the larger, 3")),
        "{:?}",
        j.notes()
    );
    let err = j.stage(3, &entries(3)).unwrap_err();
    assert!(matches!(err, JournalError::NotNewer { .. }), "{err}");
}

#[test]
fn losing_every_copy_of_the_counter_is_a_refusal_not_a_reset() {
    let (_dir, root) = committed_v2_on_disk();
    std::fs::remove_file(root.join("planner/journal")).expect("delete");
    std::fs::remove_file(root.join(".anti-rollback/planner")).expect("delete");
    let err = Journal::open_or_factory(FsStorage::new(&root), APP).unwrap_err();
    assert!(matches!(err, JournalError::CounterLost { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("planner/journal") && text.contains("version 0"),
        "{text}"
    );
    // Nothing was written: the slots are still there for whoever restores the state.
    assert!(root.join("planner/slot-b/.stamp").exists());
    assert!(!root.join("planner/journal").exists());
    // A journal too large to be one, with the record: rebuilt like a corrupt one.
    let (_dir2, root2) = committed_v2_on_disk();
    std::fs::write(root2.join("planner/journal"), vec![0u8; 1 << 20]).expect("write");
    let (j, _) = Journal::open_or_factory(FsStorage::new(&root2), APP).expect("rebuilds");
    assert_eq!(j.record().rollback_floor(), 2);
    assert!(root2.join("planner/journal.corrupt").exists());
    // A corrupt journal without the record is refused as well.
    std::fs::write(root.join("planner/journal"), b"TAKTJNL2xx").expect("write");
    let err = Journal::open_or_factory(FsStorage::new(&root), APP).unwrap_err();
    assert!(matches!(err, JournalError::CounterLost { .. }), "{err}");
    assert_eq!(
        std::fs::read(root.join("planner/journal")).expect("kept"),
        b"TAKTJNL2xx"
    );
}

/// What an attacker who can write the disk but not read the slot key does: replace the
/// executable and write a stamp for it, with an unkeyed hash where the MAC goes.
fn restamp_without_key(root: &std::path::Path, slot: &str, exe: &[u8]) {
    use sha2::{Digest, Sha256};
    let dir = root.join(format!("planner/slot-{slot}"));
    std::fs::write(dir.join("planner"), exe).expect("replace the executable");
    let files: Vec<(String, u32, [u8; 32])> = ["planner", "etc/policy.toml"]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(name)).expect("read");
            (name.to_string(), 0o755, Sha256::digest(&bytes).into())
        })
        .collect();
    let stamp = slots::SlotStamp { version: 2, files };
    let mut bytes =
        bincode::serde::encode_to_vec(&stamp, bincode::config::standard()).expect("encodes");
    let unkeyed: [u8; 32] = Sha256::digest(&bytes).into();
    bytes.extend_from_slice(&unkeyed);
    std::fs::write(dir.join(".stamp"), bytes).expect("re-stamp");
}

#[test]
fn a_replaced_executable_with_a_recomputed_stamp_is_detected_and_the_other_slot_runs() {
    let (_dir, root) = committed_v2_on_disk();
    restamp_without_key(&root, "b", b"#!/bin/sh\necho owned\n");
    let storage = FsStorage::new(&root);
    let err = slots::verify(&storage, APP, Slot::B).unwrap_err();
    assert!(err.to_string().contains("not authentic"), "{err}");
    // At start: fall back to the other complete slot (R4), with a report.
    let (mut j, rec) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(rec, Recovery::FellBack);
    assert_eq!(running_version(&j), 1);
    assert_eq!(j.record().rollback_floor(), 2, "the counter does not drop");
    assert!(
        j.notes()
            .iter()
            .any(|n| n.contains("fell back to version 1 in slot a")),
        "{:?}",
        j.notes()
    );
    // The next update goes into the slot that was altered, never into the running one.
    assert_eq!(j.stage(3, &entries(3)).expect("stages"), Slot::B);
}

#[test]
fn a_slot_with_a_missing_file_falls_back_to_the_other_complete_slot() {
    let (_dir, root) = committed_v2_on_disk();
    std::fs::remove_file(root.join("planner/slot-b/etc/policy.toml")).expect("delete");
    let (j, rec) = Journal::open_or_factory(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(rec, Recovery::FellBack);
    assert_eq!(running_version(&j), 1);
    drop(j);
    // With both slots damaged, a clear refusal naming both; nothing is written.
    std::fs::write(root.join("planner/slot-a/planner"), b"changed").expect("write");
    let before = std::fs::read(root.join("planner/journal")).expect("read");
    let err = Journal::open(FsStorage::new(&root), APP).unwrap_err();
    assert!(matches!(err, JournalError::NoRunnableSlot { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("slot a") && text.contains("slot b"), "{text}");
    assert_eq!(
        std::fs::read(root.join("planner/journal")).expect("read"),
        before
    );
}

#[test]
fn hostile_stamps_and_slot_keys_are_clear_errors_never_panics() {
    let (_dir, root) = committed_v2_on_disk();
    let stamp_path = root.join("planner/slot-b/.stamp");
    let good = std::fs::read(&stamp_path).expect("read");
    let storage = FsStorage::new(&root);
    for cut in 0..good.len() {
        std::fs::write(&stamp_path, &good[..cut]).expect("write");
        assert!(
            slots::verify(&storage, APP, Slot::B).is_err(),
            "cut at {cut}"
        );
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&stamp_path, &bad).expect("write");
        let err = slots::verify(&storage, APP, Slot::B).unwrap_err();
        assert!(
            err.to_string().contains("planner/slot-b"),
            "byte {i}: {err}"
        );
    }
    std::fs::write(&stamp_path, &good).expect("write");
    slots::verify(&storage, APP, Slot::B).expect("intact again");
    // A stamp as takt wrote it before slot keys (no MAC at all) is named as such.
    let (legacy, _) = bincode::serde::decode_from_slice::<slots::SlotStamp, _>(
        &good[..good.len() - 32],
        bincode::config::standard(),
    )
    .expect("the stamp body decodes");
    let legacy =
        bincode::serde::encode_to_vec(&legacy, bincode::config::standard()).expect("encodes");
    std::fs::write(&stamp_path, &legacy).expect("write");
    let err = slots::verify(&storage, APP, Slot::B).unwrap_err();
    assert!(err.to_string().contains("has no MAC"), "{err}");
    std::fs::write(&stamp_path, &good).expect("write");
    // A stamp copied from one slot to the other is not authentic there.
    let a = std::fs::read(root.join("planner/slot-a/.stamp")).expect("read");
    std::fs::write(&stamp_path, &a).expect("write");
    assert!(slots::verify(&storage, APP, Slot::B).is_err());
    std::fs::write(&stamp_path, &good).expect("write");
    // The key: truncated, replaced, missing.
    let key_path = root.join(slots::KEY_FILE);
    let key = std::fs::read(&key_path).expect("read");
    let mode = std::fs::metadata(&key_path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the slot key is owner-only");
    std::fs::write(&key_path, &key[..5]).expect("write");
    let err = slots::verify(&storage, APP, Slot::B).unwrap_err();
    assert!(err.to_string().contains(".slot-key"), "{err}");
    let mut other = key.clone();
    other[0] ^= 1;
    std::fs::write(&key_path, &other).expect("write");
    assert!(slots::verify(&storage, APP, Slot::B).is_err());
    std::fs::remove_file(&key_path).expect("delete");
    let err = slots::verify(&storage, APP, Slot::B).unwrap_err();
    assert!(err.to_string().contains("no slot key"), "{err}");
    std::fs::write(&key_path, &key).expect("write");
    slots::verify(&storage, APP, Slot::B).expect("intact again");
}

#[test]
fn a_second_holder_of_the_state_directory_is_refused_naming_dir_and_pid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = StateLock::acquire(dir.path(), "takt run").expect("first");
    let err = StateLock::acquire(dir.path(), "takt run").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LockError::Held { .. }), "{text}");
    assert!(
        text.contains(&dir.path().display().to_string())
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(first);
    StateLock::acquire(dir.path(), "takt run").expect("free again after the holder ends");
    // A lock file left with any bytes in it (a holder that died, or junk) locks nobody out.
    std::fs::write(dir.path().join(".lock"), vec![0xffu8; 100_000]).expect("write");
    let lock = StateLock::acquire(dir.path(), "takt run").expect("junk is no lock");
    let err = StateLock::acquire(dir.path(), "takt run").unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(lock);
}

#[test]
fn a_staged_slot_altered_after_staging_is_never_activated() {
    let (_dir, root) = committed_v2_on_disk();
    let (mut j, _) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(j.stage(3, &entries(3)).expect("stages"), Slot::A);
    slots::verify(j.storage(), APP, Slot::A).expect("intact as staged");
    drop(j);
    // Between stage and activate someone swaps the executable and re-stamps it.
    let dir = root.join("planner/slot-a");
    std::fs::write(dir.join("planner"), b"evil").expect("replace");
    use sha2::{Digest, Sha256};
    let files: Vec<(String, u32, [u8; 32])> = ["planner", "etc/policy.toml"]
        .iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(n)).expect("read");
            (n.to_string(), 0o755, Sha256::digest(&bytes).into())
        })
        .collect();
    let mut stamp = bincode::serde::encode_to_vec(
        &slots::SlotStamp { version: 3, files },
        bincode::config::standard(),
    )
    .expect("encodes");
    let unkeyed: [u8; 32] = Sha256::digest(&stamp).into();
    stamp.extend_from_slice(&unkeyed);
    std::fs::write(dir.join(".stamp"), stamp).expect("re-stamp");
    // What the supervisor's activation checks before it starts the new version.
    let err = slots::verify(&FsStorage::new(&root), APP, Slot::A).unwrap_err();
    assert!(err.to_string().contains("not authentic"), "{err}");
    // And at the next start the stage is dropped (R1); version 2 keeps running.
    let (j, rec) = Journal::open(FsStorage::new(&root), APP).expect("opens");
    assert_eq!(rec, Recovery::DroppedIncompleteStage);
    assert_eq!(running_version(&j), 2);
}

/// A read-only state directory: an interrupted probation is recovered (R3) in memory only,
/// so the installed version runs; nothing is written, and every transition is refused.
#[test]
fn read_only_open_recovers_in_memory_writes_nothing_and_refuses_transitions() {
    let mut s = installed_v1();
    {
        let (mut j, _) = Journal::open(&mut s, APP).expect("open");
        j.stage(2, &entries(2)).expect("stage");
        j.activate().expect("activate");
        j.switched().expect("switched");
    }
    let ops = s.ops().len();
    let (mut j, recovery) =
        Journal::open_read_only(&mut s, APP, "read-only file system").expect("open read-only");
    assert_eq!(recovery, Recovery::RevertedProbation);
    assert_eq!(running_version(&j), 1, "the installed version runs");
    assert!(
        j.notes().iter().any(|n| n.contains("in memory only")),
        "{:?}",
        j.notes()
    );
    assert!(matches!(
        j.stage(3, &entries(3)),
        Err(JournalError::ReadOnly { .. })
    ));
    assert!(j.commit().is_err());
    drop(j);
    assert_eq!(s.ops().len(), ops, "a read-only open wrote nothing");
    // The next writable start recovers it for real.
    let (j, recovery) = Journal::open(&mut s, APP).expect("open");
    assert_eq!(recovery, Recovery::RevertedProbation);
    assert_eq!(running_version(&j), 1);
}

/// Anti-rollback on a read-only directory: one copy of the counter missing (which a
/// writable start repairs from the other) cannot be cross-checked and is a refusal, as is
/// a missing journal (which a writable start rebuilds from the counter); two readable
/// copies that disagree run with the larger.
#[test]
fn read_only_open_refuses_a_counter_it_cannot_cross_check() {
    let mut s = installed_v1();
    s.remove(".anti-rollback/planner").expect("remove");
    let err = Journal::open_read_only(&mut s, APP, "ro").expect_err("refused");
    assert!(
        matches!(err, JournalError::ReadOnlyUnchecked { .. })
            && err.to_string().contains(".anti-rollback/planner"),
        "{err}"
    );

    let mut s = installed_v1();
    s.remove("planner/journal").expect("remove");
    let err = Journal::open_read_only(&mut s, APP, "ro").expect_err("refused");
    assert!(
        matches!(err, JournalError::ReadOnlyUnchecked { .. }),
        "{err}"
    );

    let mut s = installed_v1();
    takt::ota::counter::write(&mut s, APP, 5).expect("a newer counter copy");
    let (j, _) = Journal::open_read_only(&mut s, APP, "ro").expect("open read-only");
    assert_eq!(j.record().rollback_floor(), 5, "the larger copy holds");
    assert_eq!(running_version(&j), 1);
    assert!(
        j.notes().iter().any(|n| n.contains("not repaired")),
        "{:?}",
        j.notes()
    );

    // A directory without any trace of the app runs the manifest's code, version 0.
    let mut empty = SimStorage::new();
    let (j, _) = Journal::open_read_only(&mut empty, APP, "ro").expect("factory state");
    assert_eq!(j.record().running(), (Slot::A, 0));
    assert!(empty.ops().is_empty());
}
