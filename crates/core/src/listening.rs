//! The listening session of each shared playlist: reading it, acting in it, and the
//! playback clock of the member who holds playback.
//!
//! The rules live with the document (`whatnext_store::session`): every action is checked
//! and written in one store call, so two local commands cannot both pass a check that only
//! one of them should. This module adds what needs a clock or the network's view: who is
//! online (for skip votes), the time, and the member who holds playback advancing it — when
//! a track's duration has passed, when enough members voted to skip, and past the turn of a
//! member who has been offline for a minute.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use whatnext_protocol::{
    listening::{Reaction, SessionAction, SessionView},
    playlist::{Author, NewTrack},
    state::AppState,
};
use whatnext_store::{StoreError, session::skip_needed};

use crate::{
    library::Library,
    state::{StateHandle, now_ms},
};

/// How often the holder's clock looks at the sessions it holds.
const CLOCK_TICK: Duration = Duration::from_millis(250);
/// An offline member's turn is skipped after this long.
const OFFLINE_TURN_GRACE: Duration = Duration::from_secs(60);

/// Members of session `id` online now, counting me.
pub fn online_count(state: &AppState, id: &str) -> usize {
    1 + state
        .sessions
        .iter()
        .find(|s| s.id == id)
        .map_or(0, |s| s.connected_members.len())
}

/// Whether `peer` is one of my identities or connected in session `id`.
fn is_online(state: &AppState, id: &str, peer: &str) -> bool {
    peer == state.peer_id
        || state.services.iter().any(|s| s.peer_id == peer)
        || state
            .sessions
            .iter()
            .find(|s| s.id == id)
            .is_some_and(|s| s.connected_members.iter().any(|m| m == peer))
}

/// The session of playlist `id` as this member sees it now. `offsets`: members' clocks
/// against ours (their clock minus ours, ms), as the sessions task measured them.
pub async fn view(
    library: &Arc<Library>,
    state: &StateHandle,
    offsets: HashMap<String, i64>,
    id: &str,
) -> Result<SessionView, StoreError> {
    let (me, online, reactions) = viewer(library, state, id);
    let id = id.to_string();
    let mut view = library
        .read(move |store| view_now(store, &id, &me, online, now_ms(), &offsets))
        .await?;
    view.reactions = reactions;
    Ok(view)
}

/// The session at `now` on our clock: computed on the clock of whoever holds playback
/// (now + their offset), which the view passes on to players.
pub(crate) fn view_now(
    store: &mut whatnext_store::Store,
    id: &str,
    me: &str,
    online: usize,
    now: u64,
    offsets: &HashMap<String, i64>,
) -> Result<SessionView, StoreError> {
    let holder = store.session_facts(id)?.playback_owner();
    let offset = offsets.get(&holder).copied();
    let mut view = store.session_view(
        id,
        me,
        online,
        now.saturating_add_signed(offset.unwrap_or(0)),
    )?;
    view.clock_offset_ms = offset;
    Ok(view)
}

/// Does `action` in the session of playlist `id` as this member; returns the session after
/// it, read in the same store call (no second trip through the store).
pub async fn act(
    library: &Arc<Library>,
    state: &StateHandle,
    offsets: HashMap<String, i64>,
    id: &str,
    action: SessionAction,
) -> Result<SessionView, StoreError> {
    let author = library.author_for(id);
    let (_, online, reactions) = viewer(library, state, id);
    let playlist = id.to_string();
    let mut view = library
        .write(move |store, _, now| {
            // The action happens on our clock (whoever moves playback holds it); the
            // session after it is seen on the holder's.
            store.session_act(&playlist, &action, &author, now)?;
            let view = view_now(store, &playlist, &author.peer_id, online, now, &offsets)?;
            Ok((view, Some(playlist)))
        })
        .await?;
    view.reactions = reactions;
    Ok(view)
}

/// Who reads the session of `id` (the playlist's identity of ours), how many members are
/// online, and the reactions shown: what the view takes from outside the document.
fn viewer(library: &Library, state: &StateHandle, id: &str) -> (String, usize, Vec<Reaction>) {
    let snapshot = state.snapshot();
    let reactions = snapshot
        .sessions
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.reactions.clone())
        .unwrap_or_default();
    (
        library.author_for(id).peer_id,
        online_count(&snapshot, id),
        reactions,
    )
}

