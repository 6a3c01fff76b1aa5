//! One playlist as a Loro document.
//!
//! Layout (root containers):
//! * `meta` (map): id, name, description, owner_peer, owner_name, queue_mode, created_at,
//!   updated_at.
//! * `collaborators` (map): peer id → display name (concurrent joins merge).
//! * `tags` (map): tag → true (a set).
//! * `tracks` (movable list) of maps: id, title, artists (list value), album, duration_ms,
//!   uri, added_by_peer, added_by_name, added_at. A movable list, so concurrent moves of one
//!   track never duplicate it.
//! * `votes`, `comments` (maps): reserved for the queue modes and track comments.

use loro::{
    ExportMode, LoroDoc, LoroList, LoroMap, LoroMovableList, LoroValue, ValueOrContainer,
    VersionVector,
};

use std::{collections::HashSet, str::FromStr as _};

use whatnext_protocol::playlist::{
    Author, Content, MAX_ARTISTS, NewTrack, Playlist, PlaylistSummary, QueueMode, Track,
    clean_display_name,
};

use crate::{
    error::StoreError,
    followed_tracks::{FollowedTracks, Slot, track_map},
    kept_track::KeptTrack,
};

pub struct PlaylistDoc {
    pub(crate) doc: LoroDoc,
    /// The track list as last read, for the count of tracks shown and for reads (see
    /// [`FollowedTracks`]).
    followed: FollowedTracks,
}

pub(crate) fn new_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

pub fn new_playlist_id() -> String {
    new_id(16)
}

/// Longest accepted text field, so one edit cannot bloat every replica.
pub const MAX_TEXT: usize = 4096;

/// Most tracks, tags and collaborators an imported playlist may bring.
pub const MAX_IMPORT_TRACKS: usize = 100_000;
pub const MAX_IMPORT_ENTRIES: usize = 1_000;

/// Playlist and track ids: 1–64 ASCII letters, digits, `-` or `_` (they name directories and
/// appear in URLs, so nothing that could be a path).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether Loro can apply changes to `container`: a root's name is not empty and holds no
/// '/' or '\0' (`loro_common::check_root_container_name`; mergeable roots, which only Loro's
/// own API makes, we never use).
fn acceptable_container(container: &loro::ContainerID) -> bool {
    match container {
        loro::ContainerID::Root { name, .. } => {
            !name.is_empty() && !name.contains('/') && !name.contains('\0')
        }
        loro::ContainerID::Normal { .. } => true,
    }
}

/// Refuses a peer id that is not a libp2p peer id, naming the field it came from.
fn check_peer_id(field: &str, peer_id: &str) -> Result<(), StoreError> {
    libp2p_identity::PeerId::from_str(peer_id)
        .map(|_| ())
        .map_err(|e| {
            StoreError::Invalid(format!(
                "{field} has the peer id {peer_id:?}, which is not a libp2p peer id ({e})"
            ))
        })
}

/// Checks everything an imported playlist brings before any of it enters a document: ids
/// (unique, and safe as names), peer ids (parseable), sizes.
pub fn validate_import(playlist: &Playlist) -> Result<(), StoreError> {
    if playlist.tracks.len() > MAX_IMPORT_TRACKS {
        return Err(StoreError::Invalid(format!(
            "the playlist has {} tracks; an import may bring at most {MAX_IMPORT_TRACKS}",
            playlist.tracks.len()
        )));
    }
    for (what, n) in [
        ("tags", playlist.tags.len()),
        ("collaborators", playlist.collaborators.len()),
    ] {
        if n > MAX_IMPORT_ENTRIES {
            return Err(StoreError::Invalid(format!(
                "the playlist has {n} {what}; an import may bring at most {MAX_IMPORT_ENTRIES}"
            )));
        }
    }
    check_peer_id("the owner", &playlist.owner.peer_id)?;
    clean_name("owner's display name", &playlist.owner.display_name)?;
    for member in &playlist.collaborators {
        check_peer_id("a collaborator", &member.peer_id)?;
        clean_name("collaborator's display name", &member.display_name)?;
    }
    let mut seen = HashSet::with_capacity(playlist.tracks.len());
    for (i, track) in playlist.tracks.iter().enumerate() {
        let n = i + 1;
        if !is_valid_id(&track.id) {
            return Err(StoreError::Invalid(format!(
                "track {n} has the id {:?}; a track id is 1 to 64 letters, digits, '-' or '_'",
                track.id
            )));
        }
        if !seen.insert(track.id.as_str()) {
            return Err(StoreError::Invalid(format!(
                "the track id {:?} appears more than once (track {n} repeats it); every track needs its own id",
                track.id
            )));
        }
        check_peer_id(
            &format!("track {n} ({:?}) added_by", track.id),
            &track.added_by.peer_id,
        )?;
        clean_name("added_by display name", &track.added_by.display_name)?;
    }
    Ok(())
}

/// A person's name, cleaned as [`clean_display_name`] says, then checked as [`clean`].
pub(crate) fn clean_name(field: &str, name: &str) -> Result<String, StoreError> {
    clean(field, &clean_display_name(name), false)
}

/// A track's artists: each one checked, at most [`MAX_ARTISTS`].
fn clean_artists(artists: &[String]) -> Result<Vec<String>, StoreError> {
    if artists.len() > MAX_ARTISTS {
        return Err(StoreError::Invalid(format!(
            "a track names {} artists; the limit is {MAX_ARTISTS}",
            artists.len()
        )));
    }
    artists.iter().map(|a| clean("artist", a, true)).collect()
}

pub(crate) fn clean(field: &str, text: &str, required: bool) -> Result<String, StoreError> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the {field} must not be empty"
        )));
    }
    if text.len() > MAX_TEXT {
        return Err(StoreError::Invalid(format!(
            "the {field} is {} bytes long; the limit is {MAX_TEXT}",
            text.len()
        )));
    }
    Ok(text.to_string())
}

/// The elements of `list`, in list order.
fn list_items(list: &LoroMovableList) -> Vec<ValueOrContainer> {
    let mut items = Vec::with_capacity(list.len());
    list.for_each(|item| items.push(item));
    items
}

