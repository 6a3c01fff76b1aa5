//! How the store's cost grows with the work, in-process with the store itself: one playlist
//! of 1k / 10k / 100k tracks, and homes of 10 / 100 / 1,000 playlists of 100 tracks. Each
//! home is written once, stopped cleanly (its logs folded into snapshots), then opened in
//! a fresh process (`store-open`) so what one open leaves in the allocator does not count
//! in the next: open + list, read every track, the heap the loaded store holds (counted by
//! this binary's allocator, so it is the store's own, not the allocator's slack), RSS, and
//! what a member's add and removal cost the owner who receives them.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, bail};
use libp2p_identity::Keypair;
use serde_json::{Value, json};
use whatnext_protocol::{
    playlist::{Author, NewTrack},
    signed::{Envelope, EnvelopeKind, decode_envelopes, encode_envelopes, loro_peer_of},
};
use whatnext_store::{Store, doc::PlaylistDoc};

/// Bytes the allocator has handed out and not yet got back.
fn live_bytes() -> isize {
    let stats = crate::ALLOCATOR.stats();
    // (`bytes_allocated` and `bytes_deallocated` already count what reallocations changed.)
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// The home's identity (fixed, so a fresh process opens the home as its owner) and a
/// member's.
fn key(seed: u8) -> anyhow::Result<Keypair> {
    Ok(Keypair::ed25519_from_bytes([seed; 32])?)
}

fn author(seed: u8, name: &str) -> anyhow::Result<Author> {
    Ok(Author {
        peer_id: key(seed)?.public().to_peer_id().to_string(),
        display_name: name.into(),
    })
}

const OWNER: u8 = 7;
const MEMBER: u8 = 8;

fn me() -> anyhow::Result<Author> {
    author(OWNER, "Bench")
}

/// A member's edits of playlist `id`, signed, as the owner would receive them: it adds two
/// tracks (its first change: a Loro peer new to the playlist), then removes them one by one
/// (the first removal, and a later one), then removes the owner's track `not_its_own`,
/// which a member may not do (refused).
fn member_edits(store: &mut Store, id: &str, not_its_own: &str) -> anyhow::Result<[Vec<u8>; 4]> {
    let doc = PlaylistDoc::empty();
    for envelope in decode_envelopes(&store.export_since(id, &[])?).map_err(anyhow::Error::msg)? {
        doc.import(&envelope.updates)?;
    }
    let key = key(MEMBER)?;
    let nonce = 1;
    let peer = loro_peer_of(&key.public(), nonce);
    doc.set_peer(peer)?;
    let signed = |from: i32| -> anyhow::Result<(Vec<u8>, i32)> {
        let to = doc.version().get(&peer).copied().unwrap_or(0);
        let updates = doc.export_span(peer, from, to)?;
        let envelope = Envelope::sign(&key, id, EnvelopeKind::Changes, nonce, updates)?;
        Ok((encode_envelopes(&[envelope]), to))
    };
    let added = doc.add_tracks(
        &[track(usize::MAX / 3), track(usize::MAX / 5)],
        &author(MEMBER, "Member")?,
        5,
    )?;
    let [first, second] = added.as_slice() else {
        bail!("two tracks were added, not {}", added.len());
    };
    let (add, at) = signed(0)?;
    doc.remove_track(first, 6)?;
    let (remove, at) = signed(at)?;
    doc.remove_track(second, 7)?;
    let (later_remove, at) = signed(at)?;
    doc.remove_track(not_its_own, 8)?;
    let (refused, _) = signed(at)?;
    Ok([add, remove, later_remove, refused])
}

fn track(i: usize) -> NewTrack {
    NewTrack {
        title: format!("Track number {i}"),
        artists: vec![format!("Artist {}", i % 500)],
        album: Some(format!("Album {}", i % 1000)),
        duration_ms: Some(180_000 + i as u64),
        uri: Some(format!("spotify:track:{i:022}")),
        content: None,
    }
}

/// Writes a home of `playlists` playlists of `tracks` tracks each (added in batches of at
/// most 10,000, as a paste or an import would), folded into snapshots. Returns the first
/// playlist's id and the bytes on disk.
pub(crate) fn write_home(
    root: &Path,
    playlists: usize,
    tracks: usize,
) -> anyhow::Result<(String, u64)> {
    let (mut store, _) = Store::open_as(root, 1, key(OWNER)?)?;
    let mut first = None;
    for p in 0..playlists {
        let id = store.create(&format!("Playlist {p}"), "", &me()?, 1)?;
        let batch: Vec<NewTrack> = (0..tracks).map(track).collect();
        for chunk in batch.chunks(10_000) {
            store.add_tracks(&id, chunk, &me()?, 2)?;
        }
        if first.is_none() {
            store.add_member(&id, &author(MEMBER, "Member")?)?;
        }
        first.get_or_insert(id);
    }
    store.compact_all()?;
    drop(store);
    Ok((first.context("no playlist")?, disk_bytes(root)))
}

fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `store-open DIR ID`: in this fresh process, opens the store, lists it, reads playlist
/// `ID` whole, and says what each step cost.
pub fn open(root: &Path, id: &str) -> anyhow::Result<Value> {
    let heap_before = live_bytes();
    let rss_before = crate::lifecycle::rss_kb(std::process::id());
    let t0 = Instant::now();
    let (mut store, report) = Store::open_as(root, 3, key(OWNER)?)?;
    let listed = store.list();
    let open_list_ms = t0.elapsed().as_secs_f64() * 1e3;
    let heap_listed = live_bytes();
    let t1 = Instant::now();
    let playlist = store.get(id)?;
    let read_ms = t1.elapsed().as_secs_f64() * 1e3;
    let tracks = playlist.tracks.len();
    let owners_track = playlist
        .tracks
        .first()
        .map(|t| t.id.clone())
        .context("the playlist has no tracks")?;
    drop(playlist);
    let heap_loaded = live_bytes();
    let rss_loaded = crate::lifecycle::rss_kb(std::process::id());
    let expected: usize = listed.iter().map(|p| p.track_count).sum();
    // In use: one edit reads its document (no cache stands for it any more), then every
    // track is read again.
    let t2 = Instant::now();
    store.add_tracks(id, &[track(usize::MAX / 2)], &me()?, 4)?;
    let edit_ms = t2.elapsed().as_secs_f64() * 1e3;
    let heap_after_edit = live_bytes();
    let t3 = Instant::now();
    let edited = store.get(id)?.tracks.len();
    let edited_read_ms = t3.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(edited == tracks + 1, "the edit did not land");
    let heap_edited = live_bytes();
    let rss_edited = crate::lifecycle::rss_kb(std::process::id());
    // A member's edits received (checked against its rights, applied, stored).
    let [add, remove, later_remove, refused] = member_edits(&mut store, id, &owners_track)?;
    let mut received = |body: &[u8], now: u64| -> anyhow::Result<f64> {
        let t = Instant::now();
        let applied = store.apply_remote(id, body, now)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            applied.changed && applied.rejected.is_empty(),
            "a member's edit was not applied: {applied:?}"
        );
        Ok(ms)
    };
    let member_add_ms = received(&add, 7)?;
    let member_removal_ms = received(&remove, 8)?;
    // Once the playlist has removals, the track ids are followed (the count needs them).
    let member_later_removal_ms = received(&later_remove, 9)?;
    // An edit once some track was removed: the count of tracks shown must leave out removed
    // ids, and is refreshed after every change.
    let t6 = Instant::now();
    store.add_tracks(id, &[track(usize::MAX / 4)], &me()?, 10)?;
    let edit_after_removal_ms = t6.elapsed().as_secs_f64() * 1e3;
    // A read after a later edit (what the view, a session action or a vote does after each
    // change): the document was read before.
    let t7 = Instant::now();
    let later_read = store.get(id)?.tracks.len();
    let read_after_later_edit_ms = t7.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(later_read == tracks + 2, "the later edit did not land");
    // A member's edit it had no right to make (a modified client), refused: it was applied,
    // judged, and undone. Then the read that follows it.
    let t8 = Instant::now();
    let answer = store.apply_remote(id, &refused, 11)?;
    let member_refusal_received_ms = t8.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        !answer.changed && answer.rejected.len() == 1,
        "a member's removal of the owner's track was not refused: {answer:?}"
    );
    let t9 = Instant::now();
    let after_refusal = store.get(id)?.tracks.len();
    let read_after_refusal_ms = t9.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        after_refusal == tracks + 2,
        "a refused edit changed the playlist"
    );
    drop(store);
    Ok(json!({
        "playlists": report.playlists,
        "tracks_listed": expected,
        "tracks_read": tracks,
        "open_list_ms": open_list_ms,
        "open_read_ms": open_list_ms + read_ms,
        "heap_listed_mb": (heap_listed - heap_before) as f64 / 1048576.0,
        "heap_loaded_mb": (heap_loaded - heap_before) as f64 / 1048576.0,
        "rss_loaded_mb": rss_loaded.saturating_sub(rss_before) as f64 / 1024.0,
        "first_edit_ms": edit_ms,
        "read_after_edit_ms": edited_read_ms,
        "heap_in_use_mb": (heap_edited - heap_before) as f64 / 1048576.0,
        "heap_after_edit_mb": (heap_after_edit - heap_before) as f64 / 1048576.0,
        "rss_in_use_mb": rss_edited.saturating_sub(rss_before) as f64 / 1024.0,
        "member_add_received_ms": member_add_ms,
        "member_removal_received_ms": member_removal_ms,
        "member_later_removal_received_ms": member_later_removal_ms,
        "edit_after_removal_ms": edit_after_removal_ms,
        "read_after_later_edit_ms": read_after_later_edit_ms,
        "member_refusal_received_ms": member_refusal_received_ms,
        "read_after_refusal_ms": read_after_refusal_ms,
    }))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    crate::stats::percentile(&v, 0.5)
}

