//! Store-level tests: persistence across reopen, torn logs, convergence of replicas,
//! Markdown round trips.

use proptest::prelude::*;

use whatnext_protocol::{
    playlist::{Author, NewTrack, Track},
    signed::{decode_envelopes, encode_envelopes},
};

use crate::{
    doc::PlaylistDoc,
    markdown::{from_markdown, to_markdown},
    store::Store,
};

fn key(seed: u8) -> libp2p_identity::Keypair {
    libp2p_identity::Keypair::ed25519_from_bytes([seed; 32]).expect("key")
}

/// A real libp2p peer id (imports check them); `key(seed)`'s.
fn peer(seed: u8) -> String {
    key(seed).public().to_peer_id().to_string()
}

fn me() -> Author {
    Author {
        peer_id: peer(1),
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
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store
        .create("Road trip", "summer", &me(), 10)
        .expect("create");
    let ids = store
        .add_tracks(&id, &[track("A"), track("B"), track("C")], &me(), 11)
        .expect("add");
    store.move_track(&id, &ids[2], 0, 12).expect("move");
    store
        .remove_track(&id, &ids[1], &me().peer_id, 13)
        .expect("remove");
    store.rename(&id, "Road trip 2026", 14).expect("rename");
    let before = store.get(&id).expect("get");

    for bad in [
        store.add_tracks(&id, &[track("  ")], &me(), 20).err(),
        store.move_track(&id, &ids[0], 5, 20).err(),
        store.move_track(&id, "nope", 0, 20).err(),
        store.remove_track(&id, "nope", &me().peer_id, 20).err(),
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

    let (mut store, report) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert_eq!(report.playlists, 1);
    let after = store.get(&id).expect("get");
    assert_eq!(after, before);
    let titles: Vec<&str> = after.tracks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, vec!["C", "A"]);
    assert_eq!(after.name, "Road trip 2026");
    assert_eq!(after.tracks[0].added_by, me());
}

/// The listing's track count is the number of tracks shown: a removed track is not
/// counted, nor one still in the list whose id was removed (a removal raced with a copy
/// that kept it), while one without an id is; it agrees with what a read shows.
#[test]
fn the_track_count_leaves_out_removed_and_hidden_tracks() {
    let doc =
        PlaylistDoc::create("0123456789abcdef0123456789abcdef", "P", "", &me(), 1).expect("create");
    doc.add_tracks(&[track("a"), track("b"), track("c"), track("d")], &me(), 2)
        .expect("add");
    assert_eq!(doc.summary().track_count, 4);
    let ids: Vec<String> = doc.read().tracks.iter().map(|t| t.id.clone()).collect();
    doc.remove_track(&ids[0], 3).expect("remove");
    assert_eq!(doc.summary().track_count, 3);
    // Hidden: removed by id, still in the list.
    doc.doc
        .get_map("removed_tracks")
        .insert(&ids[1], 4)
        .expect("hide");
    // No id: shown.
    doc.doc
        .get_movable_list("tracks")
        .push_container(loro::LoroMap::new())
        .expect("push");
    doc.commit();
    let shown = doc.read().tracks.len();
    assert_eq!(shown, 3, "b hidden, the track without an id shown");
    assert_eq!(doc.summary().track_count, shown);
    // The count follows the list (see `followed_tracks`): a track given a removed id is hidden,
    // given its own back it is shown again.
    let list = doc.doc.get_movable_list("tracks");
    let Some(loro::ValueOrContainer::Container(loro::Container::Map(c))) = list.get(1) else {
        panic!("track c is a map");
    };
    c.insert("id", ids[0].as_str()).expect("id");
    doc.commit();
    assert_eq!(doc.read().tracks.len(), 2);
    assert_eq!(doc.summary().track_count, 2);
    c.insert("id", ids[2].as_str()).expect("id");
    doc.commit();
    assert_eq!(doc.summary().track_count, 3);
}

/// A read takes each track from its map's container, not from the map's decoded value:
/// whatever a modified client put in a track (a container for a field, a negative number,
/// an element that is no map) reads exactly as the decoded value does.
#[test]
fn tracks_read_from_their_containers_as_from_their_decoded_values() {
    let doc =
        PlaylistDoc::create("0123456789abcdef0123456789abcdef", "P", "", &me(), 1).expect("create");
    doc.add_tracks(&[track("plain")], &me(), 2).expect("add");
    let tracks = doc.doc.get_movable_list("tracks");
    let odd = tracks.push_container(loro::LoroMap::new()).expect("push");
    odd.insert("id", "odd").expect("id");
    odd.insert("duration_ms", -5).expect("duration");
    odd.insert("added_at", 7).expect("added at");
    odd.insert("content_blake3", "not a hash").expect("hash");
    odd.insert("content_size", 3).expect("size");
    odd.insert("unknown", "ignored").expect("unknown");
    let title = odd
        .insert_container("title", loro::LoroText::new())
        .expect("title container");
    title.insert(0, "a text, not a string").expect("text");
    let artists = odd
        .insert_container("artists", loro::LoroList::new())
        .expect("artists container");
    artists.push("From a container").expect("artist");
    tracks.push("not a map").expect("a bare value");
    doc.commit();
    let decoded = tracks.get_deep_value();
    let expected: Vec<Track> = decoded
        .as_list()
        .expect("a list")
        .iter()
        .map(crate::doc::track_from)
        .collect();
    let read = doc.read().tracks;
    assert_eq!(read.len(), 3);
    assert_eq!(read, expected);
    assert_eq!(read[1].artists, ["From a container"]);
    assert_eq!((read[1].duration_ms, read[1].added_at), (None, 7));
}

/// A read shows every change inside a track since the last read: a field set, a container
/// under the track edited, a field that becomes a container, the id changed; made here or
/// imported from another replica, and in a checked-out state and back. (Reads take the
/// tracks that did not change from the last read; debug builds compare each read with the
/// tracks read whole, so a change not followed fails here.)
#[test]
fn reads_show_every_change_inside_a_track() {
    let doc =
        PlaylistDoc::create("0123456789abcdef0123456789abcdef", "P", "", &me(), 1).expect("create");
    doc.add_tracks(&[track("one"), track("two"), track("three")], &me(), 2)
        .expect("add");
    let titles = |doc: &PlaylistDoc| -> Vec<String> {
        doc.read().tracks.into_iter().map(|t| t.title).collect()
    };
    assert_eq!(titles(&doc), ["one", "two", "three"]);
    let tracks = doc.doc.get_movable_list("tracks");
    let map = |at: usize| match tracks.get(at) {
        Some(loro::ValueOrContainer::Container(loro::Container::Map(map))) => map,
        other => panic!("no track map at {at}: {other:?}"),
    };
    map(1).insert("title", "TWO").expect("title");
    doc.commit();
    assert_eq!(titles(&doc), ["one", "TWO", "three"]);
    let artists = map(2)
        .insert_container("artists", loro::LoroList::new())
        .expect("artists");
    artists.push("Someone").expect("artist");
    doc.commit();
    assert_eq!(doc.read().tracks[2].artists, ["Someone"]);
    artists.push("Someone else").expect("artist");
    doc.commit();
    assert_eq!(doc.read().tracks[2].artists, ["Someone", "Someone else"]);
    let title = map(0)
        .insert_container("title", loro::LoroText::new())
        .expect("title text");
    title.insert(0, "a text").expect("text");
    doc.commit();
    assert_eq!(titles(&doc), ["a text", "TWO", "three"]);
    title.insert(6, " grows").expect("text");
    doc.commit();
    assert_eq!(titles(&doc), ["a text grows", "TWO", "three"]);

    // From another replica: a field, and an id that now is a removed one.
    let other = doc.fork_at_version(&doc.version(), None).expect("fork");
    other.set_peer(99).expect("peer");
    let before = doc.version();
    let theirs = other.doc.get_movable_list("tracks");
    let Some(loro::ValueOrContainer::Container(loro::Container::Map(their_three))) = theirs.get(2)
    else {
        panic!("no third track")
    };
    their_three.insert("album", "Theirs").expect("album");
    let removed_id = doc.read().tracks[1].id.clone();
    their_three.insert("id", removed_id.as_str()).expect("id");
    other.commit();
    doc.import(&other.export_updates_since(&before).expect("export"))
        .expect("import");
    doc.remove_track(&removed_id, 3).expect("remove");
    let read = doc.read().tracks;
    assert_eq!(
        read.len(),
        1,
        "both tracks with the removed id are hidden: {read:?}"
    );

    // Checked out before the import and back.
    let frontiers = doc.doc.vv_to_frontiers(&before);
    doc.doc.checkout(&frontiers).expect("checkout");
    assert_eq!(titles(&doc), ["a text grows", "TWO", "three"]);
    assert_eq!(doc.read().tracks[2].album, None);
    doc.doc.checkout_to_latest();
    assert_eq!(titles(&doc), ["a text grows"]);
}

/// The refusal back-off bars an author after 16 refusals or 3 s spent refusing them,
/// whichever comes first, until a minute after the first; then it starts over.
#[test]
fn an_author_is_barred_by_refusal_count_or_by_time_spent() {
    use std::time::Duration;
    let mut strikes = crate::store::Strikes::default();
    // One refusal that took 3.5 s (a big playlist): barred at once.
    strikes.count("slow", 1_000, Duration::from_millis(3_500));
    let why = strikes.barred("slow", 1_000).expect("barred by time");
    assert!(
        why.contains("took 3.5 s") && why.contains("60 s more"),
        "{why}"
    );
    // Cheap refusals: barred at the 16th.
    for i in 0..16 {
        assert!(strikes.barred("cheap", 1_000).is_none(), "barred after {i}");
        strikes.count("cheap", 1_000, Duration::from_millis(5));
    }
    assert!(strikes.barred("cheap", 1_000).is_some());
    assert!(strikes.barred("someone else", 1_000).is_none());
    assert!(strikes.barred("slow", 61_000).is_none() && strikes.barred("cheap", 61_000).is_none());
    strikes.count("cheap", 61_000, Duration::from_millis(5));
    assert!(
        strikes.barred("cheap", 61_000).is_none(),
        "a new window starts"
    );
}

#[test]
fn a_truncated_log_loads_every_whole_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
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

    let (mut store, report) =
        Store::open_as(dir.path(), 3, key(1)).expect("loads despite the torn tail");
    assert_eq!(report.torn_tails.len(), 1);
    assert!(
        report.problems.is_empty(),
        "an interrupted write is no damage: {:?}",
        report.problems
    );
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
    let err = Store::open_as(dir.path(), 1, key(1))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer WhatNext"), "{err}");
}

