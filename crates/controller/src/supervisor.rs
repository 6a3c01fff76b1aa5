//! Supervision of the network service: spawn `whatnext p2p`, speak frames with it, fold its
//! events into `AppState`, restart it with backoff when it exits or stops answering
//! heartbeats, and re-dial the peers it was connected to.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine as _;
use futures::StreamExt as _;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, ChildStdout},
    sync::{mpsc, oneshot},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};
use whatnext_protocol::{
    PROTOCOL_VERSION,
    addr::{AddrClass, classify_str},
    frame::{Frame, FrameCodec, decode_json},
    ipc::{Command, Event, EventEnvelope, NodeConfig},
    state::{Direction, NodeStatus},
};

use crate::{
    reducer,
    state::{StateHandle, now_ms},
};

/// Restart policy (DESIGN.md §1).
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up after this many crashes within `crash_window`.
    pub max_crashes: usize,
    pub crash_window: Duration,
    /// An incarnation that lived this long resets the backoff.
    pub stable_after: Duration,
    pub heartbeat_interval: Duration,
    /// No frame from the service for this long means it hangs: it is killed and restarted.
    pub heartbeat_timeout: Duration,
    /// Time allowed from spawn to `ready`.
    pub ready_timeout: Duration,
    /// Resident memory the service may use; above it (a flood that got past the connection
    /// limits, a leak) it is restarted like a crashed one. Checked with each heartbeat here,
    /// because the sandboxed service cannot read /proc itself.
    pub max_service_rss_bytes: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(4),
            ready_timeout: Duration::from_secs(10),
            max_service_rss_bytes: 512 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the network service is not running right now ({0})")]
    Unavailable(String),
    #[error("the network service restarted before answering; try again")]
    Restarted,
    #[error("the network service did not answer within {0:?}")]
    Timeout(Duration),
    /// The service answered with an event that does not answer this command: a bug on
    /// one side of the pipe (the two are built together), reported rather than matched.
    #[error(
        "the network service answered {command} with {answer}; this is a bug, please report it"
    )]
    Unexpected {
        command: &'static str,
        answer: String,
    },
}

/// A connection the service made (`dial`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dialed {
    pub peer_id: String,
    /// The address that connected.
    pub addr: String,
    /// How long the dial took, as the service measured it.
    pub micros: Option<u64>,
}

/// Why a command to a peer or about one did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached, found or asked (the service's reason).
    #[error("{0}")]
    Failed(String),
    /// The service refused the command (e.g. an unknown peer id).
    #[error("the network service refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn unexpected(command: &'static str, answer: Event) -> ServiceError {
    let answer = format!("{answer:?}");
    ServiceError::Unexpected {
        command,
        answer: crate::state::clip(&answer, 200),
    }
}

type Reply = oneshot::Sender<Result<Event, ServiceError>>;

struct Request {
    command: Command,
    /// None for commands that are not answered (e.g. `respond`).
    reply: Option<Reply>,
}

/// Sends commands to whichever incarnation of the service is current.
#[derive(Clone)]
pub struct ServiceClient {
    tx: mpsc::Sender<Request>,
    recent: IpcLog,
}

/// The last frames exchanged with the service, for the view's debug panel.
#[derive(Clone, Default)]
pub struct IpcLog(std::sync::Arc<std::sync::Mutex<VecDeque<String>>>);

/// Field names whose values are secrets: the identity key (`start_node`) and the share keys
/// that handshakes carry in both directions.
const SECRET_FIELDS: [&str; 2] = ["keypair", "key"];

