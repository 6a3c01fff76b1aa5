//! The music library through the CLI and the API of a real controller: a scan of real
//! audio files (tags, durations, BLAKE3) that reports what it cannot read, an incremental
//! rescan, tracks added from the library and from a file carrying their content to another
//! member, and the audio served with Range to those who may (and nobody else).

use std::{str::FromStr as _, time::Duration};

use nix::sys::signal::Signal;

use serde_json::Value;
use whatnext_media::tone::write_tagged_tone;

use crate::support::*;

/// Ann (with `title` in her music folder, `ms` long) shares a playlist holding it.
struct Shared {
    music: tempfile::TempDir,
    song: std::path::PathBuf,
    bytes: Vec<u8>,
    _home: tempfile::TempDir,
    a: Node,
    id: String,
    link: String,
    blake3: String,
}

fn shared_song(file: &str, title: &str, ms: u32) -> Shared {
    let music = tempfile::tempdir().expect("music");
    let song = music.path().join(file);
    write_tagged_tone(&song, ms, title, "Ann Artist", "Tones").expect("tone");
    let bytes = std::fs::read(&song).expect("read");
    let (home, a) = node_with_music(music.path());
    cli_json(&a, &["library", "scan"]);
    let (id, link) = create_shared(&a, title);
    let added = cli_json(&a, &["playlist", "add", &id, "--from-library", title]);
    let blake3 = added["file"]["content"]["blake3"]
        .as_str()
        .expect("blake3")
        .to_string();
    Shared {
        music,
        song,
        bytes,
        _home: home,
        a,
        id,
        link,
        blake3,
    }
}