/// The container of every element of `list` that is a map (a track), in list order; None
/// for other elements. Read from the list's own value, which names its elements'
/// containers: asking for the elements themselves would make Loro decode every track's
/// state (~4 MB at 10,000 tracks).
fn list_maps(list: &LoroMovableList) -> Vec<Option<loro::ContainerID>> {
    match list.get_value() {
        LoroValue::List(items) => items
            .iter()
            .map(|item| match item {
                LoroValue::Container(id) if id.container_type() == loro::ContainerType::Map => {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The indexes of `elements` (each an index and its container, if it is one) in the order
/// Loro stores their states. Loro keeps each container's state under a key whose counter is
/// little-endian, so a long list read in list order jumps between its storage blocks, and
/// once they exceed its 4 MB block cache each element decodes a block again. In key order
/// each block is decoded once: reading 100,000 tracks after an edit took 2.5 s in list
/// order, 1.8 s in key order.
fn key_order(elements: impl IntoIterator<Item = (usize, Option<loro::ContainerID>)>) -> Vec<usize> {
    let mut order: Vec<(Vec<u8>, usize)> = elements
        .into_iter()
        .map(|(at, container)| (container.map(|c| c.to_bytes()).unwrap_or_default(), at))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, at)| at).collect()
}

/// Every element of `list` as `read` reads it, in list order, called in Loro's storage
/// order (see [`key_order`]).
fn read_in_storage_order<T: Clone>(
    list: &LoroMovableList,
    mut read: impl FnMut(&ValueOrContainer) -> T,
) -> Vec<T> {
    let items = list_items(list);
    let containers = items.iter().enumerate().map(|(at, item)| match item {
        ValueOrContainer::Container(container) => (at, Some(loro::ContainerTrait::id(container))),
        ValueOrContainer::Value(_) => (at, None),
    });
    let mut read_out = vec![None; items.len()];
    for at in key_order(containers) {
        read_out[at] = Some(read(&items[at]));
    }
    read_out.into_iter().flatten().collect()
}

#[cfg(test)]
thread_local! {
    /// Tracks this thread's reads read from their maps (tests check what was not read).
    pub(crate) static TRACKS_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A track map in the list as the rules read it: its id and who added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackEntry {
    /// The track's map.
    pub map: loro::ContainerID,
    pub id: Option<String>,
    pub adder: Option<String>,
}

impl TrackEntry {
    /// The id and adder of track map `map`, as the document holds them now (for a map taken
    /// out of the list too: Loro keeps a deleted container's last state).
    pub(crate) fn of(map: &LoroMap) -> Self {
        TrackEntry {
            map: loro::ContainerTrait::id(map),
            id: field_text(map, "id"),
            adder: field_text(map, "added_by_peer"),
        }
    }
}

/// The containers of the track maps in `list` (no field is read).
fn track_containers(list: &LoroMovableList) -> HashSet<loro::ContainerID> {
    list_items(list).iter().filter_map(track_map).collect()
}

/// The text under `key` in the map `track`, as its decoded value would hold it: a string,
/// or a container's deep value (a text is a string) where a modified client put one.
fn field_text(track: &LoroMap, key: &str) -> Option<String> {
    match track.get(key)? {
        ValueOrContainer::Value(value) => value.as_string().map(|s| s.to_string()),
        container => container
            .get_deep_value()
            .as_string()
            .map(|s| s.to_string()),
    }
}

/// The strings in a list value (nothing when it is no list); other items are skipped.
fn strings(list: Option<&LoroValue>) -> Vec<String> {
    list.and_then(|l| l.as_list())
        .map(|l| {
            l.iter()
                .filter_map(|a| a.as_string().map(|s| s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn get_str(map: &LoroValue, key: &str) -> Option<String> {
    map.as_map()?.get(key)?.as_string().map(|s| s.to_string())
}

pub(crate) fn get_u64(map: &LoroValue, key: &str) -> Option<u64> {
    map.as_map()?
        .get(key)?
        .as_i64()
        .and_then(|v| u64::try_from(*v).ok())
}

impl PlaylistDoc {
    pub(crate) fn meta(&self) -> LoroMap {
        self.doc.get_map("meta")
    }
    pub(crate) fn tracks(&self) -> LoroMovableList {
        self.doc.get_movable_list("tracks")
    }
    /// Ids of removed tracks. Loro's MovableList lets a concurrent move bring a deleted
    /// element back (the move wins); a track listed here stays hidden whatever the list says.
    fn removed(&self) -> LoroMap {
        self.doc.get_map("removed_tracks")
    }

    /// The removed ids, read once: asking the map for each track of a long list cost up to
    /// 22 ms at 100,000 tracks (this, under 1 ms while few were removed).
    fn removed_ids(&self) -> HashSet<String> {
        self.removed().keys().map(|key| key.to_string()).collect()
    }

    /// One text field of every element of the track list, in list order: what the element's
    /// decoded value would hold under `key` (see [`field_text`]). Reads only that field, in
    /// Loro's storage order (see [`key_order`]); still ~0.05 s for 10,000 tracks, so edits
    /// and the count take the ids from [`Self::with_ids`], and this reads them whole only
    /// to check it (debug builds) and for other fields.
    fn track_field(&self, key: &str) -> Vec<Option<String>> {
        read_in_storage_order(&self.tracks(), |item| match item {
            ValueOrContainer::Container(loro::Container::Map(track)) => field_text(track, key),
            _ => None,
        })
    }

    /// How many tracks are shown (see [`Self::visible_among`]). The listing's count is
    /// refreshed after every change, so once a track was removed the ids come from
    /// [`FollowedTracks`], which reads only new and changed ones.
    fn visible_count(&self) -> usize {
        let removed = self.removed_ids();
        if removed.is_empty() {
            return self.tracks().len();
        }
        self.with_ids(|ids| {
            ids.filter(|id| id.is_none_or(|id| !removed.contains(id)))
                .count()
        })
    }

    /// The ids of the track list, in list order (see [`Self::track_field`]), given to
    /// `with`; from [`FollowedTracks`], which reads only new and changed ones after the
    /// first time.
    fn with_ids<T>(&self, with: impl FnOnce(&mut dyn Iterator<Item = Option<&str>>) -> T) -> T {
        self.with_followed(
            |slot| slot.stale,
            |slot, track| slot.id = field_text(track, "id"),
            |slots| {
                let mut ids = slots.iter().map(|slot| slot.id.as_deref());
                if cfg!(debug_assertions) {
                    // Every use in a debug build checks them against the ids read whole.
                    let followed: Vec<Option<String>> =
                        ids.map(|id| id.map(str::to_string)).collect();
                    assert_eq!(
                        followed,
                        self.track_field("id"),
                        "the followed ids disagree with the list's"
                    );
                    with(&mut followed.iter().map(|id| id.as_deref()))
                } else {
                    with(&mut ids)
                }
            },
        )
    }

    /// The containers of the track maps in the list (in the document's current state,
    /// checked out or not), from [`FollowedTracks`]: no element is read.
    pub(crate) fn track_maps(&self) -> HashSet<loro::ContainerID> {
        let maps: HashSet<loro::ContainerID> = self.track_map_list().into_iter().collect();
        if cfg!(debug_assertions) {
            // Every use in a debug build checks them against the list read whole.
            assert_eq!(
                maps,
                track_containers(&self.tracks()),
                "the followed track maps disagree with the list's"
            );
        }
        maps
    }

    /// The containers of the track maps in the list, in list order, from
    /// [`FollowedTracks`] (~1 ms at 100,000 tracks: no element is read).
    pub(crate) fn track_map_list(&self) -> Vec<loro::ContainerID> {
        self.with_followed(
            |_| false,
            |_, _| {},
            |slots| slots.iter().filter_map(|slot| slot.track.clone()).collect(),
        )
    }

    /// Every track of the list, in list order (those with a removed id too), from
    /// [`FollowedTracks`]: only new and changed tracks are read, the rest is as last read.
    fn followed_tracks(&self) -> Vec<Track> {
        self.with_followed(
            |slot| slot.read.is_none(),
            |slot, track| {
                let (id, read) = read_track(track);
                slot.id = id;
                slot.read = KeptTrack::new(&read);
                #[cfg(test)]
                TRACKS_READ.with(|count| count.set(count.get() + 1));
            },
            |slots| {
                let list = self.tracks();
                slots
                    .iter_mut()
                    .enumerate()
                    .map(|(at, slot)| {
                        if let Some(track) = slot.read.as_ref().and_then(KeptTrack::track) {
                            return track;
                        }
                        // Elements that are not maps never change: read once, by place.
                        let track = list
                            .get(at)
                            .map_or_else(|| track_from(&LoroValue::Null), |item| track_of(&item));
                        slot.read = KeptTrack::new(&track);
                        track
                    })
                    .collect()
            },
        )
    }

    /// The track list as [`FollowedTracks`] follows it: the track maps for which `wanted`
    /// says so are read by `read` (in Loro's storage order, see [`key_order`]), then all
    /// are given to `with`.
    fn with_followed<T>(
        &self,
        wanted: impl Fn(&Slot) -> bool,
        read: impl Fn(&mut Slot, &LoroMap),
        with: impl FnOnce(&mut [Slot]) -> T,
    ) -> T {
        let list = self.tracks();
        // Loro tells what changed when a change is committed: none may be left open here.
        self.doc.commit();
        self.followed.with(
            &self.doc,
            &list,
            || list_maps(&list).into_iter().map(Slot::unread).collect(),
            |slots| {
                let due = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| slot.track.is_some() && wanted(slot))
                    .map(|(at, slot)| (at, slot.track.clone()));
                for at in key_order(due) {
                    let slot = &mut slots[at];
                    if let Some(loro::Container::Map(track)) =
                        slot.track.clone().and_then(|id| self.doc.get_container(id))
                    {
                        read(slot, &track);
                    } else {
                        slot.id = None;
                    }
                    slot.stale = false;
                }
                with(slots)
            },
        )
    }

    /// The ids of the track list, in list order (see [`Self::with_ids`]).
    fn ids(&self) -> Vec<Option<String>> {
        self.with_ids(|ids| ids.map(|id| id.map(str::to_string)).collect())
    }

    /// This document, with what reads it needs.
    pub(crate) fn wrap(doc: LoroDoc) -> Self {
        PlaylistDoc {
            doc,
            followed: FollowedTracks::default(),
        }
    }

    /// The indexes of the tracks shown among those with `ids` (in list order): those whose
    /// id was not removed. Loro's MovableList lets a concurrent move bring a deleted element
    /// back, so a removed id hides its track whatever the list says.
    fn visible_among(&self, ids: &[Option<String>]) -> Vec<usize> {
        let removed = self.removed_ids();
        ids.iter()
            .enumerate()
            .filter(|(_, id)| id.as_ref().is_none_or(|id| !removed.contains(id)))
            .map(|(i, _)| i)
            .collect()
    }

    /// A new, empty playlist owned by `owner`.
    pub fn create(
        id: &str,
        name: &str,
        description: &str,
        owner: &Author,
        now: u64,
    ) -> Result<Self, StoreError> {
        Self::create_as(None, id, name, description, owner, now)
    }

    /// [`PlaylistDoc::create`], its changes made under Loro peer id `peer` when given.
    pub fn create_as(
        peer: Option<u64>,
        id: &str,
        name: &str,
        description: &str,
        owner: &Author,
        now: u64,
    ) -> Result<Self, StoreError> {
        let name = clean("name", name, true)?;
        let description = clean("description", description, false)?;
        let doc = PlaylistDoc::wrap(LoroDoc::new());
        if let Some(peer) = peer {
            doc.set_peer(peer)?;
        }
        let meta = doc.meta();
        meta.insert("id", id)?;
        meta.insert("name", name)?;
        meta.insert("description", description)?;
        meta.insert("owner_peer", owner.peer_id.as_str())?;
        meta.insert(
            "owner_name",
            clean_name("display name", &owner.display_name)?,
        )?;
        meta.insert("queue_mode", QueueMode::FreeForAll.as_str())?;
        meta.insert("created_at", now as i64)?;
        meta.insert("updated_at", now as i64)?;
        doc.doc.commit();
        Ok(doc)
    }

    /// A document from stored or received bytes (snapshot or updates).
    pub fn empty() -> Self {
        PlaylistDoc::wrap(LoroDoc::new())
    }

    pub fn import(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.doc.import(bytes)?;
        Ok(())
    }

    /// Imports updates from someone else. Loro 1.17 panics — and then, its locks poisoned,
    /// aborts the process — applying changes to a root container named with '/' or '\0'
    /// (which its own API lets a client make) when they come from peers new to the document
    /// and touch only root maps' plain values (its "isolated root batch" path). Updates all
    /// from new peers therefore go into the history first (the document detached) and reach
    /// its state only once every container they touch is one Loro can hold; others import
    /// as usual (a detached import and the re-attach cost more: 100 ms instead of 4 on a
    /// 10,000-track playlist). A batch that builds on older history is no safer: Loro reads
    /// the root names before it looks at the batch's dependencies (tried: a bad root made on
    /// top of the playlist still panicked the import). On an error the history may hold the
    /// refused changes: the caller puts the document back (`fork_at_version`).
    /// `meta` is what `LoroDoc::decode_import_blob_meta` read of `bytes`.
    pub fn import_untrusted(
        &self,
        bytes: &[u8],
        meta: &loro::ImportBlobMetadata,
    ) -> Result<(), StoreError> {
        let before = self.doc.oplog_vv();
        let all_new = meta
            .partial_end_vv
            .iter()
            .all(|(peer, _)| before.get(peer).copied().unwrap_or(0) == 0);
        if !all_new {
            return self.import(bytes);
        }
        self.doc.detach();
        if let Err(err) = self.doc.import(bytes) {
            self.doc.attach();
            return Err(err.into());
        }
        let after = self.doc.oplog_vv();
        for (peer, end) in after.iter() {
            let start = before.get(peer).copied().unwrap_or(0);
            if *end <= start {
                continue;
            }
            let span = loro::ID::new(*peer, start);
            let touched = self
                .doc
                .get_changed_containers_in(span, (*end - start) as usize);
            if let Some(bad) = touched.iter().find(|c| !acceptable_container(c)) {
                return Err(StoreError::Invalid(format!(
                    "the updates name a container Loro cannot hold ({bad})"
                )));
            }
        }
        self.doc.attach();
        Ok(())
    }

    /// Ends the current transaction, so [`PlaylistDoc::version`] counts every op.
    pub fn commit(&self) {
        self.doc.commit();
    }

    /// Imported updates waiting for history this document lacks (Loro keeps them pending
    /// and applies them when the missing changes arrive), encoded; None when nothing waits.
    pub fn pending_updates(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.doc
            .export_pending_updates()
            .map_err(|e| StoreError::Crdt(e.to_string()))
    }

    /// Whether some imported updates wait for missing history. An error counts as yes.
    pub fn has_pending(&self) -> bool {
        !matches!(self.pending_updates(), Ok(None))
    }

    /// A copy of this document as it was at version `vv` (which must be one it passed
    /// through), with `pending` re-imported. O(size of the document): for undoing a change
    /// that could not be made durable, not for every edit.
    pub fn fork_at_version(
        &self,
        vv: &VersionVector,
        pending: Option<&[u8]>,
    ) -> Result<PlaylistDoc, StoreError> {
        let frontiers = self.doc.vv_to_frontiers(vv);
        let doc = if frontiers.is_empty() {
            LoroDoc::new()
        } else {
            self.doc.fork_at(&frontiers)?
        };
        if let Some(pending) = pending {
            doc.import(pending)?;
        }
        Ok(PlaylistDoc::wrap(doc))
    }

    pub fn version(&self) -> VersionVector {
        self.doc.oplog_vv()
    }

    /// Makes this document's next changes carry the Loro peer id `peer` (see
    /// `whatnext_protocol::signed::loro_peer_of`).
    pub fn set_peer(&self, peer: u64) -> Result<(), StoreError> {
        self.doc.commit();
        self.doc.set_peer_id(peer)?;
        Ok(())
    }

    pub fn peer(&self) -> u64 {
        self.doc.peer_id()
    }

    /// The changes Loro peer `peer` made from counter `from` to `to`, as updates.
    pub fn export_span(&self, peer: u64, from: i32, to: i32) -> Result<Vec<u8>, StoreError> {
        self.doc
            .export(ExportMode::updates_in_range(vec![loro::IdSpan::new(
                peer, from, to,
            )]))
            .map_err(|e| StoreError::Crdt(e.to_string()))
    }

    pub fn export_updates_since(&self, since: &VersionVector) -> Result<Vec<u8>, StoreError> {
        self.doc
            .export(ExportMode::updates(since))
            .map_err(|e| StoreError::Crdt(e.to_string()))
    }

    pub fn export_snapshot(&self) -> Result<Vec<u8>, StoreError> {
        self.doc
            .export(ExportMode::Snapshot)
            .map_err(|e| StoreError::Crdt(e.to_string()))
    }

    pub fn id(&self) -> String {
        get_str(&self.meta().get_value(), "id").unwrap_or_default()
    }

    pub(crate) fn touch(&self, now: u64) -> Result<(), StoreError> {
        self.meta().insert("updated_at", now as i64)?;
        Ok(())
    }

    pub fn add_tracks(
        &self,
        tracks: &[NewTrack],
        by: &Author,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut checked = Vec::with_capacity(tracks.len());
        for track in tracks {
            let title = clean("title", &track.title, true)?;
            let artists = clean_artists(&track.artists)?;
            let album = track
                .album
                .as_deref()
                .map(|a| clean("album", a, false))
                .transpose()?;
            let uri = track
                .uri
                .as_deref()
                .map(|u| clean("uri", u, false))
                .transpose()?;
            if let Some(content) = &track.content {
                check_content(content)?;
            }
            checked.push((
                title,
                artists,
                album.filter(|a| !a.is_empty()),
                uri.filter(|u| !u.is_empty()),
                track.duration_ms,
                track.content.as_ref(),
            ));
        }
        let list = self.tracks();
        let mut ids = Vec::with_capacity(checked.len());
        for (title, artists, album, uri, duration_ms, content) in checked {
            let id = new_id(8);
            let map = list.push_container(LoroMap::new())?;
            map.insert("id", id.as_str())?;
            map.insert("title", title)?;
            let artist_list = map.insert_container("artists", LoroList::new())?;
            for artist in artists {
                artist_list.push(artist)?;
            }
            if let Some(album) = album {
                map.insert("album", album)?;
            }
            if let Some(duration) = duration_ms {
                map.insert("duration_ms", i64::try_from(duration).unwrap_or(i64::MAX))?;
            }
            if let Some(uri) = uri {
                map.insert("uri", uri)?;
            }
            if let Some(content) = content {
                insert_content(&map, content)?;
            }
            map.insert("added_by_peer", by.peer_id.as_str())?;
            map.insert(
                "added_by_name",
                clean_name("display name", &by.display_name)?,
            )?;
            map.insert("added_at", now as i64)?;
            ids.push(id);
        }
        self.touch(now)?;
        self.doc.commit();
        Ok(ids)
    }

    /// The list index of the shown track `track_id`, among the list's `ids` (read once).
    fn index_of(&self, ids: &[Option<String>], track_id: &str) -> Result<usize, StoreError> {
        let removed = self.removed().get(track_id).is_some();
        ids.iter()
            .position(|id| !removed && id.as_deref() == Some(track_id))
            .ok_or_else(|| StoreError::UnknownTrack {
                playlist: self.id(),
                track: track_id.to_string(),
            })
    }

    /// Who added the tracks shown with id `track_id`: one adder per track that has it (a
    /// modified client can give its own track another's id), none when no shown track has
    /// it.
    pub fn adders_of(&self, track_id: &str) -> Vec<String> {
        if self.removed().get(track_id).is_some() {
            return Vec::new();
        }
        self.tracks_with_ids(&HashSet::from([track_id]))
            .into_iter()
            .map(|track| track.adder.unwrap_or_default())
            .collect()
    }

    /// The track maps in the list whose id is one of `ids`, in list order, with their
    /// adders. Found through the followed ids ([`Self::with_ids`]), so only those tracks
    /// are read: reading one field of every track costs ~0.3-0.9 s at 100,000. In the state
    /// the document is in, checked out or not (Loro tells a checkout as it tells an edit).
    pub(crate) fn tracks_with_ids(&self, ids: &HashSet<&str>) -> Vec<TrackEntry> {
        if ids.is_empty() {
            return Vec::new();
        }
        let at: Vec<usize> = self.with_ids(|list_ids| {
            list_ids
                .enumerate()
                .filter(|(_, id)| id.is_some_and(|id| ids.contains(id)))
                .map(|(at, _)| at)
                .collect()
        });
        let tracks = self.tracks();
        at.into_iter()
            .filter_map(|at| match tracks.get(at)? {
                ValueOrContainer::Container(loro::Container::Map(track)) => {
                    Some(TrackEntry::of(&track))
                }
                _ => None,
            })
            .collect()
    }

    /// Moves a track to position `to` among the shown tracks.
    pub fn move_track(&self, track_id: &str, to: usize, now: u64) -> Result<(), StoreError> {
        // The ids are read once for both.
        let ids = self.ids();
        let from = self.index_of(&ids, track_id)?;
        let visible = self.visible_among(&ids);
        let Some(&target) = visible.get(to) else {
            return Err(StoreError::IndexOutOfRange {
                index: to,
                len: visible.len(),
            });
        };
        if from != target {
            self.tracks().mov(from, target)?;
            self.touch(now)?;
            self.doc.commit();
        }
        Ok(())
    }

    pub fn remove_track(&self, track_id: &str, now: u64) -> Result<(), StoreError> {
        let at = self.index_of(&self.ids(), track_id)?;
        self.tracks().delete(at, 1)?;
        self.removed().insert(track_id, now as i64)?;
        self.touch(now)?;
        self.doc.commit();
        Ok(())
    }

    pub fn rename(&self, name: &str, now: u64) -> Result<(), StoreError> {
        let name = clean("name", name, true)?;
        self.meta().insert("name", name)?;
        self.touch(now)?;
        self.doc.commit();
        Ok(())
    }

    /// Everyone the playlist names: the owner, then the members, with their names.
    pub fn people(&self) -> Vec<Author> {
        let meta = self.meta().get_value();
        let owner = get_str(&meta, "owner_peer").map(|peer_id| Author {
            peer_id,
            display_name: get_str(&meta, "owner_name").unwrap_or_default(),
        });
        let members = self.doc.get_map("collaborators").get_value();
        let members = members.as_map().into_iter().flat_map(|m| {
            m.iter().map(|(peer, name)| Author {
                peer_id: peer.clone(),
                display_name: name.as_string().map(|s| s.to_string()).unwrap_or_default(),
            })
        });
        owner.into_iter().chain(members).collect()
    }

    /// The display name the playlist records for `peer` (its peer id when it has none).
    pub fn display_name_of(&self, peer: &str) -> String {
        let meta = self.meta().get_value();
        if get_str(&meta, "owner_peer").as_deref() == Some(peer)
            && let Some(name) = get_str(&meta, "owner_name").filter(|n| !n.is_empty())
        {
            return name;
        }
        get_str(&self.doc.get_map("collaborators").get_value(), peer)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| peer.to_string())
    }

    /// Records `me`'s new display name where the playlist names me: as its owner, or in its
    /// members. Returns whether the document changed (not when it does not name me).
    pub fn rename_me(&self, me: &Author) -> Result<bool, StoreError> {
        let name = clean_name("display name", &me.display_name)?;
        let meta = self.meta();
        let value = meta.get_value();
        let mut changed = false;
        if get_str(&value, "owner_peer").as_deref() == Some(me.peer_id.as_str())
            && get_str(&value, "owner_name").as_deref() != Some(name.as_str())
        {
            meta.insert("owner_name", name.as_str())?;
            changed = true;
        }
        let members = self.doc.get_map("collaborators");
        if let Some(known) = get_str(&members.get_value(), &me.peer_id)
            && known != name
        {
            members.insert(&me.peer_id, name.as_str())?;
            changed = true;
        }
        if changed {
            self.doc.commit();
        }
        Ok(changed)
    }

    /// Adds or renames a collaborator, and puts it in the session's turn order (after the
    /// owner and those who joined before). Returns whether the document changed.
    pub fn add_member(&self, member: &Author) -> Result<bool, StoreError> {
        let owner = get_str(&self.meta().get_value(), "owner_peer").unwrap_or_default();
        let mut joined = false;
        if !owner.is_empty() {
            joined |= self.join_turn_order(&owner)?;
        }
        joined |= self.join_turn_order(&member.peer_id)?;
        let members = self.doc.get_map("collaborators");
        let current = members.get_value();
        let known = current
            .as_map()
            .and_then(|m| m.get(&member.peer_id))
            .and_then(|v| v.as_string().map(|s| s.to_string()));
        if known.as_deref() == Some(member.display_name.as_str()) {
            if joined {
                self.doc.commit();
            }
            return Ok(joined);
        }
        members.insert(
            &member.peer_id,
            clean_name("display name", &member.display_name)?,
        )?;
        self.doc.commit();
        Ok(true)
    }

    pub fn remove_member(&self, peer_id: &str) -> Result<bool, StoreError> {
        let members = self.doc.get_map("collaborators");
        if members.get(peer_id).is_none() {
            return Ok(false);
        }
        members.delete(peer_id)?;
        self.doc.commit();
        Ok(true)
    }

    /// Records where a member can be dialed, so members can connect to each other.
    pub fn set_member_addrs(&self, peer_id: &str, addrs: &[String]) -> Result<bool, StoreError> {
        let map = self.doc.get_map("member_addrs");
        let current = strings(map.get_value().as_map().and_then(|m| m.get(peer_id)));
        if current == addrs {
            return Ok(false);
        }
        let values: Vec<LoroValue> = addrs
            .iter()
            .take(16)
            .map(|a| LoroValue::from(a.as_str()))
            .collect();
        map.insert(peer_id, LoroValue::List(values.into()))?;
        self.doc.commit();
        Ok(true)
    }

    /// Gives what `from` owns, added and announced in this playlist to `to`: the owner, the
    /// tracks' `added_by`, the collaborator entry and the member addresses. Used when a
    /// playlist moves to an isolated identity, so members do not see the main peer id in
    /// its current state. Returns whether the document changed.
    pub fn reattribute(&self, from: &str, to: &Author) -> Result<bool, StoreError> {
        if from == to.peer_id {
            return Ok(false);
        }
        let mut changed = false;
        let meta = self.meta();
        if get_str(&meta.get_value(), "owner_peer").as_deref() == Some(from) {
            meta.insert("owner_peer", to.peer_id.as_str())?;
            meta.insert("owner_name", clean_name("display name", &to.display_name)?)?;
            changed = true;
        }
        let list = self.tracks();
        for index in 0..list.len() {
            let Some(ValueOrContainer::Container(loro::Container::Map(map))) = list.get(index)
            else {
                continue;
            };
            if get_str(&map.get_value(), "added_by_peer").as_deref() == Some(from) {
                map.insert("added_by_peer", to.peer_id.as_str())?;
                map.insert(
                    "added_by_name",
                    clean_name("display name", &to.display_name)?,
                )?;
                changed = true;
            }
        }
        let collaborators = self.doc.get_map("collaborators");
        if collaborators.get(from).is_some() {
            collaborators.delete(from)?;
            collaborators.insert(&to.peer_id, clean_name("display name", &to.display_name)?)?;
            changed = true;
        }
        let addrs = self.doc.get_map("member_addrs");
        if addrs.get(from).is_some() {
            addrs.delete(from)?;
            changed = true;
        }
        if changed {
            self.doc.commit();
        }
        Ok(changed)
    }

    /// Whether a shown track has the content `blake3`.
    pub fn has_content(&self, blake3: &str) -> bool {
        let contents = self.track_field("content_blake3");
        if !contents.iter().any(|c| c.as_deref() == Some(blake3)) {
            return false;
        }
        let ids = self.track_field("id");
        self.visible_among(&ids)
            .into_iter()
            .any(|i| contents[i].as_deref() == Some(blake3))
    }

    /// The owner and the collaborators (reads the small maps only).
    pub fn member_ids(&self) -> HashSet<String> {
        let mut ids: HashSet<String> = self
            .doc
            .get_map("collaborators")
            .keys()
            .map(|k| k.to_string())
            .collect();
        if let Some(owner) = get_str(&self.meta().get_value(), "owner_peer") {
            ids.insert(owner);
        }
        ids
    }

    /// Whether `peer` is the owner or a collaborator (reads the small maps only).
    pub fn is_member(&self, peer: &str) -> bool {
        get_str(&self.meta().get_value(), "owner_peer").is_some_and(|owner| owner == peer)
            || self.doc.get_map("collaborators").get(peer).is_some()
    }

    /// Every member's dialable addresses, by peer id.
    pub fn member_addrs(&self) -> Vec<(String, Vec<String>)> {
        let value = self.doc.get_map("member_addrs").get_value();
        let Some(map) = value.as_map() else {
            return Vec::new();
        };
        map.iter()
            .map(|(peer, addrs)| (peer.clone(), strings(Some(addrs))))
            .collect()
    }

    /// Sets the fields an import brings that `create` does not. Refuses (changing nothing)
    /// what [`validate_import`] refuses.
    pub fn set_imported(&self, playlist: &Playlist) -> Result<(), StoreError> {
        validate_import(playlist)?;
        let meta = self.meta();
        meta.insert("queue_mode", playlist.queue_mode.as_str())?;
        meta.insert("created_at", playlist.created_at as i64)?;
        meta.insert("updated_at", playlist.updated_at as i64)?;
        let collaborators = self.doc.get_map("collaborators");
        for member in &playlist.collaborators {
            collaborators.insert(
                &member.peer_id,
                clean_name("collaborator's display name", &member.display_name)?,
            )?;
        }
        let tags = self.doc.get_map("tags");
        for tag in &playlist.tags {
            tags.insert(&clean("tag", tag, true)?, true)?;
        }
        let list = self.tracks();
        for track in &playlist.tracks {
            let map = list.push_container(LoroMap::new())?;
            map.insert("id", track.id.as_str())?;
            map.insert("title", clean("title", &track.title, true)?)?;
            let artists = map.insert_container("artists", LoroList::new())?;
            for artist in clean_artists(&track.artists)? {
                artists.push(artist)?;
            }
            if let Some(album) = &track.album {
                map.insert("album", clean("album", album, false)?)?;
            }
            if let Some(duration) = track.duration_ms {
                map.insert("duration_ms", i64::try_from(duration).unwrap_or(i64::MAX))?;
            }
            if let Some(content) = &track.content {
                insert_content(&map, content)?;
            }
            if let Some(uri) = &track.uri {
                map.insert("uri", clean("uri", uri, false)?)?;
            }
            map.insert("added_by_peer", track.added_by.peer_id.as_str())?;
            map.insert(
                "added_by_name",
                clean_name("added_by display name", &track.added_by.display_name)?,
            )?;
            map.insert("added_at", track.added_at as i64)?;
        }
        self.doc.commit();
        Ok(())
    }

    /// The whole playlist as plain values.
    pub fn read(&self) -> Playlist {
        let removed = self.removed_ids();
        let mut playlist = self.read_every_element();
        if !removed.is_empty() {
            playlist.tracks.retain(|t| !removed.contains(&t.id));
        }
        playlist
    }

    /// The whole playlist as [`Self::read`] gives it, except that its tracks are every
    /// element of the track list, those a removed id hides too; and the removed ids that
    /// hide some. What the listing's cache keeps: a document loaded later starts its reads
    /// from there ([`Self::follow_from`]).
    pub(crate) fn read_with_hidden(&self) -> (Playlist, Vec<String>) {
        let removed = self.removed_ids();
        let playlist = self.read_every_element();
        let hidden: std::collections::BTreeSet<&str> = playlist
            .tracks
            .iter()
            .filter(|t| removed.contains(&t.id))
            .map(|t| t.id.as_str())
            .collect();
        let hidden = hidden.into_iter().map(str::to_string).collect();
        (playlist, hidden)
    }

    /// Takes the reads of the track list from `tracks`: every element of the list, in
    /// list order, as [`Self::read_with_hidden`] read them from this document in its
    /// current version (kept in the listing's cache). The first read after a load then
    /// reads only what changed since, not every track: ~80 ms at 10,000 tracks. False (and
    /// nothing taken) when they cannot be this list's: another number of elements.
    pub(crate) fn follow_from(&self, tracks: Vec<Track>) -> bool {
        let list = self.tracks();
        self.doc.commit();
        let items = list_maps(&list);
        if items.len() != tracks.len() {
            return false;
        }
        let slots = items
            .into_iter()
            .zip(tracks)
            .map(|(container, track)| {
                // A track without an id reads as "" whether its map has an empty id or
                // none: which one is read again when asked.
                let id = (container.is_some() && !track.id.is_empty()).then(|| track.id.clone());
                Slot {
                    stale: container.is_some() && id.is_none(),
                    track: container,
                    id,
                    read: KeptTrack::new(&track),
                }
            })
            .collect();
        self.followed.start_from(&self.doc, &list, slots);
        true
    }

    /// Takes over what `other` — this document at another version, e.g. the one an update
    /// was undone from — read of tracks that have not changed since: the copy a refusal
    /// puts back then does not read every track again (~70 ms at 10,000 tracks).
    pub(crate) fn take_reads_from(&self, other: &PlaylistDoc) {
        let mut unchanged = other.followed.take_unchanged();
        if unchanged.is_empty() {
            return;
        }
        let list = self.tracks();
        self.doc.commit();
        let slots = list_maps(&list)
            .into_iter()
            .map(|track| match track {
                Some(track) => unchanged
                    .remove(&track)
                    .unwrap_or_else(|| Slot::unread(Some(track))),
                None => Slot::unread(None),
            })
            .collect();
        self.followed.start_from(&self.doc, &list, slots);
    }

    /// [`Self::read`] before the tracks with a removed id are left out.
    fn read_every_element(&self) -> Playlist {
        let meta = self.meta().get_value();
        let tracks = self.followed_tracks();
        if cfg!(debug_assertions) {
            // Every read in a debug build checks them against the tracks read whole.
            assert_eq!(
                tracks,
                self.tracks_read_whole(),
                "the followed tracks disagree with the list's"
            );
        }
        let members = |name: &str| -> Vec<(String, LoroValue)> {
            let value = self.doc.get_map(name).get_value();
            let mut entries: Vec<(String, LoroValue)> = value
                .as_map()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
        };
        Playlist {
            id: get_str(&meta, "id").unwrap_or_default(),
            name: get_str(&meta, "name").unwrap_or_default(),
            description: get_str(&meta, "description").unwrap_or_default(),
            owner: Author {
                peer_id: get_str(&meta, "owner_peer").unwrap_or_default(),
                display_name: get_str(&meta, "owner_name").unwrap_or_default(),
            },
            collaborators: members("collaborators")
                .into_iter()
                .map(|(peer_id, name)| Author {
                    peer_id,
                    display_name: name.as_string().map(|s| s.to_string()).unwrap_or_default(),
                })
                .collect(),
            tags: members("tags").into_iter().map(|(tag, _)| tag).collect(),
            queue_mode: get_str(&meta, "queue_mode")
                .and_then(|m| QueueMode::parse(&m))
                .unwrap_or_default(),
            created_at: get_u64(&meta, "created_at").unwrap_or_default(),
            updated_at: get_u64(&meta, "updated_at").unwrap_or_default(),
            tracks,
        }
    }

    /// Every track of the list, in list order, each read from the document (in Loro's
    /// storage order, as [`key_order`] explains).
    fn tracks_read_whole(&self) -> Vec<Track> {
        read_in_storage_order(&self.tracks(), track_of)
    }

    /// The list entry: reads the metadata and the track count only, never the tracks, so
    /// listing stays cheap however long the playlists are.
    pub fn summary(&self) -> PlaylistSummary {
        let meta = self.meta().get_value();
        PlaylistSummary {
            id: get_str(&meta, "id").unwrap_or_default(),
            name: get_str(&meta, "name").unwrap_or_default(),
            track_count: self.visible_count(),
            updated_at: get_u64(&meta, "updated_at").unwrap_or_default(),
            damaged: false,
        }
    }
}

/// A track's fields as its map holds them, before they are checked and converted: filled
/// from a decoded map value or straight from the map's container, one conversion for both.
#[derive(Default)]
struct TrackFields {
    id: Option<LoroValue>,
    title: Option<LoroValue>,
    artists: Option<LoroValue>,
    album: Option<LoroValue>,
    duration_ms: Option<LoroValue>,
    uri: Option<LoroValue>,
    added_by_peer: Option<LoroValue>,
    added_by_name: Option<LoroValue>,
    added_at: Option<LoroValue>,
    content_blake3: Option<LoroValue>,
    content_size: Option<LoroValue>,
    content_mime: Option<LoroValue>,
}

impl TrackFields {
    /// Keeps `value` if `key` is a track field; other keys are not read.
    fn set(&mut self, key: &str, value: LoroValue) {
        let slot = match key {
            "id" => &mut self.id,
            "title" => &mut self.title,
            "artists" => &mut self.artists,
            "album" => &mut self.album,
            "duration_ms" => &mut self.duration_ms,
            "uri" => &mut self.uri,
            "added_by_peer" => &mut self.added_by_peer,
            "added_by_name" => &mut self.added_by_name,
            "added_at" => &mut self.added_at,
            "content_blake3" => &mut self.content_blake3,
            "content_size" => &mut self.content_size,
            "content_mime" => &mut self.content_mime,
            _ => return,
        };
        *slot = Some(value);
    }

    fn track(self) -> Track {
        fn text(value: Option<LoroValue>) -> Option<String> {
            value?.as_string().map(|s| s.to_string())
        }
        fn count(value: Option<LoroValue>) -> Option<u64> {
            value?.as_i64().and_then(|v| u64::try_from(*v).ok())
        }
        let artists = strings(self.artists.as_ref());
        Track {
            id: text(self.id).unwrap_or_default(),
            title: text(self.title).unwrap_or_default(),
            artists,
            album: text(self.album),
            duration_ms: count(self.duration_ms),
            uri: text(self.uri),
            added_by: Author {
                peer_id: text(self.added_by_peer).unwrap_or_default(),
                display_name: text(self.added_by_name).unwrap_or_default(),
            },
            added_at: count(self.added_at).unwrap_or_default(),
            content: match (text(self.content_blake3), count(self.content_size)) {
                (Some(blake3), Some(size)) if Content::is_valid_id(&blake3) => Some(Content {
                    blake3,
                    size,
                    mime: text(self.content_mime).unwrap_or_default(),
                }),
                _ => None,
            },
        }
    }
}

/// The track a decoded element of the track list stands for (defaults where it is no map).
pub(crate) fn track_from(value: &LoroValue) -> Track {
    let mut fields = TrackFields::default();
    if let Some(map) = value.as_map() {
        for (key, value) in map.iter() {
            fields.set(key, value.clone());
        }
    }
    fields.track()
}

/// The track an element of the track list stands for, read from its map's container
/// without decoding the whole map into a value first: building (and then dropping) every
/// track's map value was most of a read. A read of 10,000 tracks after an edit took
/// 118 ms and takes 76 ms; of 100,000, 1.38 s and 1.0 s (release, `whatnext-bench growth`).
/// Reads after that one read only what changed (see [`FollowedTracks`]).
fn track_of(item: &ValueOrContainer) -> Track {
    match item {
        ValueOrContainer::Container(loro::Container::Map(map)) => read_track(map).1,
        other => track_from(&other.get_deep_value()),
    }
}

/// A track map read whole: its id (as [`field_text`] reads it) and the track.
fn read_track(map: &LoroMap) -> (Option<String>, Track) {
    let mut fields = TrackFields::default();
    let mut id = None;
    map.for_each(|key, value| {
        let value = match value {
            ValueOrContainer::Value(value) => value,
            // A container where a field belongs (a modified client): its deep value, as a
            // decoded map would hold it.
            container => container.get_deep_value(),
        };
        if key == "id" {
            id = value.as_string().map(|s| s.to_string());
        }
        fields.set(key, value);
    });
    (id, fields.track())
}

/// Refuses content that does not name its bytes properly.
pub(crate) fn check_content(content: &Content) -> Result<(), StoreError> {
    if !Content::is_valid_id(&content.blake3) {
        return Err(StoreError::Invalid(format!(
            "{:?} is not a BLAKE3 content id (64 lowercase hex digits)",
            content.blake3
        )));
    }
    clean("content type", &content.mime, false)?;
    Ok(())
}

/// Writes `content` into a track's map.
fn insert_content(map: &LoroMap, content: &Content) -> Result<(), StoreError> {
    check_content(content)?;
    map.insert("content_blake3", content.blake3.as_str())?;
    map.insert(
        "content_size",
        i64::try_from(content.size).unwrap_or(i64::MAX),
    )?;
    map.insert("content_mime", content.mime.trim())?;
    Ok(())
}
