//! Who may write what, checked by every receiver against the author of each signed update.
//!
//! A member's app refuses locally what the session's rules forbid ([`crate::session::decide`]),
//! but a modified client skips that. So every receiver checks every [`Envelope`] it is sent:
//! the signature names the author ([`whatnext_protocol::signed`]); the changes must all be
//! the author's own (made under the Loro peer id derived from its key); and what they do must
//! be within the author's rights — the mode, roles, playback, out-of-turn adds, removals of
//! others' tracks, facts written in another member's name. An envelope that fails is
//! rejected whole: never applied (undone if it was), never stored, so never forwarded.
//!
//! **Which state the rules are read in.** First the receiver's own state before the update.
//! Honest members can be refused there only when the update was concurrent with a change of
//! the rules (a mode switch, a removal, the turn moving on) that its author had not seen, so
//! a refusal is checked again in the state the author saw — the document at the update's
//! causal dependencies — and accepted if it was allowed there. A hostile update fails both.

use std::{
    cell::OnceCell,
    collections::{HashMap, HashSet},
};

use loro::{
    ContainerID, Frontiers, IdSpan, JsonChange, JsonListOp, JsonMapOp, JsonMovableListOp,
    JsonOpContent, LoroDoc, LoroValue, VersionVector,
};
use whatnext_protocol::{
    listening::SessionMode,
    signed::{Envelope, EnvelopeKind},
};

use crate::{
    doc::{PlaylistDoc, TrackEntry, get_str},
    session::SessionFacts,
};

/// What a receiver did with an envelope it believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Applied; the version it brings the document to.
    Applied(VersionVector),
    /// Its changes were here already.
    AlreadyHere,
    /// It builds on changes not here yet: kept aside until they come.
    Waiting,
}

/// An envelope refused, with who signed it (when the signature held) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub author: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.author {
            Some(author) => write!(
                f,
                "an update signed by {author} was rejected: {}",
                self.reason
            ),
            None => write!(f, "an update was rejected: {}", self.reason),
        }
    }
}

fn reject(author: Option<&str>, reason: impl Into<String>) -> Rejection {
    Rejection {
        author: author.map(str::to_string),
        reason: reason.into(),
    }
}

/// Checks `envelope` (for playlist `session`) and applies it to `doc` when it is allowed.
/// A refused envelope leaves `doc` as it was (it may be replaced by an equal copy: callers
/// re-assign their Loro peer id after a rejection).
pub fn receive(
    doc: &mut PlaylistDoc,
    session: &str,
    envelope: &Envelope,
) -> Result<Received, Rejection> {
    receive_unless_barred(doc, session, envelope, |_| None, || None)
}

