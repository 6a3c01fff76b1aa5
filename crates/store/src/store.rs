//! The on-disk store: one directory per playlist under `<home>/store/`.
//!
//! ```text
//! store/FORMAT                  format version of this layout ("1")
//! store/<id>/snapshot.loro      compacted Loro snapshot, LZ4-compressed (temp file + fsync + rename)
//! store/<id>/updates.log        fsync'ed records of every update since the snapshot
//! store/trash/<id>-<ms>/        deleted playlists (moved, never erased)
//! ```
//!
//! Invariant: a write returns Ok only after its update is durable. Loading replays the
//! snapshot and then the log; Loro imports are idempotent, so a crash between writing a
//! snapshot and emptying the log only replays updates the snapshot already holds.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
};

use loro::VersionVector;

use whatnext_protocol::playlist::{Author, NewTrack, Playlist, PlaylistSummary};

use crate::{
    doc::{PlaylistDoc, new_playlist_id},
    error::StoreError,
    log::UpdateLog,
};

pub const FORMAT_VERSION: u32 = 1;
/// Fold the log into a snapshot after this many records…
const COMPACT_EVERY_RECORDS: usize = 500;
/// …or this many bytes of log.
const COMPACT_EVERY_BYTES: u64 = 4 * 1024 * 1024;

struct Entry {
    doc: PlaylistDoc,
    /// Kept up to date on every change: reading it from the document can cost a decode of
    /// the whole track list after an export, and listing must stay cheap.
    summary: PlaylistSummary,
    log: UpdateLog,
    /// Version already durable on disk.
    saved: VersionVector,
    records: usize,
}