#[test]
fn deleted_playlists_go_to_the_trash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
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
    let (store, _) = Store::open_as(dir.path(), 6, key(1)).expect("reopen");
    assert!(store.list().is_empty());
}

#[test]
fn compaction_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    for i in 0..1200 {
        store
            .add_tracks(&id, &[track(&format!("t{i}"))], &me(), 2)
            .expect("add");
    }
    let before = store.get(&id).expect("get");
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 3, key(1)).expect("reopen");
    assert_eq!(store.get(&id).expect("get"), before);
    assert_eq!(before.tracks.len(), 1200);
}

#[test]
fn markdown_round_trip_keeps_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
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
                    content: Some(whatnext_protocol::playlist::Content {
                        blake3: "ab".repeat(32),
                        size: 4_200_000,
                        mime: "audio/flac".into(),
                    }),
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
    let (mut store2, _) = Store::open_as(other.path(), 1, key(1)).expect("open");
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
    // The count follows the list through its events (a debug assertion compares it with
    // the ids read whole).
    let _ = doc.summary();
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
        for u in &from_a { b.import(u).expect("b imports"); let _ = b.summary(); }
        for u in &from_b { a.import(u).expect("a imports"); let _ = a.summary(); }
        prop_assert_eq!(a.summary().track_count, a.read().tracks.len());

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
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
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

// ---- Damage, failed writes and import bounds (issue 14) ----

fn titles_of(store: &mut Store, id: &str) -> Vec<String> {
    store
        .get(id)
        .expect("get")
        .tracks
        .into_iter()
        .map(|t| t.title)
        .collect()
}

fn files_starting(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn overwrite(path: &std::path::Path, at: usize, with: &[u8]) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at..at + with.len()].copy_from_slice(with);
    std::fs::write(path, bytes).expect("write");
}

/// A ("owner") and B ("member") share a playlist of three tracks; B has its snapshot
/// compacted, then adds five tracks offline (in its log only). Returns both stores' dirs
/// (B closed), A's store and the id.
fn shared_then_offline_adds() -> (tempfile::TempDir, tempfile::TempDir, Store, String) {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (mut a, _) = Store::open_as(dir_a.path(), 1, key(1)).expect("open A");
    let id = a.create("Shared", "", &me(), 1).expect("create");
    a.add_tracks(&id, &[track("a1"), track("a2"), track("a3")], &me(), 2)
        .expect("add");
    let (mut b, _) = Store::open_as(dir_b.path(), 1, key(2)).expect("open B");
    let all = a.export_since(&id, &[]).expect("export");
    assert!(b.apply_remote(&id, &all, 3).expect("join").changed);
    b.compact_all().expect("compact");
    let bob = Author {
        peer_id: peer(2),
        display_name: "Bob".into(),
    };
    for i in 0..5 {
        b.add_tracks(&id, &[track(&format!("b{i}"))], &bob, 4)
            .expect("offline add");
    }
    assert_eq!(titles_of(&mut b, &id).len(), 8);
    drop(b);
    (dir_a, dir_b, a, id)
}

