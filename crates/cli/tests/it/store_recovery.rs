//! Damage to the playlist store on disk, with real controllers: a damaged snapshot keeps a
//! member's acknowledged offline edits (the log waits, a sync brings the history back), a
//! flipped byte in the middle of the log costs no track, and a write that cannot be saved
//! fails without showing up in memory. Every problem is reported in `status --json` and
//! `doctor`, with where the set-aside bytes are kept.

use std::path::{Path, PathBuf};

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn sorted_titles(node: &Node, id: &str) -> Vec<String> {
    let mut t = show(node, id).map(|p| titles(&p)).unwrap_or_default();
    t.sort();
    t
}

/// Waits until `node` shows playlist `id` with exactly `expected` titles (any order).
fn wait_titles(node: &Node, id: &str, expected: &[&str]) {
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE * 2;
    while std::time::Instant::now() < deadline {
        last = sorted_titles(node, id);
        if last == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!(
        "{} never showed {want:?}; last: {last:?}\n{}",
        node.home.display(),
        node.log()
    );
}

fn add(node: &Node, id: &str, title: &str) {
    cli_json(
        node,
        &["playlist", "add", id, "--title", title, "--artist", "x"],
    );
}

fn create(node: &Node, name: &str) -> String {
    cli_json(node, &["playlist", "create", name])["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn playlist_dir(home: &Path, id: &str) -> PathBuf {
    home.join("store").join(id)
}

fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The problems `status --json` reports for playlist `id`.
fn problems_for(node: &Node, id: &str) -> Vec<Value> {
    node.status()
        .and_then(|s| s["store_problems"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["playlist_id"] == id)
        .collect()
}

/// A store check of `doctor --json` naming `id`.
fn doctor_store_check(node: &Node, id: &str) -> Value {
    let out = node.cli(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "store" && c["title"].as_str().is_some_and(|t| t.contains(id)))
        .cloned()
        .unwrap_or_else(|| panic!("no store check for {id}: {report}"))
}

/// The repro: B's five offline tracks are only in its update log when 4 bytes of its
/// snapshot are overwritten. B starts: the snapshot is moved aside, the playlist listed as
/// damaged, an import of its mirror refused; a sync from A brings the history back and the
/// five tracks apply — on both members, and after a clean stop.
#[test]
fn a_damaged_snapshot_keeps_a_members_offline_edits_through_a_sync() {
    let home_a = tempfile::tempdir().expect("home");
    let home_b = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home_a.path(), &LOOPBACK_RUN_ARGS);
    let mut b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    let id = create(&a, "Shared");
    let link = cli_json(&a, &["playlist", "share", &id])["link"]
        .as_str()
        .expect("link")
        .to_string();
    add(&a, &id, "a1");
    let out = b.cli(&["open", "--wait", "--timeout", "20", &link]);
    assert!(
        out.status.success(),
        "join: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_titles(&b, &id, &["a1"]);
    // B's clean stop folds everything into its snapshot; A goes away too.
    assert!(b.stop_with(Signal::SIGTERM).success());
    assert!(a.stop_with(Signal::SIGTERM).success());

    // B, offline, adds five tracks: acknowledged, in its update log only (it is killed, so
    // no clean-stop compaction folds them into the snapshot).
    let mut b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    let offline = ["b1", "b2", "b3", "b4", "b5"];
    for t in offline {
        add(&b, &id, t);
    }
    // (The Markdown mirror catches up within a second; it is what `import` is tried with.)
    wait_until("B's mirror to hold b5", PATIENCE, || {
        files_starting(&home_b.path().join("playlists"), "")
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("b5")))
            .then_some(())
    });
    b.stop_with(Signal::SIGKILL);
    let pdir = playlist_dir(home_b.path(), &id);
    assert!(
        std::fs::metadata(pdir.join("updates.log"))
            .expect("log")
            .len()
            > 0
    );
    let snapshot = pdir.join("snapshot.loro");
    let mut bytes = std::fs::read(&snapshot).expect("snapshot");
    let at = bytes.len() / 2;
    bytes[at..at + 4].copy_from_slice(b"\xde\xad\xbe\xef");
    std::fs::write(&snapshot, &bytes).expect("damage the snapshot");

    let b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    let aside = files_starting(&pdir, "snapshot.loro.damaged-");
    assert_eq!(aside.len(), 1, "the damaged snapshot is moved aside");
    assert_eq!(std::fs::read(&aside[0]).expect("kept"), bytes);
    let problems = problems_for(&b, &id);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kept_at"], aside[0].to_str().expect("utf-8"));
    assert!(
        problems[0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("snapshot was damaged")),
        "{problems:?}"
    );
    // Listed and flagged, not missing; human status says so; doctor says where.
    let listed = cli_json(&b, &["playlist", "list"]);
    let entry = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the damaged playlist is not listed: {listed}"))
        .clone();
    assert_eq!(entry["damaged"], true, "{entry}");
    let human = String::from_utf8_lossy(&b.cli(&["playlist", "list"]).stdout).to_string();
    assert!(human.contains("[damaged"), "{human}");
    let human = String::from_utf8_lossy(&b.cli(&["status"]).stdout).to_string();
    assert!(human.contains("Store:"), "{human}");
    let check = doctor_store_check(&b, &id);
    assert_eq!(check["status"], "warn");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.contains(aside[0].to_str().expect("utf-8"))),
        "{check}"
    );
    // Re-importing the Markdown mirror with the same id cannot write over it.
    let mirrors = files_starting(&home_b.path().join("playlists"), "");
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    let out = b.cli(&[
        "playlist",
        "import",
        mirrors[0].to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(!out.status.success(), "an import over a damaged playlist");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pdir.join("updates.log").exists());

    // A comes back; the sync supplies the history and B's pending tracks apply.
    let a = Node::start_in(home_a.path(), &LOOPBACK_RUN_ARGS);
    connect(&b, &a, 10);
    let all = ["a1", "b1", "b2", "b3", "b4", "b5"];
    wait_titles(&b, &id, &all);
    wait_titles(&a, &id, &all);
    let problems = problems_for(&b, &id);
    assert!(
        problems[0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("since restored")),
        "{problems:?}"
    );

    // A clean stop and a restart: everything is still there, the damaged file too.
    let mut b = b;
    assert!(b.stop_with(Signal::SIGTERM).success());
    let b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    assert_eq!(sorted_titles(&b, &id), all);
    assert!(aside[0].exists(), "the damaged snapshot is never deleted");
    assert!(problems_for(&b, &id).is_empty(), "whole again");
}

