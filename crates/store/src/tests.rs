//! Store-level tests: persistence across reopen, torn logs, convergence of replicas,
//! Markdown round trips.

use proptest::prelude::*;

use whatnext_protocol::playlist::{Author, NewTrack};

use crate::{
    doc::PlaylistDoc,
    markdown::{from_markdown, to_markdown},
    store::Store,
};

fn me() -> Author {
    Author {
        peer_id: "12D3KooWMe".into(),
        display_name: "Me".into(),
    }
}

fn track(title: &str) -> NewTrack {
    NewTrack {
        title: title.into(),
        artists: vec!["Artist".into()],
        ..NewTrack::default()
    }
}

#[test]
fn edits_survive_reopen_and_bad_input_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store
        .create("Road trip", "summer", &me(), 10)
        .expect("create");
    let ids = store
        .add_tracks(&id, &[track("A"), track("B"), track("C")], &me(), 11)
        .expect("add");
    store.move_track(&id, &ids[2], 0, 12).expect("move");
    store.remove_track(&id, &ids[1], 13).expect("remove");
    store.rename(&id, "Road trip 2026", 14).expect("rename");
    let before = store.get(&id).expect("get");

    for bad in [
        store.add_tracks(&id, &[track("  ")], &me(), 20).err(),
        store.move_track(&id, &ids[0], 5, 20).err(),
        store.move_track(&id, "nope", 0, 20).err(),
        store.remove_track(&id, "nope", 20).err(),
        store.rename(&id, "", 20).err(),
        store.add_tracks("nope", &[track("x")], &me(), 20).err(),
    ] {
        assert!(bad.is_some(), "bad input was accepted");
    }
    assert_eq!(
        store.get(&id).expect("get"),
        before,
        "refused edits changed nothing"
    );
    drop(store);

    let (store, report) = Store::open(dir.path(), 2).expect("reopen");
    assert_eq!(report.playlists, 1);
    let after = store.get(&id).expect("get");
    assert_eq!(after, before);
    let titles: Vec<&str> = after.tracks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, vec!["C", "A"]);
    assert_eq!(after.name, "Road trip 2026");
    assert_eq!(after.tracks[0].added_by, me());
}

#[test]
fn a_truncated_log_loads_every_whole_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    for i in 0..5 {
        store
            .add_tracks(&id, &[track(&format!("t{i}"))], &me(), 2)
            .expect("add");
    }
    drop(store);
    let log = dir.path().join(&id).join("updates.log");
    let len = std::fs::metadata(&log).expect("log").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open log");
    file.set_len(len - 5).expect("truncate mid-record");
    drop(file);

    let (store, report) = Store::open(dir.path(), 3).expect("loads despite the torn tail");
    assert_eq!(report.torn_tails.len(), 1);
    let titles: Vec<String> = store
        .get(&id)
        .expect("get")
        .tracks
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, vec!["t0", "t1", "t2", "t3"]);
}

#[test]
fn a_newer_format_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("FORMAT"), "99\n").expect("write");
    let err = Store::open(dir.path(), 1).err().expect("refused");
    assert!(err.to_string().contains("newer WhatNext"), "{err}");
}

#[test]
fn deleted_playlists_go_to_the_trash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    store.delete(&id, 5).expect("delete");
    assert!(store.get(&id).is_err());
    assert!(
        dir.path()
            .join("trash")
            .join(format!("{id}-5"))
            .join("snapshot.loro")
            .exists()
    );
    let (store, _) = Store::open(dir.path(), 6).expect("reopen");
    assert!(store.list().is_empty());
}

#[test]
fn compaction_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    for i in 0..1200 {
        store
            .add_tracks(&id, &[track(&format!("t{i}"))], &me(), 2)
            .expect("add");
    }
    let before = store.get(&id).expect("get");
    drop(store);
    let (store, _) = Store::open(dir.path(), 3).expect("reopen");
    assert_eq!(store.get(&id).expect("get"), before);
    assert_eq!(before.tracks.len(), 1200);
}

