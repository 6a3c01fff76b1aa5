//! The service's one loop: commands in on stdin, events out on stdout, and the swarm in
//! between — the shape of rust-libp2p's examples, with the pipe as the command channel.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat,
    core::ConnectedPoint,
    core::transport::ListenerId,
    dcutr, identify, kad, mdns,
    multiaddr::Protocol,
    ping, relay,
    request_response::{self, OutboundRequestId, ResponseChannel},
    swarm::{
        ConnectionId, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::mpsc,
};
use tokio_util::codec::FramedRead;
use whatnext_protocol::{
    PROTOCOL_VERSION,
    frame::{Frame, FrameCodec, FrameError, Waves},
    ipc::{
        AppProtocol, Command, ConnectionInfo, Event, EventEnvelope, NodeConfig, Stats,
        decode_envelope, encode_envelope, transport_of,
    },
    state::{DialErrorKind, Direction, NatStatus},
};

use crate::codec::AppMessage;
use crate::gate::PollGate;
use crate::node::{
    AppChannel, Behaviour, BehaviourEvent, build_swarm, dial_error_kind, dial_target, error_chain,
    parse_addrs, split_peer_id,
};
use crate::relay_node::remember_dht_peer;

/// How long a relayed connection stays beside a direct one to the same peer (a hole was
/// punched) before it is closed: requests already under way on it finish, and new ones —
/// which libp2p spreads over every connection to a peer — all take the direct path after.
const CIRCUIT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest wait between attempts to renew a lost relay reservation.
const MAX_RELAY_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Commands handled in a row from one batch (more still buffered) before the loop lets the
/// writer send the answers so far: under load the controller starts on the first answers
/// while the service handles the rest, instead of each process waiting for the other's
/// whole batch (pipelined commands in the bench: ~330k → 500k–900k a second).
const ANSWER_WAVE: usize = 16;

/// Serves on the process's stdin/stdout.
pub async fn serve() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        use tokio::net::unix::pipe;
        // Async pipes on fds 0/1 wake the task directly from epoll; tokio::io::stdin() goes
        // through the blocking thread pool and costs about 3x the round trip.
        let not_a_pipe = "`whatnext p2p` is the internal network service: it is started by `whatnext run` and speaks frames on pipes";
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
        let reader = pipe::Receiver::from_owned_fd(stdin).context(not_a_pipe)?;
        let writer = pipe::Sender::from_owned_fd(stdout).context(not_a_pipe)?;
        serve_on(reader, writer).await
    }
    #[cfg(not(unix))]
    {
        serve_on(tokio::io::stdin(), tokio::io::stdout()).await
    }
}

/// An open connection, as the service keeps it.
struct Open {
    peer: PeerId,
    /// The address it was dialed at, or the one it came from.
    addr: Multiaddr,
    /// Through a relay's circuit.
    relayed: bool,
    /// Our IP address it uses, when libp2p tells (it does for accepted connections only).
    local_ip: Option<std::net::IpAddr>,
}

/// The IP address in `addr` (its first `/ip4/` or `/ip6/`), if it has one and it is not
/// unspecified.
fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) if !ip.is_unspecified() => Some(ip.into()),
        Protocol::Ip6(ip) if !ip.is_unspecified() => Some(ip.into()),
        _ => None,
    })
}

/// The entries of `items` whose time (`at`) has come, taken out; the rest stay.
fn take_due<T>(items: &mut Vec<T>, at: impl Fn(&T) -> tokio::time::Instant) -> Vec<T> {
    let now = tokio::time::Instant::now();
    let (due, later) = std::mem::take(items)
        .into_iter()
        .partition(|item| at(item) <= now);
    *items = later;
    due
}

enum Flow {
    Continue,
    Exit,
}

struct Starting {
    request_id: Option<u64>,
    pending_listeners: HashSet<ListenerId>,
    /// Reported with `node_started`, for the controller to keep.
    new_webrtc_certificate: Option<String>,
}

/// Events waiting for the controller to read them. When it is full the service's loop
/// waits (backpressure); the controller reads events without ever waiting on its own
/// writes, so that wait always ends.
const OUTBOX_FRAMES: usize = 256;

struct Service {
    /// To the writer task, which owns stdout.
    outbox: mpsc::Sender<whatnext_protocol::frame::OutFrame>,
    /// Whether answers go in compact frames ([`whatnext_protocol::ipc::encode_compact`]):
    /// once the controller has sent one.
    compact: bool,
    swarm: Option<Swarm<Behaviour>>,
    /// Whether the swarm can have something new (see [`PollGate`]).
    swarm_gate: PollGate,
    starting: Option<Starting>,
    /// Dials requested by the controller, by connection id, with the request id to answer.
    pending_dials: HashMap<ConnectionId, (Option<u64>, std::time::Instant)>,
    connections: HashMap<ConnectionId, Open>,
    /// Relayed connections superseded by a direct one, and when to close them.
    superseded: Vec<(tokio::time::Instant, ConnectionId)>,
    commands_handled: u64,
    /// Inbound app requests waiting for the controller's `respond`, by our request id.
    inbound: HashMap<u64, (AppProtocol, ResponseChannel<AppMessage>)>,
    next_inbound: u64,
    /// Outbound app requests, by protocol and libp2p's id, with the command id to answer.
    outbound: HashMap<(AppProtocol, OutboundRequestId), Option<u64>>,
    /// Relays, DHT helpers and lookups of the running node; reset with it.
    net: Connectivity,
}