/// A new playlist named `name` holding the tracks played in session `id`, in the order
/// they played, the one playing now last (it is played too, if not to its end: history only
/// gets a track once playback moves on). Returns its id.
pub async fn save_history(
    library: &Arc<Library>,
    id: &str,
    name: &str,
) -> Result<String, StoreError> {
    let (id, name) = (id.to_string(), name.to_string());
    let me = library.author();
    library
        .write(move |store, _, now| {
            let facts = store.session_facts(&id)?;
            let playlist = store.get(&id)?;
            let played = facts
                .history
                .iter()
                .map(|played| &played.track_id)
                .chain(facts.playback.as_ref().map(|now| &now.track_id));
            let tracks: Vec<NewTrack> = played
                .filter_map(|played| playlist.tracks.iter().find(|t| t.id == *played))
                .map(NewTrack::from)
                .collect();
            if tracks.is_empty() {
                return Err(StoreError::Invalid(
                    "nothing has played in this session yet".into(),
                ));
            }
            let created = store.create(&name, "played in a WhatNext session", &me, now)?;
            store.add_tracks(&created, &tracks, &me, now)?;
            Ok((created.clone(), Some(created)))
        })
        .await
}

/// The playback clock: for every shared playlist whose playback this member holds, moves
/// on when the track is over or skipped, and passes the turn of a member offline too long.
pub async fn run_clock(library: Arc<Library>, state: StateHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CLOCK_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (playlist, turn number) → when its member was first seen offline.
    let mut offline_since: HashMap<(String, u64), Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let snapshot = state.snapshot();
        for session in &snapshot.sessions {
            let id = session.id.clone();
            let me = library.author_for(&id);
            let read = {
                let id = id.clone();
                library.read(move |store| store.session_facts(&id)).await
            };
            let Ok(facts) = read else { continue };
            if facts.playback_owner() != me.peer_id {
                continue;
            }
            let now = now_ms();
            if let Some(playback) = &facts.playback {
                let over = !playback.paused
                    && playback
                        .duration_ms
                        .is_some_and(|d| playback.position(now) >= d);
                let skipped = facts.skips.get(&playback.epoch).is_some_and(|votes| {
                    votes.len() as u64 >= skip_needed(online_count(&snapshot, &id))
                });
                if over || skipped {
                    advance(&library, &id, &me, playback.epoch).await;
                }
            }
            if let Some(turn) = facts.turn() {
                let key = (id.clone(), turn.number);
                if is_online(&snapshot, &id, &turn.holder) {
                    offline_since.remove(&key);
                } else {
                    let since = *offline_since
                        .entry(key.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= OFFLINE_TURN_GRACE {
                        let (playlist, holder) = (id.clone(), turn.holder.clone());
                        let passed = library
                            .write(move |store, _, _| {
                                store.skip_turn(&playlist, turn.number, &holder)?;
                                Ok(((), Some(playlist)))
                            })
                            .await;
                        match passed {
                            Ok(()) => tracing::info!(
                                "playlist {id}: skipped the turn of {} (offline for a minute)",
                                turn.holder
                            ),
                            Err(err) => tracing::debug!("could not skip a turn in {id}: {err}"),
                        }
                        offline_since.remove(&key);
                    }
                }
            }
        }
        // Forget turns of sessions that are gone.
        offline_since.retain(|(id, _), _| snapshot.sessions.iter().any(|s| s.id == *id));
    }
}

/// Moves to the next track, unless another member already did (the epoch moved on).
async fn advance(library: &Arc<Library>, id: &str, me: &Author, epoch: u64) {
    let (playlist, author) = (id.to_string(), me.clone());
    let result = library
        .write(move |store, _, now| {
            let current = store.session_facts(&playlist)?;
            if current.playback.as_ref().map(|p| p.epoch) != Some(epoch) {
                return Ok(((), None));
            }
            store.session_act(&playlist, &SessionAction::Next, &author, now)?;
            Ok(((), Some(playlist)))
        })
        .await;
    if let Err(err) = result {
        tracing::debug!("could not move playlist {id} on: {err}");
    }
}
