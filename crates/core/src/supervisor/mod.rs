//! Supervision of the network service: spawn `whatnext p2p`, speak frames with it, fold its
//! events into `AppState`, restart it with backoff when it exits or stops answering
//! heartbeats, and re-dial the peers it was connected to.
//!
//! The supervisor task's loop is here; `lifecycle.rs` holds the child process's lifecycle
//! (spawn, restart policy, crash-loop guard, heartbeat), `requests.rs` the matching of
//! requests and replies ([`ServiceClient`] and its typed commands), and `ports.rs` the
//! memory of listen ports (`listen.json`).

mod certificate;
mod lifecycle;
mod ports;
mod requests;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use tokio::{
    process::Child,
    sync::{mpsc, watch},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};
use whatnext_protocol::{
    PROTOCOL_VERSION,
    addr::{AddrClass, classify_str},
    frame::{Frame, FrameCodec},
    ipc::{Command, Event, EventEnvelope, NodeConfig, decode_envelope},
    state::{Direction, NodeStatus, PROBLEM_SERVICE},
};

use self::{
    lifecycle::{CrashGuard, Heartbeat},
    requests::{Internal, OUTBOX_FRAMES, Route, ServiceLink},
};
pub use self::{
    lifecycle::{RestartPolicy, encode_keypair},
    ports::pin_ports,
    requests::{Dialed, IpcLog, PeerError, ServiceClient, ServiceError},
};
use crate::{
    names::HelperAddrs,
    reducer,
    state::{StateHandle, now_ms, report_problem},
};

/// Events handled in a row from one batch (more still buffered) before the supervisor lets
/// the callers it answered run: under load their next commands reach the service while the
/// supervisor reads the rest, instead of each process waiting for the other's whole batch.
const REPLY_WAVE: usize = 16;

pub struct ServiceSpec {
    /// "main", or the playlist id an isolated service serves (see [`ServiceEvent`]).
    pub name: String,
    /// The `whatnext` binary; the service is `<program> p2p`.
    pub program: PathBuf,
    pub node: NodeConfig,
    pub policy: RestartPolicy,
    /// Where the pinned listen addresses are kept across controller restarts
    /// (`<home>/listen.json`), so friends' copies of our addresses stay dialable after the
    /// app restarts too. None: pinned for this run only.
    pub listen_memory: Option<PathBuf>,
    /// Where the WebRTC certificate is kept (`<home>/webrtc.pem`): its hash is in our
    /// WebRTC addresses, so keeping it keeps invites dialable. None: made anew each run.
    pub webrtc_certificate: Option<PathBuf>,
    /// The bootstrap and relay nodes as their names resolve (see
    /// [`crate::names::resolve_helpers`]): each start gives the latest, and a change reaches
    /// the running service. None: `node`'s, as they are.
    pub helpers: Option<watch::Receiver<HelperAddrs>>,
}

/// An event of one of the network services, for the shared playlists: which service (its
/// [`ServiceSpec::name`]) saw it matters, as each serves its own playlists.
#[derive(Debug, Clone)]
pub struct ServiceEvent {
    pub service: String,
    pub event: Event,
}

pub struct Supervisor {
    spec: ServiceSpec,
    state: StateHandle,
    /// Where callers' requests go (published here, read by every [`ServiceClient`]).
    routes: watch::Sender<Route>,
    shutdown: CancellationToken,
    /// Known dialable addresses of peers, from our dials and from identify.
    peer_addrs: HashMap<String, Vec<String>>,
    /// Peers connected when the last incarnation died: dialed again by the next one.
    redial: HashSet<String>,
    crashes: CrashGuard,
    /// Where app-level events go (sessions and sync): inbound requests, connections.
    app_events: Option<mpsc::UnboundedSender<ServiceEvent>>,
    /// The configured listen addresses with port 0 replaced by the ports the first node got,
    /// so a restarted service keeps its addresses and peers' copies of them stay dialable.
    pinned_listen: Option<Vec<String>>,
    recent: IpcLog,
}