/// What the node keeps about its helper nodes (relays, bootstrap nodes) and DHT lookups.
#[derive(Default)]
struct Connectivity {
    /// Our listeners on relays (`<relay>/p2p-circuit`), by listener, with the relay's address.
    relay_listeners: HashMap<ListenerId, Multiaddr>,
    /// Relays to ask again for a reservation: when, which, and how many tries so far.
    relay_retries: Vec<(tokio::time::Instant, Multiaddr, u32)>,
    /// Bootstrap and relay nodes: the DHT is bootstrapped through them once connected.
    helpers: HashSet<PeerId>,
    /// Configured relays by peer id: a reservation is asked for once connected to one.
    relays: HashMap<PeerId, Multiaddr>,
    /// Every bootstrap and relay address given so far (each is dialed once when given).
    helper_addrs: HashSet<Multiaddr>,
    /// Failed attempts to reach each relay since its last reservation (for the backoff).
    relay_failures: HashMap<Multiaddr, u32>,
    /// `find_peer` lookups in flight: the command id to answer and the peer sought.
    lookups: HashMap<kad::QueryId, (Option<u64>, PeerId)>,
}

impl Connectivity {
    /// The relay `peer` is, if it is a configured one with neither a listener nor a retry
    /// pending: one to ask for a reservation.
    fn idle_relay(&self, peer: Option<PeerId>) -> Option<Multiaddr> {
        let peer = peer?;
        let relay = self.relays.get(&peer)?;
        // By peer, not address: a relay whose name now resolves elsewhere is the same relay.
        let is_this = |r: &Multiaddr| split_peer_id(r).1 == Some(peer);
        let busy = self.relay_listeners.values().any(is_this)
            || self.relay_retries.iter().any(|(_, r, _)| is_this(r));
        (!busy).then(|| relay.clone())
    }

    /// The newest address of configured relay `relay` (its name may resolve elsewhere now).
    fn newest_address(&self, relay: Multiaddr) -> Multiaddr {
        split_peer_id(&relay)
            .1
            .and_then(|peer| self.relays.get(&peer).cloned())
            .unwrap_or(relay)
    }

    /// Counts one more failure to reach `relay`; returns the count (for the backoff).
    fn relay_failed(&mut self, relay: &Multiaddr) -> u32 {
        let failures = self.relay_failures.entry(relay.clone()).or_default();
        *failures += 1;
        *failures
    }
}

pub async fn serve_on<R, W>(reader: R, writer: W) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut reader = FramedRead::new(reader, FrameCodec::default());
    let (outbox, frames) = mpsc::channel(OUTBOX_FRAMES);
    let writer = tokio::spawn(whatnext_protocol::frame::write_queued_frames(
        writer, frames,
    ));
    let mut service = Service {
        outbox,
        swarm: None,
        swarm_gate: PollGate::default(),
        starting: None,
        pending_dials: HashMap::new(),
        connections: HashMap::new(),
        superseded: Vec::new(),
        commands_handled: 0,
        compact: false,
        inbound: HashMap::new(),
        next_inbound: 1,
        outbound: HashMap::new(),
        net: Connectivity::default(),
    };
    service
        .emit(
            None,
            Event::Ready {
                protocol_version: PROTOCOL_VERSION,
                pid: std::process::id(),
            },
        )
        .await?;

    let mut waves = Waves::new(ANSWER_WAVE);
    loop {
        let retry_at = service.net.relay_retries.iter().map(|(at, _, _)| *at).min();
        let close_at = service.superseded.iter().map(|(at, _)| *at).min();
        tokio::select! {
            () = sleep_until(retry_at) => service.retry_relays(),
            () = sleep_until(close_at) => service.close_superseded_circuits(),
            frame = reader.next() => {
                let flow = match frame {
                    None => {
                        tracing::info!("controller closed the command pipe; exiting");
                        Flow::Exit
                    }
                    Some(Err(FrameError::Io(err))) => {
                        tracing::warn!("command pipe failed ({err}); exiting");
                        Flow::Exit
                    }
                    Some(Err(err)) => {
                        tracing::warn!("command stream ended badly ({err}); exiting");
                        Flow::Exit
                    }
                    Some(Ok(frame)) => service.on_frame(frame).await?,
                };
                if let Flow::Exit = flow {
                    break;
                }
                if waves.handled(!reader.read_buffer().is_empty()) {
                    tokio::task::yield_now().await;
                }
            }
            event = next_swarm_event(&mut service.swarm, &service.swarm_gate) => service.on_swarm_event(event).await?,
        }
    }
    // What was said last (e.g. the answer to `shutdown`) still goes out before the exit.
    drop(service);
    match tokio::time::timeout(std::time::Duration::from_secs(1), writer).await {
        Ok(Ok(Err(err))) => tracing::debug!("the last events did not go out: {err}"),
        Ok(_) => {}
        Err(_) => tracing::debug!("the controller did not read the last events"),
    }
    Ok(())
}

