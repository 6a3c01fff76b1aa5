//! Shared playlists ("sessions"): who may join, who is admitted, and keeping members in sync.
//!
//! * The capability: `share` gives a playlist a random 128-bit key, kept in
//!   `<home>/sessions.json` (0600) — never in the shared document. A link carries
//!   `session=<playlist id>&key=<key>`; every member stores the key it joined with, so any
//!   member can admit (and re-admit after reconnects) the others.
//! * The handshake (`/whatnext/handshake/1.0.0`): the dialer proves a key per session; the
//!   other side admits or refuses each ([`admission::admit`]). A refused peer gets nothing of
//!   that playlist.
//! * Sync (`/whatnext/sync/2.0.0`): on admission both sides send `hello` with their version
//!   vector and receive what they lack; afterwards every change to a shared playlist — local,
//!   or received from another member — is pushed to the admitted members still lacking it,
//!   so updates also reach members that cannot connect to each other directly.
//! * Isolated shares (`share --isolated`): the playlist is served by a network service of its
//!   own with its own identity ([`crate::services`]); admission is per service, so the main
//!   identity admits nobody to it and the isolated one admits to nothing else.
//!
//! One task owns all of it — the book, who is admitted through which service, what each
//! member is known to have — and takes messages ([`Sessions`] is the handle). Decisions are
//! made in the task, synchronously; the network and store work runs in tasks of its own
//! (`work.rs`) that report back as messages, so nothing here waits while holding state.

mod admission;
pub mod clock;
mod exports;
mod msg;
mod reactions;
mod work;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use whatnext_home::{files::write_private_file, identity::Identity};
use whatnext_protocol::{
    blob::{BlobRequest, BlobResponse},
    ipc::{AppProtocol, Command, Event},
    playlist::Author,
    session::{
        HandshakeRequest, HandshakeResponse, Refusal, SessionProof, SyncRequest, SyncResponse,
        unpack,
    },
    state::{MAIN_SERVICE, NodeStatus, SessionRole, SessionState},
};

pub use admission::{Book, Refused, Role, SessionEntry, admit};
use msg::Msg;
pub use msg::{ShareError, Shared};
use reactions::Reactions;
use work::Ctx;

use crate::{
    library::Library,
    services::{IsolatedServices, ServiceHandle, load_identity},
    state::{StateHandle, now_ms, report_problem},
    supervisor::ServiceEvent,
    ui::UiHooks,
};

const REPAIR_INTERVAL: Duration = Duration::from_secs(5);
/// Longest a tunnelled guest request waits for its answer (a long poll waits 25 s).
const GUEST_TUNNEL_ANSWER: Duration = Duration::from_secs(28);
/// How many members a member (other than the owner) passes received changes on to.
const FORWARD_FANOUT: usize = 2;
/// How many members each anti-entropy round repairs, per shared playlist.
const REPAIR_FANOUT: usize = 3;
/// How many shared playlists an anti-entropy round that pulls pulls (from one member each).
const PULLS_PER_ROUND: usize = 8;
/// How long `share --isolated` waits for the new service's addresses (for the link).
const ISOLATED_START_WAIT: Duration = Duration::from_secs(20);
/// Audio groups read and sent at once, to all members together.
const MAX_UPLOADS: usize = 4;

/// What the sessions task is started with.
pub struct SessionsConfig {
    /// `<home>/sessions.json`.
    pub path: PathBuf,
    pub main: ServiceHandle,
    pub isolated: IsolatedServices,
    pub library: Arc<Library>,
    pub ui: Option<UiHooks>,
    /// The music library, which serves members the audio they fetch.
    pub music: Arc<crate::music::Music>,
    pub transfers: Arc<crate::transfers::TransferBoard>,
    /// The open guest pages (which relay may forward whose requests).
    pub guests: Arc<crate::guests::Guests>,
    /// Where guests' requests through a relay go (the API answers them).
    pub guest_tunnel: mpsc::Sender<crate::guests::TunnelCall>,
}

/// The handle of the sessions task.
#[derive(Clone)]
pub struct Sessions {
    tx: mpsc::UnboundedSender<Msg>,
    /// Where isolated identities live (loaded off the task: file I/O).
    identities: PathBuf,
    /// Members' clock offsets, as the task publishes them.
    clock_offsets: tokio::sync::watch::Receiver<clock::Offsets>,
}

fn new_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn stopped() -> anyhow::Error {
    anyhow::anyhow!("the shared playlists have stopped: the controller is shutting down")
}