fn entries(reply: &Value) -> Vec<Value> {
    reply["entries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_library_scan_feeds_playlists_and_its_audio_is_served_with_range_to_the_owner_only() {
    let music = tempfile::tempdir().expect("music");
    let first = music.path().join("first.wav");
    write_tagged_tone(&first, 2_000, "First Song", "Ann Artist", "Tones").expect("tone");
    std::fs::create_dir(music.path().join("sub")).expect("dir");
    write_tagged_tone(
        &music.path().join("sub/second.wav"),
        1_000,
        "Second Song",
        "Bea",
        "Tones",
    )
    .expect("tone");
    std::fs::write(music.path().join("broken.wav"), b"RIFF\x10\0\0\0WAVEfmt ").expect("w");
    std::fs::write(music.path().join("notes.mp3"), "just text").expect("w");
    let (_home, a) = node_with_music(music.path());

    let report = cli_json(&a, &["library", "scan"]);
    assert_eq!(report["files"], 4, "{report}");
    let failed: Vec<&str> = report["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(failed.len(), 2, "{report}");
    assert!(failed.iter().any(|p| p.ends_with("broken.wav")), "{report}");
    assert!(failed.iter().any(|p| p.ends_with("notes.mp3")), "{report}");
    let all = cli_json(&a, &["library", "list"]);
    assert_eq!(all["total"], 2, "{all}");
    let found = entries(&cli_json(&a, &["library", "search", "first ann"]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["title"], "First Song");
    assert_eq!(found[0]["artists"], serde_json::json!(["Ann Artist"]));
    let ms = found[0]["duration_ms"].as_u64().expect("duration");
    assert!((1_900..=2_100).contains(&ms), "{ms}");
    // Case and accents aside; `found` counts the matches.
    let folded = cli_json(&a, &["library", "search", "FÏRST Änn"]);
    assert_eq!(entries(&folded).len(), 1, "{folded}");
    assert_eq!(folded["found"], 1, "{folded}");

    // One file changes: a rescan reads it (alone: the others are unchanged; the watcher may
    // have read it first, after the write).
    write_tagged_tone(&first, 2_500, "First Song (live)", "Ann Artist", "Tones").expect("tone");
    let report = cli_json(&a, &["library", "scan"]);
    assert_eq!(
        (&report["added"], &report["removed"]),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{report}"
    );
    assert!(report["updated"].as_u64() <= Some(1), "{report}");
    assert_eq!(
        entries(&cli_json(&a, &["library", "search", "live"])).len(),
        1
    );
    // A new file is found without a scan: the folders are watched.
    write_tagged_tone(
        &music.path().join("sub/third.wav"),
        800,
        "Third",
        "Cid",
        "Tones",
    )
    .expect("tone");
    wait_until("the watcher to add the new file", PATIENCE, || {
        (cli_json(&a, &["library", "list"])["total"] == 3).then_some(())
    });

    // Tracks from the library and from a file elsewhere carry their content to a member.
    let (id, link) = create_shared(&a, "Tones");
    let added = cli_json(&a, &["playlist", "add", &id, "--from-library", "live"]);
    assert_eq!(added["file"]["title"], "First Song (live)", "{added}");
    let content = added["file"]["content"].clone();
    let blake3 = content["blake3"].as_str().expect("blake3").to_string();
    assert_eq!(blake3.len(), 64);
    let elsewhere = tempfile::tempdir().expect("dir");
    let single = elsewhere.path().join("Solo Artist - Single.wav");
    std::fs::write(&single, whatnext_media::tone::tone_wav(700, 5)).expect("w");
    let added = cli_json(
        &a,
        &[
            "playlist",
            "add",
            &id,
            "--file",
            &single.display().to_string(),
        ],
    );
    assert_eq!(added["file"]["title"], "Single", "{added}");
    assert_eq!(added["file"]["artists"], serde_json::json!(["Solo Artist"]));
    let refused = a.cli(&["playlist", "add", &id, "--from-library", "no such song"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no file in the library matches"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let b = Node::start();
    join(&b, &link);
    let on_b = wait_until("B to have both tracks", PATIENCE, || {
        let playlist = show(&b, &id)?;
        (playlist["tracks"].as_array()?.len() == 2).then_some(playlist)
    });
    assert_eq!(on_b["tracks"][0]["content"], content, "{on_b}");
    assert_eq!(on_b["tracks"][0]["duration_ms"], 2_500);

    // The audio: whole, a range, not without the token, not from a home without the file.
    let (url, token) = a.api();
    let auth = format!("Bearer {token}");
    let bytes = std::fs::read(&first).expect("read");
    let (status, head, body) = http_bytes(
        &url,
        &format!("/media/{blake3}"),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_lowercase().contains("content-type: audio/wav"),
        "{head}"
    );
    assert_eq!(body, bytes);
    let (status, head, body) = http_bytes(
        &url,
        &format!("/media/{blake3}"),
        &[("Authorization", &auth), ("Range", "bytes=100-199")],
    );
    assert_eq!(status, 206, "{head}");
    assert!(
        head.to_lowercase()
            .contains(&format!("content-range: bytes 100-199/{}", bytes.len())),
        "{head}"
    );
    assert_eq!(body, &bytes[100..200]);
    let (status, _, _) = http_bytes(&url, &format!("/media/{blake3}"), &[]);
    assert_eq!(
        status, 401,
        "no access without the token or the view's cookie"
    );
    // Audio nobody here has (B may already have fetched the playlist's: it is up next).
    let (status, _, _) = http_bytes(
        &url,
        &format!("/media/{}", "0".repeat(64)),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 404, "no such audio here");
    let (status, _, _) = http_bytes(
        &url,
        "/media/..%2F..%2Fetc%2Fpasswd",
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 404);
}

/// The cover in a file's tags is served for the view's artwork; a file without one, or
/// audio this home lacks, answers 404 (the view draws a tile), and nobody without the token
/// gets it.
#[test]
fn a_files_cover_picture_is_served_to_the_view() {
    let music = tempfile::tempdir().expect("music");
    let covered = music.path().join("covered.wav");
    whatnext_media::tone::write_tagged_tone_with_cover(&covered, 700, "Covered", "Ann", "Art")
        .expect("tone");
    write_tagged_tone(&music.path().join("plain.wav"), 700, "Plain", "Ann", "Art").expect("tone");
    let (_home, a) = node_with_music(music.path());
    cli_json(&a, &["library", "scan"]);
    let id = cli_json(&a, &["playlist", "create", "Art"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let blake3_of = |title: &str| {
        cli_json(&a, &["playlist", "add", &id, "--from-library", title])["file"]["content"]
            ["blake3"]
            .as_str()
            .expect("blake3")
            .to_string()
    };
    let (covered, plain) = (blake3_of("Covered"), blake3_of("Plain"));
    let (url, token) = a.api();
    let auth = format!("Bearer {token}");
    let (status, head, body) = http_bytes(
        &url,
        &format!("/media/{covered}/cover"),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_lowercase().contains("content-type: image/png"),
        "{head}"
    );
    assert_eq!(body, whatnext_media::tone::TEST_COVER_PNG);
    for (blake3, auth) in [(&plain, auth.as_str()), (&"0".repeat(64), auth.as_str())] {
        let (status, head, _) = http_bytes(
            &url,
            &format!("/media/{blake3}/cover"),
            &[("Authorization", auth)],
        );
        assert_eq!(status, 404, "{head}");
    }
    let (status, _, _) = http_bytes(&url, &format!("/media/{covered}/cover"), &[]);
    assert_eq!(status, 401);
}

#[test]
fn a_member_fetches_the_audio_of_what_plays_verified_and_a_stranger_is_refused() {
    // 75 s of 8 kHz 16-bit mono: 1.2 MB, five verified groups.
    // (Every field bound: what a pattern leaves out is dropped at once — the node with it.)
    let Shared {
        music: _music,
        song: _song,
        bytes,
        _home,
        a,
        id,
        link,
        blake3,
    } = shared_song("long.wav", "Long Song", 75_000);
    let b = Node::start();
    join(&b, &link);
    wait_until("B to have the track", PATIENCE, || {
        (show(&b, &id)?["tracks"].as_array()?.len() == 1).then_some(())
    });
    cli_json(&a, &["session", "play", &id]);

    // B lacks the file; what plays now is fetched from A, verified, and served by B.
    let (b_url, b_token) = b.api();
    let b_auth = format!("Bearer {b_token}");
    let fetched = wait_until("B to fetch the audio", PATIENCE, || {
        let (status, _, body) = http_bytes(
            &b_url,
            &format!("/media/{blake3}"),
            &[("Authorization", &b_auth)],
        );
        (status == 200).then_some(body)
    });
    assert_eq!(fetched, bytes, "the same bytes");
    let kept = b.home.join("media").join(&blake3);
    assert_eq!(std::fs::read(&kept).expect("kept"), bytes);
    assert!(
        !b.home
            .join("media")
            .join(format!("{blake3}.partial"))
            .exists()
    );
    wait_until("no transfer left in B's status", PATIENCE, || {
        b.status()?["transfers"]
            .as_array()?
            .is_empty()
            .then_some(())
    });
    // Members measure each other's clocks (one machine here: the same clock, near zero).
    let b_id = b.peer_id();
    let clock = wait_until("A to know B's clock", PATIENCE, || {
        a.status()?["connections"]
            .as_array()?
            .iter()
            .find(|c| c["peer_id"] == b_id.as_str())?["clock"]
            .as_object()
            .cloned()
    });
    let offset = clock["offset_ms"].as_f64().expect("offset");
    let error = clock["error_ms"].as_f64().expect("error");
    assert!(offset.abs() <= error + 5.0, "{clock:?}");
    assert!(error < 100.0, "{clock:?}");

    // A stranger — not admitted to the playlist — is refused the audio.
    let mut stranger = Service::connected_to(&a);
    stranger.send(&serde_json::json!({"id": 2, "type": "request", "payload": {"peer_id": a.peer_id(), "protocol": "blob",
        "body": {"type": "outboard", "session": id, "blake3": blake3}}}));
    let reply = stranger.reply_to(2);
    assert_eq!(reply["payload"]["body"]["type"], "refused", "{reply}");
    assert!(
        reply["payload"]["body"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not admitted"),
        "{reply}"
    );
}

/// A home of its own with no music folder, kept by the test (so a restart finds it).
fn bare_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("config.toml"), "music_dirs = []\n").expect("config");
    home
}

#[test]
fn a_fetch_cut_by_kill_9_resumes_from_what_it_kept() {
    // 30 MB: over a hundred groups, so the fetch is still under way when it is cut.
    let Shared {
        music: _music,
        song: _song,
        bytes,
        _home,
        a,
        id: _id,
        link,
        blake3,
    } = shared_song("big.wav", "Big Song", 1_900_000);
    let home_b = bare_home();
    let mut b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    join(&b, &link);
    let partial = home_b
        .path()
        .join("media")
        .join(format!("{blake3}.partial"));
    // Cut B (the controller, kill -9) once part of the file is in.
    let got = wait_until("B to fetch part of the file", PATIENCE, || {
        let len = std::fs::metadata(&partial).ok()?.len();
        (len >= 4 * 262_144).then_some(len)
    });
    let service = b.service_pid();
    b.stop_with(Signal::SIGKILL);
    signal(service, Signal::SIGKILL);
    let kept = std::fs::metadata(&partial)
        .expect("the partial file is kept")
        .len();
    assert!(kept >= got, "{kept} < {got}");
    assert!(kept < bytes.len() as u64, "cut before the end");

    let b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    let whole = home_b.path().join("media").join(&blake3);
    let deadline = std::time::Instant::now() + 3 * PATIENCE;
    while !whole.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "B did not finish the file; B's log:\n{}\nA's log:\n{}",
            b.log(),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(&whole).expect("read"), bytes);
    assert!(
        b.log().contains("resuming audio"),
        "it went on from what it kept:\n{}",
        b.log()
    );
}

#[test]
fn a_group_that_fails_its_check_is_thrown_away_and_fetched_from_another_member() {
    let Shared {
        music,
        song,
        bytes,
        _home,
        a: _a,
        id,
        link,
        blake3,
    } = shared_song("song.wav", "Checked Song", 75_000);
    // Ann's copy is away for now: she refuses to serve it, and B keeps trying.
    let away = music.path().join("away.bin");
    std::fs::rename(&song, &away).expect("move");
    let b = Node::start();
    join(&b, &link);

    // Mallory, an admitted member, claims the file and sends corrupted groups.
    let secret = whatnext_protocol::link::InviteLink::from_str(&link)
        .expect("link")
        .key
        .expect("key");
    let mut mallory = Service::connected_to(&b);
    mallory.send(&serde_json::json!({"id": 2, "type": "request", "payload": {"peer_id": b.peer_id(), "protocol": "handshake",
        "body": {"app_version": "modified", "display_name": "Mallory", "sessions": [{"session": id, "key": secret}]}}}));
    let reply = mallory.reply_to(2);
    assert_eq!(
        reply["payload"]["body"]["accepted"],
        serde_json::json!([id]),
        "{reply}"
    );
    let cvs = whatnext_media::outboard::outboard(&bytes[..], bytes.len() as u64).expect("outboard");
    let outboard: Vec<u8> = cvs.concat();
    let whole = b.home.join("media").join(&blake3);
    let mut corrupted = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    // Answer B's requests to Mallory until B has the file (from Ann).
    while !whole.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "B never got the file\n{}",
            b.log()
        );
        // Once Mallory's corrupted group was thrown away, Ann's copy comes back.
        if corrupted > 0 && away.exists() {
            std::fs::rename(&away, &song).expect("move back");
        }
        let Some(event) = mallory.try_recv(Duration::from_millis(100)) else {
            continue;
        };
        if event["type"] != "request_received" {
            continue;
        }
        let request = &event["payload"]["body"];
        let mut data = Vec::new();
        let answer = match request["type"].as_str() {
            Some("outboard") => serde_json::json!({"type": "outboard", "size": bytes.len(),
                "outboard": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &outboard)}),
            Some("group") => {
                corrupted += 1;
                let index = request["index"].as_u64().expect("index") as usize;
                let start = index * 262_144;
                data = bytes[start..(start + 262_144).min(bytes.len())].to_vec();
                data[7] ^= 0xff;
                serde_json::json!({"type": "group", "index": index})
            }
            _ => serde_json::json!({"type": "refused", "reason": "no"}),
        };
        let request_id = event["payload"]["request_id"].clone();
        mallory.send_with_data(
            &serde_json::json!({"type": "respond", "payload": {"request_id": request_id, "body": answer}}),
            &data,
        );
    }
    assert_eq!(
        std::fs::read(&whole).expect("read"),
        bytes,
        "the good bytes, from Ann"
    );
    assert!(corrupted > 0, "Mallory was asked");
    assert!(
        b.log()
            .contains("does not match the content id; thrown away"),
        "{}",
        b.log()
    );
}

/// Hostile input under the home and in the tags: a damaged library index is set aside and
/// rebuilt by a scan; control characters and a huge title in a file's tags neither break
/// the scan nor reach the terminal raw; a playlist's signed log with garbage appended still
/// loads and syncs.
#[test]
fn damaged_files_and_hostile_tags_are_survived() {
    let music = tempfile::tempdir().expect("music");
    let huge = "x".repeat(100_000);
    write_tagged_tone(
        &music.path().join("evil.wav"),
        500,
        &format!("Evil\u{1b}]0;pwned\u{7} {huge}"),
        "Ann\u{202e}",
        "Tones",
    )
    .expect("tone");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        format!("music_dirs = [{:?}]\n", music.path().display().to_string()),
    )
    .expect("config");
    std::fs::write(home.path().join("library.json"), "{ not an index").expect("damage");
    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let report = cli_json(&a, &["library", "scan"]);
    assert_eq!(report["files"], 1, "{report}");
    let aside = std::fs::read_dir(home.path())
        .expect("home")
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("library.json.damaged-")
        });
    assert!(aside, "the damaged index was kept aside");
    let entry = &entries(&cli_json(&a, &["library", "list"]))[0];
    let title = entry["title"].as_str().expect("title");
    assert!(title.len() <= 1024, "tags are cut: {} bytes", title.len());
    let out = a.cli(&["library", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "control characters are shown escaped: {text:?}"
    );
    // The track goes into a playlist (the store takes the cut title).
    let (id, link) = create_shared(&a, "Evil");
    cli_json(&a, &["playlist", "add", &id, "--from-library", "evil"]);

    // Garbage at the end of the playlist's signed log: the owner restarts and a member
    // still joins and gets the track.
    let mut a = a;
    a.stop_with(Signal::SIGTERM);
    let signed = home.path().join("store").join(&id).join("signed.log");
    let mut bytes = std::fs::read(&signed).expect("signed.log");
    bytes.extend_from_slice(b"\xa5garbage that is no record");
    std::fs::write(&signed, bytes).expect("write");
    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let b = Node::start();
    join(&b, &link);
    wait_until("B to have the track", PATIENCE, || {
        (show(&b, &id)?["tracks"].as_array()?.len() == 1).then_some(())
    });
    assert!(a.status().is_some());
}