#[test]
fn a_damaged_snapshot_is_moved_aside_and_a_sync_brings_back_every_acknowledged_edit() {
    let (_dir_a, dir_b, mut a, id) = shared_then_offline_adds();
    let pdir = dir_b.path().join(&id);
    let snapshot = pdir.join("snapshot.loro");
    let original = std::fs::read(&snapshot).expect("snapshot");
    overwrite(&snapshot, original.len() / 2, b"\xde\xad\xbe\xef");

    let (mut b, report) =
        Store::open_as(dir_b.path(), 50, key(2)).expect("opens despite the damage");
    let aside = pdir.join("snapshot.loro.damaged-50");
    assert_eq!(
        std::fs::read(&aside).expect("the damaged snapshot is kept aside"),
        {
            let mut d = original.clone();
            let at = original.len() / 2;
            d[at..at + 4].copy_from_slice(b"\xde\xad\xbe\xef");
            d
        }
    );
    assert!(!snapshot.exists(), "moved, not copied");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.playlist_id, id);
    assert_eq!(p.kept_at.as_deref(), Some(aside.to_str().expect("utf-8")));
    assert!(p.what.contains("snapshot was damaged"), "{}", p.what);
    assert_eq!(b.problems(), &report.problems[..]);
    // Still listed, flagged; local edits are refused until the history is back.
    let listed = b.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(listed[0].damaged, "{:?}", listed[0]);
    assert!(b.is_damaged(&id));
    assert_eq!(b.needs_history(), vec![id.clone()]);
    let refused = b
        .add_tracks(&id, &[track("x")], &me(), 51)
        .expect_err("refused");
    assert!(refused.to_string().contains("damaged"), "{refused}");
    // Nothing may write a new playlist over it: not a sync's "new playlist" path, not an
    // import of the mirror.
    let mirror = {
        let mut p = a.get(&id).expect("A's copy");
        p.tracks.truncate(1);
        p
    };
    let err = b.import(&mirror, false, 52).expect_err("refused");
    assert!(err.to_string().contains("damaged"), "{err}");
    b.compact_all()
        .expect("compaction skips a damaged playlist");
    assert!(
        !snapshot.exists(),
        "no snapshot replaces the log while history is missing"
    );
    drop(b);

    // B restarts before any sync: still damaged, still reported, nothing lost.
    let (mut b, report) = Store::open_as(dir_b.path(), 60, key(2)).expect("reopen");
    assert_eq!(report.problems.len(), 1);
    assert_eq!(
        report.problems[0].kept_at.as_deref(),
        Some(aside.to_str().expect("utf-8"))
    );

    // A syncs: the history arrives and B's five pending tracks apply.
    let version = b.version(&id).expect("version");
    let missing = a.export_since(&id, &version).expect("export");
    assert!(b.apply_remote(&id, &missing, 70).expect("apply").changed);
    let mut have = titles_of(&mut b, &id);
    have.sort();
    assert_eq!(have, ["a1", "a2", "a3", "b0", "b1", "b2", "b3", "b4"]);
    assert!(!b.is_damaged(&id));
    assert!(!b.list()[0].damaged);
    assert!(
        b.problems()[0].what.contains("since restored"),
        "{:?}",
        b.problems()
    );
    assert!(
        snapshot.exists(),
        "a checked snapshot was written once whole"
    );
    b.add_tracks(&id, &[track("after")], &me(), 71)
        .expect("edits work again");
    drop(b);
    let (mut b, report) = Store::open_as(dir_b.path(), 80, key(2)).expect("reopen");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(titles_of(&mut b, &id).len(), 9);
    assert!(aside.exists(), "the damaged file is never deleted");
}

#[test]
fn a_never_shared_damaged_playlist_is_rebuilt_from_its_mirror() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Mine", "", &me(), 1).expect("create");
    store
        .add_tracks(&id, &[track("one"), track("two")], &me(), 2)
        .expect("add");
    store.compact_all().expect("compact");
    store
        .add_tracks(&id, &[track("three")], &me(), 3)
        .expect("add");
    let mirror = store.get(&id).expect("get");
    drop(store);
    let snapshot = dir.path().join(&id).join("snapshot.loro");
    overwrite(&snapshot, 30, b"\0\0\0\0");

    let (mut store, report) = Store::open_as(dir.path(), 10, key(1)).expect("open");
    assert_eq!(report.problems.len(), 1);
    let source = dir.path().join("mine.md");
    // A mirror of another playlist is refused.
    let mut other = mirror.clone();
    other.id = "someotherid".into();
    assert!(store.rebuild_from_mirror(&id, &other, &source, 11).is_err());
    store
        .rebuild_from_mirror(&id, &mirror, &source, 11)
        .expect("rebuild");
    assert_eq!(titles_of(&mut store, &id), ["one", "two", "three"]);
    assert!(!store.is_damaged(&id));
    let kept = dir.path().join(&id).join("updates.log.replaced-11");
    assert!(kept.exists(), "the log that could not be applied is kept");
    assert!(
        store
            .problems()
            .iter()
            .any(|p| p.what.contains("Markdown mirror") && p.kept_at.is_some()),
        "{:?}",
        store.problems()
    );
    store
        .add_tracks(&id, &[track("four")], &me(), 12)
        .expect("add");
    drop(store);
    let (mut store, report) = Store::open_as(dir.path(), 20, key(1)).expect("reopen");
    assert!(report.problems.is_empty());
    assert_eq!(titles_of(&mut store, &id), ["one", "two", "three", "four"]);
}

/// One flipped byte in record 3 of 10 used to drop records 3–10. Now only that record is
/// skipped, and since each record repeats its predecessor's changes, nothing is lost.
#[test]
fn a_flipped_byte_mid_log_skips_one_record_and_loses_no_track() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Fifteen", "", &me(), 1).expect("create");
    for i in 0..5 {
        store
            .add_tracks(&id, &[track(&format!("s{i}"))], &me(), 2)
            .expect("add");
    }
    store.compact_all().expect("compact");
    let mut ends = Vec::new();
    for i in 0..10 {
        store
            .add_tracks(&id, &[track(&format!("l{i}"))], &me(), 3)
            .expect("add");
        ends.push(store.log_len(&id) as usize);
    }
    drop(store);
    let log = dir.path().join(&id).join("updates.log");
    let start3 = ends[1];
    let bytes = std::fs::read(&log).expect("log");
    overwrite(&log, start3 + 20, &[bytes[start3 + 20] ^ 0x01]);

    let (mut store, report) = Store::open_as(dir.path(), 40, key(1)).expect("open");
    assert_eq!(
        titles_of(&mut store, &id).len(),
        15,
        "{:?}",
        titles_of(&mut store, &id)
    );
    assert!(report.torn_tails.is_empty(), "damage is not a torn tail");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    let kept = dir.path().join(&id).join("updates.log.damaged-40");
    assert_eq!(p.kept_at.as_deref(), Some(kept.to_str().expect("utf-8")));
    assert!(
        p.what.contains(&format!("bytes {}..{}", ends[1], ends[2])),
        "{}",
        p.what
    );
    assert!(p.what.contains("nothing was lost"), "{}", p.what);
    assert_eq!(std::fs::read(&kept).expect("kept").len(), bytes.len());
    assert!(!store.is_damaged(&id));
}

