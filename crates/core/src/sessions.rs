//! Shared playlists ("sessions"): who may join, who is admitted, and keeping members in sync.
//!
//! * The capability: `share` gives a playlist a random 128-bit key, kept in
//!   `<home>/sessions.json` (0600) — never in the shared document. A link carries
//!   `session=<playlist id>&key=<key>`; every member stores the key it joined with, so any
//!   member can admit (and re-admit after reconnects) the others.
//! * The handshake (`/whatnext/handshake/1.0.0`): the dialer proves a key per session; the
//!   other side admits or refuses each. A refused peer gets nothing of that playlist.
//! * Sync (`/whatnext/sync/1.0.0`): on admission both sides send `hello` with their version
//!   vector and receive what they lack; afterwards every change to a shared playlist — local,
//!   or received from another member — is pushed to the admitted members still lacking it,
//!   so updates also reach members that cannot connect to each other directly.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use whatnext_home::files::write_private_file;
use whatnext_protocol::session::{pack, unpack};
use whatnext_protocol::{
    ipc::{AppProtocol, Command, Event},
    playlist::Author,
    session::{
        HandshakeRequest, HandshakeResponse, Refusal, SessionProof, SyncRequest, SyncResponse,
    },
};

use crate::{
    invite::invite_addrs,
    library::Library,
    secret::same_secret,
    state::StateHandle,
    supervisor::ServiceClient,
    ui::{UiEvent, UiHooks},
};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const REPAIR_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionEntry {
    pub key: String,
    pub role: Role,
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// `<home>/sessions.json`: playlist id → capability.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    sessions: BTreeMap<String, SessionEntry>,
}