#[test]
fn markdown_round_trip_keeps_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store
        .create("Late: night \"jazz\"", "smoky\nsecond line", &me(), 1)
        .expect("create");
    store
        .add_tracks(
            &id,
            &[
                NewTrack {
                    title: "So What".into(),
                    artists: vec!["Miles Davis".into(), "John Coltrane".into()],
                    album: Some("Kind of Blue".into()),
                    duration_ms: Some(562_000),
                    uri: Some("spotify:track:abc".into()),
                },
                track("---"),
            ],
            &me(),
            2,
        )
        .expect("add");
    let original = store.get(&id).expect("get");
    let text = to_markdown(&original).expect("markdown");
    assert!(
        text.contains("**So What** — Miles Davis, John Coltrane"),
        "{text}"
    );
    let back = from_markdown(&text).expect("parses");
    assert_eq!(back, original);

    // Imported into another store, it is the same playlist.
    let other = tempfile::tempdir().expect("tempdir");
    let (mut store2, _) = Store::open(other.path(), 1).expect("open");
    let id2 = store2.import(&back, false, 3).expect("import");
    assert_eq!(store2.get(&id2).expect("get"), original);
    assert!(
        store2.import(&back, false, 3).is_err(),
        "the same id twice is refused"
    );
    let copy = store2.import(&back, true, 3).expect("as new");
    assert_ne!(copy, id2);

    for bad in [
        "no front matter",
        "---\nname: x\n---\n",
        "---\nwhatnext_format: 9\nplaylist: {}\n---\n",
    ] {
        assert!(from_markdown(bad).is_err(), "{bad}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Move(usize, usize),
    Remove(usize),
    Rename(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Add),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Move(a, b)),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => any::<u8>().prop_map(Op::Rename),
    ]
}

