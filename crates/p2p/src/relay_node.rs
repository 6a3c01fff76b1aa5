//! `whatnext relay`: the public helper node — the seed's standalone "/service", a process
//! that runs on a server with no UI. It relays (circuit relay v2, with limits) for peers
//! behind NATs until they punch a hole, serves the DHT (`/whatnext/kad/1.0.0`) so peers can
//! be found by id, and answers AutoNAT probes so peers learn whether they are reachable.
//! With `--guest-http` it also carries hosts' guest pages to guests off their LAN
//! ([`crate::guest_tunnel`]).
//! It keeps no state but its identity, which the caller loads.

use std::time::Duration;

use futures::StreamExt as _;
use futures::future::Either;
use libp2p::{
    Multiaddr, PeerId, Transport as _, autonat,
    core::{muxing::StreamMuxerBox, transport::Boxed, upgrade::Version},
    identify,
    identity::Keypair,
    kad,
    multiaddr::Protocol,
    noise, ping, quic, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};

use libp2p::request_response;
use tokio::sync::mpsc;
use whatnext_protocol::guest::{GUEST_TUNNEL_PROTOCOL, TunnelRequest, TunnelResponse};

use crate::{
    bandwidth_cap::PeerCaps,
    codec::AppMessage,
    guest_tunnel::{self, Forward, Tunnels},
    node::{
        IDENTIFY_PROTOCOL, KAD_PROTOCOL, connection_limits, error_chain, kademlia,
        websocket_transport,
    },
};

/// How often the relay pings each connection, to find dead ones.
const RELAY_PING_INTERVAL: Duration = Duration::from_secs(5);

/// What a relay gives each peer; defaults suit a small community server.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Peers that may hold a reservation at once.
    pub max_reservations: usize,
    /// Circuits relayed at once.
    pub max_circuits: usize,
    /// Circuits relayed at once to or from one peer (libp2p's default is 4: too few for a
    /// host behind a symmetric NAT whose friends join its session together).
    pub max_circuits_per_peer: usize,
    /// Longest life of one circuit. Hole punching usually ends it within seconds, but when
    /// no hole can be punched (a symmetric NAT) the circuit carries the playlist's sync and
    /// session messages for as long as friends listen together.
    pub max_circuit_duration: Duration,
    /// Most bytes relayed per circuit, each way: playlist edits and session messages are
    /// small; media groups (256 KiB each) soon reach it, and are then refused by the relay.
    pub max_circuit_bytes: u64,
    /// Most bytes a second relayed to and from one peer, each way, over all its circuits
    /// and connections together ([`crate::bandwidth_cap`]); 0 for no cap.
    pub max_peer_bytes_per_sec: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_circuits: 64,
            max_circuits_per_peer: 16,
            max_circuit_duration: Duration::from_secs(60 * 60),
            max_circuit_bytes: 64 << 20,
            // Ten times a lossless stereo stream: a session's playback keeps up, and a
            // playlist of 100,000 tracks (~21 MB) joins in ~20 s.
            max_peer_bytes_per_sec: 1 << 20,
        }
    }
}

pub struct RelayOptions {
    pub keypair: Keypair,
    pub listen: Vec<Multiaddr>,
    pub limits: RelayLimits,
    /// Answer AutoNAT probes for private addresses too (LANs and test labs); on the
    /// internet only public addresses are probed.
    pub allow_private: bool,
    /// Serve hosts' guest pages to guests off their LAN (see [`crate::guest_tunnel`]).
    pub guest_http: Option<GuestHttp>,
}

/// `--guest-http`: where guests' browsers reach the relay.
pub struct GuestHttp {
    /// Bound by the caller (so it can say the port).
    pub listener: tokio::net::TcpListener,
    /// How guests reach it: `http://<public address>:<port>`.
    pub base: String,
    pub limits: crate::guest_tunnel::TunnelLimits,
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    limits: libp2p::connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: relay::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    autonat: autonat::Behaviour,
    guest_http: crate::node::AppChannel,
}

