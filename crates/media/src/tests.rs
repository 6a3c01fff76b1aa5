//! Scans of real audio files written here: tags and durations read, damaged and fake files
//! reported without stopping the scan, rescans that read only what changed.

use std::path::{Path, PathBuf};

use super::*;

/// A tagged WAV.
fn song(dir: &Path, name: &str, title: &str, artist: &str, ms: u32) -> PathBuf {
    let path = dir.join(name);
    tone::write_tagged_tone(&path, ms, title, artist, "Test Album").expect("tone");
    path
}

#[test]
fn a_scan_reads_tags_and_durations_and_reports_what_it_cannot_read() {
    let home = tempfile::tempdir().expect("tempdir");
    let music = home.path().join("Music");
    std::fs::create_dir_all(music.join("sub")).expect("dirs");
    let one = song(&music, "one.wav", "First Song", "Ann Artist", 2_000);
    song(
        &music.join("sub"),
        "two.wav",
        "Second Song",
        "Bea; Cid",
        1_500,
    );
    // Damaged: a WAV cut short in its header. Fake: text named .mp3. Ignored: a cover.
    std::fs::write(music.join("broken.wav"), b"RIFF\x10\x00\x00\x00WAVEfmt ").expect("w");
    std::fs::write(music.join("notes.mp3"), "this is not audio at all").expect("w");
    std::fs::write(music.join("cover.jpg"), b"\xff\xd8\xff").expect("w");

    let index = home.path().join("library.json");
    let mut library = MusicLibrary::open(&index, vec![music.clone()]).expect("open");
    let mut calls = 0;
    let report = library.scan(&mut |_, _| calls += 1).expect("scan");
    assert_eq!(report.files, 4, "{report:?}");
    assert_eq!(report.added, 2, "{report:?}");
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.reason.contains("not readable as audio")),
        "{report:?}"
    );
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert!(report.failed.iter().any(|f| f.path.ends_with("broken.wav")));
    assert!(report.failed.iter().any(|f| f.path.ends_with("notes.mp3")));
    assert!(calls >= 4);

    let first = library.search("first").pop().expect("found");
    assert_eq!(first.title, "First Song");
    assert_eq!(first.artists, ["Ann Artist"]);
    assert_eq!(first.album.as_deref(), Some("Test Album"));
    let duration = first.duration_ms.expect("duration");
    assert!((1_900..=2_100).contains(&duration), "{duration}");
    assert_eq!(first.content.mime, "audio/wav");
    assert_eq!(
        first.content.size,
        std::fs::metadata(&one).expect("m").len()
    );
    assert_eq!(
        first.content.blake3,
        blake3::hash(&std::fs::read(&one).expect("read"))
            .to_hex()
            .to_string()
    );
    assert_eq!(library.path_of(&first.content.blake3), Some(one.clone()));
    let second = library
        .search("cid second")
        .pop()
        .expect("found by artist and title");
    assert_eq!(second.artists, ["Bea", "Cid"]);
    assert!(library.search("nothing like this").is_empty());
    // Whatever the case and accents, on either side.
    assert_eq!(library.search("FÏRST ÄNN").len(), 1);
    assert_eq!(
        folded("Björk Guðmundsdóttir, BEYONCÉ"),
        "bjork guðmundsdottir, beyonce"
    );
    // Untagged: the file's name says "Artist - Title".
    std::fs::write(
        music.join("Dee Dee - Untagged Tune.wav"),
        tone::tone_wav(500, 3),
    )
    .expect("w");

    // Reopened, nothing changed: nothing read again. One file changed: only it.
    drop(library);
    let mut library = MusicLibrary::open(&index, vec![music.clone()]).expect("reopen");
    let report = library.scan(&mut |_, _| {}).expect("rescan");
    assert_eq!((report.added, report.updated, report.removed), (1, 0, 0));
    let untagged = library.search("untagged").pop().expect("found by its name");
    assert_eq!(
        (untagged.title.as_str(), untagged.artists.as_slice()),
        ("Untagged Tune", &["Dee Dee".to_string()][..])
    );
    std::fs::remove_file(music.join("Dee Dee - Untagged Tune.wav")).expect("rm");
    let report = library.scan(&mut |_, _| {}).expect("rescan");
    assert_eq!((report.added, report.updated, report.removed), (0, 0, 1));
    std::thread::sleep(std::time::Duration::from_millis(20));
    song(
        &music,
        "one.wav",
        "First Song (remaster)",
        "Ann Artist",
        3_000,
    );
    std::fs::remove_file(music.join("sub/two.wav")).expect("rm");
    let report = library.scan(&mut |_, _| {}).expect("rescan");
    assert_eq!(
        (report.added, report.updated, report.removed),
        (0, 1, 1),
        "{report:?}"
    );
    assert_eq!(library.list().len(), 1);
    assert_eq!(library.list()[0].title, "First Song (remaster)");
    // The old bytes are gone: nothing serves them.
    assert_eq!(library.path_of(&first.content.blake3), None);
}

