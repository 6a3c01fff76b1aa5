//! The listening session of a playlist, kept in its document beside the tracks (see
//! `docs/design/listening-session.md`): who holds playback and what plays, roles, the turn
//! order, turns, votes, skip votes, history, comments.
//!
//! Every piece of it is a fact one member writes under a key of its own — a vote under
//! `track|peer`, a turn's add under `turn|track`, a pass under `turn|pass` — so concurrent
//! edits never overwrite each other's facts, and what is derived from them (whose turn it
//! is, the score, the order of up next) is computed the same way on every member. The turn
//! in particular is never stored: turn `t` is over once it holds `per_turn` adds or a pass,
//! so two members ending it at once cannot advance it twice.
//!
//! [`decide`] is the one place that says who may do what; the store calls it inside the
//! write, so a local check and its change are one step.

use std::collections::{BTreeMap, HashMap, HashSet};

use loro::{LoroList, LoroMap, LoroValue, ValueOrContainer};
use whatnext_protocol::{
    listening::{
        Comment, MemberRole, NowPlaying, Played, SessionAction, SessionMode, SessionView,
        SkipVotes, Turn, UpNext,
    },
    playlist::{Author, Playlist, QueueMode},
};

use crate::{
    doc::{PlaylistDoc, clean, get_str, get_u64, new_id},
    error::StoreError,
};

/// Tracks per turn when the owner does not say.
pub const DEFAULT_PER_TURN: u64 = 1;
/// Most tracks per turn an owner may set.
pub const MAX_PER_TURN: u64 = 50;
/// The furthest a seek may go in a track of unknown length (a day).
pub const MAX_SEEK_MS: u64 = 24 * 60 * 60 * 1000;
/// Playback (re)starts this far in the future, so that every member's player, told in
/// time, starts at the same instant instead of each when the news reaches it.
pub const START_LEAD_MS: u64 = 250;
/// How much history the session shows.
const HISTORY_SHOWN: usize = 50;

/// The session's facts as stored, before anything is derived from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFacts {
    pub mode: SessionMode,
    pub per_turn: u64,
    pub owner: String,
    pub holder: Option<String>,
    pub playback: Option<Playback>,
    pub fallback: Option<String>,
    /// Roles given by the owner (the owner is always the owner).
    pub roles: BTreeMap<String, MemberRole>,
    /// Guests, each with the member whose guest page let it in (its host, whose app makes
    /// its edits).
    pub guests: BTreeMap<String, String>,
    /// Members in join order (first appearance wins).
    pub order: Vec<String>,
    /// Turn number → the tracks added in it.
    pub turn_adds: BTreeMap<u64, usize>,
    /// Turns ended early.
    pub passes: HashSet<u64>,
    /// Turn number → the member whose turn it was (every fact of a turn names it: the adder,
    /// or the member who passed or was skipped).
    pub turn_holders: BTreeMap<u64, String>,
    /// Track → peer → vote.
    pub votes: HashMap<String, HashMap<String, i64>>,
    /// Playback epoch → peers voting to skip it.
    pub skips: HashMap<u64, HashSet<String>>,
    pub history: Vec<Played>,
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Playback {
    pub track_id: String,
    /// Unix ms when it (re)started at `position_ms`.
    pub started_at: u64,
    pub position_ms: u64,
    pub paused: bool,
    pub by: String,
    /// Grows with every new track: skip votes count per epoch.
    pub epoch: u64,
    /// The track's length, when known (the holder's clock moves on once it has played).
    pub duration_ms: Option<u64>,
}

impl Playback {
    /// Where playback is at `now`.
    pub fn position(&self, now: u64) -> u64 {
        if self.paused {
            self.position_ms
        } else {
            self.position_ms
                .saturating_add(now.saturating_sub(self.started_at))
        }
    }
}

/// Whose turn it is, derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnState {
    pub number: u64,
    pub holder: String,
    pub used: u64,
}

impl SessionFacts {
    /// The members in turn order: join order, the owner first when the order is unknown.
    pub fn turn_order(&self) -> Vec<String> {
        if self.order.is_empty() && !self.owner.is_empty() {
            return vec![self.owner.clone()];
        }
        self.order.clone()
    }

    pub fn role(&self, peer: &str) -> MemberRole {
        if peer == self.owner {
            MemberRole::Owner
        } else {
            match self.roles.get(peer) {
                Some(role) => *role,
                None if self.guests.contains_key(peer) => MemberRole::Guest,
                None => MemberRole::Member,
            }
        }
    }

    pub(crate) fn may_host(&self, peer: &str) -> bool {
        matches!(self.role(peer), MemberRole::Owner | MemberRole::CoHost)
    }

    /// Who holds playback: the holder, or the owner while nobody took it — or once the holder
    /// is no longer a co-host.
    pub fn playback_owner(&self) -> String {
        self.holder
            .clone()
            .filter(|holder| self.may_host(holder))
            .unwrap_or_else(|| self.owner.clone())
    }

    /// The current turn in `turn_taking` mode (None in other modes or without members).
    pub fn turn(&self) -> Option<TurnState> {
        if self.mode != SessionMode::TurnTaking {
            return None;
        }
        let order = self.turn_order();
        if order.is_empty() {
            return None;
        }
        let number = self.first_open_turn();
        let holder = self.holder_of_turn(number)?;
        Some(TurnState {
            number,
            holder,
            used: self.turn_adds.get(&number).copied().unwrap_or(0) as u64,
        })
    }

    /// The first turn that is not over (whatever the mode).
    pub(crate) fn first_open_turn(&self) -> u64 {
        let per_turn = self.per_turn.max(1);
        // Bounded by the facts that can end turns.
        let bound = self.turn_adds.len() as u64 + self.passes.len() as u64 + 1;
        (0..=bound)
            .find(|t| {
                let used = self.turn_adds.get(t).copied().unwrap_or(0) as u64;
                used < per_turn && !self.passes.contains(t)
            })
            .unwrap_or(bound)
    }

