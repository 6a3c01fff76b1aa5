//! The on-disk store: one directory per playlist under `<home>/store/`.
//!
//! ```text
//! store/FORMAT                         format version of this layout ("1")
//! store/<id>/snapshot.loro             compacted Loro snapshot, LZ4-compressed
//! store/<id>/updates.log               fsync'ed records of every update since the snapshot
//! store/<id>/signed.log                every change as its author signed it, for sync
//!                                      (never compacted; see [`crate::signed_log`])
//! store/<id>/listing.json, playlist.cache
//!                                      what the compacted playlist looks like, so an open
//!                                      need not decode it (caches; see [`crate::listing`])
//! store/<id>/*.damaged-<ms>, *.torn-<ms>, *.replaced-<ms>, *.unapplied-<ms>
//!                                      bytes set aside after damage (never deleted)
//! store/trash/<id>-<ms>/               deleted playlists (moved, never erased)
//! ```
//!
//! Invariant: a change is visible in memory only once it is durable. A write appends the
//! change to the log (fsync'ed) before it returns `Ok`; when that fails the document is put
//! back to its durable version and the error returned, so a retry applies the change once.
//!
//! **The log rule.** The update log is never emptied unless the snapshot that replaces it
//! was written to a temp file, fsync'ed, read back from that file and decoded into a fresh
//! document holding every version the log held, and only then renamed into place; and
//! never while the document has updates waiting for missing history (Loro keeps those
//! pending and applies them when the history arrives — they exist only in the log).
//! Nothing else truncates a log, and nothing writes over a snapshot or log of a playlist
//! that exists on disk: a new playlist gets a new directory or an error.
//!
//! Damage found on load (see [`Store::open`]) is set aside, never overwritten:
//! * a snapshot that does not decode is moved to `snapshot.loro.damaged-<ms>`; the playlist
//!   is rebuilt from what survives — its log's records (held pending by Loro until the
//!   history they build on arrives), the other members (the next sync supplies the missing
//!   history, then the pending records apply), or, for a playlist that was never shared, its
//!   Markdown mirror ([`Store::rebuild_from_mirror`], driven by the controller);
//! * damaged log records are skipped one by one (see [`crate::log`]); every record repeats
//!   the changes of the one before it, so a single damaged record loses nothing.
//!
//! A damaged playlist stays listed (`damaged: true` in its summary) and is reported in
//! [`Store::problems`]. Loading replays the snapshot and then the log; Loro imports are
//! idempotent, so replaying updates the snapshot already holds is harmless.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
};

use libp2p_identity::Keypair;
use loro::VersionVector;

use whatnext_protocol::{
    listening::SessionAction,
    playlist::{Author, NewTrack, Playlist, PlaylistSummary, short_peer},
    signed::{Envelope, EnvelopeKind, decode_envelopes, encode_envelopes, loro_peer_of},
    state::StoreProblem,
};

use crate::{
    authority::{Received, Rejection, receive_unless_barred},
    doc::{PlaylistDoc, is_valid_id, new_playlist_id, validate_import},
    error::StoreError,
    listing::{self, Listed},
    log::{Recovered, UpdateLog},
    session,
    signed_log::SignedLog,
};

pub const FORMAT_VERSION: u32 = 1;
/// Fold the log into a snapshot after this many records…
const COMPACT_EVERY_RECORDS: usize = 500;
/// …or this many bytes of log.
const COMPACT_EVERY_BYTES: u64 = 4 * 1024 * 1024;
/// Problems remembered (the oldest go first).
const MAX_PROBLEMS: usize = 100;
/// Received envelopes kept aside while what they build on has not arrived, per playlist.
const MAX_WAITING: usize = 10_000;

struct Entry {
    doc: PlaylistDoc,
    /// Kept up to date on every change: reading it from the document can cost a decode of
    /// the whole track list after an export, and listing must stay cheap.
    summary: PlaylistSummary,
    /// Who the playlist names (owner and members), kept with the summary for the same reason.
    people: Vec<Author>,
    log: UpdateLog,
    /// Version already durable on disk.
    saved: VersionVector,
    /// Version durable before the last record: the next record repeats the changes since
    /// then, so one damaged record is covered by the one after it.
    before_last: VersionVector,
    records: usize,
    /// Part of the history is missing: the document has no metadata yet, or holds updates
    /// that wait for history. Never compacted then.
    incomplete: bool,
    /// Incomplete because of damage (not just updates from a member that arrived out of
    /// order): listed as damaged, its mirror left alone, reported until whole again.
    damaged: bool,
    /// The signed updates, for sync.
    signed: SignedLog,
    /// Received envelopes that build on changes not here yet (memory only: the members who
    /// sent them still have them).
    waiting: Vec<Envelope>,
    /// Authors whose updates were refused lately (memory only; see [`Strikes`]).
    strikes: Strikes,
    /// Whose key the document's Loro peer id is derived from (our edits are signed by it).
    signer: String,
    /// The nonce of that Loro peer id.
    nonce: u64,
    /// When it was last read or changed (see [`Store::rest_idle`]).
    last_used: std::time::Instant,
}

impl Entry {
    /// A whole playlist whose document is all in a snapshot just written, with an empty log.
    fn fresh(id: &str, doc: PlaylistDoc, log: UpdateLog, signed: SignedLog, nonce: u64) -> Entry {
        let saved = doc.version();
        Entry {
            summary: summary_of(id, &doc, false),
            people: doc.people(),
            doc,
            log,
            before_last: saved.clone(),
            saved,
            records: 0,
            incomplete: false,
            damaged: false,
            signed,
            waiting: Vec::new(),
            strikes: Strikes::default(),
            signer: String::new(),
            nonce,
            last_used: std::time::Instant::now(),
        }
    }

    /// Makes our next edits carry a fresh Loro peer id of `key` (a fresh nonce each time, so
    /// no counter is ever reused, even by a store rebuilt from scratch).
    fn assign_peer(&mut self, key: &Keypair) {
        let nonce = rand::random::<u64>();
        match self.doc.set_peer(loro_peer_of(&key.public(), nonce)) {
            Ok(()) => {
                self.nonce = nonce;
                self.signer = key.public().to_peer_id().to_string();
            }
            Err(err) => tracing::error!("could not set the document's peer id: {err}"),
        }
    }

    fn is_signed_by(&self, key: &Keypair) -> bool {
        self.signer == key.public().to_peer_id().to_string()
            && self.doc.peer() == loro_peer_of(&key.public(), self.nonce)
    }

    /// Signs our changes since `before` (one envelope) and keeps it for sync. A failure
    /// leaves the change saved but unsent (the owner's next start vouches for it in a
    /// baseline); it is reported, not returned.
    fn sign_own(
        &mut self,
        id: &str,
        key: &Keypair,
        before: &VersionVector,
    ) -> Result<(), StoreError> {
        let peer = self.doc.peer();
        let from = before.get(&peer).copied().unwrap_or(0);
        let to = self.doc.version().get(&peer).copied().unwrap_or(0);
        if to <= from {
            return Ok(());
        }
        let updates = self.doc.export_span(peer, from, to)?;
        let envelope = Envelope::sign(key, id, EnvelopeKind::Changes, self.nonce, updates)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.signed.push(envelope)
    }

    /// When this store's history holds changes no kept envelope covers (written before
    /// updates were signed, or whose signing failed) and `key` is the owner's: one baseline
    /// envelope vouching for them, so members can be sent them.
    fn vouch_for_unsigned(&mut self, id: &str, key: &Keypair) {
        if self.incomplete || self.signed.covered().includes_vv(&self.doc.version()) {
            return;
        }
        if self.doc.session_facts().owner != key.public().to_peer_id().to_string() {
            tracing::debug!("playlist {id}: history from before signing; its owner vouches for it");
            return;
        }
        let vouched = self
            .doc
            .export_updates_since(self.signed.covered())
            .and_then(|updates| {
                Envelope::sign(key, id, EnvelopeKind::Baseline, 0, updates)
                    .map_err(|e| StoreError::Internal(e.to_string()))
            })
            .and_then(|envelope| self.signed.push(envelope));
        if let Err(err) = vouched {
            tracing::warn!("playlist {id}: could not sign its earlier history: {err}");
        }
    }

    fn refresh(&mut self, id: &str) {
        self.incomplete = is_incomplete(id, &self.doc);
        self.damaged &= self.incomplete;
        self.summary = summary_of(id, &self.doc, self.damaged);
        self.people = self.doc.people();
    }
}