/// Runs the relay until `stop` resolves. `on_listen` is called with each full address
/// (ending in `/p2p/<peer id>`) as it comes up.
pub async fn run_relay(
    options: RelayOptions,
    mut on_listen: impl FnMut(&Multiaddr),
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let RelayOptions {
        keypair,
        listen,
        limits,
        allow_private,
        guest_http,
    } = options;
    let peer_id = keypair.public().to_peer_id();
    let caps =
        (limits.max_peer_bytes_per_sec > 0).then(|| PeerCaps::new(limits.max_peer_bytes_per_sec));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| relay_transport(key, caps))
        .map_err(|e| anyhow::anyhow!("could not set up the relay's transports: {e}"))?
        .with_behaviour(|key| {
            let mut kad = kademlia(peer_id, false);
            kad.set_mode(Some(kad::Mode::Server));
            Ok(RelayBehaviour {
                limits: connection_limits(),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                        .with_agent_version(format!(
                            "whatnext-relay/{}",
                            env!("CARGO_PKG_VERSION")
                        )),
                ),
                // A dead connection is closed (below) within ~15 s: a peer that changed
                // networks reserves again over a new connection, and a circuit to it must
                // not go to the old one, which libp2p's relay may pick.
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(RELAY_PING_INTERVAL)
                        .with_timeout(crate::node::PING_TIMEOUT),
                ),
                relay: relay::Behaviour::new(
                    peer_id,
                    relay::Config {
                        max_reservations: limits.max_reservations,
                        max_circuits: limits.max_circuits,
                        max_circuits_per_peer: limits.max_circuits_per_peer,
                        max_circuit_duration: limits.max_circuit_duration,
                        max_circuit_bytes: limits.max_circuit_bytes,
                        ..relay::Config::default()
                    },
                ),
                kad,
                autonat: autonat::Behaviour::new(
                    peer_id,
                    autonat::Config {
                        only_global_ips: !allow_private,
                        ..autonat::Config::default()
                    },
                ),
                guest_http: crate::node::app_channel(GUEST_TUNNEL_PROTOCOL),
            })
        })
        .map_err(|e| anyhow::anyhow!("could not set up the relay's protocols: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();

    for addr in &listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {}", error_chain(&e)))?;
    }
    tracing::info!(%peer_id, ?limits, "relay starting");
    // Guests' HTTP: served by its own tasks, forwarded by this loop, which owns the tunnels.
    let (forward_tx, mut forwards) = mpsc::channel::<Forward>(1024);
    let mut tunnels = match guest_http {
        Some(GuestHttp {
            listener,
            base,
            limits,
        }) => {
            tokio::spawn(guest_tunnel::serve_http(
                listener,
                forward_tx,
                limits.max_connections,
            ));
            Some(Tunnels::new(limits, base))
        }
        None => None,
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(forward) = forwards.recv() => {
                let Some(tunnels) = tunnels.as_mut() else { continue };
                match tunnels.route(&forward.code) {
                    Ok(host) => {
                        let body = serde_json::to_value(TunnelRequest::Http(forward.request))
                            .unwrap_or(serde_json::Value::Null);
                        let id = swarm
                            .behaviour_mut()
                            .guest_http
                            .send_request(&host, AppMessage::Json(body, Default::default()));
                        tunnels.sent(id, forward.reply);
                    }
                    Err(why) => {
                        let _ = forward.reply.send(Err(why));
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    // A relay lives on a public address: what it listens on is how peers
                    // reach it, and reservations hand these addresses out.
                    swarm.add_external_address(address.clone());
                    on_listen(&address.with(Protocol::P2p(peer_id)));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    tracing::warn!("listener error: {}", error_chain(&error));
                }
                SwarmEvent::ListenerClosed { addresses, reason: Err(err), .. } => {
                    anyhow::bail!("stopped listening on {addresses:?}: {}", error_chain(&err));
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    tracing::debug!("connected: {peer_id} at {}", endpoint.get_remote_address());
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    if let Some(tunnels) = tunnels.as_mut() {
                        tunnels.forget(&peer_id);
                    }
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) => {
                    remember_dht_peer(&mut swarm.behaviour_mut().kad, peer_id, &info);
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Ping(ping::Event {
                    peer,
                    connection,
                    result: Err(err),
                })) if !matches!(err, ping::Failure::Unsupported) => {
                    tracing::info!("ping to {peer} failed ({err}); closing that connection");
                    swarm.close_connection(connection);
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => {
                    tracing::info!("relay: {event:?}");
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::GuestHttp(event)) => {
                    on_guest_http(&mut swarm, tunnels.as_mut(), event);
                }
                _ => {}
            },
        }
    }
    tracing::info!("relay stopped");
    Ok(())
}

/// TCP, QUIC and WebSocket, each connection under its peer's bandwidth cap, if any.
fn relay_transport(
    key: &Keypair,
    caps: Option<PeerCaps>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)));
    let all = tcp
        .or_transport(quic)
        .or_transport(websocket_transport(key)?)
        .map(|either, _| match either {
            Either::Left(Either::Left(tcp)) => tcp,
            Either::Left(Either::Right(quic)) => quic,
            Either::Right(websocket) => websocket,
        })
        .boxed();
    Ok(match caps {
        Some(caps) => caps.wrap(all),
        None => all,
    })
}

/// A host registering its guest pages, or answering a guest's request.
fn on_guest_http(
    swarm: &mut libp2p::Swarm<RelayBehaviour>,
    tunnels: Option<&mut Tunnels>,
    event: request_response::Event<AppMessage, AppMessage>,
) {
    use request_response::{Event, Message};
    match event {
        Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } => {
            let answer = match (tunnels, request) {
                (Some(tunnels), AppMessage::Json(body, _)) => {
                    match guest_tunnel::registration(body) {
                        Some(codes) => tunnels.register(peer, codes),
                        None => TunnelResponse::Refused {
                            reason: "a relay takes registrations only".into(),
                        },
                    }
                }
                (None, _) => TunnelResponse::Refused {
                    reason: "this relay serves no guest pages (it runs without --guest-http)"
                        .into(),
                },
                (Some(_), AppMessage::Rejected(why)) => TunnelResponse::Refused { reason: why },
            };
            let body = serde_json::to_value(answer).unwrap_or(serde_json::Value::Null);
            let _ = swarm
                .behaviour_mut()
                .guest_http
                .send_response(channel, AppMessage::Json(body, Default::default()));
        }
        Event::Message {
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(tunnels) = tunnels {
                let answer = match response {
                    AppMessage::Json(body, _) => guest_tunnel::answer_of(body),
                    AppMessage::Rejected(why) => Err((502, why)),
                };
                tunnels.answered(request_id, answer);
            }
        }
        Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(tunnels) = tunnels {
                tunnels.answered(
                    request_id,
                    Err((502, format!("the host is unreachable: {error}"))),
                );
            }
        }
        _ => {}
    }
}

/// Adds a peer that serves our DHT to the routing table, with the addresses it announced.
pub fn remember_dht_peer(
    kad: &mut kad::Behaviour<kad::store::MemoryStore>,
    peer_id: PeerId,
    info: &identify::Info,
) {
    if !info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) {
        return;
    }
    for addr in info.listen_addrs.iter().filter(|a| is_dialable(a)) {
        kad.add_address(&peer_id, addr.clone());
    }
}

/// Whether an address announced by a peer is worth dialing (not `0.0.0.0` or `::`).
pub fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
