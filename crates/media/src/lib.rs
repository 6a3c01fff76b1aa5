//! The music library: the audio files in the user's music folders, with what their tags say
//! and a BLAKE3 content id each, so a track added from a file names its bytes wherever they
//! are.
//!
//! * [`MusicLibrary`]: the index (`<home>/library.json`), scans, lookups.
//! * [`read_file`]: one file's tags, duration, content id and type.
//! * [`outboard`]: BLAKE3 verified streaming in 256 KiB groups (fetching from friends).
//! * [`tone`]: tagged test tones (WAV), for tests and benchmarks.
//!
//! A scan is incremental: a file whose size and modification time did not change since the
//! last scan is not read again. Files that cannot be read (damaged, not audio though named
//! so) are reported, never fatal; files without an audio extension are not looked at.
//!
//! Invariant: this crate reads audio files and writes only its index; it never changes
//! or deletes a music file.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use lofty::{
    file::{AudioFile as _, FileType, TaggedFileExt as _},
    picture::PictureType,
    probe::Probe,
    tag::Accessor as _,
};
use serde::{Deserialize, Serialize};
use whatnext_protocol::{
    media::{LibraryEntry, ScanFailure, ScanReport},
    playlist::Content,
};

/// File extensions looked at by a scan.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "flac", "ogg", "oga", "opus", "m4a", "mp4", "aac", "wav", "aif", "aiff", "wv", "ape",
    "mpc", "spx",
];

/// Longest text kept from a tag (the store refuses longer fields).
const MAX_TAG_TEXT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("could not {action} {path}: {source}", path = .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an audio file WhatNext can read ({reason})", path = .path.display())]
    NotAudio { path: PathBuf, reason: String },
    #[error("the library index {path} is damaged ({reason}); move it away and scan again", path = .path.display())]
    BadIndex { path: PathBuf, reason: String },
}

impl MediaError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MediaError {
        let path = path.to_path_buf();
        move |source| MediaError::Io {
            action,
            path,
            source,
        }
    }
}

/// What the index remembers of a file: enough to know it has not changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Indexed {
    size: u64,
    mtime_ms: u64,
    entry: LibraryEntry,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    /// Files found in the music folders, by path.
    files: BTreeMap<PathBuf, Indexed>,
    /// Files added one by one from elsewhere (`playlist add --file`), by path.
    #[serde(default)]
    added: BTreeMap<PathBuf, Indexed>,
}

pub struct MusicLibrary {
    index_path: PathBuf,
    dirs: Vec<PathBuf>,
    index: IndexFile,
}

/// The MIME type of an audio file type.
fn mime_of(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Mpeg => "audio/mpeg",
        FileType::Flac => "audio/flac",
        FileType::Vorbis => "audio/ogg",
        FileType::Opus => "audio/ogg; codecs=opus",
        FileType::Speex => "audio/ogg; codecs=speex",
        FileType::Mp4 => "audio/mp4",
        FileType::Aac => "audio/aac",
        FileType::Wav => "audio/wav",
        FileType::Aiff => "audio/aiff",
        FileType::WavPack => "audio/wavpack",
        FileType::Ape => "audio/ape",
        FileType::Mpc => "audio/musepack",
        _ => "application/octet-stream",
    }
}

fn has_audio_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn short(text: &str) -> String {
    whatnext_protocol::playlist::cut_to(text.trim(), MAX_TAG_TEXT).to_string()
}