fn app_channel_mut(swarm: &mut Swarm<Behaviour>, protocol: AppProtocol) -> &mut AppChannel {
    match protocol {
        AppProtocol::Handshake => &mut swarm.behaviour_mut().handshake,
        AppProtocol::Sync => &mut swarm.behaviour_mut().sync,
        AppProtocol::Blob => &mut swarm.behaviour_mut().blob,
        AppProtocol::GuestHttp => &mut swarm.behaviour_mut().guest_http,
    }
}

async fn next_swarm_event(
    swarm: &mut Option<Swarm<Behaviour>>,
    gate: &PollGate,
) -> SwarmEvent<BehaviourEvent> {
    match swarm {
        Some(swarm) => {
            // The swarm's stream never ends; `None` would only mean "nothing, ever".
            let mut next = |cx: &mut std::task::Context<'_>| match swarm.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(event)) => std::task::Poll::Ready(event),
                _ => std::task::Poll::Pending,
            };
            futures::future::poll_fn(|cx| gate.poll(cx, &mut next)).await
        }
        None => futures::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => futures::future::pending().await,
    }
}

/// A `dial_failed` event for one of the service's own reasons (its kind read off the text).
fn dial_failed(peer_id: Option<String>, reason: String) -> Event {
    Event::DialFailed {
        kind: DialErrorKind::from_reason(&reason),
        peer_id,
        reason,
    }
}

fn conn_id(id: ConnectionId) -> u64 {
    // ConnectionId exposes its counter only through Display.
    id.to_string().parse().unwrap_or_default()
}

impl Service {
    async fn emit(&mut self, id: Option<u64>, event: Event) -> anyhow::Result<()> {
        let body = match id {
            Some(id) if self.compact => whatnext_protocol::ipc::encode_compact(id, event)?,
            _ => encode_envelope(EventEnvelope { id, body: event })?,
        };
        self.outbox
            .send(body)
            .await
            .map_err(|_| anyhow::anyhow!("could not write to the controller (pipe closed)"))
    }

