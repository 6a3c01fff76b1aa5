//! Playlists from and to other apps' files: M3U/M3U8, XSPF and CSV, beside our own
//! Markdown (`markdown.rs`). What a file is is read off its content, not its name.
//!
//! Only our Markdown holds every field; the others hold tracks (title, artists, album,
//! duration, location), so an import from them is a new playlist owned by the importer,
//! every track added by them, now.

use std::fmt::Write as _;

use whatnext_protocol::playlist::{Author, Playlist, QueueMode, Track};

use whatnext_protocol::playlist::cut_to;

use crate::{
    doc::{MAX_TEXT, new_id},
    error::StoreError,
    markdown,
    session::MAX_SEEK_MS,
};

/// A playlist file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ours: YAML front matter with every field, then a readable list.
    Markdown,
    /// `#EXTM3U`, `#EXTINF:secs,Artist - Title`, then the location (UTF-8: M3U8).
    M3u,
    /// XML Shareable Playlist Format (<https://xspf.org>).
    Xspf,
    /// A header row naming the columns (title, artist, album, duration, uri…), as spreadsheets
    /// and Spotify exporters write it.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Markdown),
            "m3u" | "m3u8" => Ok(Format::M3u),
            "xspf" => Ok(Format::Xspf),
            "csv" => Ok(Format::Csv),
            other => Err(format!(
                "{other:?} is not a playlist format this version writes; use md, m3u or xspf"
            )),
        }
    }
}