pub struct Store {
    root: PathBuf,
    playlists: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub playlists: usize,
    /// Damaged log tails that were skipped (and kept at these paths).
    pub torn_tails: Vec<PathBuf>,
    /// Playlists that could not be loaded at all, left untouched on disk, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

fn is_playlist_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically and durably.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(StoreError::io("rename into place", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

impl Store {
    /// Opens the store under `root`, creating it if needed, and loads every playlist.
    pub fn open(root: &Path, now_ms: u64) -> Result<(Store, LoadReport), StoreError> {
        fs::create_dir_all(root).map_err(StoreError::io("create", root))?;
        let format_path = root.join("FORMAT");
        match fs::read_to_string(&format_path) {
            Ok(text) => {
                let found: u32 = text.trim().parse().map_err(|_| StoreError::Io {
                    action: "read the format version in",
                    path: format_path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{text:?} is not a number"),
                    ),
                })?;
                if found > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat {
                        path: root.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&format_path, format!("{FORMAT_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(StoreError::io("read", &format_path)(e)),
        }

        let mut store = Store {
            root: root.to_path_buf(),
            playlists: BTreeMap::new(),
        };
        let mut report = LoadReport::default();
        let entries = fs::read_dir(root).map_err(StoreError::io("list", root))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !path.is_dir() || name == "trash" || !is_playlist_id(&name) {
                continue;
            }
            match load_entry(&path, now_ms) {
                Ok((loaded, torn)) => {
                    report.torn_tails.extend(torn);
                    store.playlists.insert(name, loaded);
                }
                Err(err) => {
                    tracing::error!("could not load the playlist in {}: {err}", path.display());
                    report.unreadable.push((path, err.to_string()));
                }
            }
        }
        report.playlists = store.playlists.len();
        Ok((store, report))
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn entry(&self, id: &str) -> Result<&Entry, StoreError> {
        self.playlists
            .get(id)
            .ok_or_else(|| StoreError::UnknownPlaylist(id.to_string()))
    }

    fn entry_mut(&mut self, id: &str) -> Result<&mut Entry, StoreError> {
        self.playlists
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownPlaylist(id.to_string()))
    }

    fn insert_new(&mut self, id: String, doc: PlaylistDoc, now_ms: u64) -> Result<(), StoreError> {
        let dir = self.dir(&id);
        fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        write_atomic(&dir.join("snapshot.loro"), &encode_snapshot(&doc)?)?;
        sync_dir(&self.root);
        let (log, _) = UpdateLog::open(&dir.join("updates.log"), now_ms)?;
        let saved = doc.version();
        let summary = doc.summary();
        self.playlists.insert(
            id,
            Entry {
                summary,
                doc,
                log,
                saved,
                records: 0,
            },
        );
        Ok(())
    }

    pub fn create(
        &mut self,
        name: &str,
        description: &str,
        owner: &Author,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        let id = new_playlist_id();
        let doc = PlaylistDoc::create(&id, name, description, owner, now_ms)?;
        self.insert_new(id.clone(), doc, now_ms)?;
        Ok(id)
    }

    /// Creates a playlist from an exported one. Keeps its id unless `as_new` (or the id is
    /// taken, which is an error without `as_new`).
    pub fn import(
        &mut self,
        playlist: &Playlist,
        as_new: bool,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        let id = if as_new {
            new_playlist_id()
        } else {
            playlist.id.clone()
        };
        if !is_playlist_id(&id) {
            return Err(StoreError::Invalid(format!(
                "{id:?} is not a valid playlist id"
            )));
        }
        if self.playlists.contains_key(&id) {
            return Err(StoreError::Exists(id));
        }
        let doc = PlaylistDoc::create(
            &id,
            &playlist.name,
            &playlist.description,
            &playlist.owner,
            playlist.created_at,
        )?;
        doc.set_imported(playlist)?;
        self.insert_new(id.clone(), doc, now_ms)?;
        Ok(id)
    }

    pub fn list(&self) -> Vec<PlaylistSummary> {
        let mut list: Vec<PlaylistSummary> =
            self.playlists.values().map(|e| e.summary.clone()).collect();
        list.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.name.cmp(&b.name))
        });
        list
    }

    pub fn get(&self, id: &str) -> Result<Playlist, StoreError> {
        Ok(self.entry(id)?.doc.read())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.playlists.contains_key(id)
    }

    pub fn add_tracks(
        &mut self,
        id: &str,
        tracks: &[NewTrack],
        by: &Author,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        if tracks.is_empty() {
            return Err(StoreError::Invalid("no tracks to add".into()));
        }
        let ids = self.entry(id)?.doc.add_tracks(tracks, by, now_ms)?;
        self.persist(id)?;
        Ok(ids)
    }

    pub fn move_track(
        &mut self,
        id: &str,
        track_id: &str,
        to: usize,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.entry(id)?.doc.move_track(track_id, to, now_ms)?;
        self.persist(id)
    }

    pub fn remove_track(
        &mut self,
        id: &str,
        track_id: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.entry(id)?.doc.remove_track(track_id, now_ms)?;
        self.persist(id)
    }

    pub fn rename(&mut self, id: &str, name: &str, now_ms: u64) -> Result<(), StoreError> {
        self.entry(id)?.doc.rename(name, now_ms)?;
        self.persist(id)
    }

    /// Moves the playlist to `store/trash/`; nothing is erased.
    pub fn delete(&mut self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        self.entry(id)?;
        let trash = self.root.join("trash");
        fs::create_dir_all(&trash).map_err(StoreError::io("create", &trash))?;
        let from = self.dir(id);
        let to = trash.join(format!("{id}-{now_ms}"));
        fs::rename(&from, &to).map_err(StoreError::io("move to the trash", &from))?;
        sync_dir(&self.root);
        sync_dir(&trash);
        self.playlists.remove(id);
        Ok(())
    }

    /// Version vector of a playlist, encoded, for sync.
    pub fn version(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.entry(id)?.doc.version().encode())
    }

    /// Updates the holder of `their_version` lacks.
    pub fn export_since(&self, id: &str, their_version: &[u8]) -> Result<Vec<u8>, StoreError> {
        // An empty version is a peer that has nothing yet: it gets everything.
        let vv = if their_version.is_empty() {
            VersionVector::default()
        } else {
            VersionVector::decode(their_version)
                .map_err(|e| StoreError::Crdt(format!("bad version vector: {e}")))?
        };
        self.entry(id)?.doc.export_updates_since(&vv)
    }

    /// Applies updates from a peer and makes them durable. A playlist this store does not
    /// have yet is created from them (joining a shared playlist), provided they describe
    /// the playlist `id`. Returns whether anything changed.
    pub fn apply_remote(
        &mut self,
        id: &str,
        updates: &[u8],
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if !self.playlists.contains_key(id) {
            if !is_playlist_id(id) {
                return Err(StoreError::Invalid(format!(
                    "{id:?} is not a valid playlist id"
                )));
            }
            let doc = PlaylistDoc::empty();
            doc.import(updates)?;
            if doc.id() != id {
                return Err(StoreError::Invalid(format!(
                    "the updates sent for playlist {id} describe another playlist ({:?})",
                    doc.id()
                )));
            }
            self.insert_new(id.to_string(), doc, now_ms)?;
            return Ok(true);
        }
        let entry = self.entry(id)?;
        let before = entry.doc.version();
        entry.doc.import(updates)?;
        let changed = entry.doc.version() != before;
        self.persist(id)?;
        Ok(changed)
    }