impl Sessions {
    /// Reads `sessions.json`, starts the isolated services it names and the sessions task.
    /// Fails when `sessions.json` is unreadable (it is never overwritten then).
    pub fn start(
        config: SessionsConfig,
        events: mpsc::UnboundedReceiver<ServiceEvent>,
        changes: mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<Sessions> {
        let SessionsConfig {
            path,
            main,
            isolated,
            library,
            ui,
            music,
            transfers,
            guests,
            guest_tunnel,
        } = config;
        let book = read_book(&path)?;
        let (tx, msgs) = mpsc::unbounded_channel();
        let mut services = HashMap::from([(MAIN_SERVICE.to_string(), main.clone())]);
        for (id, entry) in &book.sessions {
            if !entry.isolated {
                continue;
            }
            match load_identity(&isolated.dir, id) {
                Ok(identity) => {
                    library.set_author_for(id, Some(&identity.keypair));
                    services.insert(id.clone(), isolated.start(id, &identity));
                }
                Err(err) => tracing::error!(
                    "{err:#}; the isolated share of playlist {id} is not served until it is fixed"
                ),
            }
        }
        let (saver, jobs) = mpsc::unbounded_channel();
        tokio::spawn(save_in_order(path.clone(), jobs));
        let identities = isolated.dir.clone();
        let clocks = clock::Clocks::default();
        let clock_offsets = clocks.subscribe();
        let actor = Actor {
            book,
            admitted: HashMap::new(),
            known: HashMap::new(),
            main: main.clone(),
            services,
            isolated,
            state: main.state.clone(),
            ctx: Ctx {
                library,
                tx: tx.clone(),
                ui,
                app_version: format!("whatnext/{}", env!("CARGO_PKG_VERSION")),
                music,
                transfers,
                uploads: Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS)),
                guests,
                guest_tunnel,
                hellos: Arc::default(),
                exports: Arc::default(),
            },
            saver,
            reactions: Reactions::default(),
            clocks,
            repairs: 0,
            heard: HashMap::new(),
            dialing: HashSet::new(),
            announced: HashMap::new(),
        };
        // The state lists shared playlists from the start, not from the first admission.
        actor.publish();
        tokio::spawn(actor.run(msgs, events, changes));
        Ok(Sessions {
            tx,
            identities,
            clock_offsets,
        })
    }

    fn send(&self, msg: Msg) -> anyhow::Result<()> {
        self.tx.send(msg).map_err(|_| stopped())
    }

    /// Makes `playlist` shareable (or gives it a new key with `rotate`; with `isolated`,
    /// moves it to a network service and identity of its own). Returns once the key is on
    /// disk.
    pub async fn share(
        &self,
        playlist: &str,
        rotate: bool,
        isolated: bool,
    ) -> Result<Shared, ShareError> {
        let isolated = if isolated {
            let (dir, id) = (self.identities.clone(), playlist.to_string());
            let identity = tokio::task::spawn_blocking(move || load_identity(&dir, &id))
                .await
                .map_err(|e| anyhow::anyhow!("the task loading the identity failed: {e}"))??;
            Some(Box::new(identity))
        } else {
            None
        };
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Share {
            playlist: playlist.to_string(),
            rotate,
            isolated,
            reply,
        })?;
        answer.await.map_err(|_| ShareError::Failed(stopped()))?
    }

    /// Revokes a member: refused from now on, removed from the member list, cut off.
    pub async fn revoke(&self, playlist: &str, peer: &str) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Revoke {
            playlist: playlist.to_string(),
            peer: peer.to_string(),
            reply,
        })?;
        answer.await.map_err(|_| stopped())?
    }

    /// Reacts to what plays in `session` with `emoji` (shown to the members online for
    /// 30 s): ours, or with `by` that of a guest of ours (the members check it is).
    pub async fn react(&self, session: &str, emoji: &str, by: Option<&str>) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::React {
            session: session.to_string(),
            emoji: emoji.to_string(),
            by: by.map(str::to_string),
            reply,
        })?;
        answer.await.map_err(|_| stopped())?
    }

    /// The service that serves `playlist` and the members admitted to it there, connected
    /// now (whom to fetch its audio from).
    /// Members' clocks against ours (their clock minus ours, ms), measured on the
    /// connections of every service (isolated ones too).
    pub fn clock_offsets(&self) -> clock::Offsets {
        self.clock_offsets.borrow().clone()
    }

    pub async fn route(&self, playlist: &str) -> Option<(ServiceHandle, Vec<String>)> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Route {
            playlist: playlist.to_string(),
            reply,
        })
        .ok()?;
        answer.await.ok().flatten()
    }

    /// Joins the playlist `session` at `peer` with `key` (from a link). Returns an error with
    /// the peer's reason when refused.
    pub async fn join(&self, peer: &str, session: &str, key: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Join {
            peer: peer.to_string(),
            session: session.to_string(),
            key: key.to_string(),
            reply,
        })
        .map_err(|e| e.to_string())?;
        answer.await.map_err(|_| stopped().to_string())?
    }
}

/// The contents of `sessions.json` (empty when there is none).
fn read_book(path: &std::path::Path) -> anyhow::Result<Book> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); move it aside to start without shared playlists",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Book::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

type SaveJob = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// Writes `sessions.json` on the blocking pool (it fsyncs), one job after the other in the
/// order the sessions task made them: the file never goes back to an older book.
async fn save_in_order(path: PathBuf, mut jobs: mpsc::UnboundedReceiver<SaveJob>) {
    while let Some((bytes, done)) = jobs.recv().await {
        let target = path.clone();
        let result = tokio::task::spawn_blocking(move || write_private_file(&target, &bytes))
            .await
            .map_err(|e| format!("the task saving {} failed: {e}", path.display()))
            .and_then(|written| written.map_err(|e| e.to_string()));
        let _ = done.send(result);
    }
}

/// Waits (up to `limit`) until the service of `state` runs and has addresses.
async fn wait_running(state: &StateHandle, limit: Duration) {
    let mut changes = state.subscribe();
    let running = changes.wait_for(|s| s.node == NodeStatus::Running && !s.listen_addrs.is_empty());
    let _ = tokio::time::timeout(limit, running).await;
}

struct Actor {
    book: Book,
    /// (service, peer) → the sessions it is admitted to on its current connection.
    admitted: HashMap<(String, String), HashSet<String>>,
    /// (service, peer, session) → the version vector the peer is known to have.
    known: HashMap<(String, String, String), Vec<u8>>,
    main: ServiceHandle,
    /// "main" and one per isolated share, by name.
    services: HashMap<String, ServiceHandle>,
    isolated: IsolatedServices,
    /// The controller's state (where the sessions are published).
    state: StateHandle,
    ctx: Ctx,
    saver: mpsc::UnboundedSender<SaveJob>,
    reactions: Reactions,
    /// Clock samples of members (NTP-style), for `clock` on their connections.
    clocks: clock::Clocks,
    /// Anti-entropy rounds so far.
    repairs: u64,
    /// (playlist, member) → when it last sent us something new: pulls go only to members
    /// that have been quiet (a member that is sending needs no asking).
    heard: HashMap<(String, String), Instant>,
    /// (service, member) dials under way.
    dialing: HashSet<(String, String)>,
    /// The addresses each service last recorded for itself in the playlists it serves: when
    /// they change (another network, new ports) they are recorded again, so members find it.
    announced: HashMap<String, Vec<String>>,
}