pub fn supervisor(
    mut spec: ServiceSpec,
    state: StateHandle,
    shutdown: CancellationToken,
) -> (Supervisor, ServiceClient) {
    if spec.node.webrtc_certificate.is_none() {
        spec.node.webrtc_certificate = spec
            .webrtc_certificate
            .as_deref()
            .and_then(certificate::read_kept);
    }
    let recent = IpcLog::default();
    let (client, routes) = requests::channel(recent.clone());
    // The ports of the last run, if the configuration is the same (else they mean nothing).
    let remembered = spec
        .listen_memory
        .as_ref()
        .and_then(|path| ports::read_listen_memory(path, &spec.node.listen));
    let supervisor = Supervisor {
        spec,
        state,
        routes,
        shutdown,
        peer_addrs: HashMap::new(),
        redial: HashSet::new(),
        crashes: CrashGuard::default(),
        pinned_listen: remembered,
        app_events: None,
        recent,
    };
    (supervisor, client)
}

/// The helpers' addresses once they change; never when there is nothing to watch (or the
/// resolver is gone).
async fn helpers_changed(
    helpers: &mut Option<watch::Receiver<HelperAddrs>>,
) -> Option<HelperAddrs> {
    if let Some(receiver) = helpers
        && receiver.changed().await.is_ok()
    {
        return Some(receiver.borrow_and_update().clone());
    }
    futures::future::pending().await
}

/// Why an incarnation of the service ended.
enum Ended {
    /// The controller is shutting down; the service was stopped on purpose.
    Shutdown,
    /// The service crashed, hung, or could not start; restart it.
    Crashed(String),
    /// Restarting cannot help (e.g. a bad listen address); wait for the user.
    Fatal(String),
}

impl Supervisor {
    /// Also sends connection and app-protocol events to `tx`.
    pub fn with_app_events(mut self, tx: mpsc::UnboundedSender<ServiceEvent>) -> Self {
        self.app_events = Some(tx);
        self
    }

    pub async fn run(mut self) {
        let mut incarnation: u32 = 0;
        loop {
            let status = if incarnation == 0 {
                NodeStatus::Starting
            } else {
                NodeStatus::Restarting
            };
            self.state.update(|s| {
                s.node = status;
                true
            });
            let started = Instant::now();
            let ended = self.run_incarnation(incarnation).await;
            incarnation += 1;
            let reason = match ended {
                Ended::Shutdown => break,
                Ended::Fatal(reason) => {
                    tracing::error!("network service cannot run: {reason}");
                    self.fail(reason).await;
                    break;
                }
                Ended::Crashed(reason) => reason,
            };
            tracing::warn!("network service failed: {reason}");
            let backoff = match self
                .crashes
                .crashed(started.elapsed(), &reason, &self.spec.policy)
            {
                Ok(backoff) => backoff,
                Err(reason) => {
                    tracing::error!("{reason}");
                    self.fail(reason).await;
                    break;
                }
            };
            self.state.update(|s| {
                s.node = NodeStatus::Restarting;
                report_problem(s, &reason, Some(PROBLEM_SERVICE));
                s.service.last_exit =
                    Some(crate::state::clip(&reason, crate::state::MAX_STATE_TEXT));
                s.service.pid = None;
                true
            });
            if !self
                .wait_answering_unavailable(Some(backoff), "it is restarting")
                .await
            {
                break;
            }
            self.state.update(|s| {
                s.service.restarts += 1;
                true
            });
        }
        self.state.update(|s| {
            s.node = NodeStatus::Stopped;
            s.service.pid = None;
            reducer::forget_service(s);
            true
        });
    }

    async fn fail(&mut self, reason: String) {
        self.state.update(|s| {
            s.node = NodeStatus::Failed;
            report_problem(s, &reason, Some(PROBLEM_SERVICE));
            s.service.pid = None;
            reducer::forget_service(s);
            true
        });
        let why = format!("it failed: {reason}");
        self.wait_answering_unavailable(None, &why).await;
    }

