//! The network half of the shared playlists: handshakes, hellos, pushes, meeting members.
//! These run as tasks of their own (they wait on the network and the store) and report what
//! they learn to the sessions task as messages; they hold no session state themselves.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::Value;
use tokio::sync::mpsc;
use whatnext_protocol::{
    ipc::AppProtocol,
    playlist::Author,
    session::{
        HandshakeRequest, HandshakeResponse, MAX_APP_MESSAGE, MAX_SYNC_PARTS, MAX_UNPACKED, Parts,
        SYNC_PART_BYTES, SessionProof, SyncRequest, SyncResponse, pack, part_count, part_of,
        unpack,
    },
};

use super::{exports::PartExports, msg::Msg};
use crate::{
    invite::member_addrs,
    library::Library,
    services::ServiceHandle,
    ui::{UiEvent, UiHooks},
};

pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every piece of network work needs: cheap to clone into a task.
#[derive(Clone)]
pub(super) struct Ctx {
    pub library: Arc<Library>,
    /// Back to the sessions task.
    pub tx: mpsc::UnboundedSender<Msg>,
    pub ui: Option<UiHooks>,
    pub app_version: String,
    pub music: Arc<crate::music::Music>,
    pub transfers: Arc<crate::transfers::TransferBoard>,
    /// Uploads of audio at once (groups being read and sent).
    pub uploads: Arc<tokio::sync::Semaphore>,
    pub guests: Arc<crate::guests::Guests>,
    pub guest_tunnel: mpsc::Sender<crate::guests::TunnelCall>,
    /// Hellos under way, by (service, peer, session), and how many: the anti-entropy
    /// round's pull waits its turn while one is under way, whose answer brings what we lack
    /// (another would be answered with the same updates again, and a join through a slow
    /// relay takes seconds).
    pub hellos: Arc<std::sync::Mutex<HashMap<HelloKey, usize>>>,
    /// The exports being answered in parts, kept from the first part to the last.
    pub exports: Arc<PartExports>,
}

type HelloKey = (String, String, String);

/// A hello counted in [`Ctx::hellos`] until it ends, however it ends.
struct HelloUnderWay<'a> {
    hellos: &'a std::sync::Mutex<HashMap<HelloKey, usize>>,
    key: HelloKey,
}

impl<'a> HelloUnderWay<'a> {
    /// Counts a hello; with `only_if_idle`, none (None) while another is under way.
    fn enter(
        hellos: &'a std::sync::Mutex<HashMap<HelloKey, usize>>,
        key: HelloKey,
        only_if_idle: bool,
    ) -> Option<Self> {
        let mut under_way = hellos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = under_way.entry(key.clone()).or_default();
        if only_if_idle && *count > 0 {
            return None;
        }
        *count += 1;
        Some(HelloUnderWay { hellos, key })
    }
}

impl Drop for HelloUnderWay<'_> {
    fn drop(&mut self) {
        let mut under_way = self
            .hellos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = under_way.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                under_way.remove(&self.key);
            }
        }
    }
}

impl Ctx {
    pub fn tell(&self, msg: Msg) {
        // Fails only once the sessions task has stopped (shutdown): nothing left to tell.
        let _ = self.tx.send(msg);
    }

    /// Tells the sessions task that `peer` (through `via`) has `session` at least at
    /// `version`: pushes to it start from there.
    pub fn tell_known(&self, via: &ServiceHandle, peer: &str, session: &str, version: Vec<u8>) {
        self.tell(Msg::Known {
            service: via.name.clone(),
            peer: peer.to_string(),
            session: session.to_string(),
            version,
        });
    }

    async fn request(
        &self,
        via: &ServiceHandle,
        peer: &str,
        protocol: AppProtocol,
        body: Value,
    ) -> Result<Value, String> {
        via.client
            .app_request(peer.to_string(), protocol, body, REQUEST_TIMEOUT)
            .await
            .map_err(|err| err.to_string())
    }

    /// Sends our handshake with `proofs` through `via` and parses the answer.
    pub async fn handshake(
        &self,
        via: &ServiceHandle,
        peer: &str,
        proofs: Vec<SessionProof>,
    ) -> Result<HandshakeResponse, String> {
        let request = HandshakeRequest {
            app_version: self.app_version.clone(),
            display_name: self.library.author().display_name,
            sessions: proofs,
        };
        let body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
        let reply = self
            .request(via, peer, AppProtocol::Handshake, body)
            .await?;
        serde_json::from_value(reply)
            .map_err(|e| format!("{peer} answered the handshake with garbage ({e})"))
    }

