//! Request matching: how a caller's command reaches whichever incarnation of the service is
//! current and how its answer finds the way back. [`ServiceClient`] queues a request with a
//! parked oneshot; the supervisor's [`ServiceLink`] numbers it, remembers who waits for the
//! id, and hands the reply (or `Restarted`, when the incarnation dies first) to that waiter.
//! The typed commands turn each answer into what it means, so no caller matches events.

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    process::ChildStdout,
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tokio_util::codec::FramedRead;
use whatnext_protocol::{
    frame::{Frame, FrameCodec, OutFrame},
    ipc::{Command, Event},
};

use crate::state::now_ms;

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

pub(super) type Reply = oneshot::Sender<Result<Event, ServiceError>>;

/// A caller waiting for the reply to its command, and until when. The supervisor, not a
/// timer per request, answers `Timeout` when the deadline passes: a tokio timer is
/// registered, polled and cleared for every request otherwise, about a tenth of the
/// controller's work per request when many are in flight.
pub(super) struct Waiter {
    reply: Reply,
    deadline: Instant,
    /// What the caller gave, for the error.
    timeout: Duration,
}

/// Request ids are handed out in order: they need no hashing.
type ById<T> = HashMap<u64, T, nohash_hasher::BuildNoHashHasher<u64>>;

/// Where a caller's command goes now: the live incarnation's [`Outlet`], or why there is
/// none. The supervisor publishes it (a watch channel); callers only read it.
#[derive(Clone)]
pub(super) enum Route {
    /// A service is being started: callers wait for it (within their timeout).
    Starting,
    Live(Arc<Outlet>),
    /// No service runs, for this reason (restarting, failed, shutting down).
    Down(String),
}

/// The live incarnation's command pipe as callers use it: each caller queues its own frame
/// for the writer task, without a hop through the supervisor's loop. The supervisor still
/// owns who waits for which reply: a caller hands it the reply's oneshot over `waiters`
/// before its frame can reach the service, and the supervisor collects those handovers
/// only when a reply arrives — so a request costs the supervisor no wake-up of its own.
pub(super) struct Outlet {
    /// To the writer task, which owns the service's stdin. Bounded: a caller beyond it waits
    /// for a slot (backpressure), and memory stays bounded however slowly the service reads.
    outbox: mpsc::Sender<OutFrame>,
    /// Request ids of this incarnation, shared by the callers and the supervisor.
    ids: AtomicU64,
    waiters: mpsc::UnboundedSender<(u64, Waiter)>,
    recent: IpcLog,
    /// How often at most the supervisor collects waiters when no reply comes (its
    /// heartbeat): a deadline nearer than twice this keeps a timer of its own.
    sweep_every: Duration,
}

impl Outlet {
    /// Numbers `command`, logs it (redacted) and encodes it.
    fn encode(&self, command: Command) -> (u64, OutFrame) {
        // Heartbeats would push everything else out of the debug log, and the identity key
        // must never reach it.
        let heartbeat = matches!(command, Command::Ping);
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let frame = whatnext_protocol::ipc::encode_compact(id, command).unwrap_or_default();
        if !heartbeat {
            self.recent.record("▶", &frame.head);
        }
        (id, frame)
    }

    /// Queues a caller's command, waiting for room in the outbox (until the waiter's
    /// deadline, when it has one); its reply (if it has a waiter) goes to `waiter`.
    async fn send(&self, command: Command, waiter: Option<Waiter>) -> Result<(), ServiceError> {
        // A closed outbox or waiter queue: this incarnation ended after the caller took it.
        let permit = match self.outbox.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Closed(())) => return Err(ServiceError::Restarted),
            Err(mpsc::error::TrySendError::Full(())) => {
                let room = self.outbox.reserve();
                let permit = match &waiter {
                    Some(waiter) => tokio::time::timeout_at(waiter.deadline, room)
                        .await
                        .map_err(|_| ServiceError::Timeout(waiter.timeout))?,
                    None => room.await,
                };
                permit.map_err(|_| ServiceError::Restarted)?
            }
        };
        let (id, frame) = self.encode(command);
        if let Some(waiter) = waiter {
            // Before the frame is queued, so the supervisor knows the waiter by the time
            // the reply can arrive.
            self.waiters
                .send((id, waiter))
                .map_err(|_| ServiceError::Restarted)?;
        }
        permit.send(frame);
        Ok(())
    }
}

/// Sends commands to whichever incarnation of the service is current.
#[derive(Clone)]
pub struct ServiceClient {
    route: watch::Receiver<Route>,
    recent: IpcLog,
}