/// One row of a growth table: a home of `playlists` × `tracks`, opened `runs` times.
fn row(playlists: usize, tracks: usize, runs: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let root = match std::env::var_os("WHATNEXT_BENCH_KEEP") {
        Some(keep) => std::path::PathBuf::from(keep).join(format!("{playlists}x{tracks}")),
        None => dir.path().join("store"),
    };
    let t = Instant::now();
    let (id, disk) = write_home(&root, playlists, tracks)?;
    let write_s = t.elapsed().as_secs_f64();
    let me = std::env::current_exe()?;
    let mut opens = Vec::new();
    for _ in 0..runs {
        // Each open edits its store: a fresh copy each time.
        let copy = tempfile::tempdir()?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(&root)
            .arg(copy.path().join("store"))
            .status()?;
        anyhow::ensure!(status.success(), "could not copy the store");
        let out = Command::new(&me)
            .arg("store-open")
            .arg(copy.path().join("store"))
            .arg(&id)
            .output()?;
        if !out.status.success() {
            bail!("store-open: {}", String::from_utf8_lossy(&out.stderr));
        }
        let answer: Value = serde_json::from_slice(&out.stdout)?;
        if answer["tracks_read"].as_u64() != Some(tracks as u64)
            || answer["playlists"].as_u64() != Some(playlists as u64)
        {
            bail!("the store did not load whole: {answer}");
        }
        opens.push(answer);
    }
    let figure = |key: &str| median(opens.iter().filter_map(|o| o[key].as_f64()).collect());
    Ok(json!({
        "playlists": playlists,
        "tracks_each": tracks,
        "write_s": write_s,
        "disk_bytes": disk,
        "open_list_ms": figure("open_list_ms"),
        "open_read_ms": figure("open_read_ms"),
        "heap_listed_mb": figure("heap_listed_mb"),
        "heap_loaded_mb": figure("heap_loaded_mb"),
        "rss_loaded_mb": figure("rss_loaded_mb"),
        "first_edit_ms": figure("first_edit_ms"),
        "read_after_edit_ms": figure("read_after_edit_ms"),
        "heap_in_use_mb": figure("heap_in_use_mb"),
        "rss_in_use_mb": figure("rss_in_use_mb"),
        "member_add_received_ms": figure("member_add_received_ms"),
        "member_removal_received_ms": figure("member_removal_received_ms"),
        "member_later_removal_received_ms": figure("member_later_removal_received_ms"),
        "edit_after_removal_ms": figure("edit_after_removal_ms"),
        "read_after_later_edit_ms": figure("read_after_later_edit_ms"),
        "member_refusal_received_ms": figure("member_refusal_received_ms"),
        "read_after_refusal_ms": figure("read_after_refusal_ms"),
    }))
}

/// The growth tables. `quick`: the smallest sizes only, one open each (the bench's
/// self-check in `scripts/test`).
/// `only`: one playlist of that many tracks, nothing else.
pub fn run(quick: bool, only: Option<usize>) -> anyhow::Result<Value> {
    let runs = if quick { 1 } else { 5 };
    let track_sizes: Vec<usize> = match (only, quick) {
        (Some(n), _) => vec![n],
        (None, true) => vec![1_000],
        (None, false) => vec![1_000, 10_000, 100_000],
    };
    let home_sizes: &[usize] = match (only, quick) {
        (Some(_), _) => &[],
        (None, true) => &[10],
        (None, false) => &[10, 100, 1_000],
    };
    let mut by_tracks = Vec::new();
    for tracks in track_sizes {
        eprintln!("  one playlist of {tracks} tracks …");
        by_tracks.push(row(1, tracks, runs)?);
    }
    let mut by_playlists = Vec::new();
    for &playlists in home_sizes {
        eprintln!("  {playlists} playlists of 100 tracks …");
        by_playlists.push(row(playlists, 100, runs)?);
    }
    Ok(json!({"by_tracks": by_tracks, "by_playlists": by_playlists}))
}