/// Offsets where each record of an update log starts (`0xA5 · len u32 BE · crc · payload`).
fn record_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 9 <= log.len() {
        assert_eq!(log[at], 0xA5, "a record marker at {at}");
        starts.push(at);
        let len = u32::from_be_bytes([log[at + 1], log[at + 2], log[at + 3], log[at + 4]]);
        at += 9 + len as usize;
    }
    starts
}

/// One flipped byte in record 3 of 10 used to move records 3–10 aside (7 of 15 tracks
/// shown). Now only record 3 is skipped, and the record after it repeats its changes.
#[test]
fn a_flipped_byte_in_the_middle_of_the_log_costs_no_track() {
    let home = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = create(&a, "Fifteen");
    for i in 0..5 {
        add(&a, &id, &format!("s{i}"));
    }
    assert!(a.stop_with(Signal::SIGTERM).success(), "compacts");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    for i in 0..10 {
        add(&a, &id, &format!("l{i}"));
    }
    a.stop_with(Signal::SIGKILL);
    let log = playlist_dir(home.path(), &id).join("updates.log");
    let mut bytes = std::fs::read(&log).expect("log");
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 10, "one record per add");
    bytes[starts[2] + 20] ^= 0x01;
    std::fs::write(&log, &bytes).expect("flip a byte in record 3");

    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let shown = show(&a, &id).expect("show");
    assert_eq!(titles(&shown).len(), 15, "{:?}", titles(&shown));
    let problems = problems_for(&a, &id);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let kept = problems[0]["kept_at"]
        .as_str()
        .expect("kept_at")
        .to_string();
    assert!(kept.contains("updates.log.damaged-"), "{kept}");
    assert_eq!(
        std::fs::read(&kept).expect("the damaged log is kept"),
        bytes
    );
    assert!(
        problems[0]["what"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("bytes {}..{}", starts[2], starts[3]))),
        "{problems:?}"
    );
    let check = doctor_store_check(&a, &id);
    assert!(
        check["detail"].as_str().is_some_and(|d| d.contains(&kept)),
        "{check}"
    );
    assert!(
        !a.log().contains("recovered from an interrupted write"),
        "damage is not reported as a torn tail"
    );
}