impl Actor {
    async fn run(
        mut self,
        mut msgs: mpsc::UnboundedReceiver<Msg>,
        mut events: mpsc::UnboundedReceiver<ServiceEvent>,
        mut changes: mpsc::UnboundedReceiver<String>,
    ) {
        // Anti-entropy: a push can be lost (the peer was reconnecting, a request timed out);
        // a periodic delta to every admitted member repairs it. Empty deltas cost nothing.
        // The same tick reconnects to members we are not connected to.
        let mut repair = tokio::time::interval(REPAIR_INTERVAL);
        repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reactions are shown for 30 s: the state drops them on time.
        let mut prune = tokio::time::interval(Duration::from_secs(1));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(msg) = msgs.recv() => self.on_msg(msg),
                Some(event) = events.recv() => self.on_event(event),
                Some(playlist) = changes.recv() => self.push(&playlist),
                _ = repair.tick() => self.repair(),
                _ = prune.tick() => {
                    if self.reactions.prune(now_ms()) {
                        self.publish();
                    }
                }
                else => break,
            }
        }
    }

    /// Queues a write of the book as it is now; the receiver says when it is durable.
    fn save(&self) -> oneshot::Receiver<Result<(), String>> {
        let (done, saved) = oneshot::channel();
        match serde_json::to_vec_pretty(&self.book) {
            Ok(bytes) => {
                let _ = self.saver.send((bytes, done));
            }
            Err(err) => {
                let _ = done.send(Err(format!("cannot encode sessions.json: {err}")));
            }
        }
        saved
    }

    fn main(&self) -> ServiceHandle {
        self.main.clone()
    }

    /// The service that serves the shared playlist `id`, if it is shared and running.
    fn serving(&self, id: &str) -> Option<ServiceHandle> {
        let entry = self.book.sessions.get(id)?;
        self.services.get(entry.service(id)).cloned()
    }

    fn revoked(&self, id: &str) -> HashSet<String> {
        self.book
            .sessions
            .get(id)
            .map(|e| e.revoked.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn is_admitted(&self, service: &str, peer: &str, session: &str) -> bool {
        self.admitted
            .get(&(service.to_string(), peer.to_string()))
            .is_some_and(|s| s.contains(session))
            && !self
                .book
                .sessions
                .get(session)
                .is_some_and(|e| e.is_revoked(peer))
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::ClockSample {
                service,
                peer,
                sample,
            } => {
                let estimate = self.clocks.add(&peer, sample);
                if let Some(via) = self.services.get(&service) {
                    via.state.update(|s| {
                        let mut changed = false;
                        for c in s.connections.iter_mut().filter(|c| c.peer_id == peer) {
                            changed |= c.clock != Some(estimate);
                            c.clock = Some(estimate);
                        }
                        changed
                    });
                }
            }
            Msg::Route { playlist, reply } => {
                let route = self.serving(&playlist).map(|via| {
                    let peers = self
                        .admitted
                        .iter()
                        .filter(|((service, peer), _)| {
                            *service == via.name && self.is_admitted(service, peer, &playlist)
                        })
                        .map(|((_, peer), _)| peer.clone())
                        .collect();
                    (via, peers)
                });
                let _ = reply.send(route);
            }
            Msg::Share {
                playlist,
                rotate,
                isolated,
                reply,
            } => self.share(playlist, rotate, isolated, reply),
            Msg::Revoke {
                playlist,
                peer,
                reply,
            } => self.revoke(playlist, peer, reply),
            Msg::Join {
                peer,
                session,
                key,
                reply,
            } => {
                let (ctx, main) = (self.ctx.clone(), self.main());
                tokio::spawn(async move {
                    let proof = SessionProof {
                        session: session.clone(),
                        key: key.clone(),
                    };
                    match ctx.handshake(&main, &peer, vec![proof]).await {
                        Ok(response) => match accepted_for(&response, &peer, &session) {
                            Ok(()) => ctx.tell(Msg::Accepted {
                                display_name: response.display_name,
                                peer,
                                session,
                                key,
                                reply,
                            }),
                            Err(why) => {
                                let _ = reply.send(Err(why));
                            }
                        },
                        Err(why) => {
                            let _ = reply.send(Err(why));
                        }
                    }
                });
            }
            Msg::Accepted {
                peer,
                session,
                key,
                display_name,
                reply,
            } => {
                let entry = self
                    .book
                    .sessions
                    .entry(session.clone())
                    .or_insert_with(|| SessionEntry {
                        key: key.clone(),
                        role: Role::Member,
                        revoked: vec![],
                        isolated: false,
                    });
                entry.key = key;
                let saved = self.save();
                self.admit(MAIN_SERVICE, &peer, &session, &display_name);
                let (ctx, main, revoked) = (self.ctx.clone(), self.main(), self.revoked(&session));
                tokio::spawn(async move {
                    let joined = async {
                        saved.await.map_err(|_| stopped().to_string())??;
                        ctx.hello(&main, &peer, &session).await?;
                        ctx.announce_self(&main, &session).await;
                        ctx.meet_members(&main, &session, revoked, true).await;
                        Ok(())
                    };
                    let _ = reply.send(joined.await);
                });
            }
            Msg::Admit {
                service,
                peer,
                sessions,
                display_name,
            } => {
                for session in sessions {
                    self.admit(&service, &peer, &session, &display_name);
                }
            }
            Msg::Known {
                service,
                peer,
                session,
                version,
            } => {
                self.known.insert((service, peer, session), version);
            }
            Msg::Refused {
                service,
                peer,
                sessions,
            } => {
                // Forgetting what it had is what keeps the anti-entropy round from
                // handshaking again every 5 s (each refusal a problem shown on its side).
                for session in sessions {
                    self.known.remove(&(service.clone(), peer.clone(), session));
                }
            }
            Msg::React {
                session,
                emoji,
                by,
                reply,
            } => {
                let _ = reply.send(self.react(&session, &emoji, by));
            }
            Msg::GuestReaction {
                session,
                guest,
                emoji,
            } => {
                if self
                    .reactions
                    .record(&session, &guest, &emoji, now_ms())
                    .is_ok()
                {
                    self.publish();
                }
            }
            Msg::Forward {
                session,
                from,
                from_owner,
            } => {
                self.heard
                    .insert((session.clone(), from.clone()), Instant::now());
                self.forward(&session, &from, from_owner);
            }
            Msg::Dial {
                service,
                peer,
                addrs,
            } => {
                let Some(via) = self.services.get(&service).cloned() else {
                    return;
                };
                if !self.dialing.insert((service.clone(), peer.clone())) {
                    return;
                }
                let tx = self.ctx.tx.clone();
                tokio::spawn(async move {
                    if let Err(err) = via
                        .client
                        .dial(Some(peer.clone()), addrs, work::REQUEST_TIMEOUT)
                        .await
                    {
                        tracing::debug!("could not reach member {peer}: {err}");
                    }
                    let _ = tx.send(Msg::Dialed { service, peer });
                });
            }
            Msg::Dialed { service, peer } => {
                self.dialing.remove(&(service, peer));
            }
            Msg::Meet(session) => {
                if let Some(via) = self.serving(&session) {
                    let (ctx, skip) = (self.ctx.clone(), self.revoked(&session));
                    tokio::spawn(
                        async move { ctx.meet_members(&via, &session, skip, false).await },
                    );
                }
            }
        }
    }

    fn share(
        &mut self,
        playlist: String,
        rotate: bool,
        isolated: Option<Box<Identity>>,
        reply: oneshot::Sender<Result<Shared, ShareError>>,
    ) {
        let entry = self
            .book
            .sessions
            .entry(playlist.clone())
            .or_insert_with(|| SessionEntry {
                key: new_key(),
                role: Role::Owner,
                revoked: vec![],
                isolated: false,
            });
        if isolated.is_some() && entry.role == Role::Member {
            let _ = reply.send(Err(ShareError::NotAllowed(format!(
                "playlist {playlist} was shared with you; only its owner can move it to an isolated identity"
            ))));
            return;
        }
        if rotate {
            entry.key = new_key();
        }
        let key = entry.key.clone();
        // Members admitted through another service (the playlist moves): told once, through
        // that service, where the playlist lives now, then no longer admitted there.
        let mut moved: Vec<(ServiceHandle, String, Vec<u8>)> = Vec::new();
        let isolated_peer = isolated.map(|identity| {
            entry.isolated = true;
            if !self.services.contains_key(&playlist) {
                let service = self.isolated.start(&playlist, &identity);
                self.services.insert(playlist.clone(), service);
            }
            for ((service, peer), sessions) in &mut self.admitted {
                if *service != playlist && sessions.remove(&playlist) {
                    let known = self
                        .known
                        .get(&(service.clone(), peer.clone(), playlist.clone()))
                        .cloned()
                        .unwrap_or_default();
                    if let Some(via) = self.services.get(service) {
                        moved.push((via.clone(), peer.clone(), known));
                    }
                }
            }
            (identity.peer_id.to_string(), identity.keypair.clone())
        });
        let saved = self.save();
        self.publish();
        let Some(via) = self.serving(&playlist) else {
            let _ = reply.send(Err(ShareError::Failed(anyhow::anyhow!(
                "the network service of playlist {playlist} is not running; see the log"
            ))));
            return;
        };
        let ctx = self.ctx.clone();
        let main_peer = self.state.snapshot().peer_id;
        tokio::spawn(async move {
            let shared = async {
                // The key is given out only once it is on disk.
                saved
                    .await
                    .map_err(|_| stopped())?
                    .map_err(|e| anyhow::anyhow!(e))?;
                if let Some((peer_id, isolated_key)) = isolated_peer {
                    // From now on our edits there carry (and are signed by) the isolated
                    // identity, and what the main one owned and added in it moves to it.
                    ctx.library.set_author_for(&playlist, Some(&isolated_key));
                    let author = Author {
                        peer_id,
                        display_name: ctx.library.author().display_name,
                    };
                    let id = playlist.clone();
                    ctx.library
                        .write(move |store, _, _| {
                            let changed = store.reattribute(&id, &main_peer, &author)?;
                            Ok(((), changed.then_some(id)))
                        })
                        .await?;
                    wait_running(&via.state, ISOLATED_START_WAIT).await;
                }
                ctx.announce_self(&via, &playlist).await;
                // The playlist now names the isolated identity and its addresses: members
                // who joined through the old one learn that, dial it and are admitted there.
                for (old, peer, known) in moved {
                    ctx.push_to(&old, &peer, &playlist, known).await;
                }
                Ok(Shared {
                    key,
                    served_by: via.state.snapshot(),
                })
            };
            let _ = reply.send(shared.await.map_err(ShareError::Failed));
        });
    }

    fn revoke(
        &mut self,
        playlist: String,
        peer: String,
        reply: oneshot::Sender<anyhow::Result<()>>,
    ) {
        let Some(entry) = self.book.sessions.get_mut(&playlist) else {
            let _ = reply.send(Err(anyhow::anyhow!("playlist {playlist} is not shared")));
            return;
        };
        if !entry.is_revoked(&peer) {
            entry.revoked.push(peer.clone());
        }
        let saved = self.save();
        for ((_, admitted_peer), sessions) in &mut self.admitted {
            if *admitted_peer == peer {
                sessions.remove(&playlist);
            }
        }
        self.publish();
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let revoked = async {
                saved
                    .await
                    .map_err(|_| stopped())?
                    .map_err(|e| anyhow::anyhow!(e))?;
                ctx.library
                    .write(move |store, _, _| {
                        let changed = store.remove_member(&playlist, &peer)?;
                        Ok(((), changed.then_some(playlist)))
                    })
                    .await?;
                Ok(())
            };
            let _ = reply.send(revoked.await);
        });
    }

    /// Our reaction to `session` (or, `by`, a guest of ours): shown here and sent to the
    /// members online.
    fn react(&mut self, session: &str, emoji: &str, by: Option<String>) -> anyhow::Result<()> {
        let Some(via) = self.serving(session) else {
            return Err(anyhow::anyhow!(
                "playlist {session} is not shared: reactions go to the members of a shared playlist"
            ));
        };
        let me = by.clone().unwrap_or_else(|| via.peer_id());
        self.reactions
            .record(session, &me, emoji, now_ms())
            .map_err(|why| anyhow::anyhow!(why.reason()))?;
        self.publish();
        for ((service, peer), sessions) in &self.admitted {
            if *service != via.name || !sessions.contains(session) {
                continue;
            }
            let body = serde_json::to_value(SyncRequest::React {
                session: session.to_string(),
                emoji: emoji.to_string(),
                by: by.clone(),
            })
            .unwrap_or(Value::Null);
            let (client, peer) = (via.client.clone(), peer.clone());
            tokio::spawn(async move {
                let sent = client
                    .app_request(peer.clone(), AppProtocol::Sync, body, work::REQUEST_TIMEOUT)
                    .await;
                if let Err(err) = sent {
                    tracing::debug!("reaction to {peer}: {err}");
                }
            });
        }
        Ok(())
    }

    /// Admits `peer` to `session` on `service`: records it, catches it up if we know what it
    /// has, and records it as a member in the playlist.
    fn admit(&mut self, service: &str, peer: &str, session: &str, display_name: &str) {
        self.admitted
            .entry((service.to_string(), peer.to_string()))
            .or_default()
            .insert(session.to_string());
        // Changes made while the peer was not admitted (e.g. during a reconnect) were not
        // pushed to it; if we know its version, send what it lacks now.
        let known = self
            .known
            .get(&(service.to_string(), peer.to_string(), session.to_string()))
            .cloned();
        if let (Some(known), Some(via)) = (known, self.services.get(service).cloned()) {
            let (ctx, peer, session) = (self.ctx.clone(), peer.to_string(), session.to_string());
            tokio::spawn(async move { ctx.push_to(&via, &peer, &session, known).await });
        }
        let playlist_name = self
            .state
            .snapshot()
            .playlists
            .iter()
            .find(|p| p.id == session)
            .map_or_else(|| session.to_string(), |p| p.name.clone());
        let member = Author {
            peer_id: peer.to_string(),
            display_name: display_name.to_string(),
        };
        let (ctx, session_id) = (self.ctx.clone(), session.to_string());
        tokio::spawn(async move { ctx.record_member(&session_id, member, playlist_name).await });
        self.publish();
    }

    fn on_event(&mut self, ServiceEvent { service, event }: ServiceEvent) {
        let Some(via) = self.services.get(&service).cloned() else {
            return;
        };
        match event {
            Event::RequestReceived {
                request_id,
                peer_id,
                protocol,
                body,
            } => match protocol {
                AppProtocol::Handshake => {
                    let answer = self.on_handshake(&via, &peer_id, body);
                    tokio::spawn(async move { respond(&via, request_id, answer).await });
                }
                AppProtocol::Sync => self.on_sync(via, peer_id, request_id, body),
                AppProtocol::Blob => self.on_blob(via, peer_id, request_id, body),
                AppProtocol::GuestHttp => self.on_guest_http(via, peer_id, request_id, body),
            },
            Event::ConnectionEstablished(info) => {
                self.reregister_guest_pages(&via, &info.peer_id);
                self.on_connected(via, info.peer_id);
            }
            Event::ConnectionClosed { peer_id, .. } => {
                let still = via.is_connected_to(&peer_id);
                if !still {
                    self.clocks.forget(&peer_id);
                }
                if still {
                    return;
                }
                if let Some(sessions) = self.admitted.remove(&(service, peer_id.clone())) {
                    self.publish();
                    // Meet the member again at once: a relay that ended its circuit at the
                    // circuit's limits (or a network that blinked) should cost an edit's
                    // round trip, not the wait for the next repair round.
                    for session in sessions {
                        let skip = self.revoked(&session);
                        if skip.contains(&peer_id) {
                            continue;
                        }
                        let (ctx, via, peer) = (self.ctx.clone(), via.clone(), peer_id.clone());
                        tokio::spawn(async move { ctx.meet_member(&via, &session, &peer).await });
                    }
                }
            }
            _ => {}
        }
    }

    /// A relay that forwards our guest pages is connected again (after it or our service
    /// restarted, or the network came back): it forgot them when we went, so tell it again.
    fn reregister_guest_pages(&self, via: &ServiceHandle, peer: &str) {
        use whatnext_protocol::guest::TunnelRequest;
        let codes = self.ctx.guests.relayed_codes(peer);
        if codes.is_empty() {
            return;
        }
        let body = serde_json::to_value(TunnelRequest::Register { codes }).unwrap_or(Value::Null);
        let (client, peer) = (via.client.clone(), peer.to_string());
        tokio::spawn(async move {
            let answer = client
                .app_request(
                    peer.clone(),
                    AppProtocol::GuestHttp,
                    body,
                    work::REQUEST_TIMEOUT,
                )
                .await;
            match answer {
                Ok(_) => tracing::info!("guest pages registered again with relay {peer}"),
                Err(err) => {
                    tracing::warn!("could not register guest pages again with relay {peer}: {err}")
                }
            }
        });
    }

    /// A peer connected to `via`: if it is a member of playlists that service serves, prove
    /// our keys again so both sides re-admit each other and catch up (after a restart, or
    /// being offline).
    fn on_connected(&self, via: ServiceHandle, peer: String) {
        self.handshake_with(via, peer, &HashSet::new());
    }

    /// Proves our keys of the playlists `via` serves, but those in `admitted`, to `peer` if
    /// it is a member of any; then each side admits the other and we catch up.
    fn handshake_with(&self, via: ServiceHandle, peer: String, admitted: &HashSet<String>) {
        let shared: Vec<(String, String)> = self
            .book
            .sessions
            .iter()
            .filter(|(id, entry)| {
                entry.service(id) == via.name && !entry.is_revoked(&peer) && !admitted.contains(*id)
            })
            .map(|(id, entry)| (id.clone(), entry.key.clone()))
            .collect();
        if shared.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let (ids, who): (Vec<String>, String) = (
                shared.iter().map(|(id, _)| id.clone()).collect(),
                peer.clone(),
            );
            let members_of = ctx
                .library
                .read(move |store| {
                    Ok(ids
                        .into_iter()
                        .filter(|id| store.is_member(id, &who).unwrap_or(false))
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
            match ctx.handshake(&via, &peer, proofs).await {
                Ok(response) => {
                    if !response.refused.is_empty() {
                        ctx.tell(Msg::Refused {
                            service: via.name.clone(),
                            peer: peer.clone(),
                            sessions: response.refused.iter().map(|r| r.session.clone()).collect(),
                        });
                    }
                    ctx.tell(Msg::Admit {
                        service: via.name.clone(),
                        peer: peer.clone(),
                        sessions: response.accepted.clone(),
                        display_name: response.display_name,
                    });
                    for session in &response.accepted {
                        if let Err(err) = ctx.hello(&via, &peer, session).await {
                            tracing::warn!("catching up {session} with {peer}: {err}");
                        }
                    }
                }
                Err(err) => tracing::debug!("re-handshake with {peer}: {err}"),
            }
        });
    }

    fn on_handshake(&mut self, via: &ServiceHandle, peer: &str, body: Value) -> Value {
        let request: HandshakeRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("malformed handshake from {peer}: {err}; disconnecting it");
                hang_up(via, peer);
                return serde_json::json!({"error": "malformed handshake"});
            }
        };
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for proof in request.sessions.iter().take(64) {
            match admit(&self.book, &via.name, &proof.session, peer, &proof.key) {
                Ok(()) => accepted.push(proof.session.clone()),
                Err(why) => {
                    let message = format!(
                        "refused {peer} for playlist {}: {}",
                        proof.session,
                        why.reason()
                    );
                    tracing::warn!("{message}");
                    self.state.update(|s| {
                        report_problem(s, &message, None);
                        true
                    });
                    refused.push(Refusal {
                        session: proof.session.clone(),
                        reason: why.reason().to_string(),
                    });
                }
            }
        }
        for session in &accepted {
            self.admit(&via.name, peer, session, &request.display_name);
            // Catch up with what the newcomer has (offline edits) without delaying our answer.
            let (ctx, via, peer, session) = (
                self.ctx.clone(),
                via.clone(),
                peer.to_string(),
                session.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Err(err) = ctx.hello(&via, &peer, &session).await {
                    tracing::debug!("hello to {peer} for {session}: {err}");
                }
            });
        }
        let response = HandshakeResponse {
            app_version: self.ctx.app_version.clone(),
            display_name: self.ctx.library.author().display_name,
            accepted,
            refused,
        };
        serde_json::to_value(response).unwrap_or(Value::Null)
    }

    fn on_sync(&mut self, via: ServiceHandle, peer: String, request_id: u64, body: Value) {
        let received_ms = now_ms();
        let refuse = |reason: String| {
            serde_json::to_value(SyncResponse::Refused { reason }).unwrap_or(Value::Null)
        };
        let request: SyncRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("malformed sync message from {peer}: {err}; disconnecting it");
                hang_up(&via, &peer);
                let answer = refuse("malformed message".into());
                tokio::spawn(async move { respond(&via, request_id, answer).await });
                return;
            }
        };
        let session = match &request {
            SyncRequest::Hello { session, .. }
            | SyncRequest::Push { session, .. }
            | SyncRequest::React { session, .. }
            | SyncRequest::Clock { session, .. } => session.clone(),
        };
        if !self.is_admitted(&via.name, &peer, &session) {
            tracing::warn!("{peer} sent sync for playlist {session} without being admitted");
            let answer = refuse("not admitted to this playlist".into());
            tokio::spawn(async move { respond(&via, request_id, answer).await });
            return;
        }
        if let SyncRequest::React {
            emoji,
            by: Some(guest),
            ..
        } = &request
        {
            // A guest's reaction, sent by its host: shown once the playlist says the guest
            // is the sender's (a member cannot speak for anyone else).
            let (ctx, session, guest, emoji) = (
                self.ctx.clone(),
                session.clone(),
                guest.clone(),
                emoji.clone(),
            );
            let sender = peer.clone();
            tokio::spawn(async move {
                let host = {
                    let (session, guest) = (session.clone(), guest.clone());
                    ctx.library
                        .read(move |store| store.guest_host(&session, &guest))
                        .await
                };
                let answer = match host {
                    Ok(Some(host)) if host == sender => {
                        ctx.tell(Msg::GuestReaction {
                            session,
                            guest,
                            emoji,
                        });
                        serde_json::to_value(SyncResponse::Ack).unwrap_or(Value::Null)
                    }
                    _ => refuse(format!("{guest} is not a guest of {sender}")),
                };
                respond(&via, request_id, answer).await;
            });
            return;
        }
        if let SyncRequest::React { emoji, .. } = &request {
            let answer = match self.reactions.record(&session, &peer, emoji, now_ms()) {
                Ok(()) => {
                    self.publish();
                    serde_json::to_value(SyncResponse::Ack).unwrap_or(Value::Null)
                }
                Err(why) => {
                    tracing::debug!("refused a reaction of {peer}: {}", why.reason());
                    refuse(why.reason().to_string())
                }
            };
            tokio::spawn(async move { respond(&via, request_id, answer).await });
            return;
        }
        if let SyncRequest::Clock { sent_ms, .. } = &request {
            let answer = serde_json::to_value(SyncResponse::Clock {
                sent_ms: *sent_ms,
                received_ms,
                answered_ms: now_ms(),
            })
            .unwrap_or(Value::Null);
            tokio::spawn(async move { respond(&via, request_id, answer).await });
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let answer = match request {
                SyncRequest::React { .. } | SyncRequest::Clock { .. } => {
                    refuse("answered above".into())
                }
                SyncRequest::Hello { version, part, .. } => match B64.decode(version) {
                    Ok(version) => serde_json::to_value(
                        ctx.answer_hello(&via, &peer, session, version, part).await,
                    )
                    .unwrap_or(Value::Null),
                    Err(_) => refuse("undecodable version".into()),
                },
                SyncRequest::Push {
                    updates, version, ..
                } => match unpack(&updates) {
                    Ok(updates) => match ctx.apply(&peer, &session, updates).await {
                        Ok(()) => {
                            // The sender has (at least) this: pushes to it start from here.
                            if let Some(version) = version.and_then(|v| B64.decode(v).ok()) {
                                ctx.tell_known(&via, &peer, &session, version);
                            }
                            serde_json::to_value(SyncResponse::Ack).unwrap_or(Value::Null)
                        }
                        Err(reason) => refuse(reason),
                    },
                    Err(err) => refuse(format!("undecodable updates: {err}")),
                },
            };
            respond(&via, request_id, answer).await;
        });
    }

    /// A guest's HTTP request through the relay our guest page registered with: answered
    /// by the API as the page would. Nobody else may send these.
    fn on_guest_http(&mut self, via: ServiceHandle, peer: String, request_id: u64, body: Value) {
        use whatnext_protocol::guest::{TunnelRequest, TunnelResponse};
        let refuse = |reason: String| {
            serde_json::to_value(TunnelResponse::Refused { reason }).unwrap_or(Value::Null)
        };
        let request = match serde_json::from_value::<TunnelRequest>(body) {
            Ok(TunnelRequest::Http(request)) => request,
            Ok(TunnelRequest::Register { .. }) => {
                let answer = refuse("only relays take guest pages".into());
                tokio::spawn(async move { respond(&via, request_id, answer).await });
                return;
            }
            Err(err) => {
                let answer = refuse(format!("malformed message ({err})"));
                tokio::spawn(async move { respond(&via, request_id, answer).await });
                return;
            }
        };
        let code = request
            .path
            .strip_prefix("/g/")
            .and_then(|rest| rest.split(['/', '?']).next())
            .unwrap_or("");
        if !self.ctx.guests.relayed_by(code, &peer) {
            tracing::warn!("{peer} forwarded a guest's request for a page it does not relay");
            let answer = refuse("not the relay of this guest page".into());
            tokio::spawn(async move { respond(&via, request_id, answer).await });
            return;
        }
        let tunnel = self.ctx.guest_tunnel.clone();
        tokio::spawn(async move {
            let (reply, answer) = oneshot::channel();
            let call = crate::guests::TunnelCall { request, reply };
            let answer = match tunnel.send(call).await {
                Ok(()) => match tokio::time::timeout(GUEST_TUNNEL_ANSWER, answer).await {
                    Ok(Ok(http)) => {
                        serde_json::to_value(TunnelResponse::Http(http)).unwrap_or(Value::Null)
                    }
                    _ => refuse("the guest page did not answer".into()),
                },
                Err(_) => refuse("the guest page is not served".into()),
            };
            respond(&via, request_id, answer).await;
        });
    }

    /// A member asks for audio: served (by a task) when it is admitted to the playlist the
    /// request names.
    fn on_blob(&mut self, via: ServiceHandle, peer: String, request_id: u64, body: Value) {
        let refuse = |reason: &str| {
            serde_json::to_value(BlobResponse::Refused {
                reason: reason.to_string(),
            })
            .unwrap_or(Value::Null)
        };
        let request: BlobRequest = match serde_json::from_value(body) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!("malformed blob request from {peer}: {err}");
                let answer = refuse("malformed message");
                tokio::spawn(async move { respond(&via, request_id, answer).await });
                return;
            }
        };
        if !self.is_admitted(&via.name, &peer, request.session()) {
            tracing::warn!(
                "{peer} asked for audio of playlist {} without being admitted",
                request.session()
            );
            let answer = refuse("not admitted to this playlist");
            tokio::spawn(async move { respond(&via, request_id, answer).await });
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let (answer, data) = crate::transfers::serve(
                &ctx.library,
                &ctx.music,
                &ctx.transfers,
                &ctx.uploads,
                &peer,
                request,
            )
            .await;
            let answer = serde_json::to_value(answer).unwrap_or(Value::Null);
            respond_with_data(&via, request_id, answer, data).await;
        });
    }

    /// Sends each admitted member of `playlist` what it lacks.
    fn push(&self, playlist: &str) {
        self.push_to_some(playlist, |_| true);
    }

    /// Passes on changes of `playlist` received from `from`. Members meet each other, so
    /// most already have them from their author: the owner (whom everyone joined through,
    /// the hub for members who cannot reach each other) passes them to all, any other
    /// member to [`FORWARD_FANOUT`] members chosen at random; the anti-entropy round catches
    /// up whoever is left. (Everyone passing everything on to everyone made one edit cost
    /// n² pushes: 4 s to reach 31 members.)
    fn forward(&self, playlist: &str, from: &str, from_owner: bool) {
        let owner = self
            .book
            .sessions
            .get(playlist)
            .is_some_and(|e| e.role == Role::Owner);
        if from_owner {
            // The owner passes everything to every member itself.
            return;
        }
        if owner {
            self.push_to_some(playlist, |peer| peer != from);
            return;
        }
        let chosen = self.random_members(playlist, |peer| peer != from, FORWARD_FANOUT);
        self.push_to_some(playlist, |peer| chosen.contains(peer));
    }

    /// Up to `count` members admitted to `playlist` that `keep` accepts, chosen at random.
    fn random_members(
        &self,
        playlist: &str,
        keep: impl Fn(&str) -> bool,
        count: usize,
    ) -> HashSet<String> {
        // Only those admitted on the service that serves the playlist: the one we reach
        // them through (an isolated share has its own).
        let Some(via) = self.serving(playlist) else {
            return HashSet::new();
        };
        let mut candidates: Vec<&String> = self
            .admitted
            .iter()
            .filter(|((service, peer), sessions)| {
                *service == via.name && keep(peer) && sessions.contains(playlist)
            })
            .map(|((_, peer), _)| peer)
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut rng = rand::rng();
        rand::seq::SliceRandom::shuffle(&mut candidates[..], &mut rng);
        candidates.into_iter().take(count).cloned().collect()
    }

    /// Sends the admitted members of `playlist` that `to` accepts what they lack.
    fn push_to_some(&self, playlist: &str, to: impl Fn(&str) -> bool) {
        let Some(via) = self.serving(playlist) else {
            return;
        };
        for ((service, peer), sessions) in &self.admitted {
            if *service != via.name || !sessions.contains(playlist) || !to(peer) {
                continue;
            }
            // A member whose version we do not know yet is sending its hello (each side
            // says hello once admitted, and again each anti-entropy round), whose answer
            // brings it everything; pushing everything meanwhile would send it all twice.
            let Some(known) = self
                .known
                .get(&(service.clone(), peer.clone(), playlist.to_string()))
                .cloned()
            else {
                continue;
            };
            let (ctx, via, peer, playlist) = (
                self.ctx.clone(),
                via.clone(),
                peer.clone(),
                playlist.to_string(),
            );
            tokio::spawn(async move { ctx.push_to(&via, &peer, &playlist, known).await });
        }
    }

    /// The anti-entropy round: every admitted member gets what it lacks, and members we lost
    /// (they restarted on new ports and cannot find us, or a connection dropped) are dialed
    /// again at their addresses.
    fn repair(&mut self) {
        self.repairs += 1;
        // Every fourth round (20 s) members dial everyone they miss, not only those after
        // them: a member behind a NAT may be unable to accept the dial meant for it. So do
        // the first rounds after a start: the others do not know we are back.
        let everyone = self.repairs <= 2 || self.repairs.is_multiple_of(4);
        // Each round repairs a few members at random (gossip): a lost push is rare, and
        // everyone pushing to everyone every round cost n² pushes per round in a big session.
        let ids: HashSet<String> = self.admitted.values().flatten().cloned().collect();
        for id in &ids {
            let chosen = self.random_members(id, |_| true, REPAIR_FANOUT);
            self.push_to_some(id, |peer| chosen.contains(peer));
        }
        // And pulls, from one member each of a few playlists: a push starts where the member
        // is known to be, which answering its last `hello` set before that answer arrived;
        // if it was lost (its service was killed meanwhile, the request timed out), pushes
        // would skip what it lacks for good. A pull (our own `hello`) names what we have.
        // Unlike an empty push, a pull is a request on the wire, and while a member is
        // behind it asks for what the pushes bring too (a big answer, under load): so pulls
        // go every fourth round (20 s), only to members quiet for that long, and a home
        // sharing a thousand playlists pulls a few playlists, not all of them.
        let pulling = self.repairs.is_multiple_of(4);
        let mut pulled: Vec<&String> = ids.iter().filter(|_| pulling).collect();
        rand::seq::SliceRandom::shuffle(&mut pulled[..], &mut rand::rng());
        self.heard
            .retain(|_, at| at.elapsed() < REPAIR_INTERVAL * 4);
        for id in pulled.into_iter().take(PULLS_PER_ROUND) {
            let quiet = |peer: &str| !self.heard.contains_key(&(id.clone(), peer.to_string()));
            if let (Some(via), Some(peer)) = (
                self.serving(id),
                self.random_members(id, quiet, 1).into_iter().next(),
            ) {
                let (ctx, id) = (self.ctx.clone(), id.clone());
                tokio::spawn(async move {
                    if let Err(err) = ctx.pull(&via, &peer, &id).await {
                        tracing::debug!("anti-entropy pull of {id} from {peer}: {err}");
                    }
                });
            }
        }
        // Members we synced with, connected but not admitted: the handshake when they
        // connected failed, or the close of an old connection (a killed service's) came
        // after the new one was admitted. Nothing else would admit them again while the
        // connection lasts, and until then their pushes are refused and ours skip them.
        let mut unadmitted: HashSet<(String, String)> = HashSet::new();
        for (service, peer, session) in self.known.keys() {
            let key = (service.clone(), peer.clone());
            let admitted = self.admitted.get(&key).is_some_and(|s| s.contains(session));
            let shared = self.book.sessions.contains_key(session);
            if shared && !admitted && !self.revoked(session).contains(peer) {
                unadmitted.insert(key);
            }
        }
        for (service, peer) in unadmitted {
            let Some(via) = self.services.get(&service) else {
                continue;
            };
            if via.is_connected_to(&peer) {
                let admitted = self
                    .admitted
                    .get(&(service.clone(), peer.clone()))
                    .cloned()
                    .unwrap_or_default();
                self.handshake_with(via.clone(), peer, &admitted);
            }
        }
        // Clocks: one exchange with every admitted member each round.
        for ((service, peer), sessions) in &self.admitted {
            let (Some(via), Some(session)) = (self.services.get(service), sessions.iter().next())
            else {
                continue;
            };
            let (ctx, via, peer, session) =
                (self.ctx.clone(), via.clone(), peer.clone(), session.clone());
            tokio::spawn(async move { ctx.measure_clock(&via, &peer, &session).await });
        }
        // Services whose addresses moved since they last recorded them (the network
        // changed): they record the new ones in every playlist they serve.
        let mut moved = HashSet::new();
        for (name, via) in &self.services {
            let addrs = crate::invite::member_addrs(&via.state.snapshot());
            if !addrs.is_empty() && self.announced.get(name) != Some(&addrs) {
                moved.insert(name.clone());
                self.announced.insert(name.clone(), addrs);
            }
        }
        for id in self.book.sessions.keys() {
            if let Some(via) = self.serving(id) {
                let (ctx, id, skip) = (self.ctx.clone(), id.clone(), self.revoked(id));
                let announce = moved.contains(&via.name);
                tokio::spawn(async move {
                    if announce {
                        ctx.announce_self(&via, &id).await;
                    }
                    ctx.meet_members(&via, &id, skip, everyone).await
                });
            }
        }
    }

    /// Publishes the sessions and their online members in `AppState`.
    fn publish(&self) {
        let sessions: Vec<SessionState> = self
            .book
            .sessions
            .iter()
            .map(|(id, entry)| {
                let service = entry.service(id);
                let mut connected_members: Vec<String> = self
                    .admitted
                    .iter()
                    .filter(|((s, _), sessions)| s == service && sessions.contains(id))
                    .map(|((_, peer), _)| peer.clone())
                    .collect();
                connected_members.sort();
                connected_members.dedup();
                SessionState {
                    id: id.clone(),
                    role: match entry.role {
                        Role::Owner => SessionRole::Owner,
                        Role::Member => SessionRole::Member,
                    },
                    connected_members,
                    service: service.to_string(),
                    reactions: self.reactions.of(id),
                }
            })
            .collect();
        self.state.update(|s| {
            let changed = s.sessions != sessions;
            s.sessions = sessions;
            changed
        });
    }
}

/// Whether `response` (to our proof for `session` at `peer`) admitted us.
fn accepted_for(response: &HandshakeResponse, peer: &str, session: &str) -> Result<(), String> {
    if let Some(refusal) = response.refused.iter().find(|r| r.session == session) {
        return Err(format!(
            "{peer} refused to share playlist {session}: {}",
            refusal.reason
        ));
    }
    if !response.accepted.iter().any(|s| s == session) {
        return Err(format!("{peer} did not answer for playlist {session}"));
    }
    Ok(())
}

async fn respond(via: &ServiceHandle, request_id: u64, body: Value) {
    respond_with_data(via, request_id, body, bytes::Bytes::new()).await;
}

/// Answers with `body` and then the raw bytes `data` (audio).
async fn respond_with_data(via: &ServiceHandle, request_id: u64, body: Value, data: bytes::Bytes) {
    via.client
        .notify(Command::Respond {
            request_id,
            body,
            data,
        })
        .await;
}

fn hang_up(via: &ServiceHandle, peer: &str) {
    let (client, peer_id) = (via.client.clone(), peer.to_string());
    tokio::spawn(async move { client.notify(Command::HangUp { peer_id }).await });
}