    async fn on_frame(&mut self, frame: Frame) -> anyhow::Result<Flow> {
        let body = match frame {
            Frame::Message(body) => body,
            Frame::Oversized { len, max } => {
                tracing::warn!("dropped an oversized command frame ({len} bytes, limit {max})");
                let message = format!("command frame of {len} bytes exceeds the limit of {max}");
                self.emit(None, Event::Error { message }).await?;
                return Ok(Flow::Continue);
            }
        };
        // A controller that writes compact frames reads them: its answers go compact too
        // (a client that writes JSON, such as a test, gets JSON).
        self.compact |= whatnext_protocol::ipc::is_compact(&body);
        match decode_envelope::<Command>(&body) {
            Ok(envelope) => {
                self.commands_handled += 1;
                self.on_command(envelope.id, envelope.body).await
            }
            Err(err) => {
                // Answer with the id if one can be read, so the caller is not left waiting.
                let id = whatnext_protocol::ipc::request_id_of(&body);
                tracing::warn!("malformed command: {err}");
                let message = format!("malformed command: {err}");
                self.emit(id, Event::Error { message }).await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn on_command(&mut self, id: Option<u64>, command: Command) -> anyhow::Result<Flow> {
        if !matches!(command, Command::Ping | Command::GetStats) {
            // It may change the swarm (a dial, a request, a new node): poll it next.
            self.swarm_gate.open();
        }
        match command {
            Command::Ping => self.emit(id, Event::Pong).await?,
            Command::Shutdown => {
                self.emit(id, Event::Ok).await?;
                return Ok(Flow::Exit);
            }
            Command::GetStats => {
                let stats = Stats {
                    connections: self.connections.len() as u64,
                    connected_peers: self
                        .swarm
                        .as_ref()
                        .map_or(0, |s| s.connected_peers().count() as u64),
                    listen_addrs: self
                        .swarm
                        .as_ref()
                        .map_or(0, |s| s.listeners().count() as u64),
                    commands_handled: self.commands_handled,
                };
                self.emit(id, Event::Stats(stats)).await?;
            }
            // `start_node` is boxed: building a swarm holds ~9 KB across its awaits, and
            // unboxed every command's future (one per frame) would be that big, and be copied.
            Command::StartNode(config) => {
                if self.swarm.is_some() {
                    let message = "the node is already running".to_string();
                    self.emit(id, Event::Error { message }).await?;
                } else if let Err(err) = Box::pin(self.start_node(id, &config)).await {
                    self.swarm = None;
                    self.starting = None;
                    self.emit(
                        id,
                        Event::NodeError {
                            message: format!("{err:#}"),
                        },
                    )
                    .await?;
                }
            }
            Command::StopNode => {
                self.swarm = None;
                self.starting = None;
                self.connections.clear();
                self.superseded.clear();
                self.net = Connectivity::default();
                let pending: Vec<_> = self.pending_dials.drain().collect();
                for (_, (dial_id, _)) in pending {
                    let reason = "the node was stopped".to_string();
                    self.emit(dial_id, dial_failed(None, reason)).await?;
                }
                self.emit(id, Event::NodeStopped).await?;
            }
            Command::Dial { peer_id, addrs } => self.dial(id, peer_id, addrs).await?,
            Command::FindPeer { peer_id } => self.find_peer(id, peer_id).await?,
            Command::Request {
                peer_id,
                protocol,
                body,
            } => self.request(id, peer_id, protocol, body).await?,
            Command::Respond {
                request_id,
                body,
                data,
            } => {
                if let (Some((protocol, channel)), Some(swarm)) =
                    (self.inbound.remove(&request_id), &mut self.swarm)
                {
                    let channel_behaviour = app_channel_mut(swarm, protocol);
                    if channel_behaviour
                        .send_response(channel, AppMessage::Json(body, data))
                        .is_err()
                    {
                        tracing::debug!("the peer left before response {request_id} was sent");
                    }
                }
            }
            Command::SetHelpers { bootstrap, relays } => {
                let parsed = parse_addrs(&bootstrap, "bootstrap")
                    .and_then(|b| Ok((b, parse_addrs(&relays, "relay")?)));
                match (parsed, self.swarm.take()) {
                    (Err(err), swarm) => {
                        self.swarm = swarm;
                        let message = format!("{err:#}");
                        self.emit(id, Event::Error { message }).await?;
                    }
                    (Ok((bootstrap, relays)), Some(mut swarm)) => {
                        self.add_helpers(&mut swarm, bootstrap, relays);
                        self.swarm = Some(swarm);
                        self.emit(id, Event::Ok).await?;
                    }
                    // No node: the next `start_node` carries them.
                    (Ok(_), None) => self.emit(id, Event::Ok).await?,
                }
            }
            Command::HangUp { peer_id } => match (peer_id.parse::<PeerId>(), &mut self.swarm) {
                (Ok(peer), Some(swarm)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                    self.emit(id, Event::Ok).await?;
                }
                (Err(err), _) => {
                    let message = format!("{peer_id:?} is not a valid peer id: {err}");
                    self.emit(id, Event::Error { message }).await?;
                }
                (_, None) => self.emit(id, Event::Ok).await?,
            },
        }
        Ok(Flow::Continue)
    }

    async fn start_node(&mut self, id: Option<u64>, config: &NodeConfig) -> anyhow::Result<()> {
        let listen = parse_addrs(&config.listen, "listen")?;
        let (mut swarm, new_webrtc_certificate) = build_swarm(config)?;
        let mut pending_listeners = HashSet::new();
        for addr in listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {}", error_chain(&e)))?;
            pending_listeners.insert(listener);
        }
        let bootstrap = parse_addrs(&config.bootstrap, "bootstrap")?;
        let relays = parse_addrs(&config.relays, "relay")?;
        self.add_helpers(&mut swarm, bootstrap, relays);
        tracing::info!(peer_id = %swarm.local_peer_id(), "node built");
        self.swarm = Some(swarm);
        self.starting = Some(Starting {
            request_id: id,
            pending_listeners,
            new_webrtc_certificate,
        });
        self.finish_start_if_listening().await
    }

    /// Takes in bootstrap and relay nodes: each address not given before is dialed, a
    /// helper's peer serves the DHT and AutoNAT, and a relay is reserved on (at its newest
    /// address) once connected.
    fn add_helpers(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        bootstrap: Vec<Multiaddr>,
        relays: Vec<Multiaddr>,
    ) {
        for addr in bootstrap.iter().chain(&relays) {
            if !self.net.helper_addrs.insert(addr.clone()) {
                continue; // given before: dialed then, and known to Kademlia
            }
            // Helpers serve the DHT and answer AutoNAT probes; both need their peer id.
            match split_peer_id(addr) {
                (plain, Some(peer)) => {
                    let behaviour = swarm.behaviour_mut();
                    behaviour.kad.add_address(&peer, plain.clone());
                    behaviour.autonat.add_server(peer, Some(plain));
                    self.net.helpers.insert(peer);
                }
                (_, None) => tracing::warn!(
                    "{addr} does not end in /p2p/<peer id>; it is dialed but cannot serve the DHT"
                ),
            }
            if let Err(err) = swarm.dial(addr.clone()) {
                tracing::warn!("could not dial {addr}: {}", error_chain(&err));
            }
        }
        for relay in relays {
            // Reserved once the connection is up (see `ConnectionEstablished`): a listen on
            // the circuit racing our own dial to the relay loses the reservation.
            match split_peer_id(&relay) {
                (_, Some(peer)) => {
                    self.net.relays.insert(peer, relay);
                }
                (_, None) => tracing::warn!(
                    "relay {relay} does not end in /p2p/<peer id>; no reservation can be made on it"
                ),
            }
        }
    }

    /// Asks `relay` for a reservation: a listener on `<relay>/p2p-circuit`.
    fn reserve(&mut self, swarm: &mut Swarm<Behaviour>, relay: Multiaddr, tries: u32) {
        match swarm.listen_on(relay.clone().with(Protocol::P2pCircuit)) {
            Ok(listener) => {
                self.net.relay_listeners.insert(listener, relay);
            }
            Err(err) => {
                tracing::warn!("cannot listen through relay {relay}: {}", error_chain(&err));
                self.schedule_relay_retry(relay, tries + 1);
            }
        }
    }

    fn schedule_relay_retry(&mut self, relay: Multiaddr, tries: u32) {
        let backoff = std::time::Duration::from_secs(5)
            .saturating_mul(1 << tries.saturating_sub(1).min(4))
            .min(MAX_RELAY_RETRY);
        self.net
            .relay_retries
            .push((tokio::time::Instant::now() + backoff, relay, tries));
    }

    /// Our address `lost` went away (another network, a cable pulled): the direct
    /// connections that used its IP can carry nothing more, but TCP would hold them for
    /// minutes. They are closed, so the sessions dial their peers again at once over what
    /// is left. libp2p names our side's address only for connections we accepted; one we
    /// dialed is closed too when nothing we listen on has that IP any more (a reconnect
    /// costs less than a dead connection).
    fn close_connections_on_lost_address(&mut self, lost: &Multiaddr) {
        let Some(swarm) = self.swarm.as_mut() else {
            return;
        };
        let Some(ip) = ip_of(lost).filter(|ip| !ip.is_loopback()) else {
            return;
        };
        if swarm.listeners().any(|a| ip_of(a) == Some(ip)) {
            return; // another transport still listens there: the address is not gone
        }
        for (id, open) in &self.connections {
            let on_loopback = ip_of(&open.addr).is_some_and(|peer| peer.is_loopback());
            if !open.relayed && !on_loopback && open.local_ip.is_none_or(|ours| ours == ip) {
                tracing::info!(
                    "closing the connection to {} via {}: our address {ip} is gone",
                    open.peer,
                    open.addr
                );
                swarm.close_connection(*id);
            }
        }
    }

    /// Closes the relayed connections whose grace beside a direct one has passed.
    fn close_superseded_circuits(&mut self) {
        self.swarm_gate.open();
        let due = take_due(&mut self.superseded, |(at, _)| *at);
        let Some(swarm) = self.swarm.as_mut() else {
            return;
        };
        for (_, connection) in due {
            // Only while the direct connection is still there: closing the circuit of a peer
            // whose direct path failed meanwhile would cut it off.
            let direct_left = self.connections.get(&connection).is_some_and(|circuit| {
                self.connections
                    .values()
                    .any(|open| open.peer == circuit.peer && !open.relayed)
            });
            if direct_left && swarm.close_connection(connection) {
                tracing::info!(
                    "closing a relayed connection: a direct one carries its traffic now"
                );
            }
        }
    }

    fn retry_relays(&mut self) {
        self.swarm_gate.open();
        let due = take_due(&mut self.net.relay_retries, |(at, _, _)| *at);
        let Some(mut swarm) = self.swarm.take() else {
            return;
        };
        for (_, relay, tries) in due {
            let relay = self.net.newest_address(relay);
            tracing::info!(
                "asking relay {relay} for a reservation again (try {})",
                tries + 1
            );
            self.reserve(&mut swarm, relay, tries);
        }
        self.swarm = Some(swarm);
    }

    /// A new direct connection supersedes the relayed ones to its peer (closed after
    /// [`CIRCUIT_GRACE`]), so the traffic moves to the direct path.
    fn supersede_circuits(&mut self, connection: ConnectionId) {
        let Some(new) = self
            .connections
            .get(&connection)
            .filter(|open| !open.relayed)
        else {
            return;
        };
        let at = tokio::time::Instant::now() + CIRCUIT_GRACE;
        for (id, open) in &self.connections {
            let superseded = open.relayed && open.peer == new.peer;
            if superseded && !self.superseded.iter().any(|(_, c)| c == id) {
                self.superseded.push((at, *id));
            }
        }
    }

    /// Answers `start_node` once every listener has reported its first address.
    async fn finish_start_if_listening(&mut self) -> anyhow::Result<()> {
        let done = self
            .starting
            .as_ref()
            .is_some_and(|s| s.pending_listeners.is_empty());
        if !done {
            return Ok(());
        }
        let Some(starting) = self.starting.take() else {
            return Ok(());
        };
        let Some(swarm) = &self.swarm else {
            return Ok(());
        };
        let event = Event::NodeStarted {
            peer_id: swarm.local_peer_id().to_string(),
            listen_addrs: swarm.listeners().map(|a| a.to_string()).collect(),
            new_webrtc_certificate: starting.new_webrtc_certificate,
        };
        self.emit(starting.request_id, event).await
    }

    async fn dial(
        &mut self,
        id: Option<u64>,
        peer_id: Option<String>,
        addrs: Vec<String>,
    ) -> anyhow::Result<()> {
        let Some(swarm) = &mut self.swarm else {
            let reason = "the network node is not running".to_string();
            return self.emit(id, dial_failed(peer_id, reason)).await;
        };
        let (peer, addrs) = match dial_target(peer_id.as_deref(), &addrs) {
            Ok(target) => target,
            Err(err) => {
                let reason = format!("{err:#}");
                return self.emit(id, dial_failed(peer_id, reason)).await;
            }
        };
        if let Some(peer) = peer {
            if peer == *swarm.local_peer_id() {
                let reason = "that is this node's own peer id".to_string();
                return self.emit(id, dial_failed(peer_id, reason)).await;
            }
            let existing = self
                .connections
                .values()
                .find(|open| open.peer == peer)
                .map(|open| open.addr.to_string());
            if let Some(addr) = existing {
                let peer_id = peer.to_string();
                let event = Event::Dialed {
                    peer_id,
                    addr,
                    micros: None,
                };
                return self.emit(id, event).await;
            }
        }
        let opts = match (peer, addrs.first()) {
            (Some(peer), _) => DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .build(),
            (None, Some(addr)) => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            (None, None) => {
                let reason = "nothing to dial: give a peer id or an address".to_string();
                return self.emit(id, dial_failed(peer_id, reason)).await;
            }
        };
        let connection_id = opts.connection_id();
        match swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials
                    .insert(connection_id, (id, std::time::Instant::now()));
                Ok(())
            }
            Err(err) => {
                let reason = error_chain(&err);
                let kind = dial_error_kind(&err);
                let event = Event::DialFailed {
                    peer_id,
                    reason,
                    kind,
                };
                self.emit(id, event).await
            }
        }
    }