/// `updates.log` replaced by a directory while the controller runs (root ignores file
/// modes, so the file is moved instead): the add fails, the track is not shown, and once
/// the file is back a retry adds it exactly once.
#[test]
fn an_add_that_cannot_be_saved_fails_and_a_retry_adds_it_once() {
    let home = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = create(&a, "Unwritable");
    add(&a, &id, "first");
    let log = playlist_dir(home.path(), &id).join("updates.log");
    let moved = log.with_file_name("updates.log.moved-by-test");
    std::fs::rename(&log, &moved).expect("move the log");
    std::fs::create_dir(&log).expect("a directory in its place");

    let out = a.cli(&["playlist", "add", &id, "--title", "second", "--artist", "x"]);
    assert_eq!(out.status.code(), Some(1), "the add fails");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("updates.log"), "{err}");
    assert_eq!(titles(&show(&a, &id).expect("show")), ["first"]);
    let problems = problems_for(&a, &id);
    assert!(
        problems.iter().any(|p| p["what"]
            .as_str()
            .is_some_and(|w| w.contains("could not be saved"))),
        "{problems:?}"
    );
    // Another write does not carry the failed one along.
    let out = a.cli(&["playlist", "rename", &id, "Renamed"]);
    assert!(!out.status.success());
    assert_eq!(titles(&show(&a, &id).expect("show")), ["first"]);

    std::fs::remove_dir(&log).expect("rmdir");
    std::fs::rename(&moved, &log).expect("put the log back");
    add(&a, &id, "second");
    assert_eq!(titles(&show(&a, &id).expect("show")), ["first", "second"]);
    a.stop_with(Signal::SIGKILL);
    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    assert_eq!(
        titles(&show(&a, &id).expect("show")),
        ["first", "second"],
        "exactly once, and durable"
    );
}

/// A playlist nobody else has, whose snapshot is damaged so its log cannot apply, is rebuilt
/// from its Markdown mirror at start, and says so.
#[test]
fn a_never_shared_damaged_playlist_comes_back_from_its_mirror() {
    let home = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = create(&a, "Mine only");
    add(&a, &id, "one");
    add(&a, &id, "two");
    assert!(a.stop_with(Signal::SIGTERM).success());
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    add(&a, &id, "three");
    wait_until("the mirror to hold three", PATIENCE, || {
        files_starting(&home.path().join("playlists"), "")
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("three")))
            .then_some(())
    });
    a.stop_with(Signal::SIGKILL);
    let snapshot = playlist_dir(home.path(), &id).join("snapshot.loro");
    let mut bytes = std::fs::read(&snapshot).expect("snapshot");
    bytes[20..24].copy_from_slice(b"\0\0\0\0");
    std::fs::write(&snapshot, &bytes).expect("damage");

    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    assert_eq!(
        titles(&show(&a, &id).expect("show")),
        ["one", "two", "three"]
    );
    let problems = problems_for(&a, &id);
    assert!(
        problems.iter().any(|p| p["what"]
            .as_str()
            .is_some_and(|w| w.contains("rebuilt from its Markdown mirror"))),
        "{problems:?}"
    );
    assert_eq!(
        files_starting(&playlist_dir(home.path(), &id), "snapshot.loro.damaged-").len(),
        1
    );
    add(&a, &id, "four");
    assert_eq!(titles(&show(&a, &id).expect("show")).len(), 4);
}
