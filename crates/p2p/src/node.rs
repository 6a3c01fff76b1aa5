//! The libp2p node: one `NetworkBehaviour` and the swarm built around it.

use std::time::Duration;

use crate::codec::AppCodec;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport as _, autonat, connection_limits,
    core::{muxing::StreamMuxerBox, upgrade::Version},
    dcutr, identify,
    identity::Keypair,
    kad, mdns, noise, ping, relay,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
    tcp, upnp, websocket, yamux,
};
use whatnext_protocol::{
    blob::{BLOB_PROTOCOL, GROUP_LEN},
    guest::GUEST_TUNNEL_PROTOCOL,
    ipc::NodeConfig,
    session::{HANDSHAKE_PROTOCOL, MAX_APP_MESSAGE, SYNC_PROTOCOL},
    state::DialErrorKind,
};

/// An app protocol as the service sees it: JSON in, JSON out, size-limited. The service
/// does not interpret the messages; the controller does.
pub type AppChannel = request_response::Behaviour<AppCodec>;

pub(crate) fn app_channel(protocol: &'static str) -> AppChannel {
    let expect = if protocol == BLOB_PROTOCOL {
        // A group and its header.
        GROUP_LEN as usize + 1024
    } else {
        0
    };
    request_response::Behaviour::with_codec(
        AppCodec {
            max: MAX_APP_MESSAGE,
            expect,
        },
        [(StreamProtocol::new(protocol), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    )
}

/// How long a ping may go unanswered before its connection counts as dead.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Protocol name announced by identify; peers use it to recognise WhatNext nodes.
pub const IDENTIFY_PROTOCOL: &str = "/whatnext/id/1.0.0";

/// The DHT's protocol: our own, so WhatNext nodes form their own DHT rather than joining
/// IPFS's.
pub const KAD_PROTOCOL: &str = "/whatnext/kad/1.0.0";

/// What one node accepts, so a flood cannot exhaust it: a few connections per peer (direct,
/// relayed, a hole-punched one), a bounded number of handshakes in flight, and a total far
/// above what friends need. (Memory is bounded by the controller, which restarts a service
/// that grows past its limit: `memory-connection-limits` needs /proc, which the sandbox
/// closes.)
pub fn connection_limits() -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(64))
            .with_max_established_incoming(Some(256))
            .with_max_established(Some(512))
            .with_max_established_per_peer(Some(8)),
    )
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so its verdict on a new connection comes before any other behaviour's work.
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Reservations on relays (so peers behind other NATs can reach us) and circuits through them.
    pub relay_client: relay::client::Behaviour,
    /// Our public address on each transport, from the one a peer told us: the candidates
    /// hole punching offers.
    pub candidates: crate::candidates::Behaviour,
    /// Hole punching: turns a relayed connection into a direct one.
    pub dcutr: dcutr::Behaviour,
    /// Finding a peer's addresses by its id.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Are we reachable from outside? Asks connected peers to dial us back.
    pub autonat: autonat::Behaviour,
    pub upnp: Toggle<upnp::tokio::Behaviour>,
    pub handshake: AppChannel,
    pub sync: AppChannel,
    pub blob: AppChannel,
    pub guest_http: AppChannel,
}

/// Our DHT. `refresh`: re-bootstrap periodically (a node with bootstrap nodes to ask;
/// without any, the attempts only log warnings).
pub fn kademlia(peer_id: PeerId, refresh: bool) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    config.set_query_timeout(Duration::from_secs(30));
    if !refresh {
        config.set_periodic_bootstrap_interval(None);
    }
    kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), config)
}

/// WebSocket over plain TCP, so browser peers (js-libp2p) can dial us. Built by hand
/// instead of with the builder's `with_websocket`, which wraps TCP in the system DNS
/// resolver: that reads /etc/resolv.conf, and the sandboxed service has no filesystem.
pub fn websocket_transport(
    key: &Keypair,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    Ok(websocket::Config::new(tcp)
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// WebRTC-direct, so a browser tab can dial us without a certificate authority: the
/// browser checks our certificate against the hash in the address it dials.
fn webrtc_transport(
    key: &Keypair,
    certificate: libp2p_webrtc::tokio::Certificate,
) -> libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)> {
    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)))
        .boxed()
}

/// The WebRTC certificate to listen with: the one the controller kept, else a new one, then
/// also returned as PEM for the controller to keep (its hash is in our addresses, so a new
/// one makes the WebRTC addresses of old invites undialable).
pub fn webrtc_certificate(
    kept: Option<&str>,
) -> anyhow::Result<(libp2p_webrtc::tokio::Certificate, Option<String>)> {
    use libp2p_webrtc::tokio::Certificate;
    if let Some(pem) = kept {
        match Certificate::from_pem(pem) {
            Ok(certificate) => return Ok((certificate, None)),
            Err(err) => tracing::warn!(
                "the kept WebRTC certificate cannot be read ({}); using a new one, so WebRTC addresses given out before no longer work",
                error_chain(&err)
            ),
        }
    }
    let certificate = Certificate::generate(&mut rand::rng())
        .map_err(|e| anyhow::anyhow!("could not make a WebRTC certificate: {}", error_chain(&e)))?;
    let pem = certificate.serialize_pem();
    Ok((certificate, Some(pem)))
}

pub fn decode_keypair(encoded: &str) -> anyhow::Result<Keypair> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("identity key is not valid base64")?;
    Keypair::from_protobuf_encoding(&bytes).context("identity key is not a valid libp2p keypair")
}

pub fn parse_addrs(addrs: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>()
                .with_context(|| format!("{what} address {a:?} is not a valid multiaddr"))
        })
        .collect()
}