    async fn find_peer(&mut self, id: Option<u64>, peer_id: String) -> anyhow::Result<()> {
        let peer = match peer_id.parse::<PeerId>() {
            Ok(peer) => peer,
            Err(err) => {
                let reason = format!("{peer_id:?} is not a valid peer id: {err}");
                return self.emit(id, Event::PeerNotFound { peer_id, reason }).await;
            }
        };
        let Some(swarm) = &mut self.swarm else {
            let reason = "the network node is not running".to_string();
            return self.emit(id, Event::PeerNotFound { peer_id, reason }).await;
        };
        let query = swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.net.lookups.insert(query, (id, peer));
        Ok(())
    }

    async fn on_kad_event(&mut self, event: kad::Event) -> anyhow::Result<()> {
        let kad::Event::OutboundQueryProgressed {
            id: query, result, ..
        } = event
        else {
            return Ok(());
        };
        let kad::QueryResult::GetClosestPeers(result) = result else {
            return Ok(());
        };
        let Some((id, sought)) = self.net.lookups.remove(&query) else {
            return Ok(());
        };
        let (peers, failure) = match result {
            Ok(ok) => (ok.peers, None),
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => {
                (peers, Some("the lookup timed out"))
            }
        };
        let found: Vec<String> = peers
            .iter()
            .filter(|p| p.peer_id == sought)
            .flat_map(|p| p.addrs.iter().map(|a| a.to_string()))
            .collect();
        let peer_id = sought.to_string();
        let event = if !found.is_empty() {
            Event::PeerFound {
                peer_id,
                addrs: found,
            }
        } else {
            let reason = match (failure, peers.is_empty(), self.net.helpers.is_empty()) {
                (_, true, true) => "the DHT knows no peers: configure a bootstrap or relay node (`bootstrap`/`relays` in config.toml)".to_string(),
                (Some(why), _, _) => format!("{why} without finding the peer"),
                (None, _, _) => format!(
                    "no DHT node knows this peer ({} asked); it may be offline or not yet registered with a bootstrap node",
                    peers.len()
                ),
            };
            Event::PeerNotFound { peer_id, reason }
        };
        self.emit(id, event).await
    }