/// `body` with the value of every secret field replaced, for the debug log.
fn redact_secrets(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, field) in map.iter_mut() {
                    if SECRET_FIELDS.contains(&name.as_str()) {
                        *field = serde_json::Value::String("(redacted)".into());
                    } else {
                        redact(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    // Most frames name no secret field: they are logged as they are, without a parse.
    let names_a_secret = SECRET_FIELDS.iter().any(|name| {
        let needle = format!("\"{name}\"");
        body.windows(needle.len()).any(|w| w == needle.as_bytes())
    });
    if !names_a_secret {
        return std::borrow::Cow::Borrowed(body);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            redact(&mut value);
            std::borrow::Cow::Owned(serde_json::to_vec(&value).unwrap_or_default())
        }
        // Not JSON: nothing can be told apart, so nothing of it is shown.
        Err(_) => std::borrow::Cow::Borrowed(b"(unreadable frame)"),
    }
}

/// How many frames the debug log keeps.
const IPC_LOG_LEN: usize = 100;

impl IpcLog {
    fn record(&self, direction: &str, body: &[u8]) {
        let body = redact_secrets(body);
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
        let line = format!("{} {direction} {text}", now_ms());
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= IPC_LOG_LEN {
            log.pop_front();
        }
        log.push_back(line);
    }

    /// Records an event frame on its way in.
    fn see(&self, frame: Frame) -> Frame {
        if let Frame::Message(body) = &frame
            && !body.ends_with(br#""type":"pong"}"#)
        {
            self.record("◀", body);
        }
        frame
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl ServiceClient {
    pub async fn request(
        &self,
        command: Command,
        timeout: Duration,
    ) -> Result<Event, ServiceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                command,
                reply: Some(reply),
            })
            .await
            .map_err(|_| ServiceError::Unavailable("the controller is shutting down".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            // The incarnation that had the request died before answering.
            Ok(Err(_)) => Err(ServiceError::Restarted),
            Err(_) => Err(ServiceError::Timeout(timeout)),
        }
    }
}

/// Typed commands: each answers with what its command means, so no caller matches events.
impl ServiceClient {
    /// Connects to `peer_id` (or whoever answers at `addrs` when `None`).
    pub async fn dial(
        &self,
        peer_id: Option<String>,
        addrs: Vec<String>,
        timeout: Duration,
    ) -> Result<Dialed, PeerError> {
        match self
            .request(Command::Dial { peer_id, addrs }, timeout)
            .await?
        {
            Event::Dialed {
                peer_id,
                addr,
                micros,
            } => Ok(Dialed {
                peer_id,
                addr,
                micros,
            }),
            Event::DialFailed { reason, .. } => Err(PeerError::Failed(reason)),
            Event::Error { message } => Err(PeerError::Refused(message)),
            other => Err(unexpected("dial", other).into()),
        }
    }

    /// Closes every connection to `peer_id`.
    pub async fn hang_up(&self, peer_id: String, timeout: Duration) -> Result<(), PeerError> {
        match self.request(Command::HangUp { peer_id }, timeout).await? {
            Event::Ok => Ok(()),
            Event::Error { message } => Err(PeerError::Refused(message)),
            other => Err(unexpected("hang_up", other).into()),
        }
    }

    /// Looks `peer_id` up in the DHT; its addresses.
    pub async fn find_peer(
        &self,
        peer_id: String,
        timeout: Duration,
    ) -> Result<Vec<String>, PeerError> {
        match self.request(Command::FindPeer { peer_id }, timeout).await? {
            Event::PeerFound { addrs, .. } => Ok(addrs),
            Event::PeerNotFound { reason, .. } => Err(PeerError::Failed(reason)),
            Event::Error { message } => Err(PeerError::Refused(message)),
            other => Err(unexpected("find_peer", other).into()),
        }
    }

    /// Sends an app-protocol request to a connected peer; its answer.
    pub async fn app_request(
        &self,
        peer_id: String,
        protocol: whatnext_protocol::ipc::AppProtocol,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, PeerError> {
        let command = Command::Request {
            peer_id,
            protocol,
            body,
        };
        match self.request(command, timeout).await? {
            Event::Response { body } => Ok(body),
            Event::RequestFailed { reason } => Err(PeerError::Failed(reason)),
            Event::Error { message } => Err(PeerError::Refused(message)),
            other => Err(unexpected("request", other).into()),
        }
    }
}

impl ServiceClient {
    /// The last frames to and from the service (newest last), each `ms direction json`.
    pub fn recent_frames(&self) -> Vec<String> {
        self.recent.lines()
    }

    /// Sends a command that is not answered (e.g. `respond`); dropped if no service runs.
    pub async fn notify(&self, command: Command) {
        let _ = self
            .tx
            .send(Request {
                command,
                reply: None,
            })
            .await;
    }
}

pub struct ServiceSpec {
    /// The `whatnext` binary; the service is `<program> p2p`.
    pub program: PathBuf,
    pub node: NodeConfig,
    pub policy: RestartPolicy,
    /// Where the pinned listen addresses are kept across controller restarts
    /// (`<home>/listen.json`), so friends' copies of our addresses stay dialable after the
    /// app restarts too. None: pinned for this run only.
    pub listen_memory: Option<PathBuf>,
}

/// What `listen_memory` holds: the configured listen addresses and the ones pinned for them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ListenMemory {
    configured: Vec<String>,
    pinned: Vec<String>,
}

/// The pinned listen addresses kept in `path`, if they are for the `configured` ones and
/// make sense: one dialable multiaddr per configured address. Anything else (a damaged or
/// hand-edited file) is ignored with a warning, and the configured addresses are used.
fn read_listen_memory(path: &std::path::Path, configured: &[String]) -> Option<Vec<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(
                "cannot read {} ({err}); listening on the configured addresses",
                path.display()
            );
            return None;
        }
    };
    let memory = match serde_json::from_slice::<ListenMemory>(&bytes) {
        Ok(memory) => memory,
        Err(err) => {
            tracing::warn!(
                "{} is damaged ({err}); listening on the configured addresses",
                path.display()
            );
            return None;
        }
    };
    if memory.configured != configured {
        return None; // the configuration changed: the old ports mean nothing
    }
    let valid = memory.pinned.len() == configured.len()
        && memory
            .pinned
            .iter()
            .all(|a| a.parse::<multiaddr::Multiaddr>().is_ok());
    if !valid {
        tracing::warn!(
            "{} does not hold one address per configured listen address ({:?}); listening on the configured addresses",
            path.display(),
            memory.pinned
        );
        return None;
    }
    Some(memory.pinned)
}