#[test]
fn two_adjacent_damaged_records_leave_the_rest_waiting_not_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    let mut ends = Vec::new();
    for i in 0..6 {
        store
            .add_tracks(&id, &[track(&format!("t{i}"))], &me(), 2)
            .expect("add");
        ends.push(store.log_len(&id) as usize);
    }
    drop(store);
    let log = dir.path().join(&id).join("updates.log");
    let bytes = std::fs::read(&log).expect("log");
    overwrite(&log, ends[0] + 12, &[!bytes[ends[0] + 12]]);
    overwrite(&log, ends[1] + 12, &[!bytes[ends[1] + 12]]);
    let (mut store, report) = Store::open_as(dir.path(), 5, key(1)).expect("open");
    // Records 4–6 build on the lost record 2: Loro holds them pending, the store keeps them.
    assert_eq!(titles_of(&mut store, &id), ["t0"]);
    assert!(store.is_damaged(&id));
    assert!(
        report.problems[0].what.contains("wait"),
        "{:?}",
        report.problems
    );
    let log_len = std::fs::metadata(&log).expect("log").len();
    store.compact_all().expect("compact");
    assert_eq!(
        std::fs::metadata(&log).expect("log").len(),
        log_len,
        "no compaction while updates wait for history"
    );
    // Local edits still work (the metadata is there) and are logged after the rest.
    store
        .add_tracks(&id, &[track("more")], &me(), 6)
        .expect("add");
    assert_eq!(titles_of(&mut store, &id), ["t0", "more"]);
}

/// Replaces the playlist's `updates.log` by a directory (the open file is moved away): the
/// next append fails even for root.
fn break_log(dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    let log = dir.join(id).join("updates.log");
    let moved = dir.join(id).join("updates.log.moved-by-test");
    std::fs::rename(&log, &moved).expect("move");
    std::fs::create_dir(&log).expect("a directory in its place");
    moved
}

fn repair_log(dir: &std::path::Path, id: &str, moved: &std::path::Path) {
    let log = dir.join(id).join("updates.log");
    std::fs::remove_dir(&log).expect("rmdir");
    std::fs::rename(moved, &log).expect("put back");
}

#[cfg(unix)]
#[test]
fn a_failed_write_changes_nothing_in_memory_and_a_retry_adds_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    store
        .add_tracks(&id, &[track("kept")], &me(), 2)
        .expect("add");
    let before = store.get(&id).expect("get");
    let summary = store.list();
    let moved = break_log(dir.path(), &id);

    let err = store
        .add_tracks(&id, &[track("new")], &me(), 3)
        .expect_err("the write fails");
    assert!(err.to_string().contains("updates.log"), "{err}");
    assert_eq!(
        store.get(&id).expect("get"),
        before,
        "not visible in memory"
    );
    assert_eq!(store.list(), summary);
    assert!(store.rename(&id, "other", 3).is_err());
    assert_eq!(store.get(&id).expect("get"), before);
    assert!(
        store
            .problems()
            .iter()
            .any(|p| p.playlist_id == id && p.what.contains("could not be saved")),
        "{:?}",
        store.problems()
    );
    // The same for updates from a member.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (mut other, _) = Store::open_as(other_dir.path(), 1, key(2)).expect("open");
    other
        .apply_remote(&id, &store.export_since(&id, &[]).expect("export"), 4)
        .expect("join");
    let v = other.version(&id).expect("version");
    let bob = Author {
        peer_id: peer(2),
        display_name: "Bob".into(),
    };
    other
        .add_tracks(&id, &[track("remote")], &bob, 4)
        .expect("add");
    let remote = other.export_since(&id, &v).expect("export");
    assert!(store.apply_remote(&id, &remote, 4).is_err());
    assert_eq!(store.get(&id).expect("get"), before);

    repair_log(dir.path(), &id, &moved);
    store
        .add_tracks(&id, &[track("new")], &me(), 5)
        .expect("retry");
    assert!(store.apply_remote(&id, &remote, 5).expect("retry").changed);
    // "new" and "remote" are concurrent inserts: their order depends on the peer ids.
    let sorted = |store: &mut Store| {
        let mut t = titles_of(store, &id);
        t.sort();
        t
    };
    let want = ["kept", "new", "remote"];
    assert_eq!(sorted(&mut store), want);
    drop(store);
    let (mut store, report) = Store::open_as(dir.path(), 6, key(1)).expect("reopen");
    assert!(report.problems.is_empty());
    assert_eq!(sorted(&mut store), want, "exactly once, durable");
}

#[test]
fn import_refuses_duplicate_and_unsafe_ids_and_bad_peer_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Source", "", &me(), 1).expect("create");
    store
        .add_tracks(&id, &[track("one"), track("two")], &me(), 2)
        .expect("add");
    let good = store.get(&id).expect("get");

    let mut dup = good.clone();
    dup.tracks[1].id = dup.tracks[0].id.clone();
    let err = store.import(&dup, true, 3).expect_err("duplicate ids");
    assert!(
        err.to_string().contains(&dup.tracks[0].id) && err.to_string().contains("more than once"),
        "{err}"
    );

    for bad_id in ["../../etc/passwd", "", "a b", &"x".repeat(65)] {
        let mut bad = good.clone();
        bad.tracks[0].id = bad_id.to_string();
        let err = store.import(&bad, true, 3).expect_err("unsafe id");
        assert!(err.to_string().contains("track 1"), "{err}");
    }

    let mut bad = good.clone();
    bad.tracks[1].added_by.peer_id = "not-a-peer".into();
    let err = store.import(&bad, true, 3).expect_err("bad peer id");
    assert!(
        err.to_string().contains("not-a-peer") && err.to_string().contains("added_by"),
        "{err}"
    );
    let mut bad = good.clone();
    bad.owner.peer_id = "nobody".into();
    assert!(store.import(&bad, true, 3).is_err());
    let mut bad = good.clone();
    bad.collaborators.push(Author {
        peer_id: "../x".into(),
        display_name: "x".into(),
    });
    assert!(store.import(&bad, true, 3).is_err());

    assert_eq!(store.list().len(), 1, "nothing refused was created");
    let copy = store
        .import(&good, true, 3)
        .expect("a good one is accepted");
    assert_eq!(store.get(&copy).expect("get").tracks, good.tracks);
}

#[test]
fn a_copy_of_a_playlist_that_is_here_says_so_in_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Road trip", "", &me(), 1).expect("create");
    let original = store.get(&id).expect("get");
    let name_of = |store: &mut Store, id: &str| store.get(id).expect("get").name;

    let first = store.import(&original, true, 2).expect("copy");
    assert_eq!(name_of(&mut store, &first), "Road trip (copy)");
    let second = store.import(&original, true, 3).expect("copy");
    assert_eq!(name_of(&mut store, &second), "Road trip (copy 2)");
    // A copy of a copy is a third copy of the original, not "(copy) (copy)".
    let of_copy = store.get(&first).expect("get");
    let third = store.import(&of_copy, true, 4).expect("copy");
    assert_eq!(name_of(&mut store, &third), "Road trip (copy 3)");
    // A name freed is used again.
    store.delete(&first, 5).expect("delete");
    let fourth = store.import(&original, true, 5).expect("copy");
    assert_eq!(name_of(&mut store, &fourth), "Road trip (copy)");

    // A playlist that is not here comes in under its own name, even as a new one.
    let mut elsewhere = original.clone();
    elsewhere.id = "some-playlist-from-elsewhere".into();
    elsewhere.name = "Mixtape (copy 7)".into();
    let other = store.import(&elsewhere, true, 6).expect("import");
    assert_eq!(name_of(&mut store, &other), "Mixtape (copy 7)");

    // A name at the length limit has no room for the word: it stays as it is.
    let mut long = original.clone();
    long.name = "n".repeat(crate::doc::MAX_TEXT);
    let long_id = store.import(&long, true, 7).expect("import");
    let long = store.get(&long_id).expect("get");
    let copy = store.import(&long, true, 8).expect("copy");
    assert_eq!(name_of(&mut store, &copy), long.name);
}