/// [`receive`], but an envelope whose (verified) author `barred` gives a reason for is
/// refused for it before its changes touch the document: a refusal after they were applied
/// costs a copy of the whole document, which an author whose updates keep being refused
/// must not be able to make the receiver pay for again and again.
///
/// `copy_before`, when it can, gives a copy of `doc` as it is now, before the envelope,
/// made some cheaper way than Loro's fork (e.g. read back from disk): a refusal then costs
/// that instead. A copy at another version is not used.
pub fn receive_unless_barred(
    doc: &mut PlaylistDoc,
    session: &str,
    envelope: &Envelope,
    barred: impl Fn(&str) -> Option<String>,
    copy_before: impl FnOnce() -> Option<PlaylistDoc>,
) -> Result<Received, Rejection> {
    let (author, key) = envelope
        .verify(session)
        .map_err(|e| reject(None, e.to_string()))?;
    let author = author.to_string();
    let who = Some(author.as_str());
    if let Some(why) = barred(&author) {
        return Err(reject(who, why));
    }
    let meta = LoroDoc::decode_import_blob_meta(&envelope.updates, true)
        .map_err(|e| reject(who, format!("its content is not Loro updates ({e})")))?;
    let span = match envelope.kind {
        EnvelopeKind::Changes => {
            let peer = whatnext_protocol::signed::loro_peer_of(&key, envelope.nonce);
            let foreign = meta
                .partial_end_vv
                .iter()
                .chain(meta.partial_start_vv.iter())
                .any(|(p, _)| *p != peer);
            if foreign {
                return Err(reject(
                    who,
                    "it holds changes made under another member's name",
                ));
            }
            let start = meta.partial_start_vv.get(&peer).copied().unwrap_or(0);
            let end = meta.partial_end_vv.get(&peer).copied().unwrap_or(0);
            Some(IdSpan::new(peer, start, end))
        }
        EnvelopeKind::Baseline => None,
    };
    let ours = doc.version();
    if ours.includes_vv(&meta.partial_end_vv) {
        return Ok(Received::AlreadyHere);
    }
    let deps_here = meta.start_frontiers.iter().all(|id| ours.includes_id(id))
        && meta
            .partial_start_vv
            .iter()
            .all(|(p, c)| ours.get(p).copied().unwrap_or(0) >= *c);
    if !deps_here {
        return Ok(Received::Waiting);
    }

    let genesis = doc.id().is_empty() && ours.is_empty();
    let facts = doc.session_facts();
    let before_frontiers = doc.doc.oplog_frontiers();
    // What a member (not a host, who may take out anything) takes out of the track list is
    // judged against the list as it is now, kept here instead of checking the document out
    // at this version afterwards (a checkout is O(the document): 0.11 s at 100,000 tracks
    // for every removal received; this list is ~1 ms).
    let maps_before =
        (!genesis && span.is_some() && !facts.may_host(&author)).then(|| doc.track_map_list());
    let pending = doc.pending_updates().ok().flatten();
    let put_back = |doc: &mut PlaylistDoc| undo(doc, &ours, pending.as_deref(), copy_before);
    if let Err(e) = doc.import_untrusted(&envelope.updates, &meta) {
        put_back(doc);
        return Err(reject(
            who,
            format!("its changes could not be applied ({e})"),
        ));
    }
    let after = doc.version();
    if !after.includes_vv(&meta.partial_end_vv) {
        // Loro keeps what lacks history pending; we checked the history was here, so this
        // is an update that lies about what it builds on.
        put_back(doc);
        return Err(reject(who, "it claims history it does not build on"));
    }

    let verdict = match span {
        None => {
            // A baseline: only from the owner, who vouches for the history it holds.
            let owner_after = doc.session_facts().owner;
            if owner_after == author && (genesis || facts.owner == author) {
                Ok(())
            } else {
                Err(
                    "only the playlist's owner may send history from before updates were signed"
                        .to_string(),
                )
            }
        }
        Some(span) => {
            let changes = doc.doc.export_json_in_id_span(span);
            if genesis {
                let owner_after = doc.session_facts().owner;
                if doc.id() == session && owner_after == author {
                    Ok(())
                } else {
                    Err("it creates the playlist under another owner or id".to_string())
                }
            } else {
                let (judged, taken) = {
                    let before = Before::under(
                        facts,
                        doc,
                        before_frontiers,
                        &author,
                        (&changes, span),
                        maps_before,
                    );
                    (
                        check(&author, &changes, span, &before),
                        before.takes_only_own(&author),
                    )
                    // `before` puts the document back at its latest version here.
                };
                judged
                    .or_else(|first| {
                        // Concurrent with a change of the rules the author had not seen? Then
                        // it was allowed in the state the author saw.
                        let deps: Frontiers = changes
                            .first()
                            .map(|c| c.deps.iter().copied().collect())
                            .unwrap_or_default();
                        match Before::seen_at(doc, deps) {
                            Some(seen) => check(&author, &changes, span, &seen).map_err(|_| first),
                            None => Err(first),
                        }
                    })
                    .and(taken)
            }
        }
    };
    match verdict {
        Ok(()) => Ok(Received::Applied(after)),
        Err(reason) => {
            put_back(doc);
            Err(reject(who, reason))
        }
    }
}