pub struct Supervisor {
    spec: ServiceSpec,
    state: StateHandle,
    requests: mpsc::Receiver<Request>,
    shutdown: CancellationToken,
    /// Known dialable addresses of peers, from our dials and from identify.
    peer_addrs: HashMap<String, Vec<String>>,
    /// Peers connected when the last incarnation died: dialed again by the next one.
    redial: HashSet<String>,
    crashes: VecDeque<Instant>,
    consecutive_crashes: u32,
    /// Where app-level events go (sessions and sync): inbound requests, connections.
    app_events: Option<mpsc::UnboundedSender<Event>>,
    /// The configured listen addresses with port 0 replaced by the ports the first node got,
    /// so a restarted service keeps its addresses and peers' copies of them stay dialable.
    pinned_listen: Option<Vec<String>>,
    recent: IpcLog,
}

pub fn supervisor(
    spec: ServiceSpec,
    state: StateHandle,
    shutdown: CancellationToken,
) -> (Supervisor, ServiceClient) {
    let (tx, requests) = mpsc::channel(256);
    // The ports of the last run, if the configuration is the same (else they mean nothing).
    let remembered = spec
        .listen_memory
        .as_ref()
        .and_then(|path| read_listen_memory(path, &spec.node.listen));
    let supervisor = Supervisor {
        spec,
        state,
        requests,
        shutdown,
        peer_addrs: HashMap::new(),
        redial: HashSet::new(),
        crashes: VecDeque::new(),
        consecutive_crashes: 0,
        pinned_listen: remembered,
        app_events: None,
        recent: IpcLog::default(),
    };
    let recent = supervisor.recent.clone();
    (supervisor, ServiceClient { tx, recent })
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
    pub fn with_app_events(mut self, tx: mpsc::UnboundedSender<Event>) -> Self {
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
            if started.elapsed() >= self.spec.policy.stable_after {
                self.consecutive_crashes = 0;
            }
            self.consecutive_crashes += 1;
            let now = Instant::now();
            self.crashes.push_back(now);
            while self
                .crashes
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.spec.policy.crash_window)
            {
                self.crashes.pop_front();
            }
            if self.crashes.len() >= self.spec.policy.max_crashes {
                let reason = format!(
                    "the network service crashed {} times within {:?}; not restarting it (last failure: {reason})",
                    self.crashes.len(),
                    self.spec.policy.crash_window
                );
                tracing::error!("{reason}");
                self.fail(reason).await;
                break;
            }
            let backoff = self.backoff();
            self.state.update(|s| {
                s.node = NodeStatus::Restarting;
                s.last_error = Some(reason.clone());
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

    /// No wait after a first crash (most are one-offs, and every millisecond is a gap in
    /// the user's session); then `first_backoff`, doubling up to `max_backoff`.
    fn backoff(&self) -> Duration {
        match self.consecutive_crashes {
            0 | 1 => Duration::ZERO,
            n => {
                let exp = (n - 2).min(16);
                (self.spec.policy.first_backoff * 2u32.pow(exp)).min(self.spec.policy.max_backoff)
            }
        }
    }

    async fn fail(&mut self, reason: String) {
        self.state.update(|s| {
            s.node = NodeStatus::Failed;
            s.last_error = Some(reason.clone());
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
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                () = self.shutdown.cancelled() => return false,
                Some(request) = self.requests.recv() => {
                    if let Some(reply) = request.reply {
                        let _ = reply.send(Err(ServiceError::Unavailable(why.to_string())));
                    }
                }
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut command = tokio::process::Command::new(&self.spec.program);
        command
            .arg("p2p")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: Ctrl-C in a terminal reaches only the controller, which
        // then stops the service in order instead of seeing it "crash".
        #[cfg(unix)]
        command.process_group(0);
        command.spawn()
    }

    async fn run_incarnation(&mut self, incarnation: u32) -> Ended {
        let mut child = match self.spawn() {
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
        tokio::spawn(relay_logs(stderr));
        let pid = child.id();
        self.state.update(|s| {
            s.service.pid = pid;
            true
        });
        let (outbox, frames) = mpsc::channel(OUTBOX_FRAMES);
        let writer = tokio::spawn(whatnext_protocol::frame::write_queued_frames(stdin, frames));
        let mut link = ServiceLink {
            recent: self.recent.clone(),
            outbox,
            writer,
            reader: FramedRead::new(stdout, FrameCodec::default()),
            next_id: 1,
            pending: HashMap::new(),
            internal: HashMap::new(),
        };
        let ended = self.drive(&mut child, &mut link, incarnation).await;
        for (_, reply) in link.pending.drain() {
            let _ = reply.send(Err(ServiceError::Restarted));
        }
        if let Ended::Shutdown = ended {
            // Never wait for room in the pipe here: a service that stopped reading must not
            // keep the controller from exiting. Closing the outbox lets the writer end, which
            // closes the service's stdin; the service exits on that EOF too.
            let _ = link.try_send(Command::Shutdown, Internal::Ignore);
            let ServiceLink { writer, .. } = link;
            if tokio::time::timeout(SHUTDOWN_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
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
                let _ = tx.send(Event::ConnectionClosed {
                    peer_id: c.peer_id.clone(),
                    connection_id: c.connection_id,
                    cause: Some("the network service stopped".into()),
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
            Ok(None) => return Ended::Crashed(exit_reason(child).await),
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
        if let Some(pinned) = &self.pinned_listen {
            node.listen = pinned.clone();
        }
        if link
            .try_send(Command::StartNode(node), Internal::StartNode)
            .is_err()
        {
            return Ended::Crashed(exit_reason(child).await);
        }
        if incarnation > 0 {
            tracing::info!("network service restarted (incarnation {incarnation})");
        }
        // 3. The steady state. This loop never waits for room in the service's stdin: the
        //    writer task does that. It takes a new request only once it holds a slot in the
        //    outbox (backpressure to the callers), and it always goes on reading the service's
        //    events, so the two processes can never each wait for the other to read.
        let mut heartbeat = tokio::time::interval(policy.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A pong proves both pipes move: the ping went through stdin and the answer came back.
        let mut last_pong = Instant::now();
        let mut slot: Option<mpsc::OwnedPermit<Vec<u8>>> = None;
        // Created once: a fresh `cancelled()` per iteration would register a waiter each time.
        let shutdown = self.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                // In order: shutdown, replies (what waiting requests are blocked on), new
                // requests, the heartbeat.
                biased;
                () = &mut cancelled => return Ended::Shutdown,
                frame = link.reader.next() => {
                    match frame {
                        None => return Ended::Crashed(exit_reason(child).await),
                        Some(Err(err)) => return Ended::Crashed(format!("unreadable frame from the service: {err}")),
                        Some(Ok(frame)) => match parse_event(self.recent.see(frame)) {
                            Ok(envelope) => {
                                if matches!(envelope.body, Event::Pong) {
                                    last_pong = Instant::now();
                                }
                                if let Some(ended) = self.on_event(link, envelope) {
                                    return ended;
                                }
                            }
                            Err(err) => tracing::warn!("ignored a bad frame from the service: {err}"),
                        },
                    }
                }
                written = &mut link.writer => {
                    let why = match written {
                        Ok(Ok(())) => "the command pipe closed".to_string(),
                        Ok(Err(err)) => format!("could not write to the service: {err}"),
                        Err(err) => format!("the command writer failed: {err}"),
                    };
                    tracing::debug!("{why}");
                    return Ended::Crashed(exit_reason(child).await);
                }
                permit = link.outbox.clone().reserve_owned(), if slot.is_none() => match permit {
                    Ok(permit) => slot = Some(permit),
                    Err(_) => return Ended::Crashed(exit_reason(child).await),
                },
                Some(request) = self.requests.recv(), if slot.is_some() => {
                    let waiter = request.reply.map_or(Internal::Ignore, Internal::Reply);
                    if let Some(permit) = slot.take() {
                        link.send_with(permit, request.command, waiter);
                    }
                }
                _ = heartbeat.tick() => {
                    if last_pong.elapsed() > policy.heartbeat_timeout {
                        let pipe = if link.outbox.capacity() == 0 {
                            "; its command pipe has been full all that time"
                        } else {
                            ""
                        };
                        return Ended::Crashed(format!(
                            "the service stopped answering heartbeats for {:?}{pipe}",
                            last_pong.elapsed()
                        ));
                    }
                    if let Some(rss) = child.id().and_then(resident_bytes)
                        && rss > policy.max_service_rss_bytes
                    {
                        return Ended::Crashed(format!(
                            "the service used {} MB of memory, over its bound of {} MB; restarted",
                            rss >> 20,
                            policy.max_service_rss_bytes >> 20
                        ));
                    }
                    // A full outbox skips this ping; the missing pong is then what counts.
                    let _ = link.try_send(Command::Ping, Internal::Ignore);
                }
            }
        }
    }

    /// Writes `listen.json` on the blocking pool (it fsyncs); the supervisor's loop goes on
    /// reading events meanwhile. Written once per controller run, so writes cannot race.
    fn remember_listen(&self, pinned: &[String]) {
        let Some(path) = self.spec.listen_memory.clone() else {
            return;
        };
        let memory = ListenMemory {
            configured: self.spec.node.listen.clone(),
            pinned: pinned.to_vec(),
        };
        tokio::task::spawn_blocking(move || {
            let written = serde_json::to_vec_pretty(&memory)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    whatnext_home::files::write_private_file(&path, &bytes)
                        .map_err(|e| e.to_string())
                });
            if let Err(err) = written {
                tracing::warn!(
                    "could not remember the listen ports in {} ({err}); the next run may get new ones",
                    path.display()
                );
            }
        });
    }

    /// Applies one event. Returns `Some` when the incarnation must end.
    fn on_event(&mut self, link: &mut ServiceLink, envelope: EventEnvelope) -> Option<Ended> {
        let EventEnvelope { id, body: event } = envelope;
        let waiter = id.and_then(|id| link.take_waiter(id));
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
            (Some(Internal::StartNode), Event::NodeStarted { listen_addrs, .. }) => {
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
            let _ = tx.send(event.clone());
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
        let now = now_ms();
        self.state.update(|s| reducer::reduce(s, event, now));
    }
}

/// Resident memory of process `pid` (VmRSS), if it can be read.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Replaces port 0 in each configured address by the port the node actually got on a
/// reported address of the same shape (same protocols; same IP unless unspecified).
pub fn pin_ports(configured: &[String], reported: &[String]) -> Vec<String> {
    use multiaddr::{Multiaddr, Protocol};
    fn port(p: &Protocol) -> Option<u16> {
        match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(*port),
            _ => None,
        }
    }
    fn unspecified(p: &Protocol) -> bool {
        match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        }
    }
    let configured_addrs: Vec<Multiaddr> =
        configured.iter().filter_map(|a| a.parse().ok()).collect();
    // A reported address on a port that is configured explicitly belongs to that listener.
    let explicit_ports: Vec<u16> = configured_addrs
        .iter()
        .flat_map(|a| a.iter().filter_map(|p| port(&p)))
        .filter(|p| *p != 0)
        .collect();
    let reported: Vec<Multiaddr> = reported
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter(|a| {
            !a.iter()
                .filter_map(|p| port(&p))
                .any(|p| explicit_ports.contains(&p))
        })
        .collect();
    configured
        .iter()
        .map(|text| {
            let Ok(addr) = text.parse::<Multiaddr>() else {
                return text.clone();
            };
            if !addr.iter().any(|p| port(&p) == Some(0)) {
                return text.clone();
            }
            let matches = |candidate: &Multiaddr| {
                let (a, b): (Vec<_>, Vec<_>) = (addr.iter().collect(), candidate.iter().collect());
                a.len() == b.len()
                    && a.iter().zip(&b).all(|(want, got)| {
                        std::mem::discriminant(want) == std::mem::discriminant(got)
                            && (want == got || unspecified(want) || port(want) == Some(0))
                    })
            };
            let Some(found) = reported.iter().find(|c| matches(c)) else {
                return text.clone();
            };
            addr.iter()
                .zip(found.iter())
                .map(|(want, got)| if port(&want) == Some(0) { got } else { want })
                .collect::<Multiaddr>()
                .to_string()
        })
        .collect()
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
        Frame::Message(body) => decode_json(&body).map_err(|e| e.to_string()),
        Frame::Oversized { len, max } => {
            Err(format!("oversized event frame ({len} bytes, limit {max})"))
        }
    }
}

async fn exit_reason(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
        Ok(Ok(status)) => describe_exit(status),
        Ok(Err(err)) => format!("the service's status is unknown: {err}"),
        Err(_) => "the service closed its output but kept running".to_string(),
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            return format!("the network service was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("the network service exited with status {code}"),
        None => "the network service exited".to_string(),
    }
}

/// Who waits for the reply to a command.
enum Internal {
    Reply(Reply),
    StartNode,
    Ignore,
}

/// Frames waiting for the service's stdin. Small: a caller beyond it waits for a slot
/// (backpressure), and memory stays bounded however slowly the service reads.
const OUTBOX_FRAMES: usize = 64;
/// How long a service asked to shut down gets before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct ServiceLink {
    recent: IpcLog,
    /// To the writer task, which owns the service's stdin.
    outbox: mpsc::Sender<Vec<u8>>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    reader: FramedRead<ChildStdout, FrameCodec>,
    next_id: u64,
    pending: HashMap<u64, Reply>,
    internal: HashMap<u64, Internal>,
}

/// Why a frame could not be queued for the service.
#[derive(Debug)]
enum QueueError {
    /// The outbox is full: the service is not keeping up (or not reading).
    Full,
    /// The writer ended (the pipe broke).
    Closed,
}

impl ServiceLink {
    /// Numbers `command`, logs it (redacted) and registers who waits for its reply.
    fn encode(&mut self, command: Command, waiter: Internal) -> Vec<u8> {
        // Heartbeats would push everything else out of the debug log, and the identity key
        // must never reach it.
        let heartbeat = matches!(command, Command::Ping);
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&whatnext_protocol::ipc::Envelope::request(id, command))
            .unwrap_or_default();
        if !heartbeat {
            self.recent.record("▶", &body);
        }
        match waiter {
            Internal::Reply(reply) => {
                self.pending.insert(id, reply);
            }
            Internal::StartNode => {
                self.internal.insert(id, Internal::StartNode);
            }
            Internal::Ignore => {}
        }
        body
    }

    /// Queues a command without waiting: for the supervisor's own frames, which must never
    /// stall the loop that reads the service's events.
    fn try_send(&mut self, command: Command, waiter: Internal) -> Result<(), QueueError> {
        let permit = self
            .outbox
            .clone()
            .try_reserve_owned()
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
            })?;
        self.send_with(permit, command, waiter);
        Ok(())
    }

    /// Queues a command into a slot reserved earlier.
    fn send_with(
        &mut self,
        permit: mpsc::OwnedPermit<Vec<u8>>,
        command: Command,
        waiter: Internal,
    ) {
        let body = self.encode(command, waiter);
        let _ = permit.send(body);
    }

    fn take_waiter(&mut self, id: u64) -> Option<Internal> {
        if let Some(reply) = self.pending.remove(&id) {
            return Some(Internal::Reply(reply));
        }
        self.internal.remove(&id)
    }
}