    /// Records a member of a shared playlist (peer id → display name) in the document.
    pub fn add_member(&mut self, id: &str, member: &Author) -> Result<bool, StoreError> {
        let changed = self.entry(id)?.doc.add_member(member)?;
        self.persist(id)?;
        Ok(changed)
    }

    /// Records where `peer` can be dialed, for the other members.
    pub fn set_member_addrs(
        &mut self,
        id: &str,
        peer: &str,
        addrs: &[String],
    ) -> Result<bool, StoreError> {
        let changed = self.entry(id)?.doc.set_member_addrs(peer, addrs)?;
        self.persist(id)?;
        Ok(changed)
    }

    /// Whether `peer` owns or collaborates on the playlist; reads no tracks.
    pub fn is_member(&self, id: &str, peer: &str) -> Result<bool, StoreError> {
        Ok(self.entry(id)?.doc.is_member(peer))
    }

    pub fn member_addrs(&self, id: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        Ok(self.entry(id)?.doc.member_addrs())
    }

    /// Removes a member from the document's member list.
    pub fn remove_member(&mut self, id: &str, peer_id: &str) -> Result<bool, StoreError> {
        let changed = self.entry(id)?.doc.remove_member(peer_id)?;
        self.persist(id)?;
        Ok(changed)
    }

    /// Appends what changed since the last durable version, and compacts when due.
    fn persist(&mut self, id: &str) -> Result<(), StoreError> {
        let dir = self.dir(id);
        let entry = self.entry_mut(id)?;
        let version = entry.doc.version();
        if version == entry.saved {
            return Ok(());
        }
        entry.summary = entry.doc.summary();
        let update = entry.doc.export_updates_since(&entry.saved)?;
        entry.log.append(&update)?;
        entry.saved = version;
        entry.records += 1;
        if entry.records >= COMPACT_EVERY_RECORDS || entry.log.len() >= COMPACT_EVERY_BYTES {
            compact(entry, &dir)?;
        }
        Ok(())
    }

    /// Folds every playlist's log into its snapshot (e.g. on a clean shutdown).
    pub fn compact_all(&mut self) -> Result<(), StoreError> {
        let root = self.root.clone();
        for (id, entry) in &mut self.playlists {
            if !entry.log.is_empty() {
                compact(entry, &root.join(id))?;
            }
        }
        Ok(())
    }
}

/// Snapshot files start with this, then the LZ4 block (size-prefixed). Loro's own encoding
/// leaves repeated strings (peer ids, artists) uncompressed: LZ4 halves a 10k-track file.
const SNAPSHOT_MAGIC: &[u8; 4] = b"WNS1";
/// A snapshot larger than this when decompressed is damage, not data.
const MAX_SNAPSHOT: usize = 1 << 30;

fn encode_snapshot(doc: &PlaylistDoc) -> Result<Vec<u8>, StoreError> {
    let raw = doc.export_snapshot()?;
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend(lz4_flex::compress_prepend_size(&raw));
    Ok(out)
}

fn decode_snapshot(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC) else {
        return Ok(bytes.to_vec()); // an uncompressed Loro snapshot
    };
    let size = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| StoreError::Crdt("the snapshot file is truncated".into()))?;
    if size > MAX_SNAPSHOT {
        return Err(StoreError::Crdt(format!(
            "the snapshot claims {size} bytes; it is damaged"
        )));
    }
    lz4_flex::decompress_size_prepended(body)
        .map_err(|e| StoreError::Crdt(format!("the snapshot file is damaged: {e}")))
}

fn compact(entry: &mut Entry, dir: &Path) -> Result<(), StoreError> {
    write_atomic(&dir.join("snapshot.loro"), &encode_snapshot(&entry.doc)?)?;
    entry.log.reset()?;
    entry.records = 0;
    Ok(())
}

fn load_entry(dir: &Path, now_ms: u64) -> Result<(Entry, Option<PathBuf>), StoreError> {
    let doc = PlaylistDoc::empty();
    let snapshot = dir.join("snapshot.loro");
    match fs::read(&snapshot) {
        Ok(bytes) => doc.import(&decode_snapshot(&bytes)?)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("read", &snapshot)(e)),
    }
    let (log, recovered) = UpdateLog::open(&dir.join("updates.log"), now_ms)?;
    let records = recovered.records.len();
    for record in &recovered.records {
        doc.import(record)?;
    }
    let saved = doc.version();
    Ok((
        Entry {
            summary: doc.summary(),
            doc,
            log,
            saved,
            records,
        },
        recovered.torn_tail,
    ))
}