fn mtime_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads one audio file: its tags (title, artists, album), duration, type and BLAKE3.
/// A file without a title tag is titled by its name.
pub fn read_file(path: &Path) -> Result<LibraryEntry, MediaError> {
    let not_audio = |reason: String| MediaError::NotAudio {
        path: path.to_path_buf(),
        reason,
    };
    fs::metadata(path).map_err(MediaError::io("read", path))?;
    let tagged = Probe::open(path)
        .and_then(|probe| probe.guess_file_type().map_err(Into::into))
        .and_then(|probe| probe.read())
        .map_err(|e| not_audio(format!("not readable as audio: {e}")))?;
    let tag = tagged.primary_tag().or_else(|| tagged.first_tag());
    // Without tags, the file's name: "Artist - Title" is the usual way to name one.
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(short)
        .unwrap_or_default();
    let (name_artist, name_title) = match stem.split_once(" - ") {
        Some((artist, title)) if !artist.trim().is_empty() && !title.trim().is_empty() => {
            (Some(artist.trim().to_string()), title.trim().to_string())
        }
        _ => (None, stem.clone()),
    };
    let title = tag
        .and_then(|t| t.title().map(|s| short(&s)))
        .filter(|t| !t.is_empty())
        .or(Some(name_title).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "Untitled".to_string());
    let artists = tag
        .and_then(|t| t.artist().map(|s| short(&s)))
        .filter(|a| !a.is_empty())
        .or(name_artist)
        .map(|a| {
            a.split(['/', ';'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let album = tag
        .and_then(|t| t.album().map(|s| short(&s)))
        .filter(|a| !a.is_empty());
    let duration = tagged.properties().duration();
    let duration_ms = (!duration.is_zero()).then_some(duration.as_millis() as u64);
    let mime = mime_of(tagged.file_type()).to_string();
    let (blake3, size) = hash_file(path)?;
    Ok(LibraryEntry {
        path: path.display().to_string(),
        title,
        artists,
        album,
        duration_ms,
        content: Content { blake3, size, mime },
    })
}

/// Largest cover picture served: anything bigger is not a thumbnail worth sending a view.
pub const MAX_COVER_BYTES: usize = 4 * 1024 * 1024;

/// The cover picture embedded in an audio file's tags (the front cover, else the first
/// picture), with its MIME type; `None` when it has none, or one too big to serve.
pub fn cover_art(path: &Path) -> Result<Option<(Vec<u8>, String)>, MediaError> {
    let tagged = Probe::open(path)
        .and_then(|probe| probe.guess_file_type().map_err(Into::into))
        .and_then(|probe| probe.read())
        .map_err(|e| MediaError::NotAudio {
            path: path.to_path_buf(),
            reason: format!("not readable as audio: {e}"),
        })?;
    let picture = tagged.tags().iter().find_map(|tag| {
        tag.get_picture_type(PictureType::CoverFront)
            .or_else(|| tag.pictures().first())
    });
    Ok(picture
        .filter(|p| !p.data().is_empty() && p.data().len() <= MAX_COVER_BYTES)
        .map(|p| {
            let mime = p
                .mime_type()
                .map(|m| m.as_str().to_string())
                .filter(|m| m.starts_with("image/"))
                .unwrap_or_else(|| "application/octet-stream".to_string());
            (p.data().to_vec(), mime)
        }))
}

/// BLAKE3 (hex) and size of a file, read once.
pub fn hash_file(path: &Path) -> Result<(String, u64), MediaError> {
    let file = fs::File::open(path).map_err(MediaError::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let size = std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 16, file),
        &mut hasher,
    )
    .map_err(MediaError::io("read", path))?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// The start of a scan ([`MusicLibrary::scan_plan`]): the folders and the files known then.
pub struct ScanPlan {
    dirs: Vec<PathBuf>,
    known: BTreeMap<PathBuf, Indexed>,
}

/// What a scan read ([`ScanPlan::read`]), for [`MusicLibrary::apply_scan`].
pub struct ScanRead {
    dirs: Vec<PathBuf>,
    files: BTreeMap<PathBuf, Indexed>,
    report: ScanReport,
}

impl ScanPlan {
    /// The audio files under the music folders, sorted.
    fn find_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in &self.dirs {
            for entry in walkdir::WalkDir::new(dir).follow_links(true).into_iter() {
                match entry {
                    Ok(e) if e.file_type().is_file() && has_audio_extension(e.path()) => {
                        found.push(e.into_path());
                    }
                    Ok(_) => {}
                    Err(err) => tracing::debug!("while scanning {}: {err}", dir.display()),
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Walks the folders and reads the files that are new or changed since the plan was
    /// made (the slow part: tags and BLAKE3 of each); `progress(done, total)` as it goes.
    pub fn read(mut self, progress: &mut dyn FnMut(usize, usize)) -> ScanRead {
        let files = self.find_files();
        let total = files.len();
        let mut report = ScanReport {
            files: total,
            dirs: self.dirs.iter().map(|d| d.display().to_string()).collect(),
            ..ScanReport::default()
        };
        let mut kept = BTreeMap::new();
        for (done, path) in files.into_iter().enumerate() {
            progress(done, total);
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(err) => {
                    report.failed.push(ScanFailure {
                        path: path.display().to_string(),
                        reason: err.to_string(),
                    });
                    continue;
                }
            };
            let (size, mtime_ms) = (meta.len(), mtime_ms(&meta));
            let known = self.known.remove(&path);
            let was_known = known.is_some();
            if let Some(known) = known.filter(|k| k.size == size && k.mtime_ms == mtime_ms) {
                kept.insert(path, known);
                continue;
            }
            match read_file(&path) {
                Ok(entry) => {
                    if was_known {
                        report.updated += 1;
                    } else {
                        report.added += 1;
                    }
                    kept.insert(
                        path,
                        Indexed {
                            size,
                            mtime_ms,
                            entry,
                        },
                    );
                }
                Err(err) => report.failed.push(ScanFailure {
                    path: path.display().to_string(),
                    reason: match err {
                        MediaError::NotAudio { reason, .. } => reason,
                        other => other.to_string(),
                    },
                }),
            }
        }
        progress(total, total);
        report.removed = self.known.len();
        ScanRead {
            dirs: self.dirs,
            files: kept,
            report,
        }
    }
}

impl MusicLibrary {
    /// The library indexed at `index_path` (created empty when missing) over `dirs`.
    pub fn open(index_path: &Path, dirs: Vec<PathBuf>) -> Result<MusicLibrary, MediaError> {
        let index = match fs::read(index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MediaError::BadIndex {
                path: index_path.to_path_buf(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IndexFile::default(),
            Err(e) => return Err(MediaError::io("read", index_path)(e)),
        };
        Ok(MusicLibrary {
            index_path: index_path.to_path_buf(),
            dirs,
            index,
        })
    }

    /// An empty library that will write its index at `index_path`.
    pub fn empty(index_path: &Path, dirs: Vec<PathBuf>) -> MusicLibrary {
        MusicLibrary {
            index_path: index_path.to_path_buf(),
            dirs,
            index: IndexFile::default(),
        }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Makes `dirs` the music folders; the next [`MusicLibrary::scan`] reads what is new in
    /// them and forgets the files of folders no longer among them.
    pub fn set_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.dirs = dirs;
    }

    /// Scans the music folders: reads new and changed files, forgets vanished ones, saves
    /// the index. `progress(done, total)` is called as files are looked at.
    pub fn scan(
        &mut self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ScanReport, MediaError> {
        let read = self.scan_plan().read(progress);
        self.apply_scan(read)
    }

    /// What a scan starts from: the folders and the files known. Taken under the caller's
    /// lock (a clone of the index, milliseconds), so the slow part, [`ScanPlan::read`],
    /// runs without it and the library answers searches and serves audio meanwhile.
    pub fn scan_plan(&self) -> ScanPlan {
        ScanPlan {
            dirs: self.dirs.clone(),
            known: self.index.files.clone(),
        }
    }

    /// Takes in what [`ScanPlan::read`] found and saves the index. A scan of folders that are
    /// no longer the music folders (they changed while it read) is not taken: the change
    /// brings a scan of its own.
    pub fn apply_scan(&mut self, read: ScanRead) -> Result<ScanReport, MediaError> {
        if read.dirs != self.dirs {
            return Ok(ScanReport {
                files: self.index.files.len(),
                dirs: self.dirs.iter().map(|d| d.display().to_string()).collect(),
                ..ScanReport::default()
            });
        }
        self.index.files = read.files;
        self.save()?;
        Ok(read.report)
    }

    /// Reads one file (anywhere) into the library; its entry.
    pub fn add_file(&mut self, path: &Path) -> Result<LibraryEntry, MediaError> {
        let path = fs::canonicalize(path).map_err(MediaError::io("find", path))?;
        let meta = fs::metadata(&path).map_err(MediaError::io("read", &path))?;
        let entry = read_file(&path)?;
        let indexed = Indexed {
            size: meta.len(),
            mtime_ms: mtime_ms(&meta),
            entry: entry.clone(),
        };
        match self.index.files.get_mut(&path) {
            Some(known) => *known = indexed,
            None => {
                self.index.added.insert(path, indexed);
            }
        }
        self.save()?;
        Ok(entry)
    }

    fn entries(&self) -> impl Iterator<Item = &LibraryEntry> {
        self.index
            .files
            .values()
            .chain(self.index.added.values())
            .map(|i| &i.entry)
    }

    pub fn len(&self) -> usize {
        self.index.files.len() + self.index.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of the file whose bytes are `blake3`.
    pub fn entry(&self, blake3: &str) -> Option<LibraryEntry> {
        self.entries().find(|e| e.content.blake3 == blake3).cloned()
    }

    /// Every entry, by path.
    pub fn list(&self) -> Vec<LibraryEntry> {
        self.entries().cloned().collect()
    }

    /// Entries whose title, artists, album or file name hold every word of `query`
    /// (compared [`folded`]: case and accents aside), best first: title matches before the
    /// others.
    pub fn search(&self, query: &str) -> Vec<LibraryEntry> {
        self.matches(query, true).into_iter().cloned().collect()
    }

    /// [`MusicLibrary::search`] without copying: the entries found, in the same order; with
    /// `paths` false, in their tags only (not their file names: for guests, who are not
    /// to learn the names of the host's folders).
    pub fn matches(&self, query: &str, paths: bool) -> Vec<&LibraryEntry> {
        let words: Vec<String> = query.split_whitespace().map(folded).collect();
        let mut found: Vec<(bool, &LibraryEntry)> = self
            .entries()
            .filter_map(|e| {
                let title = folded(&e.title);
                let mut haystack = format!(
                    "{title} {} {}",
                    folded(&e.artists.join(" ")),
                    folded(e.album.as_deref().unwrap_or(""))
                );
                if paths {
                    haystack.push(' ');
                    haystack.push_str(&folded(&e.path));
                }
                words
                    .iter()
                    .all(|w| haystack.contains(w.as_str()))
                    .then(|| (words.iter().all(|w| title.contains(w.as_str())), e))
            })
            .collect();
        found.sort_by_key(|(title_match, _)| std::cmp::Reverse(*title_match));
        found.into_iter().map(|(_, e)| e).collect()
    }

    /// Where the bytes with BLAKE3 id `blake3` are, if a file of the library still holds
    /// them (unchanged since it was read).
    pub fn path_of(&self, blake3: &str) -> Option<PathBuf> {
        self.locate(blake3).map(|(path, _)| path)
    }

    /// [`MusicLibrary::path_of`], with the file's content (one pass, nothing cloned but it).
    pub fn locate(&self, blake3: &str) -> Option<(PathBuf, Content)> {
        self.index
            .files
            .iter()
            .chain(self.index.added.iter())
            .find(|(path, i)| {
                i.entry.content.blake3 == blake3
                    && fs::metadata(path)
                        .is_ok_and(|m| m.len() == i.size && mtime_ms(&m) == i.mtime_ms)
            })
            .map(|(path, i)| (path.clone(), i.entry.content.clone()))
    }

    /// Writes the index atomically.
    fn save(&mut self) -> Result<(), MediaError> {
        self.index.version = 1;
        let bytes = serde_json::to_vec(&self.index).map_err(|e| MediaError::BadIndex {
            path: self.index_path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.index_path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp).map_err(MediaError::io("create", &tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(MediaError::io("write", &tmp))?;
        fs::rename(&tmp, &self.index_path).map_err(MediaError::io("replace", &self.index_path))
    }
}

pub mod outboard;
pub mod tone;

/// `text` as a search compares it: lower case, accents gone ("Björk" is found by "bjork",
/// "Beyoncé" by "BEYONCE").
pub fn folded(text: &str) -> String {
    use unicode_normalization::{UnicodeNormalization as _, char::is_combining_mark};
    // Most tags are ASCII, which has no accents to take off: 5x faster a search.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests;