/// Puts `doc` back at version `to` with `pending` waiting, from the caller's copy when it is
/// exactly that (same version, same updates waiting), or else from a fork. (Loro has no way
/// to take back an import: a fork at the old version exports and imports the whole
/// document, 0.2 s at 10,000 tracks and 2.5 s at 100,000.)
fn undo(
    doc: &mut PlaylistDoc,
    to: &VersionVector,
    pending: Option<&[u8]>,
    copy: impl FnOnce() -> Option<PlaylistDoc>,
) {
    if let Some(copy) = copy()
        && copy.version() == *to
        && copy.pending_updates().ok().flatten().as_deref() == pending
    {
        copy.take_reads_from(doc);
        *doc = copy;
        return;
    }
    #[cfg(test)]
    UNDONE_BY_FORK.with(|forks| forks.set(forks.get() + 1));
    match doc.fork_at_version(to, pending) {
        Ok(back) => {
            back.take_reads_from(doc);
            *doc = back;
        }
        // Cannot happen for a version the document passed through; if it did, the caller's
        // durability check (the store compares versions) catches the difference.
        Err(err) => tracing::error!("could not undo a rejected update: {err}"),
    }
}

#[cfg(test)]
thread_local! {
    /// Refusals this thread undid with a fork (tests check that a copy was used instead).
    pub(crate) static UNDONE_BY_FORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Times this thread checked a document out to judge an update (tests check that a
    /// member's plain removal needs none).
    pub(crate) static CHECKOUTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The fields whose values decide who may edit a map: a track's adder, a comment's author
/// (a map with both `by` and `text`).
const RIGHTS_KEYS: [&str; 3] = ["added_by_peer", "by", "text"];

/// The state a change is judged in: the receiver's, before the update.
///
/// The update is already applied to the document, and Loro reaches an earlier version only
/// by checking the document out (O(the document): 0.15 s at 100,000 tracks; a fork costs
/// 4× that). So a value the update did not write is read from the document as it is: an
/// op-based merge changes nothing the update has no op on. What a member's update took out
/// of the track list is the list kept from before the import less the list after (a
/// deleted map keeps its last fields in Loro). The rest — the fields that decide rights when
/// the update writes them, and the track list when a member's update rewrites a track's id
/// or adder — is read with the document checked out at the version before, and put back
/// when this is dropped.
struct Before<'a> {
    facts: SessionFacts,
    /// The document judged in: its Loro document, and the track list it follows.
    playlist: &'a PlaylistDoc,
    /// The version before the update, when the document holds the update applied.
    at: Option<Frontiers>,
    /// Whether the document has been checked out at `at` (false: the checkout failed).
    checked_out: OnceCell<bool>,
    /// What the update writes: (container, key) of every map op.
    written: HashSet<(&'a ContainerID, &'a str)>,
    /// The track maps in the list after the update, read before any checkout, when a
    /// member who may not remove others' tracks deletes from the list.
    tracks_after: Option<HashSet<ContainerID>>,
    /// The track maps in the list before the update, in order, when kept (a member's
    /// update): what it took out of the list is then found without a checkout.
    maps_before: Option<Vec<ContainerID>>,
    /// Whether the update writes a track's `id` or `added_by_peer` in a map it did not
    /// create: then who added which track is read in the checked-out state.
    rewrites_tracks: bool,
}

impl<'a> Before<'a> {
    /// `playlist` with `author`'s `changes` (the span `span` of its Loro peer) applied; `at`
    /// is its version before them, `maps_before` its track maps then, if kept.
    fn under(
        facts: SessionFacts,
        playlist: &'a PlaylistDoc,
        at: Frontiers,
        author: &str,
        (changes, span): (&'a [JsonChange], IdSpan),
        maps_before: Option<Vec<ContainerID>>,
    ) -> Self {
        let ops = || changes.iter().flat_map(|c| &c.ops);
        let written: HashSet<(&ContainerID, &str)> = ops()
            .filter_map(|op| match &op.content {
                JsonOpContent::Map(map) => Some((&op.container, map_key(map))),
                _ => None,
            })
            .collect();
        let rewrites_tracks = written.iter().any(|(container, key)| {
            matches!(*key, "id" | "added_by_peer") && !created_in(container, span)
        });
        let deletes_tracks = ops().any(|op| {
            root_name(&op.container) == Some("tracks")
                && matches!(
                    op.content,
                    JsonOpContent::MovableList(JsonMovableListOp::Delete { .. })
                )
        });
        let tracks_after =
            (deletes_tracks && !facts.may_host(author)).then(|| playlist.track_maps());
        Before {
            facts,
            playlist,
            at: Some(at),
            checked_out: OnceCell::new(),
            written,
            tracks_after,
            maps_before,
            rewrites_tracks,
        }
    }

    /// `playlist` checked out at `deps`: the state the author of a change built on saw.
    fn seen_at(playlist: &'a PlaylistDoc, deps: Frontiers) -> Option<Self> {
        if let Err(err) = playlist.doc.checkout(&deps) {
            tracing::warn!("could not check a playlist out to judge an update: {err}");
            return None;
        }
        Some(Before {
            facts: playlist.session_facts(),
            playlist,
            at: Some(deps),
            checked_out: OnceCell::from(true),
            written: HashSet::new(),
            tracks_after: None,
            maps_before: None,
            rewrites_tracks: false,
        })
    }

    /// The document at the version before the update (checked out on first use).
    fn before(&self) -> Option<&LoroDoc> {
        let Some(at) = &self.at else {
            return Some(&self.playlist.doc);
        };
        self.checked_out
            .get_or_init(|| {
                #[cfg(test)]
                CHECKOUTS.with(|checkouts| checkouts.set(checkouts.get() + 1));
                self.checkout(at)
            })
            .then_some(&self.playlist.doc)
    }

    fn checkout(&self, at: &Frontiers) -> bool {
        match self.playlist.doc.checkout(at) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!("could not check a playlist out to judge an update: {err}");
                false
            }
        }
    }

    /// Where to read `key` of `container`: the document as it is unless the update wrote it.
    fn reading(&self, container: &ContainerID, keys: &[&str]) -> Option<&LoroDoc> {
        if keys
            .iter()
            .any(|key| self.written.contains(&(container, *key)))
        {
            self.before()
        } else {
            Some(&self.playlist.doc)
        }
    }

    /// The fields of an existing map (a track, a comment), as they were.
    fn map_fields(&self, id: &ContainerID) -> Option<LoroValue> {
        match self.reading(id, &RIGHTS_KEYS)?.get_container(id.clone())? {
            loro::Container::Map(map) => Some(map.get_value()),
            _ => None,
        }
    }

    /// Whether `peer` was a member.
    fn had_member(&self, peer: &str) -> bool {
        let collaborators = ContainerID::new_root("collaborators", loro::ContainerType::Map);
        self.reading(&collaborators, &[peer])
            .is_some_and(|d| d.get_map("collaborators").get(peer).is_some())
    }

    /// Whether a member who may not take others' tracks out of the list did: every track
    /// map the update took out must be one the author added. Judged once, in the
    /// receiver's state: who added a track does not depend on what the author had seen.
    fn takes_only_own(&self, author: &str) -> Result<(), String> {
        let Some(after) = &self.tracks_after else {
            return Ok(());
        };
        let unchecked = "its removals could not be checked against the playlist";
        let taken: Vec<ContainerID> = match self.taken_out() {
            Some(taken) => taken.cloned().collect(),
            None => {
                self.before().ok_or(unchecked)?;
                self.playlist
                    .track_maps()
                    .difference(after)
                    .cloned()
                    .collect()
            }
        };
        for taken in &taken {
            // Who added it, as it was: the document as it is unless the update wrote it.
            let doc = self
                .reading(taken, &["id", "added_by_peer"])
                .ok_or(unchecked)?;
            let fields = match doc.get_container(taken.clone()) {
                Some(loro::Container::Map(map)) => map.get_value(),
                _ => LoroValue::Null,
            };
            if get_str(&fields, "added_by_peer").as_deref() != Some(author) {
                return Err(format!(
                    "it deletes track {} from the list, which another member added",
                    get_str(&fields, "id")
                        .as_deref()
                        .unwrap_or("(without an id)")
                ));
            }
        }
        Ok(())
    }

    /// The track maps the update took out of the list (in it before, not after), when the
    /// list before was kept; an update that deletes none from it took none out.
    fn taken_out(&self) -> Option<impl Iterator<Item = &ContainerID>> {
        let before = self.maps_before.as_ref()?;
        let after = self.tracks_after.as_ref();
        Some(
            before
                .iter()
                .filter(move |map| after.is_some_and(|after| !after.contains(*map))),
        )
    }

    /// The track maps in the list with an id in `ids`, as they were, with their adders.
    fn tracks(&self, ids: &HashSet<&str>) -> Option<Vec<TrackEntry>> {
        if let Some(taken) = self.taken_out().filter(|_| !self.rewrites_tracks) {
            // No checkout: those in the list before are the ones still in it that the
            // update did not add, and those it took out; no id or adder of theirs changed.
            let existed: HashSet<&ContainerID> = self.maps_before.iter().flatten().collect();
            let mut found: Vec<TrackEntry> = self
                .playlist
                .tracks_with_ids(ids)
                .into_iter()
                .filter(|track| existed.contains(&track.map))
                .collect();
            found.extend(
                taken
                    .filter_map(|map| match self.playlist.doc.get_container(map.clone()) {
                        Some(loro::Container::Map(map)) => Some(TrackEntry::of(&map)),
                        _ => None,
                    })
                    .filter(|track| track.id.as_deref().is_some_and(|id| ids.contains(id))),
            );
            return Some(found);
        }
        self.before()?;
        Some(self.playlist.tracks_with_ids(ids))
    }
}