fn apply(doc: &PlaylistDoc, op: &Op, who: &Author) {
    let tracks = doc.read().tracks;
    match op {
        Op::Add(n) => {
            doc.add_tracks(&[track(&format!("{}-{n}", who.display_name))], who, 1)
                .expect("add");
        }
        Op::Move(from, to) if !tracks.is_empty() => {
            let id = &tracks[from % tracks.len()].id;
            doc.move_track(id, to % tracks.len(), 1).expect("move");
        }
        Op::Remove(at) if !tracks.is_empty() => {
            doc.remove_track(&tracks[at % tracks.len()].id, 1)
                .expect("remove");
        }
        Op::Rename(n) => doc.rename(&format!("name {n}"), 1).expect("rename"),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two replicas edit concurrently; their updates are exchanged in pieces, in any order,
    /// some twice. Both end with the same playlist, and no track appears twice.
    #[test]
    fn replicas_converge_whatever_the_order(
        base in proptest::collection::vec(op(), 0..6),
        ours in proptest::collection::vec(op(), 0..12),
        theirs in proptest::collection::vec(op(), 0..12),
        shuffle in any::<u64>(),
    ) {
        let alice = Author { peer_id: "A".into(), display_name: "alice".into() };
        let bob = Author { peer_id: "B".into(), display_name: "bob".into() };
        let a = PlaylistDoc::create("p", "P", "", &alice, 0).expect("create");
        for op in &base {
            apply(&a, op, &alice);
        }
        let b = PlaylistDoc::empty();
        b.import(&a.export_snapshot().expect("snapshot")).expect("import");

        // Each op's update, captured separately, as a sync would send them.
        let mut from_a = Vec::new();
        for op in &ours {
            let before = a.version();
            apply(&a, op, &alice);
            from_a.push(a.export_updates_since(&before).expect("export"));
        }
        let mut from_b = Vec::new();
        for op in &theirs {
            let before = b.version();
            apply(&b, op, &bob);
            from_b.push(b.export_updates_since(&before).expect("export"));
        }
        // Deliver in a scrambled order, with duplicates.
        let mut rng = shuffle;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        for updates in [&mut from_a, &mut from_b] {
            for i in (1..updates.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                updates.swap(i, j);
            }
            if let Some(first) = updates.first().cloned() {
                updates.push(first);
            }
        }
        for u in &from_a { b.import(u).expect("b imports"); }
        for u in &from_b { a.import(u).expect("a imports"); }

        let (pa, pb) = (a.read(), b.read());
        prop_assert_eq!(&pa, &pb);
        let mut ids: Vec<&str> = pa.tracks.iter().map(|t| t.id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "a track appears twice");
    }
}

/// Two replicas of one playlist of four tracks, in sync; returns them and the track ids.
fn two_replicas() -> (PlaylistDoc, PlaylistDoc, Vec<String>) {
    let alice = Author {
        peer_id: "A".into(),
        display_name: "alice".into(),
    };
    let a = PlaylistDoc::create("p", "P", "", &alice, 0).expect("create");
    let ids = a
        .add_tracks(&[track("1"), track("2"), track("3"), track("4")], &alice, 0)
        .expect("add");
    let b = PlaylistDoc::empty();
    b.import(&a.export_snapshot().expect("snapshot"))
        .expect("import");
    (a, b, ids)
}

/// Runs `edit_a` and `edit_b` concurrently (neither sees the other), then merges both ways.
fn concurrently(a: &PlaylistDoc, b: &PlaylistDoc, edit_a: impl FnOnce(), edit_b: impl FnOnce()) {
    let (va, vb) = (a.version(), b.version());
    edit_a();
    edit_b();
    a.import(&b.export_updates_since(&vb).expect("export"))
        .expect("import");
    b.import(&a.export_updates_since(&va).expect("export"))
        .expect("import");
}

#[test]
fn concurrent_moves_of_one_track_never_duplicate_it() {
    let (a, b, ids) = two_replicas();
    concurrently(
        &a,
        &b,
        || a.move_track(&ids[0], 3, 1).expect("move"),
        || b.move_track(&ids[0], 1, 1).expect("move"),
    );
    let (pa, pb) = (a.read(), b.read());
    assert_eq!(pa, pb);
    assert_eq!(pa.tracks.len(), 4);
    assert_eq!(pa.tracks.iter().filter(|t| t.id == ids[0]).count(), 1);
}

#[test]
fn membership_is_the_owner_and_the_collaborators() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 1).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    let friend = Author {
        peer_id: "12D3KooWFriend".into(),
        display_name: "Friend".into(),
    };
    assert!(store.is_member(&id, &me().peer_id).expect("known playlist"));
    assert!(
        !store
            .is_member(&id, &friend.peer_id)
            .expect("known playlist")
    );
    assert!(store.add_member(&id, &friend).expect("add"));
    assert!(
        !store.add_member(&id, &friend).expect("again"),
        "adding twice changes nothing"
    );
    assert!(
        store
            .is_member(&id, &friend.peer_id)
            .expect("known playlist")
    );
    assert!(store.remove_member(&id, &friend.peer_id).expect("remove"));
    assert!(
        !store
            .is_member(&id, &friend.peer_id)
            .expect("known playlist")
    );
    assert!(store.is_member("nope", "x").is_err());
}

#[test]
fn a_track_removed_on_one_replica_and_moved_on_another_stays_removed() {
    let (a, b, ids) = two_replicas();
    concurrently(
        &a,
        &b,
        || a.remove_track(&ids[1], 1).expect("remove"),
        || b.move_track(&ids[1], 3, 1).expect("move"),
    );
    let (pa, pb) = (a.read(), b.read());
    assert_eq!(pa, pb);
    assert!(
        pa.tracks.iter().all(|t| t.id != ids[1]),
        "the removed track came back: {:?}",
        pa.tracks.iter().map(|t| &t.title).collect::<Vec<_>>()
    );
}