pub struct Sessions {
    path: PathBuf,
    book: Mutex<Book>,
    /// Held while `sessions.json` is written: saves take turns (see [`Sessions::save`]).
    saving: tokio::sync::Mutex<()>,
    /// The native window, when there is one (desktop build): told when a friend joins.
    ui: Option<UiHooks>,
    /// Peer → sessions it is admitted to on its current connection.
    admitted: Mutex<HashMap<String, HashSet<String>>>,
    /// (peer, session) → the version vector the peer is known to have.
    known: Mutex<HashMap<(String, String), Vec<u8>>>,
    service: ServiceClient,
    library: Arc<Library>,
    state: StateHandle,
    app_version: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Sessions {
    pub fn load(
        path: PathBuf,
        service: ServiceClient,
        library: Arc<Library>,
        state: StateHandle,
        ui: Option<UiHooks>,
    ) -> anyhow::Result<Arc<Self>> {
        let book = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is damaged ({e}); move it aside to start without shared playlists",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let sessions = Arc::new(Sessions {
            path,
            book: Mutex::new(book),
            saving: tokio::sync::Mutex::new(()),
            ui,
            admitted: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            service,
            library,
            state,
            app_version: format!("whatnext/{}", env!("CARGO_PKG_VERSION")),
        });
        // The state lists shared playlists from the start, not from the first admission.
        sessions.publish();
        Ok(sessions)
    }

    /// Writes the book to `sessions.json` on the blocking pool (the write fsyncs). Saves
    /// take turns, and each serialises the book as it is when its turn comes, so the file
    /// never goes back to an older book than one a finished save wrote.
    async fn save(&self) -> anyhow::Result<()> {
        let _turn = self.saving.lock().await;
        let bytes = serde_json::to_vec_pretty(&*lock(&self.book))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_private_file(&path, &bytes))
            .await
            .map_err(|err| {
                anyhow::anyhow!("the task saving {} failed: {err}", self.path.display())
            })??;
        Ok(())
    }

    pub fn entry(&self, session: &str) -> Option<SessionEntry> {
        lock(&self.book).sessions.get(session).cloned()
    }

    /// Makes `playlist` shareable (or gives it a new key with `rotate`); returns the key.
    pub async fn share(self: &Arc<Self>, playlist: &str, rotate: bool) -> anyhow::Result<String> {
        let key = {
            let mut book = lock(&self.book);
            let entry = book
                .sessions
                .entry(playlist.to_string())
                .or_insert_with(|| SessionEntry {
                    key: new_key(),
                    role: Role::Owner,
                    revoked: vec![],
                });
            if rotate {
                entry.key = new_key();
            }
            entry.key.clone()
        };
        // The key is given out only once it is on disk.
        self.save().await?;
        self.publish();
        let (me, session) = (Arc::clone(self), playlist.to_string());
        tokio::spawn(async move { me.announce_self(&session).await });
        Ok(key)
    }

    /// Revokes a member: refused from now on, removed from the member list, cut off.
    pub async fn revoke(self: &Arc<Self>, playlist: &str, peer: &str) -> anyhow::Result<()> {
        {
            let mut book = lock(&self.book);
            let entry = book
                .sessions
                .get_mut(playlist)
                .ok_or_else(|| anyhow::anyhow!("playlist {playlist} is not shared"))?;
            if !entry.revoked.iter().any(|p| p == peer) {
                entry.revoked.push(peer.to_string());
            }
        }
        self.save().await?;
        if let Some(sessions) = lock(&self.admitted).get_mut(peer) {
            sessions.remove(playlist);
        }
        let (id, who) = (playlist.to_string(), peer.to_string());
        self.library
            .write(move |store, _, _| {
                let changed = store.remove_member(&id, &who)?;
                Ok(((), changed.then_some(id)))
            })
            .await?;
        self.publish();
        Ok(())
    }

    fn is_admitted(&self, peer: &str, session: &str) -> bool {
        lock(&self.admitted)
            .get(peer)
            .is_some_and(|s| s.contains(session))
            && !self
                .entry(session)
                .is_some_and(|e| e.revoked.iter().any(|p| p == peer))
    }

    /// Joins the playlist `session` at `peer` with `key` (from a link). Returns an error with
    /// the peer's reason when refused.
    pub async fn join(
        self: &Arc<Self>,
        peer: &str,
        session: &str,
        key: &str,
    ) -> Result<(), String> {
        let response = self
            .handshake(
                peer,
                vec![SessionProof {
                    session: session.into(),
                    key: key.into(),
                }],
            )
            .await?;
        if let Some(refusal) = response.refused.iter().find(|r| r.session == session) {
            return Err(format!(
                "{peer} refused to share playlist {session}: {}",
                refusal.reason
            ));
        }
        if !response.accepted.iter().any(|s| s == session) {
            return Err(format!("{peer} did not answer for playlist {session}"));
        }
        {
            let mut book = lock(&self.book);
            let entry = book
                .sessions
                .entry(session.to_string())
                .or_insert_with(|| SessionEntry {
                    key: key.to_string(),
                    role: Role::Member,
                    revoked: vec![],
                });
            entry.key = key.to_string();
        }
        self.save().await.map_err(|e| e.to_string())?;
        self.admit(peer, session, &response.display_name).await;
        self.hello(peer, session).await?;
        self.announce_self(session).await;
        self.meet_members(session).await;
        Ok(())
    }

    /// Writes our dialable addresses into the playlist's member list.
    async fn announce_self(self: &Arc<Self>, session: &str) {
        let state = self.state.snapshot();
        let addrs: Vec<String> = invite_addrs(&state.external_addrs, &state.listen_addrs)
            .iter()
            .map(|a| a.to_string())
            .collect();
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

    /// Dials the members of `session` we are not connected to; the handshake on connect
    /// admits both sides, so updates flow directly and not only through whoever relays them.
    async fn meet_members(self: &Arc<Self>, session: &str) {
        let id = session.to_string();
        let Ok(members) = self
            .library
            .read(move |store| store.member_addrs(&id))
            .await
        else {
            return;
        };
        let state = self.state.snapshot();
        for (peer, addrs) in members {
            let connected = state.connections.iter().any(|c| c.peer_id == peer);
            if peer == state.peer_id || connected || addrs.is_empty() {
                continue;
            }
            if self
                .entry(session)
                .is_some_and(|e| e.revoked.contains(&peer))
            {
                continue;
            }
            let service = self.service.clone();
            tokio::spawn(async move {
                if let Err(err) = service
                    .dial(Some(peer.clone()), addrs, REQUEST_TIMEOUT)
                    .await
                {
                    tracing::debug!("could not reach member {peer}: {err}");
                }
            });
        }
    }

    /// Sends our handshake with `proofs` and parses the answer.
    async fn handshake(
        &self,
        peer: &str,
        proofs: Vec<SessionProof>,
    ) -> Result<HandshakeResponse, String> {
        let request = HandshakeRequest {
            app_version: self.app_version.clone(),
            display_name: self.library.author().display_name,
            sessions: proofs,
        };
        let body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
        let reply = self.request(peer, AppProtocol::Handshake, body).await?;
        serde_json::from_value(reply)
            .map_err(|e| format!("{peer} answered the handshake with garbage ({e})"))
    }

    async fn request(
        &self,
        peer: &str,
        protocol: AppProtocol,
        body: Value,
    ) -> Result<Value, String> {
        self.service
            .app_request(peer.to_string(), protocol, body, REQUEST_TIMEOUT)
            .await
            .map_err(|err| err.to_string())
    }

    async fn admit(self: &Arc<Self>, peer: &str, session: &str, display_name: &str) {
        lock(&self.admitted)
            .entry(peer.to_string())
            .or_default()
            .insert(session.to_string());
        // Changes made while the peer was not admitted (e.g. during a reconnect) were not
        // pushed to it; if we know its version, send what it lacks now.
        if lock(&self.known).contains_key(&(peer.to_string(), session.to_string())) {
            let (me, peer, session) = (Arc::clone(self), peer.to_string(), session.to_string());
            tokio::spawn(async move { me.push_to(&peer, &session).await });
        }
        let member = Author {
            peer_id: peer.to_string(),
            display_name: display_name.to_string(),
        };
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
                    let playlist = self
                        .state
                        .snapshot()
                        .playlists
                        .iter()
                        .find(|p| p.id == session)
                        .map_or_else(|| session.to_string(), |p| p.name.clone());
                    (ui.notify)(UiEvent::PeerJoined {
                        name: display_name.to_string(),
                        playlist,
                    });
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!("could not record member {peer} of {session}: {err}"),
        }
        self.publish();
    }

    /// Asks `peer` for what we lack of `session` and applies it.
    async fn hello(self: &Arc<Self>, peer: &str, session: &str) -> Result<(), String> {
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
        let body = serde_json::to_value(SyncRequest::Hello {
            session: session.into(),
            version: B64.encode(version),
        })
        .map_err(|e| e.to_string())?;
        let reply = self.request(peer, AppProtocol::Sync, body).await?;
        match serde_json::from_value::<SyncResponse>(reply) {
            Ok(SyncResponse::Updates {
                session: s,
                updates,
            }) if s == session => {
                let updates = unpack(&updates)
                    .map_err(|e| format!("{peer} sent undecodable updates: {e}"))?;
                self.apply(peer, session, updates).await
            }
            Ok(SyncResponse::Refused { reason }) => {
                Err(format!("{peer} refused to sync {session}: {reason}"))
            }
            Ok(other) => Err(format!("{peer} answered hello with {other:?}")),
            Err(e) => Err(format!("{peer} answered hello with garbage ({e})")),
        }
    }

    async fn apply(
        self: &Arc<Self>,
        peer: &str,
        session: &str,
        updates: Vec<u8>,
    ) -> Result<(), String> {
        if updates.is_empty() {
            return Ok(());
        }
        let id = session.to_string();
        let changed = self
            .library
            .write(move |store, _, now| {
                let changed = store.apply_remote(&id, &updates, now)?;
                Ok((changed, changed.then_some(id)))
            })
            .await
            .map_err(|e| format!("updates from {peer} for {session} were refused: {e}"))?;
        if changed {
            tracing::debug!("applied updates from {peer} to {session}");
            let (me, session) = (Arc::clone(self), session.to_string());
            tokio::spawn(async move { me.meet_members(&session).await });
        }
        Ok(())
    }

    /// Handles connection and app-protocol events from the network service.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut changes: mpsc::UnboundedReceiver<String>,
    ) {
        // Anti-entropy: a push can be lost (the peer was reconnecting, a request timed out);
        // a periodic delta to every admitted member repairs it. Empty deltas cost nothing.
        // The same tick reconnects to members we are not connected to.
        let mut repair = tokio::time::interval(REPAIR_INTERVAL);
        repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = events.recv() => {
                    let me = Arc::clone(&self);
                    tokio::spawn(async move { me.on_event(event).await });
                }
                Some(playlist) = changes.recv() => {
                    let me = Arc::clone(&self);
                    tokio::spawn(async move { me.push(&playlist).await });
                }
                _ = repair.tick() => {
                    let pairs: Vec<(String, String)> = lock(&self.admitted)
                        .iter()
                        .flat_map(|(peer, sessions)| sessions.iter().map(|s| (peer.clone(), s.clone())))
                        .collect();
                    // …and members we lost (they restarted on new ports and cannot find
                    // us, or a connection dropped) are dialed again at their addresses.
                    let sessions: Vec<String> = lock(&self.book).sessions.keys().cloned().collect();
                    let me = Arc::clone(&self);
                    tokio::spawn(async move {
                        for (peer, session) in pairs {
                            me.push_to(&peer, &session).await;
                        }
                        for session in sessions {
                            me.meet_members(&session).await;
                        }
                    });
                }
                else => break,
            }
        }
    }

    async fn on_event(self: Arc<Self>, event: Event) {
        match event {
            Event::RequestReceived {
                request_id,
                peer_id,
                protocol,
                body,
            } => {
                let answer = match protocol {
                    AppProtocol::Handshake => self.on_handshake(&peer_id, body).await,
                    AppProtocol::Sync => self.on_sync(&peer_id, body).await,
                };
                self.service
                    .notify(Command::Respond {
                        request_id,
                        body: answer,
                    })
                    .await;
            }
            Event::ConnectionEstablished(info) => self.on_connected(&info.peer_id).await,
            Event::ConnectionClosed { peer_id, .. } => {
                let still = self
                    .state
                    .snapshot()
                    .connections
                    .iter()
                    .any(|c| c.peer_id == peer_id);
                if !still {
                    lock(&self.admitted).remove(&peer_id);
                    self.publish();
                }
            }
            _ => {}
        }
    }

    /// A peer connected: if it is a member of playlists we share, prove our keys again so
    /// both sides re-admit each other and catch up (after a restart, or being offline).
    async fn on_connected(self: &Arc<Self>, peer: &str) {
        let peer_owned = peer.to_string();
        let shared: Vec<(String, String)> = lock(&self.book)
            .sessions
            .iter()
            .map(|(id, e)| (id.clone(), e.key.clone()))
            .collect();
        let ids: Vec<String> = shared.iter().map(|(id, _)| id.clone()).collect();
        let members_of = self
            .library
            .read(move |store| {
                Ok(ids
                    .into_iter()
                    .filter(|id| store.is_member(id, &peer_owned).unwrap_or(false))
                    .collect::<HashSet<String>>())
            })
            .await
            .unwrap_or_default();
        let proofs: Vec<SessionProof> = shared
            .into_iter()
            .filter(|(id, _)| members_of.contains(id))
            .map(|(session, key)| SessionProof { session, key })
            .collect();
        if proofs.is_empty() {
            return;
        }
        match self.handshake(peer, proofs).await {
            Ok(response) => {
                for session in &response.accepted {
                    self.admit(peer, session, &response.display_name).await;
                    if let Err(err) = self.hello(peer, session).await {
                        tracing::warn!("catching up {session} with {peer}: {err}");
                    }
                }
            }
            Err(err) => tracing::debug!("re-handshake with {peer}: {err}"),
        }
    }

    async fn on_handshake(self: &Arc<Self>, peer: &str, body: Value) -> Value {
        let request: HandshakeRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("malformed handshake from {peer}: {err}; disconnecting it");
                self.service
                    .notify(Command::HangUp {
                        peer_id: peer.to_string(),
                    })
                    .await;
                return serde_json::json!({"error": "malformed handshake"});
            }
        };
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for proof in request.sessions.iter().take(64) {
            let verdict = match self.entry(&proof.session) {
                None => Err("no such shared playlist here".to_string()),
                Some(e) if e.revoked.iter().any(|p| p == peer) => {
                    Err("your access was revoked by the owner".into())
                }
                Some(e) if !same_secret(e.key.as_bytes(), proof.key.as_bytes()) => {
                    Err("wrong key: ask for a new link".into())
                }
                Some(_) => Ok(()),
            };
            match verdict {
                Ok(()) => accepted.push(proof.session.clone()),
                Err(reason) => {
                    tracing::warn!("refused {peer} for playlist {}: {reason}", proof.session);
                    let message =
                        format!("refused {peer} for playlist {}: {reason}", proof.session);
                    self.state.update(|s| {
                        s.last_error = Some(message);
                        true
                    });
                    refused.push(Refusal {
                        session: proof.session.clone(),
                        reason,
                    });
                }
            }
        }
        for session in &accepted {
            self.admit(peer, session, &request.display_name).await;
            // Catch up with what the newcomer has (offline edits) without delaying our answer.
            let (me, peer, session) = (Arc::clone(self), peer.to_string(), session.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Err(err) = me.hello(&peer, &session).await {
                    tracing::debug!("hello to {peer} for {session}: {err}");
                }
            });
        }
        let response = HandshakeResponse {
            app_version: self.app_version.clone(),
            display_name: self.library.author().display_name,
            accepted,
            refused,
        };
        serde_json::to_value(response).unwrap_or(Value::Null)
    }

    async fn on_sync(self: &Arc<Self>, peer: &str, body: Value) -> Value {
        let refuse = |reason: String| {
            serde_json::to_value(SyncResponse::Refused { reason }).unwrap_or(Value::Null)
        };
        let request: SyncRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("malformed sync message from {peer}: {err}; disconnecting it");
                self.service
                    .notify(Command::HangUp {
                        peer_id: peer.to_string(),
                    })
                    .await;
                return refuse("malformed message".into());
            }
        };
        let session = match &request {
            SyncRequest::Hello { session, .. } | SyncRequest::Push { session, .. } => {
                session.clone()
            }
        };
        if !self.is_admitted(peer, &session) {
            tracing::warn!("{peer} sent sync for playlist {session} without being admitted");
            return refuse("not admitted to this playlist".into());
        }
        match request {
            SyncRequest::Hello { version, .. } => {
                let Ok(version) = B64.decode(version) else {
                    return refuse("undecodable version".into());
                };
                let id = session.clone();
                let exported = self
                    .library
                    .read(move |store| {
                        if store.contains(&id) {
                            Ok((store.export_since(&id, &version)?, store.version(&id)?))
                        } else {
                            Ok((Vec::new(), version))
                        }
                    })
                    .await;
                match exported {
                    Ok((updates, ours)) => {
                        // Once it applies this answer the peer has everything we have: later
                        // pushes start from here instead of resending it all.
                        lock(&self.known).insert((peer.to_string(), session.clone()), ours);
                        serde_json::to_value(SyncResponse::Updates {
                            session,
                            updates: pack(&updates),
                        })
                        .unwrap_or(Value::Null)
                    }
                    Err(err) => refuse(err.to_string()),
                }
            }
            SyncRequest::Push { updates, .. } => {
                let updates = match unpack(&updates) {
                    Ok(updates) => updates,
                    Err(err) => return refuse(format!("undecodable updates: {err}")),
                };
                match self.apply(peer, &session, updates).await {
                    Ok(()) => serde_json::to_value(SyncResponse::Ack).unwrap_or(Value::Null),
                    Err(reason) => refuse(reason),
                }
            }
        }
    }

    /// Sends each admitted member of `playlist` what it lacks.
    async fn push(self: &Arc<Self>, playlist: &str) {
        if self.entry(playlist).is_none() {
            return;
        }
        let peers: Vec<String> = lock(&self.admitted)
            .iter()
            .filter(|(_, sessions)| sessions.contains(playlist))
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in peers {
            self.push_to(&peer, playlist).await;
        }
    }

    /// Sends `peer` the updates of `playlist` it is not known to have.
    async fn push_to(self: &Arc<Self>, peer: &str, playlist: &str) {
        let known = lock(&self.known)
            .get(&(peer.to_string(), playlist.to_string()))
            .cloned()
            .unwrap_or_default();
        let id = playlist.to_string();
        let exported = self
            .library
            .read(move |store| Ok((store.export_since(&id, &known)?, store.version(&id)?)))
            .await;
        let Ok((updates, version)) = exported else {
            return;
        };
        if updates.is_empty() {
            return;
        }
        let body = serde_json::to_value(SyncRequest::Push {
            session: playlist.into(),
            updates: pack(&updates),
        })
        .unwrap_or(Value::Null);
        match self
            .request(peer, AppProtocol::Sync, body)
            .await
            .map(serde_json::from_value::<SyncResponse>)
        {
            Ok(Ok(SyncResponse::Ack)) => {
                lock(&self.known).insert((peer.to_string(), playlist.to_string()), version);
            }
            other => tracing::debug!("push of {playlist} to {peer}: {other:?}"),
        }
    }

    /// Publishes the sessions and their online members in `AppState`.
    fn publish(&self) {
        let book = lock(&self.book);
        let admitted = lock(&self.admitted);
        let sessions: Vec<whatnext_protocol::state::SessionState> = book
            .sessions
            .iter()
            .map(|(id, entry)| whatnext_protocol::state::SessionState {
                id: id.clone(),
                role: match entry.role {
                    Role::Owner => whatnext_protocol::state::SessionRole::Owner,
                    Role::Member => whatnext_protocol::state::SessionRole::Member,
                },
                connected_members: {
                    let mut m: Vec<String> = admitted
                        .iter()
                        .filter(|(_, s)| s.contains(id))
                        .map(|(p, _)| p.clone())
                        .collect();
                    m.sort();
                    m
                },
                service: whatnext_protocol::state::MAIN_SERVICE.to_string(),
            })
            .collect();
        drop((book, admitted));
        self.state.update(|s| {
            let changed = s.sessions != sessions;
            s.sessions = sessions;
            changed
        });
    }

    pub fn online(&self, session: &str) -> HashSet<String> {
        lock(&self.admitted)
            .iter()
            .filter(|(_, s)| s.contains(session))
            .map(|(p, _)| p.clone())
            .collect()
    }
}