#[test]
fn copy_suffixes_come_off_only_when_they_are_ours() {
    for (name, original) in [
        ("Mix (copy)", "Mix"),
        ("Mix (copy 12)", "Mix"),
        ("Mix (copy x)", "Mix (copy x)"),
        ("Mix (copy )", "Mix (copy )"),
        ("Mix (live)", "Mix (live)"),
        ("(copy)", "(copy)"),
        ("Mix", "Mix"),
    ] {
        assert_eq!(crate::store::strip_copy_suffix(name), original, "{name}");
    }
}

#[test]
fn a_new_playlist_never_overwrites_a_directory_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = a.create("P", "", &me(), 1).expect("create");
    let exported = a.get(&id).expect("get");
    let updates = a.export_since(&id, &[]).expect("export");
    drop(a);
    // A directory the store did not load (say, created while it ran).
    let other = tempfile::tempdir().expect("tempdir");
    let (mut b, _) = Store::open_as(other.path(), 1, key(2)).expect("open");
    let squatter = other.path().join(&id);
    std::fs::create_dir(&squatter).expect("dir");
    std::fs::write(squatter.join("snapshot.loro"), b"precious").expect("write");
    assert!(b.import(&exported, false, 2).is_err());
    assert!(b.apply_remote(&id, &updates, 2).is_err());
    assert_eq!(
        std::fs::read(squatter.join("snapshot.loro")).expect("read"),
        b"precious"
    );
}

#[test]
fn an_unreadable_playlist_is_listed_left_alone_and_refuses_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    drop(store);
    let log = dir.path().join(&id).join("updates.log");
    std::fs::remove_file(&log).expect("rm");
    std::fs::create_dir(&log).expect("a directory where the log should be");
    let (mut store, report) = Store::open_as(dir.path(), 2, key(1)).expect("open");
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].what.contains("could not be read"));
    assert_eq!(store.list()[0].id, id);
    assert!(store.is_damaged(&id));
    assert!(store.get(&id).is_err());
    assert!(store.add_tracks(&id, &[track("x")], &me(), 3).is_err());
    let updates = PlaylistDoc::create(&id, "P", "", &me(), 1)
        .expect("doc")
        .export_snapshot()
        .expect("export");
    assert!(store.apply_remote(&id, &updates, 3).is_err());
    assert!(dir.path().join(&id).join("snapshot.loro").exists());
    store
        .delete(&id, 4)
        .expect("a damaged playlist can go to the trash");
    assert!(store.list().is_empty());
}

#[test]
fn files_set_aside_are_never_loaded_as_playlists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("P", "", &me(), 1).expect("create");
    drop(store);
    let snapshot = dir.path().join(&id).join("snapshot.loro");
    overwrite(&snapshot, 6, b"zzzz");
    let (_, report) = Store::open_as(dir.path(), 2, key(1)).expect("open");
    assert_eq!(report.problems.len(), 1);
    let aside = files_starting(&dir.path().join(&id), "snapshot.loro.damaged-");
    assert_eq!(aside.len(), 1);
}

/// Per-edit cost on a 10k-track playlist (printed; the rollback design keeps it flat).
#[test]
fn edits_on_a_10k_track_playlist_stay_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Big", "", &me(), 1).expect("create");
    let batch: Vec<NewTrack> = (0..10_000).map(|i| track(&format!("t{i}"))).collect();
    store.add_tracks(&id, &batch, &me(), 2).expect("add");
    store.compact_all().expect("compact");
    let started = std::time::Instant::now();
    for i in 0..50 {
        store
            .add_tracks(&id, &[track(&format!("more{i}"))], &me(), 3)
            .expect("add");
    }
    let per_edit = started.elapsed() / 50;
    let started = std::time::Instant::now();
    store.compact_all().expect("compact");
    let compact = started.elapsed();
    eprintln!("10k tracks: {per_edit:?} per edit, {compact:?} per checked compaction");
    assert!(
        per_edit < std::time::Duration::from_millis(200),
        "{per_edit:?}"
    );
}

/// Updates from a member that arrive before the history they build on are no damage: they
/// wait (in memory: the members who sent them still have them) and apply when the history
/// arrives; after a restart, the next sync brings both.
#[test]
fn updates_ahead_of_their_history_wait_until_it_arrives() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (mut a, _) = Store::open_as(dir_a.path(), 1, key(1)).expect("open");
    let id = a.create("P", "", &me(), 1).expect("create");
    let (mut b, _) = Store::open_as(dir_b.path(), 1, key(2)).expect("open");
    b.apply_remote(&id, &a.export_since(&id, &[]).expect("export"), 1)
        .expect("join");
    let v_b = b.version(&id).expect("version");
    let v0 = a.version(&id).expect("version");
    a.add_tracks(&id, &[track("x")], &me(), 2).expect("add");
    let v1 = a.version(&id).expect("version");
    a.add_tracks(&id, &[track("y")], &me(), 3).expect("add");
    let x = a.export_since(&id, &v0).expect("export");
    let only_y = a.export_since(&id, &v1).expect("export");
    assert_ne!(only_y, x);
    let applied = b.apply_remote(&id, &only_y, 4).expect("accepted, waiting");
    assert!(
        !applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );
    assert!(titles_of(&mut b, &id).is_empty(), "y waits for x");
    assert!(!b.is_damaged(&id), "out of order is not damage");
    b.compact_all().expect("compact");
    let applied = b.apply_remote(&id, &x, 6).expect("apply");
    assert!(applied.changed, "{applied:?}");
    assert_eq!(titles_of(&mut b, &id), ["x", "y"], "y applied once x came");

    // The same after a restart in between: the next sync sends both.
    let dir_c = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Store::open_as(dir_c.path(), 1, key(3)).expect("open");
    c.apply_remote(&id, &a.export_since(&id, &v0).expect("export"), 1)
        .expect_err("a join needs the whole history");
    c.apply_remote(&id, &b.export_since(&id, &[]).expect("export"), 1)
        .expect("join from another member");
    assert_eq!(titles_of(&mut c, &id), ["x", "y"]);
    drop(b);
    let (mut b, report) = Store::open_as(dir_b.path(), 7, key(2)).expect("reopen");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(titles_of(&mut b, &id), ["x", "y"]);
    assert!(
        b.apply_remote(&id, &a.export_since(&id, &v_b).expect("export"), 8)
            .expect("again")
            .rejected
            .is_empty()
    );
}