/// The music folders are set from the command line while the app runs: the library reads
/// the new ones and forgets those let go, config.toml keeps them for the next start, and a
/// folder that is not there is refused with nothing changed (from the CLI and the API).
#[test]
fn music_folders_set_while_running_are_read_and_kept() {
    let (alpha, beta) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    write_tagged_tone(&alpha.path().join("a.wav"), 500, "Alpha", "Ann", "A").expect("tone");
    write_tagged_tone(&beta.path().join("b.wav"), 500, "Beta", "Bea", "B").expect("tone");
    let a = Node::start();
    let found = |query: &str| entries(&cli_json(&a, &["library", "search", query])).len();
    let set = |value: &str| a.cli(&["config", "set", "music-dirs", value]);
    let config = || std::fs::read_to_string(a.home.join("config.toml")).expect("config.toml");

    let out = set(&alpha.path().display().to_string());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("uses it from now on"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("Alpha to be read", PATIENCE, || {
        (found("alpha") == 1).then_some(())
    });
    assert!(
        config().contains(&alpha.path().display().to_string()),
        "{}",
        config()
    );

    // Two folders, separated as in PATH.
    let both = format!("{}:{}", alpha.path().display(), beta.path().display());
    assert!(set(&both).status.success());
    wait_until("Beta to be read", PATIENCE, || {
        (found("beta") == 1).then_some(())
    });
    assert_eq!(found("alpha"), 1);

    // A folder let go leaves the library.
    assert!(set(&beta.path().display().to_string()).status.success());
    wait_until("Alpha to be forgotten", PATIENCE, || {
        (found("alpha") == 0).then_some(())
    });
    assert_eq!(found("beta"), 1);

    // A typo is refused, and nothing changes.
    let before = config();
    let missing = beta.path().join("no such folder");
    let out = set(&missing.display().to_string());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a folder on this computer"), "{err}");
    assert_eq!(config(), before);
    let (url, token) = a.api();
    let host = url.trim_start_matches("http://").to_string();
    let auth = format!("Bearer {token}");
    for bad in [serde_json::json!(["Music"]), serde_json::json!([missing])] {
        let (status, body) = http(
            &url,
            "POST",
            "/api/config",
            &[
                ("Host", &host),
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &serde_json::json!({ "music_dirs": bad }).to_string(),
        );
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(config(), before);
    assert_eq!(found("beta"), 1);

    // None at all: the library empties.
    assert!(set("").status.success());
    wait_until("the library to empty", PATIENCE, || {
        (found("beta") == 0).then_some(())
    });
    assert!(config().contains("music_dirs = []"), "{}", config());
}
