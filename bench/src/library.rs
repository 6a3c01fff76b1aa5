//! The music library's scan: `files` generated tagged WAVs (a quarter of a second each),
//! scanned cold (every file read: tags, duration, BLAKE3) and again unchanged (the index
//! answers). In-process, on the blocking disk of this machine.

use std::time::Instant;

use serde_json::{Value, json};
use whatnext_media::{MusicLibrary, tone::write_tagged_tone};

pub fn run(files: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let music = dir.path().join("Music");
    for i in 0..files {
        let folder = music.join(format!("Artist {}", i % 100));
        std::fs::create_dir_all(&folder)?;
        write_tagged_tone(
            &folder.join(format!("{i:05}.wav")),
            250,
            &format!("Song {i}"),
            &format!("Artist {}", i % 100),
            &format!("Album {}", i % 1000),
        )?;
    }
    let index = dir.path().join("library.json");
    let mut library = MusicLibrary::open(&index, vec![music.clone()])?;
    let t = Instant::now();
    let cold = library.scan(&mut |_, _| {})?;
    let cold_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        cold.added == files,
        "cold scan added {} of {files}",
        cold.added
    );
    let mut library = MusicLibrary::open(&index, vec![music])?;
    let t = Instant::now();
    let warm = library.scan(&mut |_, _| {})?;
    let warm_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        warm.added + warm.updated == 0,
        "an unchanged rescan read files"
    );
    let t = Instant::now();
    let found = library.search("song 4242").len();
    let search_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(json!({
        "files": files,
        "cold_s": cold_s, "cold_files_per_s": files as f64 / cold_s,
        "incremental_s": warm_s, "incremental_files_per_s": files as f64 / warm_s,
        "search_ms": search_ms, "search_hits": found,
        "index_bytes": std::fs::metadata(&index)?.len(),
    }))
}