    /// Waits `duration` (or until shutdown when `None`), answering requests with an error.
    /// Returns false when shutdown was requested.
    async fn wait_answering_unavailable(&mut self, duration: Option<Duration>, why: &str) -> bool {
        self.routes.send_replace(Route::Down(why.to_string()));
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    async fn run_incarnation(&mut self, incarnation: u32) -> Ended {
        // Callers wait for this incarnation instead of being turned away.
        self.routes.send_replace(Route::Starting);
        let mut child = match lifecycle::spawn(&self.spec.program) {
            Ok(child) => child,
            Err(err) => {
                return Ended::Fatal(format!(
                    "could not start {} p2p: {err}",
                    self.spec.program.display()
                ));
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Ended::Crashed("the service's pipes were not set up".into());
        };
        tokio::spawn(lifecycle::relay_logs(stderr));
        let pid = child.id();
        self.state.update(|s| {
            s.service.pid = pid;
            true
        });
        let (outbox, frames) = mpsc::channel(OUTBOX_FRAMES);
        let writer = tokio::spawn(whatnext_protocol::frame::write_queued_frames(stdin, frames));
        let mut link = ServiceLink::new(
            self.recent.clone(),
            outbox,
            writer,
            FramedRead::new(stdout, FrameCodec::default()),
            self.spec.policy.heartbeat_interval,
        );
        let ended = self.drive(&mut child, &mut link, incarnation).await;
        self.routes.send_replace(Route::Down(match &ended {
            Ended::Shutdown => "the controller is shutting down".into(),
            Ended::Crashed(_) => "it is restarting".into(),
            Ended::Fatal(reason) => format!("it failed: {reason}"),
        }));
        link.waiting.fail_all();
        if let Ended::Shutdown = ended {
            // Never wait for room in the pipe here: a service that stopped reading must not
            // keep the controller from exiting. Closing the outbox lets the writer end, which
            // closes the service's stdin; the service exits on that EOF too.
            let _ = link.try_send(Command::Shutdown, Internal::Ignore);
            let writer = link.into_writer();
            lifecycle::stop_gracefully(&mut child).await;
            writer.abort();
        } else {
            let _ = child.kill().await;
            link.writer.abort();
        }
        // Remember who we were connected to, then forget the dead incarnation's connections —
        // also for the sessions, which would otherwise count those peers as still admitted.
        let connections = self.state.snapshot().connections;
        if let Some(tx) = &self.app_events {
            for c in &connections {
                let _ = tx.send(ServiceEvent {
                    service: self.spec.name.clone(),
                    event: Event::ConnectionClosed {
                        peer_id: c.peer_id.clone(),
                        connection_id: c.connection_id,
                        cause: Some("the network service stopped".into()),
                    },
                });
            }
        }
        self.redial
            .extend(connections.into_iter().map(|c| c.peer_id));
        self.state.update(|s| {
            let had = reducer::forget_service(s);
            s.listen_addrs.clear();
            s.external_addrs.clear();
            had
        });
        ended
    }

    async fn drive(
        &mut self,
        child: &mut Child,
        link: &mut ServiceLink,
        incarnation: u32,
    ) -> Ended {
        let policy = self.spec.policy.clone();
        // 1. `ready`, with the protocol version check.
        match tokio::time::timeout(policy.ready_timeout, link.reader.next()).await {
            Err(_) => {
                return Ended::Crashed(format!(
                    "no `ready` from the service within {:?}",
                    policy.ready_timeout
                ));
            }
            Ok(None) => return Ended::Crashed(lifecycle::exit_reason(child).await),
            Ok(Some(Err(err))) => {
                return Ended::Crashed(format!("bad first frame from the service: {err}"));
            }
            Ok(Some(Ok(frame))) => match parse_event(frame) {
                Ok(EventEnvelope {
                    body:
                        Event::Ready {
                            protocol_version, ..
                        },
                    ..
                }) if protocol_version == PROTOCOL_VERSION => {}
                Ok(EventEnvelope {
                    body:
                        Event::Ready {
                            protocol_version, ..
                        },
                    ..
                }) => {
                    return Ended::Fatal(format!(
                        "the network service speaks protocol {protocol_version}, this controller {PROTOCOL_VERSION}; reinstall WhatNext"
                    ));
                }
                Ok(other) => {
                    return Ended::Crashed(format!("expected `ready`, got {:?}", other.body));
                }
                Err(err) => return Ended::Crashed(err),
            },
        }
        // 2. `start_node`.
        let mut node = self.spec.node.clone();
        if let Some(helpers) = &mut self.spec.helpers {
            let latest = helpers.borrow_and_update().clone();
            node.bootstrap = latest.bootstrap;
            node.relays = latest.relays;
        }
        if let Some(pinned) = &self.pinned_listen {
            node.listen = pinned.clone();
        }
        if link
            .try_send(Command::StartNode(Box::new(node)), Internal::StartNode)
            .is_err()
        {
            return Ended::Crashed(lifecycle::exit_reason(child).await);
        }
        if incarnation > 0 {
            tracing::info!("network service restarted (incarnation {incarnation})");
        }
        // From here callers queue their commands straight for the writer.
        self.routes.send_replace(Route::Live(link.outlet.clone()));
        // 3. The steady state. This loop never waits for room in the service's stdin: the
        //    writer task does that, and callers wait for a slot in the outbox (backpressure)
        //    in their own tasks. It always goes on reading the service's events, so the two
        //    processes can never each wait for the other to read.
        let mut heartbeat = Heartbeat::new(&policy);
        let mut waves = whatnext_protocol::frame::Waves::new(REPLY_WAVE);
        // Created once: a fresh `cancelled()` per iteration would register a waiter each time.
        let shutdown = self.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                // In order: shutdown, replies (what waiting requests are blocked on), the
                // heartbeat.
                biased;
                () = &mut cancelled => return Ended::Shutdown,
                frame = link.reader.next() => {
                    match frame {
                        None => return Ended::Crashed(lifecycle::exit_reason(child).await),
                        Some(Err(err)) => return Ended::Crashed(format!("unreadable frame from the service: {err}")),
                        Some(Ok(frame)) => match parse_event(self.recent.see(frame)) {
                            Ok(envelope) => {
                                heartbeat.heard();
                                if matches!(envelope.body, Event::Pong) {
                                    heartbeat.pong();
                                }
                                if let Some(ended) = self.on_event(link, envelope) {
                                    return ended;
                                }
                                if waves.handled(!link.reader.read_buffer().is_empty()) {
                                    // A stream of replies keeps this branch first in line:
                                    // deadlines are kept all the same.
                                    link.waiting.sweep_if_due();
                                    // Let the callers answered so far run (and queue their
                                    // next commands) while the rest of the replies wait.
                                    tokio::task::yield_now().await;
                                }
                            }
                            Err(err) => tracing::warn!("ignored a bad frame from the service: {err}"),
                        },
                    }
                }
                Some(latest) = helpers_changed(&mut self.spec.helpers) => {
                    let command = Command::SetHelpers {
                        bootstrap: latest.bootstrap,
                        relays: latest.relays,
                    };
                    if link.try_send(command, Internal::Ignore).is_err() {
                        tracing::warn!("the service is not reading; new helper addresses wait for its restart");
                    }
                }
                written = &mut link.writer => {
                    let why = match written {
                        Ok(Ok(())) => "the command pipe closed".to_string(),
                        Ok(Err(err)) => format!("could not write to the service: {err}"),
                        Err(err) => format!("the command writer failed: {err}"),
                    };
                    tracing::debug!("{why}");
                    return Ended::Crashed(lifecycle::exit_reason(child).await);
                }
                () = link.waiting.expiry.wait() => link.waiting.sweep(),
                () = heartbeat.tick() => {
                    if let Err(reason) = heartbeat.check(child, link.outbox_full(), &policy) {
                        return Ended::Crashed(reason);
                    }
                    link.waiting.sweep();
                    // A full outbox skips this ping; the missing pong is then what counts.
                    let _ = link.try_send(Command::Ping, Internal::Ignore);
                }
            }
        }
    }

