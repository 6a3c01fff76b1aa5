//! Playlists through the CLI and a real controller: the JSON contract, refusals that change
//! nothing, crash safety under `kill -9`, and Markdown export/import between homes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::support::*;
use nix::sys::signal::Signal;

fn refused(node: &Node, args: &[&str], expected: &str) {
    let out = node.cli(args);
    assert!(!out.status.success(), "{args:?} was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expected), "{args:?}: {err}");
}

#[test]
fn the_playlist_commands_keep_their_json_contract() {
    let a = Node::start();
    assert_eq!(cli_json(&a, &["playlist", "list"]), serde_json::json!([]));
    let id = cli_json(
        &a,
        &["playlist", "create", "Road trip", "--description", "summer"],
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    let t1 = cli_json(
        &a,
        &[
            "playlist",
            "add",
            &id,
            "--title",
            "So What",
            "--artist",
            "Miles Davis",
            "--artist",
            "John Coltrane",
            "--album",
            "Kind of Blue",
            "--duration-ms",
            "562000",
            "--uri",
            "spotify:track:1",
        ],
    )["track_id"]
        .as_str()
        .expect("track_id")
        .to_string();
    let t2 = cli_json(
        &a,
        &[
            "playlist",
            "add",
            &id,
            "--title",
            "Naima",
            "--artist",
            "John Coltrane",
        ],
    )["track_id"]
        .as_str()
        .expect("track_id")
        .to_string();
    cli_json(&a, &["playlist", "move", &id, &t2, "--to", "1"]);

    let shown = cli_json(&a, &["playlist", "show", &id]);
    for key in ["id", "name", "description", "queue_mode", "tracks"] {
        assert!(shown.get(key).is_some(), "show lacks {key}: {shown}");
    }
    assert_eq!(shown["queue_mode"], "free_for_all");
    let tracks = shown["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0]["id"], t2.as_str());
    let so_what = &tracks[1];
    for key in [
        "id",
        "title",
        "artists",
        "album",
        "duration_ms",
        "uri",
        "added_by",
        "added_at",
    ] {
        assert!(so_what.get(key).is_some(), "track lacks {key}: {so_what}");
    }
    assert_eq!(
        so_what["artists"],
        serde_json::json!(["Miles Davis", "John Coltrane"])
    );
    assert_eq!(so_what["duration_ms"], 562000);
    assert_eq!(so_what["added_by"]["peer_id"], a.peer_id().as_str());

    let list = cli_json(&a, &["playlist", "list"]);
    let entry = &list[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["name"], "Road trip");
    assert_eq!(entry["track_count"], 2);
    assert!(entry["updated_at"].is_u64());

    // Refusals say what was wrong and change nothing.
    let before = cli_json(&a, &["playlist", "show", &id]);
    refused(
        &a,
        &["playlist", "add", &id, "--title", "  ", "--artist", "x"],
        "title must not be empty",
    );
    refused(
        &a,
        &["playlist", "move", &id, &t1, "--to", "9"],
        "position 9 is past the end: the playlist has 2 tracks",
    );
    refused(&a, &["playlist", "remove", &id, "nope"], "no track");
    refused(&a, &["playlist", "show", "nope"], "no playlist");
    refused(
        &a,
        &["playlist", "rename", &id, ""],
        "name must not be empty",
    );
    let garbage = a.home.join("garbage.md");
    std::fs::write(&garbage, [0xff, 0xfe, 0x00]).expect("write");
    refused(
        &a,
        &["playlist", "import", garbage.to_str().expect("path")],
        "not UTF-8",
    );
    assert_eq!(cli_json(&a, &["playlist", "show", &id]), before);

    cli_json(&a, &["playlist", "remove", &id, &t1]);
    cli_json(&a, &["playlist", "rename", &id, "Road trip 2026"]);
    let state = a.status().expect("status");
    assert_eq!(
        state["playlists"][0]["name"], "Road trip 2026",
        "the state carries the change"
    );
    assert_eq!(state["playlists"][0]["track_count"], 1);

    // The Markdown mirror follows, debounced.
    wait_until("the Markdown mirror", PATIENCE, || {
        let dir = std::fs::read_dir(a.home.join("playlists")).ok()?;
        let text: String = dir
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        (text.contains("# Road trip 2026") && text.contains("**Naima**")).then_some(())
    });

    cli_json(&a, &["playlist", "delete", &id]);
    assert_eq!(cli_json(&a, &["playlist", "list"]), serde_json::json!([]));
}

#[test]
fn every_acknowledged_add_survives_kill_9_of_the_controller() {
    let home = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = cli_json(&a, &["playlist", "create", "Crash test"])["id"]
        .as_str()
        .expect("id")
        .to_string();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos() as u64;
    let kill_after = Duration::from_millis(300 + seed % 1200);
    eprintln!("seed {seed}: killing the controller after {kill_after:?}");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (home, id, acknowledged) = (
            home.path().to_path_buf(),
            id.clone(),
            Arc::clone(&acknowledged),
        );
        std::thread::spawn(move || {
            let started = Instant::now();
            for i in 0..2000 {
                let title = format!("track {i}");
                let out = whatnext(
                    &home,
                    &["playlist", "add", &id, "--title", &title, "--artist", "a"],
                );
                if !out.status.success() {
                    break; // the controller is gone
                }
                acknowledged.lock().expect("lock").push(title);
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
        })
    };
    std::thread::sleep(kill_after);
    a.stop_with(Signal::SIGKILL);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        !acknowledged.is_empty(),
        "some adds completed before the kill"
    );

    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let shown = cli_json(&a, &["playlist", "show", &id]);
    let titles: Vec<&str> = shown["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .collect();
    for title in &acknowledged {
        assert!(
            titles.contains(&title.as_str()),
            "acknowledged {title} is lost (seed {seed})"
        );
    }
    // At most the one in flight at the kill went through unacknowledged.
    assert!(
        titles.len() <= acknowledged.len() + 1,
        "{} stored, {} acknowledged",
        titles.len(),
        acknowledged.len()
    );
    eprintln!(
        "{} adds acknowledged before the kill, {} stored",
        acknowledged.len(),
        titles.len()
    );
    assert!(!a.log().contains("could not be loaded"), "{}", a.log());
}

#[test]
fn export_then_import_in_another_home_keeps_every_field() {
    let a = Node::start();
    let b = Node::start();
    let id = cli_json(
        &a,
        &[
            "playlist",
            "create",
            "Late night",
            "--description",
            "smoky\nand slow",
        ],
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    cli_json(
        &a,
        &[
            "playlist",
            "add",
            &id,
            "--title",
            "So What",
            "--artist",
            "Miles Davis",
            "--album",
            "Kind of Blue",
            "--duration-ms",
            "562000",
            "--uri",
            "spotify:track:1",
        ],
    );
    cli_json(
        &a,
        &[
            "playlist",
            "add",
            &id,
            "--title",
            "Naima: \"take 2\"",
            "--artist",
            "John Coltrane",
        ],
    );
    let file = a.home.join("export.md");
    let out = a.cli(&[
        "playlist",
        "export",
        &id,
        "--out",
        file.to_str().expect("path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("exported");
    assert!(
        text.starts_with("---\n") && text.contains("# Late night"),
        "{text}"
    );

    let imported = cli_json(&b, &["playlist", "import", file.to_str().expect("path")]);
    assert_eq!(imported["id"], id.as_str());
    // Every stored field is equal; `members[].online` is presence as each node sees it.
    let stored = |node: &Node| {
        let mut shown = cli_json(node, &["playlist", "show", &id]);
        shown.as_object_mut().expect("object").remove("members");
        shown
    };
    assert_eq!(stored(&b), stored(&a));
    // Importing the same playlist again needs --as-new.
    refused(
        &b,
        &["playlist", "import", file.to_str().expect("path")],
        "already exists",
    );
    let copy = cli_json(
        &b,
        &[
            "playlist",
            "import",
            file.to_str().expect("path"),
            "--as-new",
        ],
    );
    assert_ne!(copy["id"], id.as_str());
    let copy_id = copy["id"].as_str().expect("id");
    let name = |id: &str| cli_json(&b, &["playlist", "show", id])["name"].clone();
    assert_eq!(
        name(copy_id),
        format!("{} (copy)", name(&id).as_str().expect("name"))
    );
}

/// A playlist is named by its id, the start of it, or its name; lengths are typed as m:ss;
/// positions count from 1, as people count.
#[test]
fn playlists_are_named_by_id_prefix_or_name_and_positions_count_from_one() {
    let a = Node::start();
    let road = cli_json(&a, &["playlist", "create", "Road Trip"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let party = cli_json(&a, &["playlist", "create", "Party"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    // By name, with a length typed as m:ss.
    let first = cli_json(
        &a,
        &[
            "playlist",
            "add",
            "Road Trip",
            "--title",
            "One",
            "--artist",
            "A",
            "--duration",
            "3:45",
        ],
    )["track_id"]
        .as_str()
        .expect("track id")
        .to_string();
    // By the start of its id (as short as still names one).
    let prefix = (1..=road.len())
        .map(|n| &road[..n])
        .find(|p| !party.starts_with(p))
        .expect("the ids differ");
    cli_json(
        &a,
        &["playlist", "add", prefix, "--title", "Two", "--artist", "B"],
    );
    let shown = cli_json(&a, &["playlist", "show", "Road Trip"]);
    assert_eq!(shown["id"], road.as_str());
    assert_eq!(shown["tracks"][0]["duration_ms"], 225_000);
    // Position 2 is the bottom; `show` numbers from 1.
    cli_json(&a, &["playlist", "move", &road, &first, "--to", "2"]);
    let out = a.cli(&["playlist", "show", prefix]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  1. Two") && text.contains("  2. One"),
        "{text}"
    );
    refused(&a, &["playlist", "move", &road, &first, "--to", "0"], "0");
    refused(
        &a,
        &[
            "playlist",
            "add",
            "Road Trip",
            "--title",
            "X",
            "--duration",
            "225",
        ],
        "m:ss",
    );
    // Two playlists of one name: the error lists both ids.
    cli_json(&a, &["playlist", "create", "Party"]);
    refused(&a, &["playlist", "show", "Party"], "2 playlists are called");
    refused(&a, &["session", "now", "Nothing like it"], "playlist list");
}

/// With no controller running, `playlist list|show|export` read the Markdown copies; a
/// command that changes something says WhatNext is not running.
#[test]
fn reading_playlists_needs_no_running_controller() {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("config.toml"), "music_dirs = []\n").expect("config");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = cli_json(&a, &["playlist", "create", "Offline"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    add_track(&a, &id, "Kept");
    // The copy is written shortly after the change.
    wait_until("the Markdown copy", PATIENCE, || {
        std::fs::read_dir(home.path().join("playlists"))
            .ok()?
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("Kept")))
            .then_some(())
    });
    assert!(a.stop_with(Signal::SIGTERM).success());
    // A damaged copy is named and skipped; the others are still read.
    std::fs::write(
        home.path().join("playlists").join("broken.md"),
        "---\nnot: [closed\n",
    )
    .expect("damage");

    let list = cli_json(&a, &["playlist", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let out = a.cli(&["playlist", "list"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("skipped"),
        "the damaged copy is named"
    );
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["track_count"], 1, "{list}");
    let shown = cli_json(&a, &["playlist", "show", "Offline"]);
    assert_eq!(shown["tracks"][0]["title"], "Kept", "{shown}");
    let out = a.cli(&["playlist", "export", &id[..6], "--format", "m3u"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("someone - Kept"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
    refused(
        &a,
        &["playlist", "add", &id, "--title", "X", "--artist", "Y"],
        "not running",
    );
}