    /// Whose turn `number` is (or was): the member after the one whose turn the previous
    /// one was, in the order as it is now — so a newcomer joins at the end of the round
    /// instead of shifting whose turn it is.
    pub fn holder_of_turn(&self, number: u64) -> Option<String> {
        let order = self.turn_order();
        if order.is_empty() {
            return None;
        }
        let after_previous = number
            .checked_sub(1)
            .and_then(|previous| self.turn_holders.get(&previous))
            .and_then(|previous| order.iter().position(|p| p == previous))
            .map(|at| (at + 1) % order.len());
        let len = order.len() as u64;
        let at = after_previous.unwrap_or_else(|| usize::try_from(number % len).unwrap_or(0));
        order.get(at).cloned()
    }

    fn score(&self, track: &str) -> i64 {
        self.votes.get(track).map(|v| v.values().sum()).unwrap_or(0)
    }
}

/// Why a member may not do something: said to that member, word for word.
fn refuse(why: impl Into<String>) -> StoreError {
    StoreError::NotAllowed(why.into())
}

/// Whether `actor` may do `action` now. `playlist` gives the tracks; `name` names peers in
/// the refusals.
pub fn decide(
    facts: &SessionFacts,
    playlist: &Playlist,
    actor: &str,
    action: &SessionAction,
    name: &dyn Fn(&str) -> String,
) -> Result<(), StoreError> {
    let holder = facts.playback_owner();
    let hold = || {
        if actor == holder {
            Ok(())
        } else {
            Err(refuse(format!(
                "{} holds playback; only they can do that (the owner or a co-host can `session take` it)",
                name(&holder)
            )))
        }
    };
    let has_track = |id: &str| playlist.tracks.iter().any(|t| t.id == id);
    match action {
        SessionAction::Play { track_id } => {
            hold()?;
            if let Some(id) = track_id
                && !has_track(id)
            {
                return Err(StoreError::UnknownTrack {
                    playlist: playlist.id.clone(),
                    track: id.clone(),
                });
            }
            Ok(())
        }
        SessionAction::Pause | SessionAction::Resume | SessionAction::Next => hold(),
        SessionAction::Seek { position_ms } => {
            hold()?;
            let Some(playback) = &facts.playback else {
                return Err(StoreError::Invalid(
                    "nothing is playing; `session play` starts a track".into(),
                ));
            };
            let end = playback.duration_ms.unwrap_or(MAX_SEEK_MS).min(MAX_SEEK_MS);
            if *position_ms > end {
                return Err(StoreError::Invalid(format!(
                    "{position_ms} ms is past the end of the track ({end} ms)"
                )));
            }
            Ok(())
        }
        SessionAction::Take => {
            if facts.may_host(actor) {
                Ok(())
            } else {
                Err(refuse(format!(
                    "only the owner ({}) or a co-host can take playback",
                    name(&facts.owner)
                )))
            }
        }
        SessionAction::Mode { per_turn, .. } => {
            if !facts.may_host(actor) {
                return Err(refuse(format!(
                    "only the owner ({}) or a co-host can change the mode",
                    name(&facts.owner)
                )));
            }
            if let Some(n) = per_turn
                && !(1..=MAX_PER_TURN).contains(n)
            {
                return Err(StoreError::Invalid(format!(
                    "--per-turn must be between 1 and {MAX_PER_TURN}, not {n}"
                )));
            }
            Ok(())
        }
        SessionAction::Role { peer_id, role } => {
            if actor != facts.owner {
                return Err(refuse(format!(
                    "only the owner ({}) can give roles",
                    name(&facts.owner)
                )));
            }
            if matches!(role, MemberRole::Owner | MemberRole::Guest) || *peer_id == facts.owner {
                return Err(StoreError::Invalid(
                    "a session has one owner, and guests join from a guest page; roles are co-host or member".into(),
                ));
            }
            if !facts.turn_order().contains(peer_id)
                && !playlist.collaborators.iter().any(|c| c.peer_id == *peer_id)
            {
                return Err(StoreError::Invalid(format!(
                    "{peer_id} is not a member of this playlist"
                )));
            }
            Ok(())
        }
        SessionAction::Pass => match facts.turn() {
            None => Err(StoreError::Invalid(
                "there are no turns: the session is not in turns mode".into(),
            )),
            Some(turn) if turn.holder == actor => Ok(()),
            Some(turn) => Err(refuse(format!(
                "it is {}'s turn, not yours",
                name(&turn.holder)
            ))),
        },
        SessionAction::Vote { track_id, vote } => {
            if !has_track(track_id) {
                return Err(StoreError::UnknownTrack {
                    playlist: playlist.id.clone(),
                    track: track_id.clone(),
                });
            }
            if !(-1..=1).contains(vote) {
                return Err(StoreError::Invalid(format!(
                    "a vote is up (1), down (-1) or clear (0), not {vote}"
                )));
            }
            Ok(())
        }
        SessionAction::Skip => match &facts.playback {
            None => Err(StoreError::Invalid("nothing is playing to skip".into())),
            Some(_) => Ok(()),
        },
        SessionAction::Comment {
            track_id, reply_to, ..
        } => {
            if let Some(id) = track_id
                && !has_track(id)
            {
                return Err(StoreError::UnknownTrack {
                    playlist: playlist.id.clone(),
                    track: id.clone(),
                });
            }
            if let Some(id) = reply_to
                && !facts.comments.iter().any(|c| c.id == *id)
            {
                return Err(StoreError::Invalid(format!("no comment with id {id:?}")));
            }
            Ok(())
        }
        SessionAction::Uncomment { comment_id } => {
            let comment = facts
                .comments
                .iter()
                .find(|c| c.id == *comment_id)
                .ok_or_else(|| StoreError::Invalid(format!("no comment with id {comment_id:?}")))?;
            if comment.peer_id == actor || actor == facts.owner {
                Ok(())
            } else {
                Err(refuse(
                    "only its author or the owner can remove a comment".to_string(),
                ))
            }
        }
        SessionAction::React { .. } => Err(StoreError::Invalid(
            "reactions are not part of the playlist: they go to the members online".into(),
        )),
        SessionAction::Fallback { playlist_id } => {
            if !facts.may_host(actor) {
                return Err(refuse(format!(
                    "only the owner ({}) or a co-host can set the fallback playlist",
                    name(&facts.owner)
                )));
            }
            if let Some(id) = playlist_id
                && !crate::doc::is_valid_id(id)
            {
                return Err(StoreError::Invalid(format!(
                    "{id:?} is not a playlist id; `whatnext playlist list` shows them"
                )));
            }
            if playlist_id.as_deref() == Some(playlist.id.as_str()) {
                return Err(StoreError::Invalid(
                    "a playlist cannot be its own fallback".into(),
                ));
            }
            Ok(())
        }
    }
}