    /// Keeps the pinned addresses in `listen.json` for the next run (see [`ports`]).
    fn remember_listen(&self, pinned: &[String]) {
        if let Some(path) = self.spec.listen_memory.clone() {
            ports::write_listen_memory(path, self.spec.node.listen.clone(), pinned.to_vec());
        }
    }

    /// Applies one event. Returns `Some` when the incarnation must end.
    fn on_event(&mut self, link: &mut ServiceLink, envelope: EventEnvelope) -> Option<Ended> {
        let EventEnvelope { id, body: event } = envelope;
        let waiter = id.and_then(|id| link.waiting.take(id));
        match (&waiter, &event) {
            (
                Some(Internal::StartNode),
                Event::NodeError { message } | Event::Error { message },
            ) => {
                if self.pinned_listen.take().is_some() {
                    // The old ports may be taken now: retry once on the configured ones.
                    return Some(Ended::Crashed(format!(
                        "could not listen on the previous ports again: {message}"
                    )));
                }
                return Some(Ended::Fatal(format!(
                    "the network node could not start: {message}"
                )));
            }
            (
                Some(Internal::StartNode),
                Event::NodeStarted {
                    listen_addrs,
                    new_webrtc_certificate,
                    ..
                },
            ) => {
                if let Some(pem) = new_webrtc_certificate {
                    // Given back to every later incarnation, and kept for the next run.
                    self.spec.node.webrtc_certificate = Some(pem.clone());
                    if let Some(path) = self.spec.webrtc_certificate.clone() {
                        certificate::keep(path, pem.clone());
                    }
                }
                if self.pinned_listen.is_none() {
                    let pinned = pin_ports(&self.spec.node.listen, listen_addrs);
                    self.remember_listen(&pinned);
                    self.pinned_listen = Some(pinned);
                }
                let peers: Vec<String> = self.redial.drain().collect();
                for peer in peers {
                    let addrs = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
                    tracing::info!("re-dialing {peer} after the restart");
                    let command = Command::Dial {
                        peer_id: Some(peer),
                        addrs,
                    };
                    if link.try_send(command, Internal::Ignore).is_err() {
                        // The outbox is full: the next repair round dials it again.
                        tracing::debug!("no room to re-dial a peer now");
                        break;
                    }
                }
            }
            _ => {}
        }
        if let Event::Dialed { peer_id, addr, .. } = &event {
            remember_addr(&mut self.peer_addrs, peer_id, addr);
        }
        self.apply(&event);
        if let Some(tx) = &self.app_events
            && matches!(
                event,
                Event::RequestReceived { .. }
                    | Event::ConnectionEstablished(_)
                    | Event::ConnectionClosed { .. }
            )
        {
            let _ = tx.send(ServiceEvent {
                service: self.spec.name.clone(),
                event: event.clone(),
            });
        }
        if let Some(Internal::Reply(reply)) = waiter {
            let _ = reply.send(Ok(event));
        }
        None
    }