/// Re-emits the service's stderr lines under the `p2p` target, at their own level.
async fn relay_logs(stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let trimmed = line.trim_start();
        let (level, rest) = trimmed.split_once(' ').unwrap_or(("", trimmed));
        match level {
            "ERROR" => tracing::error!(target: "p2p", "{rest}"),
            "WARN" => tracing::warn!(target: "p2p", "{rest}"),
            "INFO" => tracing::info!(target: "p2p", "{rest}"),
            "DEBUG" => tracing::debug!(target: "p2p", "{rest}"),
            "TRACE" => tracing::trace!(target: "p2p", "{rest}"),
            _ => tracing::info!(target: "p2p", "{trimmed}"),
        }
    }
}

/// Encodes the identity for `start_node`.
pub fn encode_keypair(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_pinned_to_the_port_the_node_got() {
        let configured = vec![
            "/ip4/0.0.0.0/tcp/0".to_string(),
            "/ip4/127.0.0.1/udp/0/quic-v1".to_string(),
            "/ip4/127.0.0.1/tcp/4001".to_string(),
        ];
        let reported = vec![
            "/ip4/127.0.0.1/udp/5555/quic-v1".to_string(),
            "/ip4/127.0.0.1/tcp/4001".to_string(),
            "/ip4/192.0.2.7/tcp/6666".to_string(),
            "/ip4/127.0.0.1/tcp/6666".to_string(),
        ];
        assert_eq!(
            pin_ports(&configured, &reported),
            vec![
                "/ip4/0.0.0.0/tcp/6666".to_string(),
                "/ip4/127.0.0.1/udp/5555/quic-v1".to_string(),
                "/ip4/127.0.0.1/tcp/4001".to_string(),
            ]
        );
    }

    #[test]
    fn first_restart_is_immediate_then_backoff_doubles_up_to_the_cap() {
        let (mut sup, _client) = supervisor(
            ServiceSpec {
                program: PathBuf::from("whatnext"),
                node: NodeConfig {
                    keypair: String::new(),
                    listen: vec![],
                    bootstrap: vec![],
                    relays: vec![],
                    mdns: false,
                    upnp: false,
                    agent_version: String::new(),
                    ping_interval_ms: 1000,
                },
                policy: RestartPolicy::default(),
                listen_memory: None,
            },
            crate::state::StateHandle::new(test_state()),
            CancellationToken::new(),
        );
        let mut seen = vec![];
        for n in 1..=10 {
            sup.consecutive_crashes = n;
            seen.push(sup.backoff().as_millis());
        }
        assert_eq!(
            seen,
            vec![0, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]
        );
    }

    /// The typed commands turn each answer into its meaning, and an answer that does not
    /// fit the command into `Unexpected` (not a value some caller must re-check).
    #[tokio::test]
    async fn typed_commands_map_answers_and_report_unexpected_ones() {
        let (tx, mut rx) = mpsc::channel::<Request>(4);
        let client = ServiceClient {
            tx,
            recent: IpcLog::default(),
        };
        let answers = vec![
            Event::Dialed {
                peer_id: "p".into(),
                addr: "/ip4/127.0.0.1/tcp/1".into(),
                micros: Some(1_500),
            },
            Event::DialFailed {
                peer_id: Some("p".into()),
                reason: "connection refused".into(),
                kind: whatnext_protocol::state::DialErrorKind::Refused,
            },
            Event::Pong,
            Event::Error {
                message: "not a peer id".into(),
            },
        ];
        tokio::spawn(async move {
            for answer in answers {
                let Some(request) = rx.recv().await else {
                    return;
                };
                if let Some(reply) = request.reply {
                    let _ = reply.send(Ok(answer));
                }
            }
        });
        let wait = Duration::from_secs(5);
        let dialed = client.dial(None, vec![], wait).await.expect("dialed");
        assert_eq!(
            (dialed.addr.as_str(), dialed.micros),
            ("/ip4/127.0.0.1/tcp/1", Some(1_500))
        );
        let failed = client.dial(None, vec![], wait).await;
        assert!(
            matches!(&failed, Err(PeerError::Failed(r)) if r == "connection refused"),
            "{failed:?}"
        );
        let odd = client.dial(None, vec![], wait).await;
        assert!(
            matches!(
                &odd,
                Err(PeerError::Service(ServiceError::Unexpected {
                    command: "dial",
                    ..
                }))
            ),
            "{odd:?}"
        );
        let refused = client.hang_up("x".into(), wait).await;
        assert!(
            matches!(&refused, Err(PeerError::Refused(m)) if m == "not a peer id"),
            "{refused:?}"
        );
    }

    fn test_state() -> whatnext_protocol::state::AppState {
        whatnext_protocol::state::AppState::initial(1, String::new(), String::new(), 0)
    }
}