/// Outcome of [`Store::apply_remote`].
#[derive(Debug, Default)]
pub struct Applied {
    /// Something new was applied.
    pub changed: bool,
    /// Envelopes refused (forged, or beyond their authors' rights), with who signed them.
    pub rejected: Vec<Rejection>,
}

pub struct Store {
    root: PathBuf,
    /// Signs our edits: the main identity, or a playlist's own (an isolated share).
    main_key: Keypair,
    playlist_keys: std::collections::HashMap<String, Keypair>,
    playlists: BTreeMap<String, Entry>,
    /// Playlists known from their listing only: compacted and unchanged since, their
    /// documents not read yet (a home of a thousand playlists opens without decoding one).
    /// Any use but listing and reading reads the document and moves it to `playlists`.
    listed: BTreeMap<String, Listed>,
    /// Playlists whose files could not be read at all (an I/O error, not damage): left as
    /// they are on disk, listed, and refused for anything but moving to the trash.
    unreadable: BTreeMap<String, String>,
    problems: Vec<StoreProblem>,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub playlists: usize,
    /// Incomplete final records (a crash mid-append) that were cut off and kept at these
    /// paths. Their writes were never acknowledged, so nothing was lost.
    pub torn_tails: Vec<PathBuf>,
    /// Damage found, what was done and where the pieces are (also in [`Store::problems`]).
    pub problems: Vec<StoreProblem>,
}

/// Local edits need the document's metadata; updates from members are what repairs it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Local,
    Remote,
}

fn is_incomplete(id: &str, doc: &PlaylistDoc) -> bool {
    doc.id() != id || doc.has_pending()
}

fn summary_of(id: &str, doc: &PlaylistDoc, damaged: bool) -> PlaylistSummary {
    let mut summary = doc.summary();
    summary.id = id.to_string();
    summary.damaged = damaged;
    if damaged && summary.name.is_empty() {
        summary.name = "(name not recovered yet)".to_string();
    }
    summary
}

fn problem(id: &str, what: String, kept_at: Option<&Path>) -> StoreProblem {
    StoreProblem {
        playlist_id: id.to_string(),
        what,
        kept_at: kept_at.map(|p| p.display().to_string()),
    }
}

const WAITING: &str = "the changes that build on the lost part wait in its update log and apply \
    when a member's copy brings that history back at the next sync (a playlist that was never \
    shared is rebuilt from its Markdown mirror instead)";

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

/// Writes `doc`'s snapshot as `dir/snapshot.loro` so that it can stand in for the log: to a
/// temp file, fsync'ed, read back from that file and decoded into a fresh document, which
/// must hold every version in `must_hold` and nothing pending; only then renamed into place.
fn write_snapshot_checked(
    dir: &Path,
    doc: &PlaylistDoc,
    must_hold: &VersionVector,
) -> Result<(), StoreError> {
    let path = dir.join("snapshot.loro");
    let tmp = dir.join("snapshot.loro.tmp");
    let bytes = encode_snapshot(doc)?;
    let mut file = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io("write", &tmp))?;
    drop(file);
    let back = fs::read(&tmp).map_err(StoreError::io("read back", &tmp))?;
    let check = PlaylistDoc::empty();
    decode_snapshot(&back)
        .and_then(|raw| check.import(&raw))
        .map_err(|e| {
            StoreError::Damaged(format!(
                "the snapshot just written to {} does not read back ({e}); the update log was kept. Check the disk",
                tmp.display()
            ))
        })?;
    if !check.version().includes_vv(must_hold) || check.has_pending() {
        return Err(StoreError::Damaged(format!(
            "the snapshot just written to {} lacks changes the update log holds; the log was kept",
            tmp.display()
        )));
    }
    fs::rename(&tmp, &path).map_err(StoreError::io("rename into place", &path))?;
    sync_dir(dir);
    Ok(())
}

impl Store {
    /// Opens the store under `root`, creating it if needed, and loads every playlist.
    ///
    /// Damage does not stop the others from loading, and is set aside rather than left to be
    /// overwritten: see the module documentation. What was found is in the report.
    ///
    /// Our edits are signed with a key made for this call: for tests and tools that only
    /// read. The app opens its store with its identity ([`Store::open_as`]).
    pub fn open(root: &Path, now_ms: u64) -> Result<(Store, LoadReport), StoreError> {
        Store::open_as(root, now_ms, Keypair::generate_ed25519())
    }

    /// Opens the store under `root` as the identity `key`, which signs our edits.
    pub fn open_as(
        root: &Path,
        now_ms: u64,
        key: Keypair,
    ) -> Result<(Store, LoadReport), StoreError> {
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
            main_key: key,
            playlist_keys: std::collections::HashMap::new(),
            playlists: BTreeMap::new(),
            listed: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            problems: Vec::new(),
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
            if !path.is_dir() || name == "trash" || !is_valid_id(&name) {
                continue;
            }
            if let Some(listed) = listing::read_listing(&path, &name) {
                store.listed.insert(name, listed);
                continue;
            }
            match load_entry(&path, &name, now_ms, None) {
                Ok(Some(loaded)) => {
                    report.torn_tails.extend(loaded.torn_tail);
                    store.problems.extend(loaded.problems);
                    store.playlists.insert(name, loaded.entry);
                }
                Ok(None) => {
                    // A creation interrupted before anything was written: nothing to load.
                    if let Err(err) = store.move_to_trash(&name, now_ms) {
                        tracing::warn!("{err}");
                    }
                }
                Err(err) => {
                    tracing::error!("could not read the playlist in {}: {err}", path.display());
                    store.problems.push(problem(
                        &name,
                        format!(
                            "could not be read: {err}. Its files were left exactly as they are; it refuses changes until the cause is fixed and WhatNext restarts"
                        ),
                        Some(&path),
                    ));
                    store.unreadable.insert(name, err.to_string());
                }
            }
        }
        let key = store.main_key.clone();
        for (id, entry) in &mut store.playlists {
            entry.assign_peer(&key);
            entry.vouch_for_unsigned(id, &key);
        }
        report.playlists = store.playlists.len() + store.listed.len();
        report.problems = store.problems.clone();
        Ok((store, report))
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn unreadable_error(&self, id: &str) -> Option<StoreError> {
        self.unreadable.get(id).map(|why| {
            StoreError::Damaged(format!(
                "playlist {id} could not be read from disk ({why}); its files in {} were left as they are. Fix the cause and restart WhatNext",
                self.dir(id).display()
            ))
        })
    }

    /// Reads the document of a playlist known from its listing only (see `listed`), as
    /// opening the store would have; damage found now is reported as it would have been.
    fn warm_up(&mut self, id: &str) {
        let Some(listed) = self.listed.remove(id) else {
            return;
        };
        let dir = self.dir(id);
        tracing::debug!("reading the document of playlist {id}");
        // The listing vouches for its cache as this very version of the document: the
        // document's first read takes every track it did not change since from there.
        let cached = listing::read_cached(&dir, &listed);
        match load_entry(&dir, id, now_ms(), cached.as_ref().map(|c| &c.signed)) {
            Ok(Some(loaded)) => {
                if let Some(torn) = loaded.torn_tail {
                    tracing::warn!(
                        "{}: an incomplete final record was set aside",
                        torn.display()
                    );
                }
                let whole =
                    loaded.problems.is_empty() && !loaded.entry.incomplete && !loaded.entry.damaged;
                if let Some(cached) = cached.filter(|_| whole)
                    && !loaded.entry.doc.follow_from(cached.every_element.tracks)
                {
                    tracing::warn!("the cache of playlist {id} does not fit its document");
                }
                self.problems.extend(loaded.problems);
                let mut entry = loaded.entry;
                let key = self.key_for(id).clone();
                entry.assign_peer(&key);
                entry.vouch_for_unsigned(id, &key);
                self.playlists.insert(id.to_string(), entry);
            }
            Ok(None) => {
                self.unreadable.insert(
                    id.to_string(),
                    "its files were removed while WhatNext was running".to_string(),
                );
            }
            Err(err) => {
                tracing::error!("could not read the playlist in {}: {err}", dir.display());
                self.add_problem(
                    id,
                    format!(
                        "could not be read: {err}. Its files were left exactly as they are; it refuses changes until the cause is fixed and WhatNext restarts"
                    ),
                    Some(&dir),
                );
                self.unreadable.insert(id.to_string(), err.to_string());
            }
        }
    }