/// Whether `by` may add `count` tracks now; the turn they go into, in turns mode.
pub fn decide_add(
    facts: &SessionFacts,
    by: &str,
    count: usize,
    name: &dyn Fn(&str) -> String,
) -> Result<Option<u64>, StoreError> {
    let Some(turn) = facts.turn() else {
        return Ok(None);
    };
    if turn.holder != by {
        return Err(refuse(format!(
            "it is {}'s turn to add (turns mode); wait for your turn",
            name(&turn.holder)
        )));
    }
    let left = facts.per_turn.max(1).saturating_sub(turn.used);
    if count as u64 > left {
        return Err(refuse(format!(
            "your turn has room for {left} more track{}, not {count}",
            if left == 1 { "" } else { "s" }
        )));
    }
    Ok(Some(turn.number))
}

/// Whether `by` may remove the shown track that `adders` added: their own, or any for the
/// owner and co-hosts. `adders` has one entry per track with that id (a modified client can
/// give its track another's id, and removal goes by id, so all must be `by`'s); none when
/// no shown track has it, which the edit itself reports.
pub fn decide_remove(
    facts: &SessionFacts,
    adders: &[String],
    by: &str,
    name: &dyn Fn(&str) -> String,
) -> Result<(), StoreError> {
    match adders.iter().find(|adder| *adder != by) {
        Some(adder) if !facts.may_host(by) => Err(refuse(format!(
            "only {} (who added it), the owner or a co-host can remove this track",
            name(adder)
        ))),
        _ => Ok(()),
    }
}

/// The session as members see it, at `now`, for `me`, with `online` members connected.
pub fn view(
    facts: &SessionFacts,
    playlist: &Playlist,
    me: &str,
    online: usize,
    now: u64,
) -> SessionView {
    let played: HashSet<&str> = facts.history.iter().map(|h| h.track_id.as_str()).collect();
    let playing = facts.playback.as_ref().map(|p| p.track_id.as_str());
    let now_playing = facts.playback.as_ref().and_then(|p| {
        let track = playlist.tracks.iter().find(|t| t.id == p.track_id)?;
        Some(NowPlaying {
            track_id: track.id.clone(),
            title: track.title.clone(),
            artists: track.artists.clone(),
            duration_ms: track.duration_ms,
            position_ms: match track.duration_ms {
                Some(d) => p.position(now).min(d),
                None => p.position(now),
            },
            paused: p.paused,
            started_by: p.by.clone(),
            content: track.content.clone(),
            uri: track.uri.clone(),
            started_at_ms: Some(p.started_at),
            start_position_ms: Some(p.position_ms),
        })
    });
    let mut up_next: Vec<(usize, UpNext)> = playlist
        .tracks
        .iter()
        .enumerate()
        .filter(|(_, t)| !played.contains(t.id.as_str()) && Some(t.id.as_str()) != playing)
        .map(|(position, t)| {
            let my_vote = facts
                .votes
                .get(&t.id)
                .and_then(|v| v.get(me))
                .copied()
                .unwrap_or(0);
            (
                position,
                UpNext {
                    track_id: t.id.clone(),
                    title: t.title.clone(),
                    artists: t.artists.clone(),
                    added_by: t.added_by.peer_id.clone(),
                    score: facts.score(&t.id),
                    my_vote,
                },
            )
        })
        .collect();
    if facts.mode == SessionMode::Vote {
        up_next.sort_by(|(pa, a), (pb, b)| b.score.cmp(&a.score).then(pa.cmp(pb)));
    }
    let names: HashMap<&str, &str> = std::iter::once(&playlist.owner)
        .chain(&playlist.collaborators)
        .map(|a| (a.peer_id.as_str(), a.display_name.as_str()))
        .collect();
    let turn = facts.turn().map(|t| Turn {
        display_name: names.get(t.holder.as_str()).unwrap_or(&"").to_string(),
        tracks_left: facts.per_turn.max(1).saturating_sub(t.used),
        number: t.number,
        peer_id: t.holder,
    });
    let epoch = facts.playback.as_ref().map(|p| p.epoch);
    let skip = SkipVotes {
        votes: epoch
            .and_then(|e| facts.skips.get(&e))
            .map_or(0, |s| s.len() as u64),
        needed: skip_needed(online),
    };
    let mut roles: BTreeMap<String, MemberRole> = facts
        .turn_order()
        .into_iter()
        .chain(playlist.collaborators.iter().map(|c| c.peer_id.clone()))
        .map(|peer| {
            let role = facts.role(&peer);
            (peer, role)
        })
        .collect();
    roles.insert(facts.owner.clone(), MemberRole::Owner);
    let start = facts.history.len().saturating_sub(HISTORY_SHOWN);
    SessionView {
        clock_offset_ms: None,
        playlist_id: playlist.id.clone(),
        mode: facts.mode,
        per_turn: facts.per_turn.max(1),
        now_playing,
        up_next: up_next.into_iter().map(|(_, u)| u).collect(),
        turn,
        turn_order: facts.turn_order(),
        playback_owner: Some(facts.playback_owner()).filter(|p| !p.is_empty()),
        my_role: facts.role(me),
        roles,
        skip,
        history: facts.history[start..].to_vec(),
        reactions: vec![],
        fallback: facts.fallback.clone(),
        me: me.to_string(),
        comments: facts.comments.clone(),
    }
}