    /// Asks `peer` for what we lack of `session` and applies it.
    pub async fn hello(
        &self,
        via: &ServiceHandle,
        peer: &str,
        session: &str,
    ) -> Result<(), String> {
        let key = (via.name.clone(), peer.to_string(), session.to_string());
        let _under_way = HelloUnderWay::enter(&self.hellos, key, false);
        self.say_hello(via, peer, session).await
    }

    /// The anti-entropy round's pull: a hello, unless one to `peer` for `session` is under
    /// way already.
    pub async fn pull(&self, via: &ServiceHandle, peer: &str, session: &str) -> Result<(), String> {
        let key = (via.name.clone(), peer.to_string(), session.to_string());
        let Some(_under_way) = HelloUnderWay::enter(&self.hellos, key, true) else {
            return Ok(());
        };
        self.say_hello(via, peer, session).await
    }

    async fn say_hello(
        &self,
        via: &ServiceHandle,
        peer: &str,
        session: &str,
    ) -> Result<(), String> {
        let id = session.to_string();
        let version = self
            .library
            .read(move |store| {
                if store.contains(&id) {
                    store.version(&id)
                } else {
                    Ok(Vec::new())
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        let version = B64.encode(version);
        // What we lack comes in parts (a long playlist's whole is more than one message
        // may carry), put together, then applied. Parts cut from another version of the
        // answerer's may belong to another whole: then it starts again, a few times.
        let mut restarts = 0;
        'whole: loop {
            let mut whole = Vec::new();
            let mut first: Option<Parts> = None;
            let mut index = 0u32;
            loop {
                let body = serde_json::to_value(SyncRequest::Hello {
                    session: session.into(),
                    version: version.clone(),
                    part: Some(index),
                })
                .map_err(|e| e.to_string())?;
                let reply = self.request(via, peer, AppProtocol::Sync, body).await?;
                let (updates, parts) = match serde_json::from_value::<SyncResponse>(reply) {
                    Ok(SyncResponse::Updates {
                        session: s,
                        updates,
                        parts,
                    }) if s == session => (updates, parts),
                    Ok(SyncResponse::Refused { reason }) => {
                        return Err(format!("{peer} refused to sync {session}: {reason}"));
                    }
                    Ok(other) => return Err(format!("{peer} answered hello with {other:?}")),
                    Err(e) => return Err(format!("{peer} answered hello with garbage ({e})")),
                };
                let piece = unpack(&updates)
                    .map_err(|e| format!("{peer} sent undecodable updates: {e}"))?;
                let Some(parts) = parts else {
                    // A peer from before parts: its answer is the whole.
                    return self.apply(peer, session, piece).await;
                };
                match &first {
                    None if parts.count == 0
                        || parts.count > MAX_SYNC_PARTS
                        || parts.len > MAX_UNPACKED as u64 =>
                    {
                        return Err(format!(
                            "{peer} offered {session} in {} parts of {} bytes in all: refused",
                            parts.count, parts.len
                        ));
                    }
                    None => first = Some(parts),
                    Some(known) if *known == parts => {}
                    Some(_) => {
                        restarts += 1;
                        if restarts > 3 {
                            return Err(format!(
                                "{session} kept changing on {peer} while it was sent"
                            ));
                        }
                        continue 'whole;
                    }
                }
                whole.extend_from_slice(&piece);
                index += 1;
                let Some(known) = &first else { continue };
                if whole.len() as u64 > known.len {
                    return Err(format!("{peer} sent more of {session} than it said"));
                }
                if index == known.count {
                    if whole.len() as u64 != known.len {
                        return Err(format!("{peer}'s parts of {session} did not add up"));
                    }
                    return self.apply(peer, session, whole).await;
                }
            }
        }
    }

    /// Applies updates `peer` sent for `session`; when they changed something, the members
    /// they name are met.
    pub async fn apply(&self, peer: &str, session: &str, updates: Vec<u8>) -> Result<(), String> {
        if updates.is_empty() {
            return Ok(());
        }
        let id = session.to_string();
        let (applied, owner) = self
            .library
            .write_received(move |store, _, now| {
                let applied = store.apply_remote(&id, &updates, now)?;
                let owner = store.owner_of(&id).unwrap_or_default();
                let changed = applied.changed;
                Ok(((applied, owner), changed.then_some(id)))
            })
            .await
            .map_err(|e| format!("updates from {peer} for {session} were refused: {e}"))?;
        if applied.changed {
            tracing::debug!("applied updates from {peer} to {session}");
            self.tell(Msg::Forward {
                session: session.to_string(),
                from: peer.to_string(),
                from_owner: owner == peer,
            });
            self.tell(Msg::Meet(session.to_string()));
        }
        // Rejected updates are logged with who signed them (the offender) and who sent them
        // (who may only be passing them on), and the sender is told why.
        for rejection in &applied.rejected {
            tracing::warn!("playlist {session}: from {peer}: {rejection}");
        }
        match applied.rejected.first() {
            Some(first) => Err(first.to_string()),
            None => Ok(()),
        }
    }

    /// Answers a peer's `hello` (the part it asks for of what it lacks, or the whole from
    /// a peer before parts), and (to the sessions task) that it will have
    /// everything we have once it applies this.
    pub async fn answer_hello(
        &self,
        via: &ServiceHandle,
        peer: &str,
        session: String,
        version: Vec<u8>,
        part: Option<u32>,
    ) -> SyncResponse {
        let id = session.clone();
        let since = version.clone();
        let exports = Arc::clone(&self.exports);
        let exported = self
            .library
            .read(move |store| {
                if !store.contains(&id) {
                    return Ok((Arc::default(), version, false));
                }
                let ours = store.version(&id)?;
                // A later part of an export under way: the same bytes, unless the playlist
                // changed since.
                Ok(match exports.get(&id, &version, &ours) {
                    Some(kept) => (kept, ours, false),
                    None => (Arc::new(store.export_since(&id, &version)?), ours, true),
                })
            })
            .await;
        match exported {
            Ok((updates, ours, fresh)) => {
                let Some(index) = part else {
                    // An asker from before parts: the whole, as it expects.
                    self.tell_known(via, peer, &session, ours);
                    return SyncResponse::Updates {
                        session,
                        updates: pack(&updates),
                        parts: None,
                    };
                };
                let part_bytes = sync_part_bytes();
                let count = part_count(updates.len(), part_bytes);
                let Some(piece) = part_of(&updates, index as usize, part_bytes) else {
                    return SyncResponse::Refused {
                        reason: format!("there is no part {index} of {count}"),
                    };
                };
                let parts = Parts {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    len: updates.len() as u64,
                    of: B64.encode(&ours),
                };
                if index as usize + 1 < count {
                    if fresh {
                        self.exports
                            .keep(&session, &since, &ours, Arc::clone(&updates));
                        self.exports.expire();
                    }
                } else {
                    // The last part: the export is done with, and the peer has everything
                    // we have.
                    self.exports.forget(&session, &since);
                    if count > 1 {
                        tracing::info!(
                            "sent playlist {session} to {peer} in {count} parts ({} bytes)",
                            updates.len()
                        );
                    }
                    self.tell_known(via, peer, &session, ours);
                }
                SyncResponse::Updates {
                    session,
                    updates: pack(piece),
                    parts: Some(parts),
                }
            }
            Err(err) => SyncResponse::Refused {
                reason: err.to_string(),
            },
        }
    }

    /// Sends `peer` the updates of `session` newer than `known`: in one message, or in
    /// several of whole envelopes when they are more than a part ([`SYNC_PART_BYTES`]);
    /// an envelope that alone is more than a message may carry is left to the peer's next
    /// pull (the anti-entropy round), which takes it in parts.
    pub async fn push_to(&self, via: &ServiceHandle, peer: &str, session: &str, known: Vec<u8>) {
        let id = session.to_string();
        let part_bytes = sync_part_bytes();
        let exported = self
            .library
            .read(move |store| {
                Ok((
                    store.export_since_grouped(&id, &known, part_bytes)?,
                    store.version(&id)?,
                ))
            })
            .await;
        let Ok((groups, version)) = exported else {
            return;
        };
        let count = groups.len();
        for (index, updates) in groups.into_iter().enumerate() {
            let last = index + 1 == count;
            let updates = pack(&updates);
            // (The message is the packed updates and a few hundred bytes of JSON.)
            if updates.len() as u64 + 64 * 1024 > MAX_APP_MESSAGE {
                tracing::debug!(
                    "{session}: an update too large to push to {peer}, left to its pull"
                );
                return;
            }
            let body = serde_json::to_value(SyncRequest::Push {
                session: session.into(),
                updates,
                // What we have is theirs only with the last group.
                version: last.then(|| B64.encode(&version)),
            })
            .unwrap_or(Value::Null);
            match self
                .request(via, peer, AppProtocol::Sync, body)
                .await
                .map(serde_json::from_value::<SyncResponse>)
            {
                Ok(Ok(SyncResponse::Ack)) if last => {
                    self.tell_known(via, peer, session, version.clone());
                }
                Ok(Ok(SyncResponse::Ack)) => {}
                other => {
                    tracing::debug!("push of {session} to {peer}: {other:?}");
                    return;
                }
            }
        }
    }

    /// Asks `peer` the time (through playlist `session`, to which both are admitted) and
    /// tells the sessions task the sample.
    pub async fn measure_clock(&self, via: &ServiceHandle, peer: &str, session: &str) {
        let sent_ms = crate::state::now_ms();
        let Ok(body) = serde_json::to_value(SyncRequest::Clock {
            session: session.to_string(),
            sent_ms,
        }) else {
            return;
        };
        let answer = self.request(via, peer, AppProtocol::Sync, body).await;
        let came_back = crate::state::now_ms();
        let Ok(Ok(SyncResponse::Clock {
            sent_ms: echoed,
            received_ms,
            answered_ms,
        })) = answer.map(serde_json::from_value::<SyncResponse>)
        else {
            return;
        };
        if echoed != sent_ms {
            return;
        }
        if let Some(sample) = super::clock::sample(sent_ms, received_ms, answered_ms, came_back) {
            self.tell(Msg::ClockSample {
                service: via.name.clone(),
                peer: peer.to_string(),
                sample,
            });
        }
    }

    /// Writes the addresses `via` can be dialed at into the playlist's member list, under the
    /// peer id of `via` (an isolated share never shows the main one).
    pub async fn announce_self(&self, via: &ServiceHandle, session: &str) {
        let state = via.state.snapshot();
        let addrs = member_addrs(&state);
        if addrs.is_empty() {
            return;
        }
        let (id, me) = (session.to_string(), state.peer_id);
        let result = self
            .library
            .write(move |store, _, _| {
                if !store.contains(&id) {
                    return Ok(((), None));
                }
                let changed = store.set_member_addrs(&id, &me, &addrs)?;
                Ok(((), changed.then_some(id)))
            })
            .await;
        if let Err(err) = result {
            tracing::debug!("could not record our addresses in {session}: {err}");
        }
    }

    /// Dials the members of `session` that `via` is not connected to (and that are not
    /// `skip`: revoked); the handshake on connect admits both sides, so updates flow
    /// directly and not only through whoever relays them.
    ///
    /// Unless `everyone`, only members whose peer id sorts after ours are dialed: both sides
    /// of a pair dialing at once made two connections per pair (and dial storms in a big
    /// session); the repair round dials everyone now and then, for members who cannot reach
    /// us.
    pub async fn meet_members(
        &self,
        via: &ServiceHandle,
        session: &str,
        skip: HashSet<String>,
        everyone: bool,
    ) {
        let me = via.state.snapshot().peer_id;
        self.meet(via, session, |peer| {
            !skip.contains(peer) && (everyone || peer > me.as_str())
        })
        .await;
    }

    /// Dials one member of `session` again, at the addresses it recorded (e.g. its last
    /// connection closed: a relay ended the circuit at its limits).
    pub async fn meet_member(&self, via: &ServiceHandle, session: &str, member: &str) {
        self.meet(via, session, |peer| peer == member).await;
    }

    /// Dials the members of `session` that `wanted` names and `via` is not connected to.
    async fn meet(&self, via: &ServiceHandle, session: &str, wanted: impl Fn(&str) -> bool) {
        let id = session.to_string();
        let Ok(members) = self
            .library
            .read(move |store| store.member_addrs(&id))
            .await
        else {
            return;
        };
        let state = via.state.snapshot();
        for (peer, addrs) in members {
            let connected = state.connections.iter().any(|c| c.peer_id == peer);
            if peer == state.peer_id || connected || addrs.is_empty() || !wanted(&peer) {
                continue;
            }
            // The sessions task dials, unless a dial to that member is already under way
            // (two rounds meeting members at once made two connections per pair).
            self.tell(Msg::Dial {
                service: via.name.clone(),
                peer,
                addrs,
            });
        }
    }

    /// Records an admitted peer as a member of `session` in the playlist, and tells the
    /// window when that is news.
    pub async fn record_member(&self, session: &str, member: Author, playlist_name: String) {
        let name = member.display_name.clone();
        let peer = member.peer_id.clone();
        let id = session.to_string();
        let result = self
            .library
            .write(move |store, _, _| {
                if !store.contains(&id) {
                    return Ok((false, None)); // joining: the playlist arrives with the first sync
                }
                let changed = store.add_member(&id, &member)?;
                Ok((changed, changed.then_some(id)))
            })
            .await;
        match result {
            Ok(true) => {
                if let Some(ui) = &self.ui {
                    (ui.notify)(UiEvent::PeerJoined {
                        name,
                        playlist: playlist_name,
                    });
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!("could not record member {peer} of {session}: {err}"),
        }
    }
}

/// The size of the parts a hello's answer is cut in: [`SYNC_PART_BYTES`], or less with
/// `WHATNEXT_SYNC_PART_BYTES` (tests send a small playlist in many parts with it).
fn sync_part_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("WHATNEXT_SYNC_PART_BYTES")
            .ok()
            .and_then(|bytes| bytes.parse().ok())
            .filter(|bytes| (1..=SYNC_PART_BYTES).contains(bytes))
            .unwrap_or(SYNC_PART_BYTES)
    })
}