    async fn request(
        &mut self,
        id: Option<u64>,
        peer_id: String,
        protocol: AppProtocol,
        body: serde_json::Value,
    ) -> anyhow::Result<()> {
        let Some(swarm) = &mut self.swarm else {
            let reason = "the network node is not running".to_string();
            return self.emit(id, Event::RequestFailed { reason }).await;
        };
        let peer = match peer_id.parse::<PeerId>() {
            Ok(peer) => peer,
            Err(err) => {
                let reason = format!("{peer_id:?} is not a valid peer id: {err}");
                return self.emit(id, Event::RequestFailed { reason }).await;
            }
        };
        let request_id = app_channel_mut(swarm, protocol)
            .send_request(&peer, AppMessage::Json(body, bytes::Bytes::new()));
        self.outbound.insert((protocol, request_id), id);
        Ok(())
    }

    async fn on_app_event(
        &mut self,
        protocol: AppProtocol,
        event: request_response::Event<AppMessage, AppMessage>,
    ) -> anyhow::Result<()> {
        use request_response::{Event as RrEvent, Message};
        match event {
            RrEvent::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let request = match request {
                    AppMessage::Json(value, _) => value,
                    AppMessage::Rejected(reason) => {
                        tracing::warn!(
                            "{peer} sent a bad {protocol:?} message ({reason}); disconnecting it"
                        );
                        drop(channel);
                        if let Some(swarm) = &mut self.swarm {
                            let _ = swarm.disconnect_peer_id(peer);
                        }
                        return Ok(());
                    }
                };
                let request_id = self.next_inbound;
                self.next_inbound += 1;
                self.inbound.insert(request_id, (protocol, channel));
                // Bound what a peer can leave waiting on the controller.
                if self.inbound.len() > 1024
                    && let Some(oldest) = self.inbound.keys().min().copied()
                {
                    self.inbound.remove(&oldest);
                }
                let event = Event::RequestReceived {
                    request_id,
                    peer_id: peer.to_string(),
                    protocol,
                    body: request,
                };
                self.emit(None, event).await?;
            }
            RrEvent::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(id) = self.outbound.remove(&(protocol, request_id)) {
                    let event = match response {
                        AppMessage::Json(body, data) => Event::Response { body, data },
                        AppMessage::Rejected(reason) => Event::RequestFailed { reason },
                    };
                    self.emit(id, event).await?;
                }
            }
            RrEvent::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let reason = format!("request to {peer} failed: {}", error_chain(&error));
                if let Some(id) = self.outbound.remove(&(protocol, request_id)) {
                    self.emit(id, Event::RequestFailed { reason }).await?;
                }
            }
            RrEvent::InboundFailure { peer, error, .. } => {
                tracing::debug!(
                    "{protocol:?} request from {peer} failed: {}",
                    error_chain(&error)
                );
            }
            RrEvent::ResponseSent { .. } => {}
        }
        Ok(())
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> anyhow::Result<()> {
        // Handling an event may change the swarm; it is polled again after an event anyway.
        self.swarm_gate.open();
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!("listening on {address}");
                if let Some(relay) = self.net.relay_listeners.get(&listener_id) {
                    self.net.relay_failures.remove(relay);
                    let relay_peer_id = split_peer_id(relay)
                        .1
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    // Known to the world through the relay: identify announces it, and the
                    // DHT serves our records (Kademlia's server mode needs an external address).
                    if let Some(swarm) = &mut self.swarm {
                        swarm.add_external_address(address.clone());
                    }
                    let addr = address.to_string();
                    self.emit(
                        None,
                        Event::RelayReserved {
                            relay_peer_id,
                            addr,
                        },
                    )
                    .await?;
                }
                let addr = address.to_string();
                self.emit(None, Event::ListenAddrAdded { addr }).await?;
                if let Some(starting) = &mut self.starting {
                    starting.pending_listeners.remove(&listener_id);
                }
                self.finish_start_if_listening().await?;
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                tracing::info!("no longer listening on {address}");
                if let Some(swarm) = &mut self.swarm {
                    swarm.remove_external_address(&address);
                }
                self.close_connections_on_lost_address(&address);
                let addr = address.to_string();
                self.emit(None, Event::ListenAddrRemoved { addr }).await?;
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.net.relay_listeners.remove(&listener_id) {
                    let reason = match &reason {
                        Ok(()) => "the relay connection closed".to_string(),
                        Err(err) => error_chain(err),
                    };
                    tracing::warn!("reservation on relay {relay} ended: {reason}");
                    let relay_addr = relay.to_string();
                    self.emit(None, Event::RelayReservationFailed { relay_addr, reason })
                        .await?;
                    let tries = self.net.relay_failed(&relay);
                    self.schedule_relay_retry(relay, tries);
                } else if let Err(err) = reason {
                    let message = format!("a listener closed: {}", error_chain(&err));
                    self.emit(None, Event::NodeError { message }).await?;
                }
                if let Some(starting) = &mut self.starting {
                    starting.pending_listeners.remove(&listener_id);
                }
                self.finish_start_if_listening().await?;
            }
            SwarmEvent::ListenerError { error, .. } => {
                let message = format!("listener error: {}", error_chain(&error));
                self.emit(None, Event::NodeError { message }).await?;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let (addr, direction) = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Dialer),
                    ConnectedPoint::Listener { send_back_addr, .. } => {
                        (send_back_addr.clone(), Direction::Listener)
                    }
                };
                tracing::info!("connected to {peer_id} via {addr} ({direction})");
                if self.net.helpers.contains(&peer_id)
                    && let Some(mut swarm) = self.swarm.take()
                {
                    if let Err(err) = swarm.behaviour_mut().kad.bootstrap() {
                        tracing::debug!("DHT bootstrap: {err}");
                    }
                    if let Some(relay) = self.net.idle_relay(Some(peer_id)) {
                        self.reserve(&mut swarm, relay, 0);
                    }
                    self.swarm = Some(swarm);
                }
                self.connections.insert(
                    connection_id,
                    Open {
                        peer: peer_id,
                        addr: addr.clone(),
                        relayed: endpoint.is_relayed(),
                        local_ip: match &endpoint {
                            ConnectedPoint::Listener { local_addr, .. } => ip_of(local_addr),
                            ConnectedPoint::Dialer { .. } => None,
                        },
                    },
                );
                self.supersede_circuits(connection_id);
                let addr_text = addr.to_string();
                // The listener's side of a circuit: the peer's address says nothing (it is
                // `/p2p/<peer>`); our address on the relay names the circuit and the transport
                // that carries it.
                let relayed = endpoint.is_relayed();
                let carried_by = match &endpoint {
                    ConnectedPoint::Listener { local_addr, .. } if relayed => {
                        local_addr.to_string()
                    }
                    _ => addr_text.clone(),
                };
                let info = ConnectionInfo {
                    peer_id: peer_id.to_string(),
                    connection_id: conn_id(connection_id),
                    transport: transport_of(&carried_by).to_string(),
                    relayed,
                    addr: addr_text.clone(),
                    direction,
                };
                self.emit(None, Event::ConnectionEstablished(info)).await?;
                if let Some((request, started)) = self.pending_dials.remove(&connection_id) {
                    let event = Event::Dialed {
                        peer_id: peer_id.to_string(),
                        addr: addr_text,
                        micros: Some(
                            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                        ),
                    };
                    self.emit(request, event).await?;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                self.connections.remove(&connection_id);
                let cause = cause.map(|c| error_chain(&c));
                tracing::info!("connection to {peer_id} closed ({cause:?})");
                let event = Event::ConnectionClosed {
                    peer_id: peer_id.to_string(),
                    connection_id: conn_id(connection_id),
                    cause,
                };
                self.emit(None, event).await?;
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let reason = error_chain(&error);
                let kind = dial_error_kind(&error);
                tracing::info!("dial to {peer_id:?} failed ({kind}): {reason}");
                // A relay we could not reach: try again later (the retry dials it).
                if let Some(relay) = self.net.idle_relay(peer_id) {
                    let tries = self.net.relay_failed(&relay);
                    self.schedule_relay_retry(relay, tries);
                }
                let request = self
                    .pending_dials
                    .remove(&connection_id)
                    .and_then(|(request, _)| request);
                let peer_id = peer_id.map(|p| p.to_string());
                self.emit(
                    request,
                    Event::DialFailed {
                        peer_id,
                        reason,
                        kind,
                    },
                )
                .await?;
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(
                    "incoming connection from {send_back_addr} failed: {}",
                    error_chain(&error)
                );
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                let addr = address.to_string();
                self.emit(None, Event::ExternalAddrConfirmed { addr })
                    .await?;
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event).await?,
            _ => {}
        }
        Ok(())
    }

    async fn on_behaviour_event(&mut self, event: BehaviourEvent) -> anyhow::Result<()> {
        match event {
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Ok(rtt),
            }) => {
                let event = Event::Rtt {
                    peer_id: peer.to_string(),
                    connection_id: conn_id(connection),
                    micros: u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
                };
                self.emit(None, event).await?;
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(ping::Failure::Unsupported),
                ..
            }) => tracing::debug!("{peer} does not answer pings"),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(err),
            }) => {
                // A connection that stopped carrying anything (the peer's network went away
                // without a word): closed, so its requests fail now and the sessions dial
                // the peer again, instead of waiting on it for TCP's quarter of an hour. An
                // unanswered ping is a `Timeout`; on a dead connection whose ping stream is
                // not open yet, the stream's negotiation times out instead (`Other`).
                tracing::info!("ping to {peer} failed ({err}); closing that connection");
                if let Some(swarm) = &mut self.swarm {
                    swarm.close_connection(connection);
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                // A DHT server: remember where it listens, so lookups can reach it.
                if let Some(swarm) = &mut self.swarm {
                    remember_dht_peer(&mut swarm.behaviour_mut().kad, peer_id, &info);
                }
                let event = Event::PeerIdentified {
                    peer_id: peer_id.to_string(),
                    listen_addrs: info.listen_addrs.iter().map(|a| a.to_string()).collect(),
                    agent_version: info.agent_version,
                };
                self.emit(None, event).await?;
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Candidates(never) => match never {},
            BehaviourEvent::Handshake(event) => {
                self.on_app_event(AppProtocol::Handshake, event).await?
            }
            BehaviourEvent::Sync(event) => self.on_app_event(AppProtocol::Sync, event).await?,
            BehaviourEvent::Blob(event) => self.on_app_event(AppProtocol::Blob, event).await?,
            BehaviourEvent::GuestHttp(event) => {
                self.on_app_event(AppProtocol::GuestHttp, event).await?
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if let Some(swarm) = &mut self.swarm {
                        for addr in &addrs {
                            swarm.add_peer_address(peer, addr.clone());
                        }
                    }
                    let event = Event::PeerDiscovered {
                        peer_id: peer.to_string(),
                        addrs: addrs.iter().map(|a| a.to_string()).collect(),
                    };
                    self.emit(None, event).await?;
                }
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event).await?,
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                let (ok, error) = match result {
                    Ok(_) => (true, None),
                    Err(err) => (false, Some(error_chain(&err))),
                };
                tracing::info!("hole punch with {remote_peer_id}: ok={ok} {error:?}");
                let peer_id = remote_peer_id.to_string();
                self.emit(None, Event::HolePunch { peer_id, ok, error })
                    .await?;
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                let (status, public_addr) = match new {
                    autonat::NatStatus::Public(addr) => (NatStatus::Public, Some(addr.to_string())),
                    autonat::NatStatus::Private => (NatStatus::Private, None),
                    autonat::NatStatus::Unknown => (NatStatus::Unknown, None),
                };
                tracing::info!("AutoNAT: {status}");
                self.emit(
                    None,
                    Event::NatStatus {
                        status,
                        public_addr,
                    },
                )
                .await?;
            }
            BehaviourEvent::Autonat(event) => tracing::debug!("AutoNAT: {event:?}"),
            BehaviourEvent::RelayClient(event) => {
                if let relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } = &event {
                    tracing::info!("relay {relay_peer_id} accepted our reservation");
                } else {
                    tracing::debug!("relay client: {event:?}");
                }
            }
            BehaviourEvent::Upnp(event) => tracing::info!("UPnP: {event:?}"),
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => {
                let peers: HashSet<PeerId> = gone.into_iter().map(|(p, _)| p).collect();
                for peer in peers {
                    let peer_id = peer.to_string();
                    self.emit(None, Event::PeerExpired { peer_id }).await?;
                }
            }
        }
        Ok(())
    }
}