/// Skip votes needed with `online` members online (counting me): more than half.
pub fn skip_needed(online: usize) -> u64 {
    online.max(1) as u64 / 2 + 1
}

// --- The document ----------------------------------------------------------------------

fn str_of(value: &LoroValue) -> Option<String> {
    value.as_string().map(|s| s.to_string())
}

fn i64_of(value: &LoroValue) -> Option<i64> {
    value.as_i64().copied()
}

impl PlaylistDoc {
    fn session(&self) -> LoroMap {
        self.doc.get_map("session")
    }
    fn session_map(&self, name: &str) -> LoroMap {
        self.doc.get_map(name)
    }
    fn session_list(&self, name: &str) -> LoroList {
        self.doc.get_list(name)
    }

    /// Reads the session's facts (small maps; the tracks are not read).
    pub fn session_facts(&self) -> SessionFacts {
        let meta = self.meta().get_value();
        let session = self.session().get_value();
        let mode = match get_str(&meta, "queue_mode").and_then(|m| QueueMode::parse(&m)) {
            Some(QueueMode::TurnTaking) => SessionMode::TurnTaking,
            Some(QueueMode::VoteBased) => SessionMode::Vote,
            _ => SessionMode::FreeForAll,
        };
        let playback = get_str(&session, "pb_track").map(|track_id| Playback {
            track_id,
            started_at: get_u64(&session, "pb_started_at").unwrap_or(0),
            position_ms: get_u64(&session, "pb_position").unwrap_or(0),
            paused: session
                .as_map()
                .and_then(|m| m.get("pb_paused"))
                .and_then(|v| v.as_bool().copied())
                .unwrap_or(false),
            by: get_str(&session, "pb_by").unwrap_or_default(),
            epoch: get_u64(&session, "pb_epoch").unwrap_or(0),
            duration_ms: get_u64(&session, "pb_duration"),
        });
        let entries = |name: &str| -> Vec<(String, LoroValue)> {
            self.session_map(name)
                .get_value()
                .as_map()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let roles = entries("session_roles")
            .into_iter()
            .filter_map(|(peer, role)| {
                let role = match str_of(&role)?.as_str() {
                    "co_host" => MemberRole::CoHost,
                    _ => MemberRole::Member,
                };
                Some((peer, role))
            })
            .collect();
        let guests = entries("session_guests")
            .into_iter()
            .filter_map(|(guest, host)| Some((guest, str_of(&host)?)))
            .collect();
        let mut order = Vec::new();
        for value in self
            .session_list("session_order")
            .get_value()
            .as_list()
            .into_iter()
            .flat_map(|l| l.iter())
        {
            if let Some(peer) = str_of(value)
                && !order.contains(&peer)
            {
                order.push(peer);
            }
        }
        let mut turn_adds: BTreeMap<u64, usize> = BTreeMap::new();
        let mut passes = HashSet::new();
        let mut turn_holders: BTreeMap<u64, String> = BTreeMap::new();
        for (key, holder) in entries("session_turns") {
            let Some((turn, what)) = key.split_once('|') else {
                continue;
            };
            let Ok(turn) = turn.parse::<u64>() else {
                continue;
            };
            if what == "pass" {
                passes.insert(turn);
            } else {
                *turn_adds.entry(turn).or_default() += 1;
            }
            // Honest members name the same holder for a turn; the smallest id decides
            // otherwise, so every member derives the same.
            if let Some(holder) = str_of(&holder) {
                let entry = turn_holders.entry(turn).or_insert_with(|| holder.clone());
                if holder < *entry {
                    *entry = holder;
                }
            }
        }
        let mut votes: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for (key, vote) in entries("session_votes") {
            if let (Some((track, peer)), Some(vote)) = (key.split_once('|'), i64_of(&vote))
                && vote != 0
            {
                votes
                    .entry(track.to_string())
                    .or_default()
                    .insert(peer.to_string(), vote.clamp(-1, 1));
            }
        }
        let mut skips: HashMap<u64, HashSet<String>> = HashMap::new();
        for (key, _) in entries("session_skips") {
            if let Some((epoch, peer)) = key.split_once('|')
                && let Ok(epoch) = epoch.parse::<u64>()
            {
                skips.entry(epoch).or_default().insert(peer.to_string());
            }
        }
        let list_maps = |name: &str| -> Vec<LoroValue> {
            self.session_list(name)
                .get_deep_value()
                .as_list()
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default()
        };
        let history = list_maps("session_history")
            .iter()
            .filter_map(|v| {
                Some(Played {
                    track_id: get_str(v, "track_id")?,
                    title: get_str(v, "title").unwrap_or_default(),
                    played_at: get_u64(v, "played_at").unwrap_or(0),
                    by: get_str(v, "by").unwrap_or_default(),
                })
            })
            .collect();
        let comments = list_maps("session_comments")
            .iter()
            .filter_map(|v| {
                let deleted = v
                    .as_map()
                    .and_then(|m| m.get("deleted"))
                    .and_then(|d| d.as_bool().copied())
                    .unwrap_or(false);
                Some(Comment {
                    id: get_str(v, "id")?,
                    peer_id: get_str(v, "by").unwrap_or_default(),
                    display_name: get_str(v, "by_name").unwrap_or_default(),
                    text: if deleted {
                        String::new()
                    } else {
                        get_str(v, "text").unwrap_or_default()
                    },
                    track_id: get_str(v, "track_id"),
                    reply_to: get_str(v, "reply_to"),
                    at: get_u64(v, "at").unwrap_or(0),
                    deleted,
                })
            })
            .collect();
        SessionFacts {
            mode,
            per_turn: get_u64(&session, "per_turn").unwrap_or(DEFAULT_PER_TURN),
            owner: get_str(&meta, "owner_peer").unwrap_or_default(),
            holder: get_str(&session, "holder"),
            playback,
            fallback: get_str(&session, "fallback"),
            roles,
            guests,
            order,
            turn_adds,
            passes,
            turn_holders,
            votes,
            skips,
            history,
            comments,
        }
    }

    /// Lets `guest` into the session as a guest of `host` (a member whose guest page it
    /// joined): named among the members, marked as a guest, in the turn order. Whether the
    /// document changed.
    pub fn add_guest(&self, guest: &Author, host: &str) -> Result<bool, StoreError> {
        if self.session_facts().guests.contains_key(&guest.peer_id) {
            return Ok(false);
        }
        let name = crate::doc::clean_name("display name", &guest.display_name)?;
        self.doc
            .get_map("collaborators")
            .insert(&guest.peer_id, name.as_str())?;
        self.session_map("session_guests")
            .insert(&guest.peer_id, host)?;
        self.join_turn_order(&guest.peer_id)?;
        Ok(true)
    }

    /// Puts `peer` at the end of the turn order unless it is in it already.
    pub fn join_turn_order(&self, peer: &str) -> Result<bool, StoreError> {
        if self.session_facts().order.iter().any(|p| p == peer) {
            return Ok(false);
        }
        self.session_list("session_order").push(peer)?;
        Ok(true)
    }

    /// Records that `tracks` were added by `by` in turn `turn`.
    pub fn record_turn_adds(
        &self,
        turn: u64,
        tracks: &[String],
        by: &str,
    ) -> Result<(), StoreError> {
        let turns = self.session_map("session_turns");
        for track in tracks {
            turns.insert(&format!("{turn}|{track}"), by)?;
        }
        Ok(())
    }

    fn set_playback(&self, playback: &Playback) -> Result<(), StoreError> {
        let session = self.session();
        session.insert("pb_track", playback.track_id.as_str())?;
        session.insert("pb_started_at", playback.started_at as i64)?;
        session.insert("pb_position", playback.position_ms as i64)?;
        session.insert("pb_paused", playback.paused)?;
        session.insert("pb_by", playback.by.as_str())?;
        session.insert("pb_epoch", playback.epoch as i64)?;
        match playback.duration_ms {
            Some(d) => session.insert("pb_duration", i64::try_from(d).unwrap_or(i64::MAX))?,
            None => {
                if session.get("pb_duration").is_some() {
                    session.delete("pb_duration")?;
                }
            }
        }
        Ok(())
    }

    /// Ends turn `turn` of a member who is offline (the holder's clock does this after a
    /// minute); a no-op when that turn is over already.
    pub fn skip_turn(&self, turn: u64, holder: &str) -> Result<bool, StoreError> {
        match self.session_facts().turn() {
            Some(current) if current.number == turn && current.holder == holder => {
                self.session_map("session_turns")
                    .insert(&format!("{turn}|pass"), holder)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn clear_playback(&self) -> Result<(), StoreError> {
        let session = self.session();
        for key in [
            "pb_track",
            "pb_started_at",
            "pb_position",
            "pb_paused",
            "pb_by",
        ] {
            if session.get(key).is_some() {
                session.delete(key)?;
            }
        }
        Ok(())
    }

    /// Moves what plays now to the history and starts `next` (or stops when there is none).
    fn advance(
        &self,
        facts: &SessionFacts,
        playlist: &Playlist,
        next: Option<&str>,
        actor: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        if let Some(current) = &facts.playback {
            let title = playlist
                .tracks
                .iter()
                .find(|t| t.id == current.track_id)
                .map(|t| t.title.clone())
                .unwrap_or_default();
            let entry = self
                .session_list("session_history")
                .push_container(LoroMap::new())?;
            entry.insert("track_id", current.track_id.as_str())?;
            entry.insert("title", title)?;
            entry.insert("played_at", now as i64)?;
            entry.insert("by", current.by.as_str())?;
        }
        let epoch = facts.playback.as_ref().map_or(0, |p| p.epoch) + 1;
        match next {
            Some(track) => self.set_playback(&Playback {
                track_id: track.to_string(),
                started_at: now + START_LEAD_MS,
                position_ms: 0,
                paused: false,
                by: actor.to_string(),
                epoch,
                duration_ms: playlist
                    .tracks
                    .iter()
                    .find(|t| t.id == track)
                    .and_then(|t| t.duration_ms),
            }),
            None => {
                self.session().insert("pb_epoch", epoch as i64)?;
                self.clear_playback()
            }
        }
    }

    /// Does `action` as `actor` (checked with [`decide`] first). `now` is Unix ms.
    /// Whether `actor` may do `action` now ([`decide`] on this document's facts).
    pub fn session_check(&self, action: &SessionAction, actor: &str) -> Result<(), StoreError> {
        decide(
            &self.session_facts(),
            &self.read(),
            actor,
            action,
            &|peer| self.display_name_of(peer),
        )
    }

    pub fn session_act(
        &self,
        action: &SessionAction,
        actor: &Author,
        now: u64,
    ) -> Result<(), StoreError> {
        let facts = self.session_facts();
        let playlist = self.read();
        let me = actor.peer_id.as_str();
        decide(&facts, &playlist, me, action, &|peer| {
            self.display_name_of(peer)
        })?;
        // A session change is a change of the playlist: its summary moves, and so the
        // state's version, which is what wakes the view and other clients.
        self.touch(now)?;
        let session = self.session();
        match action {
            SessionAction::Play { track_id } => {
                let next = match track_id {
                    Some(id) => Some(id.clone()),
                    None => view(&facts, &playlist, me, 1, now)
                        .up_next
                        .first()
                        .map(|u| u.track_id.clone()),
                };
                let Some(next) = next else {
                    return Err(StoreError::Invalid(
                        "up next is empty: add a track first".into(),
                    ));
                };
                if facts.holder.is_none() {
                    session.insert("holder", me)?;
                }
                self.advance(&facts, &playlist, Some(&next), me, now)?;
            }
            SessionAction::Pause | SessionAction::Resume => {
                let Some(mut playback) = facts.playback.clone() else {
                    return Err(StoreError::Invalid(
                        "nothing is playing; `session play` starts a track".into(),
                    ));
                };
                playback.position_ms = playback.position(now);
                playback.paused = matches!(action, SessionAction::Pause);
                playback.started_at = if playback.paused {
                    now
                } else {
                    now + START_LEAD_MS
                };
                self.set_playback(&playback)?;
            }
            SessionAction::Seek { position_ms } => {
                if let Some(mut playback) = facts.playback.clone() {
                    playback.position_ms = *position_ms;
                    playback.started_at = if playback.paused {
                        now
                    } else {
                        now + START_LEAD_MS
                    };
                    self.set_playback(&playback)?;
                }
            }
            SessionAction::Next => {
                let next = view(&facts, &playlist, me, 1, now)
                    .up_next
                    .first()
                    .map(|u| u.track_id.clone());
                self.advance(&facts, &playlist, next.as_deref(), me, now)?;
            }
            SessionAction::Take => {
                session.insert("holder", me)?;
            }
            SessionAction::Mode { mode, per_turn } => {
                let queue_mode = match mode {
                    SessionMode::FreeForAll => QueueMode::FreeForAll,
                    SessionMode::TurnTaking => QueueMode::TurnTaking,
                    SessionMode::Vote => QueueMode::VoteBased,
                };
                self.meta().insert("queue_mode", queue_mode.as_str())?;
                if let Some(n) = per_turn {
                    session.insert("per_turn", *n as i64)?;
                }
            }
            SessionAction::Role { peer_id, role } => {
                self.session_map("session_roles")
                    .insert(peer_id, role.as_str())?;
            }
            SessionAction::Pass => {
                if let Some(turn) = facts.turn() {
                    self.session_map("session_turns")
                        .insert(&format!("{}|pass", turn.number), me)?;
                }
            }
            SessionAction::Vote { track_id, vote } => {
                self.session_map("session_votes")
                    .insert(&format!("{track_id}|{me}"), *vote)?;
            }
            SessionAction::Skip => {
                if let Some(playback) = &facts.playback {
                    self.session_map("session_skips")
                        .insert(&format!("{}|{me}", playback.epoch), true)?;
                }
            }
            SessionAction::Comment {
                text,
                track_id,
                reply_to,
            } => {
                let text = clean("comment", text, true)?;
                if text.chars().count() > 2000 {
                    return Err(StoreError::Invalid(
                        "a comment is at most 2,000 characters".into(),
                    ));
                }
                let comment = self
                    .session_list("session_comments")
                    .push_container(LoroMap::new())?;
                comment.insert("id", new_id(6))?;
                comment.insert("by", me)?;
                comment.insert("by_name", actor.display_name.as_str())?;
                comment.insert("text", text)?;
                comment.insert("at", now as i64)?;
                if let Some(track) = track_id {
                    comment.insert("track_id", track.as_str())?;
                }
                if let Some(parent) = reply_to {
                    comment.insert("reply_to", parent.as_str())?;
                }
            }
            SessionAction::Uncomment { comment_id } => {
                let list = self.session_list("session_comments");
                for index in 0..list.len() {
                    if let Some(ValueOrContainer::Container(loro::Container::Map(map))) =
                        list.get(index)
                        && get_str(&map.get_value(), "id").as_deref() == Some(comment_id.as_str())
                    {
                        map.insert("deleted", true)?;
                        map.insert("text", "")?;
                    }
                }
            }
            // Refused by `decide` above.
            SessionAction::React { .. } => {}
            SessionAction::Fallback { playlist_id } => match playlist_id {
                Some(id) => session.insert("fallback", id.as_str())?,
                None => {
                    if session.get("fallback").is_some() {
                        session.delete("fallback")?;
                    }
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mode: SessionMode, per_turn: u64, order: &[&str]) -> SessionFacts {
        SessionFacts {
            mode,
            per_turn,
            owner: order.first().map(|s| s.to_string()).unwrap_or_default(),
            order: order.iter().map(|s| s.to_string()).collect(),
            ..SessionFacts::default()
        }
    }

    #[test]
    fn the_turn_is_derived_and_two_endings_of_one_turn_advance_it_once() {
        let mut f = facts(SessionMode::TurnTaking, 2, &["a", "b", "c"]);
        assert_eq!(
            f.turn().map(|t| (t.number, t.holder)),
            Some((0, "a".into()))
        );
        f.turn_adds.insert(0, 1);
        assert_eq!(f.turn().map(|t| (t.number, t.used)), Some((0, 1)));
        // A's second add and a pass of turn 0 arrive together: turn 0 ends once.
        f.turn_adds.insert(0, 2);
        f.passes.insert(0);
        assert_eq!(
            f.turn().map(|t| (t.number, t.holder)),
            Some((1, "b".into()))
        );
        f.passes.insert(1);
        f.passes.insert(2);
        assert_eq!(
            f.turn().map(|t| (t.number, t.holder)),
            Some((3, "a".into()))
        );
        f.mode = SessionMode::FreeForAll;
        assert_eq!(f.turn(), None);
    }

    #[test]
    fn a_newcomer_joins_at_the_end_of_the_round_without_moving_the_current_turn() {
        let mut f = facts(SessionMode::TurnTaking, 1, &["ann", "bea"]);
        // Turns 0..=2 were Ann, Bea, Ann: turn 3 is Bea's.
        for (turn, who) in [(0, "ann"), (1, "bea"), (2, "ann")] {
            f.turn_adds.insert(turn, 1);
            f.turn_holders.insert(turn, who.into());
        }
        assert_eq!(
            f.turn().map(|t| (t.number, t.holder)),
            Some((3, "bea".into()))
        );
        f.order.push("cid".into());
        assert_eq!(
            f.turn().map(|t| (t.number, t.holder)),
            Some((3, "bea".into())),
            "Cid's arrival does not take Bea's turn"
        );
        f.turn_adds.insert(3, 1);
        f.turn_holders.insert(3, "bea".into());
        assert_eq!(
            f.turn().map(|t| t.holder),
            Some("cid".into()),
            "Cid is next"
        );
        f.passes.insert(4);
        f.turn_holders.insert(4, "cid".into());
        assert_eq!(
            f.turn().map(|t| t.holder),
            Some("ann".into()),
            "and the round goes on"
        );
    }

    #[test]
    fn a_demoted_co_host_no_longer_holds_playback() {
        let mut f = facts(SessionMode::FreeForAll, 1, &["owner", "cohost"]);
        f.roles.insert("cohost".into(), MemberRole::CoHost);
        f.holder = Some("cohost".into());
        assert_eq!(f.playback_owner(), "cohost");
        f.roles.insert("cohost".into(), MemberRole::Member);
        assert_eq!(f.playback_owner(), "owner");
    }

    #[test]
    fn adds_out_of_turn_or_over_the_turn_are_refused() {
        let f = facts(SessionMode::TurnTaking, 2, &["a", "b"]);
        let name = |p: &str| p.to_uppercase();
        assert_eq!(decide_add(&f, "a", 2, &name).expect("a's turn"), Some(0));
        let refused = decide_add(&f, "b", 1, &name).expect_err("b waits");
        assert!(refused.to_string().contains("A's turn"), "{refused}");
        assert!(decide_add(&f, "a", 3, &name).is_err(), "room for 2 only");
        let free = facts(SessionMode::FreeForAll, 1, &["a", "b"]);
        assert_eq!(decide_add(&free, "b", 5, &name).expect("free"), None);
    }

    /// A playlist "p" without tracks, for the rules that do not look at tracks.
    fn empty_playlist() -> Playlist {
        Playlist {
            id: "p".into(),
            name: "P".into(),
            description: String::new(),
            owner: Author::default(),
            collaborators: vec![],
            tags: vec![],
            queue_mode: QueueMode::FreeForAll,
            created_at: 0,
            updated_at: 0,
            tracks: vec![],
        }
    }

    #[test]
    fn who_may_do_what() {
        let mut f = facts(SessionMode::FreeForAll, 1, &["owner", "cohost", "member"]);
        f.roles.insert("cohost".into(), MemberRole::CoHost);
        let playlist = empty_playlist();
        let name = |p: &str| p.to_string();
        let can =
            |who: &str, action: SessionAction| decide(&f, &playlist, who, &action, &name).is_ok();
        let mode = || SessionAction::Mode {
            mode: SessionMode::Vote,
            per_turn: None,
        };
        assert!(can("owner", mode()));
        assert!(can("cohost", mode()));
        assert!(!can("member", mode()));
        assert!(can("owner", SessionAction::Take));
        assert!(can("cohost", SessionAction::Take));
        assert!(!can("member", SessionAction::Take));
        // Nobody took playback: the owner holds it.
        assert!(can("owner", SessionAction::Pause));
        assert!(!can("cohost", SessionAction::Pause));
        let role = |peer: &str| SessionAction::Role {
            peer_id: peer.into(),
            role: MemberRole::CoHost,
        };
        assert!(can("owner", role("member")));
        assert!(!can("cohost", role("member")));
        assert!(!can("owner", role("owner")), "one owner");
        let refused =
            decide(&f, &playlist, "member", &SessionAction::Pause, &name).expect_err("member");
        assert!(
            refused.to_string().contains("owner holds playback"),
            "{refused}"
        );
    }

    fn author(seed: u8, name: &str) -> Author {
        let key = libp2p_identity::Keypair::ed25519_from_bytes([seed; 32]).expect("key");
        Author {
            peer_id: key.public().to_peer_id().to_string(),
            display_name: name.into(),
        }
    }

    fn sync(from: &PlaylistDoc, to: &PlaylistDoc) {
        let updates = from.export_updates_since(&to.version()).expect("export");
        to.import(&updates).expect("import");
    }

    /// Two replicas end the same turn at once (A's last add of its turn, and B skipping A
    /// as offline): after they merge, both are one turn further, not two.
    #[test]
    fn concurrent_endings_of_a_turn_merge_into_one_advance() {
        let (a, b) = (author(1, "A"), author(2, "B"));
        let one = PlaylistDoc::create("p1", "Party", "", &a, 1).expect("create");
        one.add_member(&b).expect("member");
        one.session_act(
            &SessionAction::Mode {
                mode: SessionMode::TurnTaking,
                per_turn: Some(1),
            },
            &a,
            2,
        )
        .expect("mode");
        let two = PlaylistDoc::empty();
        sync(&one, &two);
        assert_eq!(
            two.session_facts().turn().map(|t| t.holder),
            Some(a.peer_id.clone())
        );

        // Concurrently: A adds its one track of turn 0; B's replica records turn 0 as passed.
        let ids = one
            .add_tracks(
                &[whatnext_protocol::playlist::NewTrack {
                    title: "A's pick".into(),
                    ..Default::default()
                }],
                &a,
                3,
            )
            .expect("add");
        one.record_turn_adds(0, &ids, &a.peer_id).expect("turn add");
        one.doc.commit();
        // (A pass names the member whose turn it ends, as the holder's clock writes it.)
        two.session_map("session_turns")
            .insert("0|pass", a.peer_id.as_str())
            .expect("pass");
        two.doc.commit();
        sync(&one, &two);
        sync(&two, &one);
        for replica in [&one, &two] {
            let turn = replica.session_facts().turn().expect("turns");
            assert_eq!((turn.number, turn.holder.as_str()), (1, b.peer_id.as_str()));
        }
        let name = |p: &str| p.to_string();
        assert!(decide_add(&one.session_facts(), &a.peer_id, 1, &name).is_err());
        assert_eq!(
            decide_add(&one.session_facts(), &b.peer_id, 1, &name).expect("B's turn"),
            Some(1)
        );
    }

    /// Votes are each member's own facts: concurrent votes on two replicas all count, and
    /// up next is ordered by score the same way on both.
    #[test]
    fn concurrent_votes_all_count_and_order_up_next_the_same_everywhere() {
        let (a, b) = (author(1, "A"), author(2, "B"));
        let one = PlaylistDoc::create("p1", "Party", "", &a, 1).expect("create");
        one.add_member(&b).expect("member");
        let track = |title: &str| whatnext_protocol::playlist::NewTrack {
            title: title.into(),
            ..Default::default()
        };
        let ids = one
            .add_tracks(&[track("first"), track("second"), track("third")], &a, 2)
            .expect("add");
        one.session_act(
            &SessionAction::Mode {
                mode: SessionMode::Vote,
                per_turn: None,
            },
            &a,
            3,
        )
        .expect("mode");
        let two = PlaylistDoc::empty();
        sync(&one, &two);
        let vote = |doc: &PlaylistDoc, who: &Author, track: &str, vote: i64| {
            doc.session_act(
                &SessionAction::Vote {
                    track_id: track.into(),
                    vote,
                },
                who,
                4,
            )
            .expect("vote");
        };
        vote(&one, &a, &ids[2], 1);
        vote(&two, &b, &ids[2], 1);
        vote(&two, &b, &ids[0], -1);
        sync(&one, &two);
        sync(&two, &one);
        let order = |doc: &PlaylistDoc| -> Vec<(String, i64)> {
            view(&doc.session_facts(), &doc.read(), &a.peer_id, 2, 5)
                .up_next
                .into_iter()
                .map(|u| (u.title, u.score))
                .collect()
        };
        let want = vec![
            ("third".to_string(), 2),
            ("second".to_string(), 0),
            ("first".to_string(), -1),
        ];
        assert_eq!(order(&one), want);
        assert_eq!(order(&two), want);
    }

    /// Huge and malformed values a modified client or a typo could send are refused before
    /// they reach the document.
    #[test]
    fn huge_seeks_and_malformed_fallback_ids_are_refused() {
        let mut f = facts(SessionMode::FreeForAll, 1, &["owner"]);
        let playlist = empty_playlist();
        let name = |p: &str| p.to_string();
        let check =
            |f: &SessionFacts, action: SessionAction| decide(f, &playlist, "owner", &action, &name);
        f.playback = Some(Playback {
            track_id: "t".into(),
            duration_ms: Some(180_000),
            ..Playback::default()
        });
        assert!(
            check(
                &f,
                SessionAction::Seek {
                    position_ms: 179_000
                }
            )
            .is_ok()
        );
        assert!(
            check(
                &f,
                SessionAction::Seek {
                    position_ms: 181_000
                }
            )
            .is_err()
        );
        if let Some(p) = f.playback.as_mut() {
            p.duration_ms = None;
        }
        assert!(
            check(
                &f,
                SessionAction::Seek {
                    position_ms: u64::MAX
                }
            )
            .is_err()
        );
        assert!(
            check(
                &f,
                SessionAction::Seek {
                    position_ms: MAX_SEEK_MS
                }
            )
            .is_ok()
        );
        let fallback = |id: &str| SessionAction::Fallback {
            playlist_id: Some(id.to_string()),
        };
        assert!(check(&f, fallback("0123abcd")).is_ok());
        assert!(check(&f, fallback(&"x".repeat(100_000))).is_err());
        assert!(check(&f, fallback("../etc\u{7}")).is_err());
        // Position arithmetic saturates instead of overflowing.
        let far = Playback {
            position_ms: u64::MAX - 1,
            started_at: 0,
            ..Playback::default()
        };
        assert_eq!(far.position(1_000), u64::MAX);
    }

    #[test]
    fn skip_needs_more_than_half_of_those_online() {
        assert_eq!(skip_needed(1), 1);
        assert_eq!(skip_needed(2), 2);
        assert_eq!(skip_needed(3), 2);
        assert_eq!(skip_needed(5), 3);
    }
}