/// A client, and the route it follows (the supervisor's end).
pub(super) fn channel(recent: IpcLog) -> (ServiceClient, watch::Sender<Route>) {
    let (routes, route) = watch::channel(Route::Starting);
    (ServiceClient { route, recent }, routes)
}

/// The last frames exchanged with the service, for the view's debug panel.
#[derive(Clone, Default)]
pub struct IpcLog(std::sync::Arc<std::sync::Mutex<VecDeque<String>>>);

/// Field names whose values are secrets: the identity key and the WebRTC certificate's key
/// (`start_node`, `node_started`) and the share keys that handshakes carry in both directions.
const SECRET_FIELDS: [&str; 4] = [
    "keypair",
    "key",
    "webrtc_certificate",
    "new_webrtc_certificate",
];

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
        // Only the JSON is shown (and searched for secrets), never the audio after it.
        let (head, data) = whatnext_protocol::frame::attachment_parts(body).unwrap_or((body, &[]));
        // A compact frame is shown as the JSON envelope it stands for.
        let json = whatnext_protocol::ipc::readable(head);
        let json = redact_secrets(&json);
        let text = String::from_utf8_lossy(&json[..json.len().min(300)]);
        let line = if data.is_empty() {
            format!("{} {direction} {text}", now_ms())
        } else {
            format!("{} {direction} {text} (+{} bytes)", now_ms(), data.len())
        };
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= IPC_LOG_LEN {
            log.pop_front();
        }
        log.push_back(line);
    }

    /// Records an event frame on its way in.
    pub(super) fn see(&self, frame: Frame) -> Frame {
        if let Frame::Message(body) = &frame
            && !body.ends_with(br#""type":"pong"}"#)
            && whatnext_protocol::ipc::unit_of(body) != Some("pong")
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
        let deadline = Instant::now() + timeout;
        let outlet = match self.live_outlet() {
            Some(outlet) => outlet,
            None => tokio::time::timeout_at(deadline, self.outlet())
                .await
                .map_err(|_| ServiceError::Timeout(timeout))??,
        };
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            reply,
            deadline,
            timeout,
        };
        let asked = async {
            outlet.send(command, Some(waiter)).await?;
            // A dropped oneshot: the incarnation that had the request died before answering.
            answer.await.map_err(|_| ServiceError::Restarted)?
        };
        if timeout < 2 * outlet.sweep_every {
            // Sooner than the supervisor is sure to look: this one keeps its own timer.
            return tokio::time::timeout_at(deadline, asked)
                .await
                .unwrap_or(Err(ServiceError::Timeout(timeout)));
        }
        asked.await
    }

    /// The live incarnation's outlet, if there is one now.
    fn live_outlet(&self) -> Option<Arc<Outlet>> {
        match &*self.route.borrow() {
            Route::Live(outlet) => Some(outlet.clone()),
            _ => None,
        }
    }

    /// The live incarnation's outlet, waiting while one is being started.
    async fn outlet(&self) -> Result<Arc<Outlet>, ServiceError> {
        if let Some(outlet) = self.live_outlet() {
            return Ok(outlet);
        }
        let mut route = self.route.clone();
        let settled = route
            .wait_for(|r| !matches!(r, Route::Starting))
            .await
            .map_err(|_| ServiceError::Unavailable("the controller is shutting down".into()))?;
        match &*settled {
            Route::Live(outlet) => Ok(outlet.clone()),
            Route::Down(why) => Err(ServiceError::Unavailable(why.clone())),
            Route::Starting => Err(ServiceError::Restarted),
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
        Ok(self
            .app_request_with_data(peer_id, protocol, body, timeout)
            .await?
            .0)
    }

    /// Like [`Self::app_request`], with the raw bytes that came after the answer's JSON.
    pub async fn app_request_with_data(
        &self,
        peer_id: String,
        protocol: whatnext_protocol::ipc::AppProtocol,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<(serde_json::Value, bytes::Bytes), PeerError> {
        let command = Command::Request {
            peer_id,
            protocol,
            body,
        };
        match self.request(command, timeout).await? {
            Event::Response { body, data } => Ok((body, data)),
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
        if let Ok(outlet) = self.outlet().await {
            let _ = outlet.send(command, None).await;
        }
    }
}

/// Who waits for the reply to a command.
pub(super) enum Internal {
    Reply(Reply),
    StartNode,
    Ignore,
}

/// Frames waiting for the service's stdin. Small: a caller beyond it waits for a slot
/// (backpressure), and memory stays bounded however slowly the service reads.
pub(super) const OUTBOX_FRAMES: usize = 64;

/// One incarnation's pipes, and who waits for which request id on them.
pub(super) struct ServiceLink {
    pub(super) outlet: Arc<Outlet>,
    pub(super) writer: tokio::task::JoinHandle<std::io::Result<()>>,
    pub(super) reader: FramedRead<ChildStdout, FrameCodec>,
    pub(super) waiting: Waiting,
}

/// A live incarnation's outlet for callers, and the supervisor's end of it: who waits.
/// `sweep_every`: how often at most the supervisor sweeps (its heartbeat).
fn outlet(
    recent: IpcLog,
    outbox: mpsc::Sender<OutFrame>,
    sweep_every: Duration,
) -> (Arc<Outlet>, Waiting) {
    let (waiters, handed_over) = mpsc::unbounded_channel();
    let outlet = Outlet {
        outbox,
        ids: AtomicU64::new(1),
        waiters,
        recent,
        sweep_every,
    };
    let waiting = Waiting {
        handed_over,
        pending: ById::default(),
        internal: ById::default(),
        expiry: Expiry::new(),
    };
    (Arc::new(outlet), waiting)
}

/// Who waits for the reply to which request id of one incarnation, and until when. Owned
/// by the supervisor's loop; callers hand their waiters over through [`Outlet`].
pub(super) struct Waiting {
    /// Callers' waiters not yet collected into `pending`.
    handed_over: mpsc::UnboundedReceiver<(u64, Waiter)>,
    pending: ById<Waiter>,
    internal: ById<Internal>,
    pub(super) expiry: Expiry,
}

impl Waiting {
    /// Collects the waiters callers handed over since the last look.
    fn collect(&mut self) {
        while let Ok((id, waiter)) = self.handed_over.try_recv() {
            self.file(id, waiter);
        }
    }

    fn file(&mut self, id: u64, waiter: Waiter) {
        self.expiry.at_the_latest(waiter.deadline);
        self.pending.insert(id, waiter);
    }

    /// Answers `Timeout` to the callers whose deadline passed and forgets those who gave up
    /// (their request future was dropped); sets the expiry to the next deadline.
    pub(super) fn sweep(&mut self) {
        self.collect();
        let now = Instant::now();
        let ended = self
            .pending
            .extract_if(|_, waiter| waiter.reply.is_closed() || waiter.deadline <= now);
        for (_, waiter) in ended {
            // (A caller that gave up hears nothing: no one is listening.)
            let _ = waiter
                .reply
                .send(Err(ServiceError::Timeout(waiter.timeout)));
        }
        let next = self.pending.values().map(|waiter| waiter.deadline).min();
        self.expiry.set(next);
    }

    /// [`Self::sweep`]s if the earliest deadline has passed: for a loop busy with a stream
    /// of replies, which may not get to the expiry's turn for a while.
    pub(super) fn sweep_if_due(&mut self) {
        if self.expiry.at.is_some_and(|at| at <= Instant::now()) {
            self.sweep();
        }
    }

    /// Tells every caller still waiting that this incarnation died before answering; a
    /// caller that comes later finds the waiter queue closed and hears the same.
    pub(super) fn fail_all(&mut self) {
        self.handed_over.close();
        self.collect();
        for (_, waiter) in self.pending.drain() {
            let _ = waiter.reply.send(Err(ServiceError::Restarted));
        }
        self.expiry.set(None);
    }

    /// Who waits for the reply to request `id`, taken out.
    pub(super) fn take(&mut self, id: u64) -> Option<Internal> {
        if let Some(internal) = self.internal.remove(&id) {
            return Some(internal);
        }
        if let Some(waiter) = self.pending.remove(&id) {
            return Some(Internal::Reply(waiter.reply));
        }
        // Usually the waiter is among the newest handovers: take it from there without
        // filing it first; the others are filed for their own replies.
        let mut found = None;
        while let Ok((waiter_id, waiter)) = self.handed_over.try_recv() {
            if waiter_id == id {
                found = Some(waiter.reply);
            } else {
                self.file(waiter_id, waiter);
            }
        }
        found.map(Internal::Reply)
    }
}

/// Wakes the supervisor at the earliest deadline among the collected waiters (or early: a
/// waiter answered since leaves it set, and the sweep then finds the next).
pub(super) struct Expiry {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// When it goes off; `None`: never (no collected waiter).
    at: Option<Instant>,
}

impl Expiry {
    fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            at: None,
        }
    }

    /// Goes off at `at` instead, if that is sooner.
    fn at_the_latest(&mut self, at: Instant) {
        if self.at.is_none_or(|now_at| at < now_at) {
            self.set(Some(at));
        }
    }

    fn set(&mut self, at: Option<Instant>) {
        self.at = at;
        if let Some(at) = at {
            self.sleep.as_mut().reset(at);
        }
    }

    /// Completes when the time set has come; never while none is set.
    pub(super) async fn wait(&mut self) {
        match self.at {
            Some(_) => self.sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// Why a frame could not be queued for the service.
#[derive(Debug)]
pub(super) enum QueueError {
    /// The outbox is full: the service is not keeping up (or not reading).
    Full,
    /// The writer ended (the pipe broke).
    Closed,
}

impl ServiceLink {
    /// `sweep_every`: how often at most the supervisor sweeps the waiters (its heartbeat).
    pub(super) fn new(
        recent: IpcLog,
        outbox: mpsc::Sender<OutFrame>,
        writer: tokio::task::JoinHandle<std::io::Result<()>>,
        reader: FramedRead<ChildStdout, FrameCodec>,
        sweep_every: Duration,
    ) -> Self {
        let (outlet, waiting) = outlet(recent, outbox, sweep_every);
        Self {
            outlet,
            writer,
            reader,
            waiting,
        }
    }

    /// Queues a command without waiting: for the supervisor's own frames, which must never
    /// stall the loop that reads the service's events.
    pub(super) fn try_send(
        &mut self,
        command: Command,
        waiter: Internal,
    ) -> Result<(), QueueError> {
        let permit = self.outlet.outbox.try_reserve().map_err(|err| match err {
            mpsc::error::TrySendError::Full(()) => QueueError::Full,
            mpsc::error::TrySendError::Closed(()) => QueueError::Closed,
        })?;
        let (id, frame) = self.outlet.encode(command);
        if let Internal::StartNode = waiter {
            self.waiting.internal.insert(id, waiter);
        }
        permit.send(frame);
        Ok(())
    }

    /// Whether the outbox has no room left (the service is not reading).
    pub(super) fn outbox_full(&self) -> bool {
        self.outlet.outbox.capacity() == 0
    }

    /// Drops this end of the outbox, so the writer task ends once it has written what is
    /// queued (and closes the service's stdin); returns that task.
    pub(super) fn into_writer(self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The debug log never shows a key: the identity's and the WebRTC certificate's, both
    /// ways over the pipe.
    #[test]
    fn the_ipc_log_hides_the_identity_key_and_the_webrtc_certificate() {
        let log = IpcLog::default();
        log.record(
            "▶",
            br#"{"id":1,"type":"start_node","payload":{"keypair":"SECRET-KEY","listen":[],"webrtc_certificate":"-----BEGIN PRIVATE_KEY-----SECRET-CERT"}}"#,
        );
        log.record(
            "◀",
            br#"{"id":1,"type":"node_started","payload":{"peer_id":"12D3","listen_addrs":[],"new_webrtc_certificate":"-----BEGIN PRIVATE_KEY-----SECRET-NEW"}}"#,
        );
        // As the controller sends it: a compact frame.
        let config = whatnext_protocol::ipc::NodeConfig {
            keypair: "SECRET-COMPACT".into(),
            listen: vec![],
            bootstrap: vec![],
            relays: vec![],
            mdns: false,
            upnp: false,
            agent_version: String::new(),
            ping_interval_ms: 5_000,
            webrtc_certificate: None,
        };
        let frame = whatnext_protocol::ipc::encode_compact(2, Command::StartNode(Box::new(config)))
            .expect("encodes");
        log.record("▶", &frame.head);
        let lines = log.lines().join("\n");
        assert!(!lines.contains("SECRET"), "{lines}");
        assert_eq!(lines.matches("(redacted)").count(), 4, "{lines}");
        assert!(
            lines.contains(r#"▶ {"id":2,"#) && lines.matches("start_node").count() == 2,
            "{lines}"
        );
        assert!(
            lines.contains("start_node") && lines.contains("12D3"),
            "{lines}"
        );
    }

    /// The typed commands turn each answer into its meaning, and an answer that does not
    /// fit the command into `Unexpected` (not a value some caller must re-check).
    #[tokio::test]
    async fn typed_commands_map_answers_and_report_unexpected_ones() {
        // A live route whose "service" is this test: it reads the queued frames and
        // answers each through the waiter its caller handed over.
        let (outbox, mut frames) = mpsc::channel::<OutFrame>(4);
        let (
            outlet,
            Waiting {
                mut handed_over, ..
            },
        ) = outlet(IpcLog::default(), outbox, Duration::from_secs(1));
        let (_routes, route) = watch::channel(Route::Live(outlet));
        let client = ServiceClient {
            route,
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
                let (Some(_frame), Some((_id, reply))) =
                    (frames.recv().await, handed_over.recv().await)
                else {
                    return;
                };
                let _ = reply.reply.send(Ok(answer));
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

    /// A request the service never answers ends in `Timeout` at its deadline: a deadline
    /// far enough off by the supervisor's sweep (the request keeps no timer), a near one by
    /// its own timer; a caller that gave up is forgotten. (Fails when the expiry is not
    /// armed: the far request then hears only at the next heartbeat, 5 s instead of 4.5 s.)
    #[tokio::test(start_paused = true)]
    async fn unanswered_requests_time_out_at_their_deadline() {
        let (outbox, _frames) = mpsc::channel::<OutFrame>(8);
        let sweep_every = Duration::from_secs(1);
        let (outlet, mut waiting) = outlet(IpcLog::default(), outbox, sweep_every);
        let (_routes, route) = watch::channel(Route::Live(outlet));
        let client = ServiceClient {
            route,
            recent: IpcLog::default(),
        };
        // The supervisor's loop as it is while no reply comes: the heartbeat and the expiry.
        let supervisor = tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval(sweep_every);
            let watching = async {
                loop {
                    tokio::select! {
                        () = waiting.expiry.wait() => waiting.sweep(),
                        _ = heartbeat.tick() => waiting.sweep(),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(8), watching).await;
            waiting
        });
        let start = Instant::now();
        let ask = |timeout: Duration| {
            let client = client.clone();
            tokio::spawn(async move {
                let answer = client.request(Command::Ping, timeout).await;
                (answer, start.elapsed())
            })
        };
        let far = ask(Duration::from_millis(4_500));
        let near = ask(Duration::from_millis(300));
        let given_up = ask(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
        given_up.abort();

        let (answer, after) = near.await.expect("joined");
        assert!(
            matches!(answer, Err(ServiceError::Timeout(_))),
            "{answer:?}"
        );
        assert!(
            after >= Duration::from_millis(300) && after < Duration::from_millis(350),
            "{after:?}"
        );
        let (answer, after) = far.await.expect("joined");
        assert!(
            matches!(answer, Err(ServiceError::Timeout(t)) if t == Duration::from_millis(4_500)),
            "{answer:?}"
        );
        assert!(
            after >= Duration::from_millis(4_500) && after < Duration::from_millis(4_550),
            "{after:?}"
        );
        let waiting = supervisor.await.expect("joined");
        assert!(
            waiting.pending.is_empty() && waiting.expiry.at.is_none(),
            "nothing is left waiting"
        );
    }

    /// Requests follow the route: while a service starts they wait for it, a route that
    /// goes down answers them with its reason, and an incarnation that ends after a caller
    /// took its outlet answers `Restarted` (not a hang until the timeout).
    #[tokio::test]
    async fn requests_wait_for_a_starting_service_and_hear_why_it_is_down() {
        let (client, routes) = channel(IpcLog::default());
        let wait = Duration::from_secs(5);
        let waiting = tokio::spawn({
            let client = client.clone();
            async move { client.request(Command::Ping, wait).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a request waits while the service starts"
        );
        routes.send_replace(Route::Down("it is restarting".into()));
        let down = waiting.await.expect("joined");
        assert!(
            matches!(&down, Err(ServiceError::Unavailable(why)) if why == "it is restarting"),
            "{down:?}"
        );

        // A live incarnation that then dies: its waiter queue closes (`fail_pending`).
        let (outbox, _frames) = mpsc::channel::<OutFrame>(4);
        let (
            outlet,
            Waiting {
                mut handed_over, ..
            },
        ) = outlet(IpcLog::default(), outbox, Duration::from_secs(1));
        routes.send_replace(Route::Live(outlet));
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.request(Command::Ping, wait).await }
        });
        let (_id, reply) = handed_over.recv().await.expect("the waiter is handed over");
        drop(reply);
        handed_over.close();
        let died = pending.await.expect("joined");
        assert!(matches!(died, Err(ServiceError::Restarted)), "{died:?}");
        let late = client.request(Command::Ping, wait).await;
        assert!(matches!(late, Err(ServiceError::Restarted)), "{late:?}");

        drop(routes);
        let gone = client.request(Command::Ping, wait).await;
        assert!(matches!(gone, Err(ServiceError::Restarted)), "{gone:?}");
    }
}