#[test]
fn reattribute_moves_ownership_tracks_and_membership_to_the_new_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let friend = Author {
        peer_id: peer(2),
        display_name: "Friend".into(),
    };
    let isolated = Author {
        peer_id: peer(3),
        display_name: "Me".into(),
    };
    let id = store.create("Party", "", &me(), 10).expect("create");
    store
        .add_tracks(&id, &[track("Mine")], &me(), 11)
        .expect("add");
    store
        .add_tracks(&id, &[track("Theirs")], &friend, 12)
        .expect("add");
    store.add_member(&id, &me()).expect("member");
    store.add_member(&id, &friend).expect("member");
    store
        .set_member_addrs(&id, &me().peer_id, &["/ip4/127.0.0.1/tcp/1".into()])
        .expect("addrs");

    assert!(
        store
            .reattribute(&id, &me().peer_id, &isolated)
            .expect("moved")
    );
    let playlist = store.get(&id).expect("get");
    assert_eq!(playlist.owner, isolated);
    assert_eq!(playlist.tracks[0].added_by, isolated);
    assert_eq!(
        playlist.tracks[1].added_by, friend,
        "others' tracks stay theirs"
    );
    let members: Vec<&str> = playlist
        .collaborators
        .iter()
        .map(|m| m.peer_id.as_str())
        .collect();
    assert!(
        members.contains(&isolated.peer_id.as_str()) && members.contains(&friend.peer_id.as_str())
    );
    assert!(!members.contains(&me().peer_id.as_str()));
    assert!(
        store
            .member_addrs(&id)
            .expect("addrs")
            .iter()
            .all(|(p, _)| *p != me().peer_id)
    );
    assert!(
        !store
            .reattribute(&id, &me().peer_id, &isolated)
            .expect("again"),
        "nothing left to move"
    );
}

#[test]
fn when_up_next_runs_dry_the_fallback_playlist_plays_on() {
    use whatnext_protocol::listening::SessionAction;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let party = store.create("Party", "", &me(), 10).expect("create");
    let fallback = store
        .create("Old favourites", "", &me(), 10)
        .expect("create");
    store
        .add_tracks(&party, &[track("Opener")], &me(), 11)
        .expect("add");
    store
        .add_tracks(
            &fallback,
            &[track("Opener"), track("Classic"), track("Encore")],
            &me(),
            11,
        )
        .expect("add");
    let act = |store: &mut Store, action: SessionAction| {
        store.session_act(&party, &action, &me(), 20).expect("act");
        store
            .session_view(&party, &me().peer_id, 1, 20)
            .expect("view")
            .now_playing
            .map(|n| n.title)
    };
    let set = SessionAction::Fallback {
        playlist_id: Some(fallback.clone()),
    };
    store
        .session_act(&party, &set, &me(), 12)
        .expect("fallback");
    assert_eq!(
        act(&mut store, SessionAction::Play { track_id: None }),
        Some("Opener".into())
    );
    // Up next is empty now: the fallback's first track not heard here yet.
    assert_eq!(act(&mut store, SessionAction::Next), Some("Classic".into()));
    assert_eq!(act(&mut store, SessionAction::Next), Some("Encore".into()));
    assert_eq!(
        act(&mut store, SessionAction::Next),
        None,
        "the fallback ran dry too"
    );
    let history: Vec<String> = store
        .session_view(&party, &me().peer_id, 1, 30)
        .expect("view")
        .history
        .into_iter()
        .map(|h| h.title)
        .collect();
    assert_eq!(history, ["Opener", "Classic", "Encore"]);
}

/// Names reach others without what hides or reorders text ("\u{202e}nnA" would show as
/// "Ann"), nor terminal escapes; a track names at most MAX_ARTISTS artists.
#[test]
fn names_lose_invisible_and_control_characters_and_artists_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let sly = Author {
        peer_id: peer(1),
        display_name: "\u{202e}nnA\u{200b}\u{1b}[2J\u{7}".into(),
    };
    let id = store.create("Names", "", &sly, 10).expect("create");
    store.add_tracks(&id, &[track("A")], &sly, 11).expect("add");
    let guest = Author {
        peer_id: peer(2),
        display_name: "\u{2066}Dee\u{2069}".into(),
    };
    store.add_guest(&id, &guest, &peer(1)).expect("guest");
    let playlist = store.get(&id).expect("get");
    assert_eq!(playlist.owner.display_name, "nnA [2J");
    assert_eq!(playlist.tracks[0].added_by.display_name, "nnA [2J");
    assert_eq!(playlist.collaborators[0].display_name, "Dee");

    let crowded = NewTrack {
        artists: vec!["x".into(); whatnext_protocol::playlist::MAX_ARTISTS + 1],
        ..track("Crowded")
    };
    let refused = store.add_tracks(&id, &[crowded], &sly, 12);
    assert!(
        matches!(&refused, Err(crate::StoreError::Invalid(why)) if why.contains("artists")),
        "{refused:?}"
    );
    assert_eq!(
        store.get(&id).expect("get").tracks.len(),
        1,
        "nothing added"
    );
}

/// Whether the store knows `id` from its listing only (its document not read).
fn is_listed_only(store: &Store, id: &str) -> bool {
    store.is_listed_only(id)
}

#[test]
fn a_compacted_playlist_opens_from_its_listing_and_reads_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Road trip", "", &me(), 10).expect("create");
    let ids = store
        .add_tracks(&id, &[track("A"), track("B"), track("C")], &me(), 11)
        .expect("add");
    store
        .add_member(
            &id,
            &Author {
                peer_id: peer(2),
                display_name: "Bob".into(),
            },
        )
        .expect("member");
    store
        .remove_track(&id, &ids[1], &me().peer_id, 12)
        .expect("remove");
    let before = store.get(&id).expect("get");
    let listed_before = store.list();
    let people_before = store.people();
    store.compact_all().expect("compact");
    drop(store);
    assert!(dir.path().join(&id).join("listing.json").exists());

    let (mut store, report) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert_eq!(report.playlists, 1);
    assert!(is_listed_only(&store, &id), "opened without its document");
    assert_eq!(store.list(), listed_before);
    assert_eq!(store.people(), people_before);
    assert_eq!(
        store.get(&id).expect("get"),
        before,
        "the cache reads the same"
    );
    assert!(
        is_listed_only(&store, &id),
        "reading does not load the document"
    );

    // An edit reads the document; the listing no longer stands for it once the log has
    // the edit, so the next open reads the document too, and sees the edit.
    store
        .add_tracks(&id, &[track("D")], &me(), 13)
        .expect("edit a listed playlist");
    assert!(!is_listed_only(&store, &id));
    let edited = store.get(&id).expect("get");
    assert_eq!(edited.tracks.len(), 3);
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 3, key(1)).expect("reopen");
    assert!(
        !is_listed_only(&store, &id),
        "a stale listing is not trusted"
    );
    assert_eq!(store.get(&id).expect("get"), edited);
    store.compact_all().expect("compact");
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 4, key(1)).expect("reopen");
    assert!(is_listed_only(&store, &id));
    assert_eq!(store.get(&id).expect("get"), edited);
}