    fn entry(&mut self, id: &str) -> Result<&Entry, StoreError> {
        self.warm_up(id);
        if let Some(err) = self.unreadable_error(id) {
            return Err(err);
        }
        if let Some(entry) = self.playlists.get_mut(id) {
            entry.last_used = std::time::Instant::now();
        }
        self.playlists
            .get(id)
            .ok_or_else(|| StoreError::UnknownPlaylist(id.to_string()))
    }

    /// Damage and failures found since the store was opened, oldest first.
    pub fn problems(&self) -> &[StoreProblem] {
        &self.problems
    }

    fn add_problem(&mut self, id: &str, what: String, kept_at: Option<&Path>) {
        let new = problem(id, what, kept_at);
        if self.problems.last() == Some(&new) {
            return;
        }
        self.problems.push(new);
        if self.problems.len() > MAX_PROBLEMS {
            self.problems.remove(0);
        }
    }

    /// Whether the playlist is damaged: unreadable, or missing part of its history.
    pub fn is_damaged(&self, id: &str) -> bool {
        self.unreadable.contains_key(id) || self.playlists.get(id).is_some_and(|e| e.damaged)
    }

    /// The playlists missing part of their history (see the module documentation).
    pub fn needs_history(&self) -> Vec<String> {
        self.playlists
            .iter()
            .filter(|(_, e)| e.damaged)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The key that signs our edits of playlist `id`.
    fn key_for(&self, id: &str) -> &Keypair {
        self.playlist_keys.get(id).unwrap_or(&self.main_key)
    }

    /// Signs our edits of playlist `id` with `key` from now on (an isolated share's own
    /// identity), or with the main identity again (`None`).
    pub fn set_playlist_key(&mut self, id: &str, key: Option<Keypair>) {
        match key {
            Some(key) => self.playlist_keys.insert(id.to_string(), key),
            None => self.playlist_keys.remove(id),
        };
        let key = self.key_for(id).clone();
        if let Some(entry) = self.playlists.get_mut(id) {
            entry.assign_peer(&key);
            entry.vouch_for_unsigned(id, &key);
        }
    }

    /// Creates the directory and files of a new playlist. Never writes over a playlist
    /// directory that exists (loaded or not): that would destroy what it holds.
    fn insert_new(
        &mut self,
        id: String,
        doc: PlaylistDoc,
        nonce: u64,
        received: Option<Vec<Envelope>>,
    ) -> Result<(), StoreError> {
        if self.contains(&id) {
            return Err(StoreError::Exists(id));
        }
        let dir = self.dir(&id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Damaged(format!(
                    "{} already exists on disk but is not a loaded playlist; WhatNext does not write over it. Move it out of the store if it is not needed, then try again",
                    dir.display()
                )));
            }
            Err(e) => return Err(StoreError::io("create", &dir)(e)),
        }
        sync_dir(&self.root);
        let key = self.key_for(&id).clone();
        let created = write_snapshot_checked(&dir, &doc, &doc.version())
            .and_then(|()| UpdateLog::open(&dir.join("updates.log"), 0))
            .and_then(|(log, _)| Ok((log, SignedLog::open(&dir, 0, None)?.0)))
            .and_then(|(log, mut signed)| {
                // Ours from the start (signed as one envelope), or as the members sent it.
                match received {
                    Some(envelopes) => {
                        for envelope in envelopes {
                            signed.push(envelope)?;
                        }
                    }
                    None => {
                        let peer = doc.peer();
                        let to = doc.version().get(&peer).copied().unwrap_or(0);
                        let updates = doc.export_span(peer, 0, to)?;
                        let envelope =
                            Envelope::sign(&key, &id, EnvelopeKind::Changes, nonce, updates)
                                .map_err(|e| StoreError::Internal(e.to_string()))?;
                        signed.push(envelope)?;
                    }
                }
                Ok((log, signed))
            });
        let (log, signed) = match created {
            Ok(opened) => opened,
            Err(err) => {
                // Only what this call created goes: its files and the directory.
                for name in [
                    "snapshot.loro.tmp",
                    "snapshot.loro",
                    "updates.log",
                    crate::signed_log::FILE,
                ] {
                    let _ = fs::remove_file(dir.join(name));
                }
                let _ = fs::remove_dir(&dir);
                return Err(err);
            }
        };
        let mut entry = Entry::fresh(&id, doc, log, signed, nonce);
        entry.assign_peer(&key);
        self.playlists.insert(id, entry);
        Ok(())
    }

    /// A new Loro peer id of the key that signs playlist `id`, and its nonce.
    fn fresh_peer(&self, id: &str) -> (u64, u64) {
        let nonce = rand::random::<u64>();
        (loro_peer_of(&self.key_for(id).public(), nonce), nonce)
    }

    pub fn create(
        &mut self,
        name: &str,
        description: &str,
        owner: &Author,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        let id = new_playlist_id();
        let (peer, nonce) = self.fresh_peer(&id);
        let doc = PlaylistDoc::create_as(Some(peer), &id, name, description, owner, now_ms)?;
        self.insert_new(id.clone(), doc, nonce, None)?;
        Ok(id)
    }

    /// Creates a playlist from an exported one. Keeps its id unless `as_new` (or the id is
    /// taken, which is an error without `as_new` — also when the playlist with that id is
    /// damaged: importing over it would destroy the changes its log keeps).
    ///
    /// The input is checked first: ids (valid, no track id twice), peer ids, sizes.
    pub fn import(
        &mut self,
        playlist: &Playlist,
        as_new: bool,
        _now_ms: u64,
    ) -> Result<String, StoreError> {
        let id = if as_new {
            new_playlist_id()
        } else {
            playlist.id.clone()
        };
        if !is_valid_id(&id) {
            return Err(StoreError::Invalid(format!(
                "{id:?} is not a valid playlist id"
            )));
        }
        if self.is_damaged(&id) {
            return Err(StoreError::Damaged(format!(
                "playlist {id} exists here but is damaged; importing over it would destroy the changes its update log keeps. Import a copy with --as-new, or see `whatnext doctor`"
            )));
        }
        if self.contains(&id) {
            return Err(StoreError::Exists(id));
        }
        // A copy of a playlist that is here says so in its name: two of the same name in
        // the list would leave the user guessing which is which.
        let name = if as_new && self.contains(&playlist.id) {
            self.copy_name(&playlist.name)
        } else {
            playlist.name.clone()
        };
        let (peer, nonce) = self.fresh_peer(&id);
        let doc = build_imported(&id, playlist, &name, peer)?;
        self.insert_new(id.clone(), doc, nonce, None)?;
        Ok(id)
    }

    /// A name for a copy of playlist `name` that no playlist here has: "name (copy)", then
    /// "name (copy 2)", … (a copy of a copy is named after the original). A name already at
    /// the length limit stays as it is.
    fn copy_name(&self, name: &str) -> String {
        let original = strip_copy_suffix(name.trim());
        let taken: HashSet<String> = self.list().into_iter().map(|s| s.name).collect();
        // Among n playlists one of the first n + 1 candidates is free.
        (1..=taken.len() + 1)
            .map(|n| match n {
                1 => format!("{original} (copy)"),
                n => format!("{original} (copy {n})"),
            })
            .find(|candidate| !taken.contains(candidate))
            .filter(|candidate| candidate.len() <= crate::doc::MAX_TEXT)
            .unwrap_or_else(|| name.to_string())
    }

    /// Replaces a damaged playlist that was never shared by the copy in its Markdown mirror
    /// (`source`, for the report). What was on disk is moved aside, not overwritten.
    /// Refused when the playlist is not damaged, or when the mirror is older than what
    /// survived of it.
    pub fn rebuild_from_mirror(
        &mut self,
        id: &str,
        playlist: &Playlist,
        source: &Path,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let entry = self.entry(id)?;
        if !entry.damaged {
            return Err(StoreError::Invalid(format!(
                "playlist {id} is not damaged; there is nothing to rebuild"
            )));
        }
        if playlist.id != id {
            return Err(StoreError::Invalid(format!(
                "{} describes playlist {:?}, not {id}",
                source.display(),
                playlist.id
            )));
        }
        if entry.doc.id() == id && playlist.updated_at < entry.summary.updated_at {
            return Err(StoreError::Invalid(format!(
                "the mirror {} is older than what survived of playlist {id}; it was not used",
                source.display()
            )));
        }
        let (peer, nonce) = self.fresh_peer(id);
        let doc = build_imported(id, playlist, &playlist.name, peer)?;
        let dir = self.dir(id);
        let mut kept = Vec::new();
        for name in ["updates.log", "snapshot.loro", crate::signed_log::FILE] {
            let from = dir.join(name);
            if from.exists() {
                let to = dir.join(format!("{name}.replaced-{now_ms}"));
                fs::rename(&from, &to).map_err(StoreError::io("move aside", &from))?;
                kept.push(to);
            }
        }
        sync_dir(&dir);
        write_snapshot_checked(&dir, &doc, &doc.version())?;
        let (log, _) = UpdateLog::open(&dir.join("updates.log"), now_ms)?;
        let (mut signed, _) = SignedLog::open(&dir, now_ms, None)?;
        let key = self.key_for(id).clone();
        let to = doc.version().get(&peer).copied().unwrap_or(0);
        let envelope = Envelope::sign(
            &key,
            id,
            EnvelopeKind::Changes,
            nonce,
            doc.export_span(peer, 0, to)?,
        )
        .map_err(|e| StoreError::Internal(e.to_string()))?;
        signed.push(envelope)?;
        let mut entry = Entry::fresh(id, doc, log, signed, nonce);
        entry.assign_peer(&key);
        self.playlists.insert(id.to_string(), entry);
        self.note_restored(id, "rebuilt from its Markdown mirror");
        let what = format!(
            "rebuilt from its Markdown mirror {}: it was never shared, so no member could bring back its history; the files that could not be used without that history were moved aside",
            source.display()
        );
        tracing::warn!("playlist {id}: {what}");
        self.add_problem(id, what, kept.first().map(PathBuf::as_path));
        Ok(())
    }

    /// Marks the playlist's damage reports as resolved.
    fn note_restored(&mut self, id: &str, how: &str) {
        let damage = |p: &&mut StoreProblem| p.playlist_id == id && p.kept_at.is_some();
        for p in self.problems.iter_mut().filter(damage) {
            if !p.what.contains("— since restored") {
                p.what.push_str(&format!(" — since restored ({how})."));
            }
        }
    }

    /// When the playlist's files last changed on disk: the newest of its snapshot's and its
    /// update log's modification times. A copy written after it (the Markdown mirror) holds
    /// all they hold. None for a playlist this store does not have.
    pub fn changed_on_disk(&self, id: &str) -> Option<std::time::SystemTime> {
        if !self.contains(id) {
            return None;
        }
        let dir = self.dir(id);
        ["snapshot.loro", "updates.log"]
            .iter()
            .filter_map(|name| fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok())
            .max()
    }

    pub fn list(&self) -> Vec<PlaylistSummary> {
        let mut list: Vec<PlaylistSummary> = self
            .playlists
            .values()
            .map(|e| e.summary.clone())
            .chain(self.listed.values().map(|l| l.summary.clone()))
            .collect();
        list.extend(self.unreadable.keys().map(|id| PlaylistSummary {
            id: id.clone(),
            name: "(could not be read)".to_string(),
            track_count: 0,
            updated_at: 0,
            damaged: true,
        }));
        list.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.name.cmp(&b.name))
        });
        list
    }

    /// Playlist `id`'s name and everyone it names (owner first), from what is kept with its
    /// summary: no track is read (a guest page asks on every change).
    pub fn people_of(&mut self, id: &str) -> Result<(String, Vec<Author>), StoreError> {
        if let Some(listed) = self.listed.get(id) {
            return Ok((listed.summary.name.clone(), listed.people.clone()));
        }
        let entry = self.entry(id)?;
        Ok((entry.summary.name.clone(), entry.people.clone()))
    }

    /// Everyone our playlists name, by peer id, with the name they go by now: the one in
    /// the playlist changed most recently (a rename reaches each playlist as it syncs).
    /// Two people with the same name get a short id after it, as in a playlist's members.
    pub fn people(&self) -> BTreeMap<String, String> {
        let mut newest: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        let known = (self.playlists.values().map(|e| (&e.summary, &e.people)))
            .chain(self.listed.values().map(|l| (&l.summary, &l.people)));
        for (summary, people) in known {
            for person in people {
                let seen = newest.entry(&person.peer_id).or_insert((0, ""));
                if !person.display_name.is_empty() && summary.updated_at >= seen.0 {
                    *seen = (summary.updated_at, &person.display_name);
                }
            }
        }
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (_, name) in newest.values() {
            *count.entry(name).or_default() += 1;
        }
        newest
            .iter()
            .map(|(peer, (_, name))| {
                let shown = if name.is_empty() {
                    short_peer(peer)
                } else if count.get(name).copied().unwrap_or(0) > 1 {
                    format!("{name} ({})", short_peer(peer))
                } else {
                    name.to_string()
                };
                (peer.to_string(), shown)
            })
            .collect()
    }

    pub fn get(&mut self, id: &str) -> Result<Playlist, StoreError> {
        if let Some(listed) = self.listed.get(id) {
            let dir = self.dir(id);
            match listing::read_cached(&dir, listed) {
                Some(cached) => return Ok(cached.shown()),
                // Read from the document below; the next clean stop writes a good cache.
                None => listing::forget(&dir),
            }
        }
        let mut playlist = self.entry(id)?.doc.read();
        playlist.id = id.to_string();
        Ok(playlist)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.playlists.contains_key(id)
            || self.listed.contains_key(id)
            || self.unreadable.contains_key(id)
    }

    /// Runs `edit` on the playlist's document and makes what it changed durable. When the
    /// edit or the write fails, the document is put back to its durable version, so memory
    /// never shows what the disk does not hold.
    fn change<T>(
        &mut self,
        id: &str,
        origin: Origin,
        received: Option<&[u8]>,
        edit: impl FnOnce(&mut PlaylistDoc) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.change_as(id, None, origin, received, edit)
    }

    /// [`Store::change`], our changes signed by `signer` instead of the playlist's key.
    fn change_as<T>(
        &mut self,
        id: &str,
        signer: Option<Keypair>,
        origin: Origin,
        received: Option<&[u8]>,
        edit: impl FnOnce(&mut PlaylistDoc) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.warm_up(id);
        if let Some(err) = self.unreadable_error(id) {
            return Err(err);
        }
        let dir = self.dir(id);
        let home_key = self.key_for(id).clone();
        let key = signer.unwrap_or_else(|| home_key.clone());
        let entry = self
            .playlists
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownPlaylist(id.to_string()))?;
        entry.last_used = std::time::Instant::now();
        if origin == Origin::Local && !entry.is_signed_by(&key) {
            entry.assign_peer(&key);
        }
        let before = entry.doc.version();
        if origin == Origin::Local && entry.doc.id() != id {
            return Err(StoreError::Damaged(format!(
                "playlist {id} is damaged: its history is missing, so it cannot be changed yet. A member's copy restores it at the next sync; `whatnext doctor` says more"
            )));
        }
        let was_incomplete = entry.incomplete;
        let was_damaged = entry.damaged;
        // Updates waiting for history live only in the log and in memory: keep them across
        // an undo. (Only incomplete playlists have any.)
        let pending = if was_incomplete {
            entry.doc.pending_updates().ok().flatten()
        } else {
            None
        };
        let result = edit(&mut entry.doc);
        entry.doc.commit();
        let written = result.and_then(|value| append_changes(entry, received).map(|()| value));
        match written {
            Ok(value) => {
                let unsigned = match origin {
                    Origin::Local => entry.sign_own(id, &key, &before).err(),
                    Origin::Remote => None,
                };
                if !entry.is_signed_by(&home_key) {
                    entry.assign_peer(&home_key);
                }
                // Nothing new (e.g. every update refused): the summary stands. Refreshing it
                // would count the tracks again, which after a refusal's undo reads every id.
                let unchanged =
                    entry.doc.version() == before && !was_incomplete && !entry.doc.has_pending();
                if !unchanged {
                    entry.refresh(id);
                }
                let restored = was_damaged && !entry.damaged;
                let due = restored
                    || entry.records >= COMPACT_EVERY_RECORDS
                    || entry.log.len() >= COMPACT_EVERY_BYTES;
                let compacted = if due { compact(entry, &dir) } else { Ok(()) };
                if restored {
                    tracing::warn!("playlist {id}: the missing history arrived; it is whole again");
                    self.note_restored(id, "the missing history arrived from a member");
                }
                if let Some(err) = unsigned {
                    tracing::error!(
                        "playlist {id}: a change was saved but could not be signed for the members: {err}"
                    );
                    self.add_problem(
                        id,
                        format!("a change was saved here but could not be signed for the other members ({err}); it reaches them once the owner's app vouches for it at its next start"),
                        None,
                    );
                }
                if let Err(err) = compacted {
                    tracing::warn!("could not compact playlist {id}: {err}");
                    self.add_problem(
                        id,
                        format!(
                            "its update log could not be folded into a snapshot ({err}); the log was kept and the change is saved in it"
                        ),
                        None,
                    );
                }
                Ok(value)
            }
            Err(err) => {
                if !entry.is_signed_by(&home_key) {
                    entry.assign_peer(&home_key);
                }
                // Undo only what the failed call did (a refused edit changed nothing).
                let dirty = entry.doc.version() != entry.saved
                    || (received.is_some()
                        && entry.doc.pending_updates().ok().flatten() != pending);
                if dirty {
                    match entry.doc.fork_at_version(&entry.saved, pending.as_deref()) {
                        Ok(doc) => {
                            doc.take_reads_from(&entry.doc);
                            entry.doc = doc;
                            entry.assign_peer(&home_key);
                            entry.refresh(id);
                        }
                        Err(undo) => {
                            // Memory cannot be trusted any more: stop using it until a restart
                            // reloads the playlist from disk.
                            let why = format!(
                                "a change could not be saved ({err}) nor undone in memory ({undo}); restart WhatNext to reload it from disk"
                            );
                            self.playlists.remove(id);
                            self.unreadable.insert(id.to_string(), why);
                        }
                    }
                }
                if matches!(err, StoreError::Io { .. }) {
                    tracing::error!("playlist {id}: a change could not be saved: {err}");
                    self.add_problem(
                        id,
                        format!(
                            "a change could not be saved ({err}) and was undone; nothing else changed. Fix the cause (disk full? file moved or made read-only?) and make the change again"
                        ),
                        None,
                    );
                }
                Err(err)
            }
        }
    }

    pub fn add_tracks(
        &mut self,
        id: &str,
        tracks: &[NewTrack],
        by: &Author,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.add_tracks_signed(id, tracks, by, None, now_ms)
    }

    /// [`Store::add_tracks`] on behalf of a guest of ours: signed with the guest's key,
    /// so every member sees (and checks) the guest as the author.
    pub fn add_tracks_for_guest(
        &mut self,
        id: &str,
        tracks: &[NewTrack],
        guest: &Author,
        key: &Keypair,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.add_tracks_signed(id, tracks, guest, Some(key.clone()), now_ms)
    }

    fn add_tracks_signed(
        &mut self,
        id: &str,
        tracks: &[NewTrack],
        by: &Author,
        signer: Option<Keypair>,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        if tracks.is_empty() {
            return Err(StoreError::Invalid("no tracks to add".into()));
        }
        self.change_as(id, signer, Origin::Local, None, |doc| {
            // In turns mode: only the member whose turn it is, within the turn's room.
            let facts = doc.session_facts();
            let turn = session::decide_add(&facts, &by.peer_id, tracks.len(), &|p| {
                doc.display_name_of(p)
            })?;
            let ids = doc.add_tracks(tracks, by, now_ms)?;
            if let Some(turn) = turn {
                doc.record_turn_adds(turn, &ids, &by.peer_id)?;
            }
            Ok(ids)
        })
    }

    pub fn move_track(
        &mut self,
        id: &str,
        track_id: &str,
        to: usize,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.change(id, Origin::Local, None, |doc| {
            doc.move_track(track_id, to, now_ms)
        })
    }

    /// Removes a track; `by` may remove its own tracks, the owner and co-hosts any.
    pub fn remove_track(
        &mut self,
        id: &str,
        track_id: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.change(id, Origin::Local, None, |doc| {
            let facts = doc.session_facts();
            let adders = doc.adders_of(track_id);
            session::decide_remove(&facts, &adders, by, &|p| doc.display_name_of(p))?;
            doc.remove_track(track_id, now_ms)
        })
    }

    /// The listening session of playlist `id` as `me` sees it with `online` members
    /// connected (counting me), at `now_ms`.
    pub fn session_view(
        &mut self,
        id: &str,
        me: &str,
        online: usize,
        now_ms: u64,
    ) -> Result<whatnext_protocol::listening::SessionView, StoreError> {
        let doc = &self.entry(id)?.doc;
        Ok(session::view(
            &doc.session_facts(),
            &doc.read(),
            me,
            online,
            now_ms,
        ))
    }

    /// The session's facts of playlist `id` (for the playback clock: who holds it, what
    /// plays, skip votes).
    pub fn session_facts(&mut self, id: &str) -> Result<session::SessionFacts, StoreError> {
        Ok(self.entry(id)?.doc.session_facts())
    }

    /// Ends turn `turn` of `holder`, who is offline (see
    /// [`PlaylistDoc::skip_turn`](crate::doc::PlaylistDoc::skip_turn)).
    pub fn skip_turn(&mut self, id: &str, turn: u64, holder: &str) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.skip_turn(turn, holder))
    }

    /// Does `action` in the session of playlist `id` as `actor`, if the session's rules let
    /// it; durable when this returns.
    pub fn session_act(
        &mut self,
        id: &str,
        action: &whatnext_protocol::listening::SessionAction,
        actor: &Author,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.session_act_signed(id, action, actor, None, now_ms)
    }

    /// [`Store::session_act`] on behalf of a guest of ours, signed with its key.
    pub fn session_act_for_guest(
        &mut self,
        id: &str,
        action: &whatnext_protocol::listening::SessionAction,
        guest: &Author,
        key: &Keypair,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.session_act_signed(id, action, guest, Some(key.clone()), now_ms)
    }

    fn session_act_signed(
        &mut self,
        id: &str,
        action: &whatnext_protocol::listening::SessionAction,
        actor: &Author,
        signer: Option<Keypair>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        // Up next ran dry and a fallback playlist is set: the next track comes from it.
        let from_fallback = match action {
            SessionAction::Next | SessionAction::Play { track_id: None } => {
                self.fallback_track(id, &actor.peer_id, now_ms)?
            }
            _ => None,
        };
        self.change_as(
            id,
            signer,
            Origin::Local,
            None,
            |doc| match &from_fallback {
                Some(track) => {
                    // Checked as the action itself first: only the holder of playback moves on.
                    doc.session_check(action, &actor.peer_id)?;
                    let added = doc.add_tracks(std::slice::from_ref(track), actor, now_ms)?;
                    let play = SessionAction::Play {
                        track_id: added.into_iter().next(),
                    };
                    doc.session_act(&play, actor, now_ms)
                }
                None => doc.session_act(action, actor, now_ms),
            },
        )
    }

    /// The track to play from the fallback playlist of `id` when its up next is empty: the
    /// first of the fallback's tracks not played in `id` yet (by title and artists).
    fn fallback_track(
        &mut self,
        id: &str,
        me: &str,
        now_ms: u64,
    ) -> Result<Option<NewTrack>, StoreError> {
        let doc = &self.entry(id)?.doc;
        let facts = doc.session_facts();
        let Some(other) = facts.fallback.clone().filter(|other| other != id) else {
            return Ok(None);
        };
        let playlist = doc.read();
        if !session::view(&facts, &playlist, me, 1, now_ms)
            .up_next
            .is_empty()
        {
            return Ok(None);
        }
        let Ok(fallback) = self.get(&other) else {
            return Ok(None); // not here (yet): playback stops as without a fallback
        };
        let heard: HashSet<(&str, &[String])> = playlist
            .tracks
            .iter()
            .map(|t| (t.title.as_str(), t.artists.as_slice()))
            .collect();
        Ok(fallback
            .tracks
            .iter()
            .find(|t| !heard.contains(&(t.title.as_str(), t.artists.as_slice())))
            .map(NewTrack::from))
    }

    pub fn rename(&mut self, id: &str, name: &str, now_ms: u64) -> Result<(), StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.rename(name, now_ms))
    }

    /// Moves the playlist to `store/trash/`; nothing is erased. Damaged and unreadable
    /// playlists can be moved there too.
    pub fn delete(&mut self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        if !self.contains(id) {
            return Err(StoreError::UnknownPlaylist(id.to_string()));
        }
        self.move_to_trash(id, now_ms)?;
        self.playlists.remove(id);
        self.listed.remove(id);
        self.unreadable.remove(id);
        Ok(())
    }

    fn move_to_trash(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        let trash = self.root.join("trash");
        fs::create_dir_all(&trash).map_err(StoreError::io("create", &trash))?;
        let from = self.dir(id);
        let to = trash.join(format!("{id}-{now_ms}"));
        fs::rename(&from, &to).map_err(StoreError::io("move to the trash", &from))?;
        sync_dir(&self.root);
        sync_dir(&trash);
        Ok(())
    }

    /// Version vector of a playlist, encoded, for sync.
    pub fn version(&mut self, id: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.entry(id)?.doc.version().encode())
    }

    /// The signed updates (encoded envelopes) the holder of `their_version` lacks.
    pub fn export_since(&mut self, id: &str, their_version: &[u8]) -> Result<Vec<u8>, StoreError> {
        let lacking = self.lacking_since(id, their_version)?;
        if lacking.is_empty() {
            return Ok(Vec::new());
        }
        Ok(encode_envelopes(&lacking))
    }

    /// What [`Self::export_since`] gives, in groups of whole envelopes (each encoded as
    /// such) of at most `group_bytes`, in order; an envelope larger than that is a group
    /// alone. Empty when nothing is lacking. For pushes: each group is one message.
    pub fn export_since_grouped(
        &mut self,
        id: &str,
        their_version: &[u8],
        group_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut groups = Vec::new();
        let mut group: Vec<Envelope> = Vec::new();
        let mut size = 0;
        for envelope in self.lacking_since(id, their_version)? {
            let one = encode_envelopes(std::slice::from_ref(&envelope)).len();
            if !group.is_empty() && size + one > group_bytes {
                groups.push(encode_envelopes(&group));
                group.clear();
                size = 0;
            }
            size += one;
            group.push(envelope);
        }
        if !group.is_empty() {
            groups.push(encode_envelopes(&group));
        }
        Ok(groups)
    }

    /// The signed envelopes the holder of `their_version` (encoded) lacks, in order.
    fn lacking_since(
        &mut self,
        id: &str,
        their_version: &[u8],
    ) -> Result<Vec<Envelope>, StoreError> {
        // An empty version is a peer that has nothing yet: it gets everything.
        let vv = if their_version.is_empty() {
            VersionVector::default()
        } else {
            VersionVector::decode(their_version)
                .map_err(|e| StoreError::Crdt(format!("bad version vector: {e}")))?
        };
        Ok(self.entry(id)?.signed.lacking(&vv))
    }

    /// Applies signed updates (encoded envelopes) from a member and makes them durable.
    /// Each envelope is checked first ([`crate::authority`]): one that is forged or goes
    /// beyond its author's rights is rejected whole — not applied, not kept, so never sent
    /// on — and reported in the result with who signed it. One that builds on changes not
    /// here yet waits (in memory) until they come.
    ///
    /// A playlist this store does not have yet is created from them (joining a shared
    /// playlist), provided they describe the playlist `id` completely. A damaged playlist
    /// is repaired this way: the missing history arrives, and the updates that waited for
    /// it apply.
    pub fn apply_remote(
        &mut self,
        id: &str,
        updates: &[u8],
        now_ms: u64,
    ) -> Result<Applied, StoreError> {
        let envelopes = decode_envelopes(updates).map_err(StoreError::Invalid)?;
        if !self.contains(id) {
            if !is_valid_id(id) {
                return Err(StoreError::Invalid(format!(
                    "{id:?} is not a valid playlist id"
                )));
            }
            let (peer, nonce) = self.fresh_peer(id);
            let mut doc = PlaylistDoc::empty();
            doc.set_peer(peer)?;
            let mut waiting = Vec::new();
            let mut strikes = Strikes::default();
            let (accepted, rejected) = receive_all(
                &mut doc,
                id,
                None,
                envelopes,
                &mut waiting,
                &mut strikes,
                now_ms,
            );
            if doc.id() != id {
                let why = rejected
                    .first()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                return Err(StoreError::Invalid(format!(
                    "the updates sent for playlist {id} do not describe it{why}"
                )));
            }
            if doc.has_pending() || !waiting.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "the updates sent for playlist {id} lack part of its history"
                )));
            }
            self.insert_new(id.to_string(), doc, nonce, Some(accepted))?;
            return Ok(Applied {
                changed: true,
                rejected,
            });
        }
        let before = self.entry(id)?.doc.version();
        let (mut waiting, mut strikes) = self
            .playlists
            .get_mut(id)
            .map(|entry| {
                (
                    std::mem::take(&mut entry.waiting),
                    std::mem::take(&mut entry.strikes),
                )
            })
            .unwrap_or_default();
        let dir = self.dir(id);
        let received = self.change(id, Origin::Remote, None, |doc| {
            Ok(receive_all(
                doc,
                id,
                Some(&dir),
                envelopes,
                &mut waiting,
                &mut strikes,
                now_ms,
            ))
        });
        if let Some(entry) = self.playlists.get_mut(id) {
            entry.waiting = waiting;
            entry.strikes = strikes;
        }
        let (accepted, rejected) = received?;
        let entry = self
            .playlists
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownPlaylist(id.to_string()))?;
        let mut unsent = None;
        for envelope in accepted {
            if let Err(err) = entry.signed.push(envelope) {
                unsent = Some(err);
            }
        }
        let changed = entry.doc.version() != before;
        if let Some(err) = unsent {
            tracing::warn!(
                "playlist {id}: changes from members were saved but could not be kept for sending on: {err}"
            );
        }
        Ok(Applied { changed, rejected })
    }

    /// Records a member of a shared playlist (peer id → display name) in the document.
    pub fn add_member(&mut self, id: &str, member: &Author) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.add_member(member))
    }

    /// Lets `guest` into the session of playlist `id` as our guest (`host`: the identity we
    /// are in it). Signed by us: we vouch for the guest.
    pub fn add_guest(&mut self, id: &str, guest: &Author, host: &str) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.add_guest(guest, host))
    }

    /// Who let `guest` into the session of playlist `id`, if it is a guest.
    pub fn guest_host(&mut self, id: &str, guest: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .entry(id)?
            .doc
            .session_facts()
            .guests
            .get(guest)
            .cloned())
    }

    /// Records our new display name in playlist `id` where it names us (owner or member):
    /// members see the new name on everything we did.
    pub fn rename_me(&mut self, id: &str, me: &Author) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.rename_me(me))
    }

    /// Records where `peer` can be dialed, for the other members.
    pub fn set_member_addrs(
        &mut self,
        id: &str,
        peer: &str,
        addrs: &[String],
    ) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| {
            doc.set_member_addrs(peer, addrs)
        })
    }

    /// Moves what `from` owns and added in the playlist to `to` (see
    /// [`PlaylistDoc::reattribute`](crate::doc::PlaylistDoc::reattribute)).
    ///
    /// Signed by `from` when it is our main identity: handing the playlist on is the old
    /// owner's right, and members check it.
    pub fn reattribute(&mut self, id: &str, from: &str, to: &Author) -> Result<bool, StoreError> {
        let signer = (self.main_key.public().to_peer_id().to_string() == from)
            .then(|| self.main_key.clone());
        self.change_as(id, signer, Origin::Local, None, |doc| {
            doc.reattribute(from, to)
        })
    }

    /// Whether a track of playlist `id` has the content `blake3` (members may fetch only
    /// such audio from each other).
    pub fn has_content(&mut self, id: &str, blake3: &str) -> Result<bool, StoreError> {
        Ok(self.entry(id)?.doc.has_content(blake3))
    }

    /// The peer id of the playlist's owner; reads no tracks.
    pub fn owner_of(&mut self, id: &str) -> Result<String, StoreError> {
        Ok(self.entry(id)?.doc.session_facts().owner)
    }

    /// Whether `peer` owns or collaborates on the playlist; reads no tracks.
    pub fn is_member(&mut self, id: &str, peer: &str) -> Result<bool, StoreError> {
        Ok(self.entry(id)?.doc.is_member(peer))
    }

    pub fn member_addrs(&mut self, id: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        Ok(self.entry(id)?.doc.member_addrs())
    }

    /// Removes a member from the document's member list.
    pub fn remove_member(&mut self, id: &str, peer_id: &str) -> Result<bool, StoreError> {
        self.change(id, Origin::Local, None, |doc| doc.remove_member(peer_id))
    }

    /// Folds every playlist's log into its snapshot (e.g. on a clean shutdown), following
    /// the log rule: damaged playlists keep their logs.
    pub fn compact_all(&mut self) -> Result<(), StoreError> {
        let root = self.root.clone();
        let mut failed = None;
        for (id, entry) in &mut self.playlists {
            let dir = root.join(id);
            if !entry.log.is_empty()
                && let Err(err) = compact(entry, &dir)
            {
                tracing::warn!("could not compact playlist {id}: {err}");
                failed = Some(err);
            }
            let clean = entry.log.is_empty()
                && !entry.incomplete
                && !entry.damaged
                && entry.waiting.is_empty()
                && !entry.doc.has_pending();
            if clean && !listing::is_current(&dir, id) {
                let cached = cache_of(id, entry);
                if let Err(err) = listing::write(&dir, &cached, &entry.summary, &entry.people) {
                    // Only a cache: the next start reads the document instead.
                    tracing::warn!("could not write the listing of playlist {id}: {err}");
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Lets go of the documents of playlists not used for `idle`: each is folded into its
    /// snapshot, its listing written, and it is known from that listing again (reading
    /// it needs no document; changing it reads the document back). What a playlist in use
    /// holds — a decoded 10,000-track document is megabytes — is then not held for a
    /// playlist nobody looks at. Playlists missing history, or holding updates that wait
    /// for it, stay as they are (those updates live only in memory and the log). Returns
    /// how many were let go.
    pub fn rest_idle(&mut self, idle: std::time::Duration) -> usize {
        let root = self.root.clone();
        let mut rested = Vec::new();
        for (id, entry) in &mut self.playlists {
            let clean = !entry.incomplete
                && !entry.damaged
                && entry.waiting.is_empty()
                && !entry.doc.has_pending();
            if !clean || entry.last_used.elapsed() < idle {
                continue;
            }
            let dir = root.join(id);
            if !entry.log.is_empty()
                && let Err(err) = compact(entry, &dir)
            {
                tracing::warn!("could not compact idle playlist {id}: {err}");
                continue;
            }
            if !entry.log.is_empty() {
                continue;
            }
            let listed = match listing::read_listing(&dir, id) {
                Some(listed) => Some(listed),
                None => {
                    let cached = cache_of(id, entry);
                    match listing::write(&dir, &cached, &entry.summary, &entry.people) {
                        Ok(()) => listing::read_listing(&dir, id),
                        Err(err) => {
                            tracing::warn!("could not write the listing of playlist {id}: {err}");
                            None
                        }
                    }
                }
            };
            if let Some(listed) = listed {
                rested.push((id.clone(), listed));
            }
        }
        let count = rested.len();
        for (id, listed) in rested {
            self.playlists.remove(&id);
            self.listed.insert(id, listed);
        }
        count
    }

    #[cfg(test)]
    pub(crate) fn signed_index(&self, id: &str) -> Option<crate::signed_log::Index> {
        self.playlists.get(id).map(|entry| entry.signed.index())
    }

    #[cfg(test)]
    pub(crate) fn is_listed_only(&self, id: &str) -> bool {
        self.listed.contains_key(id) && !self.playlists.contains_key(id)
    }

    #[cfg(test)]
    pub(crate) fn log_len(&self, id: &str) -> u64 {
        self.playlists.get(id).map_or(0, |e| e.log.len())
    }
}

/// Refused updates per author, for one playlist. Refusing an update its author had no right
/// to make costs the receiver the whole document read back (the update is undone, see
/// [`read_back`]) and its checks: 6 ms at 1,000 tracks, 46 ms at 10,000 and 0.54 s at
/// 100,000 (release, this project's 2-core machines; with a fork, where the copy read back
/// does not fit, 0.24 s and 4.6 s). So an author refused
/// [`MAX_REFUSED`] times, or whose refusals took [`REFUSAL_BUDGET`] of the receiver's
/// time, within [`REFUSAL_WINDOW_MS`] of the first, has every update refused unread until
/// that window ends. An honest app is refused only when its update raced a rule change,
/// and then accepted in the state its author saw (authority's second check), so only a
/// modified client meets the bar.
#[derive(Debug, Default)]
pub(crate) struct Strikes {
    /// Author → (when the window of their first refusal began, refusals in it, the time
    /// they took).
    by_author: std::collections::HashMap<String, (u64, u32, std::time::Duration)>,
}

const MAX_REFUSED: u32 = 16;
const REFUSAL_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);
const REFUSAL_WINDOW_MS: u64 = 60_000;

impl Strikes {
    /// Why `author`'s updates are refused unread at `now_ms`, if they are.
    pub(crate) fn barred(&self, author: &str, now_ms: u64) -> Option<String> {
        let (since, count, took) = *self.by_author.get(author)?;
        let left = since
            .saturating_add(REFUSAL_WINDOW_MS)
            .checked_sub(now_ms)?;
        (left > 0 && (count >= MAX_REFUSED || took >= REFUSAL_BUDGET)).then(|| {
            format!(
                "{count} of its author's updates were refused within a minute (checking them took {:.1} s); theirs are ignored for {} s more",
                took.as_secs_f64(),
                left.div_ceil(1000)
            )
        })
    }

    /// One more refusal of `author`'s at `now`, which took `took` to decide.
    pub(crate) fn count(&mut self, author: &str, now: u64, took: std::time::Duration) {
        let (since, count, spent) =
            self.by_author
                .entry(author.to_string())
                .or_insert((now, 0, std::time::Duration::ZERO));
        if now.saturating_sub(*since) >= REFUSAL_WINDOW_MS {
            (*since, *count, *spent) = (now, 0, std::time::Duration::ZERO);
        }
        *count = count.saturating_add(1);
        *spent = spent.saturating_add(took);
    }
}

/// Receives `envelopes` into `doc` in order, retrying those that wait for history after
/// each one that applied (and those left `waiting` from before). Returns the envelopes
/// applied, in the order applied (which is causal), and those rejected; each rejection
/// counts against its author in `strikes`. `dir`: the playlist's files, which hold `doc`
/// as it is before these envelopes (a refused one is undone by reading them back).
fn receive_all(
    doc: &mut PlaylistDoc,
    id: &str,
    dir: Option<&Path>,
    envelopes: Vec<Envelope>,
    waiting: &mut Vec<Envelope>,
    strikes: &mut Strikes,
    now_ms: u64,
) -> (Vec<Envelope>, Vec<Rejection>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut queue: Vec<Envelope> = std::mem::take(waiting);
    queue.extend(envelopes);
    loop {
        let mut progress = false;
        let mut still = Vec::new();
        for envelope in queue {
            let started = std::time::Instant::now();
            let barred = |author: &str| strikes.barred(author, now_ms);
            let copy_before = || dir.and_then(|dir| read_back(dir, &accepted));
            match receive_unless_barred(doc, id, &envelope, barred, copy_before) {
                Ok(Received::Applied(_)) => {
                    accepted.push(envelope);
                    progress = true;
                }
                Ok(Received::AlreadyHere) => {}
                Ok(Received::Waiting) => still.push(envelope),
                Err(rejection) => {
                    if let Some(author) = &rejection.author {
                        strikes.count(author, now_ms, started.elapsed());
                    }
                    rejected.push(rejection);
                }
            }
        }
        queue = still;
        if !progress || queue.is_empty() {
            break;
        }
    }
    queue.truncate(MAX_WAITING);
    *waiting = queue;
    (accepted, rejected)
}

/// The playlist in `dir` as its files hold it (snapshot, then update log), with `since`
/// imported after: what a refused update is undone to, read back rather than forked (see
/// [`receive_unless_barred`]; at 10,000 tracks a fork took 0.2 s). None when the files
/// cannot be read whole.
fn read_back(dir: &Path, since: &[Envelope]) -> Option<PlaylistDoc> {
    let doc = PlaylistDoc::empty();
    match fs::read(dir.join("snapshot.loro")) {
        Ok(bytes) => doc.import(&decode_snapshot(&bytes).ok()?).ok()?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    let log = crate::log::decode_records(&fs::read(dir.join("updates.log")).ok()?);
    if !log.damaged.is_empty() || log.torn.is_some() {
        return None;
    }
    for record in log
        .records
        .iter()
        .map(Vec::as_slice)
        .chain(since.iter().map(|e| e.updates.as_slice()))
    {
        doc.import(record).ok()?;
    }
    Some(doc)
}

/// `name` without a " (copy)" or " (copy N)" that [`Store::copy_name`] put at its end.
pub(crate) fn strip_copy_suffix(name: &str) -> &str {
    let Some(rest) = name.strip_suffix(')') else {
        return name;
    };
    if let Some(original) = rest.strip_suffix(" (copy") {
        return original;
    }
    match rest.rsplit_once(" (copy ") {
        Some((original, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => original,
        _ => name,
    }
}

/// A new document holding an exported playlist, after checking it, named `name`.
fn build_imported(
    id: &str,
    playlist: &Playlist,
    name: &str,
    peer: u64,
) -> Result<PlaylistDoc, StoreError> {
    validate_import(playlist)?;
    let doc = PlaylistDoc::create_as(
        Some(peer),
        id,
        name,
        &playlist.description,
        &playlist.owner,
        playlist.created_at,
    )?;
    doc.set_imported(playlist)?;
    Ok(doc)
}

/// Appends what changed since the last durable version (and `received` as it came, when
/// part of it waits for missing history: that part exists nowhere else).
fn append_changes(entry: &mut Entry, received: Option<&[u8]>) -> Result<(), StoreError> {
    let version = entry.doc.version();
    if version != entry.saved {
        // One record of overlap: repeat the previous record's changes, so that a single
        // damaged record in the middle of the log loses nothing (imports are idempotent).
        let update = entry.doc.export_updates_since(&entry.before_last)?;
        entry.log.append(&update)?;
        entry.before_last = std::mem::replace(&mut entry.saved, version);
        entry.records += 1;
    }
    if let Some(received) = received
        && entry.doc.has_pending()
    {
        entry.log.append(received)?;
        entry.records += 1;
    }
    Ok(())
}

/// Snapshot files start with this, then the LZ4 block (size-prefixed). Loro's own encoding
/// leaves repeated strings (peer ids, artists) uncompressed: LZ4 halves a 10k-track file.
/// Loro checksums its snapshot, so damage under the LZ4 layer is caught when importing.
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

/// Folds the log into a snapshot, following the log rule (module documentation): nothing
/// happens while history is missing; the log is emptied only after the new snapshot was
/// checked to hold every version the log held.
fn compact(entry: &mut Entry, dir: &Path) -> Result<(), StoreError> {
    if entry.incomplete || entry.doc.has_pending() || entry.doc.version() != entry.saved {
        return Ok(());
    }
    write_snapshot_checked(dir, &entry.doc, &entry.saved)?;
    entry.log.reset()?;
    entry.records = 0;
    entry.before_last = entry.saved.clone();
    Ok(())
}

/// What the listing's cache keeps of playlist `id` (see [`listing::Cached`]).
fn cache_of(id: &str, entry: &Entry) -> listing::Cached {
    let (mut every_element, hidden) = entry.doc.read_with_hidden();
    every_element.id = id.to_string();
    listing::Cached {
        every_element,
        hidden,
        signed: entry.signed.index(),
    }
}

struct Loaded {
    entry: Entry,
    torn_tail: Option<PathBuf>,
    problems: Vec<StoreProblem>,
}

/// The newest file in `dir` whose name starts with one of `prefixes`.
fn newest_aside(dir: &Path, prefixes: &[&str]) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| prefixes.iter().any(|pre| n.starts_with(pre)))
        })
        .collect();
    found.sort();
    found.pop()
}

/// A directory holding nothing but an empty log (or nothing): a creation interrupted
/// before its snapshot was written.
fn is_interrupted_creation(dir: &Path) -> Result<bool, StoreError> {
    let entries = fs::read_dir(dir).map_err(StoreError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        let name = entry.file_name();
        let empty_log = (name == "updates.log" || name == crate::signed_log::FILE)
            && entry
                .metadata()
                .map_err(StoreError::io("read", &entry.path()))?
                .len()
                == 0;
        let leftover_tmp = name == "snapshot.loro.tmp";
        if !empty_log && !leftover_tmp {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Loads the playlist in `dir`. `signed_index`: what the listing's cache knows of its signed
/// log (see [`crate::signed_log::Index`]).
fn load_entry(
    dir: &Path,
    id: &str,
    now_ms: u64,
    signed_index: Option<&crate::signed_log::Index>,
) -> Result<Option<Loaded>, StoreError> {
    if is_interrupted_creation(dir)? {
        tracing::info!(
            "{} holds no playlist (its creation was interrupted); moved to the trash",
            dir.display()
        );
        return Ok(None);
    }
    let mut doc = PlaylistDoc::empty();
    let snapshot = dir.join("snapshot.loro");
    let mut damaged_snapshot = None;
    match fs::read(&snapshot) {
        Ok(bytes) => {
            if let Err(err) = decode_snapshot(&bytes).and_then(|raw| doc.import(&raw)) {
                doc = PlaylistDoc::empty();
                let aside = dir.join(format!("snapshot.loro.damaged-{now_ms}"));
                fs::rename(&snapshot, &aside)
                    .map_err(StoreError::io("move aside the damaged snapshot", &snapshot))?;
                sync_dir(dir);
                tracing::error!(
                    "{}: the snapshot is damaged ({err}); moved to {}",
                    dir.display(),
                    aside.display()
                );
                damaged_snapshot = Some((aside, err));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("read", &snapshot)(e)),
    }
    let (log, recovered) = UpdateLog::open(&dir.join("updates.log"), now_ms)?;
    let Recovered {
        records,
        torn_tail,
        damage,
    } = recovered;
    let mut before_last = doc.version();
    let mut unapplied = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if i + 1 == records.len() {
            before_last = doc.version();
        }
        if let Err(err) = doc.import(record) {
            unapplied.push(format!("record {}: {err}", i + 1));
        }
    }
    let saved = doc.version();
    let incomplete = is_incomplete(id, &doc);
    let mut problems = Vec::new();
    if let Some((aside, err)) = damaged_snapshot {
        let what = if incomplete {
            format!("its snapshot was damaged ({err}) and was moved aside; {WAITING}")
        } else {
            format!(
                "its snapshot was damaged ({err}) and was moved aside; its update log held all of it, so nothing was lost"
            )
        };
        problems.push(problem(id, what, Some(&aside)));
    }
    if let Some(damage) = damage {
        let ranges: Vec<String> = damage
            .skipped
            .iter()
            .map(|r| format!("bytes {}..{}", r.start, r.end))
            .collect();
        let mut what = format!(
            "damaged bytes in its update log ({}) were skipped and every valid record after them was read",
            ranges.join(", ")
        );
        if !damage.followed_by_record {
            what.push_str(
                "; the damage was in the log's last record, whose change is lost unless a member has it",
            );
        } else if !incomplete {
            what.push_str("; the record after the damage repeats its changes, so nothing was lost");
        }
        if incomplete {
            what.push_str(&format!("; {WAITING}"));
        }
        problems.push(problem(id, what, Some(&damage.kept_at)));
    }
    if !unapplied.is_empty() {
        let aside = dir.join(format!("updates.log.unapplied-{now_ms}"));
        let log_path = dir.join("updates.log");
        fs::copy(&log_path, &aside).map_err(StoreError::io("copy aside", &log_path))?;
        File::open(&aside)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io("sync", &aside))?;
        problems.push(problem(
            id,
            format!(
                "records of its update log could not be applied ({}); a copy of the log is kept",
                unapplied.join("; ")
            ),
            Some(&aside),
        ));
    }
    // Updates from a member that wait for history another member has not sent yet are
    // no damage; a document without its metadata, or damage found now or before, is.
    let earlier = newest_aside(dir, &["snapshot.loro.damaged-", "updates.log.damaged-"]);
    let damaged = incomplete && (!problems.is_empty() || doc.id() != id || earlier.is_some());
    if damaged && problems.is_empty() {
        // Damage found on an earlier start, not repaired yet.
        problems.push(problem(
            id,
            format!("part of its history is still missing after earlier damage; {WAITING}"),
            earlier.as_deref(),
        ));
    }
    let (signed, unreadable_envelopes) = SignedLog::open(dir, now_ms, signed_index)?;
    if unreadable_envelopes > 0 {
        tracing::warn!(
            "{}: {unreadable_envelopes} signed updates could not be read; members get those changes from each other",
            dir.display()
        );
    }
    let summary = summary_of(id, &doc, damaged);
    Ok(Some(Loaded {
        entry: Entry {
            summary,
            people: doc.people(),
            doc,
            log,
            saved,
            before_last,
            records: records.len(),
            incomplete,
            damaged,
            signed,
            waiting: Vec::new(),
            strikes: Strikes::default(),
            signer: String::new(),
            nonce: 0,
            last_used: std::time::Instant::now(),
        },
        torn_tail,
        problems,
    }))
}

/// Milliseconds since the Unix epoch, for names of files set aside.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