    /// Folds an event into `AppState` (the reducer) and the address book.
    fn apply(&mut self, event: &Event) {
        match event {
            Event::ConnectionEstablished(info) if info.direction == Direction::Dialer => {
                remember_addr(&mut self.peer_addrs, &info.peer_id, &info.addr);
            }
            Event::PeerIdentified {
                peer_id,
                listen_addrs: addrs,
                ..
            }
            | Event::PeerDiscovered { peer_id, addrs } => {
                for addr in addrs {
                    remember_addr(&mut self.peer_addrs, peer_id, addr);
                }
            }
            Event::Error { message } => tracing::warn!("the service refused a command: {message}"),
            _ => {}
        }
        if !reducer::may_change(event) {
            return;
        }
        let now = now_ms();
        self.state.update(|s| reducer::reduce(s, event, now));
    }
}

fn remember_addr(book: &mut HashMap<String, Vec<String>>, peer: &str, addr: &str) {
    // Only addresses that can be dialed again are useful: skip unspecified ones (and
    // whatever does not parse).
    if !classify_str(addr).is_some_and(AddrClass::is_dialable) {
        return;
    }
    let addrs = book.entry(peer.to_string()).or_default();
    if !addrs.iter().any(|a| a == addr) {
        addrs.push(addr.to_string());
        // Bound the book per peer: identify may announce many addresses.
        if addrs.len() > 16 {
            addrs.remove(0);
        }
    }
}

fn parse_event(frame: Frame) -> Result<EventEnvelope, String> {
    match frame {
        Frame::Message(body) => decode_envelope(&body).map_err(|e| e.to_string()),
        Frame::Oversized { len, max } => {
            Err(format!("oversized event frame ({len} bytes, limit {max})"))
        }
    }
}