/// A playlist known from its listing takes its document's first read from the listing's
/// cache (every element of the track list, hidden ones too) and then follows the document's
/// changes: a move, a removal, fields changed inside tracks, an addition. Each read is what
/// the document reads whole (debug builds also compare every read with it).
#[test]
fn a_listed_playlist_loaded_for_an_edit_reads_from_its_cache_and_what_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Cached", "", &me(), 10).expect("create");
    let bob = Author {
        peer_id: peer(2),
        display_name: "Bob".into(),
    };
    let mine = store
        .add_tracks(&id, &[track("A"), track("B"), track("C")], &me(), 11)
        .expect("add");
    let bobs = store
        .add_tracks(&id, &[track("D")], &bob, 12)
        .expect("add Bob's");
    store
        .remove_track(&id, &mine[1], &me().peer_id, 13)
        .expect("remove");
    store.compact_all().expect("compact");
    drop(store);

    let (mut store, _) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert!(is_listed_only(&store, &id));
    let cache = dir.path().join(&id).join("playlist.cache");
    assert!(cache.exists());
    store.move_track(&id, &bobs[0], 0, 14).expect("move");
    assert!(!is_listed_only(&store, &id), "an edit loads the document");
    let titles = |store: &mut Store| -> Vec<(String, String)> {
        let playlist = store.get(&id).expect("get");
        playlist
            .tracks
            .into_iter()
            .map(|t| (t.title, t.added_by.display_name))
            .collect()
    };
    let pair = |title: &str, by: &str| (title.to_string(), by.to_string());
    assert_eq!(
        titles(&mut store),
        [pair("D", "Bob"), pair("A", "Me"), pair("C", "Me")]
    );
    let carol = Author {
        peer_id: peer(3),
        display_name: "Carol".into(),
    };
    assert!(
        store
            .reattribute(&id, &bob.peer_id, &carol)
            .expect("reattribute")
    );
    store
        .remove_track(&id, &mine[2], &me().peer_id, 15)
        .expect("remove");
    store
        .add_tracks(&id, &[track("E")], &me(), 16)
        .expect("add");
    let expected = [pair("D", "Carol"), pair("A", "Me"), pair("E", "Me")];
    assert_eq!(titles(&mut store), expected);
    let read = store.get(&id).expect("get");
    drop(store);

    // The same playlist read from its document alone (no listing) reads the same.
    std::fs::remove_file(dir.path().join(&id).join("listing.json")).expect("no listing");
    let (mut store, _) = Store::open_as(dir.path(), 3, key(1)).expect("reopen");
    assert!(!is_listed_only(&store, &id));
    assert_eq!(store.get(&id).expect("get"), read);
}

/// The first read after a load takes unchanged tracks from what the document was given
/// ([`PlaylistDoc::follow_from`]): given tracks that are not the list's, the read shows
/// them, and a debug build's check of every read against the list read whole catches it.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "the followed tracks disagree with the list's")]
fn reads_start_from_the_tracks_a_loaded_document_was_given() {
    let doc =
        PlaylistDoc::create("0123456789abcdef0123456789abcdef", "P", "", &me(), 1).expect("create");
    doc.add_tracks(&[track("one"), track("two")], &me(), 2)
        .expect("add");
    let (every, hidden) = doc.read_with_hidden();
    assert!(hidden.is_empty());
    let mut given = every.tracks.clone();
    assert!(
        !doc.follow_from(given[..1].to_vec()),
        "one track is not the list's two"
    );
    given[1].title = "not what the list holds".into();
    assert!(doc.follow_from(given));
    let _ = doc.read();
}

/// Where each signed envelope is and the version it reaches is kept in the listing's cache,
/// and taken from there while the signed log is unchanged: loading the playlist then decodes
/// no envelope. A log that changed since is read as before.
#[test]
fn the_signed_logs_index_is_taken_from_the_cache_while_the_log_is_unchanged() {
    use crate::signed_log::SignedLog;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Signed", "", &me(), 10).expect("create");
    for (i, title) in ["A", "B", "C"].iter().enumerate() {
        store
            .add_tracks(&id, &[track(title)], &me(), 11 + i as u64)
            .expect("add");
    }
    store.compact_all().expect("compact");
    drop(store);
    let playlist_dir = dir.path().join(&id);
    let decoded = || {
        SignedLog::open(&playlist_dir, 1, None)
            .expect("open the signed log")
            .0
            .index()
    };
    let index = decoded();
    assert!(index.kept.len() >= 4, "{index:?}");

    // Loaded for an edit, the playlist's signed log is the cache's index, which is the log's.
    let (mut store, _) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert!(is_listed_only(&store, &id));
    let everything = store.export_since(&id, &[]).expect("export");
    assert!(!is_listed_only(&store, &id));
    assert_eq!(store.signed_index(&id), Some(index.clone()));
    drop(store);

    // The index is believed while the log is unchanged (a made-up version shows)…
    let mut made_up = index.clone();
    made_up.kept[0].1 = vec![(42, 7)];
    let (opened, _) = SignedLog::open(&playlist_dir, 3, Some(&made_up)).expect("open");
    assert_eq!(
        opened.covered().get(&42),
        Some(&7),
        "the index was not taken"
    );
    // …and not once the log has changed.
    let (mut store, _) = Store::open_as(dir.path(), 4, key(1)).expect("reopen");
    store
        .add_tracks(&id, &[track("D")], &me(), 20)
        .expect("add");
    drop(store);
    let (opened, _) = SignedLog::open(&playlist_dir, 5, Some(&made_up)).expect("open");
    assert_eq!(opened.covered().get(&42), None, "a stale index was taken");
    assert_eq!(opened.index(), decoded());
    // What was sent on before is still sent on.
    let (mut store, _) = Store::open_as(dir.path(), 6, key(1)).expect("reopen");
    let now = store.export_since(&id, &[]).expect("export");
    let envelopes = |body: &[u8]| -> Vec<Vec<u8>> {
        decode_envelopes(body)
            .expect("envelopes")
            .iter()
            .map(|e| e.encode())
            .collect()
    };
    let (before, after) = (envelopes(&everything), envelopes(&now));
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
}

#[test]
fn damaged_or_outdated_caches_fall_back_to_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Mix", "", &me(), 10).expect("create");
    store
        .add_tracks(&id, &[track("A"), track("B")], &me(), 11)
        .expect("add");
    let before = store.get(&id).expect("get");
    store.compact_all().expect("compact");
    drop(store);
    let playlist_dir = dir.path().join(&id);

    // The cache's bytes damaged, its length kept: read from the document instead.
    let cache = playlist_dir.join("playlist.cache");
    let len = std::fs::metadata(&cache).expect("cache").len() as usize;
    std::fs::write(&cache, vec![0x5a; len]).expect("damage the cache");
    let (mut store, _) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert!(is_listed_only(&store, &id));
    assert_eq!(store.get(&id).expect("get"), before);
    assert!(!is_listed_only(&store, &id), "its document was read");
    store.compact_all().expect("compact");
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert!(
        is_listed_only(&store, &id),
        "a clean stop wrote a good cache again"
    );
    assert_eq!(store.get(&id).expect("get"), before);
    drop(store);

    // A listing that names another snapshot (one written after it) is ignored.
    let (mut store, _) = Store::open_as(dir.path(), 3, key(1)).expect("reopen");
    store.compact_all().expect("compact");
    drop(store);
    let snapshot = playlist_dir.join("snapshot.loro");
    let bytes = std::fs::read(&snapshot).expect("snapshot");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&snapshot, &bytes).expect("rewrite the snapshot");
    let (mut store, _) = Store::open_as(dir.path(), 4, key(1)).expect("reopen");
    assert!(!is_listed_only(&store, &id));
    assert_eq!(store.get(&id).expect("get"), before);

    // A cache of the earlier kind (the playlist as shown, "WNC1"), its listing vouching for
    // it: the listing still lists the playlist, and reading it reads the document.
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 5, key(1)).expect("reopen");
    store.compact_all().expect("compact");
    drop(store);
    let mut old = b"WNC1".to_vec();
    old.extend(lz4_flex::compress_prepend_size(
        &serde_json::to_vec(&before).expect("json"),
    ));
    std::fs::write(&cache, &old).expect("an earlier cache");
    let listing_path = playlist_dir.join("listing.json");
    let mut listing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&listing_path).expect("listing")).expect("json");
    listing["cache_len"] = serde_json::json!(old.len());
    std::fs::write(&listing_path, serde_json::to_vec(&listing).expect("json")).expect("write");
    let (mut store, _) = Store::open_as(dir.path(), 6, key(1)).expect("reopen");
    assert!(is_listed_only(&store, &id), "the listing still lists it");
    assert_eq!(store.list()[0].track_count, 2);
    assert_eq!(store.get(&id).expect("get"), before);
    assert!(!is_listed_only(&store, &id), "its document was read");

    // A listing that is not JSON is ignored too.
    drop(store);
    std::fs::write(playlist_dir.join("listing.json"), b"{not json").expect("damage");
    let (mut store, _) = Store::open_as(dir.path(), 5, key(1)).expect("reopen");
    assert!(!is_listed_only(&store, &id));
    assert_eq!(store.get(&id).expect("get"), before);
}