/// Reads what format `text` is in.
pub fn detect(text: &str) -> Format {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("---") {
        Format::Markdown
    } else if text.starts_with("<?xml") || text.starts_with("<playlist") {
        Format::Xspf
    } else if text.starts_with('#') || first_line(text).contains("://") || looks_like_paths(text) {
        Format::M3u
    } else {
        Format::Csv
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// A list of file paths (an M3U without any `#` line) has no commas in its first line.
fn looks_like_paths(text: &str) -> bool {
    let first = first_line(text);
    !first.contains(',')
        && [".mp3", ".flac", ".ogg", ".m4a", ".wav", ".opus", ".aac"]
            .iter()
            .any(|ext| first.to_ascii_lowercase().ends_with(ext))
}

/// A playlist from `text` in whatever format it is. A file of another app gives a new
/// playlist (no id: the store gives it one) named `name` unless the file names itself,
/// owned by `importer`, its tracks added by them at `now_ms`.
pub fn parse(
    text: &str,
    name: Option<&str>,
    importer: &Author,
    now_ms: u64,
) -> Result<(Format, Playlist), StoreError> {
    let format = detect(text);
    let text = text.trim_start_matches('\u{feff}');
    let (title, tracks) = match format {
        Format::Markdown => return Ok((format, markdown::from_markdown(text)?)),
        Format::M3u => parse_m3u(text),
        Format::Xspf => parse_xspf(text)?,
        Format::Csv => parse_csv(text)?,
    };
    if tracks.is_empty() {
        return Err(StoreError::BadMarkdown(format!(
            "it reads as {} but lists no track",
            format.describe()
        )));
    }
    let name = title
        .filter(|t| !t.trim().is_empty())
        .or_else(|| name.map(str::to_string))
        .unwrap_or_else(|| "Imported playlist".to_string());
    // Another app's file is taken as well as it can be, like a file's tags: text the store
    // would refuse whole is cut to its limit, and a "length" longer than anything can be
    // played to (a day) is no length.
    let text = |t: &str| cut_to(t.trim(), MAX_TEXT).to_string();
    let playlist = Playlist {
        id: String::new(),
        name: text(&name),
        description: String::new(),
        owner: importer.clone(),
        collaborators: Vec::new(),
        tags: Vec::new(),
        queue_mode: QueueMode::default(),
        created_at: now_ms,
        updated_at: now_ms,
        tracks: tracks
            .into_iter()
            .map(|t| Track {
                id: new_id(8),
                title: text(&t.title),
                artists: t.artists.iter().map(|a| text(a)).collect(),
                album: t.album.as_deref().map(text),
                duration_ms: t.duration_ms.filter(|ms| *ms <= MAX_SEEK_MS),
                uri: t.uri.as_deref().map(text),
                added_by: importer.clone(),
                added_at: now_ms,
                content: None,
            })
            .collect(),
    };
    Ok((format, playlist))
}

impl Format {
    fn describe(self) -> &'static str {
        match self {
            Format::Markdown => "a WhatNext Markdown playlist",
            Format::M3u => "an M3U playlist",
            Format::Xspf => "an XSPF playlist",
            Format::Csv => "a CSV table",
        }
    }
}

/// A track as the other formats hold it.
#[derive(Debug, Default, PartialEq)]
struct Entry {
    title: String,
    artists: Vec<String>,
    album: Option<String>,
    duration_ms: Option<u64>,
    uri: Option<String>,
}

impl Entry {
    /// An entry with only a location is titled by its file name.
    fn titled(mut self) -> Entry {
        if self.title.trim().is_empty()
            && let Some(uri) = &self.uri
        {
            let file = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
            let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
            self.title = percent_encoding::percent_decode_str(stem)
                .decode_utf8_lossy()
                .into_owned();
        }
        self
    }
}

/// `Artist - Title` (M3U's usual display text), or the title alone.
fn split_display(text: &str) -> (Vec<String>, String) {
    match text.split_once(" - ") {
        Some((artist, title)) if !artist.trim().is_empty() => {
            (vec![artist.trim().to_string()], title.trim().to_string())
        }
        _ => (Vec::new(), text.trim().to_string()),
    }
}

fn parse_m3u(text: &str) -> (Option<String>, Vec<Entry>) {
    let mut name = None;
    let mut tracks = Vec::new();
    // An `#EXTINF` waits for its location; one followed by another `#EXTINF` (as we write
    // a track with no location) is a track without one.
    let mut pending: Option<Entry> = None;
    for line in text.lines().map(str::trim) {
        if let Some(info) = line.strip_prefix("#EXTINF:") {
            if let Some(entry) = pending.take() {
                tracks.push(entry.titled());
            }
            let (secs, display) = info.split_once(',').unwrap_or((info, ""));
            // `#EXTINF:123 tvg-id="…",…`: the duration is the first word.
            let secs = secs.split_whitespace().next().unwrap_or_default();
            let (artists, title) = split_display(display);
            pending = Some(Entry {
                title,
                artists,
                duration_ms: secs
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .map(|s| (s * 1000.0).round() as u64),
                ..Entry::default()
            });
        } else if let Some(title) = line.strip_prefix("#PLAYLIST:") {
            name = Some(title.trim().to_string());
        } else if let Some(album) = line.strip_prefix("#EXTALB:") {
            if let Some(entry) = &mut pending {
                entry.album = Some(album.trim().to_string());
            }
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else {
            let mut entry = pending.take().unwrap_or_default();
            entry.uri = Some(line.to_string());
            tracks.push(entry.titled());
        }
    }
    if let Some(entry) = pending {
        tracks.push(entry.titled());
    }
    (name, tracks)
}

fn parse_xspf(text: &str) -> Result<(Option<String>, Vec<Entry>), StoreError> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::BadMarkdown(format!(
            "it reads as an XSPF playlist but its XML is broken: {e}"
        ))
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut name, mut tracks) = (None, Vec::new());
    // The open elements, and the text of the innermost (entities arrive as events of
    // their own, between pieces of text).
    let (mut path, mut buf): (Vec<String>, String) = (Vec::new(), String::new());
    let mut track: Option<Entry> = None;
    let mut saw_playlist = false;
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(tag) => {
                let local = String::from_utf8_lossy(tag.local_name().as_ref()).into_owned();
                saw_playlist |= local == "playlist";
                if local == "track" {
                    track = Some(Entry::default());
                }
                path.push(local);
                buf.clear();
            }
            Event::Text(piece) => buf.push_str(&piece.decode().map_err(|e| bad(&e))?),
            Event::CData(piece) => buf.push_str(&piece.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(entity) => {
                let resolved = match entity.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = entity.decode().map_err(|e| bad(&e))?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or_else(|| bad(&format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                buf.push_str(&resolved);
            }
            Event::End(_) => {
                let text = std::mem::take(&mut buf).trim().to_string();
                let here = path.pop();
                let parent = path.last().map(String::as_str);
                match (&mut track, parent, here.as_deref()) {
                    (Some(entry), Some("track"), Some("title")) => entry.title = text,
                    (Some(entry), Some("track"), Some("creator")) => entry.artists = vec![text],
                    (Some(entry), Some("track"), Some("album")) => entry.album = Some(text),
                    (Some(entry), Some("track"), Some("duration")) => {
                        entry.duration_ms = text.parse().ok();
                    }
                    (Some(entry), Some("track"), Some("location")) if entry.uri.is_none() => {
                        entry.uri = Some(text);
                    }
                    (None, Some("playlist"), Some("title")) => name = Some(text),
                    (Some(_), _, Some("track")) => {
                        if let Some(entry) = track.take() {
                            tracks.push(entry.titled());
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(bad(&format!("<{}> is never closed", path.join("><"))));
    }
    if !saw_playlist {
        return Err(bad(&"there is no <playlist> element"));
    }
    Ok((name, tracks))
}

fn parse_csv(text: &str) -> Result<(Option<String>, Vec<Entry>), StoreError> {
    let bad = |what: String| StoreError::BadMarkdown(format!("it reads as a CSV table but {what}"));
    // Spreadsheets in some languages separate with semicolons.
    let delimiter = if first_line(text).matches(';').count() > first_line(text).matches(',').count()
    {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("its header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let title = column(&["title", "track name", "track", "name", "song"]).ok_or_else(|| {
        bad(format!(
            "no column is the title (its header row is {:?}; name one `title`)",
            headers.join(",")
        ))
    })?;
    let artist = column(&[
        "artist",
        "artists",
        "artist name(s)",
        "artist name",
        "creator",
    ]);
    let album = column(&["album", "album name"]);
    let duration_ms = column(&["duration (ms)", "duration_ms", "duration ms"]);
    let duration = column(&["duration", "length", "time"]);
    let uri = column(&["uri", "url", "track uri", "spotify uri", "location", "link"]);
    let mut tracks = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("row {} cannot be read: {e}", row + 2)))?;
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
        };
        let Some(title) = field(Some(title)) else {
            continue;
        };
        tracks.push(Entry {
            title,
            artists: field(artist)
                .map(|a| a.split([',', ';']).map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            album: field(album),
            duration_ms: field(duration_ms)
                .and_then(|d| d.parse().ok())
                .or_else(|| field(duration).and_then(|d| parse_clock(&d))),
            uri: field(uri),
        });
    }
    Ok((None, tracks))
}

/// `3:45`, `1:02:03` or seconds, as milliseconds.
pub fn parse_clock(text: &str) -> Option<u64> {
    let mut total = 0f64;
    for part in text.trim().split(':') {
        let value: f64 = part.trim().parse().ok()?;
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        total = total * 60.0 + value;
    }
    Some((total * 1000.0).round() as u64)
}

/// The playlist as an extended M3U (UTF-8). A track without a location is its `#EXTINF`
/// line alone.
pub fn to_m3u(playlist: &Playlist) -> String {
    let mut out = format!("#EXTM3U\n#PLAYLIST:{}\n", one_line(&playlist.name));
    for track in &playlist.tracks {
        let secs = track.duration_ms.map_or(-1, |ms| (ms / 1000) as i64);
        let display = if track.artists.is_empty() {
            one_line(&track.title)
        } else {
            format!(
                "{} - {}",
                one_line(&track.artists.join(", ")),
                one_line(&track.title)
            )
        };
        let _ = writeln!(out, "#EXTINF:{secs},{display}");
        if let Some(album) = &track.album {
            let _ = writeln!(out, "#EXTALB:{}", one_line(album));
        }
        if let Some(uri) = &track.uri {
            let _ = writeln!(out, "{}", one_line(uri));
        }
    }
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The playlist as XSPF.
pub fn to_xspf(playlist: &Playlist) -> String {
    use quick_xml::escape::escape;
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<playlist version=\"1\" xmlns=\"http://xspf.org/ns/0/\">\n",
    );
    let _ = writeln!(out, "  <title>{}</title>", escape(playlist.name.as_str()));
    out.push_str("  <trackList>\n");
    for track in &playlist.tracks {
        out.push_str("    <track>\n");
        if let Some(uri) = &track.uri {
            let _ = writeln!(out, "      <location>{}</location>", escape(uri.as_str()));
        }
        let _ = writeln!(out, "      <title>{}</title>", escape(track.title.as_str()));
        if !track.artists.is_empty() {
            let _ = writeln!(
                out,
                "      <creator>{}</creator>",
                escape(track.artists.join(", ").as_str())
            );
        }
        if let Some(album) = &track.album {
            let _ = writeln!(out, "      <album>{}</album>", escape(album.as_str()));
        }
        if let Some(ms) = track.duration_ms {
            let _ = writeln!(out, "      <duration>{ms}</duration>");
        }
        out.push_str("    </track>\n");
    }
    out.push_str("  </trackList>\n</playlist>\n");
    out
}

/// The playlist in `format`.
pub fn export(playlist: &Playlist, format: Format) -> Result<String, StoreError> {
    match format {
        Format::Markdown => markdown::to_markdown(playlist),
        Format::M3u => Ok(to_m3u(playlist)),
        Format::Xspf => Ok(to_xspf(playlist)),
        Format::Csv => Err(StoreError::Invalid(
            "this version reads CSV but does not write it; export as md, m3u or xspf".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Author {
        Author {
            peer_id: "12D3KooWme".into(),
            display_name: "Me".into(),
        }
    }

    /// A track as the other formats hold it: title, artists, duration, location.
    type Seen<'a> = (&'a str, Vec<String>, Option<u64>, Option<&'a str>);

    fn titles(p: &Playlist) -> Vec<Seen<'_>> {
        p.tracks
            .iter()
            .map(|t| {
                (
                    t.title.as_str(),
                    t.artists.clone(),
                    t.duration_ms,
                    t.uri.as_deref(),
                )
            })
            .collect()
    }

    #[test]
    fn m3u_with_and_without_extinf() {
        let text = "#EXTM3U\n#PLAYLIST:Road Trip\n#EXTINF:225,Queen - Bohemian Rhapsody\n/music/queen/bohemian.mp3\n\n#EXTINF:-1,Just a Title\nhttps://example.com/song\nother%20song.flac\n";
        let (format, p) = parse(text, Some("file"), &me(), 7).expect("m3u");
        assert_eq!(format, Format::M3u);
        assert_eq!(p.name, "Road Trip");
        assert_eq!(
            titles(&p),
            vec![
                (
                    "Bohemian Rhapsody",
                    vec!["Queen".to_string()],
                    Some(225_000),
                    Some("/music/queen/bohemian.mp3")
                ),
                (
                    "Just a Title",
                    vec![],
                    None,
                    Some("https://example.com/song")
                ),
                ("other song", vec![], None, Some("other%20song.flac")),
            ]
        );
        assert!(
            p.tracks
                .iter()
                .all(|t| t.added_by == me() && t.added_at == 7)
        );
        // A bare list of paths is M3U too.
        let (format, p) = parse("a/b/One.mp3\nTwo.ogg\n", Some("Mine"), &me(), 7).expect("paths");
        assert_eq!(
            (format, p.name.as_str(), p.tracks.len()),
            (Format::M3u, "Mine", 2)
        );
    }

    #[test]
    fn xspf_reads_tracks_and_refuses_broken_xml() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<playlist version="1" xmlns="http://xspf.org/ns/0/">
  <title>Fri &amp; Sat</title>
  <trackList>
    <track><location>file:///m/a.ogg</location><title>A</title><creator>Ann</creator><album>X</album><duration>61000</duration></track>
    <track><location>https://e.com/b</location></track>
  </trackList>
</playlist>"#;
        let (format, p) = parse(text, None, &me(), 1).expect("xspf");
        assert_eq!(format, Format::Xspf);
        assert_eq!(p.name, "Fri & Sat");
        assert_eq!(
            titles(&p),
            vec![
                (
                    "A",
                    vec!["Ann".to_string()],
                    Some(61_000),
                    Some("file:///m/a.ogg")
                ),
                ("b", vec![], None, Some("https://e.com/b")),
            ]
        );
        let err = parse(
            "<?xml version=\"1.0\"?><playlist><trackList><track><title>A</title></trackList>",
            None,
            &me(),
            1,
        )
        .expect_err("broken");
        assert!(err.to_string().contains("XML is broken"), "{err}");
    }

    #[test]
    fn csv_by_header_names_and_refused_without_a_title_column() {
        let text = "Track Name,Artist Name(s),Album Name,Duration (ms),Track URI\n\"Hey, Jude\",The Beatles,Single,431000,spotify:track:1\nYesterday,The Beatles,Help!,125000,\n";
        let (format, p) = parse(text, Some("Beatles"), &me(), 1).expect("csv");
        assert_eq!(format, Format::Csv);
        assert_eq!(p.name, "Beatles");
        assert_eq!(
            titles(&p),
            vec![
                (
                    "Hey, Jude",
                    vec!["The Beatles".to_string()],
                    Some(431_000),
                    Some("spotify:track:1")
                ),
                (
                    "Yesterday",
                    vec!["The Beatles".to_string()],
                    Some(125_000),
                    None
                ),
            ]
        );
        let (_, p) =
            parse("title;artist;duration\nA;B;3:45\n", None, &me(), 1).expect("semicolons");
        assert_eq!(p.tracks[0].duration_ms, Some(225_000));
        let err = parse("song name,who\nA,B\n", None, &me(), 1).expect_err("no title");
        assert!(err.to_string().contains("no column is the title"), "{err}");
        let err = parse("title,artist\nA,B,C\n", None, &me(), 1).expect_err("ragged");
        assert!(err.to_string().contains("row 2"), "{err}");
    }

    #[test]
    fn exports_read_back_as_the_same_tracks() {
        let text = "title,artist,album,duration,uri\nOne & <Two>,Ann,Al,1:01,https://e.com/1?a=b&c=d\nThree,,,,\n";
        let (_, p) = parse(text, Some("Round \"trip\""), &me(), 1).expect("csv");
        for format in [Format::M3u, Format::Xspf] {
            let written = export(&p, format).expect("export");
            let (detected, back) = parse(&written, None, &me(), 1).expect("read back");
            assert_eq!(detected, format, "{written}");
            assert_eq!(back.name, p.name);
            assert_eq!(titles(&back), titles(&p), "{written}");
        }
    }

    /// A hostile or broken file: a 100 KB title, control characters, lengths of 1e300
    /// seconds. It imports, cut to what the store takes, with no nonsense length.
    #[test]
    fn over_long_text_is_cut_and_impossible_lengths_dropped() {
        let huge = "é".repeat(60_000);
        let text = format!(
            "#EXTM3U\n#PLAYLIST:{huge}\n#EXTINF:1e300,\x1b[31mRed - {huge}\nhttp://e/a\n#EXTINF:99999999999999999999,B - Two\nb.mp3\n"
        );
        let (_, p) = parse(&text, None, &me(), 1).expect("imports");
        assert!(p.name.len() <= MAX_TEXT && p.name.starts_with('é'));
        assert!(p.tracks[0].title.len() <= MAX_TEXT && p.tracks[0].title.starts_with('é'));
        assert_eq!(
            p.tracks[0].artists,
            ["\u{1b}[31mRed"],
            "kept, shown escaped"
        );
        assert_eq!(p.tracks[0].duration_ms, None);
        assert_eq!(p.tracks[1].duration_ms, None);
        let csv = "title,duration\nA,99999999999999:99\nB,23:59:59\n";
        let (_, p) = parse(csv, None, &me(), 1).expect("csv");
        assert_eq!(p.tracks[0].duration_ms, None);
        assert_eq!(p.tracks[1].duration_ms, Some(86_399_000));
    }

    #[test]
    fn a_file_without_tracks_is_an_error() {
        let err = parse("#EXTM3U\n", None, &me(), 1).expect_err("empty");
        assert!(err.to_string().contains("lists no track"), "{err}");
    }

    #[test]
    fn clock_times() {
        assert_eq!(parse_clock("3:45"), Some(225_000));
        assert_eq!(parse_clock("1:02:03"), Some(3_723_000));
        assert_eq!(parse_clock("61.5"), Some(61_500));
        assert_eq!(parse_clock("x"), None);
        assert_eq!(parse_clock("-1"), None);
    }
}