impl Drop for Before<'_> {
    fn drop(&mut self) {
        if self.checked_out.get() == Some(&true) {
            self.playlist.doc.checkout_to_latest();
        }
    }
}

fn root_name(id: &ContainerID) -> Option<&str> {
    match id {
        ContainerID::Root { name, .. } => Some(name.as_str()),
        ContainerID::Normal { .. } => None,
    }
}

fn created_in(id: &ContainerID, span: IdSpan) -> bool {
    match id {
        ContainerID::Normal { peer, counter, .. } => {
            *peer == span.peer && span.counter.start <= *counter && *counter < span.counter.end
        }
        ContainerID::Root { .. } => false,
    }
}

fn text(value: &LoroValue) -> Option<&str> {
    value.as_string().map(|s| s.as_str())
}

/// The changes `changes` (the span `span` of one author's Loro peer) judged as `author`'s
/// in `before`. The reason names the first thing the author had no right to do.
fn check(
    author: &str,
    changes: &[JsonChange],
    span: IdSpan,
    before: &Before,
) -> Result<(), String> {
    let facts = &before.facts;
    let host = facts.may_host(author);
    let owner = facts.owner == author;
    let holds_playback = facts.playback_owner() == author;

    // First pass: what the update does, by container.
    let mut takes = false;
    let mut playback_keys = Vec::new();
    let mut started: Option<String> = None;
    let mut history_added = false;
    let mut new_track_maps: Vec<ContainerID> = Vec::new();
    let mut new_comment_maps: Vec<ContainerID> = Vec::new();
    // Fields written into containers this update created.
    let mut new_fields: HashMap<ContainerID, HashMap<String, LoroValue>> = HashMap::new();
    let mut turn_adds: HashMap<String, u64> = HashMap::new(); // track id → turn
    let mut removed: Vec<String> = Vec::new();
    let mut list_deletes = 0usize;

    for op in changes.iter().flat_map(|c| &c.ops) {
        let container = &op.container;
        let Some(root) = root_name(container) else {
            if created_in(container, span) {
                if let JsonOpContent::Map(JsonMapOp::Insert { key, value }) = &op.content {
                    new_fields
                        .entry(container.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                continue;
            }
            check_existing(author, container, &op.content, before)?;
            continue;
        };
        match (root, &op.content) {
            ("meta", JsonOpContent::Map(map)) => {
                let key = map_key(map);
                match key {
                    "id" => return Err("it changes the playlist's id".into()),
                    "owner_peer" | "owner_name" if !owner => {
                        return Err(
                            "it changes the playlist's owner, which only the owner may hand on"
                                .into(),
                        );
                    }
                    "queue_mode" if !host => {
                        return Err(
                            "it changes the mode, which only the owner or a co-host may".into()
                        );
                    }
                    _ => {}
                }
            }
            ("session", JsonOpContent::Map(map)) => {
                match (map_key(map), map) {
                    ("holder", JsonMapOp::Insert { value, .. }) => {
                        if text(value) != Some(author) || !host {
                            return Err("it gives playback to someone, which only the owner or a co-host may do, and only to themselves".into());
                        }
                        takes = true;
                    }
                    ("holder", JsonMapOp::Delete { .. }) if !owner => {
                        return Err("it clears who holds playback, which only the owner may".into());
                    }
                    ("per_turn" | "fallback", _) if !host => {
                        return Err("it changes the session's settings, which only the owner or a co-host may".into());
                    }
                    (key, content) if key.starts_with("pb_") => {
                        if key == "pb_track"
                            && let JsonMapOp::Insert { value, .. } = content
                        {
                            started = text(value).map(str::to_string);
                        }
                        playback_keys.push(key.to_string());
                    }
                    ("holder" | "per_turn" | "fallback", _) => {}
                    (key, _) if !owner => {
                        return Err(format!(
                            "it writes the session field {key:?}, which only the owner may"
                        ));
                    }
                    _ => {}
                }
            }
            ("session_roles", _) if !owner => {
                return Err("it changes roles, which only the owner may".into());
            }
            ("session_roles", _) => {}
            ("session_order", JsonOpContent::List(JsonListOp::Delete { .. })) if !owner => {
                return Err(
                    "it takes members out of the turn order, which only the owner may".into(),
                );
            }
            ("session_order", _) => {}
            ("session_turns", JsonOpContent::Map(JsonMapOp::Insert { key, value })) => {
                let (turn, what) = key
                    .split_once('|')
                    .and_then(|(t, w)| Some((t.parse::<u64>().ok()?, w)))
                    .ok_or_else(|| format!("it writes a malformed turn fact {key:?}"))?;
                let expected = facts.holder_of_turn(turn);
                if turn != facts.first_open_turn() {
                    return Err(format!("it acts in turn {turn}, which is not the turn now"));
                }
                if text(value).is_none() || text(value) != expected.as_deref() {
                    return Err(format!("it names the wrong member for turn {turn}"));
                }
                if what != "pass" {
                    if expected.as_deref() != Some(author) {
                        return Err(format!(
                            "it adds a track in turn {turn}, which is not the author's turn"
                        ));
                    }
                    turn_adds.insert(what.to_string(), turn);
                }
            }
            ("session_turns", _) => return Err("it erases a turn".into()),
            ("session_votes" | "session_skips", JsonOpContent::Map(map)) => {
                let key = map_key(map);
                if key.split_once('|').map(|(_, peer)| peer) != Some(author) {
                    return Err("it votes in another member's name".into());
                }
            }
            ("session_history", JsonOpContent::List(JsonListOp::Insert { .. })) => {
                history_added = true;
            }
            ("session_history", _) if !owner => {
                return Err("it erases the history, which only the owner may".into());
            }
            ("session_comments", JsonOpContent::List(JsonListOp::Insert { value, .. })) => {
                for v in value {
                    if let LoroValue::Container(id) = v {
                        new_comment_maps.push(id.clone());
                    }
                }
            }
            ("session_comments", _) if !owner => {
                return Err("it erases comments, which only the owner may".into());
            }
            ("tracks", JsonOpContent::MovableList(list)) => match list {
                JsonMovableListOp::Insert { value, .. } => {
                    for v in value {
                        match v {
                            LoroValue::Container(id) if created_in(id, span) => {
                                new_track_maps.push(id.clone())
                            }
                            _ => {
                                return Err(
                                    "it puts something that is not a new track in the list".into(),
                                );
                            }
                        }
                    }
                }
                JsonMovableListOp::Delete { len, .. } => {
                    list_deletes += len.unsigned_abs() as usize;
                }
                JsonMovableListOp::Move { .. } => {}
                JsonMovableListOp::Set { .. } if !host => {
                    return Err("it replaces a track in the list".into());
                }
                JsonMovableListOp::Set { .. } => {}
            },
            ("removed_tracks", JsonOpContent::Map(JsonMapOp::Insert { key, .. })) => {
                removed.push(key.clone());
            }
            ("removed_tracks", _) if !host => {
                return Err(
                    "it brings back a removed track, which only the owner or a co-host may".into(),
                );
            }
            ("collaborators", JsonOpContent::Map(map)) => {
                let key = map_key(map);
                // Any member admits newcomers and records the names they give in the
                // handshake; only the owner takes members out.
                if matches!(map, JsonMapOp::Delete { .. }) && !owner && key != author {
                    return Err("it takes a member out, which only the owner may".into());
                }
            }
            // A member vouches for its own guests only, and only for newcomers: a member
            // cannot be turned into someone's guest. Its host or the owner ends a guest's
            // mark.
            ("session_guests", JsonOpContent::Map(JsonMapOp::Insert { key, value })) => {
                if text(value) != Some(author) {
                    return Err("it lets in a guest in another member's name".into());
                }
                if facts.guests.contains_key(author) {
                    return Err("a guest lets in a guest, which only members may".into());
                }
                let known = key == author
                    || facts.owner == *key
                    || facts.roles.contains_key(key)
                    || facts.guests.contains_key(key)
                    || before.had_member(key);
                if known {
                    return Err("it makes a member someone's guest".into());
                }
            }
            ("session_guests", JsonOpContent::Map(JsonMapOp::Delete { key }))
                if !owner && facts.guests.get(key).map(String::as_str) != Some(author) =>
            {
                return Err("it ends another member's guest".into());
            }
            ("member_addrs", JsonOpContent::Map(map)) if !owner && map_key(map) != author => {
                return Err("it changes another member's addresses".into());
            }
            // Containers the app does not read: harmless.
            _ => {}
        }
    }

    // Playback: its holder moves it on; the owner or a co-host may take it first.
    if (!playback_keys.is_empty() || history_added) && !holds_playback && !takes {
        return Err(format!(
            "it changes what plays, but {} holds playback",
            facts.playback_owner()
        ));
    }
    // Every new track is the author's, and in turns mode is an add of the author's turn
    // (or the fallback track its playback holder starts).
    let mut per_turn: HashMap<u64, u64> = HashMap::new();
    for map in &new_track_maps {
        let fields = new_fields.get(map);
        let field = |k: &str| fields.and_then(|f| f.get(k)).and_then(text);
        if field("added_by_peer") != Some(author) {
            return Err("it adds a track in another member's name".into());
        }
        let id = field("id").unwrap_or_default();
        if facts.mode == SessionMode::TurnTaking {
            match turn_adds.get(id) {
                Some(turn) => *per_turn.entry(*turn).or_default() += 1,
                None if started.as_deref() == Some(id) && (holds_playback || takes) => {}
                None => return Err("it adds a track out of turn (turns mode)".into()),
            }
        }
    }
    for (turn, adds) in per_turn {
        let used = facts.turn_adds.get(&turn).copied().unwrap_or(0) as u64;
        if used + adds > facts.per_turn.max(1) {
            return Err(format!("it adds more tracks than turn {turn} has room for"));
        }
    }
    for map in &new_comment_maps {
        let by = new_fields.get(map).and_then(|f| f.get("by")).and_then(text);
        if by != Some(author) {
            return Err("it comments in another member's name".into());
        }
    }
    // Removals: one's own tracks, or any for the owner and co-hosts. Removal goes by id
    // (every track with the id is hidden), and a modified client can give its own track
    // another's id, so every track with a removed id must be the author's; and every track
    // map taken out of the list must be one of the author's.
    if !host && (!removed.is_empty() || list_deletes > 0) {
        if list_deletes > removed.len() {
            return Err("it deletes tracks from the list without removing them".into());
        }
        let new_ids: HashSet<&str> = new_track_maps
            .iter()
            .filter_map(|m| new_fields.get(m)?.get("id").and_then(text))
            .collect();
        let removed: HashSet<&str> = removed
            .iter()
            .map(String::as_str)
            .filter(|id| !new_ids.contains(id))
            .collect();
        let tracks = before
            .tracks(&removed)
            .ok_or("its removals could not be checked against the playlist")?;
        let others = |track: &&TrackEntry| track.adder.as_deref() != Some(author);
        for removed in removed {
            let mut with_id = tracks
                .iter()
                .filter(|t| t.id.as_deref() == Some(removed))
                .peekable();
            if with_id.peek().is_none() || with_id.any(|t| others(&t)) {
                return Err(format!(
                    "it removes track {removed}, which another member added"
                ));
            }
        }
    }
    Ok(())
}

fn map_key(op: &JsonMapOp) -> &str {
    match op {
        JsonMapOp::Insert { key, .. } | JsonMapOp::Delete { key } => key,
    }
}

/// An op on a container that existed before the update (a track, a comment, a history
/// entry, a track's artists): the track's adder or a host may edit a track, only the owner
/// hand it to someone else; a comment's author (or the owner) may soft-delete it.
fn check_existing(
    author: &str,
    container: &ContainerID,
    content: &JsonOpContent,
    before: &Before,
) -> Result<(), String> {
    let facts = &before.facts;
    let owner = facts.owner == author;
    let host = facts.may_host(author);
    let fields = before.map_fields(container);
    let key = match content {
        JsonOpContent::Map(map) => Some(map_key(map)),
        _ => None,
    };
    if let Some(fields) = &fields {
        if let Some(adder) = get_str(fields, "added_by_peer") {
            return match key {
                Some("added_by_peer" | "added_by_name") if !owner => {
                    Err("it changes who added a track, which only the owner may".into())
                }
                // Removal goes by id: a track given another's id would take it along.
                Some("id") if !owner => {
                    Err("it changes a track's id, which only the owner may".into())
                }
                _ if adder == author || host => Ok(()),
                _ => Err("it edits a track another member added".into()),
            };
        }
        if let (Some(by), Some(_)) = (get_str(fields, "by"), get_str(fields, "text")) {
            if matches!(key, Some("by" | "by_name")) && !owner {
                return Err("it changes who wrote a comment, which only the owner may".into());
            }
            return if by == author || (owner && matches!(key, Some("deleted" | "text"))) {
                Ok(())
            } else {
                Err("it edits another member's comment".into())
            };
        }
    }
    if host {
        Ok(())
    } else {
        Err("it edits part of the playlist only the owner or a co-host may".into())
    }
}