#[test]
fn members_are_sent_signed_updates_read_back_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, _) = Store::open_as(&dir.path().join("a"), 1, key(1)).expect("open");
    let id = a.create("Shared", "", &me(), 10).expect("create");
    for i in 0..5 {
        a.add_tracks(&id, &[track(&format!("t{i}"))], &me(), 11 + i)
            .expect("add");
    }
    a.compact_all().expect("compact");
    drop(a);
    // Reopened (listed), then asked for everything: every envelope comes from the file.
    let (mut a, _) = Store::open_as(&dir.path().join("a"), 2, key(1)).expect("reopen");
    let all = a.export_since(&id, &[]).expect("export");
    let (mut b, _) = Store::open_as(&dir.path().join("b"), 2, key(2)).expect("open b");
    assert!(b.apply_remote(&id, &all, 3).expect("join").changed);
    assert_eq!(b.get(&id).expect("b").tracks, a.get(&id).expect("a").tracks);
}

#[test]
fn idle_playlists_let_go_of_their_documents_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open_as(dir.path(), 1, key(1)).expect("open");
    let id = store.create("Idle", "", &me(), 10).expect("create");
    store
        .add_tracks(&id, &[track("A"), track("B")], &me(), 11)
        .expect("add");
    assert_eq!(store.rest_idle(std::time::Duration::from_secs(3600)), 0);
    assert!(!is_listed_only(&store, &id), "in use: kept");
    assert_eq!(store.rest_idle(std::time::Duration::ZERO), 1);
    assert!(is_listed_only(&store, &id));
    assert_eq!(store.log_len(&id), 0);
    let rested = store.get(&id).expect("get");
    assert_eq!(rested.tracks.len(), 2);
    // Changed again after resting: its document comes back, with everything.
    store
        .add_tracks(&id, &[track("C")], &me(), 12)
        .expect("add");
    assert_eq!(titles_of(&mut store, &id), ["A", "B", "C"]);
    drop(store);
    let (mut store, _) = Store::open_as(dir.path(), 2, key(1)).expect("reopen");
    assert_eq!(titles_of(&mut store, &id), ["A", "B", "C"]);
}

/// A copy loaded from a snapshot reads its tracks out of Loro's storage, in the order of its
/// keys (`doc::key_order`), not the list's: moves, removals and the order still read as
/// in the document that made them, and edits by track id find the right tracks.
#[test]
fn a_playlist_loaded_from_a_snapshot_reads_as_the_one_that_wrote_it() {
    let doc = PlaylistDoc::create("p", "P", "", &me(), 0).expect("create");
    let tracks: Vec<NewTrack> = (0..1_000).map(|i| track(&format!("t{i}"))).collect();
    let ids = doc.add_tracks(&tracks, &me(), 1).expect("add");
    // Moves take the list's order far from the order the tracks were made in.
    for (n, id) in ids.iter().step_by(10).enumerate() {
        doc.move_track(id, (n * 37) % 900, 2).expect("move");
    }
    doc.remove_track(&ids[5], 3).expect("remove");
    let copy = PlaylistDoc::empty();
    copy.import(&doc.export_snapshot().expect("snapshot"))
        .expect("import");
    assert_eq!(copy.read(), doc.read());

    copy.move_track(&ids[100], 0, 4).expect("move in the copy");
    copy.remove_track(&ids[200], 4).expect("remove in the copy");
    let read = copy.read();
    assert_eq!(read.tracks[0].id, ids[100]);
    assert!(
        !read
            .tracks
            .iter()
            .any(|t| t.id == ids[200] || t.id == ids[5])
    );
    assert_eq!(read.tracks.len(), 998);
}

/// Pushes go in groups of whole envelopes: each group at most the size asked (an envelope
/// larger than that alone), in order, all of them together what the whole export holds,
/// and applied group by group they bring a new member everything.
#[test]
fn an_export_in_groups_is_the_whole_export_in_order_and_applies_group_by_group() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let (mut a, _) = Store::open_as(dir_a.path(), 1, key(1)).expect("open A");
    let id = a.create("Grouped", "", &me(), 1).expect("create");
    for i in 0..12 {
        let batch: Vec<NewTrack> = (0..1 + i % 3 * 40)
            .map(|j| track(&format!("t{i}-{j}")))
            .collect();
        a.add_tracks(&id, &batch, &me(), 2).expect("add");
    }
    let whole = a.export_since(&id, &[]).expect("export");
    let envelopes = decode_envelopes(&whole).expect("envelopes");
    let largest = envelopes
        .iter()
        .map(|e| encode_envelopes(std::slice::from_ref(e)).len())
        .max()
        .expect("some");
    for group_bytes in [1, largest / 2, largest, largest * 3, whole.len()] {
        let groups = a
            .export_since_grouped(&id, &[], group_bytes)
            .expect("groups");
        let mut joined = Vec::new();
        for group in &groups {
            let in_group = decode_envelopes(group).expect("a group decodes");
            assert!(
                group.len() <= group_bytes || in_group.len() == 1,
                "a group of {} bytes ({} envelopes) past {group_bytes}",
                group.len(),
                in_group.len()
            );
            joined.extend(in_group);
        }
        assert_eq!(joined, envelopes, "groups of {group_bytes} bytes");
        let dir_b = tempfile::tempdir().expect("tempdir");
        let (mut b, _) = Store::open_as(dir_b.path(), 1, key(2)).expect("open B");
        for group in &groups {
            b.apply_remote(&id, group, 3).expect("a group applies");
        }
        assert_eq!(titles_of(&mut b, &id), titles_of(&mut a, &id));
    }
    let all_of_it = a.version(&id).expect("version");
    assert!(
        a.export_since_grouped(&id, &all_of_it, 10)
            .expect("nothing lacking")
            .is_empty()
    );
}
