//! What a compacted playlist looks like, kept beside it so that opening the store does not
//! decode every document: `listing.json` (its summary and the people it names) and
//! `playlist.cache` (the whole playlist as plain values, LZ4-compressed JSON: every element
//! of the track list, and the removed ids that hide some, so that a document loaded later
//! can take its first read from it, see `PlaylistDoc::follow_from`; and the signed log's
//! index, so that loading it decodes no envelope, see `signed_log::Index`).
//!
//! Both are caches, derived from the snapshot and never the other way round. They are
//! written after a compaction, when the update log is empty, and they name the files they
//! were derived from: the snapshot (length and modification time: a new snapshot is a new
//! file, renamed into place), the signed log's length (append-only: every change, ours or
//! a member's, lengthens it) and the cache's own length. A copied home (a backup put
//! back) keeps all of these and so its caches. Opening trusts them only while all of that still holds and the
//! update log is still empty; anything else — an edit, a crash between a snapshot and its
//! listing, another version of WhatNext, a damaged or missing file — and the playlist is
//! loaded from its snapshot and logs as before. A wrong cache can never win over data.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use whatnext_protocol::playlist::{Author, Playlist, PlaylistSummary};

use crate::signed_log;

pub(crate) const LISTING: &str = "listing.json";
pub(crate) const CACHE: &str = "playlist.cache";
/// Bumped whenever what `listing.json` holds changes meaning: an older one is then ignored.
const CACHE_FORMAT: u32 = 1;
/// What `playlist.cache` holds: `WNC1` the playlist as shown, `WNC2` a [`Cached`]. A cache
/// of another kind is not read (the playlist is read from its document, once).
const CACHE_MAGIC: &[u8; 4] = b"WNC2";
/// A cached playlist larger than this when decompressed is damage, not data.
const MAX_CACHE: usize = 1 << 30;

/// Which version of a file a cache was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FileIdentity {
    len: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    fn of(path: &Path) -> Option<FileIdentity> {
        let meta = fs::metadata(path).ok()?;
        Some(FileIdentity {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ListingFile {
    format: u32,
    snapshot: FileIdentity,
    signed_len: u64,
    cache_len: u64,
    summary: PlaylistSummary,
    people: Vec<Author>,
}

/// A playlist known from its listing: what lists it, without its document.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub summary: PlaylistSummary,
    pub people: Vec<Author>,
    cache_len: u64,
}

fn file_len(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

/// The listing of playlist `id` in `dir`, when it still describes what is on disk.
pub(crate) fn read_listing(dir: &Path, id: &str) -> Option<Listed> {
    let text = fs::read(dir.join(LISTING)).ok()?;
    let listing: ListingFile = serde_json::from_slice(&text).ok()?;
    let current = listing.format == CACHE_FORMAT
        && listing.summary.id == id
        && !listing.summary.damaged
        && file_len(&dir.join("updates.log")) == Some(0)
        && FileIdentity::of(&dir.join("snapshot.loro")) == Some(listing.snapshot)
        && file_len(&dir.join(signed_log::FILE)) == Some(listing.signed_len)
        && file_len(&dir.join(CACHE)) == Some(listing.cache_len);
    current.then_some(Listed {
        summary: listing.summary,
        people: listing.people,
        cache_len: listing.cache_len,
    })
}

/// What `playlist.cache` holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Cached {
    /// Its tracks are every element of the track list, those a removed id hides too.
    pub every_element: Playlist,
    /// The removed ids that hide some of them.
    pub hidden: Vec<String>,
    /// Where each envelope of the signed log is and the version it reaches.
    pub signed: crate::signed_log::Index,
}

impl Cached {
    /// The playlist as it is shown (`PlaylistDoc::read`): without the hidden tracks.
    pub fn shown(self) -> Playlist {
        let hidden: std::collections::HashSet<&str> =
            self.hidden.iter().map(String::as_str).collect();
        let mut playlist = self.every_element;
        playlist.tracks.retain(|t| !hidden.contains(t.id.as_str()));
        playlist
    }
}

/// What the cache of playlist `listed` holds; None when it cannot be read (the caller then
/// loads the document).
pub(crate) fn read_cached(dir: &Path, listed: &Listed) -> Option<Cached> {
    let bytes = fs::read(dir.join(CACHE)).ok()?;
    if bytes.len() as u64 != listed.cache_len {
        return None;
    }
    let body = bytes.strip_prefix(CACHE_MAGIC)?;
    let claimed = body.get(..4)?;
    if u32::from_le_bytes([claimed[0], claimed[1], claimed[2], claimed[3]]) as usize > MAX_CACHE {
        return None;
    }
    let json = lz4_flex::decompress_size_prepended(body).ok()?;
    let cached: Cached = serde_json::from_slice(&json).ok()?;
    (cached.every_element.id == listed.summary.id).then_some(cached)
}

/// Writes both caches of the playlist in `dir`, whose update log is empty and whose
/// snapshot holds all of `cached`. The cache first, then the listing that vouches for
/// it; each to a temp file renamed into place (no fsync: a lost cache costs one slower
/// open, and the listing names what it vouches for).
pub(crate) fn write(
    dir: &Path,
    cached: &Cached,
    summary: &PlaylistSummary,
    people: &[Author],
) -> std::io::Result<()> {
    let json = serde_json::to_vec(cached).map_err(std::io::Error::other)?;
    let mut cache = CACHE_MAGIC.to_vec();
    cache.extend(lz4_flex::compress_prepend_size(&json));
    replace(&dir.join(CACHE), &cache)?;
    let snapshot = FileIdentity::of(&dir.join("snapshot.loro"))
        .ok_or_else(|| std::io::Error::other("the snapshot is missing"))?;
    let listing = ListingFile {
        format: CACHE_FORMAT,
        snapshot,
        signed_len: file_len(&dir.join(signed_log::FILE)).unwrap_or(0),
        cache_len: cache.len() as u64,
        summary: summary.clone(),
        people: people.to_vec(),
    };
    let text = serde_json::to_vec(&listing).map_err(std::io::Error::other)?;
    replace(&dir.join(LISTING), &text)
}

/// Whether the listing in `dir` still vouches for what is there (nothing to rewrite).
pub(crate) fn is_current(dir: &Path, id: &str) -> bool {
    read_listing(dir, id).is_some()
}

/// Drops the listing in `dir`, whose cache turned out unreadable: the playlist is read from
/// its document until a clean stop writes both again.
pub(crate) fn forget(dir: &Path) {
    let path = dir.join(LISTING);
    if let Err(err) = fs::remove_file(&path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {err}", path.display());
    }
}

fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}