/// The swarm, and the WebRTC certificate made for it when the config held none that works
/// (PEM, for the controller to keep).
pub fn build_swarm(config: &NodeConfig) -> anyhow::Result<(Swarm<Behaviour>, Option<String>)> {
    let keypair = decode_keypair(&config.keypair)?;
    let (certificate, new_certificate) = webrtc_certificate(config.webrtc_certificate.as_deref())?;
    let local_peer_id = keypair.public().to_peer_id();
    let ping_interval = Duration::from_millis(config.ping_interval_ms.max(100));
    let mdns_enabled = config.mdns;
    let agent_version = if config.agent_version.is_empty() {
        format!("whatnext/{}", env!("CARGO_PKG_VERSION"))
    } else {
        config.agent_version.clone()
    };

    let upnp_enabled = config.upnp;
    let has_helpers = !config.bootstrap.is_empty() || !config.relays.is_empty();

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .context("could not set up the TCP transport")?
        .with_quic()
        .with_other_transport(websocket_transport)
        .map_err(|e| anyhow::anyhow!("could not set up the WebSocket transport: {e}"))?
        .with_other_transport(|key| webrtc_transport(key, certificate))
        .map_err(|e| anyhow::anyhow!("could not set up the WebRTC transport: {e}"))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .context("could not set up the relay client")?
        .with_behaviour(|key, relay_client| {
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    local_peer_id,
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits(),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                        .with_agent_version(agent_version),
                ),
                // A ping unanswered for 10 s closes its connection (see the service), so a
                // peer whose network vanished is dialed again within about 15 s.
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(ping_interval)
                        .with_timeout(PING_TIMEOUT),
                ),
                mdns: Toggle::from(mdns),
                relay_client,
                candidates: crate::candidates::Behaviour::default(),
                dcutr: dcutr::Behaviour::new(local_peer_id),
                kad: kademlia(local_peer_id, has_helpers),
                autonat: autonat::Behaviour::new(
                    local_peer_id,
                    autonat::Config {
                        // Learn early: the first probe 5 s after start, not 15.
                        boot_delay: Duration::from_secs(5),
                        retry_interval: Duration::from_secs(30),
                        ..autonat::Config::default()
                    },
                ),
                upnp: Toggle::from(upnp_enabled.then(upnp::tokio::Behaviour::default)),
                handshake: app_channel(HANDSHAKE_PROTOCOL),
                sync: app_channel(SYNC_PROTOCOL),
                blob: app_channel(BLOB_PROTOCOL),
                guest_http: app_channel(GUEST_TUNNEL_PROTOCOL),
            })
        })
        .map_err(|e| anyhow::anyhow!("could not set up the node's protocols: {e}"))?
        // Friends' connections should stay up while the app runs even when idle; ping alone
        // does not keep a connection alive in libp2p, so the idle timeout is long.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();
    Ok((swarm, new_certificate))
}

/// Splits `/…/p2p/<id>` into the address and the peer id, when the address ends with one.
pub fn split_peer_id(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut addr = addr.clone();
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => {
            addr.pop();
            (addr, Some(peer))
        }
        _ => (addr, None),
    }
}

/// Resolves the peer to dial from the command's fields, checking they agree.
pub fn dial_target(
    peer_id: Option<&str>,
    addrs: &[String],
) -> anyhow::Result<(Option<PeerId>, Vec<Multiaddr>)> {
    let mut peer = match peer_id {
        Some(p) => Some(
            p.parse::<PeerId>()
                .with_context(|| format!("{p:?} is not a valid peer id"))?,
        ),
        None => None,
    };
    let mut plain = Vec::new();
    for addr in parse_addrs(addrs, "dial")? {
        let (addr, in_addr) = split_peer_id(&addr);
        match (peer, in_addr) {
            (Some(p), Some(q)) if p != q => {
                bail!("address {addr}/p2p/{q} names a different peer than {p}")
            }
            (None, Some(q)) => peer = Some(q),
            _ => {}
        }
        plain.push(addr);
    }
    if plain.is_empty() && peer.is_none() {
        bail!("nothing to dial: give a peer id or at least one address");
    }
    Ok((peer, plain))
}

/// Formats an error with its chain of causes on one line.
/// The kind of a failed dial, from libp2p's typed error: the variant, else the first
/// I/O error kind found in an address's error chain, else the text.
pub fn dial_error_kind(err: &libp2p::swarm::DialError) -> DialErrorKind {
    use libp2p::{TransportError, swarm::DialError};
    match err {
        DialError::LocalPeerId { .. } => DialErrorKind::OwnPeerId,
        DialError::NoAddresses => DialErrorKind::NoAddresses,
        DialError::WrongPeerId { .. } => DialErrorKind::WrongPeer,
        DialError::Transport(errors) => errors
            .iter()
            .find_map(|(_, error)| match error {
                TransportError::Other(io) => io_error_kind(io),
                TransportError::MultiaddrNotSupported(_) => None,
            })
            .unwrap_or_else(|| DialErrorKind::from_reason(&error_chain(err))),
        _ => DialErrorKind::from_reason(&error_chain(err)),
    }
}

/// The first I/O error kind in `err`'s chain that says why a connection failed.
fn io_error_kind(err: &std::io::Error) -> Option<DialErrorKind> {
    use std::io::ErrorKind;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return Some(DialErrorKind::Refused),
                ErrorKind::TimedOut => return Some(DialErrorKind::TimedOut),
                ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => {
                    return Some(DialErrorKind::Unreachable);
                }
                _ => {}
            }
            // io::Error's own `source` skips the error it wraps; look at that one too.
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = error.source();
    }
    None
}

pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