#[test]
fn a_file_outside_the_music_folders_can_be_added_and_a_missing_one_is_an_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let elsewhere = song(home.path(), "single.wav", "Single", "Solo", 1_000);
    let mut library = MusicLibrary::open(&home.path().join("library.json"), vec![]).expect("open");
    let entry = library.add_file(&elsewhere).expect("added");
    assert_eq!(entry.title, "Single");
    assert_eq!(library.search("solo").len(), 1);
    assert!(library.path_of(&entry.content.blake3).is_some());
    let err = library
        .add_file(&home.path().join("missing.wav"))
        .expect_err("missing");
    assert!(err.to_string().contains("missing.wav"), "{err}");
    let text = home.path().join("text.flac");
    std::fs::write(&text, "hello").expect("write");
    let err = library.add_file(&text).expect_err("not audio");
    assert!(err.to_string().contains("not an audio file"), "{err}");
}

#[test]
fn a_damaged_index_is_an_error_that_says_what_to_do() {
    let home = tempfile::tempdir().expect("tempdir");
    let index = home.path().join("library.json");
    std::fs::write(&index, "{ nope").expect("write");
    let err = MusicLibrary::open(&index, vec![]).err().expect("refused");
    assert!(err.to_string().contains("scan again"), "{err}");
}

#[test]
fn a_files_cover_is_read_from_its_tags_and_a_file_without_one_has_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = song(dir.path(), "plain.wav", "Plain", "Ann", 500);
    let covered = dir.path().join("covered.wav");
    tone::write_tagged_tone_with_cover(&covered, 500, "Covered", "Ann", "Art").expect("tone");
    let (bytes, mime) = cover_art(&covered).expect("read").expect("a cover");
    assert_eq!(
        (bytes.as_slice(), mime.as_str()),
        (tone::TEST_COVER_PNG, "image/png")
    );
    assert!(cover_art(&plain).expect("read").is_none());
    // The tags still read as before.
    assert_eq!(read_file(&covered).expect("entry").title, "Covered");
    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "not audio").expect("w");
    assert!(matches!(cover_art(&text), Err(MediaError::NotAudio { .. })));
}

/// A scan reads its files without the library (the controller searches it and serves its
/// audio meanwhile): what is known stays searchable while the scan reads, a file added
/// meanwhile is kept when the scan is taken in, and a scan of folders changed meanwhile is
/// not taken (the change brings its own).
#[test]
fn a_scan_reads_without_holding_the_library_and_keeps_what_changed_meanwhile() {
    let home = tempfile::tempdir().expect("tempdir");
    let (music, other) = (home.path().join("Music"), home.path().join("Other"));
    std::fs::create_dir_all(&music).expect("dir");
    std::fs::create_dir_all(&other).expect("dir");
    song(&music, "one.wav", "First Song", "Ann", 500);
    let elsewhere = song(home.path(), "loose.wav", "Loose Song", "Cid", 500);
    let index = home.path().join("library.json");
    let mut library = MusicLibrary::open(&index, vec![music.clone()]).expect("open");
    library.scan(&mut |_, _| {}).expect("first scan");
    song(&music, "two.wav", "Second Song", "Bea", 500);

    let plan = library.scan_plan();
    let mut searched_during = None;
    let read = plan.read(&mut |done, _| {
        if done == 0 {
            // The library is not borrowed by the scan: it answers, and takes a file.
            searched_during = Some(library.search("first").len());
            library.add_file(&elsewhere).expect("add a file");
        }
    });
    assert_eq!(searched_during, Some(1));
    let report = library.apply_scan(read).expect("taken in");
    assert_eq!((report.files, report.added), (2, 1), "{report:?}");
    assert_eq!(library.search("second").len(), 1);
    assert_eq!(library.search("loose").len(), 1, "the file added meanwhile");
    assert_eq!(library.len(), 3);

    // The folders change while a scan reads: its result is not taken.
    let read = library.scan_plan().read(&mut |_, _| {});
    library.set_dirs(vec![other]);
    library.apply_scan(read).expect("answered");
    assert_eq!(
        library.search("first").len(),
        1,
        "nothing taken from the old scan"
    );
    let report = library
        .scan(&mut |_, _| {})
        .expect("the scan of the new folders");
    assert_eq!((report.files, report.removed), (0, 2), "{report:?}");
    assert_eq!(library.search("first").len(), 0);
    assert_eq!(
        library.search("loose").len(),
        1,
        "added by hand: not a folder's"
    );
}
